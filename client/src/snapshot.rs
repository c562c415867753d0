//! The service's figures at one moment (for `/metrics` and `bench serve`).

use quantpipe_messages::PlanInfo;

/// Figures of a [`FleetClient`](crate::FleetClient) since it connected.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceSnapshot {
    /// The plan the client sends under (`None` before the first).
    pub plan: Option<PlanInfo>,
    /// Admitted, not yet in a microbatch.
    pub queued_items: usize,
    pub in_flight_microbatches: usize,
    pub items_answered: u64,
    /// Microbatches sent, first sends only.
    pub microbatches_sent: u64,
    /// Mean items per microbatch over the plan's ubatch at the time it was packed.
    pub mean_fill: f64,
    /// Microbatches sent again under a new plan epoch.
    pub resent: u64,
    /// Microbatches sent again under the same epoch after going unanswered past a bound (a
    /// link lost them without a re-plan).
    pub resent_unanswered: u64,
    /// Requests refused because the queue was full.
    pub refused_full: u64,
    /// Items whose deadline passed before an answer.
    pub expired: u64,
}
