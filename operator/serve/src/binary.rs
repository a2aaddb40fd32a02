//! The Open Inference Protocol's binary tensor data extension (as KServe and Triton serve
//! it, and `tritonclient` uses by default): a request or response is a JSON header of
//! `Inference-Header-Content-Length` bytes followed by the raw data of the tensors that carry
//! `parameters.binary_data_size` in place of `data`, in their order. Numbers are little-endian
//! and row-major; a BOOL is one byte; a BYTES element is a 4-byte little-endian length and
//! its bytes.

use crate::errors::ApiError;
use crate::tensor::{Data, Datatype, Values};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse as _, Response};

/// The header giving the length of the JSON part of a body. (A name made once: looking a
/// header up by a string parses and hashes the string every time.)
pub(crate) const HEADER_LENGTH: HeaderName =
    HeaderName::from_static("inference-header-content-length");

/// The extension's name in the server metadata.
pub(crate) const EXTENSION: &str = "binary_tensor_data";

/// A body split into its JSON header and the binary data after it (empty without the
/// extension's header).
pub(crate) fn split<'a>(
    headers: &HeaderMap,
    body: &'a [u8],
) -> Result<(&'a [u8], Tail<'a>), ApiError> {
    let Some(value) = headers.get(&HEADER_LENGTH) else {
        return Ok((body, Tail::empty()));
    };
    let length = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "header Inference-Header-Content-Length: {value:?} is not a length in bytes"
            ))
        })?;
    if length > body.len() {
        return Err(ApiError::bad_request(format!(
            "header Inference-Header-Content-Length: {length} bytes of JSON, but the body has {}",
            body.len()
        )));
    }
    let (json, rest) = body.split_at(length);
    Ok((json, Tail(rest)))
}

/// The binary data not yet taken by a tensor.
#[derive(Debug)]
pub(crate) struct Tail<'a>(&'a [u8]);

impl<'a> Tail<'a> {
    /// No binary data: a plain JSON request.
    pub fn empty() -> Self {
        Tail(&[])
    }

    /// The next `size` bytes, for the tensor `name`.
    pub fn take(&mut self, name: &str, size: u64) -> Result<&'a [u8], String> {
        let available = self.0.len();
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s <= available)
            .ok_or_else(|| {
                format!(
                    "binary_data_size {size} runs past the end of the body ({available} bytes of binary data left for {name:?})"
                )
            })?;
        let (taken, rest) = self.0.split_at(size);
        self.0 = rest;
        Ok(taken)
    }

    /// An error if bytes are left that no tensor declared.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.0.len() {
            0 => Ok(()),
            n => Err(ApiError::bad_request(format!(
                "{n} bytes of binary data follow the tensors' binary_data_size"
            ))),
        }
    }
}

/// The values of `count` elements of `datatype` in `bytes`.
pub(crate) fn decode(datatype: Datatype, count: usize, bytes: &[u8]) -> Result<Values, String> {
    if datatype == Datatype::Bytes {
        return decode_strings(count, bytes);
    }
    let width = width(datatype);
    if Some(bytes.len()) != count.checked_mul(width) {
        return Err(format!(
            "binary_data_size is {} bytes; the shape holds {count} {} values of {width} bytes",
            bytes.len(),
            datatype.name()
        ));
    }
    let chunks = bytes.chunks_exact(width);
    Ok(match datatype {
        Datatype::Bool => Values::Bool(
            bytes
                .iter()
                .map(|b| match b {
                    0 => Ok(false),
                    1 => Ok(true),
                    other => Err(format!("a BOOL byte is 0 or 1, got {other}")),
                })
                .collect::<Result<_, _>>()?,
        ),
        Datatype::I8 => Values::Int(bytes.iter().map(|b| i64::from(*b as i8)).collect()),
        Datatype::I16 => Values::Int(
            chunks
                .map(|c| i16::from_le_bytes(array(c)).into())
                .collect(),
        ),
        Datatype::I32 => Values::Int(
            chunks
                .map(|c| i32::from_le_bytes(array(c)).into())
                .collect(),
        ),
        Datatype::I64 => Values::Int(chunks.map(|c| i64::from_le_bytes(array(c))).collect()),
        Datatype::U8 => Values::UInt(bytes.iter().map(|b| u64::from(*b)).collect()),
        Datatype::U16 => Values::UInt(
            chunks
                .map(|c| u16::from_le_bytes(array(c)).into())
                .collect(),
        ),
        Datatype::U32 => Values::UInt(
            chunks
                .map(|c| u32::from_le_bytes(array(c)).into())
                .collect(),
        ),
        Datatype::U64 => Values::UInt(chunks.map(|c| u64::from_le_bytes(array(c))).collect()),
        Datatype::F16 => Values::Float(
            chunks
                .map(|c| half::f16::from_le_bytes(array(c)).to_f64())
                .collect(),
        ),
        Datatype::F32 => Values::Float(
            chunks
                .map(|c| f32::from_le_bytes(array(c)).into())
                .collect(),
        ),
        Datatype::F64 => Values::Float(chunks.map(|c| f64::from_le_bytes(array(c))).collect()),
        Datatype::Bytes => unreachable!("decoded above"),
    })
}

