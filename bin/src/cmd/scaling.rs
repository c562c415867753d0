//! `quantpipe scaling`: EdgePipe's scaling study on profiles measured by `quantpipe profile`.
//!
//! The measured device type is the fast one; a second, slower type is derived from it by a
//! configurable factor (an emulated device, stated as such in the report). Fleets alternate fast
//! and slow devices; each size is planned optimally and with each baseline, and every plan is
//! run through the simulator.

use crate::profile_args::ProfileArgs;
use anyhow::{Context, Result};
use quantpipe_planner::profiles::pipeedge::{load_planner_inputs, read_yaml, DevicesYml};
use quantpipe_planner::scaling::{scaling_study, ScalingConfig};
use quantpipe_planner::PlanConfig;
use serde::Serialize;

const MIB: u64 = 1024 * 1024;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    profile: ProfileArgs,
    /// Measured device type (the fast one).
    #[arg(long)]
    device_type: String,
    /// The slow type computes this many times slower than the measured one.
    #[arg(long, default_value_t = 2.0)]
    slow_factor: f64,
    /// Memory of the fast and slow types, MiB.
    #[arg(long, default_value_t = 4096)]
    fast_mem_mb: u64,
    #[arg(long, default_value_t = 2048)]
    slow_mem_mb: u64,
    /// Link bandwidths to study, Mbit/s.
    #[arg(long, value_delimiter = ',', default_values_t = [1000.0, 100.0])]
    links: Vec<f64>,
    /// Fleet sizes.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2, 4, 8, 16])]
    sizes: Vec<usize>,
    #[arg(long, default_value_t = 8)]
    ubatch: usize,
    /// Microbatches per simulation.
    #[arg(long, default_value_t = 64)]
    microbatches: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    measured_type: String,
    emulated_slow_type: String,
    slow_factor: f64,
    study: quantpipe_planner::scaling::ScalingReport,
}

pub fn run(args: Args) -> Result<()> {
    let config = study_config(&args)?;
    let report = Report {
        measured_type: args.device_type.clone(),
        emulated_slow_type: config.slow_type.clone(),
        slow_factor: args.slow_factor,
        study: scaling_study(&config)?,
    };
    super::print(&report, args.json, markdown)
}

/// The study of the measured type beside its emulated slower twin.
fn study_config(args: &Args) -> Result<ScalingConfig> {
    let models = read_yaml(&args.profile.models)?;
    let types = read_yaml(&args.profile.device_types)?;
    let devices: DevicesYml = [(args.device_type.clone(), vec!["measured".to_string()])].into();
    let (mut model, _) = load_planner_inputs(
        &models,
        &types,
        &devices,
        &args.profile.model,
        args.ubatch,
        "torch.float32",
    )
    .with_context(|| format!("profile of {} on {}", args.profile.model, args.device_type))?;
    let slow = format!("{}-slow-x{}", args.device_type, args.slow_factor);
    let fast_times = model.compute_s[&args.device_type].clone();
    model.compute_s.insert(
        slow.clone(),
        fast_times.iter().map(|t| t * args.slow_factor).collect(),
    );
    Ok(ScalingConfig {
        model,
        fast_type: args.device_type.clone(),
        slow_type: slow,
        fast_mem_bytes: args.fast_mem_mb * MIB,
        slow_mem_bytes: args.slow_mem_mb * MIB,
        fleet_sizes: args.sizes.clone(),
        link_mbps: args.links.clone(),
        cfg: PlanConfig {
            ubatch: args.ubatch,
            ..PlanConfig::default()
        },
        microbatches: args.microbatches,
    })
}

/// The report as a heading line and a markdown table.
fn markdown(report: &Report) -> String {
    let mut lines = vec![
        format!(
            "{}: fast = measured {}, slow = emulated {}x slower; speedup vs the smallest fleet \
             that fits",
            report.study.model, report.measured_type, report.slow_factor
        ),
        "| link Mbit/s | devices | items/s | speedup | vs even | vs memory | vs pipedream |".into(),
        "|---|---|---|---|---|---|---|".into(),
    ];
    let f = |v: Option<f64>| {
        v.map(|x| format!("{x:.2}"))
            .unwrap_or_else(|| "does not fit".into())
    };
    for r in &report.study.rows {
        let over = |k: &str| f(r.speedup_over_baseline.get(k).copied().flatten());
        lines.push(format!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.link_mbps,
            r.devices,
            f(r.edgepipe_items_per_s),
            f(r.speedup),
            over("even"),
            over("memory"),
            over("pipedream")
        ));
    }
    lines.join("\n")
}
