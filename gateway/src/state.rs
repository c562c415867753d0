//! What every request handler shares: the fleet client, the settings, the metrics.

use crate::config::GatewayConfig;
use crate::failure::Failure;
use crate::metrics::{RateTracker, RequestMetrics};
use crate::outcome;
use actix_web::web;
use quantpipe_client::{FleetClient, Item, ItemOutput};
use std::sync::Mutex;
use std::time::Duration;

/// The gateway's shared state (one per server, behind `web::Data`).
pub struct Gateway {
    pub client: FleetClient,
    pub config: GatewayConfig,
    pub metrics: RequestMetrics,
    /// The previous scrape's node stats, for per-stage rates.
    pub rates: Mutex<RateTracker>,
}

impl Gateway {
    pub fn new(client: FleetClient, config: GatewayConfig) -> Gateway {
        Gateway {
            client,
            config,
            metrics: RequestMetrics::default(),
            rates: Mutex::new(RateTracker::default()),
        }
    }

    /// Submits `items` (validated and preprocessed on a blocking thread, so tokenizing and
    /// decoding never hold up the HTTP workers) and waits for every output, in order.
    pub async fn run(
        &self,
        items: Vec<Item>,
        deadline: Option<Duration>,
    ) -> Result<Vec<ItemOutput>, Failure> {
        let client = self.client.clone();
        let submitted = web::block(move || client.submit(items, deadline))
            .await
            .map_err(|e| Failure::Internal(format!("the submitting thread failed: {e}")))?
            .map_err(outcome::refused)?;
        outcome::outputs(submitted.outputs().await)
    }
}
