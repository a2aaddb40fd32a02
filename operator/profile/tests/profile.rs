//! Profiles and failures of real files on a local object store.

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use ciclo_core::expectations::{ColumnExpectation, ColumnType, Expectations};
use ciclo_profile::{ColumnProfile, Error, Format, Input, Outcome, profile};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use std::sync::Arc;

/// Writes `files` into a fresh directory and profiles them.
async fn run(
    files: &[(&str, Vec<u8>)],
    format: Option<Format>,
    expectations: Option<&Expectations>,
) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let store = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let inputs = files
        .iter()
        .map(|(name, bytes)| Input {
            location: Path::from(*name),
            relative: format!("data/{name}"),
            size: bytes.len() as u64,
        })
        .collect();
    profile(store, inputs, format, expectations).await.unwrap()
}

fn column<'a>(outcome: &'a Outcome, name: &str) -> &'a ColumnProfile {
    outcome
        .profile
        .column(name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", outcome.profile))
}

fn quantile(c: &ColumnProfile, q: f64) -> f64 {
    c.quantiles.iter().find(|x| x.q == q).unwrap().value
}

fn expect(columns: Vec<ColumnExpectation>) -> Expectations {
    Expectations {
        columns,
        min_rows: None,
    }
}

fn col(name: &str) -> ColumnExpectation {
    ColumnExpectation {
        name: name.into(),
        nullable: true,
        ..Default::default()
    }
}

fn parquet(columns: Vec<(&str, ArrayRef)>, rows_per_group: usize) -> Vec<u8> {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(rows_per_group))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    out
}

fn assert_failure(outcome: &Outcome, expected: &str) {
    assert!(
        outcome.failures.iter().any(|f| f == expected),
        "no failure {expected:?} in {:#?}",
        outcome.failures
    );
}

const PEOPLE: &str = "\
age,score,city,active
30,1.5,Paris,true
40,2.5,Lyon,false
,4.0,Paris,true
50,,Nice,true
";

#[tokio::test]
async fn csv_profiles_match_hand_computed_statistics() {
    let outcome = run(&[("people.csv", PEOPLE.into())], None, None).await;
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_eq!(outcome.profile.rows, 4);
    let names: Vec<_> = outcome.profile.columns.iter().map(|c| &c.name).collect();
    assert_eq!(names, ["age", "score", "city", "active"]);

    let age = column(&outcome, "age");
    assert_eq!(age.type_, ColumnType::Integer);
    assert_eq!((age.count, age.nulls, age.distinct), (3, 1, 3));
    assert_eq!(
        (age.min, age.max, age.mean),
        (Some(30.0), Some(50.0), Some(40.0))
    );
    // Squared distances from 40: 100 + 0 + 100; sample variance 200 / 2.
    assert_eq!(age.std, Some(10.0));
    assert_eq!(quantile(age, 0.5), 40.0);
    let h = age.histogram.as_ref().unwrap();
    assert_eq!((h.counts[0], h.counts[10], h.counts[19]), (1, 1, 1));

    let score = column(&outcome, "score");
    assert_eq!(score.type_, ColumnType::Float);
    assert_eq!((score.count, score.nulls), (3, 1));
    assert!((score.mean.unwrap() - 8.0 / 3.0).abs() < 1e-12);

    let city = column(&outcome, "city");
    assert_eq!(city.type_, ColumnType::String);
    assert_eq!((city.count, city.distinct), (4, 3));
    assert_eq!(
        (city.top_values[0].value.as_str(), city.top_values[0].count),
        ("Paris", 2)
    );
    assert!(city.min.is_none() && city.histogram.is_none());

    let active = column(&outcome, "active");
    assert_eq!(active.type_, ColumnType::Boolean);
    assert_eq!((active.count, active.distinct), (4, 2));
    assert_eq!(
        (
            active.top_values[0].value.as_str(),
            active.top_values[0].count
        ),
        ("true", 3)
    );
}

