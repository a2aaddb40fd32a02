//! The model being served, whichever its format: what it takes and gives (for metadata),
//! and inference for each protocol, with its inputs recorded in the statistics.

use crate::args::Format;
use crate::builtin::Builtin;
use crate::errors::ApiError;
use crate::input_stats::InputStats;
use crate::onnx::Onnx;
use crate::tensor::{Output, Spec, Tensor};
use serde_json::Value;

pub(crate) enum Runtime {
    Builtin(Builtin),
    Onnx(Onnx),
}

impl Runtime {
    /// A built-in model's feature names.
    pub fn feature_names(&self) -> Option<&[String]> {
        match self {
            Runtime::Builtin(m) => Some(m.features()),
            Runtime::Onnx(_) => None,
        }
    }

    /// Reads a model file of `format` (an ONNX one with ONNX Runtime from `onnxruntime`); an
    /// error says why it cannot be served.
    pub fn load(
        format: Format,
        bytes: &[u8],
        onnxruntime: Option<&std::path::Path>,
    ) -> Result<Runtime, String> {
        match format {
            Format::Builtin => Builtin::from_json(bytes).map(Runtime::Builtin),
            Format::Onnx => Onnx::from_bytes(bytes, onnxruntime).map(Runtime::Onnx),
        }
    }

    /// The names of the inputs statistics are kept for: a built-in model's features, an
    /// ONNX model's input tensors.
    pub fn input_names(&self) -> Vec<String> {
        match self {
            Runtime::Builtin(m) => m.features().to_vec(),
            Runtime::Onnx(m) => m.input_names(),
        }
    }

    pub fn inputs(&self) -> Vec<Spec> {
        match self {
            Runtime::Builtin(m) => m.inputs(),
            Runtime::Onnx(m) => m.inputs(),
        }
    }

    pub fn outputs(&self) -> Vec<Spec> {
        match self {
            Runtime::Builtin(m) => m.outputs(),
            Runtime::Onnx(m) => m.outputs(),
        }
    }

    pub fn parameters(&self) -> serde_json::Map<String, Value> {
        match self {
            Runtime::Builtin(m) => m.parameters(),
            Runtime::Onnx(_) => serde_json::Map::new(),
        }
    }
}

/// A model loaded and verified: ready to serve.
pub(crate) struct Loaded {
    pub runtime: Runtime,
    pub format: Format,
    /// `blake3:<hex>` of the file served.
    pub digest: String,
    pub stats: std::sync::Arc<InputStats>,
    /// A built-in model's feature names (the columns of the data it was trained on), shared
    /// with what a request's capture holds.
    pub features: Option<std::sync::Arc<[String]>>,
}

/// KServe v1's answer.
#[derive(serde::Serialize)]
pub(crate) struct V1Predictions {
    pub predictions: Vec<Value>,
    /// A built-in classifier's class probabilities, per instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<Vec<Vec<f64>>>,
}

impl Loaded {
    /// Runs a v2 request's tensors; returns the outputs and the number of rows predicted.
    pub fn infer(&self, tensors: &[Tensor]) -> Result<(Vec<Output>, usize), ApiError> {
        match &self.runtime {
            Runtime::Builtin(m) => {
                let rows = m.rows_v2(tensors)?;
                let predictions = m.predict(&rows, &self.stats)?;
                Ok((m.outputs_of(&predictions), rows.len()))
            }
            Runtime::Onnx(m) => {
                let outputs = m.infer(tensors, &self.stats)?;
                let rows = tensors
                    .first()
                    .map_or(0, |t| t.shape.first().copied().unwrap_or(1));
                Ok((outputs, rows))
            }
        }
    }

    /// Predicts v1 `instances` (at least one).
    pub fn predict_v1(&self, instances: &[Value]) -> Result<V1Predictions, ApiError> {
        match &self.runtime {
            Runtime::Builtin(m) => {
                let rows = m.rows_v1(instances)?;
                let predictions = m.predict(&rows, &self.stats)?;
                let (predictions, probabilities) = m.v1_of(&predictions);
                Ok(V1Predictions {
                    predictions,
                    probabilities,
                })
            }
            Runtime::Onnx(m) => Ok(V1Predictions {
                predictions: m.predict_v1(instances, &self.stats)?,
                probabilities: None,
            }),
        }
    }
}
