//! The pure steps of the Dataset controller: is the spec usable, is a check due (or when),
//! and which conditions the status shows.

use super::job;
use super::record::rejection;
use crate::controllers::artifact_store::Unusable;
use ciclo_api::conditions::{self, Set};
use ciclo_api::dataset::{Dataset, FailureReason, Outcome, Verdict};
use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt as _;
use kube::runtime::controller::Action;
use std::time::Duration;

pub const VALIDATED: &str = "Validated";
pub const SOURCE_UNAVAILABLE: &str = "SourceUnavailable";
/// A missing Secret is not watched (the operator may only `get` Secrets), so look again.
const SECRET_RECHECK: Duration = Duration::from_secs(30);
/// A failed check is retried after this long, or after `interval` if that is sooner.
const RETRY_FAILED: Duration = Duration::from_secs(120);

/// What the controller knows besides the Dataset.
pub struct Facts<'a> {
    /// Whether the credentials Secret exists (`None`: none is named).
    pub secret_found: Option<bool>,
    /// Why the namespace has no artifact store to keep versions in, if it has none.
    pub store_problem: Option<&'a Unusable>,
    /// The check Job running now, if any.
    pub running: Option<&'a str>,
    pub now: Timestamp,
}

/// The outcome of the pure steps.
#[derive(Debug)]
pub struct Decision {
    pub conditions: Vec<Set>,
    /// Start the check Job of this name.
    pub start: Option<String>,
    pub action: Action,
}

pub fn decide(ds: &Dataset, facts: &Facts) -> Decision {
    let stalled = |reason: &str, message: String, action: Action| Decision {
        conditions: with_check_conditions(ds, conditions::stalled(reason, message)),
        start: None,
        action,
    };
    let interval = match parse_interval(&ds.spec.interval) {
        Ok(i) => i,
        Err(why) => {
            return stalled(
                "InvalidInterval",
                format!("spec.interval: {why}"),
                Action::await_change(),
            );
        }
    };
    if facts.secret_found == Some(false) {
        let name = ds
            .spec
            .source
            .credentials_secret_ref
            .as_ref()
            .map(|r| r.name.as_str())
            .unwrap_or_default();
        return stalled(
            "SecretNotFound",
            format!(
                "spec.source.credentialsSecretRef: Secret {name:?} not found in namespace {:?}",
                ds.namespace().unwrap_or_default()
            ),
            Action::requeue(SECRET_RECHECK),
        );
    }
    if let Some(problem) = facts.store_problem {
        // A store ConfigMap appearing or changing wakes the Dataset.
        return stalled(
            problem.reason,
            problem.message.clone(),
            Action::await_change(),
        );
    }
    if ds.spec.suspend {
        return Decision {
            conditions: with_check_conditions(
                ds,
                conditions::idle(
                    "Suspended",
                    "checks for new data are suspended (spec.suspend)",
                ),
            ),
            start: None,
            action: Action::await_change(),
        };
    }
    if let Some(job) = facts.running {
        // The Job's completion wakes the controller.
        return Decision {
            conditions: status_conditions(ds, Some(job)),
            start: None,
            action: Action::await_change(),
        };
    }
    match next_check(ds, interval) {
        Some(at) if at > facts.now => Decision {
            conditions: status_conditions(ds, None),
            start: None,
            action: Action::requeue(facts.now.duration_until(at).unsigned_abs()),
        },
        _ => {
            let name = job::name(ds);
            Decision {
                conditions: status_conditions(ds, Some(&name)),
                start: Some(name),
                action: Action::await_change(),
            }
        }
    }
}

/// When the next check is due; `None`: now (never checked, the spec or the request changed).
fn next_check(ds: &Dataset, interval: Duration) -> Option<Timestamp> {
    let last = ds.status.as_ref()?.last_check.as_ref()?;
    if Some(last.generation) != ds.metadata.generation {
        return None;
    }
    if let Some(requested) = job::requested_at(ds)
        && last.requested_at.as_deref() != Some(requested)
    {
        return None;
    }
    let finished: Timestamp = last.finished;
    let wait = if last.outcome == Outcome::Failed {
        interval.min(RETRY_FAILED)
    } else {
        interval
    };
    finished
        .checked_add(SignedDuration::try_from(wait).ok()?)
        .ok()
}

