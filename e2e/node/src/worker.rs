//! One pod's life on the node: admit it, give it an address and volumes, run its init
//! then its app containers, post its status as it changes, and when it is deleted stop
//! its processes within the grace period and remove it, as a kubelet does.

use crate::container::ExecSpec;
use crate::pod::NodeContext;
use crate::status::{self, ContainerState, PodState, PodVerdict, State};
use crate::volumes::{self, ObjectCache, Owner, PodVolumes};
use crate::{env, runner, spec_check};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::Value;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// What a pod's worker shares with its container runners.
pub struct Shared {
    pub state: Mutex<PodState>,
    /// Poked whenever `state` changes, so the worker posts the status.
    pub changed: Notify,
    /// Cancelled to stop every container of the pod.
    pub stop: CancellationToken,
    /// How long stopped containers get between SIGTERM and SIGKILL.
    pub grace: Mutex<Duration>,
}

impl Shared {
    pub fn update(&self, f: impl FnOnce(&mut PodState)) {
        f(&mut self.state.lock().expect("pod state lock"));
        self.changed.notify_one();
    }
}

/// Runs `pod`'s worker until the pod is gone or the node stops.
pub async fn run(ctx: Arc<NodeContext>, rx: watch::Receiver<Arc<Pod>>, gone: CancellationToken) {
    let pod = rx.borrow().clone();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let mut worker = Worker::new(ctx.clone(), pod);
    worker.run(rx, gone).await;
    worker.release();
    ctx.forget(&uid);
}

struct Worker {
    ctx: Arc<NodeContext>,
    api: Api<Pod>,
    pod: Arc<Pod>,
    uid: String,
    dir: PathBuf,
    shared: Arc<Shared>,
    ip: Option<Ipv4Addr>,
    gpus: Vec<usize>,
    last_posted: Option<Value>,
}

impl Worker {
    fn new(ctx: Arc<NodeContext>, pod: Arc<Pod>) -> Self {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        Self {
            api: Api::namespaced(ctx.client.clone(), &ns),
            dir: ctx.pod_dir(&uid),
            ctx,
            pod,
            uid,
            shared: Arc::new(Shared {
                state: Mutex::new(PodState::default()),
                changed: Notify::new(),
                stop: CancellationToken::new(),
                grace: Mutex::new(Duration::from_secs(30)),
            }),
            ip: None,
            gpus: Vec::new(),
            last_posted: None,
        }
    }

    fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or_default()
    }

    async fn run(&mut self, mut rx: watch::Receiver<Arc<Pod>>, gone: CancellationToken) {
        let phase = self
            .pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if self.pod.metadata.deletion_timestamp.is_some()
            || matches!(phase.as_str(), "Succeeded" | "Failed")
        {
            // Finished (or never started) before this worker: only its deletion is left.
            return self.await_deletion(&mut rx, &gone).await;
        }
        if let Err(verdict) = self.admit() {
            tracing::warn!(pod = self.name(), reason = %verdict.reason, message = %verdict.message, "pod refused");
            self.ctx
                .event(&self.pod, true, &verdict.reason, verdict.message.clone());
            self.shared.update(|s| s.verdict = Some(verdict));
            self.post_status().await;
            return self.await_deletion(&mut rx, &gone).await;
        }
        self.post_status().await;

        let work = containers(
            self.ctx.clone(),
            self.pod.clone(),
            self.shared.clone(),
            self.dir.clone(),
            self.ip.unwrap_or(Ipv4Addr::LOCALHOST),
            self.gpus.clone(),
        );
        tokio::pin!(work);
        let mut work_done = false;
        let mut terminating = false;
        let mut post_failed = false;
        let deadline = self.active_deadline();
        let deadline_sleep = tokio::time::sleep(deadline.unwrap_or(Duration::MAX / 4));
        tokio::pin!(deadline_sleep);
        loop {
            tokio::select! {
                _ = &mut work, if !work_done => work_done = true,
                _ = self.shared.changed.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)), if post_failed => {}
                changed = rx.changed() => {
                    if changed.is_err() { return; }
                    self.pod = rx.borrow_and_update().clone();
                    if self.pod.metadata.deletion_timestamp.is_some() && !terminating {
                        terminating = true;
                        let grace = self.pod.metadata.deletion_grace_period_seconds.unwrap_or(30);
                        self.stop_containers(Duration::from_secs(grace.max(0) as u64), "Killing", format!("Stopping pod (grace period {grace}s)"));
                    }
                }
                _ = &mut deadline_sleep, if deadline.is_some() && !self.shared.stop.is_cancelled() => {
                    let secs = self.pod.spec.as_ref().and_then(|s| s.active_deadline_seconds).unwrap_or_default();
                    self.shared.update(|s| s.verdict = Some(PodVerdict {
                        phase: "Failed",
                        reason: "DeadlineExceeded".into(),
                        message: format!("Pod was active on the node longer than the specified deadline ({secs}s)"),
                    }));
                    self.stop_containers(self.termination_grace(), "DeadlineExceeded", "Pod was active on the node longer than the specified deadline".into());
                }
                _ = gone.cancelled() => {
                    // The object is gone (force-deleted): nothing to report to, just stop.
                    self.stop_containers(Duration::from_secs(2), "Killing", "pod deleted".into());
                    work.await;
                    return;
                }
                _ = self.ctx.node_stop.cancelled() => {
                    self.stop_containers(self.termination_grace().min(Duration::from_secs(3)), "Killing", "node stopping".into());
                    work.await;
                    return;
                }
            }
            post_failed = !self.post_status().await;
            if work_done && terminating {
                self.delete().await;
                return;
            }
        }
    }

    /// Checks what the node can honour and reserves an address and GPUs.
    fn admit(&mut self) -> Result<(), PodVerdict> {
        let refuse = |reason: &str, message: String| PodVerdict {
            phase: "Failed",
            reason: reason.into(),
            message,
        };
        let problems = spec_check::unsupported(&self.pod);
        if !problems.is_empty() {
            return Err(refuse(
                "UnsupportedPodSpec",
                format!(
                    "the process node cannot run this pod: {}",
                    problems.join("; ")
                ),
            ));
        }
        let spec = self.pod.spec.as_ref().expect("checked by spec_check");
        let wanted: usize = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .map(gpu_count)
            .sum();
        {
            let mut pool = self.ctx.gpus.lock().expect("gpu lock");
            let free: Vec<usize> = (0..pool.len()).filter(|i| !pool[*i]).take(wanted).collect();
            if free.len() < wanted {
                return Err(refuse(
                    "UnexpectedAdmissionError",
                    format!("pod needs {wanted} nvidia.com/gpu, {} free", free.len()),
                ));
            }
            for i in &free {
                pool[*i] = true;
            }
            self.gpus = free;
        }
        let ip = self.ctx.ipam.lock().expect("ipam lock").allocate();
        let Some(ip) = ip else {
            return Err(refuse(
                "UnexpectedAdmissionError",
                "no loopback pod address left".into(),
            ));
        };
        self.ip = Some(ip);
        let waiting = |c: &Container, reason: &str| ContainerState {
            state: State::Waiting {
                reason: reason.into(),
                message: String::new(),
            },
            ..ContainerState::new(&c.name, c.image.as_deref().unwrap_or_default())
        };
        self.shared.update(|s| {
            s.pod_ip = Some(ip);
            s.start_time = Some(Timestamp::now());
            s.init = spec
                .init_containers
                .iter()
                .flatten()
                .map(|c| waiting(c, "PodInitializing"))
                .collect();
            let first = if s.init.is_empty() {
                "ContainerCreating"
            } else {
                "PodInitializing"
            };
            s.containers = spec.containers.iter().map(|c| waiting(c, first)).collect();
        });
        Ok(())
    }

    fn active_deadline(&self) -> Option<Duration> {
        let secs = self.pod.spec.as_ref()?.active_deadline_seconds?;
        Some(Duration::from_secs(secs.max(0) as u64))
    }

    fn termination_grace(&self) -> Duration {
        let secs = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        Duration::from_secs(secs.max(0) as u64)
    }

    fn stop_containers(&self, grace: Duration, reason: &str, note: String) {
        if self.shared.stop.is_cancelled() {
            return;
        }
        *self.shared.grace.lock().expect("grace lock") = grace;
        if !self.ctx.node_stop.is_cancelled() {
            self.ctx.event(&self.pod, false, reason, note);
        }
        self.shared.stop.cancel();
    }

    /// Posts the status if it changed; false when the post failed (it is retried).
    async fn post_status(&mut self) -> bool {
        let patch = {
            let state = self.shared.state.lock().expect("pod state lock");
            status::build(&self.pod, &state, Timestamp::now())
        };
        if self.last_posted.as_ref() == Some(&patch) {
            return true;
        }
        match self
            .api
            .patch_status(self.name(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                self.last_posted = Some(patch);
                true
            }
            Err(kube::Error::Api(e)) if e.code == 404 => true,
            Err(e) => {
                tracing::warn!(pod = self.name(), error = %e, "posting pod status failed");
                false
            }
        }
    }

    async fn await_deletion(
        &mut self,
        rx: &mut watch::Receiver<Arc<Pod>>,
        gone: &CancellationToken,
    ) {
        loop {
            if self.pod.metadata.deletion_timestamp.is_some() {
                return self.delete().await;
            }
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() { return; }
                    self.pod = rx.borrow_and_update().clone();
                }
                _ = gone.cancelled() => return,
                _ = self.ctx.node_stop.cancelled() => return,
            }
        }
    }

    /// The kubelet's last word: the pod's processes are gone, so the object may go.
    async fn delete(&self) {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match self.api.delete(self.name(), &params).await {
            Ok(_) => tracing::info!(pod = self.name(), "pod removed"),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => tracing::warn!(pod = self.name(), error = %e, "removing pod failed"),
        }
    }

    /// Gives back the address and GPUs and removes the pod's files.
    fn release(&mut self) {
        if let Some(ip) = self.ip.take() {
            self.ctx.ipam.lock().expect("ipam lock").release(ip);
        }
        let mut pool = self.ctx.gpus.lock().expect("gpu lock");
        for i in self.gpus.drain(..) {
            pool[i] = false;
        }
        if self.ctx.node_stop.is_cancelled() {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        let ns = self.pod.metadata.namespace.as_deref().unwrap_or_default();
        let _ = std::fs::remove_dir_all(
            self.ctx
                .state_path()
                .join("logs")
                .join(ns)
                .join(self.name()),
        );
    }
}

