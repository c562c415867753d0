//! Cutting a model anywhere and running the pieces in sequence gives the whole model's output.

use quantpipe_model_shards::config::ModelConfig;
use quantpipe_model_shards::profile::sample_input;
use quantpipe_model_shards::weights::SeededRandomWeights;
use quantpipe_model_shards::{Boundary, Shard, UnitRange};

const TOLERANCE: f64 = 1e-5;

fn small(architecture: &str, model_type: &str) -> ModelConfig {
    let json = format!(
        r#"{{"architectures": ["{architecture}"], "model_type": "{model_type}", "hidden_size": 32,
        "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64, "image_size": 16,
        "patch_size": 4, "num_labels": 7, "vocab_size": 50, "max_position_embeddings": 32}}"#
    );
    ModelConfig::from_json(&json, None).unwrap()
}

fn run(config: &ModelConfig, range: UnitRange, input: &Boundary) -> Boundary {
    let weights = SeededRandomWeights { seed: 3 };
    Shard::load(config, range, &weights)
        .unwrap()
        .forward(input)
        .unwrap()
}

/// For every l..r window and every cut k in l..r-1: forward(l..k) then forward(k+1..r) equals
/// forward(l..r).
fn assert_every_cut_composes(config: ModelConfig) {
    let units = config.units();
    let mut input = sample_input(&config, 3, 1);
    if let Some(mask) = &mut input.mask {
        // Pad the last item so masking is exercised across cuts too.
        let t = mask.size()[1];
        let _ = mask.get(2).narrow(0, t - t / 4, t / 4).fill_(0);
    }
    // Inputs entering each unit, from one whole-model pass.
    let mut entering = vec![input.shallow_clone()];
    for u in 1..=units {
        let next = run(&config, UnitRange::new(u, u), entering.last().unwrap());
        entering.push(next);
    }
    for l in 1..=units {
        for r in l + 1..=units {
            let whole = run(&config, UnitRange::new(l, r), &entering[l - 1]);
            for k in l..r {
                let first = run(&config, UnitRange::new(l, k), &entering[l - 1]);
                let second = run(&config, UnitRange::new(k + 1, r), &first);
                let diff = (&second.tensors[0] - &whole.tensors[0])
                    .abs()
                    .max()
                    .double_value(&[]);
                assert!(
                    diff <= TOLERANCE,
                    "{}: {l}..{k} + {}..{r} differs from {l}..{r} by {diff}",
                    config.architecture,
                    k + 1
                );
            }
        }
    }
}

#[test]
fn vit_composes_at_every_cut() {
    assert_every_cut_composes(small("ViTForImageClassification", "vit"));
}

#[test]
fn deit_composes_at_every_cut() {
    assert_every_cut_composes(small("DeiTForImageClassificationWithTeacher", "deit"));
}

#[test]
fn bert_composes_at_every_cut() {
    assert_every_cut_composes(small("BertModel", "bert"));
}
