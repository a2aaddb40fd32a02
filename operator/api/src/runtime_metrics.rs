//! Where canary analysis reads a serving runtime's own metrics: a preset per known runtime
//! (`ciclo serve`, MLServer, Triton) and the names of any other, so the rollout logic never
//! depends on ciclo's server.
//!
//! A runtime is described by the Prometheus series that count its inference requests, the
//! series that count the failed ones, and the histogram (or summary) of their latency, each
//! chosen by name and by label values as PromQL's `=~` does: a fully anchored regular
//! expression, with a label the series does not have matching as the empty string.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How canary analysis reads your runtime's request counts, errors and latency.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.requests) == has(self.errors)").message("requests and errors are given together: the error ratio is errors over requests").field_path(".errors"))]
#[x_kube(validation = Rule::new("!has(self.preset) || self.preset != 'Custom' || has(self.requests)").message("the Custom preset names your runtime's request counters: give requests and errors").field_path(".requests"))]
pub struct RuntimeMetrics {
    /// Whose metric names to read: `Ciclo` (`ciclo serve`'s, the default), `MLServer`
    /// (`rest_server_*` on port 8082), `Triton` (`nv_inference_*` on port 8002), or `Custom`
    /// (only what `requests`, `errors` and `latency` name, on `runtime.port`). Fields given
    /// here replace the preset's.
    #[serde(default)]
    pub preset: MetricsPreset,
    /// The port of the metrics endpoint. Default: the preset's (`runtime.port` for `Ciclo`
    /// and `Custom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// The path of the metrics endpoint (Prometheus text format). Default: `/metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("path must start with /"))]
    pub path: Option<String>,
    /// The counters of the inference requests the analysis judges, summed (health probes and
    /// scrapes left out by their labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 8))]
    pub requests: Option<Vec<SeriesSelector>>,
    /// The counters of those requests that failed, summed: the error ratio is these over
    /// `requests`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 8))]
    pub errors: Option<Vec<SeriesSelector>>,
    /// Where the 99th-percentile latency comes from (for `analysis.maxP99LatencyMs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyMetric>,
}

/// Runtimes whose metric names ciclo knows.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MetricsPreset {
    /// `ciclo serve`: `ciclo_serve_requests_total` (label `code`) and
    /// `ciclo_serve_request_duration_seconds`, inference routes by label `route`.
    #[default]
    Ciclo,
    /// Seldon MLServer's REST server: `rest_server_requests_total` (label `status_code`) and
    /// `rest_server_request_duration_seconds`, inference paths by label `path`, on port 8082.
    #[serde(rename = "MLServer")]
    MlServer,
    /// NVIDIA Triton: `nv_inference_request_success` and `nv_inference_request_failure`
    /// (cancelled requests left out), latency from the summary `nv_inference_request_summary_us`
    /// (Triton's `--metrics-config summary_latencies=true`), on port 8002.
    Triton,
    /// Nothing preset: `requests` and `errors` name the counters.
    Custom,
}

/// Prometheus series chosen by metric name and label values.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SeriesSelector {
    /// The metric name as exposed (a counter's with its `_total`).
    #[schemars(length(max = 200))]
    #[x_kube(validation = Rule::new("self.matches('^[a-zA-Z_:][a-zA-Z0-9_:]*$')").message("name must be a Prometheus metric name"))]
    pub name: String,
    /// Label name → regular expression its value must match in full, as PromQL's `=~`; a
    /// label the series lacks matches as "".
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 8))]
    pub labels: BTreeMap<String, String>,
}

impl SeriesSelector {
    fn new(name: &str, labels: &[(&str, &str)]) -> Self {
        Self {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

/// A latency metric.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LatencyMetric {
    /// The metric's base name (a histogram's without `_bucket`).
    #[schemars(length(max = 200))]
    #[x_kube(validation = Rule::new("self.matches('^[a-zA-Z_:][a-zA-Z0-9_:]*$')").message("name must be a Prometheus metric name"))]
    pub name: String,
    /// `Histogram` (the p99 of each step's own requests, from its buckets) or `Summary` (the
    /// runtime's own `quantile="0.99"`, over the runtime's window, read at the step's end).
    #[serde(default, rename = "type")]
    pub type_: LatencyKind,
    /// The unit of its values (a histogram's bucket bounds).
    #[serde(default)]
    pub unit: TimeUnit,
    /// Label name → regular expression, as in `requests`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 8))]
    pub labels: BTreeMap<String, String>,
}

/// How a runtime exposes latency.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LatencyKind {
    #[default]
    Histogram,
    Summary,
}

/// A unit of time.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeUnit {
    #[default]
    Seconds,
    Milliseconds,
    Microseconds,
}

impl TimeUnit {
    /// `value` of this unit in seconds. (Divided by the units per second, which are exact,
    /// so 100 µs is 0.0001 s, not 0.00009999999999999999.)
    pub fn to_seconds(self, value: f64) -> f64 {
        match self {
            TimeUnit::Seconds => value,
            TimeUnit::Milliseconds => value / 1e3,
            TimeUnit::Microseconds => value / 1e6,
        }
    }
}

