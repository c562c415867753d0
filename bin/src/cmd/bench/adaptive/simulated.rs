//! The bench in the link simulation (`--simulate`): every policy over every trace on one link,
//! judged by `quantpipe_adaptive::compare`, a chart per trace. No root, no model, seconds.

use super::chart::write_comparison_chart;
use super::inputs::{hold_s, trace_name};
use super::recovery::{simulated_steps, StepFigures};
use super::text::{judgement_line, recovery_line};
use super::Args;
use anyhow::{anyhow, bail, Result};
use quantpipe_adaptive::compare::{compare, LinkSetup};
use quantpipe_adaptive::judge::Judgement;
use quantpipe_adaptive::policy::PolicyKind;
use quantpipe_adaptive::sizes::{allowed_bits, SizeTable};
use quantpipe_adaptive::trace::Trace;
use quantpipe_messages::Bits;
use serde::Serialize;
use std::fmt::Write;
use std::path::PathBuf;

/// What crosses MiniLM's cut per message when `--shape` is not given: 8 articles of 128 tokens
/// of 384 hidden values (what `LinkSetup::minilm_cut` encodes).
const MINILM_SHAPE: [usize; 3] = [8, 128, 384];

/// The link as the report states it.
#[derive(Debug, Serialize)]
struct LinkReport {
    shape: Vec<usize>,
    min_bits: u8,
    max_bits: u8,
    target_items_per_s: f64,
    compute_items_per_s: f64,
    items_per_message: f64,
    window_s: f64,
    in_flight: usize,
}

#[derive(Debug, Serialize)]
struct PolicyFigures {
    policy: String,
    judgement: Judgement,
    /// Recovery per step, for a step trace only.
    step_trace: Option<StepFigures>,
}

#[derive(Debug, Serialize)]
struct TraceReport {
    trace: PathBuf,
    hold_s: f64,
    steps: usize,
    chart: PathBuf,
    policies: Vec<PolicyFigures>,
}

#[derive(Debug, Serialize)]
struct Report {
    link: LinkReport,
    traces: Vec<TraceReport>,
}

pub fn run(args: &Args, traces: &[PathBuf], policies: &[PolicyKind]) -> Result<()> {
    let (link, shape) = link_setup(args)?;
    std::fs::create_dir_all(&args.out)?;
    let mut out = Vec::new();
    for path in traces {
        let trace = Trace::read(path).map_err(|e| anyhow!("{e}"))?;
        let hold_s = hold_s(args.hold_s, trace.steps())?;
        let runs = compare(&trace, hold_s, &link, policies).map_err(|e| anyhow!("{e}"))?;
        let chart = args.out.join(format!("{}.png", trace_name(path)));
        let title = format!(
            "{} (simulated link, target {} items/s)",
            trace_name(path),
            link.target_items_per_s
        );
        write_comparison_chart(
            &chart,
            &title,
            &trace,
            hold_s,
            &runs,
            link.target_items_per_s,
        )?;
        out.push(TraceReport {
            trace: path.clone(),
            hold_s,
            steps: trace.steps().len(),
            chart,
            policies: runs
                .into_iter()
                .map(|r| PolicyFigures {
                    step_trace: r.plateaus.as_ref().map(simulated_steps),
                    policy: r.policy,
                    judgement: r.judgement,
                })
                .collect(),
        });
    }
    let report = Report {
        link: LinkReport {
            shape,
            min_bits: link.min_bits.get(),
            max_bits: link.max_bits.get(),
            target_items_per_s: link.target_items_per_s,
            compute_items_per_s: link.compute_items_per_s,
            items_per_message: link.items_per_message,
            window_s: link.window_s,
            in_flight: link.in_flight,
        },
        traces: out,
    };
    super::super::print(&report, args.json, text)
}

