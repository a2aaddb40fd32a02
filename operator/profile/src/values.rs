//! Views of arrow arrays that the accumulators and checks share: numbers as `f64` (NaN for
//! a null), text as `&str` with repeat counts.

use arrow::array::{Array, ArrowPrimitiveType, AsArray, PrimitiveArray};
use arrow::compute::CastOptions;
use arrow::datatypes::{DataType, TimeUnit};
use arrow::datatypes::{
    Date32Type, Date64Type, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use std::borrow::Cow;

const SECONDS_PER_DAY: f64 = 86_400.0;

/// The values of a numeric, decimal, timestamp (epoch seconds) or date (epoch seconds at
/// midnight) column as `f64`, one per row, NaN where the row is null. Float64 columns
/// without nulls are borrowed, not copied.
pub(crate) fn numbers<'a>(array: &'a dyn Array, buf: &'a mut Vec<f64>) -> Cow<'a, [f64]> {
    use DataType as D;
    match array.data_type() {
        D::Float64 => {
            let a = array.as_primitive::<Float64Type>();
            if a.null_count() == 0 {
                return Cow::Borrowed(a.values());
            }
            convert(a, buf, |v| v)
        }
        D::Float32 => convert(array.as_primitive::<Float32Type>(), buf, f64::from),
        D::Float16 => convert(array.as_primitive::<Float16Type>(), buf, f64::from),
        D::Int64 => convert(array.as_primitive::<Int64Type>(), buf, |v| v as f64),
        D::Int32 => convert(array.as_primitive::<Int32Type>(), buf, f64::from),
        D::Int16 => convert(array.as_primitive::<Int16Type>(), buf, f64::from),
        D::Int8 => convert(array.as_primitive::<Int8Type>(), buf, f64::from),
        D::UInt64 => convert(array.as_primitive::<UInt64Type>(), buf, |v| v as f64),
        D::UInt32 => convert(array.as_primitive::<UInt32Type>(), buf, f64::from),
        D::UInt16 => convert(array.as_primitive::<UInt16Type>(), buf, f64::from),
        D::UInt8 => convert(array.as_primitive::<UInt8Type>(), buf, f64::from),
        D::Timestamp(TimeUnit::Second, _) => {
            convert(array.as_primitive::<TimestampSecondType>(), buf, |v| {
                v as f64
            })
        }
        D::Timestamp(TimeUnit::Millisecond, _) => {
            convert(array.as_primitive::<TimestampMillisecondType>(), buf, |v| {
                v as f64 / 1e3
            })
        }
        D::Timestamp(TimeUnit::Microsecond, _) => {
            convert(array.as_primitive::<TimestampMicrosecondType>(), buf, |v| {
                v as f64 / 1e6
            })
        }
        D::Timestamp(TimeUnit::Nanosecond, _) => {
            convert(array.as_primitive::<TimestampNanosecondType>(), buf, |v| {
                v as f64 / 1e9
            })
        }
        D::Date32 => convert(array.as_primitive::<Date32Type>(), buf, |v| {
            f64::from(v) * SECONDS_PER_DAY
        }),
        D::Date64 => convert(array.as_primitive::<Date64Type>(), buf, |v| v as f64 / 1e3),
        _ => {
            // Decimals and anything else arrow can cast: rare enough to take the generic path.
            let options = CastOptions {
                safe: true,
                ..Default::default()
            };
            match arrow::compute::cast_with_options(array, &D::Float64, &options) {
                Ok(cast) => {
                    let a = cast.as_primitive::<Float64Type>();
                    convert(a, buf, |v| v)
                }
                Err(_) => {
                    buf.clear();
                    buf.resize(array.len(), f64::NAN);
                    Cow::Borrowed(buf.as_slice())
                }
            }
        }
    }
}

fn convert<'a, T: ArrowPrimitiveType>(
    array: &PrimitiveArray<T>,
    buf: &'a mut Vec<f64>,
    f: impl Fn(T::Native) -> f64,
) -> Cow<'a, [f64]> {
    buf.clear();
    buf.extend(array.values().iter().map(|&v| f(v)));
    if let Some(nulls) = array.nulls().filter(|n| n.null_count() > 0) {
        for (slot, valid) in buf.iter_mut().zip(nulls.iter()) {
            if !valid {
                *slot = f64::NAN;
            }
        }
    }
    Cow::Borrowed(buf.as_slice())
}

