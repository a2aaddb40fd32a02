//! ONNX models, run by ONNX Runtime: the reference implementation of every operator the
//! exporters write (scikit-learn's `ai.onnx.ml` set among them), loaded at run time from its
//! shared library (see [`runtime`]). The model's inputs and outputs are the protocol's
//! tensors, by name; a dimension the file leaves free (the batch) takes any size. A
//! probability map output (`ZipMap`: one map of class → probability per row) is answered as
//! an FP32 tensor `[batch, classes]`, the classes in ascending order and listed in the
//! output's `parameters.classes`. A model with an operator or a type that cannot be served
//! fails when it loads, naming it.

use crate::errors::ApiError;
use crate::input_stats::InputStats;
use crate::leaves::Leaves;
use crate::runtime;
use crate::tensor::{Data, Datatype, Output, Spec, Tensor, Values, nest};
use ort::session::Session;
use ort::value::{
    DynMapValueType, DynSequenceValueType, DynValue, Tensor as OrtTensor, TensorElementType,
    ValueType,
};
use serde_json::Value;
use std::path::Path;
use std::sync::Mutex;

/// A tensor input or output: its name, element type and dimensions (`None`: any size).
struct Port {
    name: String,
    element: TensorElementType,
    datatype: Datatype,
    shape: Vec<Option<usize>>,
}

/// What an output gives.
enum Produces {
    Tensor(Port),
    /// A sequence of maps of class (an integer or a string) to probability, one per row.
    Probabilities {
        name: String,
        string_classes: bool,
    },
}

impl Port {
    fn new(name: &str, value: &ValueType) -> Result<Port, String> {
        let ValueType::Tensor { ty, shape, .. } = value else {
            return Err(format!(
                "{name:?} is a {value}, which is not served (tensors are)"
            ));
        };
        let datatype = datatype(*ty).ok_or_else(|| {
            format!("{name:?} is a tensor of {ty}, which is not served (numbers, booleans and strings are)")
        })?;
        Ok(Port {
            name: name.to_string(),
            element: *ty,
            datatype,
            shape: shape.iter().map(|d| usize::try_from(*d).ok()).collect(),
        })
    }

    fn spec(&self) -> Spec {
        Spec {
            name: self.name.clone(),
            datatype: self.datatype.name(),
            shape: self
                .shape
                .iter()
                .map(|d| d.map_or(-1, |d| d as i64))
                .collect(),
        }
    }

    fn shape_text(&self) -> String {
        let dims: Vec<String> = self
            .shape
            .iter()
            .map(|d| d.map_or("-1".into(), |d| d.to_string()))
            .collect();
        format!("[{}]", dims.join(", "))
    }
}

impl Produces {
    fn new(name: &str, value: &ValueType) -> Result<Produces, String> {
        if let ValueType::Sequence(item) = value
            && let ValueType::Map { key, value, .. } = item.as_ref()
            && matches!(value, TensorElementType::Float32)
            && matches!(key, TensorElementType::Int64 | TensorElementType::String)
        {
            return Ok(Produces::Probabilities {
                name: name.to_string(),
                string_classes: matches!(key, TensorElementType::String),
            });
        }
        Port::new(name, value).map(Produces::Tensor)
    }

    fn spec(&self) -> Spec {
        match self {
            Produces::Tensor(port) => port.spec(),
            Produces::Probabilities { name, .. } => Spec {
                name: name.clone(),
                datatype: Datatype::F32.name(),
                shape: vec![-1, -1],
            },
        }
    }
}

fn datatype(element: TensorElementType) -> Option<Datatype> {
    Some(match element {
        TensorElementType::Bool => Datatype::Bool,
        TensorElementType::Uint8 => Datatype::U8,
        TensorElementType::Uint16 => Datatype::U16,
        TensorElementType::Uint32 => Datatype::U32,
        TensorElementType::Uint64 => Datatype::U64,
        TensorElementType::Int8 => Datatype::I8,
        TensorElementType::Int16 => Datatype::I16,
        TensorElementType::Int32 => Datatype::I32,
        TensorElementType::Int64 => Datatype::I64,
        TensorElementType::Float32 => Datatype::F32,
        TensorElementType::Float64 => Datatype::F64,
        TensorElementType::String => Datatype::Bytes,
        _ => return None,
    })
}

