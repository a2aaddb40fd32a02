//! ONNX models, run by tract (pure Rust: no onnxruntime library in the image). The model's
//! inputs and outputs are the protocol's tensors, by name; a dimension the file leaves free
//! (a named batch dimension such as `N`) takes any size. Numeric and boolean tensors only:
//! a model with another input or output type is refused when it loads.

use crate::binary::Tail;
use crate::errors::ApiError;
use crate::metrics::InputStats;
use crate::tensor::{Data, Datatype, Output, RequestTensor, Spec, Tensor, Values, nest};
use serde_json::Value;
use tract_onnx::prelude::{
    DatumType, Framework as _, InferenceModelExt as _, IntoTValue as _, TValue, TVec,
    Tensor as TractTensor, TypedFact, TypedModel, TypedRunnableModel,
};
use tract_onnx::tract_hir::internal::DimLike as _;

/// A model input or output: its name, element type and dimensions (`None`: any size).
struct Port {
    name: String,
    datum: DatumType,
    datatype: Datatype,
    shape: Vec<Option<usize>>,
}

impl Port {
    fn new(name: String, fact: &TypedFact) -> Result<Port, String> {
        let datum = fact.datum_type;
        let datatype = datatype(datum).ok_or_else(|| {
            format!("{name:?} is of type {datum:?}, which is not served (numbers and booleans are)")
        })?;
        let shape = fact.shape.iter().map(|d| d.to_usize().ok()).collect();
        Ok(Port {
            name,
            datum,
            datatype,
            shape,
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

fn datatype(datum: DatumType) -> Option<Datatype> {
    Some(match datum {
        DatumType::Bool => Datatype::Bool,
        DatumType::U8 => Datatype::U8,
        DatumType::U16 => Datatype::U16,
        DatumType::U32 => Datatype::U32,
        DatumType::U64 => Datatype::U64,
        DatumType::I8 => Datatype::I8,
        DatumType::I16 => Datatype::I16,
        DatumType::I32 => Datatype::I32,
        DatumType::I64 => Datatype::I64,
        DatumType::F32 => Datatype::F32,
        DatumType::F64 => Datatype::F64,
        _ => return None,
    })
}

pub(crate) struct Onnx {
    plan: TypedRunnableModel<TypedModel>,
    inputs: Vec<Port>,
    outputs: Vec<Port>,
}

impl Onnx {
    /// Parses and optimizes the model; its inputs and outputs must all be served types.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let plan = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| format!("{e:#}"))?;
        let model = plan.model();
        let mut inputs = Vec::new();
        for (i, outlet) in model
            .input_outlets()
            .map_err(|e| e.to_string())?
            .iter()
            .enumerate()
        {
            let fact = model.input_fact(i).map_err(|e| e.to_string())?;
            inputs.push(Port::new(model.node(outlet.node).name.clone(), fact)?);
        }
        let mut outputs = Vec::new();
        for (i, outlet) in model
            .output_outlets()
            .map_err(|e| e.to_string())?
            .iter()
            .enumerate()
        {
            let fact = model.output_fact(i).map_err(|e| e.to_string())?;
            let name = model
                .outlet_label(*outlet)
                .map_or_else(|| model.node(outlet.node).name.clone(), str::to_string);
            outputs.push(Port::new(name, fact)?);
        }
        Ok(Self {
            plan,
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
        self.outputs.iter().map(Port::spec).collect()
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
        let mut values: TVec<TValue> = TVec::new();
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
            values.push(to_tract(port, t)?.into_tvalue());
        }
        for (i, port) in self.inputs.iter().enumerate() {
            if let Some(t) = tensors.iter().find(|t| t.name == port.name)
                && let Ok(v) = t.values.to_f64(&t.name)
            {
                stats.observe(i, v);
            }
        }
        // Every input was checked against the model's types and fixed dimensions; what tract
        // still refuses (free dimensions that must agree) is the request's shape.
        let results = self.plan.run(values).map_err(|e| {
            ApiError::bad_request(format!("the model cannot run on these inputs: {e}"))
        })?;
        self.outputs
            .iter()
            .zip(results.iter())
            .map(|(port, t)| output(&port.name, t))
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
        let tensor = Tensor::decode(
            RequestTensor {
                name: port.name.clone(),
                shape,
                datatype: port.datatype.name().into(),
                data: Some(Value::Array(instances.to_vec())),
                parameters: Default::default(),
            },
            &mut Tail::empty(),
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

/// `t` as a tract tensor of `port`'s type, if its shape fits and its values convert exactly.
fn to_tract(port: &Port, t: &Tensor) -> Result<TractTensor, ApiError> {
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
    let shape = &t.shape;
    macro_rules! tensor {
        ($ty:ty, $values:expr) => {
            TractTensor::from_shape::<$ty>(shape, &$values)
                .map_err(|e| ApiError::internal(e.to_string()))
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
            tensor!($ty, converted)
        }};
    }
    let floats = || -> Result<Vec<f64>, ApiError> {
        match &t.values {
            Values::Float(_) | Values::Int(_) | Values::UInt(_) => t.values.to_f64(&t.name),
            _ => Err(wrong()),
        }
    };
    match port.datum {
        DatumType::F32 => tensor!(f32, floats()?.iter().map(|x| *x as f32).collect::<Vec<_>>()),
        DatumType::F64 => tensor!(f64, floats()?),
        DatumType::Bool => match &t.values {
            Values::Bool(v) => tensor!(bool, v),
            _ => Err(wrong()),
        },
        DatumType::I8 => integers!(i8),
        DatumType::I16 => integers!(i16),
        DatumType::I32 => integers!(i32),
        DatumType::I64 => integers!(i64),
        DatumType::U8 => integers!(u8),
        DatumType::U16 => integers!(u16),
        DatumType::U32 => integers!(u32),
        DatumType::U64 => integers!(u64),
        other => Err(ApiError::internal(format!(
            "input type {other:?} is not served"
        ))),
    }
}

/// A tract result as a response tensor.
fn output(name: &str, t: &TractTensor) -> Result<Output, ApiError> {
    let fail =
        |e: tract_onnx::prelude::TractError| ApiError::internal(format!("output {name:?}: {e}"));
    let datum = t.datum_type();
    let datatype = datatype(datum)
        .ok_or_else(|| ApiError::internal(format!("output {name:?} is of type {datum:?}")))?;
    macro_rules! cast {
        ($ty:ty, $variant:ident, $to:ty) => {
            Data::$variant(
                t.as_slice::<$ty>()
                    .map_err(fail)?
                    .iter()
                    .map(|x| <$to>::from(*x))
                    .collect(),
            )
        };
    }
    let data = match datum {
        DatumType::Bool => Data::Bool(t.as_slice::<bool>().map_err(fail)?.to_vec()),
        DatumType::F32 => Data::F32(t.as_slice::<f32>().map_err(fail)?.to_vec()),
        DatumType::F64 => Data::F64(t.as_slice::<f64>().map_err(fail)?.to_vec()),
        DatumType::I8 => cast!(i8, I64, i64),
        DatumType::I16 => cast!(i16, I64, i64),
        DatumType::I32 => cast!(i32, I64, i64),
        DatumType::I64 => cast!(i64, I64, i64),
        DatumType::U8 => cast!(u8, U64, u64),
        DatumType::U16 => cast!(u16, U64, u64),
        DatumType::U32 => cast!(u32, U64, u64),
        DatumType::U64 => cast!(u64, U64, u64),
        other => {
            return Err(ApiError::internal(format!(
                "output {name:?} is of type {other:?}"
            )));
        }
    };
    Ok(Output {
        name: name.to_string(),
        datatype: datatype.name(),
        shape: t.shape().to_vec(),
        data,
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
        Onnx::from_bytes(include_bytes!("../tests/fixtures/linear.onnx")).unwrap()
    }

    fn stats(m: &Metrics, inputs: &[String]) -> InputStats {
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
            datum: DatumType::I64,
            datatype: Datatype::I64,
            shape: vec![None],
        };
        let t = Tensor {
            name: "n".into(),
            shape: vec![1],
            datatype: Datatype::F64,
            values: Values::Float(vec![1.0]),
        };
        let e = to_tract(&port, &t).unwrap_err();
        assert_eq!(e.message, "input \"n\" is FP64; the model takes INT64");
    }
}