#[tokio::test]
async fn parquet_row_groups_merge_into_one_profile() {
    let n = 1000i64;
    let bytes = parquet(
        vec![
            (
                "id",
                Arc::new(Int64Array::from_iter_values(1..=n)) as ArrayRef,
            ),
            (
                "kind",
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| ["a", "b", "c", "d"][(i % 4) as usize]),
                )),
            ),
        ],
        128,
    );
    let outcome = run(&[("t.parquet", bytes)], None, None).await;
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_eq!(outcome.profile.rows, 1000);
    let id = column(&outcome, "id");
    assert_eq!((id.count, id.min, id.max), (1000, Some(1.0), Some(1000.0)));
    assert_eq!(id.mean, Some(500.5));
    // Sample variance of 1..=n is n(n+1)/12.
    let std = (1000.0f64 * 1001.0 / 12.0).sqrt();
    assert!((id.std.unwrap() - std).abs() < 1e-9);
    assert!(
        (id.distinct as f64 - 1000.0).abs() <= 30.0,
        "{}",
        id.distinct
    );
    // 1000 values fit in one KLL (k = 200, no sampling): rank error ~1.3 %.
    assert!((quantile(id, 0.5) - 500.0).abs() <= 20.0);
    assert!((quantile(id, 0.99) - 990.0).abs() <= 20.0);
    let kind = column(&outcome, "kind");
    assert_eq!((kind.distinct, kind.top_values.len()), (4, 4));
    assert!(kind.top_values.iter().all(|v| v.count == 250));
}

#[tokio::test]
async fn large_parquet_quantiles_stay_within_the_sketch_error() {
    // 300k rows in one row group: the KLL is fed through its sampler.
    let n = 300_000u64;
    let values: Vec<f64> = (0..n).map(|i| ((i * 7_919) % n) as f64).collect();
    let bytes = parquet(
        vec![("x", Arc::new(Float64Array::from(values)) as ArrayRef)],
        n as usize,
    );
    let outcome = run(&[("big.parquet", bytes)], None, None).await;
    let x = column(&outcome, "x");
    assert_eq!(x.count, n);
    for q in [0.05, 0.25, 0.5, 0.75, 0.95] {
        let rank = quantile(x, q) / n as f64;
        assert!((rank - q).abs() < 0.02, "q {q}: rank {rank}");
    }
    let h = x.histogram.as_ref().unwrap();
    assert_eq!(h.counts.iter().sum::<u64>(), n);
    for &c in &h.counts {
        assert!(
            (c as f64 / (n as f64 / 20.0) - 1.0).abs() < 0.3,
            "{:?}",
            h.counts
        );
    }
    assert!((x.distinct as f64 / n as f64 - 1.0).abs() < 0.05);
}

#[tokio::test]
async fn jsonl_lines_are_profiled() {
    let data = "{\"n\": 1, \"s\": \"x\"}\n\n{\"n\": 3, \"s\": null}\n{\"n\": null, \"s\": \"y\"}";
    let outcome = run(&[("e.ndjson", data.into())], None, None).await;
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_eq!(outcome.profile.rows, 3);
    let n = column(&outcome, "n");
    assert_eq!(
        (n.type_, n.count, n.nulls, n.mean),
        (ColumnType::Integer, 2, 1, Some(2.0))
    );
    let s = column(&outcome, "s");
    assert_eq!((s.type_, s.count, s.nulls), (ColumnType::String, 2, 1));
}

#[tokio::test]
async fn two_files_merge_and_integers_unify_with_floats() {
    let outcome = run(
        &[
            ("a.csv", "v,w\n1,x\n2,y\n".into()),
            ("b.csv", "v,w\n4.5,x\n".into()),
        ],
        None,
        None,
    )
    .await;
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_eq!(outcome.profile.rows, 3);
    let v = column(&outcome, "v");
    assert_eq!(
        (v.type_, v.count, v.mean, v.max),
        (ColumnType::Float, 3, Some(2.5), Some(4.5))
    );
    let w = column(&outcome, "w");
    assert_eq!(
        (w.top_values[0].value.as_str(), w.top_values[0].count),
        ("x", 2)
    );
}

#[tokio::test]
async fn timestamps_are_profiled_in_epoch_seconds() {
    let data = "at\n2024-01-01T00:00:00\n2024-01-02T00:00:00\n";
    let outcome = run(&[("t.csv", data.into())], None, None).await;
    let at = column(&outcome, "at");
    assert_eq!(at.type_, ColumnType::Timestamp);
    assert_eq!(
        (at.min, at.max),
        (Some(1_704_067_200.0), Some(1_704_153_600.0))
    );
}

#[tokio::test]
async fn spec_format_overrides_the_extension() {
    let outcome = run(&[("data.txt", "a\n1\n".into())], Some(Format::Csv), None).await;
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_eq!(outcome.profile.rows, 1);
}

