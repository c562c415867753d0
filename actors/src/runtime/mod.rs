//! The running system: device nodes over a zenoh mesh, the leader's planner, and the client.
//!
//! Data flow: client -> `qp/<fleet>/stage/0/in` -> stage 0 (decode, forward, encode) ->
//! `qp/<fleet>/stage/1/in` -> ... -> last stage -> `qp/<fleet>/result/<client>`.
//!
//! Per node ([`node::run_node`]): a [`stage::StageActor`] on the actix arbiter routes and counts;
//! the [`forward_worker::ForwardWorker`] (libtorch), [`quantizer::QuantizerActor`] (codec) and
//! [`transport::TransportActor`] (zenoh puts, which block under `CongestionControl::Block`) run
//! on SyncArbiter threads; the [`probe::BandwidthProbeActor`] keeps per-link estimates. A leader
//! also hosts the [`planner_actor::PlannerActor`]; without a configured leader, `candidate` nodes
//! elect one ([`election`]). Membership comes from zenoh liveliness tokens. A worker that
//! panics restarts with fresh state, and a node whose worker cannot restart drops its token
//! ([`supervision`]); `[faults]` forces such panics for tests ([`faults`]).
//! Messages and key expressions: [`quantpipe_messages`]. Per-window metrics files: [`metrics`].
//!
//! Each stage acknowledges what it accepts to the stage before it (`qp/<fleet>/stage/<i>/ack`),
//! which measures its outgoing link from those acknowledgements and lets its QuantizerActor's
//! policy choose each message's bitwidth (see [`quantpipe_adaptive`]); the same acknowledgements
//! bound what a stage has queued ahead of its link ([`link_credits`]). A client's `--report`
//! samples every node's stats into a [`timeline`].

pub mod client;
pub mod config;
pub mod cpu_time;
pub mod declarations;
pub mod election;
pub mod emulation;
pub mod faults;
pub mod fleet_answers;
pub mod forward_worker;
pub mod heap;
pub mod inflight;
pub mod link_credits;
pub mod link_pacing;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod planner_actor;
pub mod planning;
pub mod probe;
pub mod quantizer;
pub mod stage;
pub mod status;
pub mod supervision;
pub mod tensor_wire;
pub mod timeline;
pub mod transport;
pub mod weights;
