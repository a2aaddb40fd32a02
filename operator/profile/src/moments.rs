//! Exact count, min, max, mean and variance of a numeric column, mergeable across batches,
//! files and row groups.

/// Lanes the batch kernels keep apart so that the compiler can vectorise them (float
/// addition is not associative, so it will not reorder a single running sum by itself).
const LANES: usize = 8;

/// Moments of the finite values seen so far.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Moments {
    pub n: u64,
    pub mean: f64,
    /// Sum of squared distances from the mean (Welford's M2).
    pub m2: f64,
    pub min: f64,
    pub max: f64,
}

impl Default for Moments {
    fn default() -> Self {
        Moments {
            n: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Moments {
    /// Adds a batch of values; non-finite ones (NaN marks a null) are left out. Two passes
    /// over the batch (sum, then squared distances from the batch mean) keep the variance
    /// accurate where a one-pass sum of squares would cancel catastrophically.
    pub fn add(&mut self, values: &[f64]) {
        let mut count = [0u64; LANES];
        let mut sum = [0.0f64; LANES];
        let mut min = [f64::INFINITY; LANES];
        let mut max = [f64::NEG_INFINITY; LANES];
        let chunks = values.chunks_exact(LANES);
        let rest = chunks.remainder();
        for chunk in chunks {
            for lane in 0..LANES {
                let x = chunk[lane];
                let finite = x.is_finite();
                count[lane] += u64::from(finite);
                sum[lane] += if finite { x } else { 0.0 };
                min[lane] = min[lane].min(if finite { x } else { f64::INFINITY });
                max[lane] = max[lane].max(if finite { x } else { f64::NEG_INFINITY });
            }
        }
        for (lane, &x) in rest.iter().enumerate() {
            if x.is_finite() {
                count[lane] += 1;
                sum[lane] += x;
                min[lane] = min[lane].min(x);
                max[lane] = max[lane].max(x);
            }
        }
        let n: u64 = count.iter().sum();
        if n == 0 {
            return;
        }
        let mean = sum.iter().sum::<f64>() / n as f64;
        let mut m2 = [0.0f64; LANES];
        let chunks = values.chunks_exact(LANES);
        let rest = chunks.remainder();
        for chunk in chunks {
            for lane in 0..LANES {
                let x = chunk[lane];
                let d = if x.is_finite() { x - mean } else { 0.0 };
                m2[lane] += d * d;
            }
        }
        for &x in rest {
            if x.is_finite() {
                m2[0] += (x - mean) * (x - mean);
            }
        }
        self.merge(&Moments {
            n,
            mean,
            m2: m2.iter().sum(),
            min: min.iter().copied().fold(f64::INFINITY, f64::min),
            max: max.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        });
    }

    /// Combines two sets of moments (Chan, Golub and LeVeque's pairwise update).
    pub fn merge(&mut self, other: &Moments) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = other.clone();
            return;
        }
        let n = self.n + other.n;
        let delta = other.mean - self.mean;
        let (a, b) = (self.n as f64, other.n as f64);
        self.mean += delta * b / n as f64;
        self.m2 += other.m2 + delta * delta * a * b / n as f64;
        self.n = n;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The sample standard deviation (n - 1 in the denominator, as pandas and Polars report
    /// it); `None` below two values.
    pub fn std(&self) -> Option<f64> {
        (self.n >= 2).then(|| (self.m2 / (self.n - 1) as f64).sqrt())
    }

    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then_some(self.mean)
    }

    pub fn min(&self) -> Option<f64> {
        (self.n > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<f64> {
        (self.n > 0).then_some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_of_a_small_batch_match_hand_computed_values() {
        let mut m = Moments::default();
        m.add(&[
            2.0,
            4.0,
            4.0,
            4.0,
            5.0,
            5.0,
            7.0,
            9.0,
            f64::NAN,
            f64::INFINITY,
        ]);
        assert_eq!(m.n, 8);
        assert_eq!(m.mean(), Some(5.0));
        assert_eq!(m.min(), Some(2.0));
        assert_eq!(m.max(), Some(9.0));
        // Squared distances sum to 32; the sample variance is 32 / 7.
        assert!((m.std().unwrap() - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn merged_batches_equal_one_batch() {
        let values: Vec<f64> = (0..1000)
            .map(|i| ((i * 7919) % 1013) as f64 * 0.5)
            .collect();
        let mut whole = Moments::default();
        whole.add(&values);
        let mut parts = Moments::default();
        for chunk in values.chunks(37) {
            let mut part = Moments::default();
            part.add(chunk);
            parts.merge(&part);
        }
        assert_eq!(parts.n, whole.n);
        assert!((parts.mean - whole.mean).abs() < 1e-9);
        assert!((parts.m2 - whole.m2).abs() / whole.m2 < 1e-12);
        assert_eq!((parts.min, parts.max), (whole.min, whole.max));
    }

    #[test]
    fn variance_survives_a_large_offset() {
        let mut m = Moments::default();
        m.add(&[1e9 + 1.0, 1e9 + 2.0, 1e9 + 3.0]);
        assert_eq!(m.std(), Some(1.0));
    }

    #[test]
    fn no_values_have_no_moments() {
        let mut m = Moments::default();
        m.add(&[f64::NAN]);
        assert_eq!((m.n, m.mean(), m.min(), m.std()), (0, None, None, None));
        m.add(&[3.0]);
        assert_eq!((m.mean(), m.std()), (Some(3.0), None));
    }
}
