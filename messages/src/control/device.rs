//! What a node tells the leader about itself: its device, and the per-unit profile of its local
//! model that the planner plans with.

use serde::{Deserialize, Serialize};

/// One node's description, answered on [`Keys::device`](crate::Keys::device).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeviceInfo {
    pub name: String,
    /// Profile key: nodes of one type share a compute profile in the planner.
    pub device_type: String,
    /// Memory the node offers to the model, bytes.
    pub mem_bytes: u64,
    /// libtorch intra-op threads of its forward passes.
    pub threads: i32,
    /// Emulated slowdown (1 = none): each forward pass is padded to `slowdown x` its profiled
    /// time, so the node behaves like a device that much slower.
    pub slowdown: f64,
    /// Nominal link bandwidth, Mbit/s.
    pub bw_mbps: f64,
    /// The profile, already scaled by `slowdown`.
    pub profile: UnitTimes,
}

/// A node's per-unit profile of its local model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UnitTimes {
    pub model: String,
    pub ubatch: usize,
    pub input_elements: u64,
    /// Seconds per microbatch of `ubatch` items, per unit (index u - 1).
    pub time_s: Vec<f64>,
    pub weight_bytes: Vec<u64>,
    /// Elements per item leaving each unit.
    pub output_elements: Vec<u64>,
}
