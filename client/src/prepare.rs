//! Items checked and turned into what unit 1 takes, in the caller's thread: token ids for text
//! models, `[C, H, W]` pixels for image models. A bad item is refused here, naming the item and
//! what is wrong with it, and never reaches a stage.

use crate::item::{Item, SubmitError};
use crate::model::{InputKind, ModelInfo};
use anyhow::{Context as _, Result};
use quantpipe_model_shards::config::ModelConfig;
use quantpipe_model_shards::preprocess::{ImagePreprocessor, TextTokenizer};
use std::path::Path;

/// One item as the service loop packs it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Input {
    /// Token ids, unpadded.
    Tokens(Vec<i64>),
    /// `[C, H, W]` pixels, row-major.
    Pixels(Vec<f32>),
}

impl Input {
    /// Tokens after tokenization (0 for pixels).
    pub fn tokens(&self) -> usize {
        match self {
            Input::Tokens(ids) => ids.len(),
            Input::Pixels(_) => 0,
        }
    }
}

/// What a model takes and how to get there from each kind of item.
pub(crate) enum Preparer {
    Text {
        tokenizer: Box<TextTokenizer>,
        max_tokens: usize,
        vocab_size: i64,
    },
    Image {
        preprocessor: ImagePreprocessor,
        config: Box<ModelConfig>,
        shape: [usize; 3],
    },
}

impl Preparer {
    /// The preparer of the model in `model_dir` (`tokenizer.json` for text models,
    /// `preprocessor_config.json` or ViT's defaults for image models).
    pub fn new(model_dir: &Path, config: &ModelConfig, info: &ModelInfo) -> Result<Self> {
        Ok(match (info.input, info.image_shape) {
            (InputKind::Image, Some(shape)) => Preparer::Image {
                preprocessor: ImagePreprocessor::for_model(config, Some(model_dir))?,
                config: Box::new(config.clone()),
                shape,
            },
            _ => {
                let path = model_dir.join("tokenizer.json");
                // One token past the limit: a longer text is refused, not silently cut.
                let tokenizer = TextTokenizer::from_file(&path, info.max_tokens + 1)
                    .with_context(|| format!("tokenizer {}", path.display()))?;
                Preparer::Text {
                    tokenizer: Box::new(tokenizer),
                    max_tokens: info.max_tokens,
                    vocab_size: config.vocab_size,
                }
            }
        })
    }

    /// Every item prepared, or the first bad one named by its index.
    pub fn prepare(&self, items: Vec<Item>) -> Result<Vec<Input>, SubmitError> {
        if items.is_empty() {
            return Err(SubmitError::BadItem {
                index: 0,
                reason: "the request holds no item".into(),
            });
        }
        items
            .into_iter()
            .enumerate()
            .map(|(index, item)| {
                self.one(item)
                    .map_err(|reason| SubmitError::BadItem { index, reason })
            })
            .collect()
    }

    fn one(&self, item: Item) -> Result<Input, String> {
        match (self, item) {
            (Preparer::Text { tokenizer, .. }, Item::Text(text)) => {
                let b = tokenizer
                    .encode_batch(&[text.as_str()])
                    .map_err(|e| format!("tokenizing: {e}"))?;
                let ids = Vec::<i64>::try_from(&b.tensors[0].view(-1))
                    .map_err(|e| format!("token ids: {e}"))?;
                self.check_tokens(ids)
            }
            (Preparer::Text { .. }, Item::Tokens(ids)) => self.check_tokens(ids),
            (
                Preparer::Image {
                    preprocessor,
                    config,
                    ..
                },
                Item::Image(bytes),
            ) => {
                let t = preprocessor
                    .load_encoded(&bytes, config)
                    .map_err(|e| format!("image: {e}"))?;
                let pixels = Vec::<f32>::try_from(&t.contiguous().view(-1))
                    .map_err(|e| format!("pixels: {e}"))?;
                Ok(Input::Pixels(pixels))
            }
            (Preparer::Image { shape: want, .. }, Item::Tensor { shape, values }) => {
                check_pixels(want, &shape, &values)?;
                Ok(Input::Pixels(values))
            }
            (Preparer::Text { .. }, Item::Image(_) | Item::Tensor { .. }) => {
                Err("this model takes text: give a text or token ids".into())
            }
            (Preparer::Image { .. }, Item::Text(_) | Item::Tokens(_)) => {
                Err("this model takes images: give encoded image bytes or a pixel tensor".into())
            }
        }
    }

    fn check_tokens(&self, ids: Vec<i64>) -> Result<Input, String> {
        let Preparer::Text {
            max_tokens,
            vocab_size,
            ..
        } = self
        else {
            return Err("this model takes images, not token ids".into());
        };
        check_token_ids(&ids, *max_tokens, *vocab_size)?;
        Ok(Input::Tokens(ids))
    }
}

