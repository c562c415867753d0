//! `POST /v2/models/{name}/infer` request bodies: the JSON form, and the binary tensor data
//! extension (`Inference-Header-Content-Length`: a JSON header, then each input's bytes in order)
//! that `tritonclient` uses by default.

use super::tensor::{self, Datatype, TensorData};
use crate::failure::Failure;
use serde_json::{Map, Value};

/// One input tensor of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct InputTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: TensorData,
    /// Sent in the binary extension (BYTES elements are raw bytes) rather than as JSON.
    pub binary: bool,
}

/// An output the request asks for; `classification`: answer the top k classes as BYTES.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestedOutput {
    pub name: String,
    pub classification: Option<usize>,
}

/// A checked inference request.
#[derive(Debug, Clone, PartialEq)]
pub struct InferRequest {
    pub id: Option<String>,
    pub inputs: Vec<InputTensor>,
    /// Empty: every output of the model.
    pub outputs: Vec<RequestedOutput>,
    /// The request's own deadline (`parameters.timeout`, microseconds, as Triton reads it).
    pub timeout_us: Option<u64>,
}

/// Parses `body`; `header_length` is the `Inference-Header-Content-Length` header when present.
pub fn parse(body: &[u8], header_length: Option<usize>) -> Result<InferRequest, Failure> {
    let (header, mut binary) = match header_length {
        None => (body, &[][..]),
        Some(n) if n <= body.len() => body.split_at(n),
        Some(n) => {
            return Err(Failure::bad(format!(
                "Inference-Header-Content-Length is {n} but the body has {} bytes",
                body.len()
            )))
        }
    };
    let value: Value = serde_json::from_slice(header)
        .map_err(|e| Failure::bad(format!("the request is not valid JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(Failure::bad("the request must be a JSON object"));
    };
    let id = match fields.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(Failure::bad("'id' must be a string")),
    };
    let Some(Value::Array(raw_inputs)) = fields.get("inputs") else {
        return Err(Failure::bad("'inputs' must be an array of tensors"));
    };
    if raw_inputs.is_empty() {
        return Err(Failure::bad("'inputs' is empty"));
    }
    let mut inputs = Vec::with_capacity(raw_inputs.len());
    for (i, raw) in raw_inputs.iter().enumerate() {
        inputs.push(parse_input(raw, i, &mut binary)?);
    }
    if !binary.is_empty() {
        return Err(Failure::bad(format!(
            "{} bytes of binary data follow the inputs' binary_data_size",
            binary.len()
        )));
    }
    let outputs = match fields.get("outputs") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(outs)) => outs
            .iter()
            .enumerate()
            .map(|(i, o)| parse_output(o, i))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(Failure::bad("'outputs' must be an array")),
    };
    let timeout_us = match fields.get("parameters").and_then(|p| p.get("timeout")) {
        None | Some(Value::Null) => None,
        Some(t) => Some(t.as_u64().filter(|t| *t > 0).ok_or_else(|| {
            Failure::bad(format!(
                "parameters.timeout must be a positive number of microseconds, not {t}"
            ))
        })?),
    };
    Ok(InferRequest {
        id,
        inputs,
        outputs,
        timeout_us,
    })
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, Failure> {
    v.as_object()
        .ok_or_else(|| Failure::bad(format!("{what} must be a JSON object")))
}

fn name_of(o: &Map<String, Value>, what: &str) -> Result<String, Failure> {
    match o.get("name") {
        Some(Value::String(n)) if !n.is_empty() => Ok(n.clone()),
        _ => Err(Failure::bad(format!("{what} needs a 'name' string"))),
    }
}

fn parse_input(raw: &Value, index: usize, binary: &mut &[u8]) -> Result<InputTensor, Failure> {
    let o = object(raw, &format!("inputs[{index}]"))?;
    let name = name_of(o, &format!("inputs[{index}]"))?;
    let datatype = match o.get("datatype") {
        Some(Value::String(d)) => Datatype::parse(d, &name)?,
        _ => {
            return Err(Failure::bad(format!(
                "input '{name}' needs a 'datatype' string"
            )))
        }
    };
    let shape: Vec<i64> = match o.get("shape") {
        Some(Value::Array(dims)) => dims
            .iter()
            .map(|d| d.as_i64())
            .collect::<Option<_>>()
            .ok_or_else(|| Failure::bad(format!("input '{name}': 'shape' must hold integers")))?,
        _ => {
            return Err(Failure::bad(format!(
                "input '{name}' needs a 'shape' array"
            )))
        }
    };
    let count = tensor::element_count(&shape, &name)?;
    let binary_size = o
        .get("parameters")
        .and_then(|p| p.get("binary_data_size"))
        .map(|s| {
            s.as_u64().map(|s| s as usize).ok_or_else(|| {
                Failure::bad(format!(
                    "input '{name}': binary_data_size must be a byte count"
                ))
            })
        })
        .transpose()?;
    let data = match (binary_size, o.get("data")) {
        (Some(size), _) => {
            if size > binary.len() {
                return Err(Failure::bad(format!(
                    "input '{name}': binary_data_size {size} but {} bytes are left in the body",
                    binary.len()
                )));
            }
            let (mine, rest) = binary.split_at(size);
            *binary = rest;
            tensor::from_binary(mine, datatype, count, &name)?
        }
        (None, Some(data)) => tensor::from_json(data, datatype, &name)?,
        (None, None) => {
            return Err(Failure::bad(format!(
                "input '{name}' has neither 'data' nor parameters.binary_data_size"
            )))
        }
    };
    if data.len() != count {
        return Err(Failure::bad(format!(
            "input '{name}': shape {shape:?} holds {count} elements but {} were given",
            data.len()
        )));
    }
    Ok(InputTensor {
        name,
        shape: shape.iter().map(|&d| d as usize).collect(),
        data,
        binary: binary_size.is_some(),
    })
}

