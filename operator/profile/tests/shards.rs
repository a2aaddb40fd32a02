//! A version profiled in shares (`profile_part` over contiguous ranges of its inputs, the
//! partials passed through JSON, then `merge`) against the same version profiled whole, and
//! both against the exact values the generated data was made of.

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampSecondArray,
};
use ciclo_core::expectations::{ColumnExpectation, ColumnType, Expectations};
use ciclo_profile::{ColumnProfile, Input, Outcome, Partial, merge, profile, profile_part};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

const CITIES: [&str; 30] = [
    "Paris", "Lyon", "Nice", "Lille", "Nantes", "Rennes", "Brest", "Metz", "Dijon", "Tours",
    "Caen", "Rouen", "Reims", "Nancy", "Pau", "Bayonne", "Toulon", "Annecy", "Grenoble", "Amiens",
    "Angers", "Arles", "Avignon", "Bastia", "Blois", "Calais", "Cannes", "Chartres", "Colmar",
    "Evian",
];

/// What the `mixed` column holds in a file: its type conflicts between files.
#[derive(Clone, Copy, PartialEq)]
enum Mixed {
    Int,
    Float,
    Text,
}

struct FileSpec {
    name: &'static str,
    rows: usize,
    mixed: Mixed,
    /// Whether the file has the expected `city` column.
    city: bool,
    /// Rows whose `x` is out of the expected range: one in this many (0: none).
    x_out_every: usize,
    /// Rows whose `id` is null (not allowed): one in this many (0: none).
    id_null_every: usize,
    /// Rows whose city is not allowed: one in this many (0: none).
    bad_city_every: usize,
    /// A malformed row after this many rows (csv only).
    malformed_after: Option<usize>,
}

const FILES: [FileSpec; 7] = [
    spec("p00.parquet", 20_000, Mixed::Int),
    FileSpec {
        x_out_every: 1500,
        bad_city_every: 700,
        malformed_after: Some(3000),
        ..spec("p01.csv", 8_000, Mixed::Text)
    },
    FileSpec {
        x_out_every: 900,
        id_null_every: 997,
        ..spec("p02.parquet", 20_000, Mixed::Int)
    },
    FileSpec {
        city: false,
        ..spec("p03.csv", 5_000, Mixed::Int)
    },
    FileSpec {
        x_out_every: 2000,
        ..spec("p04.parquet", 30_000, Mixed::Float)
    },
    FileSpec {
        bad_city_every: 900,
        id_null_every: 1200,
        ..spec("p05.csv", 6_000, Mixed::Text)
    },
    spec("p06.parquet", 10_000, Mixed::Int),
];

const fn spec(name: &'static str, rows: usize, mixed: Mixed) -> FileSpec {
    FileSpec {
        name,
        rows,
        mixed,
        city: true,
        x_out_every: 0,
        id_null_every: 0,
        bad_city_every: 0,
        malformed_after: None,
    }
}

/// One generated file's columns.
struct Columns {
    id: Vec<Option<i64>>,
    x: Vec<f64>,
    ts: Vec<i64>,
    city: Vec<Option<String>>,
    code: Vec<String>,
    flag: Vec<Option<bool>>,
    score: Vec<i64>,
    mixed: Vec<String>,
}