/// BYTES elements: each a 4-byte little-endian length and that many bytes of UTF-8.
fn decode_strings(count: usize, mut bytes: &[u8]) -> Result<Values, String> {
    let mut strings = Vec::with_capacity(count.min(bytes.len() / 4));
    for i in 0..count {
        let Some((length, rest)) = bytes.split_first_chunk::<4>() else {
            return Err(format!("BYTES element {i} has no 4-byte length"));
        };
        let length = u32::from_le_bytes(*length) as usize;
        if length > rest.len() {
            return Err(format!(
                "BYTES element {i} declares {length} bytes, {} are left",
                rest.len()
            ));
        }
        let (s, rest) = rest.split_at(length);
        strings.push(
            String::from_utf8(s.to_vec())
                .map_err(|_| format!("BYTES element {i} is not UTF-8 text"))?,
        );
        bytes = rest;
    }
    if !bytes.is_empty() {
        return Err(format!(
            "{} bytes follow the {count} BYTES elements the shape holds",
            bytes.len()
        ));
    }
    Ok(Values::Bytes(strings))
}

pub(crate) fn width(datatype: Datatype) -> usize {
    match datatype {
        Datatype::Bool | Datatype::I8 | Datatype::U8 => 1,
        Datatype::I16 | Datatype::U16 | Datatype::F16 => 2,
        Datatype::I32 | Datatype::U32 | Datatype::F32 => 4,
        Datatype::I64 | Datatype::U64 | Datatype::F64 => 8,
        Datatype::Bytes => 0,
    }
}

fn array<const N: usize>(chunk: &[u8]) -> [u8; N] {
    chunk
        .try_into()
        .expect("chunks_exact gives chunks of the width")
}

/// A response tensor's data as the extension (and gRPC's raw contents) write it: each element
/// little-endian in the width of the output's `datatype` (an INT32 output's elements are
/// 4 bytes, though held as i64 here).
pub(crate) fn encode(datatype: &str, data: &Data) -> Vec<u8> {
    let width = Datatype::parse(datatype).map(width);
    match data {
        Data::Bool(v) => v.iter().map(|b| u8::from(*b)).collect(),
        Data::I64(v) => match width {
            Some(1) => v.iter().map(|x| *x as i8 as u8).collect(),
            Some(2) => v.iter().flat_map(|x| (*x as i16).to_le_bytes()).collect(),
            Some(4) => v.iter().flat_map(|x| (*x as i32).to_le_bytes()).collect(),
            _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        },
        Data::U64(v) => match width {
            Some(1) => v.iter().map(|x| *x as u8).collect(),
            Some(2) => v.iter().flat_map(|x| (*x as u16).to_le_bytes()).collect(),
            Some(4) => v.iter().flat_map(|x| (*x as u32).to_le_bytes()).collect(),
            _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        },
        Data::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::Bytes(v) => v
            .iter()
            .flat_map(|s| {
                let length = u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes();
                length.into_iter().chain(s.bytes())
            })
            .collect(),
    }
}

