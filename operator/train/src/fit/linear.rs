//! Ordinary least squares with linfa-linear (QR, pure Rust). The solution does not depend on
//! the features' scale, so they are used as they are.

use super::guarded;
use crate::failure::Failed;
use ciclo_model::{Linear, Link};
// Views: the rows are not copied again for linfa.
use linfa::DatasetBase;
use linfa::traits::Fit as _;
use linfa_linear::{FittedLinearRegression, LinearRegression};
use ndarray::{Array1, Array2};

/// Fits `y ≈ w·x + b` on the training rows.
pub(crate) fn fit(x: &Array2<f64>, y: &Array1<f64>) -> Result<Linear, Failed> {
    fit_linfa(x, y).map(|(linear, _)| linear)
}

fn fit_linfa(
    x: &Array2<f64>,
    y: &Array1<f64>,
) -> Result<(Linear, FittedLinearRegression<f64>), Failed> {
    if x.nrows() <= x.ncols() {
        return Err(Failed::training(format!(
            "{} training rows cannot determine {} coefficients and an intercept",
            x.nrows(),
            x.ncols()
        )));
    }
    let dataset = DatasetBase::new(x.view(), y.view());
    let fitted = guarded("the linear regression", || {
        LinearRegression::new()
            .fit(&dataset)
            .map_err(|e| format!("{e} (are some features copies or multiples of others?)"))
    })?;
    let linear = Linear {
        link: Link::Identity,
        coefficients: vec![fitted.params().to_vec()],
        intercepts: vec![fitted.intercept()],
    };
    if linear.coefficients[0]
        .iter()
        .chain(&linear.intercepts)
        .any(|v| !v.is_finite())
    {
        return Err(Failed::training(
            "the least squares have no unique solution: are some features constant or copies of others?",
        ));
    }
    Ok((linear, fitted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::testdata::Numbers;
    use ciclo_model::{FORMAT, Model};
    use ciclo_model::{Prediction, predict};
    use linfa::traits::Predict as _;

    #[test]
    fn the_model_file_predicts_what_linfa_does() {
        let mut r = Numbers::new(9);
        let n = 200;
        let x = Array2::from_shape_fn((n, 3), |_| r.uniform() * 10.0);
        let y = Array1::from_shape_fn(n, |i| {
            3.0 * x[[i, 0]] - 2.0 * x[[i, 1]] + 0.5 * x[[i, 2]] + 2.0 + r.normal() * 0.1
        });
        let (linear, fitted) = fit_linfa(&x, &y).unwrap();
        assert!((linear.coefficients[0][0] - 3.0).abs() < 0.05, "{linear:?}");
        assert!((linear.intercepts[0] - 2.0).abs() < 0.2, "{linear:?}");
        let json = serde_json::json!({
            "format": FORMAT, "algorithm": "LinearRegression", "target": "y",
            "features": ["a", "b", "c"], "linear": linear,
        });
        let model = Model::from_json(&serde_json::to_vec(&json).unwrap()).unwrap();
        let rows: Vec<Vec<f64>> = x.rows().into_iter().map(|r| r.to_vec()).collect();
        let expected = fitted.predict(&x);
        for (got, want) in predict(&model, &rows).unwrap().iter().zip(&expected) {
            let Prediction::Value(got) = got else {
                panic!()
            };
            assert!((got - want).abs() < 1e-9, "{got} {want}");
        }
    }

    #[test]
    fn collinear_features_fail_with_a_hint() {
        let x = Array2::from_shape_fn((20, 2), |(i, _)| i as f64);
        let y = Array1::from_shape_fn(20, |i| 2.0 * i as f64 + 1.0);
        let err = fit(&x, &y).unwrap_err();
        assert!(err.message.contains("copies or multiples"), "{err:?}");
    }

    #[test]
    fn fewer_rows_than_coefficients_fail_with_a_reason() {
        let x = Array2::zeros((2, 3));
        let err = fit(&x, &Array1::zeros(2)).unwrap_err();
        assert!(err.message.contains("cannot determine"), "{err:?}");
    }
}
