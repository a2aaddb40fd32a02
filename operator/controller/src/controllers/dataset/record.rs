//! Recording a finished check in a Dataset's status: a new version (accepted or rejected),
//! an unchanged source, or a failure. `latest` only ever moves to an accepted version, and
//! no recorded version is lost except by the history limit.

use ciclo_api::dataset::{
    CapturedFrom, DatasetCheck, DatasetStatus, DatasetVersion, Outcome, Verdict,
};
use ciclo_core::snapshot_result::SnapshotSummary;
use jiff::Timestamp;

/// Reasons quoted in an Event or condition message; the rest are in the status and report.
const QUOTED_REASONS: usize = 3;

/// What a check is announced as.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// The check that ran as `job`, for spec `generation` and request `requested_at`.
pub struct Check<'a> {
    pub job: &'a str,
    pub generation: i64,
    pub requested_at: Option<&'a str>,
    /// When the result is recorded.
    pub now: Timestamp,
    pub history_limit: usize,
    /// The ModelDeployment whose capture the Dataset is made of, if it is.
    pub capture: Option<&'a str>,
}

/// Folds `summary` into `status`; returns the Event to record, if the check found anything.
pub fn record(
    status: &mut DatasetStatus,
    check: &Check,
    summary: &SnapshotSummary,
) -> Option<Note> {
    let message = match (&summary.failure, summary.outcome) {
        (Some(f), _) => f.message.clone(),
        (None, Outcome::Rejected) => rejection(&summary.reasons),
        (None, _) => String::new(),
    };
    status.last_check = Some(DatasetCheck {
        job: check.job.to_string(),
        generation: check.generation,
        requested_at: check.requested_at.map(str::to_string),
        finished: check.now,
        outcome: summary.outcome,
        version: summary.id.clone(),
        failure: summary.failure.as_ref().map(|f| f.reason),
        message,
    });
    let id = summary.id.clone()?;
    let note = match summary.outcome {
        // A share of a sharded check is never read as its result (`read_result`).
        Outcome::Failed | Outcome::Part => return None,
        Outcome::Unchanged => Note {
            warning: false,
            reason: "Unchanged",
            message: format!("no new data: the source still holds version {id}"),
        },
        Outcome::Accepted if status.latest.as_ref().is_some_and(|l| l.id == id) => Note {
            warning: false,
            reason: "Unchanged",
            message: format!("version {id} checked again and still accepted"),
        },
        Outcome::Accepted => Note {
            warning: false,
            reason: "NewVersion",
            message: format!(
                "version {id} accepted: {} rows in {} files ({} bytes)",
                summary.rows, summary.files, summary.bytes
            ),
        },
        Outcome::Rejected => Note {
            warning: true,
            reason: "VersionRejected",
            message: format!("version {id} rejected: {}", rejection(&summary.reasons)),
        },
    };
    let verdict = match summary.outcome {
        Outcome::Rejected => Verdict::Rejected,
        Outcome::Accepted => Verdict::Accepted,
        // Unchanged: the version is already recorded as it was.
        _ => return Some(note),
    };
    let first_seen = status
        .versions
        .iter()
        .find(|v| v.id == id)
        .map(|v| v.created);
    let version = DatasetVersion {
        id: id.clone(),
        created: first_seen.unwrap_or(check.now),
        rows: saturating(summary.rows),
        bytes: saturating(summary.bytes),
        files: saturating(summary.files),
        verdict,
        reasons: summary.reasons.clone(),
        location: summary.location.clone(),
        captured_from: check
            .capture
            .zip(summary.captured.as_ref())
            .map(|(md, rows)| CapturedFrom {
                model_deployment: md.to_string(),
                model_versions: rows.model_versions.clone(),
                captured_rows: saturating(rows.captured),
            }),
    };
    status.versions.retain(|v| v.id != id);
    status.versions.insert(0, version.clone());
    status.versions.truncate(check.history_limit.max(1));
    if verdict == Verdict::Accepted {
        status.latest = Some(version);
    }
    Some(note)
}

