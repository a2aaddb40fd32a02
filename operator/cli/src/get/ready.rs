//! Reading a kstatus condition as kstatus does: one written for an older generation of the
//! spec (its `observedGeneration`, else the status's, is below `metadata.generation`) says
//! nothing about the spec as it is now, so it shows as not yet observed rather than as a
//! stale True — right after `kubectl apply`, the old `Ready=True` must not look like success.

use ciclo_api::conditions::{self, Kstatus};
use serde::Serialize;

/// The reason shown for a condition the operator has not written for the current spec.
pub const NOT_OBSERVED: &str = "NotObserved";

/// A condition as `ciclo get` shows it.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// True, False, or Unknown (also when absent or written for an older generation).
    pub status: String,
    pub reason: String,
    pub message: String,
    /// Whether the operator wrote it for the current generation.
    #[serde(skip)]
    pub observed: bool,
}

/// The condition `type_` of an object whose spec is at `generation`, from its `status`
/// (whose own `observedGeneration` is `status_generation`).
pub fn judge<S: Kstatus>(
    generation: Option<i64>,
    status: Option<&S>,
    status_generation: Option<i64>,
    type_: &str,
) -> Judged {
    let Some(c) = status.and_then(|s| conditions::find(s.conditions(), type_)) else {
        return unknown(format!("no {type_} condition yet"));
    };
    if let (Some(spec), Some(seen)) = (generation, c.observed_generation.or(status_generation))
        && seen < spec
    {
        return unknown(format!(
            "{type_} was written for generation {seen}; the spec is at generation {spec}"
        ));
    }
    Judged {
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        observed: true,
    }
}

fn unknown(message: String) -> Judged {
    Judged {
        status: "Unknown".into(),
        reason: NOT_OBSERVED.into(),
        message,
        observed: false,
    }
}