#[tokio::test]
async fn malformed_csv_rows_are_reported_with_their_line_and_skipped() {
    let data = "a,b\n1,2\n3,4,5\n\"multi\nline\",6\n7\n8,9\n";
    let outcome = run(&[("m.csv", data.into())], None, None).await;
    assert_failure(&outcome, "data/m.csv line 3: expected 2 fields, found 3");
    assert_failure(&outcome, "data/m.csv line 6: expected 2 fields, found 1");
    assert_eq!(outcome.failures.len(), 2, "{:?}", outcome.failures);
    assert_eq!(outcome.profile.rows, 3);
}

#[tokio::test]
async fn csv_values_that_do_not_parse_as_the_inferred_type_are_reported() {
    // The schema comes from the first MiB; the bad value comes after it.
    let mut data = String::from("n\n");
    let good = 200_000;
    for i in 0..good {
        data.push_str(&format!("{}\n", 100_000 + i));
    }
    data.push_str("oops\n");
    let outcome = run(&[("n.csv", data.into())], None, None).await;
    let line = good + 2;
    assert_failure(
        &outcome,
        &format!("data/n.csv line {line}: column \"n\": cannot read \"oops\" as integer"),
    );
    let n = column(&outcome, "n");
    assert_eq!((n.type_, n.count, n.nulls), (ColumnType::Integer, good, 1));
}

#[tokio::test]
async fn csv_fields_that_are_not_utf8_are_reported() {
    let data = b"a,b\n1,x\n2,\xff\xfe\n".to_vec();
    let outcome = run(&[("u.csv", data)], None, None).await;
    assert_eq!(
        outcome.failures,
        ["data/u.csv line 3: column \"b\" is not valid UTF-8"]
    );
    assert_eq!(outcome.profile.rows, 1);
}

#[tokio::test]
async fn many_malformed_rows_are_summarised() {
    let mut data = String::from("a,b\n");
    for _ in 0..25 {
        data.push_str("1\n");
    }
    data.push_str("1,2\n");
    let outcome = run(&[("m.csv", data.into())], None, None).await;
    assert_eq!(outcome.failures.len(), 11, "{:?}", outcome.failures);
    assert_failure(&outcome, "data/m.csv line 2: expected 2 fields, found 1");
    assert_failure(
        &outcome,
        "data/m.csv: 15 more malformed rows (the first 10 are listed)",
    );
}

#[tokio::test]
async fn invalid_json_lines_are_reported_and_the_rest_counted() {
    let data = "{\"a\": 1, \"b\": \"x\"}\n{\"a\": 2\n[3]\n{\"a\": 4, \"b\": 5}\n";
    let outcome = run(&[("j.jsonl", data.into())], None, None).await;
    assert_eq!(outcome.failures.len(), 2, "{:?}", outcome.failures);
    assert!(
        outcome.failures[0].starts_with("data/j.jsonl line 2: invalid JSON: "),
        "{:?}",
        outcome.failures
    );
    assert!(outcome.failures[1].starts_with("data/j.jsonl line 3: "));
    assert_eq!(outcome.profile.rows, 2);
    assert_eq!(column(&outcome, "a").mean, Some(2.5));
    // A number where the head had text is read as text.
    assert_eq!(column(&outcome, "b").distinct, 2);
}

#[tokio::test]
async fn json_values_that_do_not_fit_the_inferred_type_are_reported() {
    // The schema comes from the first lines; the text comes after them.
    let mut data = String::new();
    let good = 12_000;
    for i in 0..good {
        data.push_str(&format!("{{\"n\": {i}}}\n"));
    }
    data.push_str("{\"n\": \"many\"}\n");
    let outcome = run(&[("n.jsonl", data.into())], None, None).await;
    assert_eq!(outcome.failures.len(), 1, "{:?}", outcome.failures);
    assert_eq!(
        outcome.failures[0],
        format!(
            "data/n.jsonl line {}: whilst decoding field 'n': failed to parse \"many\" as Int64",
            good + 1
        )
    );
    assert_eq!(outcome.profile.rows, good);
}

#[tokio::test]
async fn a_file_of_unknown_format_is_a_failure() {
    let outcome = run(
        &[("a.csv", "x\n1\n".into()), ("notes.txt", "hello".into())],
        None,
        None,
    )
    .await;
    assert_failure(
        &outcome,
        "data/notes.txt: unknown format: set spec.format, or name the file .csv, .parquet or .jsonl",
    );
    assert_eq!(outcome.profile.rows, 1);
}

