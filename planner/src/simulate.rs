//! A plan run through the discrete-event simulator: the plan carries each stage's compute,
//! transfer and latency and its buffer counts, which is all [`quantpipe_simulator`] needs.

use quantpipe_simulator::{simulate_pipeline, SimError, SimReport, SimStage};

use crate::Plan;

/// Simulates a plan: its stages' compute, transfer and latency, and its buffer counts.
pub fn simulate(plan: &Plan, microbatches: usize) -> Result<SimReport, SimError> {
    let stages: Vec<SimStage> = plan
        .stages
        .iter()
        .map(|s| SimStage {
            compute_s: s.compute_s,
            transfer_s: s.transfer_s,
            latency_s: s.out_latency_s,
        })
        .collect();
    simulate_pipeline(
        &stages,
        plan.in_buffers,
        plan.out_buffers,
        plan.ubatch,
        microbatches,
        plan.throughput_items_per_s,
    )
}
