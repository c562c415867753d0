//! Tensors of Open Inference Protocol v2 requests: datatypes, shapes, and data read from the
//! JSON form (nested or flat arrays) or from the binary tensor data extension.

use crate::failure::Failure;
use base64::Engine;
use serde_json::Value;

/// The data of one input tensor, flat in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// BYTES elements: strings in the JSON form, length-prefixed bytes in binary.
    Bytes(Vec<Vec<u8>>),
    Fp32(Vec<f32>),
    Int64(Vec<i64>),
}

impl TensorData {
    pub fn len(&self) -> usize {
        match self {
            TensorData::Bytes(v) => v.len(),
            TensorData::Fp32(v) => v.len(),
            TensorData::Int64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn datatype(&self) -> &'static str {
        match self {
            TensorData::Bytes(_) => "BYTES",
            TensorData::Fp32(_) => "FP32",
            TensorData::Int64(_) => "INT64",
        }
    }
}

/// The datatypes a request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datatype {
    Bytes,
    Fp32,
    Int64,
}

impl Datatype {
    /// `name` as a supported datatype, or a 400 naming it and the supported ones.
    pub fn parse(name: &str, input: &str) -> Result<Datatype, Failure> {
        match name {
            "BYTES" => Ok(Datatype::Bytes),
            "FP32" => Ok(Datatype::Fp32),
            "INT64" => Ok(Datatype::Int64),
            other => Err(Failure::bad(format!(
                "input '{input}': datatype {other} is not served (BYTES, FP32 or INT64)"
            ))),
        }
    }
}

/// Number of elements of `shape`, or a 400 when a dimension is negative or the product overflows.
pub fn element_count(shape: &[i64], input: &str) -> Result<usize, Failure> {
    shape.iter().try_fold(1usize, |n, &d| {
        let d = usize::try_from(d).map_err(|_| {
            Failure::bad(format!(
                "input '{input}': shape {shape:?} has a negative dimension"
            ))
        })?;
        n.checked_mul(d)
            .ok_or_else(|| Failure::bad(format!("input '{input}': shape {shape:?} is too large")))
    })
}

/// Data of the JSON form: `data` flat or nested to any depth, each element of `datatype`.
pub fn from_json(data: &Value, datatype: Datatype, input: &str) -> Result<TensorData, Failure> {
    let mut flat = Vec::new();
    flatten(data, &mut flat);
    let bad = |i: usize, v: &Value, what: &str| {
        Failure::bad(format!("input '{input}': element {i} is {v}, not {what}"))
    };
    Ok(match datatype {
        Datatype::Bytes => TensorData::Bytes(
            flat.iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str()
                        .map(|s| s.as_bytes().to_vec())
                        .ok_or_else(|| bad(i, v, "a string"))
                })
                .collect::<Result<_, _>>()?,
        ),
        Datatype::Fp32 => TensorData::Fp32(
            flat.iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_f64()
                        .map(|x| x as f32)
                        .ok_or_else(|| bad(i, v, "a number"))
                })
                .collect::<Result<_, _>>()?,
        ),
        Datatype::Int64 => TensorData::Int64(
            flat.iter()
                .enumerate()
                .map(|(i, v)| v.as_i64().ok_or_else(|| bad(i, v, "an integer")))
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

/// Data of the binary extension: `bytes` holds `count` elements of `datatype` (BYTES: each a
/// 4-byte little-endian length and that many bytes; numbers little-endian).
pub fn from_binary(
    bytes: &[u8],
    datatype: Datatype,
    count: usize,
    input: &str,
) -> Result<TensorData, Failure> {
    let size_error = |want: usize| {
        Failure::bad(format!(
            "input '{input}': {} bytes of binary data, {want} expected for {count} elements",
            bytes.len()
        ))
    };
    Ok(match datatype {
        Datatype::Fp32 => {
            if bytes.len() != count * 4 {
                return Err(size_error(count * 4));
            }
            TensorData::Fp32(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            )
        }
        Datatype::Int64 => {
            if bytes.len() != count * 8 {
                return Err(size_error(count * 8));
            }
            TensorData::Int64(
                bytes
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            )
        }
        Datatype::Bytes => {
            let mut out = Vec::with_capacity(count.min(bytes.len() / 4));
            let mut rest = bytes;
            while !rest.is_empty() {
                let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                    return Err(Failure::bad(format!(
                        "input '{input}': BYTES element {} has a truncated length prefix",
                        out.len()
                    )));
                };
                let len = u32::from_le_bytes(*len) as usize;
                if tail.len() < len {
                    return Err(Failure::bad(format!(
                        "input '{input}': BYTES element {} claims {len} bytes, {} left",
                        out.len(),
                        tail.len()
                    )));
                }
                out.push(tail[..len].to_vec());
                rest = &tail[len..];
            }
            TensorData::Bytes(out)
        }
    })
}