fn gpu_count(c: &Container) -> usize {
    let res = c.resources.as_ref();
    let q = res
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("nvidia.com/gpu"))
        .or_else(|| {
            res.and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("nvidia.com/gpu"))
        });
    q.and_then(|q| q.0.parse().ok()).unwrap_or(0)
}

/// Sets up the sandbox (retrying what may appear later, like a missing Secret), then runs
/// the init containers one by one and the app containers together.
async fn containers(
    ctx: Arc<NodeContext>,
    pod: Arc<Pod>,
    shared: Arc<Shared>,
    dir: PathBuf,
    ip: Ipv4Addr,
    gpus: Vec<usize>,
) {
    let Some(spec) = pod.spec.clone() else { return };
    let mut last_problem = String::new();
    let specs = loop {
        match prepare(&ctx, &pod, &dir, ip, &gpus).await {
            Ok(specs) => break specs,
            Err((reason, message)) => {
                if message != last_problem {
                    tracing::warn!(pod = ?pod.metadata.name, %reason, %message, "pod not ready to start");
                    ctx.event(&pod, true, reason, message.clone());
                    last_problem = message.clone();
                }
                shared.update(|s| {
                    for c in s.init.iter_mut().chain(s.containers.iter_mut()) {
                        c.state = State::Waiting {
                            reason: reason.into(),
                            message: message.clone(),
                        };
                    }
                });
                tokio::select! {
                    _ = shared.stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    };
    let (init_specs, app_specs) = specs.split_at(spec.init_containers.as_ref().map_or(0, Vec::len));
    shared.update(|s| {
        s.sandbox_ready = true;
        let first = if s.init.is_empty() {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        for c in s.init.iter_mut().take(1).chain(s.containers.iter_mut()) {
            c.state = State::Waiting {
                reason: first.into(),
                message: String::new(),
            };
        }
    });
    let run = |which, container: Container, spec: Result<ExecSpec, String>| {
        runner::run(runner::Inputs {
            ctx: ctx.clone(),
            pod: pod.clone(),
            shared: shared.clone(),
            dir: dir.clone(),
            ip,
            which,
            container,
            spec,
        })
    };
    for (i, (c, s)) in spec
        .init_containers
        .iter()
        .flatten()
        .zip(init_specs)
        .enumerate()
    {
        let ok = run(runner::Which::Init(i), c.clone(), s.clone()).await;
        if shared.stop.is_cancelled() {
            return;
        }
        if !ok {
            shared.update(|s| {
                s.verdict = Some(PodVerdict {
                    phase: "Failed",
                    reason: "InitContainerFailed".into(),
                    message: format!("init container {:?} failed", c.name),
                });
                for c in s.containers.iter_mut() {
                    c.state = State::Terminated(status::Terminated {
                        exit_code: 0,
                        signal: None,
                        reason: "PodInitializationFailed".into(),
                        message: String::new(),
                        started_at: None,
                        finished_at: Timestamp::now(),
                        container_id: String::new(),
                    });
                }
            });
            return;
        }
    }
    let apps = spec
        .containers
        .iter()
        .zip(app_specs)
        .enumerate()
        .map(|(i, (c, s))| run(runner::Which::App(i), c.clone(), s.clone()));
    futures::future::join_all(apps).await;
}

/// Volumes and each container's exec spec; an error is `(waiting reason, message)`.
async fn prepare(
    ctx: &NodeContext,
    pod: &Pod,
    dir: &std::path::Path,
    ip: Ipv4Addr,
    gpus: &[usize],
) -> Result<Vec<Result<ExecSpec, String>>, (&'static str, String)> {
    let spec = pod.spec.as_ref().expect("admitted pods have a spec");
    let objects = ObjectCache::new(ctx.client.clone());
    let first = spec.containers.first().expect("a pod has a container");
    let owner = runner::user_of(pod, first);
    let inputs = volumes::Inputs {
        client: &ctx.client,
        objects: &objects,
        pod_ip: ip,
        owner: Owner {
            uid: owner.0,
            gid: owner.1,
        },
    };
    let volumes = PodVolumes::materialize(pod, dir, &inputs)
        .await
        .map_err(|e| {
            (
                "ContainerCreating",
                format!("MountVolume.SetUp failed: {e}"),
            )
        })?;
    let mut out = Vec::new();
    let mut gpu_iter = gpus.iter();
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
    {
        let mine: Vec<String> = gpu_iter
            .by_ref()
            .take(gpu_count(c))
            .map(|g| g.to_string())
            .collect();
        let extra: Vec<(String, String)> = if mine.is_empty() {
            Vec::new()
        } else {
            let list = mine.join(",");
            vec![
                ("NVIDIA_VISIBLE_DEVICES".into(), list.clone()),
                ("CUDA_VISIBLE_DEVICES".into(), list),
            ]
        };
        let base = env::Base {
            api_host: &ctx.api_host,
            api_port: ctx.api_port,
            pod_ip: ip,
            extra: &extra,
        };
        let vars = env::resolve(pod, c, &base, &objects)
            .await
            .map_err(|e| ("CreateContainerConfigError", e))?;
        out.push(runner::exec_spec(ctx, pod, c, vars, &volumes, dir));
    }
    Ok(out)
}
