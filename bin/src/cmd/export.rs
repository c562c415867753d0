//! `quantpipe export-preset`: a preset as a Hugging Face folder, so the checkpoint-loading path
//! (and per-shard memory) can be exercised at full size without downloading weights.

use anyhow::Result;
use quantpipe_model_shards::presets::export_preset;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Preset name.
    #[arg(long)]
    preset: String,
    /// Seed of the weights.
    #[arg(long, default_value_t = quantpipe_model_shards::DEFAULT_PRESET_SEED)]
    seed: u64,
    /// Output folder (created).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let parameters = export_preset(&args.preset, args.seed, &args.out)?;
    println!(
        "wrote {} ({:.1}M parameters)",
        args.out.display(),
        parameters as f64 / 1e6
    );
    Ok(())
}