/// SplitMix64: reproducible data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn generate(file: usize, spec: &FileSpec, first_id: i64) -> Columns {
    let mut rng = Rng(file as u64 * 1000 + 7);
    let n = spec.rows;
    let every = |k: usize, r: usize| k > 0 && r % k == k - 1;
    let mut c = Columns {
        id: Vec::with_capacity(n),
        x: Vec::with_capacity(n),
        ts: Vec::with_capacity(n),
        city: Vec::with_capacity(n),
        code: Vec::with_capacity(n),
        flag: Vec::with_capacity(n),
        score: Vec::with_capacity(n),
        mixed: Vec::with_capacity(n),
    };
    for r in 0..n {
        c.id.push((!every(spec.id_null_every, r)).then_some(first_id + r as i64));
        // Roughly normal around 40 + 3 * file, within [0, 100] unless out on purpose.
        let x = (0..4).map(|_| rng.unit()).sum::<f64>() * 12.0 + 16.0 + 3.0 * file as f64;
        c.x.push(if every(spec.x_out_every, r) {
            150.0 + (r % 7) as f64
        } else {
            (x * 1000.0).round() / 1000.0
        });
        c.ts.push(1_700_000_000 + (rng.next() % 10_000_000) as i64);
        c.city.push(if r % 50 == 0 {
            None
        } else if every(spec.bad_city_every, r) {
            Some("Atlantis".into())
        } else {
            Some(CITIES[(rng.next() % 30) as usize].into())
        });
        c.code.push(if r % 10 == 0 {
            "hot".into()
        } else if r % 25 == 1 {
            "warm".into()
        } else {
            format!("c{}", rng.next() % 6000)
        });
        c.flag
            .push(if r % 7 == 0 { None } else { Some(r % 3 == 0) });
        // 200 distinct values per file, new ones in each: distinct counts over files grow
        // through every mode of the HyperLogLog (list, set, array).
        c.score.push((file * 200 + r % 200) as i64);
        c.mixed.push(match spec.mixed {
            Mixed::Int => ((r % 50) as i64).to_string(),
            Mixed::Float => format!("{}.5", r % 50),
            Mixed::Text => format!("m{}", r % 5),
        });
    }
    c
}

/// `YYYY-MM-DDTHH:MM:SS` of epoch seconds (proleptic Gregorian, UTC).
fn iso(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn csv(spec: &FileSpec, c: &Columns) -> Vec<u8> {
    let mut out = String::from("id,x,ts,");
    if spec.city {
        out.push_str("city,");
    }
    out.push_str("code,flag,score,mixed\n");
    let opt = |v: Option<String>| v.unwrap_or_default();
    for r in 0..spec.rows {
        if spec.malformed_after == Some(r) {
            out.push_str("1,2,3,4,5,6,7,8,9,10,11\n");
        }
        out.push_str(&format!(
            "{},{},{},",
            opt(c.id[r].map(|v| v.to_string())),
            c.x[r],
            iso(c.ts[r])
        ));
        if spec.city {
            out.push_str(&format!("{},", opt(c.city[r].clone())));
        }
        out.push_str(&format!(
            "{},{},{},{}\n",
            c.code[r],
            opt(c.flag[r].map(|b| b.to_string())),
            c.score[r],
            c.mixed[r]
        ));
    }
    out.into_bytes()
}

fn parquet(spec: &FileSpec, c: &Columns) -> Vec<u8> {
    let mixed: ArrayRef = match spec.mixed {
        Mixed::Int => Arc::new(Int64Array::from_iter_values(
            c.mixed.iter().map(|v| v.parse::<i64>().unwrap()),
        )),
        Mixed::Float => Arc::new(Float64Array::from_iter_values(
            c.mixed.iter().map(|v| v.parse::<f64>().unwrap()),
        )),
        Mixed::Text => Arc::new(StringArray::from_iter_values(&c.mixed)),
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(Int64Array::from(c.id.clone()))),
        ("x", Arc::new(Float64Array::from(c.x.clone()))),
        ("ts", Arc::new(TimestampSecondArray::from(c.ts.clone()))),
        ("city", Arc::new(StringArray::from(c.city.clone()))),
        ("code", Arc::new(StringArray::from_iter_values(&c.code))),
        ("flag", Arc::new(BooleanArray::from(c.flag.clone()))),
        ("score", Arc::new(Int64Array::from(c.score.clone()))),
        ("mixed", mixed),
        (
            "blob",
            Arc::new(BinaryArray::from_iter_values(
                c.code.iter().map(|s| s.as_bytes()),
            )),
        ),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    // Large row groups: the biggest (30k rows) feeds its KLL through the sampler.
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(spec.rows.min(30_000)))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    out
}

/// The exact values behind the profile, gathered from the generator (not from ciclo).
#[derive(Default)]
struct Truth {
    /// Every finite value of each numeric column that survives the type checks.
    numbers: HashMap<&'static str, Vec<f64>>,
    /// Exact counts of each text value of `code`.
    code: HashMap<String, u64>,
}

