//! Benchmarks of ciclo's data plane against peer tools; `profile.sh` runs them.
//!
//! The table the profiling benchmark reads is a realistic ML training table, generated
//! deterministically (same seed, same bytes) so that every run and every tool reads the
//! same file:
//!
//! | column | type | values |
//! |---|---|---|
//! | `amount` | float64 | log-normal purchase amounts (median ~20) |
//! | `score` | float64 | uniform in [0, 1) (a model score) |
//! | `latitude`, `longitude` | float64 | uniform over the globe |
//! | `temperature` | float64 | normal (15, 8), 1 % null |
//! | `age` | int64 | uniform 18..=90 |
//! | `clicks` | int64 | geometric counts, mostly small |
//! | `user_id` | int64 | uniform over 1M users |
//! | `country` | string | 20 countries, skewed (a categorical feature) |
//! | `churned` | boolean | true 10 % of the time (the label) |
//!
//! Row groups of 2^20 rows, snappy compression: what pyarrow, Spark and Polars write
//! by default or close to it.
#![forbid(unsafe_code)]

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::sync::Arc;

/// Changes whenever the generated table changes, so that cached files are made anew.
pub const GENERATOR_VERSION: &str = "v1";

/// Rows per row group.
pub const ROW_GROUP_ROWS: usize = 1 << 20;

/// Rows generated (and written) at once.
const CHUNK_ROWS: usize = 1 << 16;

const COUNTRIES: [&str; 20] = [
    "US", "DE", "FR", "GB", "IN", "BR", "JP", "CN", "ES", "IT", "NL", "SE", "PL", "MX", "CA", "AU",
    "KR", "TR", "AR", "ZA",
];

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("amount", DataType::Float64, false),
        Field::new("score", DataType::Float64, false),
        Field::new("latitude", DataType::Float64, false),
        Field::new("longitude", DataType::Float64, false),
        Field::new("temperature", DataType::Float64, true),
        Field::new("age", DataType::Int64, false),
        Field::new("clicks", DataType::Int64, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("country", DataType::Utf8, false),
        Field::new("churned", DataType::Boolean, false),
    ]))
}

/// SplitMix64: deterministic, fast, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u = 1.0 - self.unit();
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Writes the benchmark table of `rows` rows as parquet to `out`.
pub fn write_table(out: impl std::io::Write + Send, rows: usize) -> parquet::errors::Result<()> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let mut writer = ArrowWriter::try_new(out, schema(), Some(props))?;
    let mut rng = Rng(42);
    let mut written = 0;
    while written < rows {
        let n = CHUNK_ROWS.min(rows - written);
        writer.write(&chunk(&mut rng, n))?;
        written += n;
    }
    writer.close()?;
    Ok(())
}

fn chunk(rng: &mut Rng, n: usize) -> RecordBatch {
    let mut floats: Vec<Float64Builder> =
        (0..5).map(|_| Float64Builder::with_capacity(n)).collect();
    let mut ints: Vec<Int64Builder> = (0..3).map(|_| Int64Builder::with_capacity(n)).collect();
    let mut country = StringBuilder::with_capacity(n, n * 2);
    let mut churned = BooleanBuilder::with_capacity(n);
    for _ in 0..n {
        floats[0].append_value((3.0 + 1.2 * rng.normal()).exp());
        floats[1].append_value(rng.unit());
        floats[2].append_value(rng.unit() * 180.0 - 90.0);
        floats[3].append_value(rng.unit() * 360.0 - 180.0);
        if rng.below(100) == 0 {
            floats[4].append_null();
        } else {
            floats[4].append_value(15.0 + 8.0 * rng.normal());
        }
        ints[0].append_value(18 + rng.below(73) as i64);
        // Geometric with mean ~3: the number of failures before a 1-in-4 success.
        ints[1].append_value((rng.unit().max(f64::MIN_POSITIVE).ln() / 0.75f64.ln()) as i64);
        ints[2].append_value(rng.below(1_000_000) as i64);
        // Squaring a uniform skews towards the first countries.
        let c = (rng.unit() * rng.unit() * COUNTRIES.len() as f64) as usize;
        country.append_value(COUNTRIES[c]);
        churned.append_value(rng.below(10) == 0);
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(10);
    columns.extend(floats.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    columns.extend(ints.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    columns.push(Arc::new(country.finish()));
    columns.push(Arc::new(churned.finish()));
    RecordBatch::try_new(schema(), columns).expect("columns match the schema")
}

/// Writes `rows` rows of the benchmark table as csv (header first) to `out`; `seed` makes
/// different files of one tree differ.
pub fn write_csv(
    out: impl std::io::Write,
    rows: usize,
    seed: u64,
) -> Result<(), arrow::error::ArrowError> {
    let mut writer = arrow::csv::Writer::new(out);
    let mut rng = Rng(seed);
    let mut written = 0;
    while written < rows {
        let n = CHUNK_ROWS.min(rows - written);
        writer.write(&chunk(&mut rng, n))?;
        written += n;
    }
    Ok(())
}

/// The median of some timings.
pub fn median(mut seconds: Vec<f64>) -> f64 {
    seconds.sort_by(f64::total_cmp);
    let n = seconds.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        seconds[n / 2]
    } else {
        (seconds[n / 2 - 1] + seconds[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_the_same_every_time() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write_table(&mut a, 1000).unwrap();
        write_table(&mut b, 1000).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
