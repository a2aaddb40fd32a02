//! Tensors as the Open Inference Protocol writes them in JSON: a name, a shape, a datatype and
//! the data in row-major order (flat, or nested arrays as some clients send). A request tensor
//! is checked here against its own declaration (the data fits the shape, every value is of the
//! datatype); whether it fits the model is each model's business.

use crate::binary::{self, Tail};
use crate::errors::ApiError;
use crate::leaves::{Leaf, Leaves};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;

/// The protocol's tensor datatypes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Datatype {
    Bool,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F16,
    F32,
    F64,
    Bytes,
}

const DATATYPES: [(Datatype, &str); 13] = [
    (Datatype::Bool, "BOOL"),
    (Datatype::U8, "UINT8"),
    (Datatype::U16, "UINT16"),
    (Datatype::U32, "UINT32"),
    (Datatype::U64, "UINT64"),
    (Datatype::I8, "INT8"),
    (Datatype::I16, "INT16"),
    (Datatype::I32, "INT32"),
    (Datatype::I64, "INT64"),
    (Datatype::F16, "FP16"),
    (Datatype::F32, "FP32"),
    (Datatype::F64, "FP64"),
    (Datatype::Bytes, "BYTES"),
];

impl Datatype {
    pub fn parse(name: &str) -> Option<Datatype> {
        DATATYPES.iter().find(|(_, n)| *n == name).map(|(d, _)| *d)
    }

    /// The least and greatest value of a signed integer datatype.
    pub fn signed_range(self) -> Option<(i64, i64)> {
        Some(match self {
            Datatype::I8 => (i8::MIN.into(), i8::MAX.into()),
            Datatype::I16 => (i16::MIN.into(), i16::MAX.into()),
            Datatype::I32 => (i32::MIN.into(), i32::MAX.into()),
            Datatype::I64 => (i64::MIN, i64::MAX),
            _ => return None,
        })
    }

    /// The greatest value of an unsigned integer datatype.
    pub fn unsigned_max(self) -> Option<u64> {
        Some(match self {
            Datatype::U8 => u8::MAX.into(),
            Datatype::U16 => u16::MAX.into(),
            Datatype::U32 => u32::MAX.into(),
            Datatype::U64 => u64::MAX,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        DATATYPES
            .iter()
            .find(|(d, _)| *d == self)
            .map(|(_, n)| *n)
            .expect("every datatype is listed")
    }
}

/// A request tensor's values, by kind.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Values {
    Bool(Vec<bool>),
    /// Any signed integer datatype, each value within its width.
    Int(Vec<i64>),
    /// Any unsigned integer datatype, each value within its width.
    UInt(Vec<u64>),
    /// Any floating-point datatype.
    Float(Vec<f64>),
    Bytes(Vec<String>),
}

impl Values {
    /// Gives `f` the values as numbers, without a copy; `BYTES` are no numbers and give none.
    pub fn each_f64(&self, f: impl FnOnce(&mut dyn Iterator<Item = f64>)) {
        match self {
            Values::Bool(v) => f(&mut v.iter().map(|b| f64::from(u8::from(*b)))),
            Values::Int(v) => f(&mut v.iter().map(|x| *x as f64)),
            Values::UInt(v) => f(&mut v.iter().map(|x| *x as f64)),
            Values::Float(v) => f(&mut v.iter().copied()),
            Values::Bytes(_) => {}
        }
    }

    /// The values as numbers (a boolean is 0 or 1, as in the built-in model format); `BYTES`
    /// is no number.
    pub fn to_f64(&self, name: &str) -> Result<Vec<f64>, ApiError> {
        Ok(match self {
            Values::Bool(v) => v.iter().map(|b| f64::from(u8::from(*b))).collect(),
            Values::Int(v) => v.iter().map(|x| *x as f64).collect(),
            Values::UInt(v) => v.iter().map(|x| *x as f64).collect(),
            Values::Float(v) => v.clone(),
            Values::Bytes(_) => {
                return Err(ApiError::bad_request(format!(
                    "input {name:?} is BYTES; the model takes numbers"
                )));
            }
        })
    }
}

/// One input tensor of a request, checked against its declaration.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub datatype: Datatype,
    pub values: Values,
}

