//! The bench on a real fleet: a 3-stage MiniLM fleet in network namespaces whose inter-stage
//! links follow each trace by `tc tbf`, once per trace and policy. Every run is judged window by
//! window over its trace; over a step trace, also plateau by plateau: the time to regain 95% of
//! the target after the step, the throughput held after 2 windows, and the mean bitwidth against
//! the oracle's.
//!
//! Needs root (network namespaces, `tc`) and MiniLM in `data/minilm` (`scripts/setup`).

use super::inputs::{hold_s, trace_name};
use super::recovery::worst_recovery_after_drops;
use super::text::judgement_line;
use super::Args;
use crate::timeline_chart::write_timeline_chart;
use anyhow::{anyhow, bail, Result};
use quantpipe_adaptive::judge::Judgement;
use quantpipe_adaptive::policy::PolicyKind;
use quantpipe_adaptive::trace::Trace;
use quantpipe_launcher::netns::Netns;
use quantpipe_launcher::trace_fleet::{figures, judgement, run_trace, Params, PlateauFigures};
use serde::Serialize;
use std::fmt::Write;
use std::path::PathBuf;

/// A step trace's figures for one policy.
#[derive(Debug, Serialize)]
struct PlateauSummary {
    plateaus: Vec<PlateauFigures>,
    /// Worst recovery over the feasible plateaus after a drop, in windows (None: a plateau never
    /// regained the target).
    worst_recovery_windows_after_drops: Option<f64>,
    /// Mean bitwidth over the feasible plateaus, and the oracle's.
    mean_bits: Option<f64>,
    oracle_mean_bits: f64,
}

#[derive(Serialize)]
struct PolicyFigures {
    policy: String,
    startup_s: f64,
    /// The run judged window by window (quantizer windows of the client's timeline).
    judgement: Judgement,
    /// Per plateau, for a step trace only.
    step_trace: Option<PlateauSummary>,
    /// Nodes that left or stopped answering for 8 windows in a row: a transport fault that
    /// makes the run's figures say nothing about the policy.
    unresponsive_nodes: Vec<String>,
    timeline: PathBuf,
    chart: PathBuf,
}

#[derive(Serialize)]
struct TraceReport {
    trace: PathBuf,
    hold_s: f64,
    steps: usize,
    policies: Vec<PolicyFigures>,
}

#[derive(Serialize)]
struct Report {
    params: Params,
    traces: Vec<TraceReport>,
}

/// Consecutive timeline windows a node may miss before it counts as gone silent.
const UNRESPONSIVE_WINDOWS: usize = 8;

pub fn run(args: &Args, traces: &[PathBuf], policies: &[PolicyKind]) -> Result<()> {
    if !args.model_dir.join("model.safetensors").exists() {
        bail!(
            "no MiniLM in {}: run scripts/setup",
            args.model_dir.display()
        );
    }
    for flag in [
        ("--max-bits", args.max_bits.is_some()),
        ("--shape", !args.shape.is_empty()),
        ("--items-per-message", args.items_per_message.is_some()),
        ("--compute-items-per-s", args.compute_items_per_s.is_some()),
        ("--in-flight", args.in_flight.is_some()),
    ] {
        if flag.1 {
            bail!("{} is a setting of the simulation: add --simulate", flag.0);
        }
    }
    let defaults = Params::default();
    let params = Params {
        target_items_per_s: args
            .target_items_per_s
            .unwrap_or(defaults.target_items_per_s),
        window_s: args.window_s.unwrap_or(defaults.window_s),
        min_bits: args.min_bits.unwrap_or(defaults.min_bits),
        ..defaults
    };
    let bin = std::env::current_exe()?;
    let net = Netns::new("qpbench", 5).map_err(|e| anyhow!("{e}"))?;
    let mut port = 7447;
    let mut out = Vec::new();
    for path in traces {
        let trace = Trace::read(path).map_err(|e| anyhow!("{e}"))?;
        let hold_s = hold_s(args.hold_s, trace.steps())?;
        let stepped = trace.has_plateaus(params.window_s);
        let dir = args.out.join(trace_name(path));
        std::fs::create_dir_all(&dir)?;
        let mut figures_of = Vec::new();
        for policy in policies {
            let policy = policy.to_string();
            eprintln!("{}: {policy}: running the trace", path.display());
            let run = run_trace(
                &net,
                &bin,
                &args.model_dir,
                &dir,
                &policy,
                port,
                &trace,
                hold_s,
                &params,
            )
            .map_err(|e| anyhow!(e))?;
            // A port per run: the last fleet's sockets may linger.
            port += 1;
            let report_dir = dir.join(&policy).join("report");
            // The client is stopped when the trace ends, before it draws its own chart.
            let chart = report_dir.join("timeline.png");
            let title = format!(
                "{policy} on {}: {} items/s target",
                trace_name(path),
                params.target_items_per_s
            );
            write_timeline_chart(&chart, &title, &run.rows)?;
            figures_of.push(PolicyFigures {
                policy: policy.clone(),
                startup_s: run.startup_s,
                judgement: judgement(&run, &params),
                step_trace: stepped.then(|| plateau_summary(figures(&run, &params))),
                unresponsive_nodes: run.unresponsive_nodes(UNRESPONSIVE_WINDOWS),
                timeline: report_dir.join("timeline.csv"),
                chart,
            });
        }
        out.push(TraceReport {
            trace: path.clone(),
            hold_s,
            steps: trace.steps().len(),
            policies: figures_of,
        });
    }
    let report = Report {
        params,
        traces: out,
    };
    super::super::print(&report, args.json, text)
}

