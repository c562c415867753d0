//! The plan as the leader publishes it: which node runs which units at which bitwidth, and what
//! the planner predicts of it.

use serde::{Deserialize, Serialize};

/// One stage of a plan as the leader publishes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlanStage {
    pub node: String,
    pub l: usize,
    pub r: usize,
    pub out_bits: u8,
    /// Predicted seconds per microbatch (compute, and sending the output).
    pub compute_s: f64,
    pub transfer_s: f64,
}

/// The leader's current plan, answered on [`Keys::plan`](crate::Keys::plan).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlanInfo {
    pub epoch: u64,
    pub model: String,
    pub ubatch: usize,
    /// `planner` (planned from the devices' profiles) or `forced` (given in the leader's config).
    pub source: String,
    pub stages: Vec<PlanStage>,
    /// The planner's predicted throughput, items/s (0 when forced).
    pub predicted_items_per_s: f64,
}
