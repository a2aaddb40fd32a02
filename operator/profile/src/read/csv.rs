//! csv: a header row, then records. The schema is inferred per file by arrow from the
//! well-formed records of the file's head; then every record is split with csv-core (the
//! parser under arrow-csv and the csv crate) so that each row keeps the line it starts on
//! (quoted fields may span lines) and a malformed row is reported and skipped instead of
//! ending the file. Fields are collected as text, ~8192 rows at a time, and cast to the
//! inferred types with arrow's cast kernels; a value that does not parse is reported with
//! its line.

use super::{BATCH_ROWS, Chunks, Context, SAMPLE_BYTES};
use crate::Error;
use crate::check::{At, RowNumbers};
use crate::part::{Part, Unit};
use crate::types;
use arrow::array::{Array, ArrayRef, StringBuilder};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema};
use csv_core::{ReadRecordResult, Reader};
use std::sync::Arc;

/// Records of the head the schema is inferred from.
const SAMPLE_RECORDS: usize = 10_000;

pub(super) fn read(ctx: &Context, file: usize, chunks: &mut Chunks) -> Result<Part, Error> {
    let input = &ctx.inputs[file];
    let mut head = Vec::new();
    let ended = chunks.fill(&mut head, SAMPLE_BYTES)?;
    // A UTF-8 byte order mark is not part of the first column's name.
    if head.starts_with(b"\xEF\xBB\xBF") {
        head.drain(..3);
    }
    if head.iter().all(u8::is_ascii_whitespace) {
        // No header: not a table, and no rows either.
        return Ok(Part::default());
    }
    let schema = match infer(&head, ended) {
        Ok(schema) => schema,
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
    let mut decoder = Decoder::new(&schema, &input.relative, input.size);
    decoder.feed(&head, &mut unit);
    drop(head);
    if !ended {
        while let Some(chunk) = chunks.next()? {
            decoder.feed(&chunk, &mut unit);
        }
    }
    decoder.finish(&mut unit);
    Ok(unit.finish())
}

/// Infers the schema from the complete, well-formed records of a file's head.
fn infer(head: &[u8], ended: bool) -> Result<Schema, arrow::error::ArrowError> {
    let mut splitter = Splitter::new();
    let mut clean = Vec::with_capacity(head.len());
    let mut columns = None;
    let mut records = 0;
    let mut start = 0;
    let mut keep = |splitter: &Splitter, range: &[u8]| -> bool {
        let fields = splitter.fields();
        let ncols = *columns.get_or_insert(fields);
        if fields == ncols && splitter.texts().is_ok() {
            clean.extend_from_slice(range);
            if !range.ends_with(b"\n") && !range.ends_with(b"\r") {
                clean.push(b'\n');
            }
            records += 1;
        }
        records <= SAMPLE_RECORDS
    };
    let mut pos = 0;
    loop {
        let input = if pos < head.len() {
            &head[pos..]
        } else {
            &[][..]
        };
        if input.is_empty() && !ended {
            break;
        }
        let (n, step) = splitter.read(input);
        pos += n;
        match step {
            Step::Record => {
                let more = keep(&splitter, &head[start..pos]);
                splitter.next_record();
                start = pos;
                if !more {
                    break;
                }
            }
            Step::NeedInput if ended => continue,
            Step::NeedInput | Step::End => break,
        }
    }
    let format = arrow::csv::reader::Format::default().with_header(true);
    let (schema, _) = format.infer_schema(std::io::Cursor::new(clean), None)?;
    // Columns with no value in the head are read as text; columns of a type ciclo does not
    // profile too, so that their values are at least counted.
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match types::logical(f.data_type()) {
            Some(_) => f.as_ref().clone(),
            None => Field::new(f.name(), DataType::Utf8, true),
        })
        .collect();
    Ok(Schema::new(fields))
}

/// What the splitter saw.
#[derive(Debug, PartialEq)]
enum Step {
    /// A whole record is in [`Splitter::field`].
    Record,
    /// The input ended inside a record (or between records).
    NeedInput,
    /// The data ended.
    End,
}

/// Splits bytes into records, tracking the line each record starts on.
struct Splitter {
    reader: Reader,
    /// Newlines consumed so far.
    newlines: u64,
    /// The line the record in progress starts on.
    first_line: Option<u64>,
    out: Vec<u8>,
    out_len: usize,
    ends: Vec<usize>,
    ends_len: usize,
}

impl Splitter {
    fn new() -> Self {
        Splitter {
            reader: Reader::new(),
            newlines: 0,
            first_line: None,
            out: vec![0; 4096],
            out_len: 0,
            ends: vec![0; 64],
            ends_len: 0,
        }
    }

