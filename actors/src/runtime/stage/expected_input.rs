//! What this stage takes in, for [`quantpipe_messages::admission`]: the model's dimensions from
//! its `config.json`, and the bounds of a microbatch. The checks themselves are pure and live
//! with the wire format; this is where they meet the model.

use anyhow::{anyhow, Context as _, Result};
use quantpipe_messages::admission::{Expected, ModelInputs, ModelShape};
use quantpipe_model_shards::config::{Family, ModelConfig};
use std::path::Path;

/// The most items a stage takes in one microbatch: far above the microbatches plans use (1-64),
/// low enough that a forward pass over the largest admissible input stays within a device's
/// memory for the models quantpipe runs.
pub const MAX_MICROBATCH_ITEMS: u64 = 256;

/// The dimensions of `config` that decide what its stages take in.
pub fn model_shape(config: &ModelConfig) -> ModelShape {
    let dim = |v: i64| u64::try_from(v).unwrap_or(0);
    let inputs = match config.family {
        Family::Bert => ModelInputs::Text {
            vocab: dim(config.vocab_size),
            max_positions: dim(config.max_position_embeddings),
        },
        Family::Vit | Family::Deit => ModelInputs::Image {
            channels: dim(config.num_channels),
            image_size: dim(config.image_size),
            tokens: dim(config.image_tokens()),
        },
    };
    ModelShape {
        inputs,
        hidden: dim(config.hidden_size),
        intermediate: dim(config.intermediate_size),
        units: config.units(),
    }
}

/// What a stage whose shard starts at unit `first` of `config` takes in.
pub fn expected(config: &ModelConfig, first: usize) -> Result<Expected> {
    Expected::entering(&model_shape(config), first, MAX_MICROBATCH_ITEMS).map_err(|e| anyhow!(e))
}

/// [`expected`] for the model in `model_dir` (its `config.json`).
pub fn expected_in(model_dir: &Path, first: usize) -> Result<Expected> {
    let path = model_dir.join("config.json");
    let config = ModelConfig::from_file(&path, None)
        .with_context(|| format!("reading {} for the stage's input checks", path.display()))?;
    expected(&config, first)
}

#[cfg(test)]
mod tests {
    //! What admission admits, the shard runs: for every first unit of small models of each
    //! family, an input built to the largest and smallest [`Expected`] shapes goes through the
    //! shard without an error (and without a panic).
    use super::*;
    use quantpipe_messages::admission::{StageInput, TokenCount};
    use quantpipe_model_shards::weights::SeededRandomWeights;
    use quantpipe_model_shards::{Boundary, Shard, UnitRange};
    use tch::{Device, Kind, Tensor};

    fn small(architecture: &str, model_type: &str) -> ModelConfig {
        let json = format!(
            r#"{{"architectures": ["{architecture}"], "model_type": "{model_type}",
            "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 24, "image_size": 8, "patch_size": 4, "num_labels": 3,
            "vocab_size": 20, "max_position_embeddings": 6}}"#
        );
        ModelConfig::from_json(&json, None).unwrap()
    }

    /// An input of `b` items (and `t` tokens where the count is free) shaped as `e` says.
    fn input(e: &Expected, b: i64, t: i64) -> Boundary {
        let f = (Kind::Float, Device::Cpu);
        let (tensors, tokens) = match &e.input {
            StageInput::Tokens { vocab, .. } => {
                let ids = Tensor::arange(b * t, (Kind::Int64, Device::Cpu))
                    .remainder(*vocab as i64)
                    .view([b, t]);
                (vec![ids], t)
            }
            StageInput::Pixels {
                channels,
                image_size,
            } => {
                let (c, s) = (*channels as i64, *image_size as i64);
                (vec![Tensor::randn([b, c, s, s], f)], 0)
            }
            StageInput::Hidden { widths, tokens } => {
                let t = match tokens {
                    TokenCount::Exactly(n) => *n as i64,
                    TokenCount::UpTo(_) => t,
                };
                let ts = widths
                    .iter()
                    .map(|&w| Tensor::randn([b, t, w as i64], f))
                    .collect();
                (ts, t)
            }
        };
        let mask = e
            .mask
            .then(|| Tensor::ones([b, tokens], (Kind::Int64, Device::Cpu)));
        Boundary::new(tensors, mask)
    }

    fn admitted_inputs_run(config: ModelConfig) {
        let max_positions = config.max_position_embeddings;
        for first in 1..=config.units() {
            let e = expected(&config, first).unwrap();
            let shard = Shard::load(
                &config,
                UnitRange::new(first, config.units()),
                &SeededRandomWeights { seed: 1 },
            )
            .unwrap();
            for (b, t) in [(1, 1), (3, max_positions)] {
                let out = shard.forward(&input(&e, b, t));
                assert!(
                    out.is_ok(),
                    "{} from unit {first}, {b} x {t}: {:?}",
                    config.architecture,
                    out.err()
                );
            }
        }
    }

    #[test]
    fn what_admission_admits_a_text_shard_runs_from_every_unit() {
        admitted_inputs_run(small("BertModel", "bert"));
    }

    #[test]
    fn what_admission_admits_an_image_shard_runs_from_every_unit() {
        admitted_inputs_run(small("ViTForImageClassification", "vit"));
        admitted_inputs_run(small("DeiTForImageClassificationWithTeacher", "deit"));
    }

    #[test]
    fn a_missing_model_config_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = expected_in(dir.path(), 1).unwrap_err();
        assert!(format!("{err:#}").contains("config.json"), "{err:#}");
    }
}
