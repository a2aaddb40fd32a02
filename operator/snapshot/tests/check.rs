//! `ciclo dataset snapshot` (check::run) on the local file system: versions, verdicts, the
//! files it keeps, and every way a check can fail.

use ciclo_core::snapshot_result::{FailureReason, Outcome, SnapshotSummary};
use ciclo_snapshot::check::{CheckArgs, run};
use std::path::Path;

struct Dirs {
    _tmp: tempfile::TempDir,
    data: std::path::PathBuf,
    artifacts: std::path::PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let artifacts = tmp.path().join("artifacts");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&artifacts).unwrap();
    Dirs {
        _tmp: tmp,
        data,
        artifacts,
    }
}

fn write(dir: &Path, name: &str, content: &str) {
    std::fs::write(dir.join(name), content).unwrap();
}

const EXPECT: &str = r#"{"minRows": 2, "columns": [
  {"name": "id", "type": "integer", "nullable": false},
  {"name": "x", "type": "float", "min": 0, "max": 100},
  {"name": "label", "type": "string", "allowedValues": ["a", "b"]}]}"#;

fn args(d: &Dirs) -> CheckArgs {
    CheckArgs {
        source: format!("file://{}", d.data.display()),
        artifacts: format!("file://{}/ml/datasets/d", d.artifacts.display()),
        include: vec!["**/*.csv".into()],
        expectations: Some(EXPECT.into()),
        ..Default::default()
    }
}

fn stored(d: &Dirs, summary: &SnapshotSummary, file: &str) -> Option<String> {
    let id = summary.id.as_deref()?;
    std::fs::read_to_string(d.artifacts.join("ml/datasets/d").join(id).join(file)).ok()
}

#[tokio::test]
async fn versions_are_accepted_kept_unchanged_and_rechecked_under_new_expectations() {
    let d = dirs();
    write(&d.data, "a.csv", "id,x,label\n1,1.5,a\n2,2.5,b\n");
    write(&d.data, "notes.txt", "not data");
    let v1 = run(&args(&d)).await;
    assert_eq!(v1.outcome, Outcome::Accepted, "{v1:?}");
    assert_eq!((v1.rows, v1.files), (2, 1));
    for file in ["manifest.json", "profile.json", "report.json"] {
        assert!(stored(&d, &v1, file).is_some(), "{file} kept");
    }
    assert!(
        v1.location
            .as_deref()
            .unwrap()
            .ends_with(&format!("/ml/datasets/d/{}", v1.id.as_deref().unwrap()))
    );

    // The same data, checked again with the previous version: Unchanged.
    let again = CheckArgs {
        previous: v1.id.clone(),
        baseline: v1.id.clone(),
        ..args(&d)
    };
    let unchanged = run(&again).await;
    assert_eq!(unchanged.outcome, Outcome::Unchanged, "{unchanged:?}");
    assert_eq!(unchanged.id, v1.id);

    // Other expectations: the same data is checked again (and now rejected).
    let stricter = CheckArgs {
        expectations: Some(r#"{"minRows": 3}"#.into()),
        ..again.clone()
    };
    let rechecked = run(&stricter).await;
    assert_eq!(rechecked.outcome, Outcome::Rejected, "{rechecked:?}");
    assert_eq!(rechecked.id, v1.id, "same content, same id");

    // A new file: a new version.
    write(&d.data, "b.csv", "id,x,label\n3,3.5,a\n");
    let v2 = run(&again).await;
    assert_eq!(v2.outcome, Outcome::Accepted, "{v2:?}");
    assert_ne!(v2.id, v1.id);
    assert_eq!((v2.rows, v2.files), (3, 2));
    let report: serde_json::Value =
        serde_json::from_str(&stored(&d, &v2, "report.json").unwrap()).unwrap();
    assert_eq!(
        (report["hashed"].as_u64(), report["reused"].as_u64()),
        (Some(1), Some(1)),
        "the unchanged file was not read again: {report}"
    );
}

#[tokio::test]
async fn a_wrong_type_is_rejected_naming_the_column() {
    let d = dirs();
    write(&d.data, "a.csv", "id,x,label\nx1,1.5,a\nx2,2.5,b\n");
    let s = run(&args(&d)).await;
    assert_eq!(s.outcome, Outcome::Rejected, "{s:?}");
    assert!(s.reasons.iter().any(|r| r.contains("\"id\"")), "{s:?}");
    let report = stored(&d, &s, "report.json").unwrap();
    assert!(report.contains("Rejected"), "{report}");
}

#[tokio::test]
async fn an_empty_source_is_rejected() {
    let d = dirs();
    let s = run(&args(&d)).await;
    assert_eq!(s.outcome, Outcome::Rejected, "{s:?}");
    assert!(s.reasons[0].contains("empty"), "{s:?}");
}

#[tokio::test]
async fn drift_over_the_limit_rejects_naming_the_column() {
    let d = dirs();
    let rows = |offset: f64| {
        let mut csv = String::from("id,x,label\n");
        for i in 0..400 {
            csv.push_str(&format!("{i},{},a\n", (i % 40) as f64 + offset));
        }
        csv
    };
    write(&d.data, "a.csv", &rows(0.0));
    let base = run(&args(&d)).await;
    assert_eq!(base.outcome, Outcome::Accepted, "{base:?}");
    write(&d.data, "a.csv", &rows(30.0));
    let drifted = run(&CheckArgs {
        previous: base.id.clone(),
        baseline: base.id.clone(),
        drift: Some(r#"{"measure": "PSI", "maxDistance": 0.2, "columns": ["x"]}"#.into()),
        ..args(&d)
    })
    .await;
    assert_eq!(drifted.outcome, Outcome::Rejected, "{drifted:?}");
    assert!(
        drifted
            .reasons
            .iter()
            .any(|r| r.contains("\"x\"") && r.contains("drift")),
        "{drifted:?}"
    );
}

#[tokio::test]
async fn failures_name_their_cause() {
    let d = dirs();
    let bad_glob = run(&CheckArgs {
        include: vec!["[".into()],
        ..args(&d)
    })
    .await;
    let f = bad_glob.failure.unwrap();
    assert_eq!(f.reason, FailureReason::InvalidSpec);
    assert!(
        f.message.starts_with("include: invalid glob"),
        "{}",
        f.message
    );

    let bad_expectations = run(&CheckArgs {
        expectations: Some("{\"minRows\": \"many\"}".into()),
        ..args(&d)
    })
    .await;
    assert!(
        bad_expectations
            .failure
            .unwrap()
            .message
            .starts_with("expectations:")
    );

    // Nothing listens on port 9 of loopback; the check gives up within seconds.
    let started = std::time::Instant::now();
    let unreachable = run(&CheckArgs {
        source: "s3://bucket/data/".into(),
        source_endpoint: Some("http://127.0.0.1:9".into()),
        source_force_path_style: true,
        source_region: Some("us-east-1".into()),
        ..args(&d)
    })
    .await;
    let f = unreachable.failure.unwrap();
    assert_eq!(f.reason, FailureReason::SourceUnavailable, "{}", f.message);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}
