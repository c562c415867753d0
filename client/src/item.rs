//! What callers give and get: input items, each item's output, and the two ways a request or
//! an item goes unanswered.

use std::time::Duration;

/// One input item, as callers give it.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Text(String),
    /// An encoded image (PNG or JPEG bytes), decoded and preprocessed with the model folder's
    /// `preprocessor_config.json` ([`quantpipe_model_shards::preprocess::ImagePreprocessor`]).
    Image(Vec<u8>),
    /// Token ids (text models), without padding.
    Tokens(Vec<i64>),
    /// A raw FP32 tensor of one item as unit 1 takes it (image models: `[C, H, W]` pixels).
    Tensor {
        shape: Vec<usize>,
        values: Vec<f32>,
    },
}

/// The last stage's row of one item: its embedding, or its class logits.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemOutput {
    pub values: Vec<f32>,
    /// Tokens after tokenization (0 for images).
    pub tokens: usize,
}

/// Refused at submission: nothing was queued.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SubmitError {
    /// An item no stage could take (HTTP 400).
    #[error("item {index}: {reason}")]
    BadItem { index: usize, reason: String },
    /// The queue holds too many items now (HTTP 429, with Retry-After).
    #[error("the queue is full: try again in {retry_after:?}")]
    Full { retry_after: Duration },
    /// No plan, or the client is closed (HTTP 503).
    #[error("no plan to serve the request: {0}")]
    Unavailable(String),
}

/// Why an accepted item got no output.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ItemError {
    /// The request's deadline passed first (HTTP 504).
    #[error("deadline passed before the item was answered")]
    Deadline,
    /// A stage reported an error for the item's microbatch (HTTP 500).
    #[error("pipeline: {0}")]
    Pipeline(String),
    /// The client closed before the item was answered (HTTP 503).
    #[error("the client closed")]
    Closed,
}

/// What an item resolves to.
pub type ItemResult = Result<ItemOutput, ItemError>;
