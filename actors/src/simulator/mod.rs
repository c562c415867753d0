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
//! [`simulate`] takes a [`crate::planner::Plan`] (which carries per-stage compute, transfer and
//! latency); [`simulate_pipeline`] takes the same numbers directly.

mod engine;
mod report;

pub use engine::{simulate, simulate_pipeline, SimStage};
pub use report::{SimError, SimReport};
