//! The small result a dataset snapshot Job reports through its termination message, which
//! the Dataset controller reads back from the Pod. The full report stays in the store.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The kubelet keeps at most this many bytes of a termination message.
pub const TERMINATION_MESSAGE_LIMIT: usize = 4096;
/// Reasons carried in the summary; the report in the store has all of them.
const MAX_REASONS: usize = 5;
/// Characters kept of each reason in the summary.
const MAX_REASON_CHARS: usize = 400;

/// What a check of the source found.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Outcome {
    /// A new version that meets every expectation.
    Accepted,
    /// A new version that does not; `reasons` says why.
    Rejected,
    /// The same content as the previous version: nothing new.
    Unchanged,
    /// The check could not run to the end; `failure` says why.
    Failed,
    /// One worker's share of a sharded check, handed to worker 0: never a check's result
    /// (worker 0 reports that), so never in a Dataset's status, and left out of its schema.
    #[schemars(skip)]
    Part,
}

/// Why a check could not run to the end.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum FailureReason {
    /// The dataset's source could not be listed or read.
    SourceUnavailable,
    /// The artifact store could not be read or written.
    ArtifactStoreUnavailable,
    /// The check's own settings are invalid (a URI, a glob, the expectations).
    InvalidSpec,
    /// The check stopped without a result: it crashed, ran out of time or of memory.
    CheckFailed,
}

/// A failed check's reason and message.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: FailureReason,
    pub message: String,
}

/// The summary of one check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotSummary {
    pub outcome: Outcome,
    /// The version id (the manifest's hash), when the source could be listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default)]
    pub files: u64,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub rows: u64,
    /// The first reasons a version was rejected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Where the version's manifest, profile and report are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// For a capture: what the version was joined from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured: Option<CapturedRows>,
}

/// What a version made of a ModelDeployment's capture was joined from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CapturedRows {
    /// Request rows in the capture, labelled or not.
    pub captured: u64,
    /// Of those, the rows with a label: the version's rows.
    pub labelled: u64,
    pub request_files: u64,
    pub label_files: u64,
    /// The model versions that answered the labelled rows, those that answered most first
    /// (at most 8).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_versions: Vec<String>,
}

impl SnapshotSummary {
    /// A failed check.
    pub fn failed(reason: FailureReason, message: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Failed,
            id: None,
            files: 0,
            bytes: 0,
            rows: 0,
            reasons: Vec::new(),
            failure: Some(Failure {
                reason,
                message: message.into(),
            }),
            location: None,
            captured: None,
        }
    }

    /// The summary as JSON that fits in a termination message: the first reasons only,
    /// each cut short, and fewer still if the message would not fit.
    pub fn to_termination_message(&self) -> String {
        let mut short = self.clone();
        short.reasons.truncate(MAX_REASONS);
        for r in &mut short.reasons {
            cut(r, MAX_REASON_CHARS);
        }
        if let Some(f) = &mut short.failure {
            cut(&mut f.message, 2 * MAX_REASON_CHARS);
        }
        loop {
            let json = serde_json::to_string(&short).expect("a summary serializes");
            if json.len() <= TERMINATION_MESSAGE_LIMIT {
                return json;
            }
            // Reasons go first (the report keeps them all), then the model versions named.
            if short.reasons.pop().is_none()
                && short
                    .captured
                    .as_mut()
                    .and_then(|c| c.model_versions.pop())
                    .is_none()
            {
                return json;
            }
        }
    }
}

fn cut(s: &mut String, chars: usize) {
    if let Some((i, _)) = s.char_indices().nth(chars) {
        s.truncate(i);
        s.push('…');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_summary_naming_long_model_versions_still_fits() {
        let s = SnapshotSummary {
            reasons: vec!["x".repeat(MAX_REASON_CHARS); MAX_REASONS],
            // The names of ModelVersions are up to 253 characters.
            captured: Some(CapturedRows {
                labelled: 9,
                model_versions: (0..8).map(|i| format!("{i}{}", "m".repeat(252))).collect(),
                ..Default::default()
            }),
            ..SnapshotSummary::failed(FailureReason::SourceUnavailable, "")
        };
        let msg = s.to_termination_message();
        assert!(msg.len() <= TERMINATION_MESSAGE_LIMIT, "{}", msg.len());
        let back: SnapshotSummary = serde_json::from_str(&msg).unwrap();
        let captured = back.captured.unwrap();
        assert_eq!(captured.labelled, 9);
        // Reasons give way first (the report keeps them all).
        assert!(back.reasons.len() < MAX_REASONS, "{}", back.reasons.len());
        assert_eq!(captured.model_versions.len(), 8);
    }

    #[test]
    fn a_summary_with_many_long_reasons_still_fits_and_reads_back() {
        let s = SnapshotSummary {
            outcome: Outcome::Rejected,
            id: Some("ab".repeat(16)),
            files: 3,
            bytes: 10,
            rows: 7,
            reasons: (0..50)
                .map(|i| format!("column \"c{i}\": {}", "é".repeat(1000)))
                .collect(),
            failure: None,
            location: Some("s3://a/b".into()),
            captured: None,
        };
        let msg = s.to_termination_message();
        assert!(msg.len() <= TERMINATION_MESSAGE_LIMIT, "{}", msg.len());
        let back: SnapshotSummary = serde_json::from_str(&msg).unwrap();
        assert_eq!(back.outcome, Outcome::Rejected);
        // Five cut reasons of two-byte characters are still too long: some are dropped.
        assert!((1..MAX_REASONS).contains(&back.reasons.len()), "{back:?}");
        assert!(back.reasons[0].starts_with("column \"c0\""));
        assert!(back.reasons[0].ends_with('…'));
        assert_eq!(back.id, s.id);
    }

    #[test]
    fn short_reasons_are_kept_up_to_the_limit() {
        let mut s = SnapshotSummary::failed(FailureReason::InvalidSpec, "x");
        s.reasons = (0..9).map(|i| format!("reason {i}")).collect();
        let back: SnapshotSummary = serde_json::from_str(&s.to_termination_message()).unwrap();
        assert_eq!(back.reasons, s.reasons[..MAX_REASONS]);
    }

    #[test]
    fn a_part_reads_back_but_is_not_a_status_outcome() {
        let json = serde_json::to_string(&Outcome::Part).unwrap();
        assert_eq!(json, "\"Part\"");
        assert_eq!(
            serde_json::from_str::<Outcome>(&json).unwrap(),
            Outcome::Part
        );
        let schema = serde_json::to_string(&schemars::schema_for!(Outcome)).unwrap();
        assert!(
            schema.contains("Unchanged") && !schema.contains("Part"),
            "{schema}"
        );
    }

    #[test]
    fn a_failure_names_its_reason() {
        let msg = SnapshotSummary::failed(FailureReason::SourceUnavailable, "connection refused")
            .to_termination_message();
        assert!(msg.contains("\"SourceUnavailable\""), "{msg}");
        assert!(msg.contains("\"Failed\""), "{msg}");
    }
}