/// A step trace's figures from its plateaus.
fn plateau_summary(plateaus: Vec<PlateauFigures>) -> PlateauSummary {
    let feasible: Vec<&PlateauFigures> = plateaus.iter().filter(|p| p.feasible).collect();
    let bits: Vec<f64> = feasible.iter().filter_map(|p| p.mean_bits).collect();
    PlateauSummary {
        worst_recovery_windows_after_drops: worst_recovery_after_drops(
            plateaus
                .iter()
                .map(|p| (p.mbit, p.feasible, p.regained_after_windows)),
        ),
        mean_bits: (!bits.is_empty()).then(|| bits.iter().sum::<f64>() / bits.len() as f64),
        oracle_mean_bits: feasible.iter().map(|p| p.oracle_bits).sum::<f64>()
            / feasible.len().max(1) as f64,
        plateaus,
    }
}

/// The report as text: per trace and policy a line of figures and, over a step trace, one
/// line per plateau.
fn text(r: &Report) -> String {
    let mut s = String::new();
    for t in &r.traces {
        let _ = writeln!(s, "{} ({} steps)", t.trace.display(), t.steps);
        for p in &t.policies {
            let _ = writeln!(
                s,
                "  {}: {}{}",
                p.policy,
                judgement_line(&p.judgement),
                if p.unresponsive_nodes.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; TRANSPORT FAULT: {:?} stopped answering",
                        p.unresponsive_nodes
                    )
                }
            );
            if let Some(steps) = &p.step_trace {
                s += &plateau_lines(steps);
            }
        }
    }
    s
}

fn plateau_lines(p: &PlateauSummary) -> String {
    let mut s = format!(
        "    worst recovery after a drop {} windows; mean bits {} (oracle {:.2}) on feasible plateaus\n",
        p.worst_recovery_windows_after_drops
            .map_or("never".into(), |w| format!("{w:.1}")),
        p.mean_bits.map_or("-".into(), |b| format!("{b:.2}")),
        p.oracle_mean_bits,
    );
    for f in &p.plateaus {
        let _ = writeln!(
            s,
            "    {:>6} Mbit/s: held {} items/s ({}), regained after {} s, bits {}",
            f.mbit,
            f.held_items_per_s.map_or("-".into(), |h| format!("{h:.1}")),
            f.held_share_of_target
                .map_or("-".into(), |h| format!("{:.0}% of target", 100.0 * h)),
            f.regained_after_s
                .map_or("never".into(), |x| format!("{x:.1}")),
            f.mean_bits.map_or("-".into(), |b| format!("{b:.2}")),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plateau(mbit: f64, feasible: bool, bits: Option<f64>) -> PlateauFigures {
        PlateauFigures {
            mbit,
            feasible,
            held_items_per_s: None,
            held_share_of_target: None,
            regained_after_s: None,
            regained_after_windows: Some(1.0),
            mean_bits_per_link: Default::default(),
            mean_bits: bits,
            oracle_bits: 8.0,
        }
    }

    #[test]
    fn mean_bits_average_the_feasible_plateaus_that_sent() {
        let plateaus = vec![
            plateau(200.0, true, Some(8.0)),
            plateau(20.0, true, None),
            plateau(5.0, false, Some(2.0)),
            plateau(100.0, true, Some(6.0)),
        ];
        let f = plateau_summary(plateaus);
        assert_eq!(f.mean_bits, Some(7.0));
        assert_eq!(f.oracle_mean_bits, 8.0);
        assert_eq!(f.worst_recovery_windows_after_drops, Some(1.0));
        let none = plateau_summary(vec![plateau(5.0, false, None)]);
        assert_eq!((none.mean_bits, none.oracle_mean_bits), (None, 0.0));
    }
}
