//! Reading a version's traffic from its serving pods: each ready pod's `/metrics` (Prometheus
//! text, under the names its runtime uses: `spec.runtime.metrics`), fetched at the pod's own
//! address — not through the Service, whose ClusterIP would mix versions — and summed into one
//! [`TrafficSample`].

use ciclo_api::model_deployment::{
    LatencyKind, LatencyMetric, MetricsQuery, SeriesSelector, TimeUnit, TrafficSample,
};
use k8s_openapi::api::core::v1::Pod;
use regex::Regex;
use std::collections::BTreeMap;
use std::time::Duration;

/// One sample line of the Prometheus text format: `name{label="value",…} value [timestamp]`.
/// (Parsed here because label values hold route templates with braces, which the
/// prometheus-parse crate's pattern cuts short.)
pub(super) fn sample_line(line: &str) -> Option<(&str, BTreeMap<String, String>, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let (name, mut rest) = line.split_at(name_end);
    let mut labels = BTreeMap::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let (mut key, mut value, mut in_value, mut escaped) =
            (String::new(), String::new(), false, false);
        let end = loop {
            let (i, c) = chars.next()?;
            match (in_value, escaped, c) {
                (true, true, c) => {
                    value.push(if c == 'n' { '\n' } else { c });
                    escaped = false;
                }
                (true, false, '\\') => escaped = true,
                (true, false, '"') => {
                    labels.insert(std::mem::take(&mut key), std::mem::take(&mut value));
                    in_value = false;
                }
                (true, false, c) => value.push(c),
                (false, _, '"') => in_value = true,
                (false, _, '}') => break i,
                (false, _, '=' | ',' | ' ') => {}
                (false, _, c) => key.push(c),
            }
        };
        rest = &body[end + 1..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some((name, labels, value))
}

/// A [`SeriesSelector`] with its label patterns compiled, anchored as PromQL's `=~`.
#[derive(Debug)]
struct Matcher {
    name: String,
    labels: Vec<(String, Regex)>,
}

impl Matcher {
    /// `field` names the selector in the spec, for the error a bad pattern gets.
    fn new(name: String, labels: &BTreeMap<String, String>, field: &str) -> Result<Self, String> {
        let labels = labels
            .iter()
            .map(|(label, pattern)| {
                Regex::new(&format!("^(?:{pattern})$"))
                    .map(|re| (label.clone(), re))
                    .map_err(|e| format!("{field}.labels.{label}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { name, labels })
    }

    fn selector(s: &SeriesSelector, field: &str) -> Result<Self, String> {
        Self::new(s.name.clone(), &s.labels, field)
    }

    /// Whether a series matches; a label it lacks matches as "".
    fn matches(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        name == self.name
            && self
                .labels
                .iter()
                .all(|(label, re)| re.is_match(labels.get(label).map(String::as_str).unwrap_or("")))
    }
}

/// What one pod's metrics text is read for: a [`MetricsQuery`] ready to match series.
#[derive(Debug)]
pub struct Reader {
    port: i32,
    path: String,
    requests: Vec<Matcher>,
    errors: Vec<Matcher>,
    latency: Option<(LatencyMetric, Matcher)>,
}

impl Reader {
    /// Compiles `query`; a label pattern that is no regular expression is an error naming its
    /// field under `spec.runtime.metrics`.
    pub fn new(query: &MetricsQuery) -> Result<Self, String> {
        let field = "spec.runtime.metrics";
        let list = |list: &[SeriesSelector], what: &str| {
            list.iter()
                .enumerate()
                .map(|(i, s)| Matcher::selector(s, &format!("{field}.{what}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
        };
        let latency = match &query.latency {
            Some(l) => {
                let series = match l.type_ {
                    LatencyKind::Histogram => format!("{}_bucket", l.name),
                    LatencyKind::Summary => l.name.clone(),
                };
                let matcher = Matcher::new(series, &l.labels, &format!("{field}.latency"))?;
                Some((l.clone(), matcher))
            }
            None => None,
        };
        Ok(Self {
            port: query.port,
            path: query.path.clone(),
            requests: list(&query.requests, "requests")?,
            errors: list(&query.errors, "errors")?,
            latency,
        })
    }

    /// One pod's counters from its metrics text.
    pub fn parse(&self, text: &str) -> TrafficSample {
        let mut sample = TrafficSample::default();
        for (name, labels, value) in text.lines().filter_map(sample_line) {
            for m in &self.requests {
                if m.matches(name, &labels) {
                    sample.requests += value;
                }
            }
            for m in &self.errors {
                if m.matches(name, &labels) {
                    sample.errors += value;
                }
            }
            let Some((latency, m)) = &self.latency else {
                continue;
            };
            if !m.matches(name, &labels) {
                continue;
            }
            match latency.type_ {
                LatencyKind::Histogram => {
                    if let Some(le) = labels.get("le").and_then(|le| seconds(le, latency.unit)) {
                        *sample.latency_buckets.entry(le).or_default() += value;
                    }
                }
                // A summary's quantile over the runtime's own window; NaN when it saw none.
                LatencyKind::Summary => {
                    if labels.get("quantile").is_some_and(|q| q == "0.99") && value.is_finite() {
                        let seconds = latency.unit.to_seconds(value);
                        sample.summary_p99_seconds = Some(
                            sample
                                .summary_p99_seconds
                                .map_or(seconds, |p| p.max(seconds)),
                        );
                    }
                }
            }
        }
        sample
    }

    /// The port the metrics are read on.
    pub fn port(&self) -> i32 {
        self.port
    }

    /// The metrics' path (`/metrics`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Sums the counters of `pods` (those with an address), read over HTTP.
    pub async fn sample(&self, pods: &[Pod]) -> Result<TrafficSample, String> {
        let mut total = TrafficSample::default();
        for text in scrape(pods, self.port, &self.path).await? {
            add(&mut total, &self.parse(&text));
        }
        Ok(total)
    }
}

/// The metrics text of each of `pods` that has an address, read at `http://<pod IP>:<port><path>`.
pub(super) async fn scrape(pods: &[Pod], port: i32, path: &str) -> Result<Vec<String>, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let mut texts = Vec::new();
    for pod in pods {
        let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()) else {
            continue;
        };
        let url = format!("http://{ip}:{port}{path}");
        let text = client
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("reading {url}: {e}"))?
            .text()
            .await
            .map_err(|e| format!("reading {url}: {e}"))?;
        texts.push(text);
    }
    Ok(texts)
}

/// A histogram bucket's upper bound as the text of its seconds: as exposed when the unit is
/// seconds (so counters read before and after an upgrade still line up), converted otherwise.
fn seconds(le: &str, unit: TimeUnit) -> Option<String> {
    let bound: f64 = match le {
        "+Inf" => return Some(le.into()),
        le => le.parse().ok()?,
    };
    Some(match unit {
        TimeUnit::Seconds => le.into(),
        unit => unit.to_seconds(bound).to_string(),
    })
}

fn add(total: &mut TrafficSample, one: &TrafficSample) {
    total.requests += one.requests;
    total.errors += one.errors;
    for (le, count) in &one.latency_buckets {
        *total.latency_buckets.entry(le.clone()).or_default() += count;
    }
    // Quantiles do not add up: the slowest pod's p99 is the version's bound.
    total.summary_p99_seconds = match (total.summary_p99_seconds, one.summary_p99_seconds) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciclo_api::model_deployment::{MetricsPreset, RuntimeMetrics};

    const CICLO: &str = r#"# HELP ciclo_serve_requests Requests answered, by status.
# TYPE ciclo_serve_requests counter
ciclo_serve_requests_total{route="/v2/models/{name}/infer",code="200"} 100
ciclo_serve_requests_total{route="/v1/models/{name}:predict",code="200"} 20
ciclo_serve_requests_total{route="/v2/models/{name}/infer",code="400"} 3
ciclo_serve_requests_total{route="/v2/models/{name}/infer",code="503"} 2
ciclo_serve_requests_total{route="/v2/health/ready",code="200"} 700
# HELP ciclo_serve_request_duration_seconds Request latency.
# TYPE ciclo_serve_request_duration_seconds histogram
ciclo_serve_request_duration_seconds_sum{route="/v2/models/{name}/infer"} 1.5
ciclo_serve_request_duration_seconds_count{route="/v2/models/{name}/infer"} 125
ciclo_serve_request_duration_seconds_bucket{route="/v2/models/{name}/infer",le="0.005"} 100
ciclo_serve_request_duration_seconds_bucket{route="/v2/models/{name}/infer",le="0.1"} 124
ciclo_serve_request_duration_seconds_bucket{route="/v2/models/{name}/infer",le="+Inf"} 125
ciclo_serve_request_duration_seconds_bucket{route="/v2/health/ready",le="0.005"} 700
ciclo_serve_request_duration_seconds_bucket{route="/v2/health/ready",le="0.1"} 700
ciclo_serve_request_duration_seconds_bucket{route="/v2/health/ready",le="+Inf"} 700
# EOF
"#;

    fn reader(preset: MetricsPreset) -> Reader {
        Reader::new(&preset.query(8080)).unwrap()
    }

    #[test]
    fn requests_errors_and_latency_come_from_the_metrics_text() {
        let s = reader(MetricsPreset::Ciclo).parse(CICLO);
        assert_eq!(
            (s.requests, s.errors),
            (125.0, 2.0),
            "inference only; 4xx are the caller's"
        );
        assert_eq!(s.latency_buckets["0.005"], 100.0);
        assert_eq!(s.latency_buckets["+Inf"], 125.0);
        let mut twice = s.clone();
        add(&mut twice, &s);
        assert_eq!(
            (twice.requests, twice.latency_buckets["0.1"]),
            (250.0, 248.0)
        );
    }

    #[test]
    fn grpc_inference_counts_as_rest_inference_does() {
        let text = r#"ciclo_serve_requests_total{route="/inference.GRPCInferenceService/ModelInfer",code="200"} 40
ciclo_serve_requests_total{route="/inference.GRPCInferenceService/ModelInfer",code="503"} 1
ciclo_serve_requests_total{route="/inference.GRPCInferenceService/ServerReady",code="200"} 9
"#;
        let s = reader(MetricsPreset::Ciclo).parse(text);
        assert_eq!((s.requests, s.errors), (41.0, 1.0));
    }

    #[test]
    fn a_runtime_without_route_labels_has_every_request_counted() {
        let text = "ciclo_serve_requests_total{code=\"200\"} 7\nciclo_serve_requests_total{code=\"500\"} 1\n";
        let s = reader(MetricsPreset::Ciclo).parse(text);
        assert_eq!((s.requests, s.errors), (8.0, 1.0));
    }

    /// MLServer 1.7.1's `/metrics` (port 8082): the lines it wrote for the example runtime
    /// (`examples/runtimes/mlserver`) after four answers and a 500, with a versioned route,
    /// two 400s and metadata calls added in the same form. (The e2e test `mlserver.rs` reads
    /// the live ones.)
    const MLSERVER: &str = include_str!("../../../tests/fixtures/mlserver-metrics.txt");

    #[test]
    fn mlservers_inference_requests_5xx_and_latency_are_read_and_other_routes_left_out() {
        let s = reader(MetricsPreset::MlServer).parse(MLSERVER);
        // 4 + 1 + 2 on the infer route, 3 on the versioned one; not the 9 metadata calls.
        assert_eq!((s.requests, s.errors), (10.0, 1.0), "{s:?}");
        // The 200s' and the 500's histograms together, bounds as MLServer writes them.
        assert_eq!(s.latency_buckets["0.005"], 4.0);
        assert_eq!(s.latency_buckets["0.01"], 5.0);
        assert_eq!(s.latency_buckets["+Inf"], 5.0);
        // ciclo serve's names count nothing of it: the canary would wait forever.
        let ciclo = reader(MetricsPreset::Ciclo).parse(MLSERVER);
        assert_eq!(ciclo.requests, 0.0);
    }

    /// Triton's `/metrics` as its documentation shows it (Triton cannot be installed here):
    /// two models, one with failures by reason, summaries on.
    const TRITON: &str = include_str!("../../../tests/fixtures/triton-metrics.txt");

    #[test]
    fn tritons_successes_failures_and_summary_p99_are_read_and_cancellations_left_out() {
        let s = reader(MetricsPreset::Triton).parse(TRITON);
        // Successes 1200 + 37; failures: BACKEND 6, OTHER 1, REJECTED 2 (CANCELED 4 is not counted).
        assert_eq!((s.requests, s.errors), (1246.0, 9.0), "{s:?}");
        assert!(s.latency_buckets.is_empty());
        // The slower model's p99, 2150 µs.
        assert_eq!(s.summary_p99_seconds, Some(0.00215));
    }

    #[test]
    fn the_names_of_any_runtime_can_be_given_and_bad_patterns_name_their_field() {
        let m: RuntimeMetrics = serde_yaml::from_str(
            r#"
preset: Custom
requests: [{name: app_predictions_total}]
errors: [{name: app_predictions_total, labels: {outcome: "error|timeout"}}]
latency: {name: app_prediction_ms, unit: Milliseconds}
"#,
        )
        .unwrap();
        let text = r#"app_predictions_total{outcome="ok"} 90
app_predictions_total{outcome="error"} 4
app_predictions_total{outcome="timeout"} 1
app_predictions_total{outcome="errors"} 5
app_prediction_ms_bucket{le="5"} 80
app_prediction_ms_bucket{le="50"} 99
app_prediction_ms_bucket{le="+Inf"} 100
"#;
        let s = Reader::new(&m.query(8080)).unwrap().parse(text);
        assert_eq!(
            (s.requests, s.errors),
            (100.0, 5.0),
            "patterns match in full"
        );
        assert_eq!(s.latency_buckets["0.005"], 80.0);
        assert_eq!(s.latency_buckets["0.05"], 99.0);
        let bad: RuntimeMetrics = serde_yaml::from_str(
            "{preset: Custom, requests: [{name: a}], errors: [{name: a, labels: {code: '5(..'}}]}",
        )
        .unwrap();
        let e = Reader::new(&bad.query(8080)).unwrap_err();
        assert!(
            e.starts_with("spec.runtime.metrics.errors[0].labels.code: regex parse error"),
            "{e}"
        );
    }
}
