//! `quantpipe status`: the fleet as its leader sees it.
//!
//! Every node that may lead declares a status queryable (`qp/<fleet>/status/<name>`,
//! [`responder`]). Asked, it looks at the fleet with its own identity (a leader may read every
//! node's device info and stats, which clients may not): the liveliness tokens, the plan it
//! serves, each node's device info and stats; [`assemble`] turns what it saw into a
//! [`FleetStatus`]. The asker ([`ask`]) takes the answer of the node that leads, and
//! [`text`] renders it for a terminal. Access control opens the status key to every member
//! (the plan in it is readable already; no traffic is in it), so an operator's client
//! identity is enough to check a secured fleet.

pub mod ask;
mod assemble;
mod gather;
pub mod responder;
pub mod text;

pub use ask::ask_leader;
pub use assemble::{assemble, Observed};
pub use gather::observe;
pub use responder::declare_status;
pub use text::render;
