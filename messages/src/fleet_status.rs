//! The fleet as its leader sees it, answered on [`Keys::status`](crate::Keys::status): which
//! nodes are alive and what they run, the plan in force, and per inter-stage link the measured
//! bandwidth and the bitwidth in use. `quantpipe status` prints it.

use crate::PlanInfo;
use serde::{Deserialize, Serialize};

/// The leader's answer to a status query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FleetStatus {
    /// The node that answered.
    pub leader: String,
    /// Whether it leads now (a candidate that is not elected answers with `false`).
    pub leading: bool,
    /// The plan in force, when there is one.
    pub plan: Option<PlanInfo>,
    /// Every node alive, planned or expected, by name.
    pub nodes: Vec<NodeStatus>,
    /// Each inter-stage link of the plan, in stage order.
    pub links: Vec<LinkStatus>,
}

/// One node as the leader sees it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NodeStatus {
    pub name: String,
    /// Its liveliness token is up.
    pub alive: bool,
    /// The stage and unit range the plan gives it.
    pub stage: Option<u32>,
    pub units: Option<[usize; 2]>,
    /// What it announced of itself (absent when it did not answer).
    pub device: Option<NodeDevice>,
}

/// What a node announced of itself, without its profile.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NodeDevice {
    pub device_type: String,
    pub mem_bytes: u64,
    pub threads: i32,
    pub slowdown: f64,
    /// Nominal link bandwidth, Mbit/s.
    pub bw_mbps: f64,
}

/// One link from stage `from_stage` to the next.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LinkStatus {
    pub from_stage: u32,
    pub from: String,
    pub to: String,
    /// The plan's bitwidth for this cut.
    pub planned_bits: u8,
    /// Measured over the sender's last window (0 before any acknowledgement, or when the
    /// sender's stats did not come back).
    pub mbps: f64,
    /// Mean bitwidth of what the sender sent in its last window (0 when it sent nothing).
    pub bits_in_use: f64,
    pub items_per_s: f64,
    pub utilisation: f64,
}
