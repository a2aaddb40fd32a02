//! File formats a dataset version can be made of.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The format of a dataset's files: a Dataset's `spec.format`, or guessed from the extension.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// One JSON object per line (also called NDJSON).
    Jsonl,
}

impl Format {
    /// The format a file's extension names (`.csv`, `.parquet`, `.jsonl`, `.ndjson`; any case),
    /// or `None` when it names none of them.
    pub fn from_path(path: &str) -> Option<Format> {
        let name = path.rsplit('/').next().unwrap_or(path);
        let (_, extension) = name.rsplit_once('.')?;
        match extension.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "parquet" => Some(Format::Parquet),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Csv => "csv",
            Format::Parquet => "parquet",
            Format::Jsonl => "jsonl",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_name_their_format_in_any_case() {
        assert_eq!(Format::from_path("a/b.csv"), Some(Format::Csv));
        assert_eq!(Format::from_path("B.CSV"), Some(Format::Csv));
        assert_eq!(Format::from_path("x/part-0.parquet"), Some(Format::Parquet));
        assert_eq!(Format::from_path("x.jsonl"), Some(Format::Jsonl));
        assert_eq!(Format::from_path("x.ndjson"), Some(Format::Jsonl));
    }

    #[test]
    fn other_names_have_no_format() {
        assert_eq!(Format::from_path("x.txt"), None);
        assert_eq!(Format::from_path("csv"), None);
        assert_eq!(Format::from_path("dir.csv/file"), None);
        assert_eq!(Format::from_path("x.csv.gz"), None);
    }

    #[test]
    fn serde_names_are_lowercase() {
        assert_eq!(serde_json::to_string(&Format::Jsonl).unwrap(), "\"jsonl\"");
        let f: Format = serde_json::from_str("\"parquet\"").unwrap();
        assert_eq!(f, Format::Parquet);
    }
}