/// An input tensor as the request spells it: its values in `data`, or, with the binary
/// tensor data extension, `parameters.binary_data_size` bytes after the JSON.
#[derive(Deserialize, Debug)]
pub(crate) struct RequestTensor<'a> {
    pub name: String,
    pub shape: Vec<u64>,
    #[serde(borrow)]
    pub datatype: Cow<'a, str>,
    #[serde(default)]
    pub data: Option<Leaves>,
    #[serde(default)]
    pub parameters: TensorParameters,
}

/// The parameters of a request tensor ciclo reads; others are ignored.
#[derive(Deserialize, Debug, Default)]
pub(crate) struct TensorParameters {
    #[serde(default)]
    pub binary_data_size: Option<u64>,
}

/// A tensor of a response.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub(crate) struct Output {
    /// Borrowed for a built-in model's fixed outputs: a request allocates no name.
    pub name: Cow<'static, str>,
    pub datatype: &'static str,
    pub shape: Vec<usize>,
    pub data: Data,
    /// What the data needs to be read (a probability map's `classes`); empty for most.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub parameters: serde_json::Map<String, Value>,
}

impl Output {
    /// The output called `name` among `outputs`: a request may ask for some by name.
    pub fn named<'a>(outputs: &'a [Output], name: &str) -> Result<&'a Output, ApiError> {
        outputs.iter().find(|o| o.name == name).ok_or_else(|| {
            let names: Vec<&str> = outputs.iter().map(|o| o.name.as_ref()).collect();
            ApiError::bad_request(format!(
                "unknown output {name:?}; the model's outputs are {names:?}"
            ))
        })
    }
}