fn parse_output(raw: &Value, index: usize) -> Result<RequestedOutput, Failure> {
    let o = object(raw, &format!("outputs[{index}]"))?;
    let name = name_of(o, &format!("outputs[{index}]"))?;
    let classification = match o.get("parameters").and_then(|p| p.get("classification")) {
        None | Some(Value::Null) => None,
        Some(k) => match k.as_u64() {
            Some(k) if k > 0 => Some(k as usize),
            // tritonclient sends class_count=0 as no classification at all.
            Some(0) => None,
            _ => {
                return Err(Failure::bad(format!(
                    "output '{name}': classification must be a positive class count, not {k}"
                )))
            }
        },
    };
    Ok(RequestedOutput {
        name,
        classification,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_req(s: &str) -> Result<InferRequest, Failure> {
        parse(s.as_bytes(), None)
    }

    #[test]
    fn a_json_bytes_input_is_read_with_its_shape() {
        let r = json_req(
            r#"{"id":"r1","inputs":[{"name":"text","shape":[2],"datatype":"BYTES","data":["a","bc"]}]}"#,
        )
        .unwrap();
        assert_eq!(r.id.as_deref(), Some("r1"));
        assert_eq!(r.inputs[0].shape, vec![2]);
        assert_eq!(
            r.inputs[0].data,
            TensorData::Bytes(vec![b"a".to_vec(), b"bc".to_vec()])
        );
        assert!(r.outputs.is_empty());
    }

    #[test]
    fn data_that_does_not_fill_the_shape_is_refused() {
        let e = json_req(
            r#"{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1.0,2.0]}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("3 elements but 2"), "{e}");
    }

    #[test]
    fn a_requested_classification_is_read_and_zero_means_none() {
        let r = json_req(
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":["a"]}],
                "outputs":[{"name":"logits","parameters":{"classification":3,"binary_data":true}},
                           {"name":"other","parameters":{"classification":0}}]}"#,
        )
        .unwrap();
        assert_eq!(r.outputs[0].classification, Some(3));
        assert_eq!(r.outputs[1].classification, None);
    }

    #[test]
    fn binary_inputs_follow_the_json_header_in_order() {
        let header = r#"{"inputs":[{"name":"ids","shape":[1,2],"datatype":"INT64","parameters":{"binary_data_size":16}},{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}"#;
        let mut body = header.as_bytes().to_vec();
        body.extend(5i64.to_le_bytes());
        body.extend(6i64.to_le_bytes());
        body.extend(0.5f32.to_le_bytes());
        let r = parse(&body, Some(header.len())).unwrap();
        assert_eq!(r.inputs[0].data, TensorData::Int64(vec![5, 6]));
        assert_eq!(r.inputs[1].data, TensorData::Fp32(vec![0.5]));
    }

    #[test]
    fn binary_sizes_beyond_the_body_or_bytes_left_over_are_refused() {
        let header = r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}"#;
        let mut body = header.as_bytes().to_vec();
        body.extend([0u8; 2]);
        assert!(parse(&body, Some(header.len())).is_err());
        body.extend([0u8; 6]);
        let e = parse(&body, Some(header.len())).unwrap_err();
        assert!(e.to_string().contains("4 bytes"), "{e}");
        assert!(parse(&body, Some(body.len() + 1)).is_err());
    }

    #[test]
    fn the_request_timeout_is_read_in_microseconds() {
        let r = json_req(
            r#"{"parameters":{"timeout":1500},"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":["a"]}]}"#,
        )
        .unwrap();
        assert_eq!(r.timeout_us, Some(1500));
        assert!(json_req(
            r#"{"parameters":{"timeout":-1},"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":["a"]}]}"#
        )
        .is_err());
    }

    #[test]
    fn missing_fields_are_named() {
        assert!(json_req(r#"{"inputs":[]}"#)
            .unwrap_err()
            .to_string()
            .contains("empty"));
        let e = json_req(r#"{"inputs":[{"name":"x","shape":[1],"data":[1]}]}"#).unwrap_err();
        assert!(e.to_string().contains("datatype"), "{e}");
        let e = json_req(r#"{"inputs":[{"name":"x","datatype":"FP32","data":[1]}]}"#).unwrap_err();
        assert!(e.to_string().contains("shape"), "{e}");
        let e = json_req(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}"#).unwrap_err();
        assert!(e.to_string().contains("data"), "{e}");
    }
}
