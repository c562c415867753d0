//! Which tensors of a checkpoint a shard reads: the names [`Shard::load`] asks its weight source
//! for, found by loading the shard from a source that records each name and hands out
//! uninitialised tensors (never touched, so they cost address space, not memory). Asking the
//! loader itself keeps the list exactly what loading needs, for every family and cut.

use crate::config::ModelConfig;
use crate::error::Result;
use crate::shard::Shard;
use crate::units::UnitRange;
use crate::weights::{Init, WeightSource};
use std::sync::Mutex;
use tch::{Device, Kind, Tensor};

struct Recorder<'a> {
    has: &'a dyn Fn(&str) -> bool,
    names: Mutex<Vec<String>>,
}

impl WeightSource for Recorder<'_> {
    fn tensor(&self, name: &str, shape: &[i64], _init: Init) -> Result<Tensor> {
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.to_owned());
        Ok(Tensor::empty(shape, (Kind::Float, Device::Cpu)))
    }

    fn contains(&self, name: &str) -> bool {
        (self.has)(name)
    }
}

/// The names of the tensors units `range` of `config` read, in loading order, without
/// repeats; `has` answers whether the checkpoint holds a name (optional parts such as a pooler
/// are read only when it does).
pub fn shard_tensor_names(
    config: &ModelConfig,
    range: UnitRange,
    has: &dyn Fn(&str) -> bool,
) -> Result<Vec<String>> {
    let recorder = Recorder {
        has,
        names: Mutex::new(Vec::new()),
    };
    Shard::load(config, range, &recorder)?;
    let mut names = recorder
        .names
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets::preset_config;

    #[test]
    fn shards_read_their_own_blocks_and_the_ends_only_at_the_ends() {
        let config = preset_config("bert-base-uncased").unwrap();
        let all = |_: &str| true;
        let first = shard_tensor_names(&config, UnitRange::new(1, 4), &all).unwrap();
        assert!(first
            .iter()
            .any(|n| n.contains("embeddings.word_embeddings")));
        assert!(first.iter().all(|n| !n.contains("layer.1.")), "{first:?}");
        let middle = shard_tensor_names(&config, UnitRange::new(5, 8), &all).unwrap();
        assert!(middle.iter().all(|n| n.contains("layer.1.")), "{middle:?}");
        let whole = shard_tensor_names(&config, UnitRange::new(1, config.units()), &all).unwrap();
        // Every unit's tensors are in the whole model's list, and no unit reads another's.
        for u in 1..=config.units() {
            let one = shard_tensor_names(&config, UnitRange::new(u, u), &all).unwrap();
            assert!(one.iter().all(|n| whole.contains(n)));
        }
        assert!(first.len() + middle.len() < whole.len());
    }
}
