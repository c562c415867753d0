//! The HTTP gateway of a quantpipe fleet: a node that joins the fleet over zenoh as a
//! long-lived [`FleetClient`](quantpipe_client::FleetClient) and serves it over HTTP.
//!
//! - [`server`]: [`server::serve`] (what `quantpipe serve` runs) and [`server::start`], the
//!   actix-web server over a shared [`Gateway`] state.
//! - [`GatewayConfig`]: the `[gateway]` section of a client settings file.
//! - [`Failure`]: why a request got no answer and its HTTP status; [`outcome`] maps the
//!   client's refusals and item errors onto it.
//! - [`openai`]: `POST /v1/embeddings`, `GET /v1/models` (parsing, answers, errors, routes).
//! - [`v2`]: the Open Inference Protocol: health, metadata, `POST /v2/models/{name}/infer`
//!   with the JSON form and the binary tensor extension, Triton's classification extension.
//! - [`metrics`]: `GET /metrics` in the Prometheus text format ([`metrics::RequestMetrics`],
//!   [`metrics::RateTracker`], [`metrics::render`]).

pub mod body;
pub mod config;
pub mod failure;
pub mod metrics;
pub mod openai;
pub mod outcome;
pub mod reply;
pub mod server;
pub mod state;
pub mod v2;

pub use config::GatewayConfig;
pub use failure::Failure;
pub use state::Gateway;
