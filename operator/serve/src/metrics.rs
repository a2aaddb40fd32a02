//! Prometheus metrics, prefixed `ciclo_serve_`: requests by route and status, a latency
//! histogram, rows predicted, whether the model is ready, and running statistics of every
//! input the model has (count, sum, min, max and a histogram), so what is served can be
//! compared with what the model was trained on. Inputs are labelled only with the loaded
//! model's own input names: a request never creates a label.

use crate::batch_histogram::BatchHistogram;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    /// The route's template (`/v2/models/{name}/infer`, `/v1/models/{name}:predict`), or
    /// `unmatched`.
    pub route: String,
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct InputLabel {
    pub input: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ModelLabels {
    pub name: String,
    pub version: String,
    pub format: String,
    pub digest: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Request latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Input value buckets: 1-2-5 steps from 0.01 to 10⁴ on both sides of 0. A fixed grid any
/// model's inputs fall on, and that a training profile's quantile sketch can be read at too.
pub(crate) fn input_buckets() -> Vec<f64> {
    let positive: Vec<f64> = (-2..4)
        .flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(e)))
        .chain([1e4])
        .collect();
    let mut all: Vec<f64> = positive.iter().rev().map(|v| -v).collect();
    all.push(0.0);
    all.extend(positive);
    all
}

pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabel, Histogram>,
    pub predictions: Counter,
    pub ready: Gauge,
    model: Family<ModelLabels, Gauge>,
    input_value: Family<InputLabel, BatchHistogram>,
    input_min: Family<InputLabel, FloatGauge>,
    input_max: Family<InputLabel, FloatGauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ciclo_serve");
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(LATENCY_BUCKETS)
        });
        let predictions = Counter::default();
        let ready = Gauge::default();
        let model = Family::<ModelLabels, Gauge>::default();
        let input_value = Family::<InputLabel, BatchHistogram>::new_with_constructor(|| {
            BatchHistogram::new(input_buckets())
        });
        let input_min = Family::<InputLabel, FloatGauge>::default();
        let input_max = Family::<InputLabel, FloatGauge>::default();
        registry.register(
            "requests",
            "Requests answered, by route (a path template, or a gRPC method's path) and HTTP status code (for gRPC, the status its answer stands for)",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "How long answering a request took, by route",
            duration.clone(),
        );
        registry.register(
            "predictions",
            "Rows predicted (each instance of a batch counts)",
            predictions.clone(),
        );
        registry.register(
            "model_ready",
            "1 once the model is loaded and verified, until draining starts",
            ready.clone(),
        );
        registry.register(
            "model_info",
            "The model served: name, version, format and digest",
            model.clone(),
        );
        registry.register(
            "input_value",
            "Values received per model input (sum / count is the mean)",
            input_value.clone(),
        );
        registry.register(
            "input_min",
            "The least value received per model input",
            input_min.clone(),
        );
        registry.register(
            "input_max",
            "The greatest value received per model input",
            input_max.clone(),
        );
        Self {
            registry,
            requests,
            duration,
            predictions,
            ready,
            model,
            input_value,
            input_min,
            input_max,
        }
    }
}

impl Metrics {
    /// Counts and times one answer: `route` (a path template, or a gRPC method's path) and the
    /// HTTP `code` it gave or stands for.
    pub fn record(&self, route: String, code: u16, took: std::time::Duration) {
        self.duration
            .get_or_create(&RouteLabel {
                route: route.clone(),
            })
            .observe(took.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels { route, code })
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }

    /// Records the loaded model and makes the statistics of its inputs (each histogram
    /// shown from the start, with a zero count).
    pub fn model_loaded(&self, labels: ModelLabels, inputs: &[String]) -> InputStats {
        self.model.get_or_create(&labels).set(1);
        InputStats {
            inputs: inputs
                .iter()
                .map(|name| {
                    let label = InputLabel {
                        input: name.clone(),
                    };
                    InputStat {
                        values: self.input_value.get_or_create(&label).clone(),
                        min: self.input_min.clone(),
                        max: self.input_max.clone(),
                        bounds: Mutex::new(None),
                        label,
                    }
                })
                .collect(),
        }
    }
}

