//! Requests the gateway answered: a count and a latency histogram per API and status.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use std::time::Duration;

/// The labels of one request series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Which route: embeddings, models, infer, metadata, health, metrics.
    pub api: String,
    pub status: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~65 s: a cached health check up to a deadline on a slow fleet.
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

/// Cumulative request metrics, shared by every worker (the families are `Arc`s inside).
#[derive(Clone)]
pub struct RequestMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RequestLabels, Histogram, fn() -> Histogram>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl RequestMetrics {
    /// Counts one answered request of `api` with `status` that took `took`.
    pub fn observe(&self, api: &str, status: u16, took: Duration) {
        let labels = RequestLabels {
            api: api.to_owned(),
            status: status.to_string(),
        };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }
}
