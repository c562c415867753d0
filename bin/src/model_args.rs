//! The `--model-dir DIR | --preset NAME` choice shared by commands that load a model.

use anyhow::Result;
use quantpipe_model_shards::{ModelSource, DEFAULT_PRESET_SEED};
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct ModelChoice {
    /// Hugging Face model folder (config.json + model.safetensors).
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Published configuration with seeded random weights (e.g. vit-base-patch16-224).
    #[arg(long)]
    pub preset: Option<String>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    #[command(flatten)]
    pub choice: ModelChoice,
    /// Seed of preset weights (every node of a fleet must use the same).
    #[arg(long, default_value_t = DEFAULT_PRESET_SEED)]
    pub seed: u64,
    /// libtorch intra-op threads (default: libtorch's choice).
    #[arg(long)]
    pub threads: Option<i32>,
}

impl ModelArgs {
    pub fn open(&self) -> Result<ModelSource> {
        if let Some(n) = self.threads {
            tch::set_num_threads(n);
        }
        Ok(match (&self.choice.model_dir, &self.choice.preset) {
            (Some(dir), _) => ModelSource::open_dir(dir)?,
            (None, Some(name)) => ModelSource::preset(name, self.seed)?,
            (None, None) => unreachable!("clap requires one of --model-dir and --preset"),
        })
    }
}
