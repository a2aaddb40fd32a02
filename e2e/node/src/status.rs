//! What the node knows of a pod's containers, and the PodStatus a kubelet would post
//! for it. Building the status is pure, so its rules are tested without a cluster.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodCondition};
use serde_json::{Value, json};
use std::net::Ipv4Addr;

#[derive(Debug, Clone, PartialEq)]
pub struct Terminated {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: String,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
    pub container_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started_at: Timestamp,
        container_id: String,
    },
    Terminated(Terminated),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerState {
    pub name: String,
    pub image: String,
    pub state: State,
    pub last: Option<Terminated>,
    pub restart_count: i32,
    pub ready: bool,
    pub started: bool,
}

impl ContainerState {
    pub fn new(name: &str, image: &str) -> Self {
        Self {
            name: name.into(),
            image: image.into(),
            state: State::Waiting {
                reason: "PodInitializing".into(),
                message: String::new(),
            },
            last: None,
            restart_count: 0,
            ready: false,
            started: false,
        }
    }

    fn terminated_ok(&self) -> bool {
        matches!(&self.state, State::Terminated(t) if t.exit_code == 0)
    }

    /// Whether the container ever ran (it is running, restarting or finished).
    fn has_run(&self) -> bool {
        !matches!(self.state, State::Waiting { .. }) || self.last.is_some()
    }
}

/// A verdict about the whole pod that overrides what its containers say.
#[derive(Debug, Clone, PartialEq)]
pub struct PodVerdict {
    pub phase: &'static str,
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodState {
    pub pod_ip: Option<Ipv4Addr>,
    pub start_time: Option<Timestamp>,
    /// Sandbox ready: address assigned and volumes written.
    pub sandbox_ready: bool,
    pub init: Vec<ContainerState>,
    pub containers: Vec<ContainerState>,
    pub verdict: Option<PodVerdict>,
}

impl PodState {
    pub fn phase(&self) -> &'static str {
        if let Some(v) = &self.verdict {
            return v.phase;
        }
        if !self.init.iter().all(ContainerState::terminated_ok) {
            return "Pending";
        }
        if !self.containers.is_empty()
            && self
                .containers
                .iter()
                .all(|c| matches!(c.state, State::Terminated(_)))
        {
            return if self.containers.iter().all(ContainerState::terminated_ok) {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        if self.containers.iter().any(ContainerState::has_run) {
            "Running"
        } else {
            "Pending"
        }
    }
}

/// The status patch for `pod` (a merge patch replaces the lists, so conditions the node
/// does not own are carried over from `pod`).
pub fn build(pod: &Pod, state: &PodState, now: Timestamp) -> Value {
    let phase = state.phase();
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let initialized = state.init.iter().all(ContainerState::terminated_ok);
    let containers_ready = !terminal && initialized && state.containers.iter().all(|c| c.ready);
    let gates_ok = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .into_iter()
        .flatten()
        .all(|g| condition(pod, &g.condition_type).is_some_and(|c| c.status == "True"));
    let not_ready_reason = if terminal {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let mut owned = vec![
        (
            "PodReadyToStartContainers",
            state.sandbox_ready && !terminal,
            "",
        ),
        (
            "Initialized",
            initialized,
            if terminal {
                "PodCompleted"
            } else {
                "ContainersNotInitialized"
            },
        ),
        ("ContainersReady", containers_ready, not_ready_reason),
        (
            "Ready",
            containers_ready && gates_ok,
            if containers_ready {
                "ReadinessGatesNotReady"
            } else {
                not_ready_reason
            },
        ),
    ];
    if state.init.is_empty() {
        owned[1].2 = "";
    }
    let mut conditions: Vec<Value> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| !owned.iter().any(|(t, ..)| *t == c.type_))
        .map(|c| serde_json::to_value(c).unwrap_or_default())
        .collect();
    for (type_, ok, reason) in owned {
        let status = if ok { "True" } else { "False" };
        let since = condition(pod, type_)
            .filter(|c| c.status == status)
            .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0))
            .unwrap_or(now);
        let mut c =
            json!({"type": type_, "status": status, "lastTransitionTime": since.to_string()});
        if !ok && !reason.is_empty() {
            c["reason"] = json!(reason);
        }
        conditions.push(c);
    }
    let mut status = json!({
        "phase": phase,
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "conditions": conditions,
        "initContainerStatuses": state.init.iter().map(container_status).collect::<Vec<_>>(),
        "containerStatuses": state.containers.iter().map(container_status).collect::<Vec<_>>(),
    });
    if let Some(ip) = state.pod_ip {
        status["podIP"] = json!(ip.to_string());
        status["podIPs"] = json!([{"ip": ip.to_string()}]);
    }
    if let Some(t) = state.start_time {
        status["startTime"] = json!(t.to_string());
    }
    match &state.verdict {
        Some(v) => {
            status["reason"] = json!(v.reason);
            status["message"] = json!(v.message);
        }
        None => {
            status["reason"] = Value::Null;
            status["message"] = Value::Null;
        }
    }
    json!({"status": status})
}

fn condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn container_status(c: &ContainerState) -> Value {
    let mut v = json!({
        "name": c.name,
        "image": c.image,
        "imageID": "",
        "ready": c.ready,
        "restartCount": c.restart_count,
        "started": c.started,
        "state": state_json(&c.state),
        "lastState": c.last.as_ref().map(terminated_json).map(|t| json!({"terminated": t})).unwrap_or(json!({})),
    });
    match &c.state {
        State::Running { container_id, .. } => v["containerID"] = json!(container_id),
        State::Terminated(t) => v["containerID"] = json!(t.container_id),
        State::Waiting { .. } => {}
    }
    v
}

