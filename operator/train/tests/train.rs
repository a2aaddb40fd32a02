//! `ciclo train` end to end on the local file system: a generated dataset, snapshotted into a
//! manifest as the Dataset controller's check Job would, trained, and the written model and
//! metrics read back as the operator and `ciclo serve` will.

use ciclo_core::train_result::{
    MetricsFile, TERMINATION_MESSAGE_LIMIT, TrainFailureReason, TrainOutcome, TrainSummary,
};
use ciclo_snapshot::select::Selection;
use ciclo_snapshot::source::{self, Options};
use ciclo_snapshot::{Reads, snapshot};
use ciclo_train::{Class, Link, Model, Prediction, TrainArgs, predict, run};
use std::path::{Path, PathBuf};

/// A dataset directory and an artifact store, both temporary.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn write(&self, name: &str, content: &str) {
        std::fs::create_dir_all(self.data()).unwrap();
        std::fs::write(self.data().join(name), content).unwrap();
    }

    fn uri(path: &Path) -> String {
        format!("file://{}", path.display())
    }

    /// Snapshots the data directory, stores the manifest, and returns (version, its URI).
    async fn snapshot(&self) -> (String, String) {
        let (store, prefix) = source::open(&Self::uri(&self.data()), &Options::default()).unwrap();
        let all = Selection::new(&[], &[]).unwrap();
        let snap = snapshot(store, &prefix, &all, None, Reads::Stream)
            .await
            .unwrap();
        let id = snap.manifest.version_id();
        let at = self.dir.path().join("artifacts").join(&id);
        std::fs::create_dir_all(&at).unwrap();
        let manifest = at.join("manifest.json");
        std::fs::write(&manifest, serde_json::to_vec(&snap.manifest).unwrap()).unwrap();
        (id, Self::uri(&manifest))
    }

    fn output(&self, name: &str) -> PathBuf {
        self.dir.path().join("models").join(name)
    }

    async fn train(&self, trainer: &str, params: &str, out: &str) -> TrainSummary {
        let (version, manifest) = self.snapshot().await;
        self.train_version(trainer, params, out, &version, &manifest)
            .await
    }

    async fn train_version(
        &self,
        trainer: &str,
        params: &str,
        out: &str,
        version: &str,
        manifest: &str,
    ) -> TrainSummary {
        run(&TrainArgs {
            dataset: Self::uri(&self.data()),
            manifest: manifest.into(),
            version: version.into(),
            output: Self::uri(&self.output(out)),
            trainer: trainer.into(),
            params: params.into(),
            format: None,
        })
        .await
    }

    fn model(&self, out: &str) -> (Vec<u8>, Model) {
        let bytes = std::fs::read(self.output(out).join("model.json")).unwrap();
        let model = Model::from_json(&bytes).unwrap();
        (bytes, model)
    }

    fn metrics(&self, out: &str) -> MetricsFile {
        serde_json::from_slice(&std::fs::read(self.output(out).join("metrics.json")).unwrap())
            .unwrap()
    }
}

/// Uniform and normal numbers from a seed (SplitMix64), so the data is the same every run.
struct Numbers(u64);

