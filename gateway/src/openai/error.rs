//! Failures in OpenAI's error shape: `{"error": {"message", "type", "param", "code"}}`.

use crate::failure::Failure;
use serde_json::{json, Value};

/// The error body of `failure`.
pub fn body(failure: &Failure) -> Value {
    let (kind, code) = match failure {
        Failure::BadRequest { .. } => ("invalid_request_error", Value::Null),
        Failure::NotFound(_) => ("invalid_request_error", json!("model_not_found")),
        Failure::TooLarge { .. } => ("invalid_request_error", json!("request_too_large")),
        Failure::Full { .. } => ("rate_limit_error", json!("queue_full")),
        Failure::Unavailable(_) => ("server_error", json!("unavailable")),
        Failure::Deadline(_) => ("server_error", json!("deadline_exceeded")),
        Failure::Internal(_) => ("server_error", Value::Null),
    };
    let code = match (failure, code) {
        (Failure::BadRequest { param: Some(p), .. }, _) if p == "model" => json!("model_not_found"),
        (_, code) => code,
    };
    json!({"error": {
        "message": failure.to_string(),
        "type": kind,
        "param": failure.param(),
        "code": code,
    }})
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bad_request_names_the_message_and_field() {
        let v = body(&Failure::bad_param("input", "'input' is required"));
        assert_eq!(v["error"]["message"], "'input' is required");
        assert_eq!(v["error"]["param"], "input");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }

    #[test]
    fn a_full_queue_is_a_rate_limit_error() {
        let f = Failure::Full {
            message: "queue full".into(),
            retry_after: Duration::from_secs(1),
        };
        assert_eq!(body(&f)["error"]["type"], "rate_limit_error");
    }
}