/// The simulated link: `LinkSetup::minilm_cut()` with the fields the flags give replaced, and
/// the shape its sizes were computed for.
fn link_setup(args: &Args) -> Result<(LinkSetup, Vec<usize>)> {
    let base = LinkSetup::minilm_cut();
    let bits = |flag: &str, given: Option<u8>, default: Bits| match given {
        None => Ok(default),
        Some(b) => Bits::new(b).map_err(|e| anyhow!("{flag}: {e}")),
    };
    let min_bits = bits("--min-bits", args.min_bits, base.min_bits)?;
    let max_bits = bits("--max-bits", args.max_bits, base.max_bits)?;
    if min_bits > max_bits {
        bail!(
            "--min-bits {} is above --max-bits {}",
            min_bits.get(),
            max_bits.get()
        );
    }
    let shape = if args.shape.is_empty() {
        MINILM_SHAPE.to_vec()
    } else {
        args.shape.clone()
    };
    let sizes = SizeTable::from_shapes(
        std::slice::from_ref(&shape),
        &allowed_bits(min_bits, max_bits),
    )
    .map_err(|e| anyhow!("--shape {shape:?}: {e}"))?;
    let link = LinkSetup {
        sizes,
        min_bits,
        max_bits,
        target_items_per_s: args.target_items_per_s.unwrap_or(base.target_items_per_s),
        compute_items_per_s: args.compute_items_per_s.unwrap_or(base.compute_items_per_s),
        items_per_message: args.items_per_message.unwrap_or(base.items_per_message),
        window_s: args.window_s.unwrap_or(base.window_s),
        in_flight: args.in_flight.unwrap_or(base.in_flight),
    };
    Ok((link, shape))
}

/// The report as text: per trace, a line per policy and, over a step trace, its recovery.
fn text(r: &Report) -> String {
    let mut s = String::new();
    for t in &r.traces {
        let _ = writeln!(
            s,
            "{} ({} steps; chart {})",
            t.trace.display(),
            t.steps,
            t.chart.display()
        );
        for p in &t.policies {
            let _ = writeln!(s, "  {:>15}: {}", p.policy, judgement_line(&p.judgement));
            if let Some(steps) = &p.step_trace {
                let _ = writeln!(s, "  {:>15}  {}", "", recovery_line(&steps.steps));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn args(line: &[&str]) -> Args {
        Cli::parse_from(std::iter::once("bench").chain(line.iter().copied())).args
    }

    #[test]
    fn without_flags_the_link_is_minilm_s_cut() {
        let (link, shape) = link_setup(&args(&["--simulate"])).unwrap();
        assert_eq!(link, LinkSetup::minilm_cut());
        assert_eq!(shape, MINILM_SHAPE);
    }

    #[test]
    fn flags_replace_the_link_s_fields() {
        let (link, _) = link_setup(&args(&[
            "--simulate",
            "--min-bits",
            "4",
            "--max-bits",
            "16",
            "--shape",
            "4,64,384",
            "--target-items-per-s",
            "10",
            "--in-flight",
            "3",
        ]))
        .unwrap();
        assert_eq!((link.min_bits.get(), link.max_bits.get()), (4, 16));
        assert_eq!(link.sizes.lowest().0.get(), 4);
        assert_eq!(link.sizes.highest().0.get(), 16);
        assert_eq!((link.target_items_per_s, link.in_flight), (10.0, 3));
        assert_eq!(link.window_s, LinkSetup::minilm_cut().window_s);
    }

    #[test]
    fn bad_bitwidths_are_refused_by_name() {
        let err = link_setup(&args(&["--min-bits", "17"])).unwrap_err();
        assert!(err.to_string().contains("--min-bits"), "{err}");
        let err = link_setup(&args(&["--min-bits", "16", "--max-bits", "8"])).unwrap_err();
        assert!(err.to_string().contains("above --max-bits"), "{err}");
    }

    #[test]
    fn every_trace_in_config_runs_and_the_step_trace_alone_has_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let traces = super::super::inputs::trace_paths(
            &[],
            true,
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/traces"),
        )
        .unwrap();
        let a = args(&["--simulate", "--out", dir.path().to_str().unwrap()]);
        let (link, _) = link_setup(&a).unwrap();
        for path in &traces {
            let trace = Trace::read(path).unwrap();
            let hold = hold_s(None, trace.steps()).unwrap();
            let runs = compare(&trace, hold, &link, &[PolicyKind::Fixed]).unwrap();
            let stepped = trace_name(path).starts_with("step");
            assert_eq!(runs[0].plateaus.is_some(), stepped, "{}", path.display());
        }
        run(&a, &traces[..1], &[PolicyKind::Fixed]).unwrap();
        assert!(dir
            .path()
            .join(format!("{}.png", trace_name(&traces[0])))
            .exists());
    }
}
