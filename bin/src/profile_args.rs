//! The `--models FILE --device-types FILE --model NAME` choice shared by the commands that read
//! PipeEdge-format profiles (`plan`, `scaling`).

use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct ProfileArgs {
    /// models.yml (per-unit weight memory and boundary sizes).
    #[arg(long)]
    pub models: PathBuf,
    /// device_types.yml (memory, bandwidth and per-unit times per device type).
    #[arg(long)]
    pub device_types: PathBuf,
    /// Model name in models.yml.
    #[arg(long)]
    pub model: String,
}
