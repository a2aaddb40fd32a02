//! jsonl: one JSON object per line. The schema is inferred by arrow from the objects on the
//! file's first lines; then lines are gathered ~8192 at a time and decoded by arrow-json's
//! push decoder. A batch that fails to decode is decoded again line by line, so that each
//! bad line is reported with its number and the good lines still count. Keys missing from
//! the inferred schema are ignored; nested values are decoded but not profiled.

use super::{BATCH_ROWS, Chunks, Context, SAMPLE_BYTES};
use crate::Error;
use crate::check::{At, RowNumbers};
use crate::part::{Part, Unit};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::json::ReaderBuilder;
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

/// Lines of the head the schema is inferred from.
const SAMPLE_LINES: usize = 10_000;

pub(super) fn read(ctx: &Context, file: usize, chunks: &mut Chunks) -> Result<Part, Error> {
    let input = &ctx.inputs[file];
    let mut head = Vec::new();
    let ended = chunks.fill(&mut head, SAMPLE_BYTES)?;
    if head.iter().all(u8::is_ascii_whitespace) {
        return Ok(Part::default());
    }
    let schema = match infer(&head, ended) {
        Ok(schema) => Arc::new(schema),
        Err(e) => {
            let message = format!("{}: the columns cannot be inferred: {e}", input.relative);
            return Ok(Part::failed(At { file, number: 0 }, message));
        }
    };
    let fields = (0..schema.fields().len()).collect();
    let mut unit = Unit::new(
        &ctx.checks,
        file,
        &schema,
        fields,
        true,
        0,
        ctx.seed(file, 0),
    );
    let mut lines = Lines::new(schema, &input.relative, input.size);
    lines.feed(&head, &mut unit);
    drop(head);
    if !ended {
        while let Some(chunk) = chunks.next()? {
            lines.feed(&chunk, &mut unit);
        }
    }
    lines.finish(&mut unit);
    Ok(unit.finish())
}

/// Infers the schema from the objects on the complete lines of a file's head.
fn infer(head: &[u8], ended: bool) -> Result<Schema, ArrowError> {
    let complete = if ended {
        head
    } else {
        &head[..memchr::memrchr(b'\n', head).map_or(0, |i| i + 1)]
    };
    let objects: Vec<serde_json::Value> = complete
        .split(|b| *b == b'\n')
        .filter(|line| !line.trim_ascii().is_empty())
        .take(SAMPLE_LINES)
        .filter_map(|line| serde_json::from_slice(line).ok())
        .filter(serde_json::Value::is_object)
        .collect();
    arrow::json::reader::infer_json_schema_from_iterator(objects.into_iter().map(Ok))
}

/// Gathers lines into batches for a [`Unit`].
struct Lines<'a> {
    schema: SchemaRef,
    /// The end of the previous chunk, up to its last newline.
    carry: Vec<u8>,
    /// Lines seen so far.
    line: u64,
    /// The non-blank lines of the batch, each ending in a newline, and their numbers.
    batch: Vec<u8>,
    numbers: Vec<u64>,
    relative: &'a str,
    size: u64,
    consumed: u64,
    rows: u64,
    estimated: bool,
}

impl<'a> Lines<'a> {
    fn new(schema: SchemaRef, relative: &'a str, size: u64) -> Self {
        Lines {
            schema,
            carry: Vec::new(),
            line: 0,
            batch: Vec::new(),
            numbers: Vec::with_capacity(BATCH_ROWS),
            relative,
            size,
            consumed: 0,
            rows: 0,
            estimated: false,
        }
    }

    fn feed(&mut self, chunk: &[u8], unit: &mut Unit<'_>) {
        let mut rest = chunk;
        while let Some(newline) = memchr::memchr(b'\n', rest) {
            let (line, after) = rest.split_at(newline + 1);
            if self.carry.is_empty() {
                self.line_done(line, unit);
            } else {
                let mut whole = std::mem::take(&mut self.carry);
                whole.extend_from_slice(line);
                self.line_done(&whole, unit);
                whole.clear();
                self.carry = whole;
            }
            rest = after;
        }
        self.carry.extend_from_slice(rest);
    }

    fn finish(&mut self, unit: &mut Unit<'_>) {
        if !self.carry.is_empty() {
            let mut last = std::mem::take(&mut self.carry);
            last.push(b'\n');
            self.line_done(&last, unit);
        }
        self.flush(unit);
    }

