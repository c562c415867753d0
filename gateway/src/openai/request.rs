//! `POST /v1/embeddings` request bodies: parsed and checked before anything is queued.

use crate::failure::Failure;
use serde_json::Value;

/// One input of an embeddings request.
#[derive(Debug, Clone, PartialEq)]
pub enum EmbeddingInput {
    Text(String),
    /// Token ids (OpenAI accepts pre-tokenized input as arrays of integers).
    Tokens(Vec<i64>),
}

/// How the embeddings are written in the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodingFormat {
    /// A JSON array of numbers.
    Float,
    /// Base64 of the little-endian f32 bytes (what the `openai` Python client asks for).
    Base64,
}

/// A checked embeddings request.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingsRequest {
    pub model: String,
    pub inputs: Vec<EmbeddingInput>,
    pub encoding_format: EncodingFormat,
    /// Requested output size, if any (only the model's own size can be served).
    pub dimensions: Option<usize>,
}

/// Parses `body` (JSON) into a request, or a 400 naming the field at fault.
pub fn parse(body: &[u8]) -> Result<EmbeddingsRequest, Failure> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Failure::bad(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(Failure::bad("the body must be a JSON object"));
    };
    let model = match fields.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(Value::String(_)) => return Err(Failure::bad_param("model", "'model' is empty")),
        Some(_) => return Err(Failure::bad_param("model", "'model' must be a string")),
        None => return Err(Failure::bad_param("model", "'model' is required")),
    };
    let inputs = match fields.get("input") {
        Some(input) => parse_input(input)?,
        None => return Err(Failure::bad_param("input", "'input' is required")),
    };
    let encoding_format = match fields.get("encoding_format") {
        None | Some(Value::Null) => EncodingFormat::Float,
        Some(Value::String(f)) if f == "float" => EncodingFormat::Float,
        Some(Value::String(f)) if f == "base64" => EncodingFormat::Base64,
        Some(other) => {
            return Err(Failure::bad_param(
                "encoding_format",
                format!("'encoding_format' must be \"float\" or \"base64\", not {other}"),
            ))
        }
    };
    let dimensions = match fields.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(d) if d > 0 => Some(d as usize),
            _ => {
                return Err(Failure::bad_param(
                    "dimensions",
                    format!("'dimensions' must be a positive integer, not {v}"),
                ))
            }
        },
    };
    Ok(EmbeddingsRequest {
        model,
        inputs,
        encoding_format,
        dimensions,
    })
}

/// `input`: a string, an array of strings, an array of token ids, or an array of such arrays.
fn parse_input(input: &Value) -> Result<Vec<EmbeddingInput>, Failure> {
    match input {
        Value::String(s) => Ok(vec![text(s, None)?]),
        Value::Array(items) if items.is_empty() => {
            Err(Failure::bad_param("input", "'input' is an empty array"))
        }
        Value::Array(items) if items.iter().all(Value::is_number) => Ok(vec![tokens(items, None)?]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => text(s, Some(i)),
                Value::Array(ids) => tokens(ids, Some(i)),
                other => Err(Failure::bad_param(
                    "input",
                    format!("input[{i}] must be a string or an array of token ids, not {other}"),
                )),
            })
            .collect(),
        other => Err(Failure::bad_param(
            "input",
            format!("'input' must be a string or an array of strings, not {other}"),
        )),
    }
}

fn which(index: Option<usize>) -> String {
    index.map_or("'input'".to_owned(), |i| format!("input[{i}]"))
}

fn text(s: &str, index: Option<usize>) -> Result<EmbeddingInput, Failure> {
    if s.is_empty() {
        return Err(Failure::bad_param(
            "input",
            format!("{} is an empty string", which(index)),
        ));
    }
    Ok(EmbeddingInput::Text(s.to_owned()))
}

