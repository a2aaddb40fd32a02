//! What a training Job leaves behind for the operator: the small summary it reports through
//! its termination message, and the shape of the `metrics.json` it writes beside the model.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::snapshot_result::TERMINATION_MESSAGE_LIMIT;

/// Characters kept of a failure's message in the termination message; the Job's log has all.
const MAX_MESSAGE_CHARS: usize = 800;

/// How a training run ended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TrainOutcome {
    /// A model and its metrics were written.
    Succeeded,
    /// No model was written; `failure` says why.
    Failed,
}

/// Why a training run wrote no model.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TrainFailureReason {
    /// The version's manifest or one of its files could not be read.
    DatasetUnavailable,
    /// A file no longer has the content the manifest records: the source no longer holds
    /// that version (it was overwritten since the snapshot).
    DatasetChanged,
    /// The trainer settings or parameters are invalid for this data: bad JSON, an unknown
    /// target or feature column, a non-numeric feature, a regression target that is not
    /// numeric.
    InvalidSpec,
    /// The model or the metrics could not be written to the artifact store.
    OutputUnavailable,
    /// The data could be read but no model came of it (too few rows, a single class, the
    /// solver failed).
    TrainingFailed,
}

/// A failed run's reason and message.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TrainFailure {
    pub reason: TrainFailureReason,
    pub message: String,
}

/// How many rows of the version went where.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RowCounts {
    /// Rows the model was fitted on.
    pub train: u64,
    /// Held-out rows the metrics were computed on.
    pub validation: u64,
    /// Rows left out because a used column was null (or NaN) in them.
    #[serde(default)]
    pub dropped: u64,
}

/// The summary of one training run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrainSummary {
    pub outcome: TrainOutcome,
    /// The validation metrics (the same as in `metrics.json`), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
    /// URI of the written `model.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `blake3:<hex>` of `model.json`'s bytes: the model's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default)]
    pub rows: RowCounts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<TrainFailure>,
}

impl TrainSummary {
    /// A failed run.
    pub fn failed(reason: TrainFailureReason, message: impl Into<String>) -> Self {
        Self {
            outcome: TrainOutcome::Failed,
            metrics: BTreeMap::new(),
            model: None,
            digest: None,
            rows: RowCounts::default(),
            failure: Some(TrainFailure {
                reason,
                message: message.into(),
            }),
        }
    }

    /// The summary as JSON that fits in a termination message: the failure's message cut
    /// short, and metrics dropped (last name first) in the unlikely case that is not enough.
    pub fn to_termination_message(&self) -> String {
        let mut short = self.clone();
        if let Some(f) = &mut short.failure
            && let Some((i, _)) = f.message.char_indices().nth(MAX_MESSAGE_CHARS)
        {
            f.message.truncate(i);
            f.message.push('…');
        }
        // JSON has no NaN or infinity: such a metric would come back as null and fail to parse.
        short.metrics.retain(|_, v| v.is_finite());
        loop {
            let json = serde_json::to_string(&short).expect("a summary serializes");
            if json.len() <= TERMINATION_MESSAGE_LIMIT || short.metrics.is_empty() {
                return json;
            }
            short.metrics.pop_last();
        }
    }
}

/// The split of a run's rows into training and validation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SplitInfo {
    /// The share of rows meant for validation.
    pub test_fraction: f64,
    /// The seed of the row hash that assigns each row.
    pub seed: u64,
    /// How rows are assigned (see the trainer's documentation).
    pub method: String,
}

