//! `quantpipe bench ...`: benchmarks that print figures, never pass/fail timings.

pub mod adaptive;
pub mod codec;
pub mod pipeline;
pub mod planner;
pub mod serve;
pub mod shard;
pub mod soak;

use anyhow::Result;
use clap::Subcommand;

pub use super::print;

#[derive(Subcommand)]
pub enum Bench {
    /// Per-unit forward time of a ViT beside Hugging Face transformers on the same libtorch.
    Shard(shard::Args),
    /// Codec encode/decode throughput beside memcpy, DS-ACIQ cost and bytes on the wire.
    Codec(codec::Args),
    /// Planning time for ViT-Huge on 16 and 64 devices, and the per-link heuristic's gap.
    Planner(planner::Args),
    /// ViT pipelines of node processes on loopback: throughput against the planner's bound, and
    /// each stage's CPU outside its forward passes (codec, transport) as a share of their CPU.
    Pipeline(pipeline::Args),
    /// Bitwidth policies over bandwidth traces, judged window by window (held share of the
    /// target, mean bitwidth against an oracle): a 3-stage MiniLM fleet on network-namespace
    /// links shaped by the trace (needs root), or `--simulate`, the link simulation (no root).
    Adaptive(adaptive::Args),
    /// The fleet as a service: 1, 8, 64 concurrent HTTP clients sending single texts to a
    /// gateway, against the same pipeline driven by the batch client in the same run.
    Serve(serve::Args),
    /// Whether anything piles up over a long run with re-plans (resident memory, threads,
    /// descriptors, zenoh declarations), or with `--flood`, what a client sending as fast as
    /// its window lets makes every node queue.
    Soak(soak::Args),
}

pub fn run(bench: Bench) -> Result<()> {
    match bench {
        Bench::Shard(args) => shard::run(args),
        Bench::Codec(args) => codec::run(args),
        Bench::Planner(args) => planner::run(args),
        Bench::Pipeline(args) => pipeline::run(args),
        Bench::Adaptive(args) => adaptive::run(args),
        Bench::Serve(args) => serve::run(args),
        Bench::Soak(args) => soak::run(args),
    }
}
