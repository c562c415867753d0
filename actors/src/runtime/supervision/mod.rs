//! Workers that survive their own panics. A panic in a SyncArbiter worker (the ForwardWorker's
//! forward pass, the QuantizerActor's codec, the PlannerActor's decisions) used to end its
//! thread: the node kept its liveliness token, so the leader never planned around it, and every
//! later microbatch failed with "Mailbox has closed".
//!
//! Now each worker catches a panic at its handler boundary ([`catch_panic`]), throws away the
//! state the panic may have left half-mutated (the shard, the link policy, the plan being made),
//! rebuilds it for the current assignment and answers the message in hand with a
//! [`WorkerPanicked`] error: the stage turns it into an error result its client may send once
//! more ([`reply_for`]). Restarts are counted ([`WorkerHealth`], shown as
//! `NodeStats::worker_restarts`). A worker that cannot restart (the rebuild fails, or it
//! panicked more than [`RestartBudget`] allows in a short time) reports it: the node then drops
//! its liveliness token so the leader plans around it, and a planner gives up leadership.

mod budget;
mod health;
mod panic;

pub use budget::{PanicHistory, RestartBudget};
pub use health::WorkerHealth;
pub use panic::{catch_panic, reply_for, FailureReply, WorkerPanicked};
