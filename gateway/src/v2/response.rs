//! Inference answers and model metadata of the Open Inference Protocol, from the model's kind
//! and each item's output row.

use super::classify;
use super::request::RequestedOutput;
use crate::failure::Failure;
use quantpipe_client::{InputKind, ModelInfo, Task};
use serde_json::{json, Value};

/// The model version the gateway reports (a fleet serves one version).
pub const VERSION: &str = "1";

/// The output holding each item's vector: `embedding` or `logits`.
pub fn values_output(model: &ModelInfo) -> &'static str {
    match model.task {
        Task::Embedding => "embedding",
        Task::Classification => "logits",
    }
}

/// The output of classifiers holding each item's top classes as "score:index:label".
pub const LABELS_OUTPUT: &str = "labels";

/// The outputs a request gets: those it names (each checked), else every output of the model
/// (classifiers' labels with `top_k` classes).
pub fn resolve_outputs(
    requested: &[RequestedOutput],
    model: &ModelInfo,
    top_k: usize,
) -> Result<Vec<RequestedOutput>, Failure> {
    let values = values_output(model);
    let classifier = model.task == Task::Classification;
    if requested.is_empty() {
        let mut all = vec![RequestedOutput {
            name: values.into(),
            classification: None,
        }];
        if classifier {
            all.push(RequestedOutput {
                name: LABELS_OUTPUT.into(),
                classification: Some(top_k),
            });
        }
        return Ok(all);
    }
    requested
        .iter()
        .map(|o| {
            if o.name == values {
                Ok(o.clone())
            } else if classifier && o.name == LABELS_OUTPUT {
                Ok(RequestedOutput {
                    name: o.name.clone(),
                    classification: Some(o.classification.unwrap_or(top_k)),
                })
            } else {
                let names = if classifier {
                    format!("'{values}' or '{LABELS_OUTPUT}'")
                } else {
                    format!("'{values}'")
                };
                Err(Failure::bad(format!(
                    "model '{}' has no output '{}' (its outputs: {names})",
                    model.name, o.name
                )))
            }
        })
        .collect()
}

/// The answer of an inference whose items answered `rows`, in order.
pub fn infer(
    model: &ModelInfo,
    id: Option<&str>,
    outputs: &[RequestedOutput],
    rows: &[Vec<f32>],
) -> Value {
    let n = rows.len();
    let outputs: Vec<Value> = outputs
        .iter()
        .map(|o| match o.classification {
            Some(k) => {
                let k = k.min(rows.first().map_or(0, Vec::len));
                let data: Vec<String> = rows
                    .iter()
                    .flat_map(|r| classify::classes(r, k, &model.labels))
                    .collect();
                json!({"name": o.name, "datatype": "BYTES", "shape": [n, k], "data": data})
            }
            None => {
                let dim = rows.first().map_or(0, Vec::len);
                let data: Vec<f32> = rows.iter().flatten().copied().collect();
                json!({"name": o.name, "datatype": "FP32", "shape": [n, dim], "data": data})
            }
        })
        .collect();
    let mut answer =
        json!({"model_name": model.name, "model_version": VERSION, "outputs": outputs});
    if let Some(id) = id {
        answer["id"] = json!(id);
    }
    answer
}

/// `GET /v2/models/{name}`: the inputs the model takes and the outputs it answers.
pub fn metadata(model: &ModelInfo, top_k: usize) -> Value {
    let inputs = match model.input {
        InputKind::Text => json!([
            {"name": "text", "datatype": "BYTES", "shape": [-1]},
            {"name": "input_ids", "datatype": "INT64", "shape": [-1, -1]},
        ]),
        InputKind::Image => {
            let [c, h, w] = model.image_shape.unwrap_or_default();
            json!([
                {"name": "image", "datatype": "BYTES", "shape": [-1]},
                {"name": "pixel_values", "datatype": "FP32", "shape": [-1, c, h, w]},
            ])
        }
    };
    let mut outputs = vec![
        json!({"name": values_output(model), "datatype": "FP32", "shape": [-1, model.output_dim]}),
    ];
    if model.task == Task::Classification {
        outputs.push(json!({"name": LABELS_OUTPUT, "datatype": "BYTES", "shape": [-1, top_k.min(model.output_dim)]}));
    }
    json!({
        "name": model.name,
        "versions": [VERSION],
        "platform": "quantpipe",
        "inputs": inputs,
        "outputs": outputs,
    })
}

/// The model a path names must be the one served (400 naming both otherwise, as Triton does).
pub fn check_model(path_name: &str, model: &ModelInfo) -> Result<(), Failure> {
    if path_name == model.name {
        Ok(())
    } else {
        Err(Failure::bad(format!(
            "unknown model '{path_name}': this fleet serves '{}'",
            model.name
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classifier() -> ModelInfo {
        ModelInfo {
            name: "vit".into(),
            input: InputKind::Image,
            task: Task::Classification,
            labels: vec!["a".into(), "b".into(), "c".into()],
            output_dim: 3,
            max_tokens: 0,
            image_shape: Some([1, 28, 28]),
        }
    }

    #[test]
    fn without_named_outputs_a_classifier_answers_logits_and_top_k_labels() {
        let m = classifier();
        let outs = resolve_outputs(&[], &m, 2).unwrap();
        let v = infer(&m, Some("r"), &outs, &[vec![0.1, 0.7, 0.2]]);
        assert_eq!(v["id"], "r");
        assert_eq!(v["outputs"][0]["name"], "logits");
        assert_eq!(v["outputs"][0]["shape"], json!([1, 3]));
        assert_eq!(
            v["outputs"][1]["data"],
            json!(["0.700000:1:b", "0.200000:2:c"])
        );
        assert_eq!(v["outputs"][1]["shape"], json!([1, 2]));
    }

    #[test]
    fn a_classification_on_logits_answers_bytes_classes() {
        let m = classifier();
        let asked = [RequestedOutput {
            name: "logits".into(),
            classification: Some(1),
        }];
        let outs = resolve_outputs(&asked, &m, 5).unwrap();
        let v = infer(&m, None, &outs, &[vec![0.1, 0.7, 0.2], vec![0.9, 0.0, 0.0]]);
        assert_eq!(v["outputs"][0]["datatype"], "BYTES");
        assert_eq!(
            v["outputs"][0]["data"],
            json!(["0.700000:1:b", "0.900000:0:a"])
        );
        assert!(v.get("id").is_none());
    }

    #[test]
    fn an_unknown_output_is_refused_naming_the_real_ones() {
        let asked = [RequestedOutput {
            name: "probs".into(),
            classification: None,
        }];
        let e = resolve_outputs(&asked, &classifier(), 5).unwrap_err();
        assert!(e.to_string().contains("'logits' or 'labels'"), "{e}");
    }

    #[test]
    fn metadata_names_inputs_and_outputs() {
        let v = metadata(&classifier(), 5);
        assert_eq!(v["inputs"][1]["shape"], json!([-1, 1, 28, 28]));
        assert_eq!(v["outputs"][1]["shape"], json!([-1, 3]));
    }

    #[test]
    fn another_model_name_is_a_bad_request() {
        assert_eq!(
            check_model("bert", &classifier()).unwrap_err().status(),
            400
        );
    }
}
