//! Logistic regression with linfa-logistic: binary for two classes, multinomial for more.
//! Fitted on standardized features (see `scale`), written on the raw ones.

use super::scale::Standardizer;
use super::{class_counts, guarded};
use crate::failure::Failed;
use crate::spec::Params;
use ciclo_model::{Linear, Link};
// Views: the rows are not copied again for linfa.
use linfa::DatasetBase;
use linfa::traits::Fit as _;
use linfa_logistic::{
    FittedLogisticRegression, LogisticRegression, MultiFittedLogisticRegression,
    MultiLogisticRegression,
};
use ndarray::{Array1, Array2};

/// The linfa model, kept for comparing its predictions with the model file's.
#[cfg_attr(not(test), allow(dead_code))] // Read by the tests only.
pub(crate) enum Fitted {
    Binary(FittedLogisticRegression<f64, usize>),
    Multi(MultiFittedLogisticRegression<f64, usize>),
}

/// Fits on rows `x` with class indices `y` (of `n_classes` classes, each present).
pub(crate) fn fit(
    x: &Array2<f64>,
    y: &Array1<usize>,
    n_classes: usize,
    params: &Params,
) -> Result<(Linear, Fitted, Standardizer), Failed> {
    if n_classes < 2 {
        return Err(Failed::training(format!(
            "the training rows have {n_classes} class: a logistic regression needs two or more"
        )));
    }
    let scaler = Standardizer::fit(x);
    let dataset = DatasetBase::new(scaler.apply(x), y.view());
    if n_classes == 2 {
        let fitted = guarded("the logistic regression", || {
            LogisticRegression::default()
                .alpha(params.alpha)
                .max_iterations(params.max_iterations)
                .fit(&dataset)
                .map_err(|e| e.to_string())
        })?;
        // linfa makes the more frequent class its positive one; the model file's is always
        // the greater label, classes[1]. Negating the logit swaps the two exactly.
        let sign = if fitted.labels().pos.class == 1 {
            1.0
        } else {
            -1.0
        };
        let w: Vec<f64> = fitted.params().iter().map(|w| sign * w).collect();
        let (w, b) = scaler.fold(&w, sign * fitted.intercept());
        let linear = Linear {
            link: Link::Logistic,
            coefficients: vec![w],
            intercepts: vec![b],
        };
        Ok((linear, Fitted::Binary(fitted), scaler))
    } else {
        let fitted = guarded("the multinomial logistic regression", || {
            MultiLogisticRegression::default()
                .alpha(params.alpha)
                .max_iterations(params.max_iterations)
                .fit(&dataset)
                .map_err(|e| e.to_string())
        })?;
        // linfa's classes are the distinct training labels, sorted: 0..n_classes here, as
        // every class index occurs among the training rows.
        debug_assert!(class_counts(y, n_classes).iter().all(|c| *c > 0));
        let mut coefficients = vec![Vec::new(); n_classes];
        let mut intercepts = vec![0.0; n_classes];
        for (column, class) in fitted.classes().iter().enumerate() {
            let w: Vec<f64> = fitted.params().column(column).to_vec();
            let (w, b) = scaler.fold(&w, fitted.intercept()[column]);
            coefficients[*class] = w;
            intercepts[*class] = b;
        }
        let linear = Linear {
            link: Link::Softmax,
            coefficients,
            intercepts,
        };
        Ok((linear, Fitted::Multi(fitted), scaler))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::testdata::blobs;
    use ciclo_model::classify;
    use ciclo_model::{FORMAT, Model};
    use linfa::traits::Predict as _;

    fn model(linear: Linear, n_classes: usize) -> Model {
        let json = serde_json::json!({
            "format": FORMAT,
            "algorithm": "LogisticRegression",
            "target": "y",
            "features": ["a", "b"],
            "classes": (0..n_classes).collect::<Vec<_>>(),
            "linear": linear,
            "datasetVersion": "v",
        });
        // Through the file's bytes, as `ciclo serve` will read it.
        Model::from_json(&serde_json::to_vec(&json).unwrap()).unwrap()
    }

    fn check_against_linfa(n_classes: usize) {
        let (x, y) = blobs(300, n_classes, 1);
        let (vx, _) = blobs(100, n_classes, 2);
        let (linear, fitted, scaler) = fit(&x, &y, n_classes, &Params::default()).unwrap();
        let model = model(linear, n_classes);
        let z = scaler.apply(&vx);
        let (labels, probabilities): (Array1<usize>, Vec<Vec<f64>>) = match &fitted {
            // linfa's probability is of its positive class, which may be either.
            Fitted::Binary(f) => (
                f.predict(&z),
                f.predict_probabilities(&z)
                    .iter()
                    .map(|p| match f.labels().pos.class {
                        1 => vec![1.0 - p, *p],
                        _ => vec![*p, 1.0 - p],
                    })
                    .collect(),
            ),
            Fitted::Multi(f) => (
                f.predict(&z),
                f.predict_probabilities(&z)
                    .rows()
                    .into_iter()
                    .map(|r| r.to_vec())
                    .collect(),
            ),
        };
        for (i, row) in vx.rows().into_iter().enumerate() {
            let (class, p) = classify(&model, row.as_slice().unwrap());
            assert_eq!(class, labels[i], "row {i}");
            for (a, b) in p.iter().zip(&probabilities[i]) {
                assert!(
                    (a - b).abs() < 1e-9,
                    "row {i}: {p:?} {:?}",
                    probabilities[i]
                );
            }
        }
        let right = labels
            .iter()
            .zip(blobs(100, n_classes, 2).1)
            .filter(|(a, b)| **a == *b);
        assert!(right.count() > 90, "the blobs are learnable");
    }

    #[test]
    fn the_binary_model_file_predicts_what_linfa_does() {
        check_against_linfa(2);
    }

    #[test]
    fn the_multinomial_model_file_predicts_what_linfa_does() {
        check_against_linfa(4);
    }

    #[test]
    fn the_positive_class_is_the_greater_label_even_when_it_is_rarer() {
        // Class 1 is a quarter of the rows, so linfa takes class 0 as its positive class.
        let (x, y) = blobs(400, 4, 3);
        let y = y.mapv(|k| usize::from(k == 1));
        let (linear, fitted, _) = fit(&x, &y, 2, &Params::default()).unwrap();
        let Fitted::Binary(f) = &fitted else { panic!() };
        assert_eq!(f.labels().pos.class, 0);
        let model = model(linear, 2);
        let (vx, vy) = blobs(40, 4, 4);
        for (row, k) in vx.rows().into_iter().zip(vy) {
            let (class, p) = classify(&model, row.as_slice().unwrap());
            assert_eq!(class, usize::from(k == 1));
            assert_eq!(p[1] >= 0.5, k == 1);
        }
    }

    #[test]
    fn one_class_is_not_enough() {
        let (x, _) = blobs(10, 2, 1);
        let y = Array1::zeros(10);
        let err = fit(&x, &y, 1, &Params::default()).err().unwrap();
        assert!(err.message.contains("two or more"), "{err:?}");
    }
}