#[tokio::test]
async fn columns_whose_types_disagree_between_files_name_both_files() {
    let outcome = run(
        &[("a.csv", "v\n1\n".into()), ("b.csv", "v\nx\n".into())],
        None,
        None,
    )
    .await;
    assert_failure(
        &outcome,
        "column \"v\" is integer in data/a.csv but string in data/b.csv",
    );
}

#[tokio::test]
async fn an_empty_dataset_is_a_failure() {
    let outcome = run(&[("a.csv", "x,y\n".into())], None, None).await;
    assert_eq!(outcome.failures, ["the dataset has no rows"]);
    let outcome = run(&[], None, None).await;
    assert_eq!(outcome.failures, ["the dataset has no rows"]);
}

#[tokio::test]
async fn fewer_rows_than_min_rows_is_a_failure() {
    let e = Expectations {
        columns: vec![],
        min_rows: Some(10),
    };
    let outcome = run(&[("p.csv", PEOPLE.into())], None, Some(&e)).await;
    assert_eq!(
        outcome.failures,
        ["the dataset has 4 rows, fewer than minRows 10"]
    );
}

#[tokio::test]
async fn expectations_that_hold_produce_no_failures() {
    let e = Expectations {
        columns: vec![
            ColumnExpectation {
                type_: Some(ColumnType::Float),
                min: Some(0.0),
                max: Some(100.0),
                ..col("age")
            },
            ColumnExpectation {
                type_: Some(ColumnType::String),
                nullable: false,
                allowed_values: vec!["Paris".into(), "Lyon".into(), "Nice".into()],
                ..col("city")
            },
            ColumnExpectation {
                type_: Some(ColumnType::Boolean),
                allowed_values: vec!["true".into(), "false".into()],
                ..col("active")
            },
        ],
        min_rows: Some(4),
    };
    let outcome = run(&[("p.csv", PEOPLE.into())], None, Some(&e)).await;
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
}

#[tokio::test]
async fn every_unmet_expectation_is_a_failure_naming_column_file_and_line() {
    let e = expect(vec![
        ColumnExpectation {
            type_: Some(ColumnType::Integer),
            ..col("score")
        },
        ColumnExpectation {
            type_: Some(ColumnType::Integer),
            ..col("city")
        },
        ColumnExpectation {
            nullable: false,
            min: Some(35.0),
            ..col("age")
        },
        ColumnExpectation {
            allowed_values: vec!["Paris".into()],
            ..col("city")
        },
        col("missing"),
    ]);
    let outcome = run(&[("p.csv", PEOPLE.into())], None, Some(&e)).await;
    let expected = [
        "column \"score\": expected integer, found float",
        "column \"city\": expected integer, found string",
        "column \"age\" is not nullable but has 1 null; the first in data/p.csv line 4",
        "column \"age\": 1 value outside [35, ∞); the first is 30 in data/p.csv line 2",
        "column \"city\": 2 values not among the allowed values; the first is \"Lyon\" in data/p.csv line 3",
        "column \"missing\" is missing",
    ];
    assert_eq!(outcome.failures, expected);
}

#[tokio::test]
async fn a_column_missing_from_some_files_names_them() {
    let e = expect(vec![col("b")]);
    let outcome = run(
        &[("1.csv", "a,b\n1,2\n".into()), ("2.csv", "a\n3\n".into())],
        None,
        Some(&e),
    )
    .await;
    assert_eq!(
        outcome.failures,
        ["column \"b\" is missing from data/2.csv"]
    );
}

#[tokio::test]
async fn the_first_offence_is_found_across_files_and_row_groups() {
    let make = |offset: i64| {
        parquet(
            vec![(
                "v",
                Arc::new(Int64Array::from_iter_values(
                    (0..100).map(|i| if i == 57 || i == 80 { 1000 + offset } else { i }),
                )) as ArrayRef,
            )],
            10,
        )
    };
    let e = expect(vec![ColumnExpectation {
        max: Some(500.0),
        ..col("v")
    }]);
    let outcome = run(
        &[("a.parquet", make(0)), ("b.parquet", make(1))],
        None,
        Some(&e),
    )
    .await;
    assert_eq!(
        outcome.failures,
        ["column \"v\": 4 values outside (-∞, 500]; the first is 1000 in data/a.parquet row 58"]
    );
}

#[tokio::test]
async fn float_expectations_accept_integers_but_integer_ones_reject_floats() {
    let e = expect(vec![
        ColumnExpectation {
            type_: Some(ColumnType::Float),
            ..col("age")
        },
        ColumnExpectation {
            type_: Some(ColumnType::Integer),
            ..col("score")
        },
    ]);
    let outcome = run(&[("p.csv", PEOPLE.into())], None, Some(&e)).await;
    assert_eq!(
        outcome.failures,
        ["column \"score\": expected integer, found float"]
    );
}