/// The conditions the recorded checks call for; `checking` names a check Job under way.
pub fn status_conditions(ds: &Dataset, checking: Option<&str>) -> Vec<Set> {
    let status = ds.status.as_ref();
    let last = status.and_then(|s| s.last_check.as_ref());
    let latest = status.and_then(|s| s.latest.as_ref());
    let newest = status.and_then(|s| s.versions.first());
    let main = match (last, latest) {
        (Some(c), _) if c.outcome == Outcome::Failed => {
            let message = format!("the last check failed: {}", c.message);
            match c.failure {
                Some(FailureReason::InvalidSpec) => conditions::stalled("InvalidSpec", message),
                Some(FailureReason::SourceUnavailable) => {
                    conditions::reconciling(SOURCE_UNAVAILABLE, message)
                }
                Some(FailureReason::ArtifactStoreUnavailable) => {
                    conditions::reconciling("ArtifactStoreUnavailable", message)
                }
                _ => conditions::reconciling("CheckFailed", message),
            }
        }
        (_, Some(latest)) => conditions::ready(
            "VersionAccepted",
            format!(
                "latest accepted version {} ({} rows)",
                latest.id, latest.rows
            ),
        ),
        (_, None) => match (checking, newest) {
            (Some(job), _) => {
                conditions::reconciling("Checking", format!("checking the source (Job {job})"))
            }
            // An empty source (no files yet, nothing captured or labelled yet) waits for its
            // data: nothing is wrong that a person must fix, and kstatus must not call it
            // failed (Flux's wait would fail the whole Kustomization until data comes).
            (None, Some(v)) if v.verdict == Verdict::Rejected && v.rows == 0 => conditions::idle(
                "WaitingForData",
                format!("no data yet: {}", rejection(&v.reasons)),
            ),
            (None, Some(v)) if v.verdict == Verdict::Rejected => conditions::stalled(
                "NoAcceptedVersion",
                format!(
                    "no version has been accepted: version {} was rejected: {}",
                    v.id,
                    rejection(&v.reasons)
                ),
            ),
            (None, _) => {
                conditions::reconciling("AwaitingFirstCheck", "the source has not been checked yet")
            }
        },
    };
    with_check_conditions(ds, main)
}

/// `main` plus `Validated` (the newest version's verdict) and `SourceUnavailable` (whether
/// the last check could read the source), once there is something to say.
pub fn with_check_conditions(ds: &Dataset, mut main: Vec<Set>) -> Vec<Set> {
    let status = ds.status.as_ref();
    if let Some(v) = status.and_then(|s| s.versions.first()) {
        main.push(match v.verdict {
            Verdict::Accepted => Set::new(
                VALIDATED,
                true,
                "VersionAccepted",
                format!("version {} meets every expectation", v.id),
            ),
            Verdict::Rejected => Set::new(
                VALIDATED,
                false,
                "VersionRejected",
                format!("version {} was rejected: {}", v.id, rejection(&v.reasons)),
            ),
        });
    }
    if let Some(c) = status.and_then(|s| s.last_check.as_ref()) {
        main.push(if c.failure == Some(FailureReason::SourceUnavailable) {
            Set::new(
                SOURCE_UNAVAILABLE,
                true,
                SOURCE_UNAVAILABLE,
                c.message.clone(),
            )
        } else {
            Set::new(
                SOURCE_UNAVAILABLE,
                false,
                "SourceReadable",
                "the last check read the source",
            )
        });
    }
    main
}