pub(crate) struct Onnx {
    /// ONNX Runtime runs a session for one caller at a time (`run` takes it mutably).
    session: Mutex<Session>,
    inputs: Vec<Port>,
    outputs: Vec<Produces>,
}

impl Onnx {
    /// Builds the model's session with ONNX Runtime from `library` (see [`runtime`]); every
    /// operator must be known to it and every input and output of a served type.
    pub fn from_bytes(bytes: &[u8], library: Option<&Path>) -> Result<Self, String> {
        let environment = runtime::environment(library)?;
        // One thread per run: requests run side by side, each on its own thread.
        let session = (|| -> ort::Result<Session> {
            Session::builder(environment)?
                .with_intra_threads(1)?
                .with_inter_threads(1)?
                .commit_from_memory(bytes)
        })()
        .map_err(|e| e.to_string())?;
        let inputs = session
            .inputs()
            .iter()
            .map(|i| Port::new(i.name(), i.dtype()).map_err(|e| format!("input {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = session
            .outputs()
            .iter()
            .map(|o| Produces::new(o.name(), o.dtype()).map_err(|e| format!("output {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            session: Mutex::new(session),
            inputs,
            outputs,
        })
    }

    pub fn input_names(&self) -> Vec<String> {
        self.inputs.iter().map(|p| p.name.clone()).collect()
    }

    pub fn inputs(&self) -> Vec<Spec> {
        self.inputs.iter().map(Port::spec).collect()
    }

    pub fn outputs(&self) -> Vec<Spec> {
        self.outputs.iter().map(Produces::spec).collect()
    }

    fn inputs_hint(&self) -> String {
        let all: Vec<String> = self
            .inputs
            .iter()
            .map(|p| format!("{:?} ({} {})", p.name, p.datatype.name(), p.shape_text()))
            .collect();
        format!("the model's inputs are {}", all.join(", "))
    }

    /// Runs the model on a v2 request's tensors, one per model input, recording them in the
    /// input statistics.
    pub fn infer(&self, tensors: &[Tensor], stats: &InputStats) -> Result<Vec<Output>, ApiError> {
        if let Some(t) = tensors
            .iter()
            .find(|t| !self.inputs.iter().any(|p| p.name == t.name))
        {
            return Err(ApiError::bad_request(format!(
                "unknown input {:?}; {}",
                t.name,
                self.inputs_hint()
            )));
        }
        for (i, t) in tensors.iter().enumerate() {
            if tensors[..i].iter().any(|u| u.name == t.name) {
                return Err(ApiError::bad_request(format!(
                    "input {:?} is given twice",
                    t.name
                )));
            }
        }
        let mut values: Vec<(String, DynValue)> = Vec::with_capacity(self.inputs.len());
        for port in &self.inputs {
            let t = tensors
                .iter()
                .find(|t| t.name == port.name)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "missing input {:?}; {}",
                        port.name,
                        self.inputs_hint()
                    ))
                })?;
            values.push((port.name.clone(), to_ort(port, t)?));
        }
        stats.record(|r| {
            for (i, port) in self.inputs.iter().enumerate() {
                if let Some(t) = tensors.iter().find(|t| t.name == port.name) {
                    t.values.each_f64(|v| r.add(i, v));
                }
            }
        });
        let mut session = self
            .session
            .lock()
            .map_err(|_| ApiError::internal("the model's session failed in an earlier request"))?;
        // Every input was checked against the model's types and fixed dimensions; what ONNX
        // Runtime still refuses (free dimensions that must agree) is the request's shape.
        let results = session.run(values).map_err(|e| {
            ApiError::bad_request(format!("the model cannot run on these inputs: {e}"))
        })?;
        self.outputs
            .iter()
            .zip(results.values())
            .map(|(produces, value)| output(produces, &value))
            .collect()
    }

