//! The trainer's settings (a TrainingRun's `spec.trainer`) and hyperparameters (its `params`),
//! parsed and checked before any data is read, so a typo fails in a second, not after a
//! download.

use ciclo_model::Algorithm;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The parameters `algorithm` reads; `seed` (of the split) belongs to every one.
fn uses(algorithm: Algorithm) -> &'static [&'static str] {
    match algorithm {
        Algorithm::LogisticRegression => &[MAX_ITERATIONS, ALPHA, SEED],
        Algorithm::LinearRegression => &[SEED],
        Algorithm::DecisionTree => &[MAX_DEPTH, MIN_WEIGHT_SPLIT, SEED],
    }
}

/// The trainer settings, as the operator passes them in `CICLO_TRAINER`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrainerSpec {
    pub algorithm: Algorithm,
    /// The column to predict.
    pub target: String,
    /// Feature columns; empty: every numeric column but the target.
    #[serde(default)]
    pub features: Vec<String>,
    /// Share of rows held out for the metrics.
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
}

fn default_test_fraction() -> f64 {
    0.2
}

impl TrainerSpec {
    /// Parses and checks `json`; the error names what is wrong.
    pub fn parse(json: &str) -> Result<Self, String> {
        let spec: TrainerSpec =
            serde_json::from_str(json).map_err(|e| format!("the trainer settings: {e}"))?;
        if spec.target.is_empty() {
            return Err("the trainer settings: target is empty".into());
        }
        if !(spec.test_fraction > 0.0 && spec.test_fraction < 1.0) {
            return Err(format!(
                "the trainer settings: testFraction {} is not between 0 and 1",
                spec.test_fraction
            ));
        }
        if let Some(f) = spec.features.iter().find(|f| **f == spec.target) {
            return Err(format!(
                "the trainer settings: the target {f:?} is also listed as a feature"
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(f) = spec.features.iter().find(|f| !seen.insert(f.as_str())) {
            return Err(format!(
                "the trainer settings: feature {f:?} is listed twice"
            ));
        }
        Ok(spec)
    }
}

const MAX_ITERATIONS: &str = "max_iterations";
const ALPHA: &str = "alpha";
const MAX_DEPTH: &str = "max_depth";
const MIN_WEIGHT_SPLIT: &str = "min_weight_split";
const SEED: &str = "seed";

/// The hyperparameters, defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Most L-BFGS iterations of a logistic regression (linfa's default, 100).
    pub max_iterations: u64,
    /// L2 penalty of a logistic regression on the standardized coefficients (linfa's default, 1).
    pub alpha: f64,
    /// Deepest level of a tree; none: grow until the leaves are pure.
    pub max_depth: Option<usize>,
    /// Least weight (rows) a tree node needs to be split (linfa's default, 2).
    pub min_weight_split: f32,
    /// Seed of the train/validation split.
    pub seed: u64,
    /// Parameters given that this algorithm does not read, sorted.
    pub ignored: Vec<String>,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            max_iterations: 100,
            alpha: 1.0,
            max_depth: None,
            min_weight_split: 2.0,
            seed: 42,
            ignored: Vec::new(),
        }
    }
}

