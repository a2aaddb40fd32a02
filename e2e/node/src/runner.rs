//! One container's lifecycle: start it, probe it, wait for it, restart it per the pod's
//! restartPolicy with back-off, and stop it within the grace period when asked.

use crate::container::{self, ExecSpec};
use crate::env;
use crate::pod::NodeContext;
use crate::probe;
use crate::status::{State, Terminated};
use crate::volumes::{Mount, PodVolumes};
use crate::worker::Shared;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use nix::sys::signal::Signal;
use std::io::{Read as _, Seek as _};
use std::net::Ipv4Addr;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Kubernetes caps a termination message at 4 KiB.
const MAX_TERMINATION_MESSAGE: u64 = 4096;
/// After running this long, a crash is not part of a crash loop and back-off starts over.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The user a container runs as when it must not be root and names no user: the image's
/// user is unknown to the node, so it takes distroless' `nonroot`.
const DEFAULT_NON_ROOT_UID: u32 = 65532;

#[derive(Clone, Copy, Debug)]
pub enum Which {
    Init(usize),
    App(usize),
}

pub struct Inputs {
    pub ctx: Arc<NodeContext>,
    pub pod: Arc<Pod>,
    pub shared: Arc<Shared>,
    pub dir: PathBuf,
    pub ip: Ipv4Addr,
    pub which: Which,
    pub container: Container,
    pub spec: Result<ExecSpec, String>,
}

impl Inputs {
    fn update(&self, f: impl FnOnce(&mut crate::status::ContainerState)) {
        self.shared.update(|s| {
            let c = match self.which {
                Which::Init(i) => &mut s.init[i],
                Which::App(i) => &mut s.containers[i],
            };
            f(c)
        });
    }

    fn restart_count(&self) -> i32 {
        let s = self.shared.state.lock().expect("pod state lock");
        match self.which {
            Which::Init(i) => s.init[i].restart_count,
            Which::App(i) => s.containers[i].restart_count,
        }
    }
}

/// `(uid, gid)` the container runs as, from its and the pod's securityContext.
pub fn user_of(pod: &Pod, c: &Container) -> (Option<u32>, Option<u32>) {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc = c.security_context.as_ref();
    let uid = sc
        .and_then(|s| s.run_as_user)
        .or(pod_sc.and_then(|s| s.run_as_user));
    let gid = sc
        .and_then(|s| s.run_as_group)
        .or(pod_sc.and_then(|s| s.run_as_group));
    let non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or(pod_sc.and_then(|s| s.run_as_non_root))
        == Some(true);
    let uid = uid
        .map(|u| u as u32)
        .or(non_root.then_some(DEFAULT_NON_ROOT_UID));
    let gid = gid.map(|g| g as u32).or(uid.filter(|u| *u != 0));
    (uid, gid)
}

/// The exec spec of `c`, or why it cannot start (a kubelet's `StartError`).
pub fn exec_spec(
    ctx: &NodeContext,
    pod: &Pod,
    c: &Container,
    env: Vec<(String, String)>,
    volumes: &PodVolumes,
    dir: &Path,
) -> Result<ExecSpec, String> {
    let expand = |v: &String| env::expand(v, &env);
    let args: Vec<String> = c.args.iter().flatten().map(expand).collect();
    let image = c.image.as_deref().unwrap_or_default();
    let (program, args) = match c.command.as_deref() {
        Some([program, rest @ ..]) => {
            let program = container::resolve_program(&expand(program), &env)?;
            (program, rest.iter().map(expand).chain(args).collect())
        }
        _ => {
            let program = ctx.images.lookup(image).ok_or_else(|| {
                format!("image {image:?} has no host entrypoint: give the container a command, or map the image with --image-entrypoint")
            })?;
            (program.clone(), args)
        }
    };
    let mut mounts = volumes.mounts_for(c)?;
    let termination = termination_file(dir, &c.name);
    let (uid, gid) = user_of(pod, c);
    std::fs::create_dir_all(termination.parent().expect("has a parent"))
        .map_err(|e| e.to_string())?;
    std::fs::write(&termination, b"").map_err(|e| e.to_string())?;
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::chown(&termination, uid, gid).map_err(|e| e.to_string())?;
    }
    mounts.push(Mount {
        source: termination.clone(),
        target: PathBuf::from(
            c.termination_message_path
                .as_deref()
                .unwrap_or("/dev/termination-log"),
        ),
        read_only: false,
    });
    Ok(ExecSpec {
        program,
        args,
        env,
        working_dir: c.working_dir.as_ref().map(PathBuf::from),
        mounts,
        uid,
        gid,
        hostname: pod.metadata.name.clone().unwrap_or_default(),
        termination_file: termination,
    })
}