    /// KServe v1: each instance is one item of the model's single input (a number or nested
    /// arrays of the input's inner dimensions); the predictions are the first output's rows.
    pub fn predict_v1(
        &self,
        instances: &[Value],
        stats: &InputStats,
    ) -> Result<Vec<Value>, ApiError> {
        let [port] = &self.inputs[..] else {
            return Err(ApiError::bad_request(format!(
                "the model has {} inputs; v1 instances fit a model of one: use /v2/models/{{name}}/infer",
                self.inputs.len()
            )));
        };
        let inner = instances.first().map(shape_of).unwrap_or_default();
        if let Some((i, s)) = instances
            .iter()
            .map(shape_of)
            .enumerate()
            .find(|(_, s)| *s != inner)
        {
            return Err(ApiError::bad_request(format!(
                "instance {i} has shape {s:?}, instance 0 {inner:?}: every instance needs the same"
            )));
        }
        let mut shape = vec![instances.len() as u64];
        shape.extend(inner.iter().map(|d| *d as u64));
        let tensor = Tensor::of_leaves(
            port.name.clone(),
            port.datatype,
            &shape,
            Leaves::of(instances),
        )?;
        let outputs = self.infer(&[tensor], stats)?;
        let first = outputs
            .first()
            .ok_or_else(|| ApiError::internal("the model has no output"))?;
        match first.shape.first() {
            Some(n) if *n == instances.len() => {
                let Value::Array(rows) = nest(&flat_values(&first.data), &first.shape) else {
                    return Err(ApiError::internal("the first output has no rows"));
                };
                Ok(rows)
            }
            _ => Err(ApiError::internal(format!(
                "the first output {:?} has shape {:?}, not one row per instance",
                first.name, first.shape
            ))),
        }
    }
}

/// The dimensions of nested arrays, read along their first items.
fn shape_of(v: &Value) -> Vec<usize> {
    let mut shape = Vec::new();
    let mut at = v;
    while let Value::Array(items) = at {
        shape.push(items.len());
        match items.first() {
            Some(first) => at = first,
            None => break,
        }
    }
    shape
}

/// `t` as an ONNX Runtime tensor of `port`'s type, if its shape fits and its values convert
/// exactly.
fn to_ort(port: &Port, t: &Tensor) -> Result<DynValue, ApiError> {
    let fits = t.shape.len() == port.shape.len()
        && t.shape
            .iter()
            .zip(&port.shape)
            .all(|(d, p)| p.is_none_or(|p| p == *d));
    if !fits {
        return Err(ApiError::bad_request(format!(
            "input {:?} has shape {:?}; the model takes {} (-1: any size)",
            t.name,
            t.shape,
            port.shape_text()
        )));
    }
    let wrong = || {
        ApiError::bad_request(format!(
            "input {:?} is {}; the model takes {}",
            t.name,
            t.datatype.name(),
            port.datatype.name()
        ))
    };
    let shape = t.shape.clone();
    let failed = |e: ort::Error| ApiError::internal(format!("input {:?}: {e}", t.name));
    macro_rules! tensor {
        ($values:expr) => {
            OrtTensor::from_array((shape, $values))
                .map(|v| v.into_dyn())
                .map_err(failed)
        };
    }
    macro_rules! integers {
        ($ty:ty) => {{
            let converted: Option<Vec<$ty>> = match &t.values {
                Values::Int(v) => v.iter().map(|x| <$ty>::try_from(*x).ok()).collect(),
                Values::UInt(v) => v.iter().map(|x| <$ty>::try_from(*x).ok()).collect(),
                _ => return Err(wrong()),
            };
            let converted = converted.ok_or_else(|| {
                ApiError::bad_request(format!(
                    "input {:?} has a value outside {}",
                    t.name,
                    port.datatype.name()
                ))
            })?;
            tensor!(converted)
        }};
    }
    let floats = || -> Result<Vec<f64>, ApiError> {
        match &t.values {
            Values::Float(_) | Values::Int(_) | Values::UInt(_) => t.values.to_f64(&t.name),
            _ => Err(wrong()),
        }
    };
    match port.element {
        TensorElementType::Float32 => {
            tensor!(floats()?.iter().map(|x| *x as f32).collect::<Vec<_>>())
        }
        TensorElementType::Float64 => tensor!(floats()?),
        TensorElementType::Bool => match &t.values {
            Values::Bool(v) => tensor!(v.clone()),
            _ => Err(wrong()),
        },
        TensorElementType::String => match &t.values {
            Values::Bytes(v) => OrtTensor::from_string_array((shape, v.as_slice()))
                .map(|v| v.into_dyn())
                .map_err(failed),
            _ => Err(wrong()),
        },
        TensorElementType::Int8 => integers!(i8),
        TensorElementType::Int16 => integers!(i16),
        TensorElementType::Int32 => integers!(i32),
        TensorElementType::Int64 => integers!(i64),
        TensorElementType::Uint8 => integers!(u8),
        TensorElementType::Uint16 => integers!(u16),
        TensorElementType::Uint32 => integers!(u32),
        TensorElementType::Uint64 => integers!(u64),
        other => Err(ApiError::internal(format!(
            "input type {other} is not served"
        ))),
    }
}

