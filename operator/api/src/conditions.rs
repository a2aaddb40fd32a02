//! kstatus conditions: `Ready`, `Reconciling` and `Stalled` with `observedGeneration`, so
//! Flux `wait`, Argo CD health and `kubectl wait` understand every ciclo resource.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// A condition to set: type, whether it holds, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Set {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Set {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Not ready, and cannot progress until its spec (or what it refers to) changes.
pub fn stalled(reason: &str, message: impl Into<String>) -> Vec<Set> {
    let message = message.into();
    vec![
        Set::new(READY, false, reason, message.clone()),
        Set::new(STALLED, true, reason, message),
        Set::new(RECONCILING, false, "", ""),
    ]
}

/// Not ready yet, and working towards it (or waiting for something that will come).
pub fn reconciling(reason: &str, message: impl Into<String>) -> Vec<Set> {
    let message = message.into();
    vec![
        Set::new(READY, false, reason, message.clone()),
        Set::new(STALLED, false, "", ""),
        Set::new(RECONCILING, true, reason, message),
    ]
}

/// Ready.
pub fn ready(reason: &str, message: impl Into<String>) -> Vec<Set> {
    vec![
        Set::new(READY, true, reason, message),
        Set::new(STALLED, false, "", ""),
        Set::new(RECONCILING, false, "", ""),
    ]
}

/// Not ready, on purpose (suspended): neither progressing nor stalled.
pub fn idle(reason: &str, message: impl Into<String>) -> Vec<Set> {
    vec![
        Set::new(READY, false, reason, message),
        Set::new(STALLED, false, "", ""),
        Set::new(RECONCILING, false, "", ""),
    ]
}

/// A status with kstatus conditions and `observedGeneration`.
pub trait Kstatus: Default + Clone + serde::Serialize {
    fn conditions(&self) -> &[Condition];
    fn set_conditions(&mut self, conditions: Vec<Condition>, observed_generation: Option<i64>);
}

macro_rules! kstatus {
    ($($status:ty),*) => {$(
        impl Kstatus for $status {
            fn conditions(&self) -> &[Condition] {
                &self.conditions
            }
            fn set_conditions(&mut self, conditions: Vec<Condition>, observed_generation: Option<i64>) {
                self.conditions = conditions;
                self.observed_generation = observed_generation;
            }
        }
    )*};
}

kstatus!(
    crate::dataset::DatasetStatus,
    crate::training_run::TrainingRunStatus,
    crate::model_version::ModelVersionStatus,
    crate::model_deployment::ModelDeploymentStatus
);

/// Merges `wanted` into `current`: a condition whose status did not change keeps its
/// `lastTransitionTime`; `Reconciling`/`Stalled` that are false are dropped (kstatus
/// "abnormal-true" conditions are only present while true); the result is sorted by type.
pub fn merge(
    current: &[Condition],
    wanted: &[Set],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = Vec::new();
    for w in wanted {
        let abnormal_true = matches!(w.type_, RECONCILING | STALLED);
        if abnormal_true && !w.status {
            continue;
        }
        let status = if w.status { "True" } else { "False" };
        let since = current
            .iter()
            .find(|c| c.type_ == w.type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now));
        out.push(Condition {
            type_: w.type_.to_string(),
            status: status.into(),
            reason: w.reason.clone(),
            message: w.message.clone(),
            observed_generation: generation,
            last_transition_time: since,
        });
    }
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// The condition of `type_` in `conditions`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether `type_` is present and true.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn unchanged_conditions_keep_their_transition_time() {
        let t0 = at("2026-01-01T00:00:00Z");
        let first = merge(
            &[],
            &[Set::new(READY, false, "DatasetNotFound", "m")],
            Some(1),
            t0,
        );
        let later = merge(
            &first,
            &[Set::new(READY, false, "DatasetNotFound", "m2")],
            Some(2),
            at("2026-01-02T00:00:00Z"),
        );
        assert_eq!(later[0].last_transition_time.0, t0);
        assert_eq!(later[0].observed_generation, Some(2));
        assert_eq!(later[0].message, "m2");
        let flipped = merge(
            &later,
            &[Set::new(READY, true, "Ready", "")],
            Some(2),
            at("2026-01-03T00:00:00Z"),
        );
        assert_eq!(
            flipped[0].last_transition_time.0,
            at("2026-01-03T00:00:00Z")
        );
    }

    #[test]
    fn false_reconciling_and_stalled_are_removed() {
        let now = at("2026-01-01T00:00:00Z");
        let c = merge(
            &[],
            &[
                Set::new(READY, true, "Ready", ""),
                Set::new(STALLED, false, "", ""),
                Set::new(RECONCILING, false, "", ""),
            ],
            Some(1),
            now,
        );
        assert_eq!(
            c.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            vec![READY]
        );
    }
}
