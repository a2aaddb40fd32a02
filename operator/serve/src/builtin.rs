//! The built-in trainer's models (`model.json`, `ciclo.dev/model/v1`): requests become rows
//! of the model's features, predictions become the `predict` (and, for a classifier,
//! `predict_proba`) outputs.
//!
//! A v2 request gives either one tensor per feature (named as the column, shape `[batch]` or
//! `[batch, 1]`), or one tensor named [`MATRIX_INPUT`] of shape `[batch, features]` with the
//! features in the model's order. A v1 instance is an array of the features' values in order,
//! or an object `{feature: value}`. Booleans are 0 and 1, as in training.

use crate::errors::ApiError;
use crate::input_stats::InputStats;
use crate::tensor::{Data, Output, Spec, Tensor, Values};
use ciclo_model::{Checked, Class, Prediction};
use serde_json::Value;
use std::borrow::Cow;

/// The name of the single `[batch, features]` input a v2 request may give instead of one
/// input per feature (unless a feature has this name).
pub(crate) const MATRIX_INPUT: &str = "input";
/// The output of predicted classes or values.
pub(crate) const PREDICT: &str = "predict";
/// A classifier's output of class probabilities, `[batch, classes]` in the order of the
/// model's classes.
pub(crate) const PREDICT_PROBA: &str = "predict_proba";

pub(crate) struct Builtin {
    /// Checked once, when loaded.
    checked: Checked,
}

/// How a classifier's labels are written in a tensor.
enum Labels {
    Bool,
    Int,
    Float,
    Bytes,
}

