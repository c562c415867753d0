//! The leader's orders to a node: run a range of units as one stage of a plan, or hold nothing.

use serde::{Deserialize, Serialize};

/// Where a stage sends its output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum NextHop {
    /// The input of stage `i`.
    Stage(u32),
    /// The result topic of the client named in each activation.
    Client,
}

/// The leader's order to one node: run units `[l, r]` as stage `stage` of plan `epoch`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Assignment {
    pub epoch: u64,
    pub model: String,
    pub stage: u32,
    pub stages: u32,
    pub l: usize,
    pub r: usize,
    pub next: NextHop,
    /// Bitwidth of this stage's output (32 = raw f32); ignored by the last stage. The node
    /// clips quantized outputs with its own `quantizer.clip` method. Under an adaptive
    /// `quantizer.policy` it is the highest bitwidth the stage sends at.
    pub out_bits: u8,
    /// The plan's predicted throughput, items/s (0 when the plan was forced): the target rate
    /// of adaptive bitwidth policies unless the node sets its own.
    pub target_items_per_s: f64,
    /// The shard's tensors and small files with their digests, from the leader's copy of the
    /// model, so a node without them fetches them from a peer and checks what it got; `None`
    /// from a leader without the model file (or an older one): the node needs its own copy.
    #[serde(default)]
    pub weights: Option<super::ShardWeights>,
}

/// The leader's order to a node that plan `epoch` leaves out: drop the shard and stop listening
/// on the old stage's keys. A subscription left behind would receive every microbatch sent to
/// the stage's new holder, so the sending stage's link would carry each one twice.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Release {
    pub epoch: u64,
}
