//! What a dataset must look like: the checks `ciclo dataset snapshot` runs on every new
//! version, declared in a Dataset's `spec.schema`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Expectations every accepted version of a dataset meets.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Expectations {
    /// Columns that must be present, with their checks. Columns not listed are allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnExpectation>,
    /// The fewest rows a version may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_rows: Option<u64>,
}

/// Checks on one column.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ColumnExpectation {
    /// Column name, as in the file header (csv), schema (parquet) or keys (jsonl).
    #[schemars(length(min = 1))]
    pub name: String,
    /// The logical type the column must have.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ColumnType>,
    /// Whether nulls (empty csv cells, JSON nulls) are allowed. Defaults to true.
    #[serde(default = "yes")]
    pub nullable: bool,
    /// Smallest allowed value (numeric columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest allowed value (numeric columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The only values allowed (categorical columns), compared as text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_values: Vec<String>,
}

fn yes() -> bool {
    true
}

/// Logical column types, independent of the file format.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Integer,
    Float,
    String,
    Boolean,
    Timestamp,
}

/// How far a new version's distribution may move from the previous accepted version's.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftLimit {
    /// The per-column distance measure.
    #[serde(default)]
    pub measure: DriftMeasure,
    /// The largest distance any checked column may have; a larger one rejects the version.
    #[schemars(range(min = 0.0))]
    pub max_distance: f64,
    /// Columns to check; empty means every numeric and categorical column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
}

/// Distance between two distributions of a column.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DriftMeasure {
    /// Population Stability Index over the previous version's histogram bins.
    #[default]
    #[serde(rename = "PSI")]
    Psi,
    /// Jensen-Shannon distance (base 2, between 0 and 1).
    JensenShannon,
    /// L-infinity distance: the largest difference in share of any one bin or value
    /// (between 0 and 1). Reads directly for categorical values: "no value's share moved by
    /// more than 5 points".
    LInfinity,
}
