//! A deployment's live traffic, per serving pod: each pod's metrics read through the API
//! server's proxy (`pods/proxy`, with the user's credentials: who may not use it is told
//! so), under the names its runtime uses (`spec.runtime.metrics`), as the canary analysis
//! reads them. Rates need two readings: the previous one of each pod is kept, and the page
//! reads again every few seconds while it is open.

use ciclo_api::ModelDeployment;
use ciclo_api::labels;
use ciclo_api::model_deployment::TrafficSample;
use ciclo_controller::serving_traffic::{Reader, p99_text};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt as _};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one pod's metrics may take.
const TIMEOUT: Duration = Duration::from_secs(3);
/// A pod's previous reading older than this is dropped (the pod is gone, or no page shows it).
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// A pod read more recently than this is not read again (a burst of changes re-renders the
/// page): its last window is shown.
const MIN_GAP: Duration = Duration::from_secs(1);

/// What the page shows of a deployment's traffic.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// The user may not list the pods or use their proxy: what the API server said.
    Forbidden(String),
    /// The pods could not be read (why).
    Failed(String),
    Pods(Vec<PodTraffic>),
}

/// One serving pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodTraffic {
    pub pod: String,
    /// Its `ciclo.dev/version` label.
    pub version: String,
    /// Since the previous reading; none on the first.
    pub window: Option<Window>,
    /// Why its metrics could not be read, if they could not.
    pub problem: Option<String>,
}

/// A pod's traffic between two readings.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub seconds: f64,
    pub requests_per_second: f64,
    /// Errors over requests; none without requests.
    pub error_ratio: Option<f64>,
    pub p99: Option<String>,
}

/// The previous reading of each pod (namespace/name and uid, so that a new pod of the same
/// name starts afresh).
#[derive(Default)]
pub struct Traffic {
    last: Mutex<HashMap<(String, String), Last>>,
}

/// A pod's latest reading, and the window it closed.
struct Last {
    at: Instant,
    sample: TrafficSample,
    window: Option<Window>,
}

impl Traffic {
    /// Reads the running pods of `md`.
    pub async fn read(&self, client: &Client, md: &ModelDeployment) -> Reading {
        let ns = md.namespace().unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let selector = format!("{}={}", labels::DEPLOYMENT, md.name_any());
        let listed = match pods.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => list.items,
            Err(kube::Error::Api(s)) if s.code == 403 => return Reading::Forbidden(s.message),
            Err(e) => return Reading::Failed(format!("listing the pods ({selector}): {e}")),
        };
        let reader = match Reader::new(&md.spec.runtime.metrics_query()) {
            Ok(reader) => reader,
            Err(e) => return Reading::Failed(format!("spec.runtime.metrics: {e}")),
        };
        let mut out = Vec::new();
        for pod in listed.iter().filter(|p| running(p)) {
            let name = pod.name_any();
            let version = pod
                .labels()
                .get(labels::VERSION)
                .cloned()
                .unwrap_or_default();
            let key = (format!("{ns}/{name}"), pod.uid().unwrap_or_default());
            let recent = self
                .last
                .lock()
                .expect("traffic lock")
                .get(&key)
                .filter(|l| l.at.elapsed() < MIN_GAP)
                .map(|l| l.window.clone());
            if let Some(window) = recent {
                out.push(PodTraffic {
                    pod: name,
                    version,
                    window,
                    problem: None,
                });
                continue;
            }
            let (path, port) = (reader.path(), reader.port());
            let uri = format!("/api/v1/namespaces/{ns}/pods/{name}:{port}/proxy{path}");
            let request = http::Request::get(&uri)
                .body(Vec::new())
                .expect("a valid request");
            let text = match tokio::time::timeout(TIMEOUT, client.request_text(request)).await {
                Ok(Ok(text)) => text,
                Ok(Err(kube::Error::Api(s))) if s.code == 403 => {
                    return Reading::Forbidden(s.message);
                }
                Ok(Err(e)) => {
                    out.push(PodTraffic {
                        pod: name,
                        version,
                        window: None,
                        problem: Some(e.to_string()),
                    });
                    continue;
                }
                Err(_) => {
                    let problem = format!("no answer in {} s", TIMEOUT.as_secs());
                    out.push(PodTraffic {
                        pod: name,
                        version,
                        window: None,
                        problem: Some(problem),
                    });
                    continue;
                }
            };
            let now = (Instant::now(), reader.parse(&text));
            let mut last = self.last.lock().expect("traffic lock");
            // Pods come and go for as long as the view runs: forget the long unread.
            last.retain(|_, l| l.at.elapsed() < FORGET_AFTER);
            let window = last
                .get(&key)
                .and_then(|before| window((before.at, &before.sample), (now.0, &now.1)));
            let (at, sample) = now;
            last.insert(
                key,
                Last {
                    at,
                    sample,
                    window: window.clone(),
                },
            );
            drop(last);
            out.push(PodTraffic {
                pod: name,
                version,
                window,
                problem: None,
            });
        }
        out.sort_by(|a, b| (&a.version, &a.pod).cmp(&(&b.version, &b.pod)));
        Reading::Pods(out)
    }
}