struct Tree {
    _dir: tempfile::TempDir,
    store: Arc<LocalFileSystem>,
    inputs: Vec<Input>,
    truth: Truth,
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = Vec::new();
    let mut truth = Truth::default();
    let mut first_id = 0;
    for (file, spec) in FILES.iter().enumerate() {
        let c = generate(file, spec, first_id);
        first_id += spec.rows as i64;
        let bytes = if spec.name.ends_with(".csv") {
            csv(spec, &c)
        } else {
            parquet(spec, &c)
        };
        std::fs::write(dir.path().join(spec.name), &bytes).unwrap();
        inputs.push(Input {
            location: Path::from(spec.name),
            relative: format!("data/{}", spec.name),
            size: bytes.len() as u64,
        });
        let numbers = &mut truth.numbers;
        numbers
            .entry("id")
            .or_default()
            .extend(c.id.iter().flatten().map(|&v| v as f64));
        numbers.entry("x").or_default().extend(&c.x);
        numbers
            .entry("ts")
            .or_default()
            .extend(c.ts.iter().map(|&v| v as f64));
        numbers
            .entry("score")
            .or_default()
            .extend(c.score.iter().map(|&v| v as f64));
        // p00 makes `mixed` a number: the text files conflict and are left out.
        if spec.mixed != Mixed::Text {
            numbers
                .entry("mixed")
                .or_default()
                .extend(c.mixed.iter().map(|v| v.parse::<f64>().unwrap()));
        }
        for v in &c.code {
            *truth.code.entry(v.clone()).or_default() += 1;
        }
    }
    Tree {
        store: Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap()),
        _dir: dir,
        inputs,
        truth,
    }
}

fn expectations() -> Expectations {
    let col = |name: &str| ColumnExpectation {
        name: name.into(),
        nullable: true,
        ..Default::default()
    };
    Expectations {
        columns: vec![
            ColumnExpectation {
                type_: Some(ColumnType::Integer),
                nullable: false,
                ..col("id")
            },
            ColumnExpectation {
                type_: Some(ColumnType::Float),
                min: Some(0.0),
                max: Some(100.0),
                ..col("x")
            },
            ColumnExpectation {
                allowed_values: CITIES.iter().map(|c| c.to_string()).collect(),
                ..col("city")
            },
            ColumnExpectation {
                type_: Some(ColumnType::Boolean),
                ..col("flag")
            },
        ],
        min_rows: Some(1000),
    }
}

/// The tree profiled in contiguous shares, each partial passed through JSON as a worker
/// would hand it over.
async fn sharded(tree: &Tree, ranges: &[Range<usize>]) -> Outcome {
    let e = expectations();
    let mut parts = Vec::new();
    for range in ranges {
        let part = profile_part(
            tree.store.clone(),
            tree.inputs[range.clone()].to_vec(),
            range.start,
            None,
            Some(&e),
        )
        .await
        .unwrap();
        assert_eq!((part.first(), part.files()), (range.start, range.len()));
        let json = serde_json::to_string(&part).unwrap();
        parts.push(serde_json::from_str::<Partial>(&json).unwrap());
    }
    merge(parts, &tree.inputs, None, Some(&e)).unwrap()
}

fn relative_eq(a: Option<f64>, b: Option<f64>, what: &str) {
    match (a, b) {
        (Some(a), Some(b)) => assert!(
            (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300),
            "{what}: {a} vs {b}"
        ),
        _ => assert_eq!(a, b, "{what}"),
    }
}

/// The fraction of `sorted` below `v`, and at or below it.
fn ranks(sorted: &[f64], v: f64) -> (f64, f64) {
    let n = sorted.len() as f64;
    let below = sorted.partition_point(|&x| x < v) as f64;
    let at_or_below = sorted.partition_point(|&x| x <= v) as f64;
    (below / n, at_or_below / n)
}

/// KLL (k = 200) errs by about 1.3 % of rank at 99 % confidence; the sampler adds less.
const RANK_ERROR: f64 = 0.02;

