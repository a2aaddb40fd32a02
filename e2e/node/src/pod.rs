//! The pods bound to this node: one worker task per pod, fed the pod's latest object.

use crate::args::NodeArgs;
use crate::{images, ipam, worker};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::events::Recorder;
use kube::runtime::watcher;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What every pod worker shares.
pub struct NodeContext {
    pub client: kube::Client,
    pub node_name: String,
    pub api_host: String,
    pub api_port: u16,
    pub state_dir: PathBuf,
    /// The node binary, re-executed as the container wrapper.
    pub self_exe: PathBuf,
    pub images: images::Entrypoints,
    pub restart_backoff: Duration,
    pub recorder: Recorder,
    pub ipam: Mutex<ipam::Allocator>,
    /// `nvidia.com/gpu` devices, `true` when in use.
    pub gpus: Mutex<Vec<bool>>,
    /// Cancelled when the node stops: workers kill their containers and leave the API alone.
    pub node_stop: CancellationToken,
    pods: Mutex<HashMap<String, PodHandle>>,
}

struct PodHandle {
    tx: watch::Sender<Arc<Pod>>,
    /// Cancelled when the pod object is gone from the API.
    gone: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl NodeContext {
    pub fn new(client: kube::Client, args: &NodeArgs) -> anyhow::Result<Self> {
        let state_dir = std::fs::canonicalize(&args.state_dir)?;
        std::fs::create_dir_all(state_dir.join("pgids"))?;
        Ok(Self {
            recorder: Recorder::new(client.clone(), crate::reporter(&args.node_name)),
            client,
            node_name: args.node_name.clone(),
            api_host: args.api_server_host.clone(),
            api_port: args.api_server_port,
            state_dir,
            self_exe: std::env::current_exe()?,
            images: images::Entrypoints::parse(&args.image_entrypoints)?,
            restart_backoff: Duration::from_secs(args.restart_backoff_seconds.max(1)),
            ipam: Mutex::new(ipam::Allocator::new(args.pod_net)),
            gpus: Mutex::new(vec![false; args.gpus as usize]),
            node_stop: CancellationToken::new(),
            pods: Mutex::new(HashMap::new()),
        })
    }

    /// Where a container's logs live, one file per run: `<restart>.log`.
    pub fn log_dir(&self, namespace: &str, pod: &str, container: &str) -> PathBuf {
        self.state_dir
            .join("logs")
            .join(namespace)
            .join(pod)
            .join(container)
    }

    /// Where a pod's volumes, specs and termination messages live.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.state_dir.join("pods").join(uid)
    }

    /// Files named by container process-group ids, so `cluster-down` can reap them even
    /// if the node itself was killed.
    pub fn pgid_file(&self, pgid: u32) -> PathBuf {
        self.state_dir.join("pgids").join(pgid.to_string())
    }

    pub fn state_path(&self) -> &Path {
        &self.state_dir
    }

    fn on_pod(self: &Arc<Self>, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let mut pods = self.pods.lock().expect("pods lock");
        if let Some(h) = pods.get(&uid) {
            h.tx.send_replace(Arc::new(pod));
            return;
        }
        let (tx, rx) = watch::channel(Arc::new(pod));
        let gone = CancellationToken::new();
        let task = tokio::spawn(worker::run(self.clone(), rx, gone.clone()));
        pods.insert(uid, PodHandle { tx, gone, task });
    }

    fn on_pod_gone(&self, pod: &Pod) {
        if let Some(uid) = &pod.metadata.uid
            && let Some(h) = self.pods.lock().expect("pods lock").get(uid)
        {
            h.gone.cancel();
        }
    }

    fn on_pods_missing_from(&self, seen: &std::collections::HashSet<String>) {
        for (uid, h) in self.pods.lock().expect("pods lock").iter() {
            if !seen.contains(uid) {
                h.gone.cancel();
            }
        }
    }

    /// Called by a worker as it ends.
    pub fn forget(&self, uid: &str) {
        self.pods.lock().expect("pods lock").remove(uid);
    }

    /// Kills every pod's containers (on node shutdown) and waits for the workers.
    pub async fn stop_all_pods(&self) {
        self.node_stop.cancel();
        let tasks: Vec<_> = {
            let mut pods = self.pods.lock().expect("pods lock");
            pods.drain().map(|(_, h)| h.task).collect()
        };
        let all = futures::future::join_all(tasks);
        if tokio::time::timeout(Duration::from_secs(10), all)
            .await
            .is_err()
        {
            tracing::warn!("some pods did not stop within 10s");
        }
    }
}

/// Watches the pods bound to this node and keeps one worker per pod.
pub async fn manage(ctx: Arc<NodeContext>, shutdown: CancellationToken) {
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node_name));
    let mut events = watcher(pods, config).default_backoff().boxed();
    // Pods seen in a re-list; any worker not among them lost its pod while the watch was down.
    let mut relisted: Option<std::collections::HashSet<String>> = None;
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            e = events.next() => e,
        };
        match event {
            Some(Ok(watcher::Event::Apply(pod))) => ctx.on_pod(pod),
            Some(Ok(watcher::Event::InitApply(pod))) => {
                if let (Some(seen), Some(uid)) = (relisted.as_mut(), pod.metadata.uid.as_ref()) {
                    seen.insert(uid.clone());
                }
                ctx.on_pod(pod)
            }
            Some(Ok(watcher::Event::Delete(pod))) => ctx.on_pod_gone(&pod),
            Some(Ok(watcher::Event::Init)) => relisted = Some(Default::default()),
            Some(Ok(watcher::Event::InitDone)) => {
                if let Some(seen) = relisted.take() {
                    ctx.on_pods_missing_from(&seen);
                }
            }
            Some(Err(e)) => tracing::warn!(error = %e, "pod watch failed; retrying"),
            None => return,
        }
    }
}

impl NodeContext {
    /// Records an Event about `pod` without holding up the caller.
    pub fn event(&self, pod: &Pod, warning: bool, reason: &str, note: String) {
        use kube::Resource as _;
        use kube::runtime::events::{Event, EventType};
        let recorder = self.recorder.clone();
        let reference = pod.object_ref(&());
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: reason.into(),
            secondary: None,
        };
        tokio::spawn(async move {
            if let Err(e) = recorder.publish(&event, &reference).await {
                tracing::debug!(error = %e, "recording event failed");
            }
        });
    }
}