fn state_json(s: &State) -> Value {
    match s {
        State::Waiting { reason, message } => {
            let mut w = json!({"reason": reason});
            if !message.is_empty() {
                w["message"] = json!(message);
            }
            json!({"waiting": w})
        }
        State::Running { started_at, .. } => {
            json!({"running": {"startedAt": started_at.to_string()}})
        }
        State::Terminated(t) => json!({"terminated": terminated_json(t)}),
    }
}

fn terminated_json(t: &Terminated) -> Value {
    let mut v = json!({
        "exitCode": t.exit_code,
        "reason": t.reason,
        "finishedAt": t.finished_at.to_string(),
        "containerID": t.container_id,
    });
    if let Some(s) = t.started_at {
        v["startedAt"] = json!(s.to_string());
    }
    if let Some(sig) = t.signal {
        v["signal"] = json!(sig);
    }
    if !t.message.is_empty() {
        v["message"] = json!(t.message);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(code: i32) -> State {
        State::Terminated(Terminated {
            exit_code: code,
            signal: None,
            reason: if code == 0 {
                "Completed".into()
            } else {
                "Error".into()
            },
            message: String::new(),
            started_at: None,
            finished_at: Timestamp::UNIX_EPOCH,
            container_id: "ciclo://x".into(),
        })
    }

    fn running() -> State {
        State::Running {
            started_at: Timestamp::UNIX_EPOCH,
            container_id: "ciclo://x".into(),
        }
    }

    fn with(states: &[State]) -> PodState {
        PodState {
            containers: states
                .iter()
                .enumerate()
                .map(|(i, s)| ContainerState {
                    state: s.clone(),
                    ..ContainerState::new(&format!("c{i}"), "img")
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn phase_follows_the_containers() {
        assert_eq!(
            with(&[ContainerState::new("a", "i").state]).phase(),
            "Pending"
        );
        assert_eq!(with(&[running(), done(0)]).phase(), "Running");
        assert_eq!(with(&[done(0), done(0)]).phase(), "Succeeded");
        assert_eq!(with(&[done(0), done(3)]).phase(), "Failed");
    }

    #[test]
    fn a_container_waiting_to_restart_keeps_the_pod_running() {
        let mut s = with(&[State::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: String::new(),
        }]);
        s.containers[0].last = Some(match done(1) {
            State::Terminated(t) => t,
            _ => unreachable!(),
        });
        assert_eq!(s.phase(), "Running");
    }

    #[test]
    fn unfinished_init_containers_keep_the_pod_pending() {
        let mut s = with(&[ContainerState::new("a", "i").state]);
        s.init = vec![ContainerState {
            state: running(),
            ..ContainerState::new("init", "i")
        }];
        assert_eq!(s.phase(), "Pending");
        s.init[0].state = done(0);
        s.containers[0].state = running();
        assert_eq!(s.phase(), "Running");
    }

    #[test]
    fn a_verdict_overrides_the_containers() {
        let mut s = with(&[running()]);
        s.verdict = Some(PodVerdict {
            phase: "Failed",
            reason: "DeadlineExceeded".into(),
            message: "m".into(),
        });
        let pod: Pod = serde_yaml::from_str("metadata: {name: p}").unwrap();
        let status = build(&pod, &s, Timestamp::UNIX_EPOCH);
        assert_eq!(status["status"]["phase"], "Failed");
        assert_eq!(status["status"]["reason"], "DeadlineExceeded");
    }

    #[test]
    fn ready_needs_every_container_ready_and_keeps_foreign_conditions() {
        let pod: Pod = serde_yaml::from_str(
            r#"
metadata: {name: p}
status:
  conditions:
  - {type: PodScheduled, status: "True", lastTransitionTime: "2026-01-01T00:00:00Z"}
  - {type: Ready, status: "False", lastTransitionTime: "2026-01-01T00:00:00Z"}
"#,
        )
        .unwrap();
        let mut s = with(&[running(), running()]);
        s.containers[0].ready = true;
        let now: Timestamp = "2026-02-02T00:00:00Z".parse().unwrap();
        let status = build(&pod, &s, now);
        let conds = status["status"]["conditions"].as_array().unwrap();
        let get = |t: &str| conds.iter().find(|c| c["type"] == t).unwrap().clone();
        assert_eq!(get("PodScheduled")["status"], "True");
        assert_eq!(get("Ready")["status"], "False");
        assert_eq!(
            get("Ready")["lastTransitionTime"],
            "2026-01-01T00:00:00Z",
            "unchanged status keeps its time"
        );
        s.containers[1].ready = true;
        let status = build(&pod, &s, now);
        let conds = status["status"]["conditions"].as_array().unwrap();
        let ready = conds.iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["status"], "True");
        assert_eq!(ready["lastTransitionTime"], "2026-02-02T00:00:00Z");
    }

    #[test]
    fn terminated_container_reports_exit_code_and_message() {
        let mut s = with(&[done(3)]);
        if let State::Terminated(t) = &mut s.containers[0].state {
            t.message = "boom".into();
        }
        let pod: Pod = serde_yaml::from_str("metadata: {name: p}").unwrap();
        let status = build(&pod, &s, Timestamp::UNIX_EPOCH);
        let t = &status["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(t["exitCode"], 3);
        assert_eq!(t["message"], "boom");
        assert_eq!(t["reason"], "Error");
    }
}