fn termination_file(dir: &Path, container: &str) -> PathBuf {
    dir.join("termination").join(container)
}

/// Runs the container until it finishes for good; true when it finished successfully.
pub async fn run(inp: Inputs) -> bool {
    let pod_policy = inp
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into());
    // Init containers run to completion: Always means OnFailure for them.
    let policy = match (inp.which, pod_policy.as_str()) {
        (Which::Init(_), "Never") => "Never",
        (Which::Init(_), _) => "OnFailure",
        (_, p) => {
            if p == "Never" || p == "OnFailure" {
                p
            } else {
                "Always"
            }
        }
    };
    let ns = inp.pod.metadata.namespace.clone().unwrap_or_default();
    let pod_name = inp.pod.metadata.name.clone().unwrap_or_default();
    let log_dir = inp.ctx.log_dir(&ns, &pod_name, &inp.container.name);
    let spec_path = inp
        .dir
        .join("specs")
        .join(format!("{}.json", inp.container.name));
    let mut spec = inp.spec.clone();
    if let Ok(s) = &spec {
        let written = std::fs::create_dir_all(&log_dir)
            .and_then(|_| std::fs::create_dir_all(spec_path.parent().expect("has a parent")))
            .and_then(|_| std::fs::write(&spec_path, serde_json::to_vec(s).expect("serialisable")));
        if let Err(e) = written {
            spec = Err(format!("preparing the container: {e}"));
        }
    }
    let mut backoff_step = 0u32;
    loop {
        let restart = inp.restart_count();
        let started = Instant::now();
        let term = match &spec {
            Err(message) => Terminated {
                exit_code: container::START_ERROR_CODE,
                signal: None,
                reason: "StartError".into(),
                message: message.clone(),
                started_at: None,
                finished_at: Timestamp::now(),
                container_id: String::new(),
            },
            Ok(s) => run_once(&inp, s, &spec_path, &log_dir, restart).await,
        };
        let succeeded = term.exit_code == 0;
        let again = !inp.shared.stop.is_cancelled()
            && match policy {
                "Always" => true,
                "OnFailure" => !succeeded,
                _ => false,
            };
        if !again {
            inp.update(|c| {
                c.state = State::Terminated(term);
                c.ready = false;
            });
            return succeeded;
        }
        if started.elapsed() > BACKOFF_RESET_AFTER {
            backoff_step = 0;
        }
        let delay = (inp.ctx.restart_backoff * 2u32.saturating_pow(backoff_step)).min(MAX_BACKOFF);
        backoff_step = backoff_step.saturating_add(1);
        let message = format!(
            "back-off {}s restarting failed container={} pod={pod_name}",
            delay.as_secs(),
            inp.container.name
        );
        inp.ctx.event(
            &inp.pod,
            true,
            "BackOff",
            format!(
                "Back-off restarting failed container {}",
                inp.container.name
            ),
        );
        inp.update(|c| {
            c.last = Some(term.clone());
            c.restart_count += 1;
            c.ready = false;
            c.started = false;
            c.state = State::Waiting {
                reason: "CrashLoopBackOff".into(),
                message,
            };
        });
        tokio::select! {
            _ = inp.shared.stop.cancelled() => {
                inp.update(|c| c.state = State::Terminated(term));
                return false;
            }
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// One run of the container process, from spawn to exit.
async fn run_once(
    inp: &Inputs,
    spec: &ExecSpec,
    spec_path: &Path,
    log_dir: &Path,
    restart: i32,
) -> Terminated {
    let name = &inp.container.name;
    let uid = inp.pod.metadata.uid.as_deref().unwrap_or_default();
    let container_id = format!("ciclo://{uid}/{name}/{restart}");
    let term_path = termination_file(&inp.dir, name);
    // A fresh run starts with an empty termination message.
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&term_path);
    let log = log_dir.join(format!("{restart}.log"));
    let started_at = Timestamp::now();
    let mut child = match container::spawn(&inp.ctx.self_exe, spec_path, &log) {
        Ok(c) => c,
        Err(e) => {
            return Terminated {
                exit_code: container::START_ERROR_CODE,
                signal: None,
                reason: "StartError".into(),
                message: format!("starting the container process: {e}"),
                started_at: None,
                finished_at: Timestamp::now(),
                container_id,
            };
        }
    };
    let pgid = child.id().unwrap_or_default();
    let pgid_file = inp.ctx.pgid_file(pgid);
    let _ = std::fs::write(&pgid_file, b"");
    let c = &inp.container;
    inp.update(|s| {
        s.state = State::Running {
            started_at,
            container_id: container_id.clone(),
        };
        s.started = c.startup_probe.is_none();
        s.ready = c.startup_probe.is_none() && c.readiness_probe.is_none();
    });
    inp.ctx.event(
        &inp.pod,
        false,
        "Started",
        format!("Started container {name}"),
    );

    let probes = inp.shared.stop.child_token();
    let liveness_failed = Arc::new(Notify::new());
    if matches!(inp.which, Which::App(_)) {
        start_probes(inp, spec, probes.clone(), liveness_failed.clone());
    }
    let exited = tokio::select! {
        s = child.wait() => Some(s),
        _ = inp.shared.stop.cancelled() => None,
        _ = liveness_failed.notified() => {
            inp.ctx.event(&inp.pod, false, "Killing", format!("Container {name} failed liveness probe, will be restarted"));
            None
        }
    };
    let status = match exited {
        Some(s) => s,
        None => {
            let grace = if inp.shared.stop.is_cancelled() {
                *inp.shared.grace.lock().expect("grace lock")
            } else {
                let pod_grace = inp
                    .pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
                    .unwrap_or(30);
                let probe_grace = c
                    .liveness_probe
                    .as_ref()
                    .and_then(|p| p.termination_grace_period_seconds);
                Duration::from_secs(probe_grace.unwrap_or(pod_grace).max(0) as u64)
            };
            container::signal_group(pgid, Signal::SIGTERM);
            match tokio::time::timeout(grace, child.wait()).await {
                Ok(s) => s,
                Err(_) => {
                    container::signal_group(pgid, Signal::SIGKILL);
                    child.wait().await
                }
            }
        }
    };
    probes.cancel();
    // Whatever the main process left behind in its group goes with it.
    container::signal_group(pgid, Signal::SIGKILL);
    let _ = std::fs::remove_file(&pgid_file);
    let _ = std::fs::write(log_dir.join(format!("{restart}.done")), b"");
    let (exit_code, signal) = match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => (code, None),
            (None, Some(sig)) => (128 + sig, Some(sig)),
            _ => (255, None),
        },
        Err(_) => (255, None),
    };
    let mut message = read_tail(&term_path, MAX_TERMINATION_MESSAGE);
    if message.is_empty()
        && exit_code != 0
        && c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError")
    {
        message = read_tail(&log, 2048);
    }
    let reason = match exit_code {
        0 => "Completed",
        container::START_ERROR_CODE if message.starts_with(container::START_ERROR_PREFIX) => {
            "StartError"
        }
        _ => "Error",
    };
    Terminated {
        exit_code,
        signal,
        reason: reason.into(),
        message,
        started_at: Some(started_at),
        finished_at: Timestamp::now(),
        container_id,
    }
}

