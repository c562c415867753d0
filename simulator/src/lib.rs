//! Discrete-event simulation of a planned pipeline.
//!
//! Each stage is a server that computes one microbatch at a time; each link between stages is a
//! second server that sends one microbatch at a time (serialisation time = bytes / bandwidth) and
//! delivers it after the link's latency. Buffers are bounded: a stage holds at most `in_buffers`
//! received microbatches (a slot is reserved when a transfer starts, so a full receiver stalls the
//! sender), and at most `out_buffers` computed ones waiting to be sent; a stage whose send queue is
//! full keeps its finished microbatch and stops computing (back-pressure). Microbatches enter stage
//! 0 as fast as it admits them. With deterministic times the steady-state rate is `ubatch /
//! max(compute, transfer)`, the planner's bound, unless latency exceeds what the buffers cover.
//!
//! [`simulate_pipeline`] takes each stage's compute, transfer and latency ([`SimStage`]) and the
//! buffer counts as plain numbers; `quantpipe_planner::simulate` feeds it a plan. Main types:
//! [`SimStage`] in, [`SimReport`] (or [`SimError`]) out; [`percentile`] is the one
//! nearest-rank percentile of the workspace's latency reports.

#![forbid(unsafe_code)]

mod engine;
mod report;
mod stats;

pub use engine::{simulate_pipeline, SimStage};
pub use report::{SimError, SimReport};
pub use stats::percentile;
