//! What the last stage sends a client for one microbatch.

use serde::{Deserialize, Serialize};

/// What the last stage returns for one microbatch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Output {
    pub run: u64,
    pub seq: u64,
    pub epoch: u64,
    /// Output shape (`[B, D]`: logits or embeddings) and row-major values.
    pub shape: Vec<u64>,
    pub values: Vec<f32>,
    /// Why the pipeline could not produce it (the values are then empty).
    pub error: Option<String>,
}
