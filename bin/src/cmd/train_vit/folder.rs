//! The trained model as a Hugging Face `ViTForImageClassification` folder: `config.json` (with
//! the training recipe under `quantpipe_training`), `preprocessor_config.json` and
//! `model.safetensors`.

use super::{Args, PIXEL_MEAN, PIXEL_STD};
use crate::datasets::fashion_mnist::CLASSES;
use anyhow::{Context, Result};
use quantpipe_model_shards::train::VarStoreWeights;
use std::path::Path;

/// `config.json` of the model `args` describe, for `side`x`side` grey images.
pub fn config_json(args: &Args, side: i64) -> serde_json::Value {
    let id2label: serde_json::Map<String, serde_json::Value> = CLASSES
        .iter()
        .enumerate()
        .map(|(i, c)| (i.to_string(), (*c).into()))
        .collect();
    let label2id: serde_json::Map<String, serde_json::Value> = CLASSES
        .iter()
        .enumerate()
        .map(|(i, c)| ((*c).to_owned(), i.into()))
        .collect();
    serde_json::json!({
        "architectures": ["ViTForImageClassification"],
        "model_type": "vit",
        "hidden_size": args.hidden,
        "num_hidden_layers": args.layers,
        "num_attention_heads": args.heads,
        "intermediate_size": args.mlp,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "image_size": side,
        "patch_size": args.patch,
        "num_channels": 1,
        "qkv_bias": true,
        "id2label": id2label,
        "label2id": label2id,
        "torch_dtype": "float32",
        "quantpipe_training": {
            "data": "Fashion-MNIST", "seed": args.seed, "epochs": args.epochs,
            "batch": args.batch, "lr": args.lr, "augment": args.augment
        }
    })
}

pub fn save(out: &Path, weights: &VarStoreWeights, config: &serde_json::Value) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    weights.save(&out.join("model.safetensors"))?;
    let side = config["image_size"].clone();
    let preprocessor = serde_json::json!({
        "image_processor_type": "ViTImageProcessor",
        "do_resize": true,
        "size": {"height": side, "width": side},
        "resample": 2,
        "do_rescale": true,
        "rescale_factor": 1.0 / 255.0,
        "do_normalize": true,
        "image_mean": [PIXEL_MEAN],
        "image_std": [PIXEL_STD]
    });
    for (name, value) in [
        ("config.json", config),
        ("preprocessor_config.json", &preprocessor),
    ] {
        let path = out.join(name);
        std::fs::write(&path, serde_json::to_string_pretty(value)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
