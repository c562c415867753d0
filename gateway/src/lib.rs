//! The HTTP gateway of a quantpipe fleet.
//!
//! - [`GatewayConfig`]: the `[gateway]` section of a client settings file.
//! - [`Failure`]: why a request got no answer, and its HTTP status.
//! - [`openai`]: `POST /v1/embeddings`, `GET /v1/models` (request parsing, answers, errors).
//! - [`v2`]: the Open Inference Protocol (request parsing with the binary extension,
//!   classification, errors).
//! - [`metrics`]: `/metrics` in the Prometheus text format ([`metrics::RequestMetrics`],
//!   [`metrics::RateTracker`], [`metrics::render`]).

pub mod config;
pub mod failure;
pub mod metrics;
pub mod openai;
pub mod v2;

pub use config::GatewayConfig;
pub use failure::Failure;
