//! Prometheus metrics, prefixed `ciclo_serve_`: requests by route and status, a latency
//! histogram, rows predicted, whether the model is ready, and the statistics of every input
//! the model has ([`InputStats`]).

use crate::input_stats::InputStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// A route's template (`/v2/models/{name}/infer`, `/v1/models/{name}:predict`), a gRPC
/// method's path, or `unmatched`: one of a fixed set, so counting a request allocates nothing.
pub(crate) type Route = &'static str;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub route: Route,
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabel {
    pub route: Route,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ModelLabels {
    pub name: String,
    pub version: String,
    pub format: String,
    pub digest: String,
}

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
    inputs: Arc<InputStats>,
    pub capture: crate::capture::Counters,
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
        let inputs = Arc::new(InputStats::new(input_buckets()));
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
        registry.register_collector(Box::new(inputs.clone()));
        let capture = crate::capture::Counters::default();
        for (name, help, counter) in [
            (
                "capture_requests",
                "Requests queued to be captured",
                &capture.captured,
            ),
            (
                "capture_labels",
                "Rows whose labels were queued to be written (POST /v2/models/{name}/feedback)",
                &capture.labels,
            ),
            (
                "capture_dropped_requests",
                "Requests picked for capture but dropped: the queue was full, or the server stopping",
                &capture.dropped,
            ),
            ("capture_files", "Capture files written", &capture.files),
            (
                "capture_pruned_files",
                "Capture files deleted at the end of their retention period",
                &capture.pruned,
            ),
            (
                "capture_failed_files",
                "Capture files that could not be written (their rows are lost)",
                &capture.failed,
            ),
        ] {
            registry.register(name, help, counter.clone());
        }
        Self {
            registry,
            requests,
            duration,
            predictions,
            ready,
            model,
            inputs,
            capture,
        }
    }
}

impl Metrics {
    /// Counts and times one answer: `route` (a path template, or a gRPC method's path) and the
    /// HTTP `code` it gave or stands for.
    pub fn record(&self, route: Route, code: u16, took: std::time::Duration) {
        self.duration
            .get_or_create(&RouteLabel { route })
            .observe(took.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels { route, code })
            .inc();
    }

    /// `route`'s latency histogram, to observe without the family's lookup.
    pub fn duration_of(&self, route: Route) -> Histogram {
        self.duration.get_or_create(&RouteLabel { route }).clone()
    }

    /// `route`'s count of answers with `code`, to count without the family's lookup.
    pub fn requests_of(&self, route: Route, code: u16) -> Counter {
        self.requests
            .get_or_create(&RequestLabels { route, code })
            .clone()
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }

    /// Records the loaded model and names its inputs' statistics (each histogram shown from
    /// the start, with a zero count), which its requests are recorded in.
    pub fn model_loaded(&self, labels: ModelLabels, inputs: &[String]) -> Arc<InputStats> {
        self.model.get_or_create(&labels).set(1);
        self.inputs.name_inputs(inputs);
        self.inputs.clone()
    }
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
    fn input_statistics_are_shown_once_the_model_loads_under_the_prefix() {
        let m = Metrics::default();
        assert!(!m.encode().contains("input_value"), "{}", m.encode());
        let stats = m.model_loaded(
            ModelLabels {
                name: "m".into(),
                version: "1".into(),
                format: "onnx".into(),
                digest: "blake3:00".into(),
            },
            &["a".into(), "b".into()],
        );
        stats.record(|r| r.add(0, [3.0, -1.5, f64::NAN]));
        stats.record(|r| r.add(0, [2.0]));
        let text = m.encode();
        for line in [
            "ciclo_serve_input_min{input=\"a\"} -1.5",
            "ciclo_serve_input_max{input=\"a\"} 3.0",
            "ciclo_serve_input_value_count{input=\"a\"} 3",
            "ciclo_serve_input_value_sum{input=\"a\"} 3.5",
            "ciclo_serve_input_value_count{input=\"b\"} 0",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(
            !text.contains("ciclo_serve_input_min{input=\"b\"}"),
            "{text}"
        );
    }

    #[test]
    fn every_serving_metric_the_grafana_dashboard_queries_is_one_the_server_exports() {
        // Every family, each with a series.
        let m = Metrics::default();
        m.record(
            "/v2/models/{name}/infer",
            200,
            std::time::Duration::from_millis(3),
        );
        m.model_loaded(
            ModelLabels {
                name: "m".into(),
                version: "1".into(),
                format: "onnx".into(),
                digest: "blake3:00".into(),
            },
            &[],
        );
        let text = m.encode();
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        let panels = ciclo_core::prometheus_names::dashboard_queries(include_str!(
            "../../../charts/ciclo/files/grafana-dashboard.json"
        ))
        .unwrap();
        let mut queried = std::collections::BTreeSet::new();
        for (title, queries) in panels {
            for family in queries
                .iter()
                .flat_map(|q| ciclo_core::prometheus_names::families(q, "ciclo_serve_"))
            {
                assert!(
                    families.contains(&family.as_str()),
                    "panel {title} queries {family}, which ciclo serve does not export ({families:?})"
                );
                queried.insert(family);
            }
        }
        for shown in [
            "ciclo_serve_requests",
            "ciclo_serve_request_duration_seconds",
            "ciclo_serve_model_info",
        ] {
            assert!(
                queried.contains(shown),
                "no panel shows {shown}: {queried:?}"
            );
        }
    }
}