impl Params {
    /// Parses `json`, an object whose values are strings (as a TrainingRun's `params` are) or
    /// plain JSON numbers, reading only the parameters `algorithm` uses: the others are listed
    /// in `ignored`, never rejected, so one params map can serve several algorithms.
    pub fn parse(json: &str, algorithm: Algorithm) -> Result<Self, String> {
        let given: BTreeMap<String, serde_json::Value> = serde_json::from_str(json)
            .map_err(|e| format!("the params are not a JSON object: {e}"))?;
        let mut params = Params::default();
        for (name, value) in &given {
            if !uses(algorithm).contains(&name.as_str()) {
                params.ignored.push(name.clone());
                continue;
            }
            let text = match value {
                serde_json::Value::String(s) => s.trim().to_string(),
                serde_json::Value::Number(n) => n.to_string(),
                other => return Err(format!("param {name}: {other} is not a string or a number")),
            };
            let bad = |what: &str| format!("param {name}: {text:?} is not {what}");
            match name.as_str() {
                MAX_ITERATIONS => {
                    params.max_iterations = text
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| bad("a positive integer"))?
                }
                ALPHA => {
                    params.alpha = text
                        .parse()
                        .ok()
                        .filter(|a: &f64| a.is_finite() && *a >= 0.0)
                        .ok_or_else(|| bad("a number of at least 0"))?
                }
                MAX_DEPTH => {
                    params.max_depth = Some(
                        text.parse()
                            .ok()
                            .filter(|d| *d > 0)
                            .ok_or_else(|| bad("a positive integer"))?,
                    )
                }
                MIN_WEIGHT_SPLIT => {
                    params.min_weight_split = text
                        .parse()
                        .ok()
                        .filter(|w: &f32| w.is_finite() && *w >= 0.0)
                        .ok_or_else(|| bad("a number of at least 0"))?
                }
                SEED => {
                    params.seed = text
                        .parse()
                        .map_err(|_| bad("an integer from 0 to 18446744073709551615"))?
                }
                _ => unreachable!("uses lists only the names matched here"),
            }
        }
        Ok(params)
    }

    /// The parameters in effect for `algorithm`, defaults included, as strings: recorded in
    /// the model and the metrics so a run can be repeated exactly.
    pub fn effective(&self, algorithm: Algorithm) -> BTreeMap<String, String> {
        uses(algorithm)
            .iter()
            .filter_map(|name| {
                let value = match *name {
                    MAX_ITERATIONS => self.max_iterations.to_string(),
                    ALPHA => self.alpha.to_string(),
                    MAX_DEPTH => self.max_depth?.to_string(),
                    MIN_WEIGHT_SPLIT => self.min_weight_split.to_string(),
                    SEED => self.seed.to_string(),
                    _ => return None,
                };
                Some((name.to_string(), value))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trainer_settings_read_with_defaults() {
        let s = TrainerSpec::parse(r#"{"algorithm": "DecisionTree", "target": "y"}"#).unwrap();
        assert_eq!(s.algorithm, Algorithm::DecisionTree);
        assert!(s.features.is_empty());
        assert_eq!(s.test_fraction, 0.2);
    }

    #[test]
    fn bad_trainer_settings_say_what_is_wrong() {
        for (json, says) in [
            (r#"{"algorithm": "Svm", "target": "y"}"#, "unknown variant"),
            (r#"{"algorithm": "DecisionTree"}"#, "missing field `target`"),
            (
                r#"{"algorithm": "DecisionTree", "target": "y", "testFraction": 1.5}"#,
                "testFraction 1.5",
            ),
            (
                r#"{"algorithm": "DecisionTree", "target": "y", "features": ["y"]}"#,
                "also listed as a feature",
            ),
            (
                r#"{"algorithm": "DecisionTree", "target": "y", "feature": ["x"]}"#,
                "unknown field `feature`",
            ),
            ("not json", "the trainer settings"),
        ] {
            let err = TrainerSpec::parse(json).unwrap_err();
            assert!(err.contains(says), "{json}: {err}");
        }
    }

    #[test]
    fn params_take_strings_or_numbers_and_list_what_the_algorithm_ignores() {
        let p = Params::parse(
            r#"{"max_iterations": "50", "alpha": 0.5, "max_depth": "3", "seed": "7", "lr": "1"}"#,
            Algorithm::LogisticRegression,
        )
        .unwrap();
        assert_eq!((p.max_iterations, p.alpha, p.seed), (50, 0.5, 7));
        assert_eq!(p.max_depth, None, "a tree's parameter is not read");
        assert_eq!(p.ignored, vec!["lr", "max_depth"]);
        assert_eq!(
            p.effective(Algorithm::LogisticRegression),
            BTreeMap::from([
                ("alpha".into(), "0.5".into()),
                ("max_iterations".into(), "50".into()),
                ("seed".into(), "7".into()),
            ])
        );
    }

    #[test]
    fn bad_params_name_themselves() {
        for (json, says) in [
            (r#"{"max_depth": "0"}"#, "param max_depth: \"0\""),
            (r#"{"min_weight_split": "-1"}"#, "param min_weight_split"),
            (r#"{"seed": "x"}"#, "param seed"),
            (r#"{"seed": true}"#, "param seed: true"),
            ("[]", "not a JSON object"),
        ] {
            let err = Params::parse(json, Algorithm::DecisionTree).unwrap_err();
            assert!(err.contains(says), "{json}: {err}");
        }
    }

    #[test]
    fn defaults_are_linfas() {
        let p = Params::parse("{}", Algorithm::DecisionTree).unwrap();
        assert_eq!(p, Params::default());
        assert_eq!(
            p.effective(Algorithm::DecisionTree)
                .keys()
                .collect::<Vec<_>>(),
            vec!["min_weight_split", "seed"]
        );
    }
}
