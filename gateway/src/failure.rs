//! Why a request got no answer, and the HTTP status each reason maps to. Both APIs render a
//! [`Failure`] in their own error shape (`openai::error`, `v2::error`); the status, the
//! `Retry-After` header and the message are decided here, once.

use std::time::Duration;

/// Why a request failed, in the gateway's own words.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    /// The request itself is wrong (body, field, model name, item): HTTP 400. `param` names the
    /// request field at fault when there is one.
    #[error("{message}")]
    BadRequest {
        message: String,
        param: Option<String>,
    },
    /// The body is longer than the configured limit: HTTP 413.
    #[error("the request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    /// No such model (or the path names another one): HTTP 404.
    #[error("{0}")]
    NotFound(String),
    /// The queue is full: HTTP 429, try again after `retry_after`.
    #[error("{message}")]
    Full {
        message: String,
        retry_after: Duration,
    },
    /// The fleet cannot take items now (no plan, client closed): HTTP 503.
    #[error("{0}")]
    Unavailable(String),
    /// The request's deadline passed before every item was answered: HTTP 504.
    #[error("{0}")]
    Deadline(String),
    /// A stage answered an error, or the gateway failed: HTTP 500.
    #[error("{0}")]
    Internal(String),
}

impl Failure {
    /// A 400 naming the problem, without a field.
    pub fn bad(message: impl Into<String>) -> Failure {
        Failure::BadRequest {
            message: message.into(),
            param: None,
        }
    }

    /// A 400 naming the problem and the request field at fault.
    pub fn bad_param(param: &str, message: impl Into<String>) -> Failure {
        Failure::BadRequest {
            message: message.into(),
            param: Some(param.to_owned()),
        }
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            Failure::BadRequest { .. } => 400,
            Failure::NotFound(_) => 404,
            Failure::TooLarge { .. } => 413,
            Failure::Full { .. } => 429,
            Failure::Internal(_) => 500,
            Failure::Unavailable(_) => 503,
            Failure::Deadline(_) => 504,
        }
    }

    /// The `Retry-After` header's value in whole seconds (at least 1: the header takes no
    /// fractions, and 0 would invite an immediate retry into the same full queue).
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            Failure::Full { retry_after, .. } => {
                Some(retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
            _ => None,
        }
    }

    /// The request field at fault, if any.
    pub fn param(&self) -> Option<&str> {
        match self {
            Failure::BadRequest { param, .. } => param.as_deref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_has_its_status() {
        assert_eq!(Failure::bad("x").status(), 400);
        assert_eq!(Failure::NotFound("m".into()).status(), 404);
        assert_eq!(Failure::TooLarge { limit: 10 }.status(), 413);
        let full = Failure::Full {
            message: "full".into(),
            retry_after: Duration::from_millis(10),
        };
        assert_eq!(full.status(), 429);
        assert_eq!(Failure::Internal("x".into()).status(), 500);
        assert_eq!(Failure::Unavailable("x".into()).status(), 503);
        assert_eq!(Failure::Deadline("x".into()).status(), 504);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_never_zero() {
        let full = |ms| Failure::Full {
            message: String::new(),
            retry_after: Duration::from_millis(ms),
        };
        assert_eq!(full(0).retry_after_s(), Some(1));
        assert_eq!(full(10).retry_after_s(), Some(1));
        assert_eq!(full(1500).retry_after_s(), Some(2));
        assert_eq!(Failure::bad("x").retry_after_s(), None);
    }

    #[test]
    fn the_too_large_message_names_the_limit() {
        let m = Failure::TooLarge { limit: 4096 }.to_string();
        assert!(m.contains("4096"), "{m}");
    }
}