/// An encoded image given as a BYTES element of the JSON form: base64 text (JSON strings
/// cannot hold raw bytes). Binary-extension elements are taken as they are.
pub fn decode_base64(element: &[u8], index: usize, input: &str) -> Result<Vec<u8>, Failure> {
    base64::engine::general_purpose::STANDARD
        .decode(element)
        .map_err(|e| Failure::bad(format!("input '{input}': element {index} is not base64 ({e}); images in the JSON form are base64 strings")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_and_flat_json_data_give_the_same_elements() {
        let nested = from_json(&json!([[1.0, 2.0], [3.0, 4.0]]), Datatype::Fp32, "x").unwrap();
        let flat = from_json(&json!([1.0, 2.0, 3.0, 4.0]), Datatype::Fp32, "x").unwrap();
        assert_eq!(nested, flat);
        assert_eq!(nested.len(), 4);
    }

    #[test]
    fn an_element_of_the_wrong_type_is_named() {
        let e = from_json(&json!([1, "two"]), Datatype::Int64, "ids").unwrap_err();
        assert!(
            e.to_string().contains("element 1") && e.to_string().contains("ids"),
            "{e}"
        );
        assert!(from_json(&json!([1.5]), Datatype::Int64, "ids").is_err());
        assert!(from_json(&json!([1]), Datatype::Bytes, "t").is_err());
    }

    #[test]
    fn unsupported_datatypes_are_named() {
        let e = Datatype::parse("FP16", "x").unwrap_err();
        assert!(e.to_string().contains("FP16"), "{e}");
    }

    #[test]
    fn shapes_count_elements_and_refuse_negative_dimensions() {
        assert_eq!(element_count(&[2, 3, 4], "x").unwrap(), 24);
        assert_eq!(element_count(&[], "x").unwrap(), 1);
        assert!(element_count(&[-1, 3], "x").is_err());
        assert!(element_count(&[i64::MAX, i64::MAX], "x").is_err());
    }

    #[test]
    fn binary_bytes_elements_are_length_prefixed() {
        let mut raw = Vec::new();
        for s in [&b"ab"[..], b"", b"xyz"] {
            raw.extend((s.len() as u32).to_le_bytes());
            raw.extend(s);
        }
        let d = from_binary(&raw, Datatype::Bytes, 3, "t").unwrap();
        assert_eq!(
            d,
            TensorData::Bytes(vec![b"ab".to_vec(), vec![], b"xyz".to_vec()])
        );
        assert!(from_binary(&raw[..raw.len() - 1], Datatype::Bytes, 3, "t").is_err());
        assert!(from_binary(&raw[..2], Datatype::Bytes, 1, "t").is_err());
    }

    #[test]
    fn binary_numbers_must_fill_the_shape_exactly() {
        let raw: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(
            from_binary(&raw, Datatype::Fp32, 2, "x").unwrap(),
            TensorData::Fp32(vec![1.5, -2.0])
        );
        assert!(from_binary(&raw, Datatype::Fp32, 3, "x").is_err());
        let raw: Vec<u8> = 7i64.to_le_bytes().to_vec();
        assert_eq!(
            from_binary(&raw, Datatype::Int64, 1, "x").unwrap(),
            TensorData::Int64(vec![7])
        );
    }

    #[test]
    fn json_images_are_base64_and_other_text_is_refused() {
        assert_eq!(decode_base64(b"aGk=", 0, "img").unwrap(), b"hi");
        let e = decode_base64(b"not base64!", 2, "img").unwrap_err();
        assert!(e.to_string().contains("element 2"), "{e}");
    }
}
