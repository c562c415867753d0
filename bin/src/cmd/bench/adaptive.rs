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
use std::fmt::Write;
use std::path::{Path, PathBuf};

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
    let hold_s = hold_s(args.hold_s, &steps)?;
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
        let report_dir = args.out.join(policy).join("report");
        // The client is stopped when the trace ends, before it draws its own chart.
        let chart = report_dir.join("timeline.png");
        let title = format!("{policy}: {} items/s target", params.target_items_per_s);
        write_timeline_chart(&chart, &title, &run.rows)?;
        out.push(PolicyFigures {
            unresponsive_nodes: run.unresponsive_nodes(8),
            ..policy_figures(policy, run.startup_s, figures(&run, &params), &report_dir)
        });
    }
    let report = Report {
        trace: args.trace.clone(),
        steps,
        params,
        policies: out,
    };
    super::print(&report, args.json, text)
}

/// How long the trace's last rate is held: `--hold-s`, or else the length of the first step.
fn hold_s(given: Option<f64>, steps: &[(f64, f64)]) -> Result<f64> {
    match (given, steps.get(1)) {
        (Some(h), _) => Ok(h),
        (None, Some(s)) => Ok(s.0),
        (None, None) => bail!("a one-step trace needs --hold-s"),
    }
}

/// A policy's figures from its plateaus (no unresponsive node yet); its timeline and chart
/// are in `report_dir`.
fn policy_figures(
    policy: &str,
    startup_s: f64,
    plateaus: Vec<PlateauFigures>,
    report_dir: &Path,
) -> PolicyFigures {
    let feasible: Vec<&PlateauFigures> = plateaus.iter().filter(|p| p.feasible).collect();
    let bits: Vec<f64> = feasible.iter().filter_map(|p| p.mean_bits).collect();
    PolicyFigures {
        policy: policy.to_owned(),
        startup_s,
        worst_recovery_windows_after_drops: worst_recovery_after_drops(&plateaus),
        mean_bits: (!bits.is_empty()).then(|| bits.iter().sum::<f64>() / bits.len() as f64),
        oracle_mean_bits: feasible.iter().map(|p| p.oracle_bits).sum::<f64>()
            / feasible.len().max(1) as f64,
        unresponsive_nodes: Vec::new(),
        plateaus,
        timeline: report_dir.join("timeline.csv"),
        chart: report_dir.join("timeline.png"),
    }
}

/// The longest recovery, in windows, over the feasible plateaus entered by a drop (recovery
/// is the figure of interest there); None when one of them never regained the target.
fn worst_recovery_after_drops(plateaus: &[PlateauFigures]) -> Option<f64> {
    plateaus
        .iter()
        .zip(std::iter::once(f64::INFINITY).chain(plateaus.iter().map(|p| p.mbit)))
        .filter(|(p, before)| p.feasible && p.mbit < *before)
        .map(|(p, _)| p.regained_after_windows)
        .try_fold(0.0f64, |w, r| r.map(|r| w.max(r)))
}

/// The report as text: per policy a line of figures, then one line per plateau.
fn text(r: &Report) -> String {
    let mut s = String::new();
    for p in &r.policies {
        let _ = writeln!(
            s,
            "{}: worst recovery after a drop {} windows; mean bits {} (oracle {:.2}){}",
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
            let _ = writeln!(
                s,
                "  {:>6} Mbit/s: held {} items/s ({}), regained after {} s, bits {}",
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plateau(
        mbit: f64,
        feasible: bool,
        regained: Option<f64>,
        bits: Option<f64>,
    ) -> PlateauFigures {
        PlateauFigures {
            mbit,
            feasible,
            held_items_per_s: None,
            held_share_of_target: None,
            regained_after_s: None,
            regained_after_windows: regained,
            mean_bits_per_link: Default::default(),
            mean_bits: bits,
            oracle_bits: 8.0,
        }
    }

    #[test]
    fn recovery_counts_only_feasible_plateaus_entered_by_a_drop() {
        let plateaus = [
            plateau(200.0, true, Some(9.0), None),
            plateau(20.0, true, Some(2.0), None),
            plateau(5.0, false, None, None),
            plateau(200.0, true, Some(7.0), None),
        ];
        assert_eq!(worst_recovery_after_drops(&plateaus), Some(9.0));
        assert_eq!(worst_recovery_after_drops(&plateaus[1..]), Some(2.0));
    }

    #[test]
    fn a_drop_never_recovered_from_has_no_worst_recovery() {
        let plateaus = [
            plateau(200.0, true, Some(1.0), None),
            plateau(20.0, true, None, None),
        ];
        assert_eq!(worst_recovery_after_drops(&plateaus), None);
    }

    #[test]
    fn mean_bits_average_the_feasible_plateaus_that_sent() {
        let plateaus = vec![
            plateau(200.0, true, Some(1.0), Some(8.0)),
            plateau(20.0, true, Some(1.0), None),
            plateau(5.0, false, None, Some(2.0)),
            plateau(100.0, true, Some(1.0), Some(6.0)),
        ];
        let f = policy_figures("fixed", 1.5, plateaus, Path::new("out"));
        assert_eq!(f.mean_bits, Some(7.0));
        assert_eq!(f.oracle_mean_bits, 8.0);
        assert_eq!(f.chart, Path::new("out/timeline.png"));
        assert_eq!(f.timeline, Path::new("out/timeline.csv"));
        let none = policy_figures(
            "fixed",
            0.0,
            vec![plateau(5.0, false, None, None)],
            Path::new(""),
        );
        assert_eq!((none.mean_bits, none.oracle_mean_bits), (None, 0.0));
    }

    #[test]
    fn the_hold_is_the_given_one_or_the_first_step_s_length() {
        assert_eq!(hold_s(Some(4.0), &[(0.0, 200.0)]).unwrap(), 4.0);
        assert_eq!(hold_s(None, &[(0.0, 200.0), (30.0, 20.0)]).unwrap(), 30.0);
        assert!(hold_s(None, &[(0.0, 200.0)]).is_err());
    }
}
