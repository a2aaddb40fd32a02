//! `ciclo dataset snapshot --shards N` on the local file system: N workers (tokio tasks here,
//! the pods of an Indexed Job in a cluster) check a version together and come to exactly
//! what one worker comes to.

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use ciclo_core::snapshot_result::{FailureReason, Outcome, SnapshotSummary};
use ciclo_profile::Profile;
use ciclo_snapshot::Manifest;
use ciclo_snapshot::check::{CheckArgs, run};
use parquet::arrow::ArrowWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

struct Dirs {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    artifacts: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let artifacts = tmp.path().join("artifacts");
    std::fs::create_dir_all(data.join("c")).unwrap();
    std::fs::create_dir_all(&artifacts).unwrap();
    Dirs {
        _tmp: tmp,
        data,
        artifacts,
    }
}

const EXPECT: &str = r#"{"minRows": 2, "columns": [
  {"name": "id", "type": "integer", "nullable": false},
  {"name": "x", "type": "float", "min": 0, "max": 100},
  {"name": "label", "type": "string", "allowedValues": ["a", "b"]}]}"#;

/// The value of `x` in row `i` of a file: spread over [0, 100), except the rows meant to be
/// out of range.
fn x(file: u64, i: u64, out_every: u64) -> f64 {
    if out_every > 0 && i % out_every == out_every - 1 {
        250.0
    } else {
        ((i * 7919 + file * 104_729) % 10_000) as f64 / 100.0
    }
}

/// Writes a csv of `rows` rows; returns the values of `x` in it.
fn csv(d: &Dirs, name: &str, file: u64, rows: u64, out_every: u64, bad_label: bool) -> Vec<f64> {
    let mut text = String::from("id,x,label\n");
    let mut xs = Vec::new();
    for i in 0..rows {
        let label = if bad_label && i == rows / 2 {
            "z"
        } else {
            ["a", "b"][(i % 2) as usize]
        };
        let v = x(file, i, out_every);
        xs.push(v);
        text.push_str(&format!("{},{v},{label}\n", file * 100_000 + i));
    }
    std::fs::write(d.data.join(name), text).unwrap();
    xs
}

fn parquet(d: &Dirs, name: &str, file: u64, rows: u64) -> Vec<f64> {
    let xs: Vec<f64> = (0..rows).map(|i| x(file, i, 0)).collect();
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "id",
            Arc::new(Int64Array::from_iter_values(
                (0..rows).map(|i| (file * 100_000 + i) as i64),
            )),
        ),
        ("x", Arc::new(Float64Array::from(xs.clone()))),
        (
            "label",
            Arc::new(StringArray::from_iter_values(
                (0..rows).map(|i| ["a", "b"][(i % 2) as usize]),
            )),
        ),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    std::fs::write(d.data.join(name), bytes).unwrap();
    xs
}

/// A tree of csv and parquet files of very different sizes, with data failures in several
/// of them; returns every value of `x`.
fn tree(d: &Dirs) -> Vec<f64> {
    let mut xs = Vec::new();
    xs.extend(csv(d, "a.csv", 1, 3000, 0, false));
    xs.extend(csv(d, "b.csv", 2, 500, 97, false));
    xs.extend(csv(d, "c/d.csv", 3, 8000, 0, false));
    xs.extend(parquet(d, "e.parquet", 4, 10_000));
    xs.extend(csv(d, "f.csv", 5, 100, 0, true));
    xs.extend(csv(d, "g.csv", 6, 2000, 301, false));
    // A malformed row: read and reported, not counted.
    let mut a = std::fs::read_to_string(d.data.join("a.csv")).unwrap();
    a.push_str("1,2,3,4\n");
    std::fs::write(d.data.join("a.csv"), a).unwrap();
    xs
}

fn args(d: &Dirs, artifacts: &str) -> CheckArgs {
    CheckArgs {
        source: format!("file://{}", d.data.display()),
        artifacts: format!("file://{}/{artifacts}", d.artifacts.display()),
        include: vec!["**/*.csv".into(), "**/*.parquet".into()],
        expectations: Some(EXPECT.into()),
        ..Default::default()
    }
}

fn sharded(args: &CheckArgs, shards: usize, index: usize) -> CheckArgs {
    CheckArgs {
        shards,
        shard_index: Some(index),
        shard_dir: Some("check-1".into()),
        shard_wait: Some(jiff::SignedDuration::from_secs(120)),
        ..args.clone()
    }
}

/// Runs the `shards` workers at once, as the pods of an Indexed Job; their summaries by index.
async fn run_workers(args: &CheckArgs, shards: usize) -> Vec<SnapshotSummary> {
    let tasks: Vec<_> = (0..shards)
        .map(|i| {
            let args = sharded(args, shards, i);
            tokio::spawn(async move { run(&args).await })
        })
        .collect();
    let mut summaries = Vec::new();
    for task in tasks {
        summaries.push(task.await.unwrap());
    }
    summaries
}

