//! A long-lived client of a quantpipe fleet: items from many concurrent callers are validated
//! and preprocessed in the callers' threads, packed into microbatches of the plan's size
//! (dynamic batching), streamed through the pipeline, and each answered asynchronously.
//!
//! The main type is [`FleetClient`]: [`FleetClient::connect`] joins the fleet over zenoh and
//! waits for the leader's plan; [`FleetClient::submit`] takes a request of [`Item`]s (texts,
//! encoded images, token ids, raw tensors) and answers a [`Submitted`] whose
//! [`outputs`](Submitted::outputs) resolve to each item's [`ItemOutput`] or [`ItemError`]. A
//! request is refused whole ([`SubmitError`]) when an item is bad, when the queue is full (with
//! a Retry-After estimate) or when the client is closed. [`ModelInfo`] says what the fleet
//! serves, [`ServiceSnapshot`] what the service did, [`ServiceOptions`] how it batches.
//!
//! Batching decisions are [`quantpipe_batching`]'s: a microbatch leaves once it is full or its
//! oldest item waited `max_delay`; at most `client.window` microbatches are in flight. Each
//! item is answered exactly once across re-plans: the client keeps one run id for its life and
//! increasing microbatch sequence numbers; on a new plan epoch every unanswered microbatch is
//! sent again, and results of other epochs, duplicates and foreign results are dropped.
//!
//! A complete program is `examples/embed.rs` (`cargo run -p quantpipe-client --example embed
//! -- client.toml "a text" "another text"`).

mod encode;
mod item;
mod model;
mod options;
mod plan_feed;
mod prepare;
mod service_loop;
mod snapshot;
mod state;
mod submitted;

pub use item::{Item, ItemError, ItemOutput, ItemResult, SubmitError};
pub use model::{InputKind, ModelInfo, Task};
pub use options::ServiceOptions;
pub use quantpipe_actors::runtime::config::Settings;
pub use quantpipe_messages::{NodeStats, PlanInfo};
pub use snapshot::ServiceSnapshot;
pub use submitted::Submitted;

mod fleet_client;
pub use fleet_client::FleetClient;