impl Numbers {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Rows of two features around one centre per name on a circle; the label is the centre's
/// name.
fn blobs_csv(n: usize, names: &[&str], seed: u64) -> String {
    let mut r = Numbers(seed);
    let mut csv = String::from("x1,x2,note,label\n");
    for i in 0..n {
        let k = i % names.len();
        let angle = k as f64 / names.len() as f64 * std::f64::consts::TAU;
        // Centres 2.5 apart from the origin with unit noise: learnable, not trivially (the
        // second feature on ten times the scale of the first).
        let (x1, x2) = (
            2.5 * angle.cos() + r.normal(),
            10.0 * (2.5 * angle.sin() + r.normal()),
        );
        csv.push_str(&format!("{x1:.4},{x2:.4},row {i},{}\n", names[k]));
    }
    csv
}

fn success(summary: &TrainSummary) {
    assert_eq!(
        summary.outcome,
        TrainOutcome::Succeeded,
        "{:?}",
        summary.failure
    );
}

fn failure(summary: &TrainSummary, reason: TrainFailureReason) -> String {
    assert_eq!(summary.outcome, TrainOutcome::Failed, "{summary:?}");
    let failure = summary.failure.clone().unwrap();
    assert_eq!(failure.reason, reason, "{}", failure.message);
    failure.message
}

const LOGISTIC: &str =
    r#"{"algorithm": "LogisticRegression", "target": "label", "features": ["x1", "x2"]}"#;

#[tokio::test]
async fn a_logistic_regression_learns_two_separable_classes() {
    let f = Fixture::new();
    f.write("a.csv", &blobs_csv(300, &["yes", "no"], 1));
    f.write("b.csv", &blobs_csv(100, &["yes", "no"], 2));
    let s = f
        .train(
            LOGISTIC,
            r#"{"alpha": "0.1", "max_depth": "3", "foo": "1"}"#,
            "m",
        )
        .await;
    success(&s);
    for metric in ["accuracy", "precision", "recall", "f1", "roc_auc"] {
        assert!(s.metrics[metric] > 0.9, "{metric}: {:?}", s.metrics);
    }
    assert!(s.metrics["log_loss"] < 0.3, "{:?}", s.metrics);
    assert_eq!(s.rows.train + s.rows.validation, 400);
    assert!((50..110).contains(&s.rows.validation), "{:?}", s.rows);

    let (bytes, model) = f.model("m");
    assert_eq!(
        s.digest.as_deref(),
        Some(format!("blake3:{}", blake3::hash(&bytes).to_hex()).as_str())
    );
    assert_eq!(
        s.model.as_deref(),
        Some(format!("file://{}/model.json", f.output("m").display()).as_str())
    );
    // The positive class is the greater label.
    assert_eq!(
        model.classes,
        vec![Class::Str("no".into()), Class::Str("yes".into())]
    );
    assert_eq!(model.linear.as_ref().unwrap().link, Link::Logistic);
    let yes = predict(&model, &[vec![5.0, 0.0], vec![-5.0, 0.0]]).unwrap();
    assert!(matches!(&yes[0], Prediction::Class { class: Class::Str(c), .. } if c == "yes"));
    assert!(matches!(&yes[1], Prediction::Class { class: Class::Str(c), .. } if c == "no"));

    let metrics = f.metrics("m");
    assert_eq!(metrics.metrics, s.metrics);
    assert_eq!(metrics.rows, Some(s.rows));
    assert_eq!(metrics.ignored_params, vec!["foo", "max_depth"]);
    assert_eq!(metrics.params["alpha"], "0.1");
    assert_eq!(metrics.split.unwrap().seed, 42);
    assert_eq!(
        metrics.dataset_version.as_deref(),
        Some(model.dataset_version.as_str())
    );

    let message = s.to_termination_message();
    assert!(message.len() <= TERMINATION_MESSAGE_LIMIT);
    assert_eq!(serde_json::from_str::<TrainSummary>(&message).unwrap(), s);
}

#[tokio::test]
async fn three_or_more_classes_get_a_multinomial_model() {
    let f = Fixture::new();
    f.write("a.csv", &blobs_csv(450, &["2", "0", "1"], 3));
    let s = f.train(LOGISTIC, "{}", "m").await;
    success(&s);
    assert!(s.metrics["accuracy"] > 0.9, "{:?}", s.metrics);
    assert!(s.metrics["f1"] > 0.9, "{:?}", s.metrics);
    assert!(s.metrics["roc_auc"] > 0.95, "{:?}", s.metrics);
    let (_, model) = f.model("m");
    assert_eq!(
        model.classes,
        vec![Class::Int(0), Class::Int(1), Class::Int(2)]
    );
    let linear = model.linear.unwrap();
    assert_eq!(linear.link, Link::Softmax);
    assert_eq!(linear.coefficients.len(), 3);
}

#[tokio::test]
async fn a_linear_regression_recovers_a_noisy_line() {
    let f = Fixture::new();
    let mut r = Numbers(4);
    let mut csv = String::from("x,y\n");
    for _ in 0..300 {
        let x = r.uniform() * 10.0;
        csv.push_str(&format!("{x},{}\n", 3.0 * x + 2.0 + r.normal() * 0.5));
    }
    // A row with a missing value is dropped and counted.
    csv.push_str("4.0,\n");
    f.write("line.csv", &csv);
    let s = f
        .train(
            r#"{"algorithm": "LinearRegression", "target": "y"}"#,
            "{}",
            "m",
        )
        .await;
    success(&s);
    assert!(s.metrics["r2"] > 0.95, "{:?}", s.metrics);
    assert!(s.metrics["rmse"] < 0.7, "{:?}", s.metrics);
    assert!(s.metrics.contains_key("mae"));
    assert_eq!(s.rows.dropped, 1);
    let (_, model) = f.model("m");
    let linear = model.linear.unwrap();
    assert!((linear.coefficients[0][0] - 3.0).abs() < 0.1, "{linear:?}");
    assert!((linear.intercepts[0] - 2.0).abs() < 0.3, "{linear:?}");
    assert_eq!(f.metrics("m").rows.unwrap().dropped, 1);
}

#[tokio::test]
async fn a_decision_tree_classifies_and_skips_text_columns_it_was_not_given() {
    let f = Fixture::new();
    f.write("a.csv", &blobs_csv(400, &["true", "false"], 5));
    let s = f
        .train(
            r#"{"algorithm": "DecisionTree", "target": "label", "testFraction": 0.25}"#,
            r#"{"max_depth": "4"}"#,
            "m",
        )
        .await;
    success(&s);
    assert!(s.metrics["accuracy"] > 0.9, "{:?}", s.metrics);
    assert!(s.metrics["roc_auc"] > 0.9, "{:?}", s.metrics);
    let (_, model) = f.model("m");
    assert_eq!(model.features, vec!["x1", "x2"]);
    assert_eq!(model.classes, vec![Class::Bool(false), Class::Bool(true)]);
    assert!(model.tree.is_some());
    assert_eq!(model.params["max_depth"], "4");
    assert_eq!(f.metrics("m").skipped_columns, vec!["note"]);
}

#[tokio::test]
async fn parquet_and_csv_files_of_one_version_train_together() {
    use arrow::array::{ArrayRef, Float64Array, Int64Array};
    use std::sync::Arc;
    let f = Fixture::new();
    f.write("a.csv", "x,y\n1,5\n2,8\n3,11\n4,14\n5,17\n");
    let xs: Vec<f64> = (6..200).map(f64::from).collect();
    let ys: Vec<i64> = (6..200).map(|x| 3 * x + 2).collect();
    let batch = arrow::record_batch::RecordBatch::try_from_iter([
        ("x", Arc::new(Float64Array::from(xs)) as ArrayRef),
        ("y", Arc::new(Int64Array::from(ys)) as ArrayRef),
    ])
    .unwrap();
    let file = std::fs::File::create(f.data().join("b.parquet")).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let s = f
        .train(
            r#"{"algorithm": "LinearRegression", "target": "y"}"#,
            "{}",
            "m",
        )
        .await;
    success(&s);
    assert_eq!(s.rows.train + s.rows.validation, 199);
    assert!(s.metrics["r2"] > 0.999_999, "{:?}", s.metrics);
}

#[tokio::test]
async fn the_same_inputs_give_the_same_model_and_split() {
    let f = Fixture::new();
    f.write("a.csv", &blobs_csv(300, &["a", "b", "c"], 6));
    let tree = r#"{"algorithm": "DecisionTree", "target": "label"}"#;
    for trainer in [LOGISTIC, tree] {
        let first = f.train(trainer, "{}", "one").await;
        let again = f.train(trainer, "{}", "two").await;
        success(&first);
        assert_eq!(first.digest, again.digest, "{trainer}");
        assert_eq!(first.rows, again.rows);
        assert_eq!(first.metrics, again.metrics);
        assert_eq!(f.model("one").0, f.model("two").0);
        // Another seed, another split.
        let other = f.train(trainer, r#"{"seed": "7"}"#, "three").await;
        success(&other);
        assert_ne!(first.digest, other.digest);
    }
}

#[tokio::test]
async fn a_file_changed_after_the_snapshot_is_refused_by_name() {
    let f = Fixture::new();
    f.write("a.csv", &blobs_csv(100, &["yes", "no"], 7));
    f.write("b.csv", &blobs_csv(100, &["yes", "no"], 8));
    let (version, manifest) = f.snapshot().await;
    // Same size, other bytes: only the hash can tell.
    let changed = blobs_csv(100, &["yes", "no"], 8).replacen("yes", "YES", 1);
    f.write("b.csv", &changed);
    let s = f
        .train_version(LOGISTIC, "{}", "m", &version, &manifest)
        .await;
    let message = failure(&s, TrainFailureReason::DatasetChanged);
    assert!(message.contains("file b.csv has BLAKE3"), "{message}");
    assert!(message.contains(&version), "{message}");
    assert!(!f.output("m").exists(), "nothing is written");

    std::fs::remove_file(f.data().join("b.csv")).unwrap();
    let s = f
        .train_version(LOGISTIC, "{}", "m", &version, &manifest)
        .await;
    let message = failure(&s, TrainFailureReason::DatasetChanged);
    assert!(message.contains("file b.csv is gone"), "{message}");
}

#[tokio::test]
async fn a_manifest_of_another_version_is_refused() {
    let f = Fixture::new();
    f.write("a.csv", &blobs_csv(50, &["yes", "no"], 9));
    let (version, manifest) = f.snapshot().await;
    let other = "0".repeat(32);
    let s = f
        .train_version(LOGISTIC, "{}", "m", &other, &manifest)
        .await;
    let message = failure(&s, TrainFailureReason::InvalidSpec);
    assert!(
        message.contains(&format!("is of version {version}, not {other}")),
        "{message}"
    );
    let missing = manifest.replace("manifest.json", "nope.json");
    let s = f
        .train_version(LOGISTIC, "{}", "m", &version, &missing)
        .await;
    failure(&s, TrainFailureReason::DatasetUnavailable);
}

#[tokio::test]
async fn invalid_settings_name_the_column_or_parameter() {
    let f = Fixture::new();
    f.write("a.csv", &blobs_csv(50, &["yes", "no"], 10));
    for (trainer, params, says) in [
        (
            r#"{"algorithm": "LogisticRegression", "target": "outcome"}"#,
            "{}",
            "unknown target column \"outcome\"; the columns are: x1, x2, note, label",
        ),
        (
            r#"{"algorithm": "DecisionTree", "target": "label", "features": ["x1", "note"]}"#,
            "{}",
            "feature column \"note\" is not numeric",
        ),
        (
            r#"{"algorithm": "DecisionTree", "target": "label", "features": ["x3"]}"#,
            "{}",
            "unknown feature column \"x3\"",
        ),
        (
            r#"{"algorithm": "LinearRegression", "target": "label"}"#,
            "{}",
            "the target column \"label\" is not numeric",
        ),
        (LOGISTIC, r#"{"alpha": "-1"}"#, "param alpha"),
        (
            r#"{"algorithm": "Svm", "target": "label"}"#,
            "{}",
            "unknown variant `Svm`",
        ),
    ] {
        let s = f.train(trainer, params, "m").await;
        let message = failure(&s, TrainFailureReason::InvalidSpec);
        assert!(message.contains(says), "{trainer}: {message}");
    }
}

#[tokio::test]
async fn an_unwritable_output_is_output_unavailable() {
    let f = Fixture::new();
    f.write("a.csv", &blobs_csv(100, &["yes", "no"], 11));
    let (version, manifest) = f.snapshot().await;
    let s = run(&TrainArgs {
        dataset: Fixture::uri(&f.data()),
        manifest,
        version,
        // A directory cannot be made under a file.
        output: "file:///dev/null/models".into(),
        trainer: LOGISTIC.into(),
        params: "{}".into(),
        format: None,
    })
    .await;
    let message = failure(&s, TrainFailureReason::OutputUnavailable);
    assert!(message.contains("model.json"), "{message}");
}

#[tokio::test]
async fn a_single_class_cannot_make_a_logistic_regression() {
    let f = Fixture::new();
    f.write("a.csv", &blobs_csv(50, &["yes"], 12));
    let s = f.train(LOGISTIC, "{}", "m").await;
    failure(&s, TrainFailureReason::TrainingFailed);
}
