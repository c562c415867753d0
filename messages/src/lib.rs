//! Everything that crosses the network between quantpipe nodes, leaders and clients: the
//! messages, their key expressions, the one envelope and framing they travel in, and the
//! encoded-tensor format that carries activations between pipeline stages. Free of torch, zenoh
//! and actix: it describes bytes, and nodes of any runtime speak it.
//!
//! # Messages
//! - [`Envelope`] ([`envelope`]): `[version, fleet, body]`, the one wrapper of every message;
//!   [`envelope::encode`] / [`envelope::decode`] write and read it. Decoding checks the size
//!   ([`DecodeLimits`]) before reading a byte, then version ([`WIRE_VERSION`]) and fleet, then the
//!   extent, and only then parses the body; it returns a typed [`WireError`] (too large, wrong
//!   version, foreign fleet, malformed) and never panics.
//! - [`Keys`] ([`keys`]): the zenoh key expressions of a fleet.
//! - Control ([`control`]): [`DeviceInfo`] with its [`UnitTimes`] profile, [`Assignment`] (with
//!   its [`NextHop`]) and [`Release`], [`PlanInfo`] of [`PlanStage`]s.
//! - [`Activation`] ([`activation`]): the header of one microbatch, whose [`Body`] ([`Tokens`],
//!   an encoded payload, or a probe's filler) follows it outside the MessagePack value, so a
//!   stage sends tens of megabytes as a second slice and a receiver decodes them in place; the
//!   [`Mask`] of text models rides in the header.
//! - Acknowledgements ([`ack`]): [`AssignAck`], [`LinkAck`].
//! - [`Output`] ([`output`]): what the last stage returns to a client.
//! - [`NodeStats`] and [`LinkStats`] ([`stats`]): a node's counters.
//! - [`admission`]: what a stage checks every incoming activation against (size, kind, shape,
//!   token ids, mask) before anything is allocated for it, and the [`admission::Refusal`] it
//!   counts and answers otherwise.
//! - [`oracle`]: the round-trip and no-panic promises of the decoders, as the function the fuzz
//!   target and the property tests run on arbitrary bytes.
//!
//! # The activation codec
//! Activations crossing a pipeline cut are compressed by post-training quantization:
//!
//! - [`EncodedTensor`] ([`tensor`]): shape, dtype, bitwidth ([`Bits`]: 1..=16, or 32 = raw
//!   f32), one (scale, offset) per sample of the outer (microbatch) dimension, and codes packed
//!   densely at exactly `b` bits each ([`pack`]), so the payload is `ceil(n*b/8)` bytes.
//! - [`BoundaryPayload`] ([`payload`]): what one cut carries, one tensor (after u1/u3) or two
//!   (after u0/u2).
//! - [`codec::encode`] / [`codec::decode`]: clipping, quantization and packing, and back.
//! - [`clipping`]: pure functions from a sample's statistics and the bitwidth to a clipping range:
//!   [`clipping::naive`], [`clipping::aciq`], [`clipping::ds_aciq`].
//! - [`bench::codec_report`]: the throughput measurement behind `quantpipe bench codec`.
//!
//! Decoding untrusted bytes ([`EncodedTensor::from_bytes`], [`BoundaryPayload::from_bytes`])
//! goes through the same framing as the messages ([`DecodeLimits`] before parsing, the version,
//! [`FORMAT_VERSION`], before the rest) and checks every consistency rule before trusting a
//! number; it returns a typed [`DecodeError`] and never panics (the `fuzz/` target `decode`
//! exercises this).
//!
//! # Layers
//! Modules import only modules below them: `msgpack` (MessagePack primitives) and `framing`
//! (size, version, extent) under [`tensor`], [`payload`] and [`envelope`]; the messages over
//! [`envelope`]; [`clip_range`] under both the scalar quantizer and [`clipping`].
//!
//! # Examples
//! A control message, and what a node of another fleet makes of it:
//! ```
//! use quantpipe_messages::{envelope, Release, WireError};
//!
//! let bytes = envelope::encode("lab", &Release { epoch: 3 });
//! assert_eq!(envelope::decode::<Release>(&bytes, "lab")?, Release { epoch: 3 });
//! assert!(matches!(
//!     envelope::decode::<Release>(&bytes, "prod"),
//!     Err(WireError::ForeignFleet { .. })
//! ));
//! # Ok::<(), WireError>(())
//! ```
//!
//! An activation through the codec:
//! ```
//! use quantpipe_messages::{codec, Bits, BoundaryPayload, DecodeLimits};
//! use quantpipe_messages::codec::Clip;
//! use quantpipe_messages::clipping::{ClipMethod, ValueKind};
//!
//! let shape = [2, 3, 4];
//! let values: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin()).collect();
//! let clip = Clip::Method { method: ClipMethod::Aciq, kind: ValueKind::TwoSided };
//! let t = codec::encode(&values, &shape, Bits::new(4)?, clip)?;
//! assert_eq!(t.data().len(), 12); // 24 values x 4 bits
//!
//! let bytes = BoundaryPayload::single(t).to_bytes();
//! let limits = DecodeLimits::default();
//! let received = BoundaryPayload::from_bytes(&bytes, &limits)?;
//! let decoded = codec::decode(received.main(), &limits)?;
//! assert_eq!(decoded.shape, vec![2, 3, 4]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod ack;
pub mod activation;
pub mod admission;
pub mod bench;
pub mod bits;
pub mod clip_range;
pub mod clipping;
pub mod codec;
pub mod control;
pub mod envelope;
pub mod error;
pub mod fleet_status;
mod framing;
pub mod keys;
pub mod limits;
mod msgpack;
pub mod oracle;
pub mod output;
pub mod pack;
pub mod payload;
mod quant;
pub mod stats;
pub mod synth;
pub mod tensor;

pub use ack::{AssignAck, LinkAck};
pub use activation::{Activation, Body, Mask, Tokens};
pub use bits::Bits;
pub use control::{Assignment, DeviceInfo, NextHop, PlanInfo, PlanStage, Release, UnitTimes};
pub use control::{FileEntry, ShardWeights, TensorEntry, WeightRequest};
pub use envelope::{Envelope, WIRE_VERSION};
pub use error::{DecodeError, EncodeError, InvalidBits, WireError};
pub use fleet_status::{FleetStatus, LinkStatus, NodeDevice, NodeStatus};
pub use keys::Keys;
pub use limits::DecodeLimits;
pub use output::Output;
pub use payload::{BoundaryPayload, BoundaryPayloadRef};
pub use stats::{LinkStats, NodeStats};
pub use tensor::{
    Dtype, EncodedTensor, EncodedTensorRef, OutlierChannel, SampleParams, FORMAT_VERSION,
};
