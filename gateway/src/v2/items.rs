//! An inference request's input tensor as the fleet client's items, per model kind:
//! text models take BYTES texts `[N]` or INT64 token ids `[N, T]`; image models take BYTES
//! encoded images `[N]` (base64 in the JSON form, raw in the binary extension) or FP32 pixels
//! `[N, C, H, W]`.

use super::request::{InferRequest, InputTensor};
use super::tensor::{self, TensorData};
use crate::failure::Failure;
use quantpipe_client::{InputKind, Item, ModelInfo};

/// The items of `request` for `model`, one per row of its single input.
pub fn items(request: &InferRequest, model: &ModelInfo) -> Result<Vec<Item>, Failure> {
    let [input] = request.inputs.as_slice() else {
        return Err(Failure::bad(format!(
            "model '{}' takes one input tensor, the request has {}",
            model.name,
            request.inputs.len()
        )));
    };
    match (&input.data, model.input) {
        (TensorData::Bytes(elements), InputKind::Text) => {
            rows_of_one(input)?;
            elements
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    String::from_utf8(e.clone()).map(Item::Text).map_err(|_| {
                        Failure::bad(format!(
                            "input '{}': element {i} is not UTF-8 text",
                            input.name
                        ))
                    })
                })
                .collect()
        }
        (TensorData::Bytes(elements), InputKind::Image) => {
            rows_of_one(input)?;
            elements
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    if input.binary {
                        Ok(Item::Image(e.clone()))
                    } else {
                        tensor::decode_base64(e, i, &input.name).map(Item::Image)
                    }
                })
                .collect()
        }
        (TensorData::Int64(ids), InputKind::Text) => {
            let &[n, t] = input.shape.as_slice() else {
                return Err(Failure::bad(format!(
                    "input '{}': INT64 token ids have shape [N, T], not {:?}",
                    input.name, input.shape
                )));
            };
            if t == 0 {
                return Err(Failure::bad(format!(
                    "input '{}' has no token ids",
                    input.name
                )));
            }
            Ok(ids
                .chunks(t)
                .take(n)
                .map(|row| Item::Tokens(row.to_vec()))
                .collect())
        }
        (TensorData::Fp32(values), InputKind::Image) => {
            let want = model.image_shape.unwrap_or_default();
            let (n, chw) = match input.shape.as_slice() {
                [n, c, h, w] => (*n, [*c, *h, *w]),
                other => {
                    return Err(Failure::bad(format!(
                        "input '{}': FP32 pixels have shape [N, {}, {}, {}], not {other:?}",
                        input.name, want[0], want[1], want[2]
                    )))
                }
            };
            if chw != want {
                return Err(Failure::bad(format!(
                    "input '{}': images of model '{}' are [{}, {}, {}] (C, H, W), not {chw:?}",
                    input.name, model.name, want[0], want[1], want[2]
                )));
            }
            let size = chw.iter().product::<usize>().max(1);
            Ok(values
                .chunks(size)
                .take(n)
                .map(|v| Item::Tensor {
                    shape: chw.to_vec(),
                    values: v.to_vec(),
                })
                .collect())
        }
        (data, kind) => Err(Failure::bad(format!(
            "input '{}': model '{}' takes {}, not {}",
            input.name,
            model.name,
            accepted(kind),
            data.datatype()
        ))),
    }
}

fn accepted(kind: InputKind) -> &'static str {
    match kind {
        InputKind::Text => "BYTES texts or INT64 token ids",
        InputKind::Image => "BYTES encoded images or FP32 pixels",
    }
}