/// A numeric column's quantiles and histogram against the exact data.
fn assert_within_sketch_error(c: &ColumnProfile, sorted: &[f64], label: &str) {
    for q in &c.quantiles {
        let (lo, hi) = ranks(sorted, q.value);
        assert!(
            lo - RANK_ERROR <= q.q && q.q <= hi + RANK_ERROR,
            "{label} {}: q {} is value {} of rank [{lo}, {hi}]",
            c.name,
            q.q,
            q.value
        );
    }
    let h = c.histogram.as_ref().unwrap();
    assert_eq!(h.counts.iter().sum::<u64>(), c.count, "{label} {}", c.name);
    let mut cumulative = 0;
    for (i, count) in h.counts.iter().enumerate().take(h.counts.len() - 1) {
        cumulative += count;
        let exact = sorted.partition_point(|&x| x < h.edges[i + 1]) as f64;
        assert!(
            (cumulative as f64 - exact).abs() <= RANK_ERROR * c.count as f64,
            "{label} {}: {cumulative} values below {}, exactly {exact}",
            c.name,
            h.edges[i + 1]
        );
    }
}

/// What sharding must keep exactly, and what it may change only within the sketches' error.
fn assert_agree(whole: &Outcome, sharded: &Outcome, truth: &Truth, label: &str) {
    assert_eq!(sharded.failures, whole.failures, "{label}: failures");
    assert_eq!(sharded.profile.rows, whole.profile.rows, "{label}: rows");
    let names = |o: &Outcome| {
        o.profile
            .columns
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(sharded), names(whole), "{label}: columns");
    for (s, w) in sharded.profile.columns.iter().zip(&whole.profile.columns) {
        let what = format!("{label} {}", w.name);
        assert_eq!(
            (s.type_, s.count, s.nulls, s.min, s.max),
            (w.type_, w.count, w.nulls, w.min, w.max),
            "{what}"
        );
        assert_eq!(s.distinct, w.distinct, "{what}: distinct");
        relative_eq(s.mean, w.mean, &format!("{what}: mean"));
        relative_eq(s.std, w.std, &format!("{what}: std"));
        if w.name == "code" {
            // Past 1000 distinct values: the frequent-items sketch, whose counts may exceed
            // the true ones by at most its error. The heavy values are found either way.
            for v in s.top_values.iter().chain(&w.top_values) {
                let exact = truth.code[&v.value];
                assert!(
                    v.count.abs_diff(exact) <= s.count / 1000,
                    "{what}: {} counted {} of {exact}",
                    v.value,
                    v.count
                );
            }
            let heaviest = |o: &[ciclo_profile::ValueCount]| {
                o.iter()
                    .take(2)
                    .map(|v| v.value.clone())
                    .collect::<Vec<_>>()
            };
            assert_eq!(heaviest(&s.top_values), ["hot", "warm"], "{what}");
            assert_eq!(heaviest(&w.top_values), ["hot", "warm"], "{what}");
        } else {
            assert_eq!(s.top_values, w.top_values, "{what}: top values");
        }
        match (&s.histogram, &w.histogram) {
            (Some(sh), Some(wh)) => assert_eq!(sh.edges, wh.edges, "{what}: bin edges"),
            (sh, wh) => assert_eq!(sh, wh, "{what}"),
        }
        if let Some(values) = truth.numbers.get(w.name.as_str()) {
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            assert_eq!(sorted.len() as u64, w.count, "{what}: truth");
            assert_within_sketch_error(w, &sorted, &format!("{label} whole"));
            assert_within_sketch_error(s, &sorted, label);
        }
    }
}

