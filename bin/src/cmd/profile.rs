//! `quantpipe profile`: per-unit forward time, weight memory and output size of a model on this
//! device, written as PipeEdge-compatible `models.yml` and `device_types.yml` entries.

use crate::model_args::ModelArgs;
use anyhow::{Context, Result};
use quantpipe_model_shards::profile::{proc_kb, profile_model};
use quantpipe_planner::profiles::pipeedge::{
    upsert_device_profile, upsert_model, ModelEntry, ModelProfileEntry, ScalarOrList,
};
use std::path::PathBuf;

const MIB: f64 = 1024.0 * 1024.0;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Microbatch size to profile.
    #[arg(long, default_value_t = 8)]
    ubatch: usize,
    /// Name of this device's type in device_types.yml.
    #[arg(long)]
    device_type: String,
    /// Folder for models.yml and device_types.yml (entries are added or replaced).
    #[arg(long)]
    out: PathBuf,
    /// Name of the model in models.yml (default: the folder or preset name).
    #[arg(long)]
    model_name: Option<String>,
    /// Memory of this device type, MiB (default: this machine's total memory).
    #[arg(long)]
    mem_mb: Option<f64>,
    /// Network bandwidth of this device type, Mbit/s.
    #[arg(long, default_value_t = 1000.0)]
    bw_mbps: f64,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Print the per-unit profile as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let source = args.model.open()?;
    let name = args.model_name.clone().unwrap_or_else(|| source.name());
    let profile = profile_model(&source, args.ubatch, args.warmup, args.repeats)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    upsert_model(
        &args.out.join("models.yml"),
        &name,
        ModelEntry {
            layers: profile.units.len(),
            mem_mb: profile
                .units
                .iter()
                .map(|u| u.weight_bytes as f64 / MIB)
                .collect(),
            parameters_in: ScalarOrList::Scalar(profile.input_elements as u64),
            parameters_out: profile
                .units
                .iter()
                .map(|u| u.output_elements as u64)
                .collect(),
        },
    )?;
    upsert_device_profile(
        &args.out.join("device_types.yml"),
        &args.device_type,
        args.mem_mb.unwrap_or_else(total_memory_mib),
        args.bw_mbps,
        &name,
        ModelProfileEntry {
            dtype: Some("torch.float32".into()),
            batch_size: Some(args.ubatch),
            time_s: profile.units.iter().map(|u| u.time_s).collect(),
        },
    )?;
    super::print(&profile, args.json, |profile| {
        let total: f64 = profile.units.iter().map(|u| u.time_s).sum();
        format!(
            "{name}: {} units, {:.1}M parameters, {:.1} ms per microbatch of {} ({} threads); wrote {}",
            profile.units.len(),
            profile.total_parameters() as f64 / 1e6,
            total * 1e3,
            args.ubatch,
            profile.threads,
            args.out.display()
        )
    })
}

/// Total memory of this machine in MiB (`/proc/meminfo`), or 4096 where unknown.
fn total_memory_mib() -> f64 {
    proc_kb("/proc/meminfo", "MemTotal:").map_or(4096.0, |kb| kb as f64 / 1024.0)
}
