//! Wire types shared by every quantpipe node: the messages actors exchange over zenoh, their key
//! expressions, and the encoded-tensor format that carries activations between pipeline stages.
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
//! checks the size limit ([`DecodeLimits`]) before parsing, the version before the rest, and every
//! consistency rule before trusting a number; it returns a typed [`DecodeError`] and never panics
//! (the `fuzz/` target exercises this).
//!
//! # Example
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

pub mod bench;
pub mod bits;
pub mod clipping;
pub mod codec;
pub mod error;
pub mod limits;
pub mod pack;
pub mod payload;
mod quant;
pub mod synth;
pub mod tensor;
mod wire;

pub use bits::Bits;
pub use error::{DecodeError, EncodeError, InvalidBits};
pub use limits::DecodeLimits;
pub use payload::{BoundaryPayload, BoundaryPayloadRef};
pub use tensor::{Dtype, EncodedTensor, EncodedTensorRef, SampleParams, FORMAT_VERSION};