/// Token ids a text model can take: some, at most `max_tokens`, each in `0..vocab_size`.
fn check_token_ids(ids: &[i64], max_tokens: usize, vocab_size: i64) -> Result<(), String> {
    if ids.is_empty() {
        return Err("no token".into());
    }
    if ids.len() > max_tokens {
        return Err(format!(
            "{}{} tokens, at most {max_tokens} allowed",
            ids.len(),
            if ids.len() == max_tokens + 1 {
                " or more"
            } else {
                ""
            }
        ));
    }
    if let Some((i, id)) = ids
        .iter()
        .enumerate()
        .find(|(_, &id)| !(0..vocab_size).contains(&id))
    {
        return Err(format!(
            "token {i} is id {id}, outside the vocabulary 0..{vocab_size}"
        ));
    }
    Ok(())
}

/// A pixel tensor of shape `want` with finite values.
fn check_pixels(want: &[usize; 3], shape: &[usize], values: &[f32]) -> Result<(), String> {
    if shape != want {
        return Err(format!("tensor of shape {shape:?}, expected {want:?}"));
    }
    let n: usize = want.iter().product();
    if values.len() != n {
        return Err(format!(
            "{} values for shape {shape:?} ({n} values)",
            values.len()
        ));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(format!("value {i} is {}, not finite", values[i]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::read_config;
    use crate::options::ServiceOptions;

    /// MiniLM's preparer, at most `max_tokens` tokens an item.
    fn minilm(max_tokens: usize) -> Preparer {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/minilm");
        assert!(
            dir.join("tokenizer.json").exists(),
            "MiniLM is missing from {}: run scripts/setup",
            dir.display()
        );
        let config = read_config(&dir).unwrap();
        let info = ModelInfo::read(&dir, &ServiceOptions::default(), max_tokens).unwrap();
        Preparer::new(&dir, &config, &info).unwrap()
    }

    fn reason(e: SubmitError) -> (usize, String) {
        match e {
            SubmitError::BadItem { index, reason } => (index, reason),
            other => panic!("expected a bad item, got {other:?}"),
        }
    }

    #[test]
    fn texts_are_tokenized_with_special_tokens_and_a_long_one_is_refused_by_index() {
        let p = minilm(8);
        let ok = p
            .prepare(vec![
                Item::Text("hello world".into()),
                Item::Tokens(vec![101, 102]),
            ])
            .unwrap();
        assert_eq!(ok[0], Input::Tokens(vec![101, 7592, 2088, 102]));
        assert_eq!(ok[1].tokens(), 2);
        let long = Item::Text("one two three four five six seven eight nine".into());
        let (index, why) = reason(
            p.prepare(vec![Item::Text("fine".into()), long])
                .unwrap_err(),
        );
        assert_eq!(index, 1);
        assert!(why.contains("at most 8"), "{why}");
    }

    #[test]
    fn a_text_model_refuses_images_tensors_foreign_ids_and_empty_requests() {
        let p = minilm(128);
        let (_, why) = reason(p.prepare(vec![Item::Image(vec![1, 2, 3])]).unwrap_err());
        assert!(why.contains("takes text"), "{why}");
        let tensor = Item::Tensor {
            shape: vec![1],
            values: vec![0.0],
        };
        assert!(p.prepare(vec![tensor]).is_err());
        let (_, why) = reason(
            p.prepare(vec![Item::Tokens(vec![101, 1 << 40])])
                .unwrap_err(),
        );
        assert!(why.contains("outside the vocabulary 0..30522"), "{why}");
        let (index, _) = reason(p.prepare(vec![]).unwrap_err());
        assert_eq!(index, 0);
    }

    #[test]
    fn token_ids_outside_the_vocabulary_are_named() {
        let e = check_token_ids(&[101, 30522, 102], 8, 30522).unwrap_err();
        assert!(e.contains("token 1 is id 30522"), "{e}");
        assert!(check_token_ids(&[-1], 8, 30522).is_err());
        assert!(check_token_ids(&[101, 102], 8, 30522).is_ok());
    }

    #[test]
    fn too_many_or_no_tokens_are_refused() {
        let e = check_token_ids(&[1; 9], 8, 100).unwrap_err();
        assert!(e.contains("9 or more tokens, at most 8"), "{e}");
        assert!(check_token_ids(&[1; 12], 8, 100)
            .unwrap_err()
            .starts_with("12 tokens"));
        assert!(check_token_ids(&[], 8, 100).is_err());
    }

    #[test]
    fn pixel_tensors_of_the_wrong_shape_or_with_non_finite_values_are_refused() {
        let want = [1, 2, 2];
        assert!(check_pixels(&want, &[1, 2, 2], &[0.0; 4]).is_ok());
        let e = check_pixels(&want, &[2, 2], &[0.0; 4]).unwrap_err();
        assert!(e.contains("shape [2, 2]"), "{e}");
        assert!(check_pixels(&want, &[1, 2, 2], &[0.0; 3])
            .unwrap_err()
            .contains("3 values"));
        let e = check_pixels(&want, &[1, 2, 2], &[0.0, f32::NAN, 0.0, 0.0]).unwrap_err();
        assert!(e.contains("value 1 is NaN"), "{e}");
    }
}
