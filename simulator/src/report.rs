//! Simulation results and errors.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What a simulation run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimReport {
    pub microbatches: usize,
    pub ubatch: usize,
    /// Time from the first admission to the last completion, seconds.
    pub makespan_s: f64,
    /// Items per second over the whole run (includes pipeline fill and drain).
    pub throughput_items_per_s: f64,
    /// Items per second between the first and last completion (the steady-state rate).
    pub steady_throughput_items_per_s: f64,
    /// The plan's predicted rate (ubatch / bottleneck), for comparison.
    pub predicted_throughput_items_per_s: f64,
    /// Per-microbatch latency (admission to stage 0 until the last stage finishes), seconds.
    pub latency_p50_s: f64,
    pub latency_p90_s: f64,
    pub latency_p99_s: f64,
    /// Fraction of the makespan each stage spent computing.
    pub stage_utilisation: Vec<f64>,
    /// Fraction of the makespan each outgoing link spent sending (one fewer than stages).
    pub link_utilisation: Vec<f64>,
}

/// Simulation failures.
#[derive(Debug, Error)]
pub enum SimError {
    #[error("the pipeline has no stages")]
    NoStages,
    #[error("microbatch count must be at least 1")]
    NoMicrobatches,
    #[error("stage {stage}: {what} is {value}, not a finite non-negative number")]
    BadTime {
        stage: usize,
        what: &'static str,
        value: f64,
    },
    #[error("reading plan {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("parsing plan {path}: {detail}")]
    Parse { path: String, detail: String },
}