fn tokens(ids: &[Value], index: Option<usize>) -> Result<EmbeddingInput, Failure> {
    if ids.is_empty() {
        return Err(Failure::bad_param(
            "input",
            format!("{} has no token ids", which(index)),
        ));
    }
    ids.iter()
        .map(|v| {
            v.as_i64().filter(|id| *id >= 0).ok_or_else(|| {
                Failure::bad_param(
                    "input",
                    format!("{} holds {v}, which is not a token id", which(index)),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(EmbeddingInput::Tokens)
}

/// The request's model must be the one served (400 naming both otherwise).
pub fn check_model(requested: &str, served: &str) -> Result<(), Failure> {
    if requested == served {
        Ok(())
    } else {
        Err(Failure::bad_param(
            "model",
            format!("the model '{requested}' does not exist here; this fleet serves '{served}'"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<EmbeddingsRequest, Failure> {
        parse(s.as_bytes())
    }

    #[test]
    fn a_single_string_is_one_text_item_in_floats() {
        let r = parse_str(r#"{"model":"m","input":"hello"}"#).unwrap();
        assert_eq!(r.inputs, vec![EmbeddingInput::Text("hello".into())]);
        assert_eq!(r.encoding_format, EncodingFormat::Float);
        assert_eq!(r.model, "m");
    }

    #[test]
    fn an_array_of_strings_is_one_item_each_in_order() {
        let r = parse_str(r#"{"model":"m","input":["a","b"],"encoding_format":"base64"}"#).unwrap();
        assert_eq!(
            r.inputs,
            vec![
                EmbeddingInput::Text("a".into()),
                EmbeddingInput::Text("b".into())
            ]
        );
        assert_eq!(r.encoding_format, EncodingFormat::Base64);
    }

    #[test]
    fn token_arrays_are_token_items() {
        let r = parse_str(r#"{"model":"m","input":[101,2023,102]}"#).unwrap();
        assert_eq!(r.inputs, vec![EmbeddingInput::Tokens(vec![101, 2023, 102])]);
        let r = parse_str(r#"{"model":"m","input":[[1,2],[3]]}"#).unwrap();
        assert_eq!(r.inputs.len(), 2);
    }

    #[test]
    fn missing_or_wrongly_typed_fields_are_named() {
        let e = parse_str(r#"{"input":"x"}"#).unwrap_err();
        assert_eq!(e.param(), Some("model"));
        let e = parse_str(r#"{"model":"m"}"#).unwrap_err();
        assert_eq!(e.param(), Some("input"));
        let e = parse_str(r#"{"model":"m","input":7}"#).unwrap_err();
        assert_eq!(e.param(), Some("input"));
        let e = parse_str(r#"{"model":"m","input":"x","encoding_format":"int8"}"#).unwrap_err();
        assert_eq!(e.param(), Some("encoding_format"));
        assert!(e.to_string().contains("int8"), "{e}");
    }

    #[test]
    fn empty_inputs_are_refused_naming_which() {
        assert!(parse_str(r#"{"model":"m","input":[]}"#).is_err());
        let e = parse_str(r#"{"model":"m","input":["a",""]}"#).unwrap_err();
        assert!(e.to_string().contains("input[1]"), "{e}");
        let e = parse_str(r#"{"model":"m","input":["a",3]}"#).unwrap_err();
        assert!(e.to_string().contains("input[1]"), "{e}");
    }

    #[test]
    fn a_body_that_is_not_json_is_a_bad_request() {
        let e = parse_str("{nope").unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.to_string().contains("JSON"), "{e}");
    }

    #[test]
    fn negative_token_ids_are_refused() {
        assert!(parse_str(r#"{"model":"m","input":[1,-2]}"#).is_err());
    }

    #[test]
    fn another_model_is_refused_naming_both() {
        let e = check_model("gpt", "minilm").unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.to_string().contains("gpt") && e.to_string().contains("minilm"));
        assert!(check_model("minilm", "minilm").is_ok());
    }
}
