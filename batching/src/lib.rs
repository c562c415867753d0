//! Dynamic batching as plain decisions over plain data: no clock of its own (callers pass
//! `now`), no threads, no transport.
//!
//! A service takes single items from many callers and packs them into microbatches of the
//! plan's size. The main type is [`Batcher`], which holds:
//! - the admission rule ([`admission::admit`]): a request is queued whole or refused whole,
//!   refused with a Retry-After estimate from the measured service rate ([`ServiceRate`]) when
//!   the queue is full;
//! - the [`Queue`] of admitted items waiting for a microbatch, each with its deadline;
//! - the packing rule ([`packing::pack`]): a microbatch leaves once it is full, or once its
//!   oldest item waited `max_delay`;
//! - the [`Book`] of which items each microbatch sequence number carries, so that every
//!   accepted item is answered exactly once however often its microbatch is sent;
//! - which results answer ([`flight::judge`]): only one of the plan epoch a microbatch was
//!   sent under last; on a new epoch every microbatch in flight is sent again
//!   ([`Batcher::switch_epoch`]);
//! - when a microbatch unanswered under the same epoch is sent again ([`resend`], tracked by
//!   [`Unanswered`]): a link down for less than the fleet's lease loses what crossed it without
//!   a re-plan.

pub mod admission;
mod batcher;
mod book;
pub mod flight;
pub mod packing;
mod queue;
mod rate;
pub mod resend;
mod unanswered;

pub use admission::Refusal;
pub use batcher::{BatchConfig, Batcher};
pub use book::{Book, Slot};
pub use flight::Dropped;
pub use packing::Pack;
pub use queue::{Queue, Waiting};
pub use rate::ServiceRate;
pub use resend::ResendRule;
pub use unanswered::Unanswered;

/// An admitted item, unique for the life of its [`Batcher`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemId(pub u64);