/// Calls `f(value, count)` for the non-null values of a text column: once per row for plain
/// arrays, once per dictionary entry (with its number of rows) for dictionary arrays.
pub(crate) fn each_text(array: &dyn Array, mut f: impl FnMut(&str, u64)) {
    use DataType as D;
    match array.data_type() {
        D::Utf8 => array
            .as_string::<i32>()
            .iter()
            .flatten()
            .for_each(|v| f(v, 1)),
        D::LargeUtf8 => array
            .as_string::<i64>()
            .iter()
            .flatten()
            .for_each(|v| f(v, 1)),
        D::Utf8View => array
            .as_string_view()
            .iter()
            .flatten()
            .for_each(|v| f(v, 1)),
        D::Dictionary(_, _) => {
            let dict = array.as_any_dictionary();
            let values = dict.values();
            let mut counts = vec![0u64; values.len()];
            let keys = dict.normalized_keys();
            match array.logical_nulls() {
                Some(nulls) => {
                    for (key, valid) in keys.iter().zip(nulls.iter()) {
                        if valid {
                            counts[*key] += 1;
                        }
                    }
                }
                None => keys.iter().for_each(|&key| counts[key] += 1),
            }
            for (i, &count) in counts.iter().enumerate() {
                if count > 0 {
                    text_at(values.as_ref(), i, |v| f(v, count));
                }
            }
        }
        _ => {}
    }
}

/// Calls `f` with the text of row `i` of a string array (of any string layout).
fn text_at(array: &dyn Array, i: usize, f: impl FnOnce(&str)) {
    if array.is_null(i) {
        return;
    }
    match array.data_type() {
        DataType::Utf8 => f(array.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => f(array.as_string::<i64>().value(i)),
        DataType::Utf8View => f(array.as_string_view().value(i)),
        _ => {}
    }
}

/// Every row as text (None for nulls), as `allowedValues` compares them: strings as they
/// are, other types in arrow's display form (`true`, `3`, `2.5`, ISO 8601 timestamps).
pub(crate) fn texts(array: &dyn Array) -> Vec<Option<String>> {
    let cast = match arrow::compute::cast(array, &DataType::Utf8) {
        Ok(cast) => cast,
        Err(_) => return vec![None; array.len()],
    };
    cast.as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        DictionaryArray, Float64Array, Int32Array, StringArray, TimestampMillisecondArray,
    };
    use arrow::datatypes::Int8Type;

    #[test]
    fn numbers_mark_nulls_as_nan_and_convert_units() {
        let mut buf = Vec::new();
        let ints = Int32Array::from(vec![Some(1), None, Some(-3)]);
        let got = numbers(&ints, &mut buf);
        assert_eq!(got[0], 1.0);
        assert!(got[1].is_nan());
        assert_eq!(got[2], -3.0);
        let ts = TimestampMillisecondArray::from(vec![1500]);
        assert_eq!(numbers(&ts, &mut buf)[0], 1.5);
        let floats = Float64Array::from(vec![0.5, 2.5]);
        assert!(matches!(numbers(&floats, &mut buf), Cow::Borrowed(_)));
    }

    #[test]
    fn dictionary_text_is_counted_once_per_entry() {
        let dict: DictionaryArray<Int8Type> = vec![Some("a"), Some("b"), None, Some("a")]
            .into_iter()
            .collect();
        let mut seen = Vec::new();
        each_text(&dict, |v, c| seen.push((v.to_string(), c)));
        seen.sort();
        assert_eq!(seen, vec![("a".to_string(), 2), ("b".to_string(), 1)]);
        let plain = StringArray::from(vec![Some("x"), None]);
        let mut n = 0;
        each_text(&plain, |_, c| n += c);
        assert_eq!(n, 1);
    }

    #[test]
    fn texts_are_arrow_display_forms() {
        let ints = Int32Array::from(vec![Some(3), None]);
        assert_eq!(texts(&ints), vec![Some("3".to_string()), None]);
    }
}
