//! How a [`FleetClient`](crate::FleetClient) batches and bounds.

use std::time::Duration;

/// Dynamic batching and admission settings of a [`FleetClient`](crate::FleetClient).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceOptions {
    /// Longest an item waits for its microbatch to fill.
    pub max_delay: Duration,
    /// Items admitted but not yet answered, at most: past it requests are refused as full.
    pub queue_items: usize,
    /// A request's deadline when the caller gives none.
    pub default_deadline: Duration,
    /// Most tokens a text item may have; `None`: the settings' `client.max_len`.
    pub max_tokens: Option<usize>,
    /// The name the model is served under; `None`: the model folder's name.
    pub served_name: Option<String>,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            max_delay: Duration::from_millis(5),
            queue_items: 256,
            default_deadline: Duration::from_secs(30),
            max_tokens: None,
            served_name: None,
        }
    }
}
