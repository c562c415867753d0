//! `quantpipe bench adaptive`: adaptive quantization on shaped links. A 3-stage MiniLM fleet in
//! network namespaces (`quantpipe_launcher::trace_fleet`) whose inter-stage links follow a
//! bandwidth trace by `tc tbf`, once per policy. Per plateau of the trace: the time to regain
//! 95% of the target after the step, the throughput held after 2 windows, and the mean bitwidth
//! sent against the one an oracle that knew the trace would send at.
//!
//! Needs root (network namespaces, `tc`) and MiniLM in `data/minilm` (`scripts/setup`).

use crate::timeline_chart::write_timeline_chart;
use anyhow::{anyhow, bail, Result};
use quantpipe_adaptive::trace::Trace;
use quantpipe_launcher::netns::Netns;
use quantpipe_launcher::trace_fleet::{figures, run_trace, Params, PlateauFigures};
use serde::Serialize;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The bandwidth trace both inter-stage links follow (`at_s, mbit` lines).
    #[arg(long, default_value = "config/traces/step-200-20-5-200.csv")]
    trace: PathBuf,
    /// How long the last rate of the trace is held, seconds (default: the first step's length).
    #[arg(long)]
    hold_s: Option<f64>,
    /// Policies to run, one fleet each.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "controller,heuristic,fixed"
    )]
    policies: Vec<String>,
    #[arg(long, default_value = "data/minilm")]
    model_dir: PathBuf,
    #[arg(long, default_value_t = 20.0)]
    target_items_per_s: f64,
    /// The quantizer's window, seconds.
    #[arg(long, default_value_t = 3.0)]
    window_s: f64,
    #[arg(long, default_value_t = 2)]
    min_bits: u8,
    /// Where logs, configs and timelines go (kept).
    #[arg(long, default_value = "target/bench-adaptive")]
    out: PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct PolicyFigures {
    policy: String,
    startup_s: f64,
    plateaus: Vec<PlateauFigures>,
    /// Worst recovery over the feasible plateaus after a drop, in windows (None: a plateau never
    /// regained the target).
    worst_recovery_windows_after_drops: Option<f64>,
    /// Mean bitwidth over the feasible plateaus, and the oracle's.
    mean_bits: Option<f64>,
    oracle_mean_bits: f64,
    /// Nodes that left or stopped answering for 8 windows in a row: a transport fault that
    /// makes the run's figures say nothing about the policy.
    unresponsive_nodes: Vec<String>,
    timeline: PathBuf,
    chart: PathBuf,
}

#[derive(Serialize)]
struct Report {
    trace: PathBuf,
    steps: Vec<(f64, f64)>,
    params: Params,
    policies: Vec<PolicyFigures>,
}

pub fn run(args: Args) -> Result<()> {
    let trace = Trace::read(&args.trace).map_err(|e| anyhow!("{e}"))?;
    let steps = trace.steps().to_vec();
    let hold_s = match (args.hold_s, steps.get(1)) {
        (Some(h), _) => h,
        (None, Some(s)) => s.0,
        (None, None) => bail!("a one-step trace needs --hold-s"),
    };
    if !args.model_dir.join("model.safetensors").exists() {
        bail!(
            "no MiniLM in {}: run scripts/setup",
            args.model_dir.display()
        );
    }
    let params = Params {
        target_items_per_s: args.target_items_per_s,
        window_s: args.window_s,
        min_bits: args.min_bits,
        ..Params::default()
    };
    let bin = std::env::current_exe()?;
    std::fs::create_dir_all(&args.out)?;
    let net = Netns::new("qpbench", 5).map_err(|e| anyhow!("{e}"))?;
    let mut out = Vec::new();
    for (i, policy) in args.policies.iter().enumerate() {
        eprintln!("{policy}: running the trace");
        let run = run_trace(
            &net,
            &bin,
            &args.model_dir,
            &args.out,
            policy,
            7447 + i as u16,
            &trace,
            hold_s,
            &params,
        )
        .map_err(|e| anyhow!(e))?;
        let plateaus = figures(&run, &params);
        let report_dir = args.out.join(policy).join("report");
        // The client is stopped when the trace ends, before it draws its own chart.
        let chart = report_dir.join("timeline.png");
        write_timeline_chart(
            &chart,
            &format!("{policy}: {} items/s target", params.target_items_per_s),
            &run.rows,
        )?;
        let feasible: Vec<&PlateauFigures> = plateaus.iter().filter(|p| p.feasible).collect();
        // Plateaus entered by a drop: recovery is the figure of interest there.
        let drops = plateaus
            .iter()
            .zip(std::iter::once(f64::INFINITY).chain(plateaus.iter().map(|p| p.mbit)))
            .filter(|(p, before)| p.feasible && p.mbit < *before)
            .map(|(p, _)| p.regained_after_windows);
        let worst = drops
            .into_iter()
            .try_fold(0.0f64, |w, r| r.map(|r| w.max(r)));
        let bits: Vec<f64> = feasible.iter().filter_map(|p| p.mean_bits).collect();
        out.push(PolicyFigures {
            policy: policy.clone(),
            startup_s: run.startup_s,
            worst_recovery_windows_after_drops: worst,
            mean_bits: (!bits.is_empty()).then(|| bits.iter().sum::<f64>() / bits.len() as f64),
            oracle_mean_bits: feasible.iter().map(|p| p.oracle_bits).sum::<f64>()
                / feasible.len().max(1) as f64,
            unresponsive_nodes: run.unresponsive_nodes(8),
            plateaus,
            timeline: report_dir.join("timeline.csv"),
            chart,
        });
    }
    let report = Report {
        trace: args.trace.clone(),
        steps,
        params,
        policies: out,
    };
    super::print(&report, args.json, |r| {
        let mut s = String::new();
        for p in &r.policies {
            s += &format!(
                "{}: worst recovery after a drop {} windows; mean bits {} (oracle {:.2}){}\n",
                p.policy,
                p.worst_recovery_windows_after_drops
                    .map_or("never".into(), |w| format!("{w:.1}")),
                p.mean_bits.map_or("-".into(), |b| format!("{b:.2}")),
                p.oracle_mean_bits,
                if p.unresponsive_nodes.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; TRANSPORT FAULT: {:?} stopped answering",
                        p.unresponsive_nodes
                    )
                }
            );
            for f in &p.plateaus {
                s += &format!(
                    "  {:>6} Mbit/s: held {} items/s ({}), regained after {} s, bits {}\n",
                    f.mbit,
                    f.held_items_per_s.map_or("-".into(), |h| format!("{h:.1}")),
                    f.held_share_of_target
                        .map_or("-".into(), |h| format!("{:.0}% of target", 100.0 * h)),
                    f.regained_after_s
                        .map_or("never".into(), |x| format!("{x:.1}")),
                    f.mean_bits.map_or("-".into(), |b| format!("{b:.2}")),
                );
            }
        }
        s
    })
}