fn running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        && pod.metadata.deletion_timestamp.is_none()
}

/// The traffic between two readings of one pod; none when they are too close to tell, or
/// a counter went back (the pod's server restarted).
fn window(before: (Instant, &TrafficSample), now: (Instant, &TrafficSample)) -> Option<Window> {
    let seconds = now.0.duration_since(before.0).as_secs_f64();
    let requests = now.1.requests - before.1.requests;
    let errors = now.1.errors - before.1.errors;
    if seconds < 0.5 || requests < 0.0 || errors < 0.0 {
        return None;
    }
    Some(Window {
        seconds,
        requests_per_second: requests / seconds,
        error_ratio: (requests > 0.0).then(|| errors / requests),
        p99: p99_text(before.1, now.1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciclo_api::model_deployment::MetricsPreset;

    /// A reading of `ciclo serve`'s metrics: `ok` and `failed` (503) inference answers,
    /// `fast` of them within 5 ms and the rest within 100 ms.
    fn sample(ok: u32, failed: u32, fast: u32) -> TrafficSample {
        let route = r#"route="/v2/models/{name}/infer""#;
        let all = ok + failed;
        let text = format!(
            "ciclo_serve_requests_total{{{route},code=\"200\"}} {ok}\n\
             ciclo_serve_requests_total{{{route},code=\"503\"}} {failed}\n\
             ciclo_serve_request_duration_seconds_bucket{{{route},le=\"0.005\"}} {fast}\n\
             ciclo_serve_request_duration_seconds_bucket{{{route},le=\"0.1\"}} {all}\n\
             ciclo_serve_request_duration_seconds_bucket{{{route},le=\"+Inf\"}} {all}\n"
        );
        Reader::new(&MetricsPreset::Ciclo.query(8080))
            .unwrap()
            .parse(&text)
    }

    #[test]
    fn rates_come_from_two_readings_of_the_same_counters() {
        let t0 = Instant::now();
        let before = (t0, sample(99, 1, 90));
        let now = (t0 + Duration::from_secs(10), sample(297, 3, 200));
        let w = window((before.0, &before.1), (now.0, &now.1)).unwrap();
        assert_eq!(w.requests_per_second, 20.0);
        assert_eq!(w.error_ratio, Some(0.01));
        // 110 of the 200 new requests within 5 ms, all within 100 ms.
        assert_eq!(w.p99.as_deref(), Some("≤ 100 ms"));
    }

    #[test]
    fn no_traffic_has_no_error_ratio_and_a_restart_no_window() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(5);
        let idle = window((t0, &sample(7, 0, 7)), (later, &sample(7, 0, 7))).unwrap();
        assert_eq!(
            (idle.requests_per_second, idle.error_ratio, idle.p99),
            (0.0, None, None)
        );
        assert_eq!(
            window((t0, &sample(7, 0, 7)), (later, &sample(2, 0, 2))),
            None
        );
    }
}