fn stored<T: serde::de::DeserializeOwned>(d: &Dirs, artifacts: &str, id: &str, file: &str) -> T {
    let path = d.artifacts.join(artifacts).join(id).join(file);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Every file under `dir`, however deep.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// The fraction of `sorted` below `v`, and at or below it.
fn ranks(sorted: &[f64], v: f64) -> (f64, f64) {
    let n = sorted.len() as f64;
    let below = sorted.partition_point(|&x| x < v) as f64;
    let at_or_below = sorted.partition_point(|&x| x <= v) as f64;
    (below / n, at_or_below / n)
}

/// Exact statistics equal; sketched ones (quantiles) within the KLL error of the truth.
fn assert_profiles_agree(sharded: &Profile, single: &Profile, xs: &[f64]) {
    assert_eq!(sharded.rows, single.rows);
    assert_eq!(sharded.columns.len(), single.columns.len());
    for (s, w) in sharded.columns.iter().zip(&single.columns) {
        assert_eq!(
            (&s.name, s.type_, s.count, s.nulls, s.min, s.max, s.distinct),
            (&w.name, w.type_, w.count, w.nulls, w.min, w.max, w.distinct)
        );
        assert_eq!(s.top_values, w.top_values, "{}", w.name);
        for (a, b) in [(s.mean, w.mean), (s.std, w.std)] {
            let (a, b) = (a.unwrap_or(0.0), b.unwrap_or(0.0));
            assert!(
                (a - b).abs() <= 1e-9 * a.abs().max(b.abs()),
                "{}: {a} vs {b}",
                w.name
            );
        }
    }
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    for profile in [sharded, single] {
        let x = profile.column("x").unwrap();
        assert_eq!(x.count as usize, sorted.len());
        for q in &x.quantiles {
            let (lo, hi) = ranks(&sorted, q.value);
            assert!(
                lo - 0.02 <= q.q && q.q <= hi + 0.02,
                "{q:?}: rank [{lo}, {hi}]"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_check_a_version_as_one_worker_does() {
    let d = dirs();
    let xs = tree(&d);
    let single = run(&args(&d, "one")).await;
    assert_eq!(single.outcome, Outcome::Rejected, "{single:?}");
    let summaries = run_workers(&args(&d, "three"), 3).await;
    let merged = &summaries[0];

    assert_eq!(merged.outcome, single.outcome, "{merged:?}");
    assert_eq!(merged.id, single.id);
    assert_eq!(merged.reasons, single.reasons);
    assert_eq!(
        (merged.rows, merged.files, merged.bytes),
        (single.rows, single.files, single.bytes)
    );
    assert!(
        merged
            .location
            .as_deref()
            .unwrap()
            .ends_with(&format!("/three/{}", single.id.as_deref().unwrap()))
    );
    // The failures found in several files, named as one worker names them.
    let reasons = merged.reasons.join("\n");
    for expected in [
        "data/a.csv line 3002: expected 3 fields, found 4",
        "not among the allowed values; the first is \"z\" in f.csv line 52",
        "values outside [0, 100]; the first is 250 in b.csv line 98",
    ] {
        assert!(
            reasons.contains(expected.trim_start_matches("data/")),
            "{expected:?} in {reasons}"
        );
    }

    // The other workers handed over their shares; together they are the version.
    for (i, part) in summaries.iter().enumerate().skip(1) {
        assert_eq!(part.outcome, Outcome::Part, "{part:?}");
        assert!(
            part.location
                .as_deref()
                .unwrap()
                .ends_with(&format!("/three/shards/check-1/{i}.json"))
        );
    }
    assert!(
        summaries[1].files + summaries[2].files < single.files,
        "worker 0 had a share"
    );

    let id = single.id.as_deref().unwrap();
    let one: Manifest = stored(&d, "one", id, "manifest.json");
    let three: Manifest = stored(&d, "three", id, "manifest.json");
    assert_eq!(three, one);
    assert_eq!(three.version_id(), id);
    let report: serde_json::Value = stored(&d, "three", id, "report.json");
    assert_eq!(
        (report["hashed"].as_u64(), report["reused"].as_u64()),
        (Some(one.files.len() as u64), Some(0)),
        "every file hashed once, by one of the workers: {report}"
    );
    let one: Profile = stored(&d, "one", id, "profile.json");
    let three: Profile = stored(&d, "three", id, "profile.json");
    assert_profiles_agree(&three, &one, &xs);

    assert_eq!(
        files_under(&d.artifacts.join("three/shards")),
        Vec::<PathBuf>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_changes_between_the_workers_listings_fails_the_check() {
    let d = dirs();
    tree(&d);
    let args = args(&d, "ds");
    for i in [1, 2] {
        let part = run(&sharded(&args, 3, i)).await;
        assert_eq!(part.outcome, Outcome::Part, "{part:?}");
    }
    // A file arrives after workers 1 and 2 listed the source, before worker 0 does.
    csv(&d, "h.csv", 7, 10, 0, false);
    let s = run(&sharded(&args, 3, 0)).await;
    let failure = s.failure.expect("a failure");
    assert_eq!(failure.reason, FailureReason::SourceUnavailable);
    assert!(
        failure.message.starts_with(
            "the source changed while the workers listed it: worker 1 saw other files than worker 0"
        ),
        "{}",
        failure.message
    );
    assert!(failure.message.ends_with("(the next check runs again)"));
    assert_eq!(
        files_under(&d.artifacts.join("ds/shards")),
        Vec::<PathBuf>::new()
    );
}

#[tokio::test]
async fn an_unchanged_source_is_unchanged_on_every_worker_before_any_work() {
    let d = dirs();
    tree(&d);
    let first = run(&args(&d, "ds")).await;
    let again = CheckArgs {
        previous: first.id.clone(),
        ..args(&d, "ds")
    };
    let single = run(&again).await;
    assert_eq!(single.outcome, Outcome::Unchanged, "{single:?}");
    // One worker at a time, and no wait for the others: each answers on its own, from the
    // listing and the previous version alone.
    for i in 0..3 {
        let worker = CheckArgs {
            shard_wait: Some(jiff::SignedDuration::ZERO),
            ..sharded(&again, 3, i)
        };
        let s = run(&worker).await;
        assert_eq!(s, single, "worker {i}");
    }
    assert_eq!(
        files_under(&d.artifacts.join("ds/shards")),
        Vec::<PathBuf>::new()
    );

    // Under other checks the same files are checked again, by every worker.
    let stricter = CheckArgs {
        expectations: Some(r#"{"minRows": 1000000}"#.into()),
        ..again
    };
    let rechecked = run_workers(&stricter, 3).await;
    assert_eq!(
        rechecked[0].outcome,
        Outcome::Rejected,
        "{:?}",
        rechecked[0]
    );
    assert_eq!(rechecked[0].id, first.id);
    assert_eq!(rechecked[1].outcome, Outcome::Part);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_workers_than_files_still_check_the_version() {
    let d = dirs();
    csv(&d, "a.csv", 1, 40, 0, false);
    csv(&d, "b.csv", 2, 40, 0, false);
    let single = run(&args(&d, "one")).await;
    assert_eq!(single.outcome, Outcome::Accepted, "{single:?}");
    let summaries = run_workers(&args(&d, "four"), 4).await;
    assert_eq!(
        summaries[0].outcome,
        Outcome::Accepted,
        "{:?}",
        summaries[0]
    );
    assert_eq!(
        (&summaries[0].id, summaries[0].rows, summaries[0].files),
        (&single.id, 80, 2)
    );
    // Some workers had no file at all, and said so.
    assert!(
        summaries[1..]
            .iter()
            .any(|s| s.outcome == Outcome::Part && s.files == 0)
    );

    // No file at all: rejected as empty, by one worker or four.
    let empty = dirs();
    let one = run(&args(&empty, "one")).await;
    let four = run_workers(&args(&empty, "four"), 4).await;
    assert_eq!(four[0].outcome, Outcome::Rejected);
    assert_eq!((&four[0].id, &four[0].reasons), (&one.id, &one.reasons));
}

#[tokio::test]
async fn worker_0_gives_up_naming_the_shares_that_never_came() {
    let d = dirs();
    tree(&d);
    let alone = CheckArgs {
        shard_wait: Some(jiff::SignedDuration::from_secs(1)),
        ..sharded(&args(&d, "ds"), 3, 0)
    };
    let failure = run(&alone).await.failure.expect("a failure");
    assert_eq!(failure.reason, FailureReason::CheckFailed);
    assert!(
        failure
            .message
            .starts_with("waited 1s for the shares of workers 1, 2 (under file://"),
        "{}",
        failure.message
    );
}

#[tokio::test]
async fn sharding_flags_that_cannot_work_are_invalid() {
    let d = dirs();
    let base = sharded(&args(&d, "ds"), 3, 0);
    let cases = [
        (
            CheckArgs {
                capture: Some("file:///capture".into()),
                ..base.clone()
            },
            "--shards 3 with --capture",
        ),
        (
            CheckArgs {
                shard_index: None,
                ..base.clone()
            },
            "--shards 3 needs --shard-index",
        ),
        (
            CheckArgs {
                shard_index: Some(3),
                ..base.clone()
            },
            "--shard-index 3 is out of range for --shards 3",
        ),
        (
            CheckArgs {
                shard_dir: None,
                ..base.clone()
            },
            "--shards 3 needs --shard-dir",
        ),
        (
            CheckArgs {
                shard_dir: Some("../elsewhere".into()),
                ..base.clone()
            },
            "--shard-dir \"../elsewhere\"",
        ),
    ];
    for (args, message) in cases {
        let failure = run(&args).await.failure.expect("a failure");
        assert_eq!(
            failure.reason,
            FailureReason::InvalidSpec,
            "{}",
            failure.message
        );
        assert!(failure.message.starts_with(message), "{}", failure.message);
    }
}
