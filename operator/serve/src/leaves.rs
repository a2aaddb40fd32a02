//! A request tensor's `data` as JSON spells it (flat, or nested arrays as some clients send),
//! read straight into its scalars in row-major order; what each must be (its datatype's
//! range) is checked by the tensor.
//!
//! Reading it into a `serde_json::Value` tree first and walking it was a tenth of a small
//! request's time (a node per value, then a list of references to them); each scalar here is
//! read once, into a plain `f64` while the data is all floats (a batch of 100 rows: 7 % less
//! time than a small enum per value), else into a small enum. (Keeping `data` as raw text and
//! scanning its numbers with the standard library's parsers was slower still: serde_json
//! checks the text once to skip it.)

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, de::value::MapAccessDeserializer};
use serde_json::Value;
use std::fmt;

/// One scalar of `data`, as JSON wrote it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Leaf {
    Bool(bool),
    /// A negative integer (JSON's non-negative ones are [`Leaf::UInt`]).
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Box<str>),
    Null,
    /// An object where a scalar belongs: never a value of any datatype, kept to be named.
    Object(Box<Value>),
}

impl Leaf {
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Leaf::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// An integer within `i64` (as `serde_json::Value::as_i64`).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Leaf::Int(i) => Some(*i),
            Leaf::UInt(u) => i64::try_from(*u).ok(),
            _ => None,
        }
    }

    /// A non-negative integer (as `serde_json::Value::as_u64`).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Leaf::UInt(u) => Some(*u),
            _ => None,
        }
    }

    /// Any number (as `serde_json::Value::as_f64`).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Leaf::Int(i) => Some(*i as f64),
            Leaf::UInt(u) => Some(*u as f64),
            Leaf::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Leaf::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// As JSON writes it, for error messages.
impl fmt::Display for Leaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Leaf::Bool(b) => write!(f, "{b}"),
            Leaf::Int(i) => write!(f, "{i}"),
            Leaf::UInt(u) => write!(f, "{u}"),
            Leaf::Float(x) => write!(f, "{}", Value::from(*x)),
            Leaf::Str(s) => write!(f, "{}", Value::from(&**s)),
            Leaf::Null => f.write_str("null"),
            Leaf::Object(v) => write!(f, "{v}"),
        }
    }
}

/// The scalars of a tensor's `data`, nested arrays read through: plain floats while every
/// one is a number written with a fraction or an exponent (what clients send for a floating-
/// point tensor, which then needs no second pass), each as JSON wrote it otherwise.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Leaves {
    Floats(Vec<f64>),
    Mixed(Vec<Leaf>),
}

impl Default for Leaves {
    fn default() -> Self {
        Leaves::Floats(Vec::new())
    }
}

impl<'de> Deserialize<'de> for Leaves {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Room for a row of a typical model without growing (each growth is a copy).
        let mut leaves = Leaves::Floats(Vec::with_capacity(64));
        Into(&mut leaves).deserialize(deserializer)?;
        Ok(leaves)
    }
}

impl Leaves {
    /// The scalars of JSON values already parsed (KServe v1's instances), in order.
    pub fn of(values: &[Value]) -> Leaves {
        let mut leaves = Leaves::default();
        for value in values {
            // A `Value` is always well-formed JSON: reading it cannot fail.
            let _ = Into(&mut leaves).deserialize(value);
        }
        leaves
    }

    pub fn len(&self) -> usize {
        match self {
            Leaves::Floats(v) => v.len(),
            Leaves::Mixed(v) => v.len(),
        }
    }

    /// Every scalar, as JSON wrote it.
    pub fn into_leaves(self) -> Vec<Leaf> {
        match self {
            Leaves::Floats(v) => v.into_iter().map(Leaf::Float).collect(),
            Leaves::Mixed(v) => v,
        }
    }

    fn push_float(&mut self, x: f64) {
        match self {
            Leaves::Floats(v) => v.push(x),
            Leaves::Mixed(v) => v.push(Leaf::Float(x)),
        }
    }

    fn push(&mut self, leaf: Leaf) {
        if let Leaves::Floats(_) = self {
            *self = Leaves::Mixed(std::mem::take(self).into_leaves());
        }
        if let Leaves::Mixed(v) = self {
            v.push(leaf);
        }
    }
}

/// Appends the scalars of one JSON value (an array's, element by element) to a list.
struct Into<'a>(&'a mut Leaves);

impl<'de> DeserializeSeed<'de> for Into<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Into<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a tensor's values: scalars or (nested) arrays of them")
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.0.push(Leaf::Bool(v));
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.push(match u64::try_from(v) {
            Ok(u) => Leaf::UInt(u),
            Err(_) => Leaf::Int(v),
        });
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.push(Leaf::UInt(v));
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.push_float(v);
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.push(Leaf::Str(v.into()));
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.push(Leaf::Null);
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        self.0.push(Leaf::Null);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Into(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let object = Value::deserialize(MapAccessDeserializer::new(map))?;
        self.0.push(Leaf::Object(Box::new(object)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(json: &str) -> Vec<Leaf> {
        serde_json::from_str::<Leaves>(json).unwrap().into_leaves()
    }

    #[test]
    fn nested_arrays_are_read_through_in_row_major_order() {
        assert_eq!(
            leaves("[[1, -2], [3.5, [true]], \"x\", null]"),
            vec![
                Leaf::UInt(1),
                Leaf::Int(-2),
                Leaf::Float(3.5),
                Leaf::Bool(true),
                Leaf::Str("x".into()),
                Leaf::Null
            ]
        );
        assert_eq!(leaves("7"), vec![Leaf::UInt(7)]);
        assert_eq!(leaves("[[], []]"), vec![]);
    }

    #[test]
    fn floats_stay_plain_until_another_scalar_comes() {
        let floats = serde_json::from_str::<Leaves>("[[1.5, -2e3], [0.25]]").unwrap();
        assert_eq!(floats, Leaves::Floats(vec![1.5, -2e3, 0.25]));
        let mixed = serde_json::from_str::<Leaves>("[1.5, 2, 0.25]").unwrap();
        assert_eq!(
            mixed,
            Leaves::Mixed(vec![Leaf::Float(1.5), Leaf::UInt(2), Leaf::Float(0.25)])
        );
        assert_eq!(mixed.len(), 3);
    }

    #[test]
    fn scalars_convert_and_print_as_json_values_do() {
        for json in [
            "1",
            "-1",
            "18446744073709551615",
            "-9223372036854775808",
            "1.5",
            "1e300",
            "true",
            "\"a\\\"b\"",
            "null",
            "{\"k\":[1]}",
        ] {
            let value: Value = serde_json::from_str(json).unwrap();
            let [leaf] = &leaves(json)[..] else {
                panic!("{json}: one leaf")
            };
            assert_eq!(leaf.as_i64(), value.as_i64(), "{json}");
            assert_eq!(leaf.as_u64(), value.as_u64(), "{json}");
            assert_eq!(leaf.as_f64(), value.as_f64(), "{json}");
            assert_eq!(leaf.as_bool(), value.as_bool(), "{json}");
            assert_eq!(leaf.as_str(), value.as_str(), "{json}");
            assert_eq!(leaf.to_string(), value.to_string(), "{json}");
        }
    }

    #[test]
    fn malformed_data_is_a_json_error_at_its_place() {
        let e = serde_json::from_str::<Leaves>("[1, [2,]").unwrap_err();
        assert!(e.to_string().contains("column"), "{e}");
    }
}
