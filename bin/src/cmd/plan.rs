//! `quantpipe plan`: the optimal (or a baseline) partition of a model over a fleet, from
//! PipeEdge-format profile files.

use crate::profile_args::ProfileArgs;
use anyhow::Result;
use quantpipe_planner::cli::{parse_baseline, parse_bits_menu, plan_from_files, PlanRequest};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    profile: ProfileArgs,
    /// devices.yml (device type -> host names).
    #[arg(long)]
    devices: PathBuf,
    #[arg(long, default_value_t = 8)]
    ubatch: usize,
    /// Measured per-link bandwidth/latency matrix (YAML; see config/examples/links.yml).
    #[arg(long)]
    links: Option<PathBuf>,
    /// Allowed bitwidths for the activations crossing each cut, e.g. 2,4,8,32 (32 = raw).
    #[arg(long)]
    bits: Option<String>,
    /// Smallest bitwidth any cut may use (the accuracy budget).
    #[arg(long)]
    min_bits: Option<u8>,
    /// Plan with a baseline instead: even, memory or pipedream.
    #[arg(long)]
    baseline: Option<String>,
    /// Write the plan as JSON to this file (input of `quantpipe simulate`).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let request = PlanRequest {
        models: args.profile.models,
        device_types: args.profile.device_types,
        devices: args.devices,
        model: args.profile.model,
        ubatch: args.ubatch,
        links: args.links,
        bits: args.bits.as_deref().map(parse_bits_menu).transpose()?,
        min_bits: args.min_bits,
        baseline: args.baseline.as_deref().map(parse_baseline).transpose()?,
        dtype: None,
        in_buffers: None,
        out_buffers: None,
    };
    let plan = plan_from_files(&request)?;
    let text = serde_json::to_string_pretty(&plan)?;
    if let Some(path) = &args.out {
        std::fs::write(path, &text)?;
    }
    if args.json {
        println!("{text}");
    } else {
        for (i, s) in plan.stages.iter().enumerate() {
            println!(
                "stage {i}: {} ({}) units {}..{}  compute {:.2} ms  send {:.2} ms at {} bits",
                s.device,
                s.device_type,
                s.l,
                s.r,
                s.compute_s * 1e3,
                s.transfer_s * 1e3,
                s.out_bits
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "-".into())
            );
        }
        println!(
            "bottleneck {:.2} ms -> {:.2} items/s",
            plan.bottleneck_s * 1e3,
            plan.throughput_items_per_s
        );
    }
    Ok(())
}
