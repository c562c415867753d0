//! Training support: a [`WeightSource`] backed by a `tch` variable store, so the very same
//! [`Shard`](crate::Shard) forward code that serves inference is what gets trained.
//!
//! Every parameter a shard asks for becomes a trainable variable of the store, named by its
//! Hugging Face name (`vit.encoder.layer.0.attention.attention.query.weight`, `classifier.bias`,
//! ...), so [`VarStoreWeights::save`] writes a checkpoint that [`crate::ModelSource::open_dir`]
//! loads back. Build the shard with [`Shard::load_trainable`](crate::Shard::load_trainable): the
//! plain [`Shard::load`](crate::Shard::load) runs its forward under `no_grad`, which would record
//! no graph and leave every gradient empty.

use crate::error::{Result, ShardError};
use crate::weights::{Init, WeightSource};
use std::path::Path;
use tch::nn::VarStore;
use tch::{Device, Tensor};

/// Parameters created on demand as trainable variables of a [`VarStore`], initialised as
/// [`Init`] asks (Normal(0, std) weights, zero biases, unit LayerNorm gains).
pub struct VarStoreWeights {
    vs: VarStore,
}

impl VarStoreWeights {
    /// An empty CPU store; variables appear as a shard is loaded from it.
    pub fn new() -> Self {
        VarStoreWeights {
            vs: VarStore::new(Device::Cpu),
        }
    }

    /// The underlying store (give it to an optimizer after the shard is loaded).
    pub fn var_store(&self) -> &VarStore {
        &self.vs
    }

    /// Writes every variable under its Hugging Face name as a safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.vs.save(path).map_err(|e| ShardError::Safetensors {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }
}

impl Default for VarStoreWeights {
    fn default() -> Self {
        Self::new()
    }
}

impl WeightSource for VarStoreWeights {
    fn tensor(&self, name: &str, shape: &[i64], init: Init) -> Result<Tensor> {
        if let Some(existing) = self.vs.variables().get(name) {
            if existing.size() != shape {
                return Err(ShardError::WeightShape {
                    name: name.to_owned(),
                    expected: shape.to_vec(),
                    found: existing.size(),
                });
            }
            return Ok(existing.shallow_clone());
        }
        // tch paths reject '.' inside a segment: walk the dotted name one segment at a time, so
        // the store's own name for the variable is exactly the Hugging Face name.
        let mut segments: Vec<&str> = name.split('.').collect();
        let leaf = segments.pop().unwrap_or(name);
        let path = segments
            .into_iter()
            .fold(self.vs.root(), |path, segment| path.sub(segment));
        let init = match init {
            Init::Normal(stdev) => tch::nn::Init::Randn { mean: 0.0, stdev },
            Init::Zeros => tch::nn::Init::Const(0.0),
            Init::Ones => tch::nn::Init::Const(1.0),
        };
        Ok(path.var(leaf, shape, init))
    }

    fn contains(&self, _name: &str) -> bool {
        // Anything a model asks for can be created.
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Boundary, ModelConfig, Shard, UnitRange};
    use tch::Kind;

    fn tiny_vit() -> ModelConfig {
        ModelConfig::from_json(
            r#"{"architectures":["ViTForImageClassification"],"hidden_size":16,
                "num_hidden_layers":2,"num_attention_heads":2,"intermediate_size":32,
                "image_size":8,"patch_size":4,"num_channels":1,"num_labels":3,
                "layer_norm_eps":1e-6}"#,
            None,
        )
        .unwrap()
    }

    #[test]
    fn variables_carry_hugging_face_names_and_receive_gradients() {
        tch::manual_seed(1);
        let config = tiny_vit();
        let weights = VarStoreWeights::new();
        let shard =
            Shard::load_trainable(&config, UnitRange::full(config.units()), &weights).unwrap();
        let names: Vec<String> = weights.var_store().variables().into_keys().collect();
        for want in [
            "vit.embeddings.cls_token",
            "vit.encoder.layer.1.output.dense.weight",
            "vit.layernorm.bias",
            "classifier.weight",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        let x = Tensor::randn([2, 1, 8, 8], (Kind::Float, Device::Cpu));
        let out = shard.forward(&Boundary::new(vec![x], None)).unwrap();
        let loss = out.tensors[0].cross_entropy_for_logits(&Tensor::from_slice(&[0i64, 2]));
        loss.backward();
        for (name, var) in weights.var_store().variables() {
            let grad = var.grad();
            assert!(grad.defined(), "{name} got no gradient");
        }
        let q = &weights.var_store().variables()
            ["vit.encoder.layer.0.attention.attention.query.weight"];
        assert!(q.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);

        // The inference loader records no graph: the same weights give a loss with no grad_fn.
        let frozen = Shard::load(&config, UnitRange::full(config.units()), &weights).unwrap();
        let x = Tensor::randn([2, 1, 8, 8], (Kind::Float, Device::Cpu));
        let out = frozen.forward(&Boundary::new(vec![x], None)).unwrap();
        assert!(!out.tensors[0].requires_grad());
    }

    #[test]
    fn saved_store_loads_as_a_checkpoint() {
        let config = tiny_vit();
        let weights = VarStoreWeights::new();
        let trained =
            Shard::load_trainable(&config, UnitRange::full(config.units()), &weights).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        weights.save(&path).unwrap();
        let loaded = crate::weights::SafetensorsWeights::open(&path).unwrap();
        let shard = Shard::load(&config, UnitRange::full(config.units()), &loaded).unwrap();
        let x = Tensor::randn([3, 1, 8, 8], (Kind::Float, Device::Cpu));
        let a = tch::no_grad(|| {
            trained
                .forward(&Boundary::new(vec![x.copy()], None))
                .unwrap()
        });
        let b = shard.forward(&Boundary::new(vec![x], None)).unwrap();
        assert!(a.tensors[0].allclose(&b.tensors[0], 1e-6, 1e-6, false));
    }

    #[test]
    fn asking_again_with_another_shape_is_an_error() {
        let weights = VarStoreWeights::new();
        let _ = weights.tensor("a.b", &[2, 3], Init::Zeros).unwrap();
        let err = weights
            .tensor("a.b", &[3, 2], Init::Zeros)
            .unwrap_err()
            .to_string();
        assert!(err.contains("a.b") && err.contains("[3, 2]"), "{err}");
    }
}
