//! `model.json`, format `ciclo.dev/model/v1`: everything needed to predict, without linfa
//! (see MODEL_FORMAT.md). A reader checks the whole file before predicting, so a damaged or
//! hand-edited file is an error, never a panic or a wrong answer.

use crate::algorithm::Algorithm;
use crate::class::Class;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The format this crate writes and reads.
pub const FORMAT: &str = "ciclo.dev/model/v1";

/// A trained model.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Model {
    /// Always [`FORMAT`]; a change that old readers would misread gets a new one.
    pub format: String,
    pub algorithm: Algorithm,
    /// The column the model predicts.
    pub target: String,
    /// The input columns, in the order a row's values are given.
    pub features: Vec<String>,
    /// A classifier's classes in ascending order (see [`Class`]); empty for a regression.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<Class>,
    /// A linear model (linear and logistic regression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear: Option<Linear>,
    /// A decision tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<Tree>,
    /// The hyperparameters it was fitted with, defaults included.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// The dataset version it was fitted on.
    #[serde(default)]
    pub dataset_version: String,
}

/// `z_k = intercepts[k] + Σ_j coefficients[k][j] · x[j]` on the raw feature values, then
/// the link.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Linear {
    pub link: Link,
    /// One row per output: one for `identity` and `logistic`, one per class for `softmax`.
    pub coefficients: Vec<Vec<f64>>,
    pub intercepts: Vec<f64>,
}

/// How a linear model's outputs become a prediction.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Link {
    /// A regression: the prediction is `z_0`.
    Identity,
    /// Two classes: `P(classes[1]) = 1 / (1 + e^-z_0)`; `classes[1]` is predicted when that
    /// is at least 0.5.
    Logistic,
    /// Three or more classes: `P(classes[k]) = softmax(z)_k`; the first most probable class is
    /// predicted.
    Softmax,
}

/// A binary tree as a list of nodes; the root is node 0 and every child comes after its
/// parent, so a walk always ends.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

/// One node of a tree.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Node {
    /// Go to `left` when `x[feature] < threshold`, else to `right`.
    Split {
        feature: usize,
        threshold: f64,
        left: usize,
        right: usize,
    },
    /// Predict `classes[class]`; `probabilities[k]` is the share of the leaf's training rows
    /// of `classes[k]`.
    Leaf {
        class: usize,
        probabilities: Vec<f64>,
    },
}

impl Model {
    /// Reads and checks a `model.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Model, String> {
        let model: Model =
            serde_json::from_slice(bytes).map_err(|e| format!("not a {FORMAT} model: {e}"))?;
        model.check()?;
        Ok(model)
    }

    /// The model as `model.json` bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a model serializes");
        bytes.push(b'\n');
        bytes
    }

    /// Checks that every part fits every other: what `predict` relies on.
    pub fn check(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!("format {:?} is not {FORMAT:?}", self.format));
        }
        let width = self.features.len();
        let n_classes = self.classes.len();
        if self.classes.windows(2).any(|w| w[0] >= w[1]) {
            return Err("classes are not in strictly ascending order".into());
        }
        match (&self.linear, &self.tree) {
            (Some(linear), None) => {
                let (rows, classes_ok) = match linear.link {
                    Link::Identity => (1, n_classes == 0),
                    Link::Logistic => (1, n_classes == 2),
                    Link::Softmax => (n_classes, n_classes >= 2),
                };
                if !classes_ok {
                    return Err(format!(
                        "a {:?} link does not go with {n_classes} classes",
                        linear.link
                    ));
                }
                if linear.coefficients.len() != rows || linear.intercepts.len() != rows {
                    return Err(format!(
                        "a {:?} link needs {rows} rows of coefficients and intercepts",
                        linear.link
                    ));
                }
                if linear.coefficients.iter().any(|row| row.len() != width) {
                    return Err(format!("every row of coefficients needs {width} values"));
                }
                let values = linear
                    .coefficients
                    .iter()
                    .flatten()
                    .chain(&linear.intercepts);
                if values.into_iter().any(|v| !v.is_finite()) {
                    return Err("a coefficient or intercept is not a finite number".into());
                }
            }
            (None, Some(tree)) => check_tree(tree, width, n_classes)?,
            _ => return Err("a model has either `linear` or `tree`, exactly one".into()),
        }
        Ok(())
    }
}

fn check_tree(tree: &Tree, width: usize, n_classes: usize) -> Result<(), String> {
    if tree.nodes.is_empty() {
        return Err("a tree needs at least one node".into());
    }
    if n_classes == 0 {
        return Err("a tree classifies: it needs classes".into());
    }
    for (i, node) in tree.nodes.iter().enumerate() {
        match node {
            Node::Split {
                feature,
                threshold,
                left,
                right,
            } => {
                if *feature >= width || threshold.is_nan() {
                    return Err(format!("node {i} splits on no feature it has"));
                }
                // Children after their parent: no cycle, and every walk ends.
                if [left, right]
                    .iter()
                    .any(|c| **c <= i || **c >= tree.nodes.len())
                {
                    return Err(format!("node {i}'s children are not nodes after it"));
                }
            }
            Node::Leaf {
                class,
                probabilities,
            } => {
                if *class >= n_classes || probabilities.len() != n_classes {
                    return Err(format!("leaf {i} does not fit the {n_classes} classes"));
                }
                if probabilities.iter().any(|p| !(0.0..=1.0).contains(p)) {
                    return Err(format!("leaf {i} has a probability outside 0 to 1"));
                }
            }
        }
    }
    Ok(())
}
