//! Standardizing features before a logistic regression: L-BFGS converges in its iteration
//! budget on features of any scale (a column in the thousands beside one in [0, 1] otherwise
//! stalls it), and the L2 penalty `alpha` weighs every feature alike. The scaling is folded
//! back into the coefficients, so the model file works on the raw values.

use ndarray::{Array1, Array2, Axis};

/// Each feature's mean and standard deviation over the training rows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Standardizer {
    mean: Array1<f64>,
    /// The standard deviation, or 1 for a constant column (which then only shifts).
    scale: Array1<f64>,
}

impl Standardizer {
    pub fn fit(x: &Array2<f64>) -> Self {
        let n = x.nrows().max(1) as f64;
        let mean = x.sum_axis(Axis(0)) / n;
        let scale = x
            .columns()
            .into_iter()
            .zip(&mean)
            .map(|(column, m)| {
                let sd = (column.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n).sqrt();
                if sd > 0.0 && sd.is_finite() { sd } else { 1.0 }
            })
            .collect();
        Self { mean, scale }
    }

    /// `(x - mean) / scale`, column by column.
    pub fn apply(&self, x: &Array2<f64>) -> Array2<f64> {
        (x - &self.mean) / &self.scale
    }

    /// The coefficients and intercept on raw features of a linear function `w·z + b` of the
    /// standardized ones: `w·((x - m) / s) + b = (w / s)·x + (b - Σ w m / s)`.
    pub fn fold(&self, w: &[f64], b: f64) -> (Vec<f64>, f64) {
        let raw: Vec<f64> = w.iter().zip(&self.scale).map(|(w, s)| w / s).collect();
        let shift: f64 = raw.iter().zip(&self.mean).map(|(w, m)| w * m).sum();
        (raw, b - shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn folded_coefficients_give_the_same_value_on_raw_features() {
        let x = array![[1.0, 100.0, 5.0], [3.0, 300.0, 5.0], [5.0, 200.0, 5.0]];
        let s = Standardizer::fit(&x);
        let z = s.apply(&x);
        // Standardized columns have mean 0 and deviation 1; the constant one is only shifted.
        assert!(z.column(0).sum().abs() < 1e-12);
        assert!((z.column(1).mapv(|v| v * v).sum() / 3.0 - 1.0).abs() < 1e-12);
        assert_eq!(z.column(2).to_vec(), vec![0.0; 3]);
        let (w, b) = ([0.5, -2.0, 4.0], 0.25);
        let (raw, raw_b) = s.fold(&w, b);
        for (xr, zr) in x.rows().into_iter().zip(z.rows()) {
            let on_z: f64 = zr.iter().zip(&w).map(|(z, w)| z * w).sum::<f64>() + b;
            let on_x: f64 = xr.iter().zip(&raw).map(|(x, w)| x * w).sum::<f64>() + raw_b;
            assert!((on_z - on_x).abs() < 1e-12, "{on_z} {on_x}");
        }
    }
}