    fn line_done(&mut self, line: &[u8], unit: &mut Unit<'_>) {
        self.line += 1;
        self.consumed += line.len() as u64;
        if line.trim_ascii().is_empty() {
            return;
        }
        self.batch.extend_from_slice(line);
        self.numbers.push(self.line);
        if self.numbers.len() == BATCH_ROWS {
            self.flush(unit);
        }
    }

    fn flush(&mut self, unit: &mut Unit<'_>) {
        if self.numbers.is_empty() {
            return;
        }
        if !self.estimated {
            self.estimated = true;
            let expected = self.size as f64 * self.numbers.len() as f64 / self.consumed as f64;
            unit.expect(expected as u64);
        }
        match decode(&self.schema, &self.batch) {
            Ok(batch) if batch.num_rows() == self.numbers.len() => {
                self.rows += batch.num_rows() as u64;
                add(unit, &batch, &self.numbers);
            }
            _ => self.line_by_line(unit),
        }
        self.batch.clear();
        self.numbers.clear();
    }

    /// Decodes each line of a batch that failed on its own, reports the bad ones and adds
    /// the good ones.
    fn line_by_line(&mut self, unit: &mut Unit<'_>) {
        let mut good = Vec::new();
        let mut good_numbers = Vec::new();
        let lines = self.batch.split_inclusive(|b| *b == b'\n');
        for (line, &number) in lines.zip(&self.numbers) {
            let problem = match serde_json::from_slice::<serde::de::IgnoredAny>(line) {
                Err(e) => Some(format!("invalid JSON: {e}")),
                Ok(_) => match decode(&self.schema, line) {
                    Ok(batch) if batch.num_rows() == 1 => None,
                    Ok(_) => Some("not a JSON object".to_string()),
                    Err(ArrowError::JsonError(e)) => Some(e),
                    Err(e) => Some(e.to_string()),
                },
            };
            match problem {
                Some(problem) => unit.malformed(
                    number,
                    format!("{} line {number}: {problem}", self.relative),
                ),
                None => {
                    good.extend_from_slice(line);
                    good_numbers.push(number);
                }
            }
        }
        if let Ok(batch) = decode(&self.schema, &good)
            && batch.num_rows() == good_numbers.len()
        {
            self.rows += batch.num_rows() as u64;
            add(unit, &batch, &good_numbers);
        }
    }
}

fn add(unit: &mut Unit<'_>, batch: &RecordBatch, numbers: &[u64]) {
    if batch.num_columns() == 0 {
        unit.add_rows(numbers.len() as u64);
    } else {
        unit.add(batch.columns(), &RowNumbers::Lines(numbers));
    }
}

/// Decodes whole lines into one batch.
fn decode(schema: &SchemaRef, lines: &[u8]) -> Result<RecordBatch, ArrowError> {
    if schema.fields().is_empty() {
        // No columns to decode into: count the objects.
        let rows = lines
            .split(|b| *b == b'\n')
            .filter(|l| !l.trim_ascii().is_empty())
            .map(serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ArrowError::JsonError(e.to_string()))?
            .len();
        let options = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows));
        return RecordBatch::try_new_with_options(schema.clone(), vec![], &options);
    }
    // A column the head shows as text may hold numbers and booleans too: read them as text.
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_coerce_primitive(true)
        .with_batch_size(BATCH_ROWS + 1)
        .build_decoder()?;
    let read = decoder.decode(lines)?;
    if read != lines.len() {
        return Err(ArrowError::JsonError(
            "more than one object on a line".into(),
        ));
    }
    Ok(decoder
        .flush()?
        .unwrap_or_else(|| RecordBatch::new_empty(schema.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::DataType;

    #[test]
    fn the_schema_comes_from_valid_objects_on_complete_lines() {
        let head = b"{\"a\": 1, \"b\": \"x\"}\nnot json\n{\"a\": 2.5}\n{\"c\": tr";
        let schema = infer(head, false).unwrap();
        assert_eq!(
            schema.field_with_name("a").unwrap().data_type(),
            &DataType::Float64
        );
        assert_eq!(
            schema.field_with_name("b").unwrap().data_type(),
            &DataType::Utf8
        );
        assert!(schema.field_with_name("c").is_err());
    }

    #[test]
    fn a_line_is_one_object() {
        let schema = Arc::new(infer(b"{\"a\": 1}\n", true).unwrap());
        assert_eq!(
            decode(&schema, b"{\"a\": 1}\n{\"a\": 2}\n")
                .unwrap()
                .num_rows(),
            2
        );
        assert!(decode(&schema, b"{\"a\": }\n").is_err());
    }
}