/// A 200 response of `header` as JSON followed by `blobs`, with the extension's header.
pub(crate) fn response(
    header: &impl serde::Serialize,
    blobs: &[Vec<u8>],
) -> Result<Response, ApiError> {
    let mut body = serde_json::to_vec(header)
        .map_err(|e| ApiError::internal(format!("encoding the response: {e}")))?;
    let length = body.len();
    body.reserve(blobs.iter().map(Vec::len).sum());
    blobs.iter().for_each(|b| body.extend_from_slice(b));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (HEADER_LENGTH, length.to_string()),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(length: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER_LENGTH, HeaderValue::from_str(length).unwrap());
        h
    }

    #[test]
    fn the_header_splits_json_from_data_and_without_it_all_is_json() {
        let body = b"{\"a\":1}\x01\x02";
        let (json, mut tail) = split(&headers("7"), body).unwrap();
        assert_eq!(json, b"{\"a\":1}");
        assert_eq!(tail.take("x", 2).unwrap(), [1, 2]);
        assert!(tail.finish().is_ok());
        let (json, tail) = split(&HeaderMap::new(), body).unwrap();
        assert_eq!(json, body);
        assert!(tail.finish().is_ok());
        let e = split(&headers("70"), body).unwrap_err();
        assert!(
            e.message.contains("70 bytes of JSON, but the body has 9"),
            "{e:?}"
        );
        assert!(split(&headers("seven"), body).is_err());
    }

    #[test]
    fn data_past_the_end_or_left_over_is_refused() {
        let (_, mut tail) = split(&headers("0"), b"\x01\x02\x03").unwrap();
        let e = tail.take("x", 4).unwrap_err();
        assert!(e.contains("runs past the end"), "{e}");
        tail.take("x", 2).unwrap();
        let e = tail.finish().unwrap_err();
        assert!(e.message.contains("1 bytes of binary data follow"), "{e:?}");
    }

    #[test]
    fn numbers_are_little_endian_and_sized_by_their_datatype() {
        // As tritonclient sends np.array([0.0, 0.1, 0.2], dtype=float32).
        let fp32 = [
            0x00, 0x00, 0x00, 0x00, 0xcd, 0xcc, 0xcc, 0x3d, 0xcd, 0xcc, 0x4c, 0x3e,
        ];
        assert_eq!(
            decode(Datatype::F32, 3, &fp32).unwrap(),
            Values::Float(vec![0.0, f64::from(0.1f32), f64::from(0.2f32)])
        );
        let e = decode(Datatype::F32, 4, &fp32).unwrap_err();
        assert!(
            e.contains("the shape holds 4 FP32 values of 4 bytes"),
            "{e}"
        );
        assert_eq!(
            decode(Datatype::I64, 1, &(-3i64).to_le_bytes()).unwrap(),
            Values::Int(vec![-3])
        );
        assert_eq!(
            decode(Datatype::I8, 1, &[0xff]).unwrap(),
            Values::Int(vec![-1])
        );
        assert_eq!(
            decode(Datatype::U16, 1, &[0xff, 0xff]).unwrap(),
            Values::UInt(vec![65535])
        );
        assert_eq!(
            decode(Datatype::F16, 1, &[0x00, 0x3c]).unwrap(),
            Values::Float(vec![1.0])
        );
        assert_eq!(
            decode(Datatype::Bool, 2, &[1, 0]).unwrap(),
            Values::Bool(vec![true, false])
        );
        assert!(decode(Datatype::Bool, 1, &[2]).is_err());
    }

    #[test]
    fn strings_are_length_prefixed_and_round_trip() {
        let data = Data::Bytes(vec!["yes".into(), String::new(), "né".into()]);
        let bytes = encode("BYTES", &data);
        assert_eq!(&bytes[..7], [3, 0, 0, 0, b'y', b'e', b's']);
        assert_eq!(
            decode(Datatype::Bytes, 3, &bytes).unwrap(),
            Values::Bytes(vec!["yes".into(), String::new(), "né".into()])
        );
        assert!(
            decode(Datatype::Bytes, 4, &bytes).is_err(),
            "one element short"
        );
        assert!(
            decode(Datatype::Bytes, 2, &bytes).is_err(),
            "bytes left over"
        );
        assert!(
            decode(Datatype::Bytes, 1, &[1, 0, 0, 0, 0xff]).is_err(),
            "not UTF-8"
        );
    }

    #[test]
    fn response_data_is_written_as_requests_are_read() {
        let probabilities = Data::F32(vec![0.75, 0.25]);
        assert_eq!(
            encode("FP32", &probabilities),
            [0x00, 0x00, 0x40, 0x3f, 0x00, 0x00, 0x80, 0x3e]
        );
        assert_eq!(encode("INT64", &Data::I64(vec![1])), 1i64.to_le_bytes());
        assert_eq!(encode("BOOL", &Data::Bool(vec![true, false])), [1, 0]);
        // Narrower integers in their own width, as a client decodes them.
        let int32 = encode("INT32", &Data::I64(vec![-2, 3]));
        assert_eq!(int32, [0xfe, 0xff, 0xff, 0xff, 3, 0, 0, 0]);
        assert_eq!(
            decode(Datatype::I32, 2, &int32).unwrap(),
            Values::Int(vec![-2, 3])
        );
        assert_eq!(encode("UINT8", &Data::U64(vec![7, 255])), [7, 255]);
    }
}