/// Running statistics of each model input, by the input's position in the model.
pub(crate) struct InputStats {
    inputs: Vec<InputStat>,
}

struct InputStat {
    label: InputLabel,
    values: BatchHistogram,
    min: Family<InputLabel, FloatGauge>,
    max: Family<InputLabel, FloatGauge>,
    /// The least and greatest so far; the gauges exist only once a value has been seen, so
    /// an unseen input shows no made-up 0.
    bounds: Mutex<Option<(f64, f64)>>,
}

impl InputStats {
    /// Records the values of input `index` of one request (NaN and infinities are skipped:
    /// they would poison the sum).
    pub fn observe(&self, index: usize, values: impl IntoIterator<Item = f64>) {
        let Some(stat) = self.inputs.get(index) else {
            return;
        };
        let seen = stat.values.observe_all(values);
        if seen.count == 0 {
            return;
        }
        let mut bounds = stat.bounds.lock().unwrap_or_else(|e| e.into_inner());
        let (min, max) = match *bounds {
            Some((min, max)) => (min.min(seen.least), max.max(seen.greatest)),
            None => (seen.least, seen.greatest),
        };
        // The gauges change only with the bounds, which soon stop moving: most requests
        // touch neither.
        if *bounds != Some((min, max)) {
            *bounds = Some((min, max));
            stat.min.get_or_create(&stat.label).set(min);
            stat.max.get_or_create(&stat.label).set(max);
        }
    }
}

/// The route of `GET /v1/models/{name}` and `POST /v1/models/{name}:predict`.
pub(crate) const V1_TARGET: &str = "/v1/models/{target}";
const V1_PREDICT: &str = "/v1/models/{name}:predict";
const V1_STATUS: &str = "/v1/models/{name}";

/// Counts and times every request by its route's template and status code.
pub(crate) async fn track(
    State(metrics): State<Arc<Metrics>>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let route = match matched.as_ref().map(MatchedPath::as_str) {
        // One route serves both v1 verbs: labelled apart, so `:predict` is told from a
        // readiness check.
        Some(V1_TARGET) if request.method() == Method::POST => V1_PREDICT.to_string(),
        Some(V1_TARGET) => V1_STATUS.to_string(),
        Some(route) => route.to_string(),
        None => "unmatched".into(),
    };
    let start = Instant::now();
    let response = next.run(request).await;
    metrics.record(route, response.status().as_u16(), start.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_buckets_are_ascending_and_symmetric() {
        let b = input_buckets();
        assert!(b.windows(2).all(|w| w[0] < w[1]), "{b:?}");
        assert_eq!(b.len(), 39);
        assert_eq!((b[0], b[19], b[38]), (-1e4, 0.0, 1e4));
    }

    #[test]
    fn input_statistics_keep_the_extremes_and_skip_non_finite_values() {
        let m = Metrics::default();
        let stats = m.model_loaded(
            ModelLabels {
                name: "m".into(),
                version: "1".into(),
                format: "onnx".into(),
                digest: "blake3:00".into(),
            },
            &["a".into(), "b".into()],
        );
        stats.observe(0, [3.0, -1.5, f64::NAN]);
        stats.observe(0, [2.0]);
        stats.observe(7, [1.0]);
        let text = m.encode();
        assert!(
            text.contains("ciclo_serve_input_min{input=\"a\"} -1.5"),
            "{text}"
        );
        assert!(
            text.contains("ciclo_serve_input_max{input=\"a\"} 3.0"),
            "{text}"
        );
        assert!(
            text.contains("ciclo_serve_input_value_count{input=\"a\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("ciclo_serve_input_value_sum{input=\"a\"} 3.5"),
            "{text}"
        );
        assert!(
            text.contains("ciclo_serve_input_value_count{input=\"b\"} 0"),
            "{text}"
        );
        assert!(
            !text.contains("ciclo_serve_input_min{input=\"b\"}"),
            "{text}"
        );
    }
}