#[tokio::test]
async fn shards_merge_into_the_profile_of_the_whole() {
    let tree = tree();
    let e = expectations();
    let whole = profile(tree.store.clone(), tree.inputs.clone(), None, Some(&e))
        .await
        .unwrap();

    // The tree is what it was meant to be, independently of any sharding.
    let rows: usize = FILES.iter().map(|f| f.rows).sum();
    assert_eq!(whole.profile.rows, rows as u64);
    let failures = &whole.failures;
    let expected = [
        "column \"mixed\" is integer in data/p00.parquet but string in data/p01.csv",
        "column \"mixed\" is float in data/p00.parquet but string in data/p05.csv",
        "column \"city\" is missing from data/p03.csv",
    ];
    for f in expected {
        assert!(failures.iter().any(|x| x == f), "no {f:?} in {failures:#?}");
    }
    // One in `every` rows of each file: the last of every `every`.
    let offences = |every: fn(&FileSpec) -> usize| -> usize {
        FILES
            .iter()
            .map(|f| f.rows.checked_div(every(f)).unwrap_or(0))
            .sum()
    };
    let expected = [
        "data/p01.csv line 3002: expected 8 fields, found 11".to_string(),
        format!(
            "column \"id\" is not nullable but has {} nulls; the first in data/p02.parquet row 997",
            offences(|f| f.id_null_every)
        ),
        format!(
            "column \"x\": {} values outside [0, 100]; the first is 151 in data/p01.csv line 1501",
            offences(|f| f.x_out_every)
        ),
        format!(
            "column \"city\": {} values not among the allowed values; the first is \"Atlantis\" in data/p01.csv line 701",
            offences(|f| f.bad_city_every)
        ),
    ];
    for f in &expected {
        assert!(failures.contains(f), "no {f:?} in {failures:#?}");
    }
    let mixed = whole.profile.column("mixed").unwrap();
    let numeric_rows: usize = (FILES.iter())
        .filter(|f| f.mixed != Mixed::Text)
        .map(|f| f.rows)
        .sum();
    assert_eq!(
        (mixed.type_, mixed.count),
        (ColumnType::Float, numeric_rows as u64)
    );
    let code = whole.profile.column("code").unwrap();
    assert!(
        (code.distinct as f64 / 6002.0 - 1.0).abs() < 0.05,
        "{}",
        code.distinct
    );
    let city = whole.profile.column("city").unwrap();
    assert_eq!(city.distinct, 31, "30 cities and Atlantis, counted exactly");

    for ranges in [
        vec![0..4, 4..7],
        vec![0..1, 1..4, 4..7],
        vec![0..2, 2..5, 5..7],
        vec![0..3, 3..3, 3..6, 6..7],
    ] {
        let label = format!("{ranges:?}");
        let sharded = sharded(&tree, &ranges).await;
        assert_agree(&whole, &sharded, &tree.truth, &label);
    }
}

#[tokio::test]
async fn a_partial_round_trips_through_json_unchanged() {
    let tree = tree();
    let e = expectations();
    let part = profile_part(tree.store.clone(), tree.inputs.clone(), 0, None, Some(&e))
        .await
        .unwrap();
    let json = serde_json::to_string(&part).unwrap();
    let back: Partial = serde_json::from_str(&json).unwrap();
    // Twice: what a worker writes reads back as what it wrote, however often it goes round.
    let again = serde_json::to_string(&back).unwrap();
    // Byte for byte, but for the HyperLogLog sketches: in their sparse modes they list
    // their hash set, whose order changes as it is rebuilt (their counts do not, below).
    let without_hll = |json: &str| {
        fn strip(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::Object(map) => {
                    map.remove("hll");
                    map.values_mut().for_each(strip);
                }
                serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
                _ => {}
            }
        }
        let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
        strip(&mut v);
        v
    };
    assert_eq!(without_hll(&again), without_hll(&json));
    let twice: Partial = serde_json::from_str(&again).unwrap();
    let finished = |p: Partial| merge(vec![p], &tree.inputs, None, Some(&e)).unwrap();
    let original = finished(part);
    assert_eq!(finished(back), original);
    assert_eq!(finished(twice), original);
}

#[tokio::test]
async fn partials_that_do_not_cover_the_inputs_in_order_are_refused() {
    let tree = tree();
    let e = expectations();
    let part = |range: Range<usize>| {
        let inputs = tree.inputs[range.clone()].to_vec();
        profile_part(tree.store.clone(), inputs, range.start, None, Some(&e))
    };
    let gap = vec![part(0..2).await.unwrap(), part(3..7).await.unwrap()];
    let err = merge(gap, &tree.inputs, None, Some(&e)).unwrap_err();
    assert!(
        err.to_string().contains("does not follow inputs 0..2"),
        "{err}"
    );
    let short = vec![part(0..2).await.unwrap()];
    let err = merge(short, &tree.inputs, None, Some(&e)).unwrap_err();
    assert!(err.to_string().contains("cover 2 of 7 inputs"), "{err}");
    let other_checks = vec![part(0..7).await.unwrap()];
    assert!(merge(other_checks, &tree.inputs, None, None).is_err());
}
