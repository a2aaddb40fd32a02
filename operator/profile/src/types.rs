//! How arrow's physical types map onto the logical column types expectations speak of.

use arrow::datatypes::DataType;
use ciclo_core::expectations::ColumnType;

/// The logical type of an arrow column, or `None` for types ciclo does not profile
/// (binary, nested, decimal-free durations...).
pub(crate) fn logical(data_type: &DataType) -> Option<ColumnType> {
    use DataType as D;
    match data_type {
        D::Int8 | D::Int16 | D::Int32 | D::Int64 => Some(ColumnType::Integer),
        D::UInt8 | D::UInt16 | D::UInt32 | D::UInt64 => Some(ColumnType::Integer),
        D::Float16 | D::Float32 | D::Float64 => Some(ColumnType::Float),
        D::Decimal32(..) | D::Decimal64(..) | D::Decimal128(..) | D::Decimal256(..) => {
            Some(ColumnType::Float)
        }
        D::Utf8 | D::LargeUtf8 | D::Utf8View => Some(ColumnType::String),
        D::Dictionary(_, value) if logical(value) == Some(ColumnType::String) => {
            Some(ColumnType::String)
        }
        D::Boolean => Some(ColumnType::Boolean),
        D::Timestamp(..) | D::Date32 | D::Date64 => Some(ColumnType::Timestamp),
        _ => None,
    }
}

/// The name users write in `spec.schema` for a type.
pub(crate) fn name(column_type: ColumnType) -> &'static str {
    match column_type {
        ColumnType::Integer => "integer",
        ColumnType::Float => "float",
        ColumnType::String => "string",
        ColumnType::Boolean => "boolean",
        ColumnType::Timestamp => "timestamp",
    }
}

/// Whether a column of type `found` meets an expectation of type `expected`: a float column
/// may hold integers, not the other way round.
pub(crate) fn satisfies(found: ColumnType, expected: ColumnType) -> bool {
    found == expected || (expected == ColumnType::Float && found == ColumnType::Integer)
}

/// The type two files' columns of the same name unify to, if they can.
pub(crate) fn unify(a: ColumnType, b: ColumnType) -> Option<ColumnType> {
    match (a, b) {
        _ if a == b => Some(a),
        (ColumnType::Integer, ColumnType::Float) | (ColumnType::Float, ColumnType::Integer) => {
            Some(ColumnType::Float)
        }
        _ => None,
    }
}

/// Whether values of this type are summarised by moments, quantiles and a histogram.
pub(crate) fn is_numeric(column_type: ColumnType) -> bool {
    matches!(
        column_type,
        ColumnType::Integer | ColumnType::Float | ColumnType::Timestamp
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::TimeUnit;

    #[test]
    fn arrow_types_map_to_logical_types() {
        assert_eq!(logical(&DataType::UInt16), Some(ColumnType::Integer));
        assert_eq!(logical(&DataType::Float32), Some(ColumnType::Float));
        assert_eq!(logical(&DataType::Utf8View), Some(ColumnType::String));
        let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        assert_eq!(logical(&dict), Some(ColumnType::String));
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        assert_eq!(logical(&ts), Some(ColumnType::Timestamp));
        assert_eq!(logical(&DataType::Date32), Some(ColumnType::Timestamp));
        assert_eq!(logical(&DataType::Binary), None);
    }

    #[test]
    fn float_accepts_integer_but_not_the_reverse() {
        assert!(satisfies(ColumnType::Integer, ColumnType::Float));
        assert!(!satisfies(ColumnType::Float, ColumnType::Integer));
        assert!(!satisfies(ColumnType::String, ColumnType::Integer));
    }

    #[test]
    fn integer_and_float_unify_to_float_and_nothing_else_unifies() {
        assert_eq!(
            unify(ColumnType::Integer, ColumnType::Float),
            Some(ColumnType::Float)
        );
        assert_eq!(unify(ColumnType::String, ColumnType::Integer), None);
        assert_eq!(
            unify(ColumnType::Boolean, ColumnType::Boolean),
            Some(ColumnType::Boolean)
        );
    }
}
