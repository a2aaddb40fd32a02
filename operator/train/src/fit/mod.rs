//! Fitting a model with linfa and writing it down as a [`Model`] that predicts without linfa.
//! Each algorithm's module does both; its tests check that the model file predicts what the
//! linfa model does.

mod linear;
mod logistic;
mod scale;
mod tree;

use crate::failure::Failed;
use crate::prepare::{Labels, Prepared};
use crate::spec::Params;
use ciclo_model::Algorithm;
use ciclo_model::{FORMAT, Linear, Model, Tree};
use ndarray::Array1;

/// What an algorithm contributes to the model.
pub(crate) enum Body {
    Linear(Linear),
    Tree(Tree),
}

/// What the model records besides its parameters.
pub(crate) struct Header<'a> {
    pub algorithm: Algorithm,
    pub target: &'a str,
    pub features: &'a [String],
    pub params: &'a Params,
    pub dataset_version: &'a str,
}

/// Fits `header.algorithm` on the training rows.
pub(crate) fn fit(prepared: &Prepared, header: &Header) -> Result<Model, Failed> {
    let params = header.params;
    let body = match (header.algorithm, &prepared.train.y) {
        (Algorithm::LinearRegression, Labels::Numbers(y)) => {
            Body::Linear(linear::fit(&prepared.train.x, y)?)
        }
        (Algorithm::LogisticRegression, Labels::Classes(y)) => {
            Body::Linear(logistic::fit(&prepared.train.x, y, prepared.classes.len(), params)?.0)
        }
        (Algorithm::DecisionTree, Labels::Classes(y)) => {
            Body::Tree(tree::fit(&prepared.train.x, y, prepared.classes.len(), params)?.0)
        }
        (algorithm, _) => unreachable!("the table reads a target fit for {algorithm:?}"),
    };
    let (linear, tree) = match body {
        Body::Linear(l) => (Some(l), None),
        Body::Tree(t) => (None, Some(t)),
    };
    let model = Model {
        format: FORMAT.into(),
        algorithm: header.algorithm,
        target: header.target.into(),
        features: header.features.to_vec(),
        classes: prepared.classes.clone(),
        linear,
        tree,
        params: params.effective(header.algorithm),
        dataset_version: header.dataset_version.into(),
    };
    model
        .check()
        .map_err(|e| Failed::training(format!("the fitted model is unusable: {e}")))?;
    Ok(model)
}

/// linfa's errors and panics (it asserts on shapes) as a failed fit, never a crash.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, Failed> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Failed::training(format!("{what}: {e}"))),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            Err(Failed::training(format!("{what} stopped: {message}")))
        }
    }
}

/// The number of each class among `y`.
fn class_counts(y: &Array1<usize>, n_classes: usize) -> Vec<usize> {
    let mut counts = vec![0; n_classes];
    for k in y {
        counts[*k] += 1;
    }
    counts
}

#[cfg(test)]
pub(crate) mod testdata {
    //! Small learnable datasets, generated from a fixed seed.

    use crate::split::splitmix64;
    use ndarray::{Array1, Array2};

    /// Uniform numbers in [0, 1) from a seed.
    pub struct Numbers(u64);

    impl Numbers {
        pub fn new(seed: u64) -> Self {
            Self(seed)
        }

        pub fn uniform(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(1);
            (splitmix64(self.0) >> 11) as f64 / (1u64 << 53) as f64
        }

        /// A standard normal number (Box–Muller).
        pub fn normal(&mut self) -> f64 {
            let (u, v) = (self.uniform().max(1e-300), self.uniform());
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        }
    }

    /// `n` points of `k` classes around well-separated centres in two dimensions, the second
    /// feature on a scale a thousand times the first.
    pub fn blobs(n: usize, k: usize, seed: u64) -> (Array2<f64>, Array1<usize>) {
        let mut r = Numbers::new(seed);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let class = i % k;
            let angle = class as f64 / k as f64 * std::f64::consts::TAU;
            x.push(4.0 * angle.cos() + r.normal() * 0.5);
            x.push(1000.0 * (4.0 * angle.sin() + r.normal() * 0.5));
            y.push(class);
        }
        (Array2::from_shape_vec((n, 2), x).unwrap(), Array1::from(y))
    }
}
