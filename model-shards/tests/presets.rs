//! Presets match the published parameter counts (without materialising the weights).

use quantpipe_model_shards::presets::{preset_config, preset_names};
use quantpipe_model_shards::weights::{Init, WeightSource};
use quantpipe_model_shards::{Result, Shard, UnitRange};
use std::cell::Cell;
use tch::{Kind, Tensor};

/// Hands out uninitialised tensors of the right shape and counts their elements.
struct ShapeOnly(Cell<usize>);

impl WeightSource for ShapeOnly {
    fn tensor(&self, _name: &str, shape: &[i64], _init: Init) -> Result<Tensor> {
        self.0
            .set(self.0.get() + shape.iter().product::<i64>() as usize);
        Ok(Tensor::empty(shape, (Kind::Float, tch::Device::Cpu)))
    }
    fn contains(&self, _name: &str) -> bool {
        true
    }
}

fn parameters(preset: &str) -> usize {
    let config = preset_config(preset).unwrap();
    let counter = ShapeOnly(Cell::new(0));
    Shard::load(&config, UnitRange::full(config.units()), &counter).unwrap();
    counter.0.get()
}

fn assert_close(preset: &str, published: f64) {
    let n = parameters(preset) as f64;
    let rel = (n - published).abs() / published;
    assert!(
        rel <= 0.005,
        "{preset}: {n} parameters, published {published} ({:.2}% off)",
        rel * 100.0
    );
}

#[test]
fn vit_presets_match_published_parameter_counts() {
    assert_close("vit-base-patch16-224", 86.6e6);
    assert_close("vit-large-patch16-224", 304.3e6);
    assert_close("vit-huge-patch14-224", 632e6);
}

#[test]
fn deit_and_bert_presets_match_published_parameter_counts() {
    // DeiT paper: 5.9M (tiny), 22.4M (small), 87.3M (base) for the distilled models (~5.9/22.4/87.3M
    // with both heads); BERT: Hugging Face's counts of BertModel.
    assert_close("deit-tiny-distilled-patch16-224", 5.91e6);
    assert_close("deit-small-distilled-patch16-224", 22.44e6);
    assert_close("deit-base-distilled-patch16-224", 87.34e6);
    assert_close("bert-base-uncased", 109.48e6);
    assert_close("bert-large-uncased", 335.14e6);
}

#[test]
fn every_preset_parses_and_has_four_units_per_block() {
    for name in preset_names() {
        let c = preset_config(name).unwrap();
        assert_eq!(c.units(), 4 * c.num_layers, "{name}");
    }
    assert!(preset_config("vit-gigantic")
        .unwrap_err()
        .to_string()
        .contains("vit-base-patch16-224"));
}
