//! Failures in the Open Inference Protocol's error shape: `{"error": "message"}`.

use crate::failure::Failure;
use serde_json::{json, Value};

/// The error body of `failure`.
pub fn body(failure: &Failure) -> Value {
    json!({"error": failure.to_string()})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_is_the_failure_message() {
        assert_eq!(
            body(&Failure::bad("input 'x': bad"))["error"],
            "input 'x': bad"
        );
    }
}
