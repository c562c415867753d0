//! What the fleet serves, read from the model folder (`config.json`, and a sentence-transformers
//! pooling config beside it) and the client's options.

use crate::options::ServiceOptions;
use anyhow::{anyhow, Context as _, Result};
use quantpipe_model_shards::config::{sentence_pooling, Family, ModelConfig};
use std::collections::BTreeMap;
use std::path::Path;

/// What items the model takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Text,
    Image,
}

/// What the model answers per item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// A vector per item (pooler, first token, or mean-pooled sentence embedding).
    Embedding,
    /// Class logits per item.
    Classification,
}

/// What the fleet serves, read from the model folder and the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// Served name: `options.served_name` or the model folder's name.
    pub name: String,
    pub input: InputKind,
    pub task: Task,
    /// `id2label` in index order (classifiers; empty otherwise).
    pub labels: Vec<String>,
    /// Hidden size (embeddings) or number of labels.
    pub output_dim: usize,
    /// Text models: most tokens an item may have (0 for image models).
    pub max_tokens: usize,
    /// Image models: `[C, H, W]`.
    pub image_shape: Option<[usize; 3]>,
}

impl ModelInfo {
    /// Reads `model_dir/config.json`; text models allow `max_tokens` tokens per item, capped
    /// at the model's position embeddings.
    pub fn read(model_dir: &Path, options: &ServiceOptions, max_tokens: usize) -> Result<Self> {
        let config = read_config(model_dir)?;
        let labels = labels(model_dir)?;
        Ok(Self::of(model_dir, &config, options, max_tokens, labels))
    }

    fn of(
        model_dir: &Path,
        config: &ModelConfig,
        options: &ServiceOptions,
        max_tokens: usize,
        labels: Vec<String>,
    ) -> Self {
        let name = options.served_name.clone().unwrap_or_else(|| {
            model_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| model_dir.display().to_string())
        });
        let classifier = config.head.is_classifier();
        let text = config.family == Family::Bert;
        let dim = |v: i64| usize::try_from(v).unwrap_or(0);
        ModelInfo {
            name,
            input: if text {
                InputKind::Text
            } else {
                InputKind::Image
            },
            task: if classifier {
                Task::Classification
            } else {
                Task::Embedding
            },
            labels: if classifier { labels } else { Vec::new() },
            output_dim: dim(if classifier {
                config.num_labels
            } else {
                config.hidden_size
            }),
            max_tokens: if text {
                max_tokens.min(dim(config.max_position_embeddings))
            } else {
                0
            },
            image_shape: (!text).then(|| {
                let side = dim(config.image_size);
                [dim(config.num_channels), side, side]
            }),
        }
    }
}

/// The model's configuration as the stages read it (with a sentence-transformers head).
pub fn read_config(model_dir: &Path) -> Result<ModelConfig> {
    let pooling = sentence_pooling(model_dir)
        .with_context(|| format!("pooling config of {}", model_dir.display()))?;
    Ok(ModelConfig::from_file(
        &model_dir.join("config.json"),
        pooling,
    )?)
}

/// `id2label` of `config.json` in index order; empty when it has none.
fn labels(model_dir: &Path) -> Result<Vec<String>> {
    let path = model_dir.join("config.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let Some(map) = json.get("id2label").and_then(|v| v.as_object()) else {
        return Ok(Vec::new());
    };
    labels_in_order(map.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .with_context(|| format!("id2label of {}", path.display()))
}

/// Labels by index `0..n`, every index present once.
fn labels_in_order<'a>(
    pairs: impl Iterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<Vec<String>> {
    let mut by_index = BTreeMap::new();
    for (k, v) in pairs {
        let i: usize = k
            .parse()
            .map_err(|_| anyhow!("label index {k:?} is not a number"))?;
        let v = v.ok_or_else(|| anyhow!("label {i} is not a string"))?;
        by_index.insert(i, v.to_owned());
    }
    if by_index.keys().copied().ne(0..by_index.len()) {
        return Err(anyhow!(
            "label indices are not 0..{}: {:?}",
            by_index.len(),
            by_index.keys().collect::<Vec<_>>()
        ));
    }
    Ok(by_index.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_in_index_order_not_text_order() {
        let pairs = [("10", Some("k")), ("2", Some("c")), ("0", Some("a"))];
        assert!(labels_in_order(pairs.into_iter()).is_err());
        let pairs = [("1", Some("b")), ("0", Some("a")), ("2", Some("c"))];
        assert_eq!(
            labels_in_order(pairs.into_iter()).unwrap(),
            vec!["a", "b", "c"]
        );
    }

    fn info(json: &str, max_tokens: usize, labels: Vec<String>) -> ModelInfo {
        let config = ModelConfig::from_json(json, None).unwrap();
        ModelInfo::of(
            Path::new("/models/tiny"),
            &config,
            &ServiceOptions::default(),
            max_tokens,
            labels,
        )
    }

    #[test]
    fn an_image_classifier_serves_labels_and_its_pixel_shape() {
        let m = info(
            r#"{"architectures":["ViTForImageClassification"],"hidden_size":8,
            "num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":16,
            "image_size":28,"patch_size":7,"num_channels":1,"num_labels":2}"#,
            128,
            vec!["cat".into(), "dog".into()],
        );
        assert_eq!(m.name, "tiny");
        assert_eq!((m.input, m.task), (InputKind::Image, Task::Classification));
        assert_eq!((m.output_dim, m.max_tokens), (2, 0));
        assert_eq!(m.image_shape, Some([1, 28, 28]));
        assert_eq!(m.labels, vec!["cat", "dog"]);
    }

    #[test]
    fn a_text_embedder_caps_tokens_at_its_positions() {
        let m = info(
            r#"{"architectures":["BertModel"],"hidden_size":8,
            "num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":16,
            "vocab_size":30,"max_position_embeddings":64}"#,
            128,
            vec!["ignored".into()],
        );
        assert_eq!((m.input, m.task), (InputKind::Text, Task::Embedding));
        assert_eq!((m.output_dim, m.max_tokens), (8, 64));
        assert!(m.labels.is_empty() && m.image_shape.is_none());
    }
}
