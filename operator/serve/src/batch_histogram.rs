//! A Prometheus histogram that takes a request's values at once. prometheus-client's own takes
//! a write lock and scans its buckets for every value; an input of a batch is hundreds of
//! values per request, so here each value's bucket is found by binary search and all of them
//! are added under one lock. Encoded as prometheus-client's histogram is.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub(crate) struct BatchHistogram {
    /// Upper bounds, ascending (the `+Inf` bucket is implied).
    bounds: Arc<[f64]>,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    sum: f64,
    count: u64,
    /// Per bucket (not cumulative); the last is `+Inf`.
    counts: Vec<u64>,
}

/// What one batch of values added: how many, and their least and greatest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Observed {
    pub count: u64,
    pub least: f64,
    pub greatest: f64,
}

impl BatchHistogram {
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> Self {
        let bounds: Arc<[f64]> = bounds.into_iter().collect();
        let counts = vec![0; bounds.len() + 1];
        Self {
            bounds,
            inner: Arc::new(Mutex::new(Inner {
                sum: 0.0,
                count: 0,
                counts,
            })),
        }
    }

    /// Adds the finite `values` (NaN and infinities would poison the sum) in one go.
    pub fn observe_all(&self, values: impl IntoIterator<Item = f64>) -> Observed {
        let mut seen = Observed {
            count: 0,
            least: f64::INFINITY,
            greatest: f64::NEG_INFINITY,
        };
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for v in values.into_iter().filter(|v| v.is_finite()) {
            // Prometheus buckets count values at or under their bound.
            let bucket = self.bounds.partition_point(|b| *b < v);
            inner.counts[bucket] += 1;
            inner.sum += v;
            seen.count += 1;
            seen.least = seen.least.min(v);
            seen.greatest = seen.greatest.max(v);
        }
        inner.count += seen.count;
        seen
    }
}

impl TypedMetric for BatchHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for BatchHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = {
            let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let buckets: Vec<(f64, u64)> = self
                .bounds
                .iter()
                .copied()
                .chain([f64::MAX])
                .zip(inner.counts.iter().copied())
                .collect();
            (inner.sum, inner.count, buckets)
        };
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    fn text(
        name: &str,
        metric: impl EncodeMetric + TypedMetric + Clone + Send + Sync + std::fmt::Debug + 'static,
    ) -> String {
        let mut registry = Registry::default();
        registry.register(name, "values", metric);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn it_encodes_what_prometheus_clients_histogram_does_for_the_same_values() {
        let bounds = [-1.0, 0.0, 0.5, 2.0];
        let values = [
            -3.0,
            -1.0,
            0.0,
            0.25,
            0.5,
            0.7,
            2.0,
            9.0,
            f64::NAN,
            f64::INFINITY,
        ];
        let theirs = Histogram::new(bounds);
        values
            .iter()
            .filter(|v| v.is_finite())
            .for_each(|v| theirs.observe(*v));
        let ours = BatchHistogram::new(bounds);
        let seen = ours.observe_all(values);
        assert_eq!(
            seen,
            Observed {
                count: 8,
                least: -3.0,
                greatest: 9.0
            }
        );
        assert_eq!(text("v", ours), text("v", theirs));
    }
}
