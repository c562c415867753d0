//! Acknowledgements: a node's answer to an assignment or a release, and a stage's receipt of each
//! message from the stage before it.

use serde::{Deserialize, Serialize};

/// A node's answer to an [`Assignment`](crate::Assignment) or a [`Release`](crate::Release).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AssignAck {
    pub node: String,
    /// The assignment's epoch; when the stage refused it as older than the plan it runs, the
    /// epoch it runs (so a new leader can plan above it).
    pub epoch: u64,
    /// `None` when the shard is loaded and the stage listens; else why not.
    pub error: Option<String>,
}

/// A receiving stage's acknowledgement of one message from the stage before it, on
/// [`Keys::link_ack`](crate::Keys::link_ack) of the sender: when the message was sent and when it arrived, by the
/// sender's and receiver's clocks (the sender turns them into transfer intervals: see
/// `quantpipe_adaptive::estimator`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LinkAck {
    pub epoch: u64,
    /// The stage that sent the acknowledged message.
    pub stage: u32,
    pub run: u64,
    pub seq: u64,
    /// Size of the acknowledged message as received, bytes.
    pub bytes: u64,
    pub sent_unix_ns: u64,
    pub arrived_unix_ns: u64,
}
