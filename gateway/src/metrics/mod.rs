//! `GET /metrics`: Prometheus text of the plan, the stages, the links, the queue and requests.

pub mod rates;
pub mod render;
pub mod requests;
pub mod route;

pub use rates::{RateTracker, StageFigures};
pub use render::{render, FleetFigures};
pub use requests::RequestMetrics;