    /// Reads from `input` until a record ends or the input does; an empty input means the
    /// end of the data. Returns the bytes consumed.
    fn read(&mut self, input: &[u8]) -> (usize, Step) {
        let mut pos = 0;
        loop {
            let (result, nin, nout, nend) = self.reader.read_record(
                &input[pos..],
                &mut self.out[self.out_len..],
                &mut self.ends[self.ends_len..],
            );
            let consumed = &input[pos..pos + nin];
            if self.first_line.is_none() {
                // Blank lines before a record are skipped by the parser, not part of it.
                let blank = consumed
                    .iter()
                    .take_while(|b| **b == b'\n' || **b == b'\r')
                    .count();
                if blank < consumed.len() {
                    let before = memchr::memchr_iter(b'\n', &consumed[..blank]).count();
                    self.first_line = Some(self.newlines + before as u64 + 1);
                }
            }
            self.newlines += memchr::memchr_iter(b'\n', consumed).count() as u64;
            pos += nin;
            self.out_len += nout;
            self.ends_len += nend;
            match result {
                ReadRecordResult::InputEmpty => return (pos, Step::NeedInput),
                ReadRecordResult::OutputFull => self.out.resize(self.out.len() * 2, 0),
                ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                ReadRecordResult::Record => return (pos, Step::Record),
                ReadRecordResult::End => return (pos, Step::End),
            }
        }
    }

    fn fields(&self) -> usize {
        self.ends_len
    }

    /// Field `i` of the current record.
    #[cfg(test)]
    fn field(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.out[start..self.ends[i]]
    }

    /// The current record's fields as text, or the index of the first that is not UTF-8.
    /// One validation of the whole record, then a char-boundary check per field, is much
    /// cheaper than validating each (short) field on its own.
    fn texts(&self) -> Result<impl Iterator<Item = &str>, usize> {
        let whole = std::str::from_utf8(&self.out[..self.out_len]).map_err(|e| {
            let bad = e.valid_up_to();
            self.ends[..self.ends_len]
                .iter()
                .position(|&end| end > bad)
                .unwrap_or(0)
        })?;
        let ends = &self.ends[..self.ends_len];
        if let Some(i) = (0..ends.len()).find(|&i| !whole.is_char_boundary(ends[i])) {
            return Err(i);
        }
        Ok((0..ends.len()).map(move |i| {
            let start = if i == 0 { 0 } else { ends[i - 1] };
            &whole[start..ends[i]]
        }))
    }

    fn line(&self) -> u64 {
        self.first_line.unwrap_or(self.newlines + 1)
    }

    fn next_record(&mut self) {
        self.out_len = 0;
        self.ends_len = 0;
        self.first_line = None;
    }
}

/// Turns records into typed batches for a [`Unit`].
struct Decoder<'a> {
    splitter: Splitter,
    header: bool,
    names: Vec<String>,
    types: Vec<DataType>,
    builders: Vec<StringBuilder>,
    lines: Vec<u64>,
    relative: &'a str,
    size: u64,
    consumed: u64,
    rows: u64,
    estimated: bool,
}

