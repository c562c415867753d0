//! The bench's figures from measured numbers: each stage's time and CPU per microbatch and its
//! overhead, the steady-state throughput, the bottleneck, and the run's ratios to its bounds.

use super::placement::Layout;
use quantpipe_messages::{NodeStats, PlanInfo, PlanStage};
use serde::Serialize;

#[derive(Serialize)]
pub struct StageFigures {
    pub node: String,
    pub units: [usize; 2],
    pub core: Option<usize>,
    pub emulated_slowdown: f64,
    pub microbatches: u64,
    /// Wall-clock seconds per microbatch: forward (emulated slowdown included), codec (decode +
    /// encode), transport of the incoming microbatch (sender's stamp to this node's receipt).
    /// On a core shared with other work these include waiting for the core.
    pub compute_s: f64,
    pub codec_s: f64,
    pub transport_in_s: f64,
    pub predicted_compute_s: f64,
    /// CPU seconds per microbatch: the forward pass, and everything else the node process did
    /// meanwhile (codec, zenoh transport, actors, logging).
    pub forward_cpu_s: f64,
    pub outside_forward_cpu_s: f64,
    /// The overhead: CPU outside the forward pass / forward CPU. What a stage gives up to the
    /// pipeline's machinery, whatever else shares its core.
    pub overhead_share: f64,
    /// (codec + transport in) / compute, wall-clock: includes waiting for a shared core and
    /// transfers that overlap the previous microbatch's compute.
    pub wall_overhead_share: f64,
}

#[derive(Serialize)]
pub struct RunFigures {
    /// Whether the fleet's links were TLS with mutual authentication (else plain TCP).
    pub tls: bool,
    pub nodes: usize,
    pub stages: usize,
    pub cores: usize,
    pub pinned: bool,
    /// What limits the run and why it does not share a core.
    pub bottleneck: String,
    pub predicted_items_per_s: f64,
    pub measured_items_per_s: f64,
    pub ratio_to_bound: f64,
    /// ubatch / the slowest stage's measured forward time per microbatch in this run: the rate
    /// the pipeline could reach with the compute it actually got (on a shared machine other
    /// processes' load moves it away from the profile the plan was made with).
    pub measured_bottleneck_items_per_s: f64,
    pub ratio_to_measured_bottleneck: f64,
    pub latency_p50_s: f64,
    /// The largest stage overhead (CPU outside the forward pass / forward CPU), and the same
    /// share in wall-clock terms.
    pub max_overhead_share: f64,
    pub max_wall_overhead_share: f64,
    pub stage: Vec<StageFigures>,
}

/// Figures of `stage` from its node's counters over the measured run (`stats`, the difference
/// since the warm-up); `incoming` is the key the stage's input arrives on.
pub fn stage_figures(
    stage: &PlanStage,
    stats: &NodeStats,
    incoming: &str,
    core: Option<usize>,
    emulated_slowdown: f64,
) -> StageFigures {
    let m = stats.microbatches.max(1) as f64;
    let transport_in_s = stats
        .links
        .iter()
        .find(|l| l.to == incoming)
        .map(|l| l.transfer_s_mean)
        .unwrap_or(0.0);
    let compute_s = stats.busy_forward_s / m;
    let codec_s = stats.busy_codec_s / m;
    let forward_cpu_s = stats.forward_cpu_s / m;
    let outside_forward_cpu_s = (stats.process_cpu_s - stats.forward_cpu_s).max(0.0) / m;
    StageFigures {
        node: stage.node.clone(),
        units: [stage.l, stage.r],
        core,
        emulated_slowdown,
        microbatches: stats.microbatches,
        compute_s,
        codec_s,
        transport_in_s,
        predicted_compute_s: stage.compute_s,
        forward_cpu_s,
        outside_forward_cpu_s,
        overhead_share: outside_forward_cpu_s / forward_cpu_s.max(1e-9),
        wall_overhead_share: (codec_s + transport_in_s) / compute_s.max(1e-9),
    }
}