/// What the analysis reads, with the preset's defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsQuery {
    pub port: i32,
    pub path: String,
    pub requests: Vec<SeriesSelector>,
    pub errors: Vec<SeriesSelector>,
    pub latency: Option<LatencyMetric>,
}

impl MetricsQuery {
    /// Which counters count the requests, and where: `rest_server_requests_total on
    /// :8082/metrics`, for messages.
    pub fn counted_by(&self) -> String {
        let mut names: Vec<&str> = self.requests.iter().map(|s| s.name.as_str()).collect();
        names.dedup();
        format!("{} on :{}{}", names.join(" + "), self.port, self.path)
    }
}

/// `ciclo serve`'s and the workload contract's inference routes (REST's, and gRPC's method
/// path): a series without a `route` label counts too.
const CICLO_ROUTES: &str = "(.*/infer|.*:predict|.*/ModelInfer)?";
const FIVE_XX: &str = "5..";

impl MetricsPreset {
    /// The preset's names, served on `runtime_port` when the preset has no port of its own.
    pub fn query(self, runtime_port: i32) -> MetricsQuery {
        let path = "/metrics".to_string();
        match self {
            MetricsPreset::Ciclo => MetricsQuery {
                port: runtime_port,
                path,
                requests: vec![SeriesSelector::new(
                    "ciclo_serve_requests_total",
                    &[("route", CICLO_ROUTES)],
                )],
                errors: vec![SeriesSelector::new(
                    "ciclo_serve_requests_total",
                    &[("route", CICLO_ROUTES), ("code", FIVE_XX)],
                )],
                latency: Some(LatencyMetric {
                    name: "ciclo_serve_request_duration_seconds".into(),
                    type_: LatencyKind::Histogram,
                    unit: TimeUnit::Seconds,
                    labels: [("route".to_string(), CICLO_ROUTES.to_string())].into(),
                }),
            },
            // MLServer's REST middleware (starlette_exporter) labels each series with the
            // route's template, e.g. `/v2/models/{model_name}/infer`.
            MetricsPreset::MlServer => MetricsQuery {
                port: 8082,
                path,
                requests: vec![SeriesSelector::new(
                    "rest_server_requests_total",
                    &[("path", ".*/infer")],
                )],
                errors: vec![SeriesSelector::new(
                    "rest_server_requests_total",
                    &[("path", ".*/infer"), ("status_code", FIVE_XX)],
                )],
                latency: Some(LatencyMetric {
                    name: "rest_server_request_duration_seconds".into(),
                    type_: LatencyKind::Histogram,
                    unit: TimeUnit::Seconds,
                    labels: [("path".to_string(), ".*/infer".to_string())].into(),
                }),
            },
            // Triton counts every inference request once, as a success or a failure; since
            // 24.x failures carry a `reason`, and a request the client cancelled is the
            // client's doing.
            MetricsPreset::Triton => {
                let failed = SeriesSelector::new(
                    "nv_inference_request_failure",
                    &[("reason", "(|BACKEND|OTHER|REJECTED)")],
                );
                MetricsQuery {
                    port: 8002,
                    path,
                    requests: vec![
                        SeriesSelector::new("nv_inference_request_success", &[]),
                        failed.clone(),
                    ],
                    errors: vec![failed],
                    latency: Some(LatencyMetric {
                        name: "nv_inference_request_summary_us".into(),
                        type_: LatencyKind::Summary,
                        unit: TimeUnit::Microseconds,
                        labels: BTreeMap::new(),
                    }),
                }
            }
            MetricsPreset::Custom => MetricsQuery {
                port: runtime_port,
                path,
                requests: Vec::new(),
                errors: Vec::new(),
                latency: None,
            },
        }
    }
}

impl RuntimeMetrics {
    /// The preset with this object's fields in its place.
    pub fn query(&self, runtime_port: i32) -> MetricsQuery {
        let preset = self.preset.query(runtime_port);
        MetricsQuery {
            port: self.port.unwrap_or(preset.port),
            path: self.path.clone().unwrap_or(preset.path),
            requests: self.requests.clone().unwrap_or(preset.requests),
            errors: self.errors.clone().unwrap_or(preset.errors),
            latency: self.latency.clone().or(preset.latency),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_given_replace_the_presets_and_the_rest_stays() {
        let m: RuntimeMetrics = serde_yaml::from_str(
            "{preset: MLServer, port: 9090, latency: {name: my_latency_ms, unit: Milliseconds}}",
        )
        .unwrap();
        let q = m.query(8080);
        assert_eq!((q.port, q.path.as_str()), (9090, "/metrics"));
        assert_eq!(q.requests[0].name, "rest_server_requests_total");
        let latency = q.latency.unwrap();
        assert_eq!(
            (latency.name.as_str(), latency.type_, latency.unit),
            (
                "my_latency_ms",
                LatencyKind::Histogram,
                TimeUnit::Milliseconds
            )
        );
        // Ciclo and Custom serve metrics on the runtime's own port.
        assert_eq!(MetricsPreset::Ciclo.query(9000).port, 9000);
        assert_eq!(MetricsPreset::Custom.query(9000).port, 9000);
        assert_eq!(MetricsPreset::Triton.query(9000).port, 8002);
    }
}