/// A response tensor's data, flat in row-major order.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(untagged)]
pub(crate) enum Data {
    Bool(Vec<bool>),
    I64(Vec<i64>),
    U64(Vec<u64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bytes(Vec<String>),
}

/// A tensor in model metadata: `-1` for a dimension of any size (the batch).
#[derive(Serialize, Debug, Clone, PartialEq)]
pub(crate) struct Spec {
    pub name: String,
    pub datatype: &'static str,
    pub shape: Vec<i64>,
}

impl Tensor {
    /// Checks `t` against its own declaration: a known datatype, as many values as the shape
    /// holds, every value of the datatype. Binary data is taken from `binary`.
    pub fn decode(t: RequestTensor<'_>, binary: &mut Tail) -> Result<Tensor, ApiError> {
        let name = t.name;
        let bad = |m: String| ApiError::bad_request(format!("input {name:?}: {m}"));
        let (datatype, shape, count) = declared(&name, &t.datatype, &t.shape)?;
        let values = match (t.data, t.parameters.binary_data_size) {
            (Some(leaves), None) => checked(datatype, &shape, count, leaves).map_err(bad)?,
            (None, Some(size)) => {
                let bytes = binary.take(&name, size).map_err(&bad)?;
                binary::decode(datatype, count, bytes).map_err(bad)?
            }
            (Some(_), Some(_)) => {
                return Err(bad(
                    "has both `data` and parameters.binary_data_size: send one".into(),
                ));
            }
            (None, None) => {
                return Err(bad("has no `data` (nor parameters.binary_data_size, for the binary tensor data extension)".into()));
            }
        };
        Ok(Tensor {
            name,
            shape,
            datatype,
            values,
        })
    }
}

impl Tensor {
    /// A tensor of `leaves` (KServe v1's instances, already read), checked as
    /// [`Tensor::decode`] checks a v2 input.
    pub fn of_leaves(
        name: String,
        datatype: Datatype,
        shape: &[u64],
        leaves: Leaves,
    ) -> Result<Tensor, ApiError> {
        let (datatype, shape, count) = declared(&name, datatype.name(), shape)?;
        let values = checked(datatype, &shape, count, leaves)
            .map_err(|m| ApiError::bad_request(format!("input {name:?}: {m}")))?;
        Ok(Tensor {
            name,
            shape,
            datatype,
            values,
        })
    }
}

/// The values of `leaves`, if they fill `shape` (of `count` values) and are all of `datatype`.
fn checked(
    datatype: Datatype,
    shape: &[usize],
    count: usize,
    leaves: Leaves,
) -> Result<Values, String> {
    if leaves.len() != count {
        return Err(format!(
            "shape {shape:?} holds {count} values, the data has {}",
            leaves.len()
        ));
    }
    match (float_range(datatype), leaves) {
        // Floats for a floating-point tensor: only their range to check, in place.
        (Some((max, what)), Leaves::Floats(v)) => match v.iter().find(|x| x.abs() > max) {
            Some(x) => Err(format!(
                "datatype {} takes {what}, got {}",
                datatype.name(),
                Leaf::Float(*x)
            )),
            None => Ok(Values::Float(v)),
        },
        (_, leaves) => values(datatype, &leaves.into_leaves()),
    }
}

/// The greatest magnitude of a floating-point datatype, and how to say it.
fn float_range(datatype: Datatype) -> Option<(f64, &'static str)> {
    Some(match datatype {
        Datatype::F16 => (65504.0, "numbers within ±65504"),
        Datatype::F32 => (f32::MAX.into(), "numbers within ±3.4e38"),
        Datatype::F64 => (f64::MAX, "numbers"),
        _ => return None,
    })
}

/// A request tensor's declaration checked: a known datatype, and a shape whose element count
/// is a number; the datatype, the shape and the count.
pub(crate) fn declared(
    name: &str,
    datatype: &str,
    shape: &[u64],
) -> Result<(Datatype, Vec<usize>, usize), ApiError> {
    let bad = |m: String| ApiError::bad_request(format!("input {name:?}: {m}"));
    let parsed = Datatype::parse(datatype).ok_or_else(|| {
        let known: Vec<&str> = DATATYPES.iter().map(|(_, n)| *n).collect();
        bad(format!(
            "unknown datatype {datatype:?}; the datatypes are {}",
            known.join(", ")
        ))
    })?;
    let dims = shape
        .iter()
        .map(|d| usize::try_from(*d).ok())
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| bad(format!("shape {shape:?} is too large")))?;
    let count = dims
        .iter()
        .try_fold(1usize, |n, d| n.checked_mul(*d))
        .ok_or_else(|| bad(format!("shape {shape:?} is too large")))?;
    Ok((parsed, dims, count))
}