#[tokio::test]
async fn parquet_timestamps_check_as_timestamps() {
    let ts = arrow::array::TimestampMillisecondArray::from(vec![0, 86_400_000]);
    let bytes = parquet(vec![("t", Arc::new(ts) as ArrayRef)], 10);
    let e = expect(vec![ColumnExpectation {
        type_: Some(ColumnType::Timestamp),
        ..col("t")
    }]);
    let outcome = run(&[("t.parquet", bytes)], None, Some(&e)).await;
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_eq!(column(&outcome, "t").max, Some(86_400.0));
}

#[tokio::test]
async fn unprofiled_parquet_columns_are_counted_but_not_checked() {
    let schema = Arc::new(Schema::new(vec![Field::new("b", DataType::Binary, false)]));
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(arrow::array::BinaryArray::from_vec(vec![
            b"x", b"y",
        ]))],
    )
    .unwrap();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let e = expect(vec![col("b")]);
    let outcome = run(&[("b.parquet", bytes)], None, Some(&e)).await;
    assert_eq!(outcome.profile.rows, 2);
    assert!(outcome.profile.columns.is_empty());
    assert_eq!(
        outcome.failures,
        ["column \"b\" has type Binary, which ciclo does not check"]
    );
}

#[tokio::test]
async fn a_corrupt_parquet_file_is_a_failure_not_an_error() {
    let outcome = run(
        &[("bad.parquet", b"not parquet at all".to_vec())],
        None,
        None,
    )
    .await;
    assert_eq!(outcome.failures.len(), 2, "{:?}", outcome.failures);
    assert!(
        outcome.failures[0].starts_with("data/bad.parquet: not a readable parquet file: "),
        "{:?}",
        outcome.failures
    );
}

#[tokio::test]
async fn a_missing_object_is_a_source_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    for name in ["gone.csv", "gone.parquet"] {
        let inputs = vec![Input {
            location: Path::from(name),
            relative: name.into(),
            size: 100,
        }];
        let result = profile(store.clone(), inputs, None, None).await;
        assert!(
            matches!(result, Err(Error::Source(_))),
            "{name}: {result:?}"
        );
    }
}

#[tokio::test]
async fn profiles_round_trip_through_json() {
    let outcome = run(&[("p.csv", PEOPLE.into())], None, None).await;
    let json = serde_json::to_string(&outcome.profile).unwrap();
    let back: ciclo_profile::Profile = serde_json::from_str(&json).unwrap();
    assert_eq!(back, outcome.profile);
}

#[tokio::test]
async fn streamed_stores_give_the_same_profile_as_local_files() {
    use object_store::ObjectStoreExt as _;
    // An in-memory store streams like S3 does (no local file handle to read directly).
    let mut csv = String::from("n,s\n");
    for i in 0..150_000 {
        csv.push_str(&format!("{i},v{}\n", i % 7));
    }
    let jsonl: String = (0..1000).map(|i| format!("{{\"n\": {i}}}\n")).collect();
    let pq = parquet(
        vec![(
            "n",
            Arc::new(Int64Array::from_iter_values(0..1000)) as ArrayRef,
        )],
        100,
    );
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("a.csv", csv.into()),
        ("b.jsonl", jsonl.into()),
        ("c.parquet", pq),
    ];
    let memory = Arc::new(object_store::memory::InMemory::new());
    for (name, bytes) in &files {
        memory
            .put(&Path::from(*name), bytes.clone().into())
            .await
            .unwrap();
    }
    let inputs = files
        .iter()
        .map(|(name, bytes)| Input {
            location: Path::from(*name),
            relative: format!("data/{name}"),
            size: bytes.len() as u64,
        })
        .collect();
    let streamed = profile(memory, inputs, None, None).await.unwrap();
    assert!(streamed.failures.is_empty(), "{:?}", streamed.failures);
    assert_eq!(streamed.profile.rows, 152_000);
    let local = run(&files, None, None).await;
    let (s, l) = (column(&streamed, "n"), column(&local, "n"));
    assert_eq!(
        (s.count, s.min, s.max, s.mean),
        (l.count, l.min, l.max, l.mean)
    );
    assert_eq!(
        column(&streamed, "s").top_values,
        column(&local, "s").top_values
    );
}
