//! The example's data (examples/data/wdbc): the batches that land in the bucket, and rows
//! to ask the served model about.

use serde_json::{Value, json};
use std::path::PathBuf;

/// The folder of the example's batches.
pub fn dir() -> PathBuf {
    ciclo_e2e::repo_root().join("examples/data/wdbc")
}

/// The contents of `file` (e.g. `batch-1.csv`).
pub fn batch(file: &str) -> String {
    let path = dir().join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Labelled rows of a batch: the diagnosis and the 30 measurements by column name.
#[derive(Clone)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<(String, Vec<f64>)>,
}

impl Rows {
    pub fn parse(csv: &str) -> Self {
        let mut lines = csv.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap_or_default()
            .split(',')
            .map(String::from)
            .collect();
        let rows = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let mut cells = l.split(',');
                let label = cells.next().unwrap_or_default().to_string();
                let values = cells.map(|c| c.parse().unwrap_or(f64::NAN)).collect();
                (label, values)
            })
            .collect();
        Self {
            columns: header.into_iter().skip(1).collect(),
            rows,
        }
    }

    /// The rows as another instrument reads them: every column whose name holds `part`
    /// multiplied by `factor`.
    pub fn scaled(&self, part: &str, factor: f64) -> Self {
        let scaled: Vec<bool> = self.columns.iter().map(|c| c.contains(part)).collect();
        let rows = self
            .rows
            .iter()
            .map(|(label, values)| {
                let values = values
                    .iter()
                    .zip(&scaled)
                    .map(|(v, s)| if *s { v * factor } else { *v })
                    .collect();
                (label.clone(), values)
            })
            .collect();
        Self {
            columns: self.columns.clone(),
            rows,
        }
    }

    /// An Open Inference Protocol v2 request for rows `range`: one tensor per feature.
    pub fn infer_body(&self, range: std::ops::Range<usize>) -> Value {
        let rows = &self.rows[range];
        let inputs: Vec<Value> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let data: Vec<f64> = rows.iter().map(|(_, v)| v[i]).collect();
                json!({"name": name, "shape": [rows.len()], "datatype": "FP64", "data": data})
            })
            .collect();
        json!({ "inputs": inputs })
    }
}

/// The `predict` output of a v2 inference answer, as strings.
pub fn predictions(answer: &Value) -> Vec<String> {
    answer["outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["name"] == "predict")
        .and_then(|o| o["data"].as_array())
        .into_iter()
        .flatten()
        .map(|v| {
            v.as_str()
                .map(String::from)
                .unwrap_or_else(|| v.to_string())
        })
        .collect()
}
