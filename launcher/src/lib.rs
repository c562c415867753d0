//! Starts quantpipe fleets, the one way the demo, the benches and the multi-node tests do it.
//!
//! - [`Fleet`]: node processes (`quantpipe node`) started from [`Settings`] values, each
//!   written to `<name>.toml` by serialising it ([`config_file`]); readiness from the leader's
//!   own plan announcement ([`Fleet::wait_for_plan`]); logs in one folder; every process killed
//!   on drop.
//! - [`Links`]: TLS under a throwaway fleet CA (every member enrolled up front), or plain TCP.
//! - [`Procs`] and [`Launch`]: child processes with their logs, started on this host, pinned to
//!   a core (`taskset`) or inside a network namespace (`ip netns exec`); [`ClientRun`], the
//!   command line of a client run (`quantpipe run`).
//! - [`netns::Netns`]: hosts in network namespaces joined by shaped veth links, and
//!   [`trace_fleet`], the 3-stage fleet whose links follow a bandwidth trace.
//! - [`netns_fleet::NetnsFleet`]: a fleet with every process in its own namespace, whose
//!   members are killed or cut off silently mid-run, and the judge of such a chaos run.
//! - [`privilege`]: whether a test that needs root runs, is skipped, or fails.
//!
//! [`Settings`]: quantpipe_actors::runtime::config::Settings

mod client_run;
pub mod config_file;
pub mod endpoints;
mod fleet;
pub mod links;
pub mod minilm;
pub mod netns;
pub mod netns_fleet;
pub mod privilege;
pub mod proc_sample;
mod procs;
pub mod trace_fleet;
mod uniform_profile;

pub use client_run::ClientRun;
pub use endpoints::{free_ports, loopback};
pub use fleet::{Fleet, Place};
pub use links::Links;
pub use procs::{Launch, Procs};
pub use uniform_profile::write_uniform_profile;
