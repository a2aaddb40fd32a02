//! Reading a version's traffic from its serving pods: each ready pod's `/metrics` (the Prometheus
//! text `ciclo serve` exposes), fetched at the pod's own address — not through the Service,
//! whose ClusterIP would mix versions — and summed into one [`TrafficSample`].

use ciclo_api::model_deployment::TrafficSample;
use k8s_openapi::api::core::v1::Pod;
use std::collections::BTreeMap;
use std::time::Duration;

/// Requests answered, by `route` (the path template) and `code` (the HTTP status).
pub const REQUESTS: &str = "ciclo_serve_requests";
/// Request latency histogram by `route`, in seconds.
pub const LATENCY: &str = "ciclo_serve_request_duration_seconds";

/// Whether a sample is about predictions: the inference routes of both protocols (health
/// probes and scrapes would dilute the error ratio and the latency). A runtime that does not
/// label routes has all its requests counted.
fn inference(labels: &BTreeMap<String, String>) -> bool {
    labels
        .get("route")
        .is_none_or(|r| r.ends_with("/infer") || r.ends_with(":predict"))
}

/// One sample line of the Prometheus text format: `name{label="value",…} value [timestamp]`.
/// (Parsed here because label values hold route templates with braces, which the
/// prometheus-parse crate's pattern cuts short.)
fn sample_line(line: &str) -> Option<(&str, BTreeMap<String, String>, f64)> {
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

/// Sums the counters of `pods` (those with an address), read over HTTP on `port`.
pub async fn sample(pods: &[Pod], port: i32) -> Result<TrafficSample, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let mut total = TrafficSample::default();
    for pod in pods {
        let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()) else {
            continue;
        };
        let url = format!("http://{ip}:{port}/metrics");
        let text = client
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("reading {url}: {e}"))?
            .text()
            .await
            .map_err(|e| format!("reading {url}: {e}"))?;
        add(&mut total, &parse(&text));
    }
    Ok(total)
}

/// One pod's counters from its metrics text.
pub fn parse(text: &str) -> TrafficSample {
    let mut sample = TrafficSample::default();
    let counter = format!("{REQUESTS}_total");
    let bucket = format!("{LATENCY}_bucket");
    for (name, labels, value) in text.lines().filter_map(sample_line) {
        if !inference(&labels) {
            continue;
        }
        if name == counter {
            sample.requests += value;
            if labels.get("code").is_some_and(|c| c.starts_with('5')) {
                sample.errors += value;
            }
        } else if name == bucket
            && let Some(le) = labels.get("le")
        {
            *sample.latency_buckets.entry(le.clone()).or_default() += value;
        }
    }
    sample
}

fn add(total: &mut TrafficSample, one: &TrafficSample) {
    total.requests += one.requests;
    total.errors += one.errors;
    for (le, count) in &one.latency_buckets {
        *total.latency_buckets.entry(le.clone()).or_default() += count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = r#"# HELP ciclo_serve_requests Requests answered, by status.
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

    #[test]
    fn requests_errors_and_latency_come_from_the_metrics_text() {
        let s = parse(METRICS);
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
}
