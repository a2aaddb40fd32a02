//! Real models for the server to serve: trained by `ciclo_train` on generated data (a dataset
//! snapshotted into a manifest as a check Job would), and the ONNX fixture.

use ciclo_core::train_result::TrainOutcome;
use ciclo_snapshot::select::Selection;
use ciclo_snapshot::source::{self, Options};
use ciclo_snapshot::{Reads, snapshot};
use ciclo_train::{Model, Prediction, TrainArgs};
use serde_json::Value;
use std::path::PathBuf;

/// A model file on disk, with what a ModelVersion records of it.
pub struct Trained {
    /// Holds the data, the manifest and the model file.
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub digest: String,
    pub model: Model,
}

impl Trained {
    pub fn uri(&self) -> String {
        format!("file://{}", self.path.display())
    }

    /// A regression's values for `rows`, by the library the server runs.
    pub fn values(&self, rows: &[Vec<f64>]) -> Vec<f64> {
        ciclo_train::predict(&self.model, rows)
            .unwrap()
            .into_iter()
            .map(|p| match p {
                Prediction::Value(v) => v,
                other => panic!("a regression: {other:?}"),
            })
            .collect()
    }

    /// A classifier's classes (as JSON) and each row's probabilities for `rows`, by the
    /// library the server runs.
    pub fn classes(&self, rows: &[Vec<f64>]) -> (Vec<Value>, Vec<Vec<f64>>) {
        ciclo_train::predict(&self.model, rows)
            .unwrap()
            .into_iter()
            .map(|p| match p {
                Prediction::Class {
                    class,
                    probabilities,
                } => (serde_json::to_value(class).unwrap(), probabilities),
                other => panic!("a classifier: {other:?}"),
            })
            .unzip()
    }
}

/// Deterministic noise in [-1, 1).
fn noise(i: u64) -> f64 {
    let z = (i.wrapping_add(1)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let z = (z ^ (z >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    ((z >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
}

/// A logistic regression on `x1`, `x2` predicting `label`, "yes" when `x1 + x2/10` is
/// positive (with some noise near the boundary).
pub async fn classifier() -> Trained {
    let mut csv = String::from("x1,x2,label\n");
    for i in 0..300u64 {
        let x1 = (i % 40) as f64 / 4.0 - 5.0 + noise(i);
        let x2 = 10.0 * noise(i + 1000);
        let label = if x1 + x2 / 10.0 + 0.5 * noise(i + 2000) > 0.0 {
            "yes"
        } else {
            "no"
        };
        csv.push_str(&format!("{x1:.4},{x2:.4},{label}\n"));
    }
    train(
        &csv,
        r#"{"algorithm": "LogisticRegression", "target": "label", "features": ["x1", "x2"]}"#,
    )
    .await
}

/// A linear regression of `y` on `x`, about `3x + 2`.
pub async fn regression() -> Trained {
    let mut csv = String::from("x,y\n");
    for i in 0..200u64 {
        let x = i as f64 / 20.0;
        csv.push_str(&format!("{x},{}\n", 3.0 * x + 2.0 + 0.1 * noise(i)));
    }
    train(&csv, r#"{"algorithm": "LinearRegression", "target": "y"}"#).await
}

async fn train(csv: &str, trainer: &str) -> Trained {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("rows.csv"), csv).unwrap();
    let data_uri = format!("file://{}", data.display());
    let (store, prefix) = source::open(&data_uri, &Options::default()).unwrap();
    let all = Selection::new(&[], &[]).unwrap();
    let snap = snapshot(store, &prefix, &all, None, Reads::Stream)
        .await
        .unwrap();
    let version = snap.manifest.version_id();
    let manifest = dir.path().join("manifest.json");
    std::fs::write(&manifest, serde_json::to_vec(&snap.manifest).unwrap()).unwrap();
    let summary = ciclo_train::run(&TrainArgs {
        dataset: data_uri,
        manifest: format!("file://{}", manifest.display()),
        version,
        output: format!("file://{}", dir.path().join("model").display()),
        trainer: trainer.into(),
        params: "{}".into(),
        format: None,
    })
    .await;
    assert_eq!(summary.outcome, TrainOutcome::Succeeded, "{summary:?}");
    let path = PathBuf::from(summary.model.unwrap().strip_prefix("file://").unwrap());
    let bytes = std::fs::read(&path).unwrap();
    Trained {
        digest: summary.digest.unwrap(),
        model: Model::from_json(&bytes).unwrap(),
        path,
        _dir: dir,
    }
}

/// The ONNX fixture (see tests/fixtures/make_onnx.py) and its digest.
pub fn onnx_fixture() -> (PathBuf, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/linear.onnx");
    let digest = digest_of(&path);
    (path, digest)
}

/// A file's digest as a ModelVersion records it.
pub fn digest_of(path: &std::path::Path) -> String {
    format!(
        "blake3:{}",
        blake3::hash(&std::fs::read(path).unwrap()).to_hex()
    )
}