impl<'a> Decoder<'a> {
    fn new(schema: &Schema, relative: &'a str, size: u64) -> Self {
        Decoder {
            splitter: Splitter::new(),
            header: false,
            names: schema.fields().iter().map(|f| f.name().clone()).collect(),
            types: schema
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect(),
            builders: schema
                .fields()
                .iter()
                .map(|_| StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 8))
                .collect(),
            lines: Vec::with_capacity(BATCH_ROWS),
            relative,
            size,
            consumed: 0,
            rows: 0,
            estimated: false,
        }
    }

    fn feed(&mut self, mut input: &[u8], unit: &mut Unit<'_>) {
        while !input.is_empty() {
            let (n, step) = self.splitter.read(input);
            input = &input[n..];
            self.consumed += n as u64;
            if step == Step::Record {
                self.record(unit);
            }
        }
    }

    fn finish(&mut self, unit: &mut Unit<'_>) {
        while self.splitter.read(&[]).1 == Step::Record {
            self.record(unit);
        }
        self.flush(unit);
    }

    fn record(&mut self, unit: &mut Unit<'_>) {
        let line = self.splitter.line();
        if !self.header {
            // The header named the columns when the schema was inferred.
            self.header = true;
        } else if self.splitter.fields() != self.names.len() {
            unit.malformed(
                line,
                format!(
                    "{} line {line}: expected {} fields, found {}",
                    self.relative,
                    self.names.len(),
                    self.splitter.fields()
                ),
            );
        } else {
            match self.splitter.texts() {
                Ok(texts) => {
                    for (builder, text) in self.builders.iter_mut().zip(texts) {
                        match text {
                            // An empty field is a null, as in arrow-csv.
                            "" => builder.append_null(),
                            text => builder.append_value(text),
                        }
                    }
                    self.lines.push(line);
                }
                Err(column) => unit.malformed(
                    line,
                    format!(
                        "{} line {line}: column \"{}\" is not valid UTF-8",
                        self.relative, self.names[column]
                    ),
                ),
            }
            if self.lines.len() == BATCH_ROWS {
                self.flush(unit);
            }
        }
        self.splitter.next_record();
    }

    fn flush(&mut self, unit: &mut Unit<'_>) {
        if self.lines.is_empty() {
            return;
        }
        let options = CastOptions {
            safe: true,
            ..Default::default()
        };
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.builders.len());
        for (i, builder) in self.builders.iter_mut().enumerate() {
            let text: ArrayRef = Arc::new(builder.finish());
            if self.types[i] == DataType::Utf8 {
                columns.push(text);
                continue;
            }
            let typed = match cast_with_options(&text, &self.types[i], &options) {
                Ok(typed) => typed,
                Err(_) => arrow::array::new_null_array(&self.types[i], text.len()),
            };
            if typed.null_count() > text.null_count() {
                let strings = arrow::array::AsArray::as_string::<i32>(text.as_ref());
                for row in 0..text.len() {
                    if text.is_valid(row) && typed.is_null(row) {
                        let line = self.lines[row];
                        let wanted = types::logical(&self.types[i]).map_or("?", types::name);
                        unit.malformed(
                            line,
                            format!(
                                "{} line {line}: column \"{}\": cannot read {:?} as {wanted}",
                                self.relative,
                                self.names[i],
                                strings.value(row)
                            ),
                        );
                    }
                }
            }
            columns.push(typed);
        }
        self.rows += self.lines.len() as u64;
        if !self.estimated && self.consumed > 0 {
            // Rows so far per byte so far, scaled to the file: how much to sample.
            self.estimated = true;
            let expected = self.size as f64 * self.rows as f64 / self.consumed as f64;
            unit.expect(expected as u64);
        }
        if self.names.is_empty() {
            unit.add_rows(self.lines.len() as u64);
        } else {
            unit.add(&columns, &RowNumbers::Lines(&self.lines));
        }
        self.lines.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(data: &[u8], chunk: usize) -> Vec<(u64, Vec<String>)> {
        let mut s = Splitter::new();
        let mut out = Vec::new();
        let mut take = |s: &mut Splitter| {
            let fields = (0..s.fields())
                .map(|i| String::from_utf8(s.field(i).to_vec()).unwrap())
                .collect();
            out.push((s.line(), fields));
            s.next_record();
        };
        for piece in data.chunks(chunk) {
            let mut input = piece;
            while !input.is_empty() {
                let (n, step) = s.read(input);
                input = &input[n..];
                if step == Step::Record {
                    take(&mut s);
                }
            }
        }
        while s.read(&[]).1 == Step::Record {
            take(&mut s);
        }
        out
    }

    #[test]
    fn records_keep_the_line_they_start_on_across_chunks_and_quoted_newlines() {
        let data = b"a,b\r\n1,\"x\ny\"\n\n3,z\n4,w";
        for chunk in [1, 2, 3, 100] {
            let got = split(data, chunk);
            let lines: Vec<u64> = got.iter().map(|r| r.0).collect();
            assert_eq!(lines, vec![1, 2, 5, 6], "chunk {chunk}");
            assert_eq!(got[1].1, vec!["1", "x\ny"]);
            assert_eq!(got[3].1, vec!["4", "w"]);
        }
    }

    #[test]
    fn the_schema_comes_from_well_formed_records_only() {
        let schema = infer(b"n,s,f\n1,a,1.5\n2,b\n3,c,2\n", true).unwrap();
        let types: Vec<_> = schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(
            types,
            vec![DataType::Int64, DataType::Utf8, DataType::Float64]
        );
    }

    #[test]
    fn a_partial_last_record_of_the_head_is_left_out() {
        let schema = infer(b"n\n1\n2\n3.", false).unwrap();
        assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    }

    #[test]
    fn columns_empty_in_the_head_are_text() {
        let schema = infer(b"a,b\n1,\n", true).unwrap();
        assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
    }
}
