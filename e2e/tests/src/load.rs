//! A steady stream of inference requests while a new version rolls out, sent as a Service
//! would spread them: round-robin over its ready, non-terminating pods, refreshed every
//! 100 ms as kube-proxy follows the EndpointSlice.

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
        let http = reqwest::Client::new();
        let targets = Arc::new(Mutex::new(endpoints(&pods, &deployment).await));
        let refresh = {
            let (targets, stop) = (targets.clone(), flag.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let now = endpoints(&pods, &deployment).await;
                    if !now.is_empty() {
                        *targets.lock().expect("targets") = now;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        let mut load = Load::default();
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
                Ok(r) => load.failed.push(format!("{url}: {}", r.status())),
                Err(e) => load.failed.push(format!("{url}: {e}")),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = refresh.await;
        load
    });
    Running { stop, task }
}
