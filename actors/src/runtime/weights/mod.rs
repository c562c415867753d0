//! Weights reach the devices: a node whose model folder lacks its shard's tensors fetches
//! exactly those from a peer holding the model file, checks them against the digests the
//! leader's assignment carries, and keeps them in the folder's cache.
//!
//! - [`leader`]: the leader digests its model once ([`digests`]) and puts each shard's tensor
//!   list, with digests, into the assignment.
//! - [`serve`]: every node holding the model file answers byte ranges of it on
//!   `qp/<fleet>/weights/<node>`.
//! - [`gate`] and [`fetch`]: an assignment waits until the folder holds its weights, fetched
//!   in chunks, verified, cached; a peer serving other bytes is refused and another asked.
//! - [`decide`]: the decisions (what is missing, which ranges, which peer next, which request
//!   may be answered), as plain functions.

pub mod decide;
pub mod digests;
pub mod fetch;
pub mod gate;
pub mod leader;
pub mod serve;

pub use leader::{attach_weights, hold_model};