fn values(datatype: Datatype, leaves: &[Leaf]) -> Result<Values, String> {
    let name = datatype.name();
    let wrong = |v: &Leaf, what: &str| format!("datatype {name} takes {what}, got {v}");
    Ok(match datatype {
        Datatype::Bool => Values::Bool(
            leaves
                .iter()
                .map(|v| v.as_bool().ok_or_else(|| wrong(v, "true or false")))
                .collect::<Result<_, _>>()?,
        ),
        Datatype::I8 | Datatype::I16 | Datatype::I32 | Datatype::I64 => {
            let (min, max) = datatype.signed_range().expect("a signed integer datatype");
            Values::Int(
                leaves
                    .iter()
                    .map(|v| {
                        v.as_i64()
                            .filter(|x| (min..=max).contains(x))
                            .ok_or_else(|| wrong(v, &format!("integers from {min} to {max}")))
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
        Datatype::U8 | Datatype::U16 | Datatype::U32 | Datatype::U64 => {
            let max = datatype
                .unsigned_max()
                .expect("an unsigned integer datatype");
            Values::UInt(
                leaves
                    .iter()
                    .map(|v| {
                        v.as_u64()
                            .filter(|x| *x <= max)
                            .ok_or_else(|| wrong(v, &format!("integers from 0 to {max}")))
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
        Datatype::F16 | Datatype::F32 | Datatype::F64 => {
            let (max, what) = float_range(datatype).expect("a floating-point datatype");
            Values::Float(
                leaves
                    .iter()
                    .map(|v| {
                        v.as_f64()
                            .filter(|x| x.abs() <= max)
                            .ok_or_else(|| wrong(v, what))
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
        Datatype::Bytes => Values::Bytes(
            leaves
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| wrong(v, "strings"))
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// `values` (row-major) as nested arrays of `shape`: KServe v1's rows, one per instance.
pub(crate) fn nest(values: &[Value], shape: &[usize]) -> Value {
    match shape {
        [] => values.first().cloned().unwrap_or(Value::Null),
        [_] => Value::Array(values.to_vec()),
        [n, rest @ ..] => {
            let step = rest.iter().product::<usize>();
            Value::Array(
                (0..*n)
                    .map(|i| nest(&values[i * step..(i + 1) * step], rest))
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(v: Value) -> Result<Tensor, String> {
        let text = v.to_string();
        Tensor::decode(serde_json::from_str(&text).unwrap(), &mut Tail::empty())
            .map_err(|e| e.message)
    }

    #[test]
    fn nested_and_flat_data_read_the_same() {
        let flat = decode(
            json!({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3.5, 4]}),
        );
        let nested = decode(
            json!({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3.5, 4]]}),
        );
        assert_eq!(flat, nested);
        assert_eq!(
            flat.unwrap().values,
            Values::Float(vec![1.0, 2.0, 3.5, 4.0])
        );
    }

    #[test]
    fn values_outside_their_datatype_are_refused_by_name() {
        for (datatype, data, says) in [
            (
                "INT8",
                json!([1, 200]),
                "INT8 takes integers from -128 to 127, got 200",
            ),
            ("INT64", json!([1.5]), "INT64 takes integers"),
            ("UINT8", json!([-1]), "UINT8 takes integers from 0 to 255"),
            ("FP64", json!(["1"]), "FP64 takes numbers"),
            ("FP32", json!([1e300]), "FP32 takes numbers"),
            (
                "FP32",
                json!([1.5, 1e300]),
                "FP32 takes numbers within ±3.4e38, got 1e+300",
            ),
            (
                "FP16",
                json!([0.5, 7e4]),
                "FP16 takes numbers within ±65504, got 70000.0",
            ),
            (
                "FP64",
                json!([1.5, 2, "x"]),
                "FP64 takes numbers, got \"x\"",
            ),
            (
                "INT8",
                json!([2.5, 1.5]),
                "INT8 takes integers from -128 to 127, got 2.5",
            ),
            ("BOOL", json!([1]), "BOOL takes true or false"),
            ("BYTES", json!([1]), "BYTES takes strings"),
            ("FP64", json!([null]), "FP64 takes numbers, got null"),
            ("FLOAT", json!([1]), "unknown datatype \"FLOAT\""),
        ] {
            let shape = [data.as_array().unwrap().len()];
            let err =
                decode(json!({"name": "x", "shape": shape, "datatype": datatype, "data": data}))
                    .unwrap_err();
            assert!(err.starts_with("input \"x\": "), "{err}");
            assert!(err.contains(says), "{datatype}: {err}");
        }
    }

    #[test]
    fn the_data_must_fill_the_shape_exactly() {
        let err = decode(json!({"name": "x", "shape": [2, 3], "datatype": "FP64", "data": [1, 2]}))
            .unwrap_err();
        assert!(
            err.contains("shape [2, 3] holds 6 values, the data has 2"),
            "{err}"
        );
        let err =
            decode(json!({"name": "x", "shape": [u64::MAX, 2], "datatype": "FP64", "data": []}))
                .unwrap_err();
        assert!(err.contains("too large"), "{err}");
    }

    #[test]
    fn rows_nest_by_shape() {
        let v: Vec<Value> = (1..=6).map(Value::from).collect();
        assert_eq!(nest(&v, &[2, 3]), json!([[1, 2, 3], [4, 5, 6]]));
        assert_eq!(nest(&v[..2], &[2]), json!([1, 2]));
    }
}
