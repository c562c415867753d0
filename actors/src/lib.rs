//! quantpipe's runtime: the actors that run a fleet over zenoh, and the client that feeds it.
//!
//! Each device node hosts a StageActor (its shard's forward passes), a QuantizerActor (the codec
//! at each message's bitwidth) and a BandwidthProbeActor (its outgoing link's estimate); the
//! elected leader also hosts the PlannerActor. The decisions they make are pure functions in the
//! algorithm crates ([`quantpipe_planner`], [`quantpipe_adaptive`]) or in small runtime modules
//! with unit tests; the actors own state and route messages. See [`runtime`].

pub mod runtime;
