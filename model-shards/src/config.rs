//! Model configuration read from a Hugging Face `config.json`.
//!
//! Only the fields the forward pass needs are read; unknown fields are ignored so any checkpoint
//! saved by `transformers` loads. The `architectures` entry decides the family and the head.

use crate::error::{Result, ShardError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Transformer family: decides the block layout (pre- or post-LayerNorm) and the embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// ViT: patch embeddings + class token, pre-LN blocks, final LayerNorm.
    Vit,
    /// DeiT: ViT with an extra distillation token.
    Deit,
    /// BERT: word/position/type embeddings, post-LN blocks.
    Bert,
}

/// What the last unit computes after the final block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// ViTModel / DeiTModel / BertModel: tanh(dense(first token)).
    Pooler,
    /// ViTModel saved without a pooler: the first token of the final hidden state.
    FirstToken,
    /// Image or sequence classification: a linear layer on the first token (BERT: on the pooler).
    Classifier,
    /// DeiT with teacher: mean of the class-token and distillation-token classifiers.
    DistilledClassifier,
    /// Sentence embedding: mask-weighted mean over tokens, L2-normalised when `normalize`.
    MeanPool { normalize: bool },
}

impl Head {
    /// Whether the head emits class logits (otherwise an embedding per item).
    pub fn is_classifier(self) -> bool {
        matches!(self, Head::Classifier | Head::DistilledClassifier)
    }
}

/// Activation function named by `hidden_act`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact erf GELU (`gelu`).
    Gelu,
    /// tanh approximation (`gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`).
    GeluTanh,
    Relu,
}

impl Activation {
    fn parse(name: &str) -> Option<Activation> {
        match name {
            "gelu" => Some(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Activation::GeluTanh),
            "relu" => Some(Activation::Relu),
            _ => None,
        }
    }
}

/// The subset of a Hugging Face config that quantpipe uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub architecture: String,
    pub family: Family,
    pub head: Head,
    pub hidden_size: i64,
    pub num_layers: usize,
    pub num_heads: i64,
    pub intermediate_size: i64,
    pub activation: Activation,
    pub layer_norm_eps: f64,
    pub qkv_bias: bool,
    pub num_labels: i64,
    /// Image models.
    pub image_size: i64,
    pub patch_size: i64,
    pub num_channels: i64,
    /// Text models.
    pub vocab_size: i64,
    pub max_position_embeddings: i64,
    pub type_vocab_size: i64,
    pub pad_token_id: i64,
}

#[derive(Deserialize)]
struct RawConfig {
    architectures: Option<Vec<String>>,
    model_type: Option<String>,
    hidden_size: Option<i64>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<i64>,
    intermediate_size: Option<i64>,
    hidden_act: Option<String>,
    layer_norm_eps: Option<f64>,
    qkv_bias: Option<bool>,
    num_labels: Option<i64>,
    id2label: Option<BTreeMap<String, String>>,
    image_size: Option<i64>,
    patch_size: Option<i64>,
    num_channels: Option<i64>,
    vocab_size: Option<i64>,
    max_position_embeddings: Option<i64>,
    type_vocab_size: Option<i64>,
    pad_token_id: Option<i64>,
    position_embedding_type: Option<String>,
}

impl ModelConfig {
    /// Reads `config.json`. `sentence_pooling` is the head given by a sentence-transformers pooling
    /// config next to it, which overrides the plain `BertModel` pooler.
    pub fn from_file(path: &Path, sentence_pooling: Option<Head>) -> Result<ModelConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| ShardError::io(path, e))?;
        Self::from_json(&text, sentence_pooling).map_err(|message| ShardError::Config {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses the text of a `config.json`; the error says which field is wrong.
    pub fn from_json(text: &str, sentence_pooling: Option<Head>) -> Result<ModelConfig, String> {
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let architecture = architecture_of(&raw)?;
        let (family, head) = family_and_head(&architecture, sentence_pooling)?;
        let need = |v: Option<i64>, name: &str| v.ok_or_else(|| format!("missing `{name}`"));
        let hidden_size = need(raw.hidden_size, "hidden_size")?;
        let num_heads = need(raw.num_attention_heads, "num_attention_heads")?;
        if hidden_size <= 0 || num_heads <= 0 || hidden_size % num_heads != 0 {
            return Err(format!(
                "hidden_size {hidden_size} is not a positive multiple of num_attention_heads {num_heads}"
            ));
        }
        let num_layers = raw
            .num_hidden_layers
            .filter(|&n| n > 0)
            .ok_or("missing or zero `num_hidden_layers`")?;
        let act_name = raw.hidden_act.unwrap_or_else(|| "gelu".into());
        let activation = Activation::parse(&act_name)
            .ok_or_else(|| format!("unsupported hidden_act {act_name:?}"))?;
        if let Some(kind) = raw.position_embedding_type.as_deref() {
            if kind != "absolute" {
                return Err(format!("unsupported position_embedding_type {kind:?}"));
            }
        }
        let num_labels = raw
            .id2label
            .as_ref()
            .map(|m| m.len() as i64)
            .or(raw.num_labels)
            .unwrap_or(2);
        let config = ModelConfig {
            architecture,
            family,
            head,
            hidden_size,
            num_layers,
            num_heads,
            intermediate_size: need(raw.intermediate_size, "intermediate_size")?,
            activation,
            layer_norm_eps: raw.layer_norm_eps.unwrap_or(1e-12),
            qkv_bias: raw.qkv_bias.unwrap_or(true),
            num_labels,
            image_size: raw.image_size.unwrap_or(224),
            patch_size: raw.patch_size.unwrap_or(16),
            num_channels: raw.num_channels.unwrap_or(3),
            vocab_size: raw.vocab_size.unwrap_or(30522),
            max_position_embeddings: raw.max_position_embeddings.unwrap_or(512),
            type_vocab_size: raw.type_vocab_size.unwrap_or(2),
            pad_token_id: raw.pad_token_id.unwrap_or(0),
        };
        if config.family != Family::Bert && config.image_size % config.patch_size != 0 {
            return Err(format!(
                "image_size {} is not a multiple of patch_size {}",
                config.image_size, config.patch_size
            ));
        }
        Ok(config)
    }

    /// Number of units: four per block.
    pub fn units(&self) -> usize {
        4 * self.num_layers
    }

    pub fn head_dim(&self) -> i64 {
        self.hidden_size / self.num_heads
    }

    /// Tokens per image for image models (patches plus class, and distillation for DeiT).
    pub fn image_tokens(&self) -> i64 {
        let patches = (self.image_size / self.patch_size).pow(2);
        patches
            + match self.family {
                Family::Vit => 1,
                Family::Deit => 2,
                Family::Bert => 0,
            }
    }

    /// Whether the checkpoint nests the backbone under a prefix (task heads do: `vit.`, `bert.`).
    pub fn backbone_prefix(&self) -> &'static str {
        match (self.family, self.head) {
            (Family::Vit, Head::Classifier) => "vit",
            (Family::Deit, Head::Classifier | Head::DistilledClassifier) => "deit",
            (Family::Bert, Head::Classifier) => "bert",
            _ => "",
        }
    }
}

