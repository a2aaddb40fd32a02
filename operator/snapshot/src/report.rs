//! What a check leaves in the artifact store under `<artifacts>/<id>/`.

use ciclo_core::snapshot_result::{CapturedRows, Outcome, SnapshotSummary};
use serde::{Deserialize, Serialize};

/// Every file's path, size and BLAKE3 hash: the version's identity.
pub const MANIFEST: &str = "manifest.json";
/// Every column's profile.
pub const PROFILE: &str = "profile.json";
/// The verdict and why; written last, so a version with a report is complete.
pub const REPORT: &str = "report.json";

/// The outcome of checking one version.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub id: String,
    /// When the check ran (RFC 3339).
    pub created: String,
    pub source: String,
    /// Accepted or Rejected.
    pub verdict: Outcome,
    /// Every reason the version was rejected: malformed rows (file and line), expectations
    /// not met (column), drift over the limit (column and distance).
    #[serde(default)]
    pub reasons: Vec<String>,
    pub files: u64,
    pub bytes: u64,
    pub rows: u64,
    /// Files read and hashed by this check; the rest came from the previous manifest.
    pub hashed: u64,
    pub reused: u64,
    /// Digest of the checks (format, expectations, drift) this verdict was reached under.
    pub checks: String,
    /// The accepted version drift was measured against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// Per-column drift against the baseline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<ciclo_profile::ColumnDrift>,
    /// For a capture: what the version was joined from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured: Option<CapturedRows>,
}

impl Report {
    /// The summary the Job reports for this version, stored at `location`.
    pub fn summary(&self, location: String) -> SnapshotSummary {
        SnapshotSummary {
            outcome: self.verdict,
            id: Some(self.id.clone()),
            files: self.files,
            bytes: self.bytes,
            rows: self.rows,
            reasons: self.reasons.clone(),
            failure: None,
            location: Some(location),
            captured: self.captured.clone(),
        }
    }
}