impl Builtin {
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        Ok(Self {
            checked: Checked::new(ciclo_model::Model::from_json(bytes)?)?,
        })
    }

    fn model(&self) -> &ciclo_model::Model {
        self.checked.model()
    }

    pub fn features(&self) -> &[String] {
        &self.model().features
    }

    fn labels(&self) -> Labels {
        let classes = &self.model().classes;
        if classes.iter().all(|c| matches!(c, Class::Bool(_))) {
            Labels::Bool
        } else if classes.iter().all(|c| matches!(c, Class::Int(_))) {
            Labels::Int
        } else if classes
            .iter()
            .all(|c| matches!(c, Class::Int(_) | Class::Float(_)))
        {
            Labels::Float
        } else {
            Labels::Bytes
        }
    }

    fn is_classifier(&self) -> bool {
        !self.model().classes.is_empty()
    }

    pub fn inputs(&self) -> Vec<Spec> {
        self.features()
            .iter()
            .map(|f| Spec {
                name: f.clone(),
                datatype: "FP64",
                shape: vec![-1],
            })
            .collect()
    }

    pub fn outputs(&self) -> Vec<Spec> {
        if !self.is_classifier() {
            return vec![Spec {
                name: PREDICT.into(),
                datatype: "FP64",
                shape: vec![-1],
            }];
        }
        let datatype = match self.labels() {
            Labels::Bool => "BOOL",
            Labels::Int => "INT64",
            Labels::Float => "FP64",
            Labels::Bytes => "BYTES",
        };
        vec![
            Spec {
                name: PREDICT.into(),
                datatype,
                shape: vec![-1],
            },
            Spec {
                name: PREDICT_PROBA.into(),
                datatype: "FP64",
                shape: vec![-1, self.model().classes.len() as i64],
            },
        ]
    }

    /// What metadata says of the model beyond its tensors.
    pub fn parameters(&self) -> serde_json::Map<String, Value> {
        let m = self.model();
        let mut p = serde_json::Map::new();
        p.insert(
            "algorithm".into(),
            serde_json::to_value(m.algorithm).unwrap_or_default(),
        );
        p.insert("target".into(), m.target.clone().into());
        if self.is_classifier() {
            p.insert(
                "classes".into(),
                serde_json::to_value(&m.classes).unwrap_or_default(),
            );
        }
        p.insert("dataset_version".into(), m.dataset_version.clone().into());
        p
    }

    fn inputs_hint(&self) -> String {
        format!(
            "the model's inputs are {} (one per feature, shape [batch]), or {MATRIX_INPUT:?} with shape [batch, {}]",
            quoted(self.features()),
            self.features().len()
        )
    }

    /// The rows of a v2 request's tensors: borrowed from a `[batch, features]` tensor of
    /// floats (nearly every request), copied from others.
    pub fn rows_v2<'t>(&self, tensors: &'t [Tensor]) -> Result<Vec<Cow<'t, [f64]>>, ApiError> {
        let features = self.features();
        let width = features.len();
        for (i, t) in tensors.iter().enumerate() {
            if tensors[..i].iter().any(|u| u.name == t.name) {
                return Err(ApiError::bad_request(format!(
                    "input {:?} is given twice",
                    t.name
                )));
            }
        }
        if let [t] = tensors
            && t.name == MATRIX_INPUT
            && !features.iter().any(|f| f == MATRIX_INPUT)
        {
            let [_, w] = t.shape[..] else {
                return Err(ApiError::bad_request(format!(
                    "input {MATRIX_INPUT:?} has shape {:?}; it takes [batch, {width}], the features {} in this order",
                    t.shape,
                    quoted(features)
                )));
            };
            if w != width {
                return Err(ApiError::bad_request(format!(
                    "input {MATRIX_INPUT:?} has {w} values per row; the model has {width} features: {}",
                    quoted(features)
                )));
            }
            return Ok(match &t.values {
                Values::Float(values) => values.chunks(width.max(1)).map(Cow::Borrowed).collect(),
                other => other
                    .to_f64(&t.name)?
                    .chunks(width.max(1))
                    .map(|row| Cow::Owned(row.to_vec()))
                    .collect(),
            });
        }
        if let Some(t) = tensors.iter().find(|t| !features.contains(&t.name)) {
            return Err(ApiError::bad_request(format!(
                "unknown input {:?}; {}",
                t.name,
                self.inputs_hint()
            )));
        }
        let mut columns = Vec::with_capacity(width);
        for feature in features {
            let t = tensors.iter().find(|t| &t.name == feature).ok_or_else(|| {
                ApiError::bad_request(format!("missing input {feature:?}; {}", self.inputs_hint()))
            })?;
            if !matches!(t.shape[..], [_] | [_, 1]) {
                return Err(ApiError::bad_request(format!(
                    "input {feature:?} has shape {:?}; a feature takes [batch] or [batch, 1]",
                    t.shape
                )));
            }
            columns.push((feature, t.values.to_f64(feature)?));
        }
        let batch = columns.first().map_or(0, |(_, c)| c.len());
        if let Some((f, c)) = columns.iter().find(|(_, c)| c.len() != batch) {
            return Err(ApiError::bad_request(format!(
                "input {f:?} has a batch of {}, input {:?} of {batch}: every input needs the same",
                c.len(),
                columns[0].0
            )));
        }
        Ok((0..batch)
            .map(|i| Cow::Owned(columns.iter().map(|(_, c)| c[i]).collect()))
            .collect())
    }

    /// The rows of v1 `instances`.
    pub fn rows_v1(&self, instances: &[Value]) -> Result<Vec<Vec<f64>>, ApiError> {
        let features = self.features();
        let width = features.len();
        let number = |i: usize, f: &str, v: &Value| {
            match v {
                Value::Number(n) => n.as_f64().ok_or(()),
                Value::Bool(b) => Ok(f64::from(u8::from(*b))),
                _ => Err(()),
            }
            .map_err(|()| {
                ApiError::bad_request(format!("instance {i}, feature {f:?}: {v} is not a number"))
            })
        };
        instances
            .iter()
            .enumerate()
            .map(|(i, instance)| match instance {
                Value::Array(values) if values.len() == width => features
                    .iter()
                    .zip(values)
                    .map(|(f, v)| number(i, f, v))
                    .collect(),
                Value::Array(values) => Err(ApiError::bad_request(format!(
                    "instance {i} has {} values; the model takes {width}, the features {} in this order",
                    values.len(),
                    quoted(features)
                ))),
                Value::Object(map) => {
                    if let Some(k) = map.keys().find(|k| !features.contains(k)) {
                        return Err(ApiError::bad_request(format!(
                            "instance {i}: unknown feature {k:?}; the features are {}",
                            quoted(features)
                        )));
                    }
                    features
                        .iter()
                        .map(|f| match map.get(f) {
                            Some(v) => number(i, f, v),
                            None => Err(ApiError::bad_request(format!(
                                "instance {i}: missing feature {f:?}"
                            ))),
                        })
                        .collect()
                }
                scalar if width == 1 => Ok(vec![number(i, &features[0], scalar)?]),
                _ => Err(ApiError::bad_request(format!(
                    "instance {i} is neither an array of the features' values nor an object {{feature: value}}"
                ))),
            })
            .collect()
    }

    /// Records the rows in the input statistics and predicts them.
    pub fn predict<R: AsRef<[f64]>>(
        &self,
        rows: &[R],
        stats: &InputStats,
    ) -> Result<Vec<Prediction>, ApiError> {
        stats.record(|r| {
            for j in 0..self.features().len() {
                r.add(j, rows.iter().map(|row| row.as_ref()[j]));
            }
        });
        // Rows were checked against the model; an error here is the server's own.
        self.checked.predict(rows).map_err(ApiError::internal)
    }

    /// The v2 outputs of `predictions`.
    pub fn outputs_of(&self, predictions: &[Prediction]) -> Vec<Output> {
        let n = predictions.len();
        if !self.is_classifier() {
            let values = predictions
                .iter()
                .map(|p| match p {
                    Prediction::Value(v) => *v,
                    Prediction::Class { .. } => f64::NAN,
                })
                .collect();
            return vec![Output {
                name: PREDICT.into(),
                datatype: "FP64",
                shape: vec![n],
                data: Data::F64(values),
                parameters: Default::default(),
            }];
        }
        let mut classes = Vec::with_capacity(n);
        let mut probabilities = Vec::with_capacity(n * self.model().classes.len());
        for p in predictions {
            if let Prediction::Class {
                class,
                probabilities: ps,
            } = p
            {
                classes.push(class);
                probabilities.extend(ps);
            }
        }
        let (datatype, data) = match self.labels() {
            Labels::Bool => (
                "BOOL",
                Data::Bool(
                    classes
                        .iter()
                        .map(|c| matches!(c, Class::Bool(true)))
                        .collect(),
                ),
            ),
            Labels::Int => (
                "INT64",
                Data::I64(
                    classes
                        .iter()
                        .map(|c| if let Class::Int(i) = c { *i } else { 0 })
                        .collect(),
                ),
            ),
            Labels::Float => (
                "FP64",
                Data::F64(
                    classes
                        .iter()
                        .map(|c| match c {
                            Class::Int(i) => *i as f64,
                            Class::Float(f) => *f,
                            _ => f64::NAN,
                        })
                        .collect(),
                ),
            ),
            Labels::Bytes => (
                "BYTES",
                Data::Bytes(classes.iter().map(|c| label_text(c)).collect()),
            ),
        };
        vec![
            Output {
                name: PREDICT.into(),
                datatype,
                shape: vec![n],
                data,
                parameters: Default::default(),
            },
            Output {
                name: PREDICT_PROBA.into(),
                datatype: "FP64",
                shape: vec![n, self.model().classes.len()],
                data: Data::F64(probabilities),
                parameters: Default::default(),
            },
        ]
    }

    /// KServe v1's `predictions` (labels as the model has them, or values) and, for a
    /// classifier, each row's class probabilities.
    pub fn v1_of(&self, predictions: &[Prediction]) -> (Vec<Value>, Option<Vec<Vec<f64>>>) {
        let values = predictions
            .iter()
            .map(|p| match p {
                Prediction::Value(v) => Value::from(*v),
                Prediction::Class { class, .. } => {
                    serde_json::to_value(class).unwrap_or(Value::Null)
                }
            })
            .collect();
        let probabilities = self.is_classifier().then(|| {
            predictions
                .iter()
                .map(|p| match p {
                    Prediction::Class { probabilities, .. } => probabilities.clone(),
                    Prediction::Value(_) => Vec::new(),
                })
                .collect()
        });
        (values, probabilities)
    }
}

/// A label as the text of a BYTES tensor: a string as it is, anything else as JSON.
fn label_text(c: &Class) -> String {
    match c {
        Class::Str(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}
