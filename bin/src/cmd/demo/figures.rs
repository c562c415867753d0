//! Figures of the demo computed from what was measured: accuracy, agreement with the baseline,
//! per-stage utilisation.

use super::devices;
use quantpipe_messages::{NodeStats, PlanStage};
use serde::Serialize;

#[derive(Serialize)]
pub struct StageReport {
    pub node: String,
    pub threads: i32,
    pub emulated_slowdown: f64,
    pub units: [usize; 2],
    pub out_bits: u8,
    pub predicted_compute_s: f64,
    pub microbatches: u64,
    pub busy_forward_s: f64,
    pub busy_codec_s: f64,
    /// Busy time over the run's wall time.
    pub utilisation: f64,
    pub dropped: u64,
}

/// What the node of `stage` did during a run of `elapsed_s` seconds, from its counters.
pub fn stage_report(stage: &PlanStage, stats: &NodeStats, elapsed_s: f64) -> StageReport {
    let d = devices::named(&stage.node);
    StageReport {
        node: stage.node.clone(),
        threads: d.map(|d| d.threads).unwrap_or(0),
        emulated_slowdown: d.map(|d| d.slowdown).unwrap_or(1.0),
        units: [stage.l, stage.r],
        out_bits: stage.out_bits,
        predicted_compute_s: stage.compute_s,
        microbatches: stats.microbatches,
        busy_forward_s: stats.busy_forward_s,
        busy_codec_s: stats.busy_codec_s,
        utilisation: (stats.busy_forward_s + stats.busy_codec_s) / elapsed_s,
        dropped: stats.dropped_malformed
            + stats.dropped_foreign_fleet
            + stats.dropped_stale_epoch
            + stats.dropped_wrong_stage,
    }
}

/// Share of `predicted` labels equal to `truth`, item by item.
pub fn accuracy(predicted: &[usize], truth: &[usize]) -> f64 {
    predicted.iter().zip(truth).filter(|(a, b)| a == b).count() as f64 / predicted.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(node: &str) -> PlanStage {
        PlanStage {
            node: node.into(),
            l: 0,
            r: 4,
            out_bits: 8,
            compute_s: 0.1,
            transfer_s: 0.0,
        }
    }

    #[test]
    fn accuracy_is_the_share_of_matching_labels() {
        assert_eq!(accuracy(&[1, 2, 3, 4], &[1, 2, 0, 0]), 0.5);
        assert_eq!(accuracy(&[1, 2], &[1, 2]), 1.0);
    }

    #[test]
    fn utilisation_is_forward_and_codec_time_over_the_run_and_every_drop_counts() {
        let stats = NodeStats {
            microbatches: 10,
            busy_forward_s: 3.0,
            busy_codec_s: 1.0,
            dropped_malformed: 1,
            dropped_foreign_fleet: 2,
            dropped_stale_epoch: 3,
            dropped_wrong_stage: 4,
            ..NodeStats::default()
        };
        let r = stage_report(&stage("board-a"), &stats, 8.0);
        assert_eq!(r.utilisation, 0.5);
        assert_eq!(r.dropped, 10);
        assert_eq!((r.threads, r.emulated_slowdown), (1, 4.0));
        assert_eq!(r.units, [0, 4]);
    }

    #[test]
    fn a_stage_on_an_unknown_node_has_no_threads_and_no_slowdown() {
        let r = stage_report(&stage("elsewhere"), &NodeStats::default(), 1.0);
        assert_eq!((r.threads, r.emulated_slowdown), (0, 1.0));
    }
}
