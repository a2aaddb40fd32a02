//! Readiness, liveness and startup probes: httpGet, tcpSocket and exec, against the pod's
//! loopback address, with a kubelet's thresholds and defaults.

use crate::container::{self, ExecSpec};
use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a probe runs against.
#[derive(Clone)]
pub struct Target {
    pub pod_ip: Ipv4Addr,
    pub container: Container,
    /// For exec probes: the node binary and the container's spec to run the command in.
    pub self_exe: PathBuf,
    pub exec_base: ExecSpec,
    pub spec_dir: PathBuf,
}

/// Runs `probe` until `cancel`, calling `report(healthy, why)` each time the verdict flips
/// (the first verdict is always reported).
pub async fn watch(
    probe: Probe,
    target: Target,
    cancel: CancellationToken,
    mut report: impl FnMut(bool, String),
) {
    let secs =
        |v: Option<i32>, default: i32| Duration::from_secs(v.unwrap_or(default).max(0) as u64);
    let period = secs(probe.period_seconds, 10).max(Duration::from_secs(1));
    let timeout = secs(probe.timeout_seconds, 1).max(Duration::from_secs(1));
    let success_threshold = probe.success_threshold.unwrap_or(1).max(1);
    let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1);
    tokio::select! {
        _ = cancel.cancelled() => return,
        _ = tokio::time::sleep(secs(probe.initial_delay_seconds, 0)) => {}
    }
    let (mut successes, mut failures, mut verdict) = (0, 0, None::<bool>);
    loop {
        let outcome = match tokio::time::timeout(timeout, run_once(&probe, &target)).await {
            Ok(o) => o,
            Err(_) => Err(format!("probe timed out after {}s", timeout.as_secs())),
        };
        match outcome {
            Ok(()) => {
                successes += 1;
                failures = 0;
                if successes >= success_threshold && verdict != Some(true) {
                    verdict = Some(true);
                    report(true, String::new());
                }
            }
            Err(why) => {
                failures += 1;
                successes = 0;
                if failures >= failure_threshold && verdict != Some(false) {
                    verdict = Some(false);
                    report(false, why);
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
    }
}

async fn run_once(probe: &Probe, target: &Target) -> Result<(), String> {
    if let Some(h) = &probe.http_get {
        let host = h.host.clone().unwrap_or_else(|| target.pod_ip.to_string());
        let port = port_number(&h.port, &target.container)?;
        let scheme = h.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
        let path = h.path.as_deref().unwrap_or("/");
        let url = format!(
            "{scheme}://{host}:{port}{}{path}",
            if path.starts_with('/') { "" } else { "/" }
        );
        let client = reqwest::Client::builder()
            // Probes never go through a proxy: they target the pod's own loopback address.
            .no_proxy()
            .danger_accept_invalid_certs(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let mut req = client.get(&url).header("User-Agent", "kube-probe/1.36");
        for header in h.http_headers.iter().flatten() {
            req = req.header(&header.name, &header.value);
        }
        let resp = req.send().await.map_err(|e| format!("Get {url:?}: {e}"))?;
        let code = resp.status().as_u16();
        return if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        };
    }
    if let Some(t) = &probe.tcp_socket {
        let host = t.host.clone().unwrap_or_else(|| target.pod_ip.to_string());
        let port = port_number(&t.port, &target.container)?;
        return tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map(drop)
            .map_err(|e| format!("dial tcp {host}:{port}: {e}"));
    }
    if let Some(e) = &probe.exec {
        let command = e.command.clone().unwrap_or_default();
        let (program, args) = command
            .split_first()
            .ok_or("exec probe without a command")?;
        let mut spec = target.exec_base.clone();
        spec.program = container::resolve_program(program, &spec.env)?;
        spec.args = args.to_vec();
        let path = target
            .spec_dir
            .join(format!("probe-{}.json", target.container.name));
        std::fs::write(&path, serde_json::to_vec(&spec).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let status = tokio::process::Command::new(&target.self_exe)
            .arg(crate::RUN_CONTAINER)
            .arg(&path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .status()
            .await
            .map_err(|e| e.to_string())?;
        return if status.success() {
            Ok(())
        } else {
            Err(format!("command {command:?} exited with {status}"))
        };
    }
    Err("probe has no handler".into())
}

/// A probe port: a number, or the name of one of the container's ports.
fn port_number(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("container has no port named {name:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_ports_resolve_from_the_container() {
        let c: Container =
            serde_yaml::from_str("{name: c, ports: [{name: http, containerPort: 8080}]}").unwrap();
        assert_eq!(
            port_number(&IntOrString::String("http".into()), &c),
            Ok(8080)
        );
        assert_eq!(port_number(&IntOrString::Int(9), &c), Ok(9));
        assert!(
            port_number(&IntOrString::String("grpc".into()), &c)
                .unwrap_err()
                .contains("grpc")
        );
    }
}