/// Steady-state items/s: from the first result to the last of `microbatches` of `ubatch` items.
pub fn steady_items_per_s(arrivals_s: &[f64], microbatches: usize, ubatch: usize) -> f64 {
    let span = arrivals_s[microbatches - 1] - arrivals_s[0];
    ((microbatches - 1) * ubatch) as f64 / span
}

/// The plan's bottleneck (the stage with the longest predicted compute or transfer), where it
/// runs and why it does not share a core; empty for a plan without stages.
pub fn bottleneck(plan: &PlanInfo, layout: &Layout) -> String {
    plan.stages
        .iter()
        .enumerate()
        .max_by(|a, b| {
            a.1.compute_s
                .max(a.1.transfer_s)
                .total_cmp(&b.1.compute_s.max(b.1.transfer_s))
        })
        .map(|(k, s)| {
            let (core, slow) = layout.of(&s.node);
            format!(
                "stage {k} ({}, units {}..{}): {}{}",
                s.node,
                s.l,
                s.r,
                if slow > 1.0 {
                    format!("emulated slowdown x{slow}, ")
                } else {
                    String::new()
                },
                if !layout.pinned {
                    "unpinned (no taskset)".to_owned()
                } else if layout.shared(core) {
                    format!("shares core {core} with an emulated slower node")
                } else {
                    format!("alone on core {core}")
                }
            )
        })
        .unwrap_or_default()
}

/// What one run measured, before its figures are derived.
pub struct Measured {
    pub measured_items_per_s: f64,
    pub latency_p50_s: f64,
    pub stage: Vec<StageFigures>,
}

/// The run's figures: the measured throughput against the plan's bound and against the rate
/// of the slowest stage as measured, and the largest stage overheads.
pub fn run_figures(plan: &PlanInfo, layout: &Layout, ubatch: usize, m: Measured) -> RunFigures {
    let measured = m.measured_items_per_s;
    let max_overhead_share = m.stage.iter().map(|s| s.overhead_share).fold(0.0, f64::max);
    let max_wall_overhead_share = m
        .stage
        .iter()
        .map(|s| s.wall_overhead_share)
        .fold(0.0, f64::max);
    let slowest = m.stage.iter().map(|s| s.compute_s).fold(0.0, f64::max);
    let measured_bottleneck = ubatch as f64 / slowest.max(1e-9);
    RunFigures {
        tls: false,
        nodes: layout.names.len(),
        stages: plan.stages.len(),
        cores: layout.cores,
        pinned: layout.pinned,
        bottleneck: bottleneck(plan, layout),
        predicted_items_per_s: plan.predicted_items_per_s,
        measured_items_per_s: measured,
        ratio_to_bound: measured / plan.predicted_items_per_s,
        measured_bottleneck_items_per_s: measured_bottleneck,
        ratio_to_measured_bottleneck: measured / measured_bottleneck,
        latency_p50_s: m.latency_p50_s,
        max_overhead_share,
        max_wall_overhead_share,
        stage: m.stage,
    }
}

/// The same pipeline over TLS and over plain TCP.
#[derive(Serialize, Debug, PartialEq)]
pub struct TlsCost {
    pub nodes: usize,
    /// Whether the leader made the same plan for both (same nodes and units, stage by stage).
    pub same_plan: bool,
    pub plain_items_per_s: f64,
    pub tls_items_per_s: f64,
    /// TLS throughput / plain throughput (goal: >= 0.95).
    pub ratio: f64,
    /// The largest stage overhead (CPU outside the forward pass / forward CPU) of each.
    pub plain_max_overhead_share: f64,
    pub tls_max_overhead_share: f64,
    /// CPU seconds per microbatch outside the forward passes, summed over the stages: what the
    /// pipeline's machinery (codec, transport, encryption, runtime) costs per microbatch.
    pub plain_outside_forward_cpu_s: f64,
    pub tls_outside_forward_cpu_s: f64,
}

