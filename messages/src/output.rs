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
    /// With an error: the input was not at fault (a worker panicked and restarted), so the
    /// client may send the microbatch once more. Absent from older nodes' results: false.
    #[serde(default)]
    pub retryable: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> Output {
        Output {
            run: 7,
            seq: 3,
            epoch: 2,
            shape: vec![],
            values: vec![],
            error: Some("stage 1: forward worker panicked".into()),
            retryable: true,
        }
    }

    #[test]
    fn a_retryable_failure_survives_the_wire() {
        let bytes = rmp_serde::to_vec(&failed()).unwrap();
        assert_eq!(rmp_serde::from_slice::<Output>(&bytes).unwrap(), failed());
    }

    #[test]
    fn a_result_without_the_retryable_field_is_final() {
        // What a node from before the field was added sends: six elements.
        let old = (
            7u64,
            3u64,
            2u64,
            Vec::<u64>::new(),
            Vec::<f32>::new(),
            Some("x"),
        );
        let bytes = rmp_serde::to_vec(&old).unwrap();
        let out: Output = rmp_serde::from_slice(&bytes).unwrap();
        assert!(!out.retryable);
        assert_eq!(out.error.as_deref(), Some("x"));
    }
}