/// Reads the head a sentence-transformers model declares: `1_Pooling/config.json` for the pooling
/// mode and `modules.json` for a trailing Normalize module. `None` when the folder has neither.
pub fn sentence_pooling(model_dir: &Path) -> Result<Option<Head>> {
    let pooling_path = model_dir.join("1_Pooling").join("config.json");
    if !pooling_path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&pooling_path).map_err(|e| ShardError::io(&pooling_path, e))?;
    let pooling: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ShardError::Config {
            path: pooling_path.clone(),
            message: e.to_string(),
        })?;
    if pooling
        .get("pooling_mode_mean_tokens")
        .and_then(|v| v.as_bool())
        != Some(true)
    {
        return Err(ShardError::Config {
            path: pooling_path,
            message: "only mean-token pooling is supported".into(),
        });
    }
    let modules_path = model_dir.join("modules.json");
    let normalize = match std::fs::read_to_string(&modules_path) {
        Ok(text) => text.contains("sentence_transformers.models.Normalize"),
        Err(_) => false,
    };
    Ok(Some(Head::MeanPool { normalize }))
}

/// The model class: the first `architectures` entry, else the base model of `model_type`.
fn architecture_of(raw: &RawConfig) -> Result<String, String> {
    Ok(match (&raw.architectures, &raw.model_type) {
        (Some(a), _) if !a.is_empty() => a[0].clone(),
        (_, Some(t)) if t == "vit" => "ViTModel".to_owned(),
        (_, Some(t)) if t == "deit" => "DeiTModel".to_owned(),
        (_, Some(t)) if t == "bert" => "BertModel".to_owned(),
        _ => return Err("no `architectures` entry and no known `model_type`".into()),
    })
}

/// The family and head of a model class; a plain `BertModel` takes `sentence_pooling` when given.
fn family_and_head(
    architecture: &str,
    sentence_pooling: Option<Head>,
) -> Result<(Family, Head), String> {
    Ok(match architecture {
        "ViTModel" => (Family::Vit, Head::Pooler),
        "ViTForImageClassification" => (Family::Vit, Head::Classifier),
        "DeiTModel" => (Family::Deit, Head::Pooler),
        "DeiTForImageClassification" => (Family::Deit, Head::Classifier),
        "DeiTForImageClassificationWithTeacher" => (Family::Deit, Head::DistilledClassifier),
        "BertModel" => (Family::Bert, sentence_pooling.unwrap_or(Head::Pooler)),
        "BertForSequenceClassification" => (Family::Bert, Head::Classifier),
        other => return Err(ShardError::UnknownArchitecture(other.to_owned()).to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_architecture_is_named() {
        let err =
            ModelConfig::from_json(r#"{"architectures":["GPT2LMHeadModel"]}"#, None).unwrap_err();
        assert!(err.contains("GPT2LMHeadModel"), "{err}");
    }

    #[test]
    fn missing_field_is_named() {
        let err = ModelConfig::from_json(
            r#"{"architectures":["ViTModel"],"hidden_size":64,"num_attention_heads":4}"#,
            None,
        )
        .unwrap_err();
        assert!(err.contains("num_hidden_layers"), "{err}");
    }

    #[test]
    fn deit_with_teacher_has_two_extra_tokens() {
        let c = ModelConfig::from_json(
            r#"{"architectures":["DeiTForImageClassificationWithTeacher"],"hidden_size":192,
               "num_hidden_layers":12,"num_attention_heads":3,"intermediate_size":768,
               "image_size":224,"patch_size":16,"id2label":{"0":"a","1":"b"}}"#,
            None,
        )
        .unwrap();
        assert_eq!(c.image_tokens(), 198);
        assert_eq!(c.head, Head::DistilledClassifier);
        assert_eq!(c.num_labels, 2);
        assert_eq!(c.backbone_prefix(), "deit");
        assert_eq!(c.units(), 48);
    }
}