fn start_probes(
    inp: &Inputs,
    spec: &ExecSpec,
    cancel: tokio_util::sync::CancellationToken,
    liveness_failed: Arc<Notify>,
) {
    let c = inp.container.clone();
    let target = probe::Target {
        pod_ip: inp.ip,
        container: c.clone(),
        self_exe: inp.ctx.self_exe.clone(),
        exec_base: spec.clone(),
        spec_dir: inp.dir.join("specs"),
    };
    let (shared, which, ctx, pod) = (
        inp.shared.clone(),
        inp.which,
        inp.ctx.clone(),
        inp.pod.clone(),
    );
    let set = move |f: &dyn Fn(&mut crate::status::ContainerState)| {
        shared.update(|s| {
            let c = match which {
                Which::Init(i) => &mut s.init[i],
                Which::App(i) => &mut s.containers[i],
            };
            f(c)
        })
    };
    let set = Arc::new(set);
    tokio::spawn(async move {
        if let Some(p) = c.startup_probe.clone() {
            let passed = Arc::new(Notify::new());
            let (passed2, set2, ctx2, pod2, name) = (
                passed.clone(),
                set.clone(),
                ctx.clone(),
                pod.clone(),
                c.name.clone(),
            );
            let startup_cancel = cancel.child_token();
            let stop_startup = startup_cancel.clone();
            let probe_task = tokio::spawn(probe::watch(
                p,
                target.clone(),
                startup_cancel,
                move |ok, why| {
                    if ok {
                        set2(&|s| s.started = true);
                        passed2.notify_one();
                    } else {
                        ctx2.event(
                            &pod2,
                            true,
                            "Unhealthy",
                            format!("Startup probe failed: {why}"),
                        );
                    }
                },
            ));
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = passed.notified() => stop_startup.cancel(),
            }
            let _ = probe_task.await;
            let _ = name;
        }
        match c.readiness_probe.clone() {
            Some(p) => {
                let (set, ctx, pod) = (set.clone(), ctx.clone(), pod.clone());
                tokio::spawn(probe::watch(
                    p,
                    target.clone(),
                    cancel.clone(),
                    move |ok, why| {
                        set(&|s| s.ready = ok);
                        if !ok {
                            ctx.event(
                                &pod,
                                true,
                                "Unhealthy",
                                format!("Readiness probe failed: {why}"),
                            );
                        }
                    },
                ));
            }
            None => set(&|s| s.ready = true),
        }
        if let Some(p) = c.liveness_probe.clone() {
            tokio::spawn(probe::watch(p, target, cancel, move |ok, why| {
                if !ok {
                    ctx.event(
                        &pod,
                        true,
                        "Unhealthy",
                        format!("Liveness probe failed: {why}"),
                    );
                    liveness_failed.notify_one();
                }
            }));
        }
    });
}

/// The last `max` bytes of a file, as text.
fn read_tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(std::io::SeekFrom::Start(len.saturating_sub(max)));
    let mut buf = Vec::new();
    let _ = f.take(max).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_root_pods_without_a_user_run_as_nonroot() {
        let pod: Pod = serde_yaml::from_str(
            "spec: {securityContext: {runAsNonRoot: true}, containers: [{name: a}, {name: b, securityContext: {runAsUser: 1000, runAsGroup: 3000}}]}",
        )
        .unwrap();
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(
            user_of(&pod, &spec.containers[0]),
            (Some(65532), Some(65532))
        );
        assert_eq!(user_of(&pod, &spec.containers[1]), (Some(1000), Some(3000)));
        let root: Pod = serde_yaml::from_str("spec: {containers: [{name: a}]}").unwrap();
        assert_eq!(
            user_of(&root, &root.spec.as_ref().unwrap().containers[0]),
            (None, None)
        );
    }
}
