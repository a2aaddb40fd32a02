//! A steady stream of inference requests while a new version rolls out. Inside the kubelet
//! node's network (the tests run there through e2e/cluster/in-cluster-netns.sh, which sets
//! `CICLO_NODE_ADDRESS`) they go to the ModelDeployment's Service by its DNS name, each on a
//! new connection, so kube-proxy picks the ready pod that answers — the split a client in the
//! cluster gets. On the process node, whose Services route nothing, they are sent as the
//! Service would spread them: round-robin over its ready, non-terminating pods, refreshed
//! every 100 ms as kube-proxy follows the EndpointSlice.

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Requests sent and how they ended, by the model version that answered.
#[derive(Default, Debug)]
pub struct Load {
    pub answered: BTreeMap<String, u64>,
    pub failed: Vec<String>,
}

impl Load {
    pub fn total(&self) -> u64 {
        self.answered.values().sum::<u64>() + self.failed.len() as u64
    }
}

/// True inside the kubelet node's network, where Services route.
pub fn through_service() -> bool {
    std::env::var_os("CICLO_NODE_ADDRESS").is_some()
}

/// Where a client sends ModelDeployment `deployment`'s inference requests: its Service
/// (`http://<name>.<namespace>.svc:8080`) where Services route, else its first ready pod.
/// None while no pod is ready.
pub async fn target(pods: &Api<Pod>, deployment: &str) -> Option<String> {
    let ready = crate::serving_pods(pods, &format!("ciclo.dev/deployment={deployment}"))
        .await
        .ok()?;
    let pod = ready.first()?;
    if through_service() {
        let ns = pod.metadata.namespace.as_deref()?;
        Some(format!("http://{deployment}.{ns}.svc:8080"))
    } else {
        Some(format!(
            "http://{}:8080",
            pod.status.as_ref()?.pod_ip.as_deref()?
        ))
    }
}

