//! The planner's output: ordered stages, the bitwidth of each cut, and the predicted bound.

use serde::{Deserialize, Serialize};

/// What limits a stage's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BottleneckKind {
    Compute,
    Transfer,
}

/// One stage: a device running units `l..=r` (1-based, inclusive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub device: String,
    pub device_type: String,
    pub l: usize,
    pub r: usize,
    /// Seconds of compute per microbatch.
    pub compute_s: f64,
    /// Seconds to send one microbatch's output to the next stage (0 for the last stage).
    pub transfer_s: f64,
    /// Bitwidth of the outgoing cut (`None` for the last stage).
    pub out_bits: Option<u8>,
    /// Bytes per microbatch on the outgoing link (0 for the last stage).
    pub out_bytes: u64,
    /// Outgoing link bandwidth in Mbit/s (0 for the last stage).
    pub out_link_mbps: f64,
    /// Outgoing link latency in seconds (0 for the last stage).
    pub out_latency_s: f64,
    /// Weights of the range plus in/out buffers, in bytes.
    pub mem_required_bytes: u64,
    pub mem_available_bytes: u64,
}

/// A complete plan with its predicted performance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub model: String,
    /// Which planner made it: `edgepipe`, `edgepipe-links`, `links-heuristic`, `even`, `memory`,
    /// `pipedream`, `exhaustive`, ...
    pub planner: String,
    pub ubatch: usize,
    pub in_buffers: u32,
    pub out_buffers: u32,
    pub stages: Vec<Stage>,
    /// Bitwidth of each cut between consecutive stages (length stages - 1).
    pub cut_bits: Vec<u8>,
    /// Max over stages of max(compute, outgoing transfer), seconds per microbatch.
    pub bottleneck_s: f64,
    pub bottleneck_stage: usize,
    pub bottleneck_kind: BottleneckKind,
    /// ubatch / bottleneck.
    pub throughput_items_per_s: f64,
}

impl Plan {
    /// `(device, l, r)` of each stage, the form the runtime distributes.
    pub fn shards(&self) -> Vec<(String, usize, usize)> {
        self.stages
            .iter()
            .map(|s| (s.device.clone(), s.l, s.r))
            .collect()
    }
}