/// The plan of a run as its stages' nodes and units.
fn plan_shape(r: &RunFigures) -> Vec<(&str, [usize; 2])> {
    r.stage.iter().map(|s| (s.node.as_str(), s.units)).collect()
}

/// What TLS costs: `tls` against `plain`, two runs of the same pipeline depth.
pub fn tls_cost(plain: &RunFigures, tls: &RunFigures) -> TlsCost {
    let outside = |r: &RunFigures| r.stage.iter().map(|s| s.outside_forward_cpu_s).sum();
    TlsCost {
        nodes: plain.nodes,
        same_plan: plan_shape(plain) == plan_shape(tls),
        plain_items_per_s: plain.measured_items_per_s,
        tls_items_per_s: tls.measured_items_per_s,
        ratio: tls.measured_items_per_s / plain.measured_items_per_s,
        plain_max_overhead_share: plain.max_overhead_share,
        tls_max_overhead_share: tls.max_overhead_share,
        plain_outside_forward_cpu_s: outside(plain),
        tls_outside_forward_cpu_s: outside(tls),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantpipe_messages::LinkStats;

    fn stage(node: &str, compute_s: f64, transfer_s: f64) -> PlanStage {
        PlanStage {
            node: node.into(),
            l: 0,
            r: 6,
            out_bits: 32,
            compute_s,
            transfer_s,
        }
    }

    fn plan(stages: Vec<PlanStage>) -> PlanInfo {
        PlanInfo {
            epoch: 1,
            model: "vit".into(),
            ubatch: 8,
            source: "planner".into(),
            stages,
            predicted_items_per_s: 10.0,
        }
    }

    #[test]
    fn stage_figures_are_per_microbatch_and_overhead_is_cpu_outside_the_forward_pass() {
        let stats = NodeStats {
            microbatches: 4,
            busy_forward_s: 4.0,
            busy_codec_s: 0.4,
            forward_cpu_s: 2.0,
            process_cpu_s: 2.2,
            links: vec![LinkStats {
                to: "in".into(),
                transfer_s_mean: 0.1,
                ..LinkStats::default()
            }],
            ..NodeStats::default()
        };
        let f = stage_figures(&stage("n0", 0.9, 0.0), &stats, "in", Some(1), 1.0);
        assert_eq!((f.compute_s, f.codec_s, f.transport_in_s), (1.0, 0.1, 0.1));
        assert!((f.forward_cpu_s - 0.5).abs() < 1e-12);
        assert!((f.outside_forward_cpu_s - 0.05).abs() < 1e-12);
        assert!((f.overhead_share - 0.1).abs() < 1e-9);
        assert!((f.wall_overhead_share - 0.2).abs() < 1e-9);
        assert_eq!(f.predicted_compute_s, 0.9);
    }

    #[test]
    fn a_stage_without_an_incoming_link_or_microbatches_counts_no_transport_and_divides_by_one() {
        let stats = NodeStats {
            busy_forward_s: 2.0,
            ..NodeStats::default()
        };
        let f = stage_figures(&stage("n0", 1.0, 0.0), &stats, "in", None, 3.0);
        assert_eq!(
            (f.compute_s, f.transport_in_s, f.microbatches),
            (2.0, 0.0, 0)
        );
        assert_eq!((f.core, f.emulated_slowdown), (None, 3.0));
    }

    #[test]
    fn steady_throughput_counts_the_items_after_the_first_result() {
        // 4 microbatches of 8 items, one result a second: 24 items in 3 s.
        assert_eq!(steady_items_per_s(&[1.0, 2.0, 3.0, 4.0], 4, 8), 8.0);
    }

    #[test]
    fn the_bottleneck_is_the_slowest_stage_and_says_where_it_runs() {
        let layout = Layout::new(3, 2, true, 3.0);
        let p = plan(vec![
            stage("n0", 0.1, 0.0),
            stage("n1", 0.3, 0.0),
            stage("n2", 0.1, 0.2),
        ]);
        assert_eq!(
            bottleneck(&p, &layout),
            "stage 1 (n1, units 0..6): alone on core 1"
        );
        let p = plan(vec![stage("n0", 0.1, 0.5), stage("n1", 0.3, 0.0)]);
        assert_eq!(
            bottleneck(&p, &layout),
            "stage 0 (n0, units 0..6): emulated slowdown x3, shares core 0 with an emulated slower node"
        );
        let unpinned = Layout::new(2, 2, false, 3.0);
        assert_eq!(
            bottleneck(&p, &unpinned),
            "stage 0 (n0, units 0..6): unpinned (no taskset)"
        );
        assert_eq!(bottleneck(&plan(vec![]), &layout), "");
    }

    #[test]
    fn run_figures_set_the_measured_rate_against_the_bound_and_the_slowest_stage() {
        let layout = Layout::new(2, 2, true, 3.0);
        let p = plan(vec![stage("n0", 0.5, 0.0), stage("n1", 1.0, 0.0)]);
        let stats = |forward: f64| NodeStats {
            microbatches: 1,
            busy_forward_s: forward,
            forward_cpu_s: forward,
            process_cpu_s: forward * 1.02,
            ..NodeStats::default()
        };
        let stage = vec![
            stage_figures(&p.stages[0], &stats(0.5), "a", Some(0), 1.0),
            stage_figures(&p.stages[1], &stats(1.0), "b", Some(1), 1.0),
        ];
        let m = Measured {
            measured_items_per_s: 6.0,
            latency_p50_s: 2.0,
            stage,
        };
        let r = run_figures(&p, &layout, 8, m);
        assert_eq!((r.nodes, r.stages, r.cores, r.pinned), (2, 2, 2, true));
        assert_eq!(r.ratio_to_bound, 0.6);
        assert_eq!(r.measured_bottleneck_items_per_s, 8.0);
        assert_eq!(r.ratio_to_measured_bottleneck, 0.75);
        assert!((r.max_overhead_share - 0.02).abs() < 1e-9);
        assert_eq!(r.max_wall_overhead_share, 0.0);
        assert_eq!(r.latency_p50_s, 2.0);
        assert!(r.bottleneck.starts_with("stage 1 (n1"));
    }

    #[test]
    fn tls_cost_sets_tls_against_plain_and_tells_whether_the_plans_agree() {
        let layout = Layout::new(2, 2, true, 3.0);
        let p = plan(vec![stage("n0", 0.5, 0.0), stage("n1", 1.0, 0.0)]);
        let run = |items_per_s: f64, outside: f64| {
            let stats = NodeStats {
                microbatches: 1,
                busy_forward_s: 1.0,
                forward_cpu_s: 1.0,
                process_cpu_s: 1.0 + outside,
                ..NodeStats::default()
            };
            let stage = p
                .stages
                .iter()
                .map(|s| stage_figures(s, &stats, "in", Some(0), 1.0))
                .collect();
            let m = Measured {
                measured_items_per_s: items_per_s,
                latency_p50_s: 1.0,
                stage,
            };
            run_figures(&p, &layout, 8, m)
        };
        let cost = tls_cost(&run(10.0, 0.02), &run(9.6, 0.04));
        assert!(cost.same_plan);
        assert!((cost.ratio - 0.96).abs() < 1e-12);
        assert!((cost.plain_outside_forward_cpu_s - 0.04).abs() < 1e-12);
        assert!((cost.tls_outside_forward_cpu_s - 0.08).abs() < 1e-12);
        assert!((cost.tls_max_overhead_share - 0.04).abs() < 1e-12);
        let mut other = run(9.6, 0.04);
        other.stage[1].units = [7, 12];
        assert!(!tls_cost(&run(10.0, 0.02), &other).same_plan);
    }
}
