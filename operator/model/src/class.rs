//! A classifier's class labels: the values of the target column, whatever their type.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// One class label as it appears in the data and in `model.json`: a JSON boolean, number or
/// string.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(untagged)]
pub enum Class {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Class {
    /// A float label; an integral one becomes an integer, so `1` in one file and `1.0` in
    /// another (csv type inference differs per file) are the same class. NaN is no label.
    pub fn from_f64(v: f64) -> Option<Class> {
        if v.is_nan() {
            None
        } else if v.fract() == 0.0 && v.abs() < 9.0e15 {
            // Below 2^53 every integer is exact in an f64, so the cast is lossless.
            Some(Class::Int(v as i64))
        } else {
            Some(Class::Float(v))
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Class::Bool(_) => 0,
            Class::Int(_) | Class::Float(_) => 1,
            Class::Str(_) => 2,
        }
    }
}

/// Booleans before numbers before strings; numbers by value, strings by bytes. This order
/// fixes the class indices, and makes the positive class of a binary classifier the greater
/// label (`true`, `1`, `"yes"` over `"no"`).
impl Ord for Class {
    fn cmp(&self, other: &Self) -> Ordering {
        use Class::*;
        match (self, other) {
            (Bool(a), Bool(b)) => a.cmp(b),
            (Int(a), Int(b)) => a.cmp(b),
            (Int(a), Float(b)) => (*a as f64).total_cmp(b),
            (Float(a), Int(b)) => a.total_cmp(&(*b as f64)),
            (Float(a), Float(b)) => a.total_cmp(b),
            (Str(a), Str(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for Class {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Class {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Class {}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Class::Bool(b) => write!(f, "{b}"),
            Class::Int(i) => write!(f, "{i}"),
            Class::Float(x) => write!(f, "{x}"),
            Class::Str(s) => write!(f, "{s:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_sort_by_kind_then_value() {
        let mut v = vec![
            Class::Str("b".into()),
            Class::Float(2.5),
            Class::Int(3),
            Class::Bool(true),
            Class::Str("a".into()),
            Class::Int(-1),
            Class::Bool(false),
        ];
        v.sort();
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"[false,true,-1,2.5,3,"a","b"]"#
        );
    }

    #[test]
    fn integral_floats_are_integers_and_nan_is_no_label() {
        assert_eq!(Class::from_f64(1.0), Some(Class::Int(1)));
        assert!(matches!(Class::from_f64(1.0), Some(Class::Int(1))));
        assert!(matches!(Class::from_f64(0.5), Some(Class::Float(_))));
        assert_eq!(Class::from_f64(f64::NAN), None);
    }

    #[test]
    fn labels_read_back_from_json_as_written() {
        let v: Vec<Class> = serde_json::from_str(r#"[true, 2, 2.5, "x"]"#).unwrap();
        assert!(matches!(
            v.as_slice(),
            [
                Class::Bool(true),
                Class::Int(2),
                Class::Float(_),
                Class::Str(_)
            ]
        ));
    }
}