/// [`target`] once it answers `GET /v2/health/ready`: a pod that just became ready is
/// reached through the Service only after kube-proxy has followed its EndpointSlice, as any
/// client in a cluster sees. Fails after `timeout`.
pub async fn routed_target(
    pods: &Api<Pod>,
    deployment: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::from("no ready serving pod");
    loop {
        if let Some(t) = target(pods, deployment).await {
            match http.get(format!("{t}/v2/health/ready")).send().await {
                Ok(r) if r.status().is_success() => return Ok(t),
                Ok(r) => last = format!("{t}: {}", r.status()),
                Err(e) => last = format!("{t}: {}", error_chain(&e)),
            }
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{deployment} not reachable after {timeout:?}: {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Where to send `deployment`'s requests once `ready` of its pods are ready and its Service
/// routes to them (the first version up at full size).
pub async fn serving_target(pods: &Api<Pod>, deployment: &str, ready: usize) -> String {
    crate::wait_for(
        crate::resources::TIMEOUT,
        &format!("{ready} ready serving pods"),
        || async { Ok(endpoints(pods, deployment).await.len() == ready) },
    )
    .await
    .unwrap();
    routed_target(pods, deployment, crate::resources::TIMEOUT)
        .await
        .unwrap()
}

/// The answer to a v2 inference request for `model` at `target`, as JSON.
pub async fn infer(http: &reqwest::Client, target: &str, model: &str, body: &Value) -> Value {
    http.post(format!("{target}/v2/models/{model}/infer"))
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Sends `labels` (`{"id", "row", "values"}` each) to the feedback endpoint of `model` at
/// `target`, and checks all were accepted.
pub async fn feedback(http: &reqwest::Client, target: &str, model: &str, labels: Vec<Value>) {
    let sent = labels.len();
    let reply = http
        .post(format!("{target}/v2/models/{model}/feedback"))
        .json(&serde_json::json!({ "labels": labels }))
        .send()
        .await
        .unwrap();
    assert!(reply.status().is_success(), "{reply:?}");
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["accepted"], sent, "{body}");
}

/// The output `name` of a v2 inference answer.
pub fn output<'a>(answer: &'a Value, name: &str) -> &'a Value {
    answer["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["name"] == name))
        .unwrap_or_else(|| panic!("no output {name}: {answer}"))
}

/// The inference addresses (`http://<pod ip>:8080`) of ModelDeployment `deployment`'s
/// serving pods, as its Service's EndpointSlice would list them.
pub async fn endpoints(pods: &Api<Pod>, deployment: &str) -> Vec<String> {
    crate::serving_pods(pods, &format!("ciclo.dev/deployment={deployment}"))
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .map(|ip| format!("http://{ip}:8080"))
        .collect()
}

/// A running load; [`Running::stop`] ends it and returns what happened.
pub struct Running {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Load>,
}

impl Running {
    pub async fn stop(self) -> Load {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }

    /// Stops after a rollout from version `from` to `to` has been promoted, once the old pods
    /// had time to drain under the load, and asserts what a rollout without errors means:
    /// no request failed, and both versions answered (more than 10 each) during the canary.
    pub async fn stop_after_rollout(self, from: i64, to: i64) -> Load {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let load = self.stop().await;
        println!("requests during the rollout of version {to}, by answering version: {load:?}");
        assert!(load.failed.is_empty(), "failed requests: {load:?}");
        let answered = |v: i64| load.answered.get(&v.to_string()).copied().unwrap_or(0);
        assert!(
            answered(from) > 10 && answered(to) > 10,
            "both versions answered during the canary: {load:?}"
        );
        load
    }
}

/// Starts sending v2 inference requests for `model` to `deployment`'s pods every ~20 ms,
/// the `i`th with the body `body(i)`.
pub fn start(
    pods: Api<Pod>,
    deployment: &str,
    model: &str,
    body: impl Fn(usize) -> Value + Send + 'static,
) -> Running {
    let (deployment, model) = (deployment.to_string(), model.to_string());
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let task = tokio::spawn(async move {
        // No idle connection is kept: each request is a new connection, which kube-proxy
        // sends to a pod of its choosing.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client");
        let addresses = |pods: Api<Pod>, deployment: String| async move {
            if through_service() {
                target(&pods, &deployment).await.into_iter().collect()
            } else {
                endpoints(&pods, &deployment).await
            }
        };
        // The load starts once the Service routes (kube-proxy follows a pod that just became
        // ready about a second later): from then on, every failure is the rollout's.
        if through_service() {
            let _ = routed_target(&pods, &deployment, Duration::from_secs(60)).await;
        }
        let targets = Arc::new(Mutex::new(
            addresses(pods.clone(), deployment.clone()).await,
        ));
        let refresh = {
            let (targets, stop) = (targets.clone(), flag.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let now = addresses(pods.clone(), deployment.clone()).await;
                    if !now.is_empty() {
                        *targets.lock().expect("targets") = now;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        let mut load = Load::default();
        // When a request failed (UTC, to line up with the cluster's logs and events).
        let at = || jiff::Timestamp::now().strftime("%H:%M:%S%.3f").to_string();
        let mut i = 0usize;
        while !flag.load(Ordering::Relaxed) {
            let target = {
                let t = targets.lock().expect("targets");
                t.get(i % t.len().max(1)).cloned()
            };
            let request = body(i);
            i += 1;
            let Some(target) = target else {
                load.failed.push("no ready serving pod".into());
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let url = format!("{target}/v2/models/{model}/infer");
            match http.post(&url).json(&request).send().await {
                Ok(r) if r.status().is_success() => {
                    let answer: Value = r.json().await.unwrap_or_default();
                    let version = answer["model_version"].as_str().unwrap_or("?").to_string();
                    *load.answered.entry(version).or_default() += 1;
                }
                Ok(r) => load.failed.push(format!("{} {url}: {}", at(), r.status())),
                Err(e) => load
                    .failed
                    .push(format!("{} {url}: {}", at(), error_chain(&e))),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = refresh.await;
        load
    });
    Running { stop, task }
}

/// An error with every cause behind it (reqwest's own message names only the URL).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
