//! A model as users name it: a Hugging Face folder or a preset with seeded random weights.

use crate::config::{sentence_pooling, ModelConfig};
use crate::error::{Result, ShardError};
use crate::presets::preset_config;
use crate::shard::Shard;
use crate::tensor_cache::{CachedWeights, TensorCache};
use crate::units::UnitRange;
use crate::weights::{SafetensorsWeights, SeededRandomWeights, WeightSource};
use std::path::{Path, PathBuf};

/// Seed of preset weights unless the caller picks another; every node must use the same one.
pub const DEFAULT_PRESET_SEED: u64 = 0x5eed;

/// Where a model's configuration and weights come from.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// A folder with `config.json` and `model.safetensors` (and optionally tokenizer and
    /// preprocessor configs, and a sentence-transformers pooling config).
    Dir { path: PathBuf, config: ModelConfig },
    /// A published configuration with seeded random weights.
    Preset {
        name: String,
        config: ModelConfig,
        seed: u64,
    },
}

impl ModelSource {
    /// Opens a Hugging Face model folder, checking that its files are there. A folder without
    /// `model.safetensors` opens when it has a tensor cache of weights fetched from peers
    /// ([`TensorCache`]): its shards load from the cache.
    pub fn open_dir(path: &Path) -> Result<ModelSource> {
        let config_path = path.join("config.json");
        let config = ModelConfig::from_file(&config_path, sentence_pooling(path)?)?;
        let weights = path.join("model.safetensors");
        if !weights.exists() && !TensorCache::in_model_dir(path).exists() {
            return Err(ShardError::io(
                &weights,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            ));
        }
        Ok(ModelSource::Dir {
            path: path.to_owned(),
            config,
        })
    }

    pub fn preset(name: &str, seed: u64) -> Result<ModelSource> {
        Ok(ModelSource::Preset {
            name: name.to_owned(),
            config: preset_config(name)?,
            seed,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        match self {
            ModelSource::Dir { config, .. } | ModelSource::Preset { config, .. } => config,
        }
    }

    /// A short name for reports: the folder name or the preset name.
    pub fn name(&self) -> String {
        match self {
            ModelSource::Dir { path, .. } => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string()),
            ModelSource::Preset { name, .. } => name.clone(),
        }
    }

    /// The folder, for tokenizer and preprocessor files.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            ModelSource::Dir { path, .. } => Some(path),
            ModelSource::Preset { .. } => None,
        }
    }

    /// Opens the weight source (memory-mapped checkpoint, tensors fetched from peers into the
    /// folder's cache, or seeded random values).
    pub fn weights(&self) -> Result<Box<dyn WeightSource>> {
        Ok(match self {
            ModelSource::Dir { path, .. } => {
                let file = path.join("model.safetensors");
                match file.exists() {
                    true => Box::new(SafetensorsWeights::open(&file)?),
                    false => Box::new(CachedWeights::open(TensorCache::in_model_dir(path))?),
                }
            }
            ModelSource::Preset { seed, .. } => Box::new(SeededRandomWeights { seed: *seed }),
        })
    }

    /// Loads units `range` as a shard.
    pub fn load_shard(&self, range: UnitRange) -> Result<Shard> {
        let weights = self.weights()?;
        Shard::load(self.config(), range, weights.as_ref())
    }
}