/// BYTES inputs hold one element per item: shape `[N]` or `[N, 1]`.
fn rows_of_one(input: &InputTensor) -> Result<(), Failure> {
    match input.shape.as_slice() {
        [_] | [_, 1] => Ok(()),
        other => Err(Failure::bad(format!(
            "input '{}': BYTES inputs have shape [N] or [N, 1], not {other:?}",
            input.name
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantpipe_client::Task;

    fn model(input: InputKind) -> ModelInfo {
        ModelInfo {
            name: "m".into(),
            input,
            task: Task::Embedding,
            labels: vec![],
            output_dim: 4,
            max_tokens: 128,
            image_shape: (input == InputKind::Image).then_some([1, 2, 2]),
        }
    }

    fn request(name: &str, shape: Vec<usize>, data: TensorData, binary: bool) -> InferRequest {
        InferRequest {
            id: None,
            inputs: vec![InputTensor {
                name: name.into(),
                shape,
                data,
                binary,
            }],
            outputs: vec![],
            timeout_us: None,
        }
    }

    #[test]
    fn bytes_are_texts_for_a_text_model() {
        let r = request(
            "text",
            vec![2],
            TensorData::Bytes(vec![b"a".to_vec(), b"b c".to_vec()]),
            false,
        );
        let items = items(&r, &model(InputKind::Text)).unwrap();
        assert!(matches!(&items[1], Item::Text(t) if t == "b c"));
    }

    #[test]
    fn json_bytes_are_base64_images_and_binary_bytes_are_raw_for_an_image_model() {
        let m = model(InputKind::Image);
        let r = request(
            "image",
            vec![1],
            TensorData::Bytes(vec![b"aGk=".to_vec()]),
            false,
        );
        assert!(matches!(&items(&r, &m).unwrap()[0], Item::Image(b) if b == b"hi"));
        let r = request(
            "image",
            vec![1],
            TensorData::Bytes(vec![b"aGk=".to_vec()]),
            true,
        );
        assert!(matches!(&items(&r, &m).unwrap()[0], Item::Image(b) if b == b"aGk="));
    }

    #[test]
    fn token_ids_are_split_into_rows() {
        let r = request(
            "ids",
            vec![2, 3],
            TensorData::Int64(vec![1, 2, 3, 4, 5, 6]),
            false,
        );
        let items = items(&r, &model(InputKind::Text)).unwrap();
        assert!(matches!(&items[1], Item::Tokens(t) if t == &[4, 5, 6]));
    }

    #[test]
    fn pixels_must_have_the_models_image_shape() {
        let m = model(InputKind::Image);
        let r = request(
            "px",
            vec![2, 1, 2, 2],
            TensorData::Fp32(vec![0.0; 8]),
            false,
        );
        assert_eq!(items(&r, &m).unwrap().len(), 2);
        let r = request(
            "px",
            vec![1, 1, 4, 1],
            TensorData::Fp32(vec![0.0; 4]),
            false,
        );
        let e = items(&r, &m).unwrap_err();
        assert!(e.to_string().contains("[1, 2, 2]"), "{e}");
    }

    #[test]
    fn a_datatype_the_model_does_not_take_is_refused_naming_what_it_takes() {
        let r = request("px", vec![1, 4], TensorData::Fp32(vec![0.0; 4]), false);
        let e = items(&r, &model(InputKind::Text)).unwrap_err();
        assert!(e.to_string().contains("BYTES texts or INT64"), "{e}");
        let r = request("ids", vec![1, 1], TensorData::Int64(vec![1]), false);
        assert!(items(&r, &model(InputKind::Image)).is_err());
    }

    #[test]
    fn text_that_is_not_utf8_or_a_wrong_shape_is_refused() {
        let m = model(InputKind::Text);
        let r = request("t", vec![1], TensorData::Bytes(vec![vec![0xff]]), true);
        assert!(items(&r, &m).unwrap_err().to_string().contains("UTF-8"));
        let r = request(
            "t",
            vec![1, 2],
            TensorData::Bytes(vec![b"a".to_vec(), b"b".to_vec()]),
            false,
        );
        assert!(items(&r, &m).is_err());
    }

    #[test]
    fn more_than_one_input_is_refused() {
        let mut r = request("t", vec![1], TensorData::Bytes(vec![b"a".to_vec()]), false);
        r.inputs.push(r.inputs[0].clone());
        assert!(items(&r, &model(InputKind::Text))
            .unwrap_err()
            .to_string()
            .contains("one input"));
    }
}