/// `metrics.json` as the built-in trainer writes it. The metrics are top-level keys whose
/// values are numbers, which is all a user's image has to write (a `MetricSpec`'s name is such
/// a key); the other keys describe the run and are optional when reading.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MetricsFile {
    /// The validation metrics by name. Reading keeps every other top-level number too, and
    /// skips what is neither a known key nor a number (a user's image may write notes).
    #[serde(flatten, deserialize_with = "numbers_only")]
    pub metrics: BTreeMap<String, f64>,
    /// Row counts of the split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<RowCounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<SplitInfo>,
    /// The dataset version trained on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_version: Option<String>,
    /// The algorithm, for the built-in trainer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// The hyperparameters in effect (defaults included).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// Parameters given that the algorithm does not use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_params: Vec<String>,
    /// Columns left out of the features because they are not numeric (only when the features
    /// were not listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_columns: Vec<String>,
}

fn numbers_only<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, f64>, D::Error> {
    let all = BTreeMap::<String, serde_json::Value>::deserialize(deserializer)?;
    Ok(all
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.as_f64()?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_failure_is_cut_and_still_reads_back() {
        let s = TrainSummary::failed(TrainFailureReason::DatasetChanged, "é".repeat(5000));
        let msg = s.to_termination_message();
        assert!(msg.len() <= TERMINATION_MESSAGE_LIMIT, "{}", msg.len());
        let back: TrainSummary = serde_json::from_str(&msg).unwrap();
        assert_eq!(back.outcome, TrainOutcome::Failed);
        let failure = back.failure.unwrap();
        assert_eq!(failure.reason, TrainFailureReason::DatasetChanged);
        assert!(failure.message.ends_with('…'));
        assert!(msg.contains("\"DatasetChanged\""), "{msg}");
    }

    #[test]
    fn a_success_carries_its_metrics_model_and_digest_in_camel_case() {
        let s = TrainSummary {
            outcome: TrainOutcome::Succeeded,
            metrics: BTreeMap::from([("accuracy".into(), 0.95), ("bad".into(), f64::NAN)]),
            model: Some("s3://a/m/model.json".into()),
            digest: Some(format!("blake3:{}", "0".repeat(64))),
            rows: RowCounts {
                train: 80,
                validation: 20,
                dropped: 1,
            },
            failure: None,
        };
        let msg = s.to_termination_message();
        let back: TrainSummary = serde_json::from_str(&msg).unwrap();
        assert_eq!(back.metrics, BTreeMap::from([("accuracy".into(), 0.95)]));
        assert_eq!(back.rows, s.rows);
        assert_eq!(back.digest, s.digest);
        assert!(!msg.contains("failure"), "{msg}");
    }

    #[test]
    fn too_many_metrics_are_dropped_until_the_message_fits() {
        let mut s = TrainSummary::failed(TrainFailureReason::TrainingFailed, "x");
        s.metrics = (0..500).map(|i| (format!("metric_{i:03}"), 0.5)).collect();
        let msg = s.to_termination_message();
        assert!(msg.len() <= TERMINATION_MESSAGE_LIMIT);
        let back: TrainSummary = serde_json::from_str(&msg).unwrap();
        assert!(back.metrics.contains_key("metric_000"));
        assert!(back.metrics.len() < 500);
    }

    #[test]
    fn a_metrics_file_keeps_metrics_at_the_top_level() {
        let file = MetricsFile {
            metrics: BTreeMap::from([("rmse".into(), 0.5)]),
            rows: Some(RowCounts {
                train: 8,
                validation: 2,
                dropped: 0,
            }),
            ignored_params: vec!["foo".into()],
            ..MetricsFile::default()
        };
        let json = serde_json::to_value(&file).unwrap();
        assert_eq!(json["rmse"], 0.5);
        assert_eq!(json["ignoredParams"][0], "foo");
        let back: MetricsFile = serde_json::from_value(json).unwrap();
        assert_eq!(back, file);
        // What a user's image writes: numbers only.
        let plain: MetricsFile =
            serde_json::from_str(r#"{"accuracy": 0.9, "notes": "v2 features", "f1": 1}"#).unwrap();
        assert_eq!(
            plain.metrics,
            BTreeMap::from([("accuracy".into(), 0.9), ("f1".into(), 1.0)])
        );
    }
}
