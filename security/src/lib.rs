//! Fleet membership by certificate.
//!
//! A fleet has a certificate authority ([`FleetCa`]) and a member list ([`Members`],
//! `members.toml`). Every member (node, leader, gateway, client) gets a key and a certificate
//! whose common name is its name; its settings' `[security]` section ([`SecuritySettings`])
//! points at them. At start that section becomes zenoh's TLS settings with mutual
//! authentication, links restricted to TLS, and the access control generated from the member
//! list ([`access_control`]): default deny, each role allowed exactly the traffic it needs.
//! Without a CA, a member refuses to listen or connect beyond loopback unless the settings say
//! `insecure = true`.
//!
//! No zenoh, libtorch or actix here: the runtime applies what this crate decides.

pub mod access_control;
mod ca;
pub mod certificate;
pub mod endpoint;
mod error;
mod members;
mod name;
mod settings;
mod throwaway;

pub use access_control::access_control;
pub use ca::{Enrolled, FleetCa, CA_CERTIFICATE, CA_KEY, MEMBERS_DIR, MEMBERS_FILE};
pub use error::{Error, Result};
pub use members::{Member, MemberRole, Members};
pub use name::{check_name, is_valid_name};
pub use settings::{SecureZenoh, SecuritySettings};
pub use throwaway::{throwaway_fleet, ThrowawayFleet};
