//! Adaptive quantization: the pure algorithms behind QuantPipe's promise that throughput holds
//! when a link slows down.
//!
//! - [`arrears`]: what a link owes its target, and how much smaller messages catch up.
//! - [`estimator`]: per-link bandwidth from transfer intervals over a sliding window, counting
//!   only time the link was transmitting (idle gaps and a busy receiver are not low bandwidth).
//! - [`sizes`]: the codec's exact wire size of a cut's payload at every bitwidth.
//! - [`policy`]: the bitwidth policies (`fixed`, `heuristic`, `controller`,
//!   `kalman-integral`).
//! - [`kalman_integral`]: the QuantPipe paper's released controller, a baseline policy.
//! - [`link_monitor`]: what a sender learns of its outgoing link from the receiver's
//!   acknowledgements (transfer intervals, bandwidth, items carried) per window.
//! - [`link_policy`]: a policy whose size table follows the shapes a node actually sends.
//! - [`trace`]: the bandwidth-trace file format users write (`at_s, mbit` lines).
//! - [`pacing`]: an emulated link following a trace: how long a sender holds each message.
//! - [`simulate`]: a link simulation (trace in, per-window bitwidth and throughput out) and the
//!   figures judged on it: recovery after a step, mean bitwidth against an oracle.
//! - [`compare`]: several policies over one trace in the link simulation, each judged.
//! - [`judge`]: any run over any trace judged window by window: the share of feasible windows
//!   that held the target, and the mean bitwidth against a per-window oracle.
//!
//! Main types: [`estimator::BandwidthEstimator`], [`link_monitor::LinkMonitor`],
//! [`policy::Policy`] (with [`policy::PolicyKind`]), [`sizes::SizeTable`], [`trace::Trace`].
//!
//! Everything here takes and returns plain data (no actix, zenoh or libtorch), so it is unit-tested
//! directly; the BandwidthProbeActor and QuantizerActor are thin shells over it.

#![forbid(unsafe_code)]

pub mod arrears;
pub mod compare;
pub mod estimator;
pub mod judge;
pub mod kalman_integral;
pub mod link_monitor;
pub mod link_policy;
pub mod pacing;
pub mod policy;
pub mod simulate;
pub mod sizes;
pub mod trace;