/// Retention of rejected versions (`spec.retention.rejectedVersions`): keeps the `keep`
/// newest rejected versions and, of the rest, the newest `history_limit`; returns the rejected
/// versions removed, whose folders go from the store. (Accepted versions leaving the history
/// keep theirs: a model's lineage may name them.)
pub fn retain(
    status: &mut DatasetStatus,
    keep: usize,
    history_limit: usize,
) -> Vec<DatasetVersion> {
    let mut removed = Vec::new();
    let mut rejected = 0;
    let mut kept = 0;
    status.versions.retain(|v| {
        let is_rejected = v.verdict == Verdict::Rejected;
        if is_rejected {
            rejected += 1;
        }
        let stays = kept < history_limit.max(1) && (!is_rejected || rejected <= keep);
        if stays {
            kept += 1;
        } else if is_rejected {
            removed.push(v.clone());
        }
        stays
    });
    removed
}

/// The first reasons of a rejection, for a message.
pub fn rejection(reasons: &[String]) -> String {
    let mut text = reasons
        .iter()
        .take(QUOTED_REASONS)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if reasons.len() > QUOTED_REASONS {
        text.push_str(&format!(" (and {} more)", reasons.len() - QUOTED_REASONS));
    }
    text
}

fn saturating(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciclo_core::snapshot_result::FailureReason;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "cccccccccccccccccccccccccccccccc";

    fn summary(outcome: Outcome, id: &str, reasons: &[&str]) -> SnapshotSummary {
        SnapshotSummary {
            outcome,
            id: Some(id.into()),
            files: 2,
            bytes: 100,
            rows: 10,
            reasons: reasons.iter().map(|r| r.to_string()).collect(),
            failure: None,
            location: Some(format!("s3://store/ml/datasets/d/{id}")),
            captured: None,
        }
    }

    /// The `n`th check's time.
    fn t(n: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + n * 3600).unwrap()
    }

    fn check(n: i64) -> Check<'static> {
        Check {
            job: "d-check-1",
            generation: 1,
            requested_at: None,
            now: t(n),
            history_limit: 3,
            capture: None,
        }
    }

    #[test]
    fn accepted_versions_become_latest_and_rejected_ones_never_do() {
        let mut s = DatasetStatus::default();
        let n = record(&mut s, &check(1), &summary(Outcome::Accepted, A, &[])).unwrap();
        assert_eq!((n.reason, n.warning), ("NewVersion", false));
        assert!(n.message.contains("10 rows"), "{}", n.message);
        assert_eq!(s.latest.as_ref().unwrap().id, A);

        let bad = summary(
            Outcome::Rejected,
            B,
            &["column \"age\": expected integer, found string"],
        );
        let n = record(&mut s, &check(2), &bad).unwrap();
        assert_eq!((n.reason, n.warning), ("VersionRejected", true));
        assert!(n.message.contains("column \"age\""), "{}", n.message);
        assert_eq!(
            s.latest.as_ref().unwrap().id,
            A,
            "latest stays on the accepted version"
        );
        assert_eq!(
            s.versions
                .iter()
                .map(|v| (v.id.as_str(), v.verdict))
                .collect::<Vec<_>>(),
            vec![(B, Verdict::Rejected), (A, Verdict::Accepted)]
        );
        assert_eq!(s.versions[0].reasons.len(), 1);
        assert_eq!(s.last_check.as_ref().unwrap().outcome, Outcome::Rejected);
    }

    #[test]
    fn a_version_of_a_capture_names_the_deployment_and_the_models_that_answered() {
        let mut s = DatasetStatus::default();
        let mut joined = summary(Outcome::Accepted, A, &[]);
        joined.captured = Some(ciclo_core::snapshot_result::CapturedRows {
            captured: 40,
            labelled: 10,
            request_files: 3,
            label_files: 1,
            model_versions: vec!["2".into(), "1".into()],
        });
        let from_capture = Check {
            capture: Some("web"),
            ..check(1)
        };
        record(&mut s, &from_capture, &joined).unwrap();
        assert_eq!(
            s.latest.unwrap().captured_from,
            Some(CapturedFrom {
                model_deployment: "web".into(),
                model_versions: vec!["2".into(), "1".into()],
                captured_rows: 40,
            })
        );
    }

    #[test]
    fn unchanged_and_failed_checks_add_no_version() {
        let mut s = DatasetStatus::default();
        record(&mut s, &check(1), &summary(Outcome::Accepted, A, &[]));
        let before = (s.latest.clone(), s.versions.clone());
        let n = record(&mut s, &check(2), &summary(Outcome::Unchanged, A, &[])).unwrap();
        assert_eq!(n.reason, "Unchanged");
        let failed =
            SnapshotSummary::failed(FailureReason::SourceUnavailable, "connection refused");
        assert_eq!(record(&mut s, &check(3), &failed), None);
        assert_eq!(
            (s.latest.clone(), s.versions.clone()),
            before,
            "nothing recorded is lost"
        );
        let last = s.last_check.as_ref().unwrap();
        assert_eq!(last.failure, Some(FailureReason::SourceUnavailable));
        assert_eq!(
            (last.finished, last.message.as_str()),
            (t(3), "connection refused")
        );
    }

    #[test]
    fn history_keeps_the_newest_and_a_version_seen_again_keeps_its_first_time() {
        let mut s = DatasetStatus::default();
        record(&mut s, &check(1), &summary(Outcome::Accepted, A, &[]));
        record(&mut s, &check(2), &summary(Outcome::Accepted, B, &[]));
        record(&mut s, &check(3), &summary(Outcome::Accepted, C, &[]));
        // The data goes back to what it was at t1: the same version, first seen at t1.
        let n = record(&mut s, &check(4), &summary(Outcome::Accepted, A, &[])).unwrap();
        assert_eq!(n.reason, "NewVersion");
        assert_eq!(
            s.versions.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
            vec![A, C, B]
        );
        assert_eq!(s.versions[0].created, t(1));
        assert_eq!(s.latest.as_ref().unwrap().id, A);
        record(
            &mut s,
            &check(5),
            &summary(Outcome::Rejected, "d".repeat(32).as_str(), &["x"]),
        );
        assert_eq!(s.versions.len(), 3, "history limit");
        assert_eq!(s.latest.as_ref().unwrap().id, A);
    }

    #[test]
    fn long_rejections_are_quoted_in_part() {
        let reasons: Vec<String> = (0..5).map(|i| format!("r{i}")).collect();
        assert_eq!(rejection(&reasons), "r0; r1; r2 (and 2 more)");
    }

    #[test]
    fn retention_removes_old_rejected_versions_and_keeps_accepted_ones_to_the_history_limit() {
        let mut s = DatasetStatus::default();
        let unlimited = Check {
            history_limit: usize::MAX,
            ..check(1)
        };
        let ids = [A, B, C];
        for (i, id) in ids.iter().enumerate() {
            record(&mut s, &unlimited, &summary(Outcome::Accepted, id, &[]));
            let bad = summary(Outcome::Rejected, &format!("{id}{i}"), &["too few rows"]);
            record(&mut s, &unlimited, &bad);
        }
        // Newest first: C2 (rejected), C, B1 (rejected), B, A0 (rejected), A.
        let removed = retain(&mut s, 1, 10);
        let ids_of = |v: &[DatasetVersion]| v.iter().map(|v| v.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids_of(&removed), [format!("{B}1"), format!("{A}0")]);
        assert_eq!(
            ids_of(&s.versions),
            [format!("{C}2"), C.into(), B.into(), A.into()]
        );
        // The history limit drops the oldest; a rejected one among them is removed too.
        let mut s2 = s.clone();
        let removed = retain(&mut s2, 5, 2);
        assert!(
            removed.is_empty(),
            "accepted versions leave the history, not the store"
        );
        assert_eq!(ids_of(&s2.versions), [format!("{C}2"), C.into()]);
        let removed = retain(&mut s, 5, 1);
        assert!(removed.is_empty());
        assert_eq!(ids_of(&s.versions), [format!("{C}2")]);
        assert_eq!(s.latest.as_ref().unwrap().id, C, "latest stays");
    }
}
