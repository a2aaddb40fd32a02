//! A verified file's bytes as Arrow record batches: csv (with a header row), parquet or
//! jsonl. Each file's schema is inferred from all of its rows, so a float that first appears
//! deep in a file is not a parse error; files may infer different types for a column (`1` in
//! one, `1.5` in another), which the table step reconciles.

use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use ciclo_profile::Format;
use std::io::Cursor;
use std::sync::Arc;

/// Rows per batch: large enough that per-batch costs vanish, small enough to stay in cache.
const BATCH_ROWS: usize = 8192;

/// Parses `bytes` of the file `path` as `format`; the error says what is wrong where.
pub(crate) fn batches(
    path: &str,
    format: Format,
    bytes: Bytes,
) -> Result<Vec<RecordBatch>, String> {
    let result = match format {
        Format::Csv => csv(&bytes),
        Format::Parquet => parquet(bytes),
        Format::Jsonl => jsonl(&bytes),
    };
    result.map_err(|e| format!("file {path} is not valid {format}: {e}"))
}

fn csv(bytes: &[u8]) -> Result<Vec<RecordBatch>, Box<dyn std::error::Error + Send + Sync>> {
    let (schema, _) = arrow::csv::reader::Format::default()
        .with_header(true)
        .infer_schema(Cursor::new(bytes), None)?;
    let reader = arrow::csv::ReaderBuilder::new(Arc::new(schema))
        .with_header(true)
        .with_batch_size(BATCH_ROWS)
        .build(Cursor::new(bytes))?;
    Ok(reader.collect::<Result<_, _>>()?)
}

fn parquet(bytes: Bytes) -> Result<Vec<RecordBatch>, Box<dyn std::error::Error + Send + Sync>> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)?
        .with_batch_size(BATCH_ROWS)
        .build()?;
    Ok(reader.collect::<Result<_, _>>()?)
}

fn jsonl(bytes: &[u8]) -> Result<Vec<RecordBatch>, Box<dyn std::error::Error + Send + Sync>> {
    let (schema, _) = arrow::json::reader::infer_json_schema(Cursor::new(bytes), None)?;
    let reader = arrow::json::ReaderBuilder::new(Arc::new(schema))
        .with_batch_size(BATCH_ROWS)
        .build(Cursor::new(bytes))?;
    Ok(reader.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::DataType;

    #[test]
    fn csv_types_come_from_every_row() {
        let mut text = String::from("x,label\n");
        for i in 0..5000 {
            text.push_str(&format!("{i},a\n"));
        }
        text.push_str("0.5,b\n");
        let got = batches("a.csv", Format::Csv, Bytes::from(text)).unwrap();
        assert_eq!(got[0].schema().field(0).data_type(), &DataType::Float64);
        assert_eq!(got.iter().map(|b| b.num_rows()).sum::<usize>(), 5001);
    }

    #[test]
    fn jsonl_reads_objects_per_line() {
        let got = batches(
            "a.jsonl",
            Format::Jsonl,
            Bytes::from_static(b"{\"x\": 1, \"y\": true}\n{\"x\": 2.5, \"y\": false}\n"),
        )
        .unwrap();
        assert_eq!(got[0].num_rows(), 2);
        assert_eq!(got[0].schema().field(1).data_type(), &DataType::Boolean);
    }

    #[test]
    fn a_malformed_file_is_named() {
        let err = batches("bad.parquet", Format::Parquet, Bytes::from_static(b"nope")).unwrap_err();
        assert!(
            err.starts_with("file bad.parquet is not valid parquet"),
            "{err}"
        );
    }
}