/// An ONNX Runtime result as a response tensor.
fn output(produces: &Produces, value: &DynValue) -> Result<Output, ApiError> {
    let port = match produces {
        Produces::Tensor(port) => port,
        Produces::Probabilities {
            name,
            string_classes,
        } => return probabilities(name, *string_classes, value),
    };
    let name = &port.name;
    let fail = |e: ort::Error| ApiError::internal(format!("output {name:?}: {e}"));
    macro_rules! cast {
        ($ty:ty, $variant:ident, $to:ty) => {{
            let (shape, data) = value.try_extract_tensor::<$ty>().map_err(fail)?;
            (
                shape.to_vec(),
                Data::$variant(data.iter().map(|x| <$to>::from(*x)).collect()),
            )
        }};
    }
    let (shape, data) = match port.element {
        TensorElementType::Bool => cast!(bool, Bool, bool),
        TensorElementType::Float32 => cast!(f32, F32, f32),
        TensorElementType::Float64 => cast!(f64, F64, f64),
        TensorElementType::Int8 => cast!(i8, I64, i64),
        TensorElementType::Int16 => cast!(i16, I64, i64),
        TensorElementType::Int32 => cast!(i32, I64, i64),
        TensorElementType::Int64 => cast!(i64, I64, i64),
        TensorElementType::Uint8 => cast!(u8, U64, u64),
        TensorElementType::Uint16 => cast!(u16, U64, u64),
        TensorElementType::Uint32 => cast!(u32, U64, u64),
        TensorElementType::Uint64 => cast!(u64, U64, u64),
        TensorElementType::String => {
            let (shape, strings) = value.try_extract_strings().map_err(fail)?;
            (shape.to_vec(), Data::Bytes(strings))
        }
        other => {
            return Err(ApiError::internal(format!(
                "output {name:?} is of type {other}"
            )));
        }
    };
    Ok(Output {
        name: name.clone().into(),
        datatype: port.datatype.name(),
        shape: shape.iter().map(|d| *d as usize).collect(),
        data,
        parameters: Default::default(),
    })
}

/// A ZipMap output (one map of class → probability per row) as `[rows, classes]`, the classes
/// in ascending order; every row must have the same classes.
fn probabilities(name: &str, string_classes: bool, value: &DynValue) -> Result<Output, ApiError> {
    let fail = |e: ort::Error| ApiError::internal(format!("output {name:?}: {e}"));
    let maps = value
        .view()
        .downcast::<DynSequenceValueType>()
        .map_err(fail)?
        .try_extract_sequence::<DynMapValueType>()
        .map_err(fail)?;
    let mut classes: Option<Vec<Value>> = None;
    let mut data = Vec::new();
    for map in &maps {
        let row: Vec<(Value, f32)> = if string_classes {
            let mut kv = map.try_extract_key_values::<String, f32>().map_err(fail)?;
            kv.sort_by(|a, b| a.0.cmp(&b.0));
            kv.into_iter().map(|(k, v)| (Value::from(k), v)).collect()
        } else {
            let mut kv = map.try_extract_key_values::<i64, f32>().map_err(fail)?;
            kv.sort_by_key(|(k, _)| *k);
            kv.into_iter().map(|(k, v)| (Value::from(k), v)).collect()
        };
        let keys: Vec<Value> = row.iter().map(|(k, _)| k.clone()).collect();
        match &classes {
            None => classes = Some(keys),
            Some(c) if *c == keys => {}
            Some(_) => {
                return Err(ApiError::internal(format!(
                    "output {name:?}: the rows' probability maps have different classes"
                )));
            }
        }
        data.extend(row.into_iter().map(|(_, p)| p));
    }
    let classes = classes.unwrap_or_default();
    let mut parameters = serde_json::Map::new();
    parameters.insert("classes".into(), Value::Array(classes.clone()));
    Ok(Output {
        name: name.to_string().into(),
        datatype: Datatype::F32.name(),
        shape: vec![maps.len(), classes.len()],
        data: Data::F32(data),
        parameters,
    })
}

