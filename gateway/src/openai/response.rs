//! `POST /v1/embeddings` and `GET /v1/models` answers, in OpenAI's shapes.

use super::request::EncodingFormat;
use base64::Engine;
use serde_json::{json, Value};

/// The embeddings answer: one entry per input, in order, and the tokens counted.
pub fn embeddings(
    model: &str,
    rows: &[Vec<f32>],
    format: EncodingFormat,
    prompt_tokens: usize,
) -> Value {
    let data: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(index, row)| {
            json!({"object": "embedding", "index": index, "embedding": encode(row, format)})
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    })
}

/// One embedding as a JSON array, or as base64 of its little-endian f32 bytes.
fn encode(row: &[f32], format: EncodingFormat) -> Value {
    match format {
        EncodingFormat::Float => json!(row),
        EncodingFormat::Base64 => {
            let bytes: Vec<u8> = row.iter().flat_map(|v| v.to_le_bytes()).collect();
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
    }
}

/// `GET /v1/models`: the one model the fleet serves.
pub fn models(name: &str) -> Value {
    json!({"object": "list", "data": [model(name)]})
}

/// `GET /v1/models/{name}`: one model.
pub fn model(name: &str) -> Value {
    json!({"id": name, "object": "model", "created": 0, "owned_by": "quantpipe"})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_embeddings_are_numbers_in_input_order_with_usage() {
        let v = embeddings(
            "m",
            &[vec![1.0, 2.0], vec![3.0, 4.5]],
            EncodingFormat::Float,
            7,
        );
        assert_eq!(v["data"][1]["index"], 1);
        assert_eq!(v["data"][1]["embedding"], json!([3.0, 4.5]));
        assert_eq!(v["usage"]["prompt_tokens"], 7);
        assert_eq!(v["model"], "m");
    }

    #[test]
    fn base64_embeddings_are_the_little_endian_f32_bytes() {
        let row = vec![0.1f32, -2.5, 1e-7];
        let v = embeddings("m", std::slice::from_ref(&row), EncodingFormat::Base64, 1);
        let text = v["data"][0]["embedding"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap();
        let back: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(back, row);
    }

    #[test]
    fn the_model_list_names_the_served_model() {
        assert_eq!(models("minilm")["data"][0]["id"], "minilm");
    }
}