/// A Go-style duration ("90s", "30m", "1h30m") that must be positive.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d: SignedDuration = s
        .parse()
        .map_err(|e| format!("{s:?} is not a duration such as 30m or 1h ({e})"))?;
    if d.is_zero() || d.is_negative() {
        return Err(format!("{s:?} must be positive"));
    }
    Ok(d.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::has_condition;
    use ciclo_api::conditions::{READY, RECONCILING, STALLED, merge};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    fn dataset(yaml: &str) -> Dataset {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn conditions(d: &Decision) -> Vec<Condition> {
        merge(&[], &d.conditions, Some(1), Timestamp::UNIX_EPOCH)
    }

    fn facts(now: &str) -> Facts<'static> {
        Facts {
            secret_found: Some(true),
            store_problem: None,
            running: None,
            now: now.parse().unwrap(),
        }
    }

    const BASE: &str = r#"
apiVersion: ciclo.dev/v1alpha1
kind: Dataset
metadata: {name: iris, namespace: ml, uid: u1, generation: 2}
spec:
  source: {uri: "s3://data/iris/", credentialsSecretRef: {name: store}}
  interval: 1h
"#;

    fn with_status(yaml: &str) -> Dataset {
        let mut ds = dataset(BASE);
        ds.status = Some(serde_yaml::from_str(yaml).unwrap());
        ds
    }

    const ACCEPTED: &str = r#"
latest: {id: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, created: '2026-11-26T10:00:00Z', rows: 10, bytes: 100, files: 1, verdict: Accepted}
versions: [{id: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, created: '2026-11-26T10:00:00Z', rows: 10, bytes: 100, files: 1, verdict: Accepted}]
lastCheck: {job: iris-check-0, generation: 2, finished: "2026-11-26T10:00:00Z", outcome: Accepted, version: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}
"#;

    #[test]
    fn a_new_dataset_is_checked_at_once() {
        let d = decide(&dataset(BASE), &facts("2026-11-26T10:00:00Z"));
        assert!(
            d.start
                .as_deref()
                .is_some_and(|n| n.starts_with("iris-check-"))
        );
        let c = conditions(&d);
        assert!(has_condition(&c, RECONCILING, "Checking"), "{c:?}");
    }

    #[test]
    fn the_next_check_waits_for_the_interval_unless_asked_or_the_spec_changed() {
        let ds = with_status(ACCEPTED);
        let d = decide(&ds, &facts("2026-11-26T10:20:00Z"));
        assert_eq!(d.start, None);
        assert_eq!(d.action, Action::requeue(Duration::from_secs(40 * 60)));
        assert!(
            conditions(&d)
                .iter()
                .any(|c| c.type_ == READY && c.status == "True")
        );
        assert!(
            decide(&ds, &facts("2026-11-26T11:00:00Z")).start.is_some(),
            "interval over"
        );

        let mut asked = ds.clone();
        asked.annotations_mut().insert(
            ciclo_api::labels::RECONCILE_REQUESTED_AT.into(),
            "now".into(),
        );
        assert!(
            decide(&asked, &facts("2026-11-26T10:20:00Z"))
                .start
                .is_some()
        );
        let mut edited = ds.clone();
        edited.metadata.generation = Some(3);
        assert!(
            decide(&edited, &facts("2026-11-26T10:20:00Z"))
                .start
                .is_some()
        );
    }

    #[test]
    fn one_check_at_a_time_and_none_while_suspended() {
        let mut f = facts("2026-11-26T12:00:00Z");
        f.running = Some("iris-check-1");
        let ds = with_status(ACCEPTED);
        assert_eq!(decide(&ds, &f).start, None);
        let mut suspended = ds.clone();
        suspended.spec.suspend = true;
        let d = decide(&suspended, &facts("2026-11-26T12:00:00Z"));
        assert_eq!(d.start, None);
        assert!(!has_condition(&conditions(&d), STALLED, "Suspended"));
        assert!(
            conditions(&d)
                .iter()
                .any(|c| c.type_ == READY && c.reason == "Suspended")
        );
    }

    #[test]
    fn an_unreadable_source_keeps_the_versions_and_says_so() {
        let ds = with_status(&ACCEPTED.replace(
            "outcome: Accepted, version: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}",
            "outcome: Failed, failure: SourceUnavailable, message: 'connection refused'}",
        ));
        let d = decide(&ds, &facts("2026-11-26T10:01:00Z"));
        let c = conditions(&d);
        assert!(
            has_condition(&c, SOURCE_UNAVAILABLE, SOURCE_UNAVAILABLE),
            "{c:?}"
        );
        assert!(has_condition(&c, RECONCILING, SOURCE_UNAVAILABLE), "{c:?}");
        assert!(
            c.iter().any(|c| c.type_ == VALIDATED && c.status == "True"),
            "{c:?}"
        );
        // Retried sooner than the interval.
        assert_eq!(d.action, Action::requeue(Duration::from_secs(60)));
    }

    #[test]
    fn an_empty_source_waits_for_data_neither_failed_nor_in_progress() {
        let ds = with_status(
            r#"
versions: [{id: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb, created: '2026-11-26T10:00:00Z', rows: 0, bytes: 0, files: 0, verdict: Rejected, reasons: ['nothing captured yet under s3://a/ns/captures/web']}]
lastCheck: {job: j, generation: 2, finished: "2026-11-26T10:00:00Z", outcome: Rejected}
"#,
        );
        let c = conditions(&decide(&ds, &facts("2026-11-26T10:01:00Z")));
        let ready = c.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "WaitingForData")
        );
        assert!(ready.message.contains("nothing captured yet"), "{ready:?}");
        assert!(
            !c.iter()
                .any(|c| (c.type_ == STALLED || c.type_ == RECONCILING) && c.status == "True")
        );
    }

    #[test]
    fn a_rejected_first_version_stalls_naming_the_reason() {
        let ds = with_status(
            r#"
versions: [{id: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb, created: '2026-11-26T10:00:00Z', rows: 1, bytes: 1, files: 1, verdict: Rejected, reasons: ['column "age": expected integer, found string']}]
lastCheck: {job: j, generation: 2, finished: "2026-11-26T10:00:00Z", outcome: Rejected}
"#,
        );
        let c = conditions(&decide(&ds, &facts("2026-11-26T10:01:00Z")));
        assert!(has_condition(&c, STALLED, "NoAcceptedVersion"), "{c:?}");
        let validated = c.iter().find(|c| c.type_ == VALIDATED).unwrap();
        assert_eq!(validated.status, "False");
        assert!(
            validated.message.contains("column \"age\""),
            "{}",
            validated.message
        );
    }

    #[test]
    fn a_missing_secret_or_artifact_store_stalls_naming_the_setting() {
        let mut f = facts("2026-11-26T10:00:00Z");
        f.secret_found = Some(false);
        let c = conditions(&decide(&dataset(BASE), &f));
        assert!(has_condition(&c, STALLED, "SecretNotFound"), "{c:?}");
        assert!(
            c.iter()
                .any(|c| c.message.contains("spec.source.credentialsSecretRef"))
        );
        let problem = Unusable {
            reason: "InvalidArtifactStore",
            message: "ConfigMap ml/ciclo-artifact-store: key uri is missing".into(),
        };
        let mut f = facts("2026-11-26T10:00:00Z");
        f.store_problem = Some(&problem);
        let d = decide(&dataset(BASE), &f);
        assert_eq!(d.start, None);
        let c = conditions(&d);
        assert!(has_condition(&c, STALLED, "InvalidArtifactStore"), "{c:?}");
        assert!(c.iter().any(|c| c.message == problem.message), "{c:?}");
    }

    #[test]
    fn intervals_parse_like_go_durations_and_must_be_positive() {
        assert_eq!(parse_interval("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_interval("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_interval("0s").unwrap_err().contains("positive"));
        assert!(parse_interval("soon").is_err());
    }
}