/// A response tensor's values as JSON, for v1's nested rows.
fn flat_values(data: &Data) -> Vec<Value> {
    match data {
        Data::Bool(v) => v.iter().map(|x| Value::from(*x)).collect(),
        Data::I64(v) => v.iter().map(|x| Value::from(*x)).collect(),
        Data::U64(v) => v.iter().map(|x| Value::from(*x)).collect(),
        // Through the shortest text that reads back as the f32: `3.55`, not `3.549999952…`.
        Data::F32(v) => v
            .iter()
            .map(|x| Value::from(x.to_string().parse::<f64>().unwrap_or(f64::NAN)))
            .collect(),
        Data::F64(v) => v.iter().map(|x| Value::from(*x)).collect(),
        Data::Bytes(v) => v.iter().map(|x| Value::from(x.as_str())).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Metrics, ModelLabels};

    fn fixture() -> Onnx {
        let library = crate::runtime::for_tests();
        Onnx::from_bytes(
            include_bytes!("../tests/fixtures/linear.onnx"),
            Some(&library),
        )
        .unwrap()
    }

    fn stats(m: &Metrics, inputs: &[String]) -> std::sync::Arc<InputStats> {
        m.model_loaded(
            ModelLabels {
                name: "m".into(),
                version: String::new(),
                format: "onnx".into(),
                digest: String::new(),
            },
            inputs,
        )
    }

    #[test]
    fn ports_keep_their_onnx_names_and_a_free_batch() {
        let m = fixture();
        let spec = |s: Vec<Spec>| -> Vec<(String, &str, Vec<i64>)> {
            s.into_iter()
                .map(|s| (s.name, s.datatype, s.shape))
                .collect()
        };
        assert_eq!(spec(m.inputs()), vec![("x".into(), "FP32", vec![-1, 3])]);
        assert_eq!(
            spec(m.outputs()),
            vec![
                ("label".into(), "INT64", vec![-1]),
                ("scores".into(), "FP32", vec![-1, 2])
            ]
        );
    }

    #[test]
    fn integers_convert_to_a_float_input_and_floats_never_to_an_integer_one() {
        let m = fixture();
        let metrics = Metrics::default();
        let stats = stats(&metrics, &m.input_names());
        let x = |values: Values, datatype: Datatype| Tensor {
            name: "x".into(),
            shape: vec![1, 3],
            datatype,
            values,
        };
        let out = m
            .infer(&[x(Values::Int(vec![4, 0, 0]), Datatype::I64)], &stats)
            .unwrap();
        assert_eq!(out[0].data, Data::I64(vec![0]));
        assert_eq!(out[1].data, Data::F32(vec![4.1, -4.2]));
        let port = Port {
            name: "n".into(),
            element: TensorElementType::Int64,
            datatype: Datatype::I64,
            shape: vec![None],
        };
        let t = Tensor {
            name: "n".into(),
            shape: vec![1],
            datatype: Datatype::F64,
            values: Values::Float(vec![1.0]),
        };
        let e = to_ort(&port, &t).unwrap_err();
        assert_eq!(e.message, "input \"n\" is FP64; the model takes INT64");
    }
}
