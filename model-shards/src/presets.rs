//! Published model configurations, for running with seeded random weights when no checkpoint is
//! at hand (throughput, memory and planning need the shapes, not the values).

use crate::config::ModelConfig;
use crate::error::{Result, ShardError};
use crate::shard::Shard;
use crate::units::UnitRange;
use crate::weights::{Init, SeededRandomWeights, WeightSource};
use std::cell::RefCell;
use std::path::Path;
use tch::Tensor;

/// The sizes of a transformer that its published variants share.
struct Shape {
    hidden: i64,
    layers: usize,
    heads: i64,
    intermediate: i64,
}

const TINY: Shape = shape(192, 12, 3, 768);
const SMALL: Shape = shape(384, 12, 6, 1536);
const BASE: Shape = shape(768, 12, 12, 3072);
const LARGE: Shape = shape(1024, 24, 16, 4096);
const HUGE: Shape = shape(1280, 32, 16, 5120);

const fn shape(hidden: i64, layers: usize, heads: i64, intermediate: i64) -> Shape {
    Shape {
        hidden,
        layers,
        heads,
        intermediate,
    }
}

struct Preset {
    name: &'static str,
    architecture: &'static str,
    shape: Shape,
    /// Patch side of an image model; 0 for text models.
    patch: i64,
}

const VIT: &str = "ViTForImageClassification";
const DEIT: &str = "DeiTForImageClassificationWithTeacher";
const BERT: &str = "BertModel";

const PRESETS: &[Preset] = &[
    preset("vit-base-patch16-224", VIT, BASE, 16),
    preset("vit-large-patch16-224", VIT, LARGE, 16),
    preset("vit-huge-patch14-224", VIT, HUGE, 14),
    preset("deit-tiny-distilled-patch16-224", DEIT, TINY, 16),
    preset("deit-small-distilled-patch16-224", DEIT, SMALL, 16),
    preset("deit-base-distilled-patch16-224", DEIT, BASE, 16),
    preset("bert-base-uncased", BERT, BASE, 0),
    preset("bert-large-uncased", BERT, LARGE, 0),
];

const fn preset(
    name: &'static str,
    architecture: &'static str,
    shape: Shape,
    patch: i64,
) -> Preset {
    Preset {
        name,
        architecture,
        shape,
        patch,
    }
}

/// Names of all presets.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

/// The `config.json` text of a preset, as Hugging Face publishes it (fields quantpipe reads).
pub fn preset_config_json(name: &str) -> Result<String> {
    let p = PRESETS
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| ShardError::UnknownPreset(name.to_owned(), preset_names().join(", ")))?;
    let common = format!(
        r#""architectures": ["{}"], "hidden_size": {}, "num_hidden_layers": {}, "num_attention_heads": {},
        "intermediate_size": {}, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "initializer_range": 0.02"#,
        p.architecture, p.shape.hidden, p.shape.layers, p.shape.heads, p.shape.intermediate
    );
    Ok(if p.patch > 0 {
        let model_type = if p.architecture.starts_with("DeiT") {
            "deit"
        } else {
            "vit"
        };
        format!(
            r#"{{{common}, "model_type": "{model_type}", "image_size": 224, "patch_size": {}, "num_channels": 3,
            "qkv_bias": true, "num_labels": 1000}}"#,
            p.patch
        )
    } else {
        format!(
            r#"{{{common}, "model_type": "bert", "vocab_size": 30522, "max_position_embeddings": 512,
            "type_vocab_size": 2, "pad_token_id": 0, "position_embedding_type": "absolute"}}"#
        )
    })
}

/// Parsed configuration of a preset.
pub fn preset_config(name: &str) -> Result<ModelConfig> {
    let json = preset_config_json(name)?;
    ModelConfig::from_json(&json, None).map_err(|message| ShardError::Config {
        path: format!("<preset {name}>").into(),
        message,
    })
}

/// Records every tensor a load asks for, under its checkpoint name.
struct Recording {
    inner: SeededRandomWeights,
    tensors: RefCell<Vec<(String, Tensor)>>,
}

impl WeightSource for Recording {
    fn tensor(&self, name: &str, shape: &[i64], init: Init) -> Result<Tensor> {
        let t = self.inner.tensor(name, shape, init)?;
        self.tensors
            .borrow_mut()
            .push((name.to_owned(), t.shallow_clone()));
        Ok(t)
    }
    fn contains(&self, name: &str) -> bool {
        self.inner.contains(name)
    }
}

/// Writes a preset as a Hugging Face folder (`config.json`, `model.safetensors` with the seeded
/// weights under their checkpoint names) and returns its parameter count. Loading the folder gives
/// the same model as the preset with the same seed.
pub fn export_preset(name: &str, seed: u64, dir: &Path) -> Result<usize> {
    let json = preset_config_json(name)?;
    let config = preset_config(name)?;
    let recording = Recording {
        inner: SeededRandomWeights { seed },
        tensors: RefCell::new(Vec::new()),
    };
    Shard::load(&config, UnitRange::full(config.units()), &recording)?;
    std::fs::create_dir_all(dir).map_err(|e| ShardError::io(dir, e))?;
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, json).map_err(|e| ShardError::io(&config_path, e))?;
    let tensors = recording.tensors.into_inner();
    Tensor::write_safetensors(&tensors, dir.join("model.safetensors"))?;
    Ok(tensors.iter().map(|(_, t)| t.numel()).sum())
}
