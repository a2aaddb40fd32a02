//! Starting a container as a host process. The node re-executes itself as
//! `ciclo-node run-container SPEC`: that wrapper enters a private mount and UTS namespace,
//! binds the pod's volumes and termination-message file at their paths, drops to the
//! container's user and execs the workload, which keeps the wrapper's pid.

use crate::volumes::Mount;
use anyhow::Context as _;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::os::fd::AsRawFd as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Everything the wrapper needs to start one container process.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ExecSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<PathBuf>,
    pub mounts: Vec<Mount>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub hostname: String,
    /// The node's copy of the termination-message file: a failure to start is written
    /// there, so the pod status says why.
    pub termination_file: PathBuf,
}

/// Exit code and message prefix of a container that could not be started.
pub const START_ERROR_CODE: i32 = 128;
pub const START_ERROR_PREFIX: &str = "ciclo-node: ";

/// The wrapper's side: runs in the child, single-threaded, before the workload exists.
pub fn exec_from_spec(path: &Path) -> anyhow::Result<()> {
    let spec: ExecSpec = serde_json::from_slice(&std::fs::read(path)?)
        .with_context(|| format!("reading container spec {}", path.display()))?;
    // Opened before dropping privileges (close-on-exec, so the workload never sees it).
    let termination = std::fs::OpenOptions::new()
        .append(true)
        .open(&spec.termination_file)
        .ok();
    let fail = |why: String| -> ! {
        let message = format!("{START_ERROR_PREFIX}{why}");
        eprintln!("{message}");
        if let Some(mut f) = termination.as_ref() {
            use std::io::Write as _;
            let _ = f.write_all(message.as_bytes());
        }
        std::process::exit(START_ERROR_CODE);
    };
    if let Err(e) = enter_namespaces(&spec) {
        fail(format!("setting up the container failed: {e:#}"));
    }
    let mut cmd = std::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)));
    if let Some(dir) = &spec.working_dir {
        cmd.current_dir(dir);
    }
    if let Some(gid) = spec.gid {
        cmd.gid(gid);
    }
    if let Some(uid) = spec.uid {
        cmd.uid(uid);
    }
    let err = cmd.exec();
    fail(format!("exec {}: {err}", spec.program.display()));
}

fn enter_namespaces(spec: &ExecSpec) -> anyhow::Result<()> {
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS).context("unshare")?;
    // Private propagation, so the pod's binds never show up on the host or in other pods.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("making / private")?;
    let host = &spec.hostname[..spec.hostname.len().min(63)];
    nix::unistd::sethostname(host).context("sethostname")?;
    // Every source is opened before the first bind: a mountPath may shadow the node's own
    // state directory (a pod mounting something at /work hides /work/…/.cluster/node), so
    // binds go through /proc/self/fd, which keeps pointing at the opened source.
    let mut mounts: Vec<&Mount> = spec.mounts.iter().collect();
    // Parents before children, so a mount inside another mount's path lands inside it.
    mounts.sort_by_key(|m| m.target.components().count());
    let sources = mounts
        .iter()
        .map(|m| {
            std::fs::File::open(&m.source)
                .with_context(|| format!("opening {}", m.source.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for (m, source) in mounts.iter().zip(&sources) {
        let via = PathBuf::from(format!("/proc/self/fd/{}", source.as_raw_fd()));
        ensure_mount_point(source.metadata()?.is_dir(), &m.target)?;
        mount(
            Some(&via),
            &m.target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .with_context(|| format!("binding {} at {}", m.source.display(), m.target.display()))?;
        if m.read_only {
            mount(
                None::<&str>,
                &m.target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .with_context(|| format!("making {} read-only", m.target.display()))?;
        }
    }
    if let Some(dir) = &spec.working_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("workingDir {}", dir.display()))?;
    }
    Ok(())
}

/// A bind needs an existing target of the same kind (file or directory).
fn ensure_mount_point(source_is_dir: bool, target: &Path) -> anyhow::Result<()> {
    if source_is_dir {
        std::fs::create_dir_all(target)?;
    } else if !target.exists() {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::File::create(target)
            .with_context(|| format!("creating mount point {}", target.display()))?;
    }
    Ok(())
}

/// The node's side: starts the wrapper in its own process group, output to `log`.
pub fn spawn(
    self_exe: &Path,
    spec_path: &Path,
    log: &Path,
) -> std::io::Result<tokio::process::Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    tokio::process::Command::new(self_exe)
        .arg(crate::RUN_CONTAINER)
        .arg(spec_path)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
}

/// Signals the whole process group of a container (its children die with it).
pub fn signal_group(pgid: u32, signal: Signal) {
    if let Err(e) = killpg(Pid::from_raw(pgid as i32), signal)
        && e != nix::errno::Errno::ESRCH
    {
        tracing::warn!(pgid, %signal, error = %e, "signalling container failed");
    }
}

/// Finds `program` as an exec would: a path with a slash as given, otherwise on `PATH`.
pub fn resolve_program(program: &str, env: &[(String, String)]) -> Result<PathBuf, String> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let path = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
        .ok_or_else(|| format!("exec: {program:?}: executable file not found in $PATH"))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_is_found_on_the_container_path() {
        let env = vec![("PATH".to_string(), "/nonexistent:/bin:/usr/bin".to_string())];
        let sh = resolve_program("sh", &env).unwrap();
        assert!(sh.ends_with("sh") && sh.is_absolute(), "{sh:?}");
        let err = resolve_program("no-such-program-here", &env).unwrap_err();
        assert!(err.contains("not found in $PATH"), "{err}");
        assert_eq!(
            resolve_program("./run.sh", &env).unwrap(),
            PathBuf::from("./run.sh")
        );
    }
}
