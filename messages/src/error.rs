//! Typed errors of the codec and the wire format.
//!
//! Every variant names what was wrong and carries the numbers needed to see why, so a stage that
//! drops a malformed message can log something actionable instead of "decode failed".

use thiserror::Error;

/// A bitwidth outside 1..=16 and 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("invalid bitwidth {0}: expected 1..=16 bits, or 32 for raw f32")]
pub struct InvalidBits(pub u8);

/// Why a tensor could not be encoded.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EncodeError {
    /// The shape's element count differs from the number of values given.
    #[error("shape {shape:?} holds {expected} values but {found} were given")]
    ShapeMismatch {
        shape: Vec<usize>,
        expected: usize,
        found: usize,
    },
    /// The product of the shape's dimensions overflows `usize`.
    #[error("shape {shape:?} has more elements than fit in usize")]
    ShapeOverflow { shape: Vec<usize> },
    /// A NaN or infinity was found while quantizing. Quantized codes have no representation for
    /// non-finite values, and mapping them to a finite number would hide a diverged model.
    #[error("value at flat index {index} (sample {sample}) is not finite ({value}); only raw 32-bit encoding carries NaN/inf")]
    NonFinite {
        index: usize,
        sample: usize,
        value: f32,
    },
    /// Explicit clip ranges were given, but not one per sample.
    #[error(
        "{found} clip ranges given for {expected} samples (one per index of the outer dimension)"
    )]
    ClipRangeCount { expected: usize, found: usize },
    /// A clip range is inverted, not finite, or wider than f32 can step through.
    #[error("clip range of sample {sample} is invalid: [{lo}, {hi}] (need finite lo <= hi with a finite width)")]
    InvalidClipRange { sample: usize, lo: f32, hi: f32 },
}

/// Why a buffer or an [`EncodedTensor`](crate::EncodedTensor) could not be decoded.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DecodeError {
    /// The buffer is larger than the configured message limit; nothing was parsed.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge { len: usize, max: usize },
    /// The buffer ended before the message did.
    #[error("message truncated: {0}")]
    Truncated(String),
    /// The bytes are not a well-formed message of the expected structure.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Bytes remain after a complete message.
    #[error("{count} trailing bytes after a complete {len}-byte message")]
    TrailingBytes { len: usize, count: usize },
    /// The message was written by an incompatible format version.
    #[error("unsupported format version {found} (this build reads version {supported})")]
    UnsupportedVersion { found: u64, supported: u16 },
    /// The product of the shape's dimensions overflows.
    #[error("shape {shape:?} has more elements than fit in usize")]
    ShapeOverflow { shape: Vec<u64> },
    /// The tensor declares more elements than the configured limit allows to allocate.
    #[error("tensor of shape {shape:?} has {elements} elements, above the limit of {max}")]
    TooManyElements {
        shape: Vec<u64>,
        elements: u64,
        max: u64,
    },
    /// The payload length does not match shape and bitwidth.
    #[error("payload is {found} bytes but shape {shape:?} at {bits} bits needs {expected}")]
    PayloadLength {
        shape: Vec<u64>,
        bits: u8,
        expected: u64,
        found: usize,
    },
    /// The number of per-sample (scale, offset) pairs does not match the outer dimension.
    #[error("{found} per-sample parameters for {expected} samples at {bits} bits")]
    ParamCount {
        bits: u8,
        expected: u64,
        found: usize,
    },
    /// A per-sample scale or offset is negative or not finite, so decoding would produce garbage.
    #[error("sample {sample} has invalid parameters: scale {scale}, offset {offset}")]
    InvalidParams {
        sample: usize,
        scale: f32,
        offset: f32,
    },
    /// A tensor inside a boundary payload failed validation.
    #[error("tensor {index} of the boundary payload: {source}")]
    PayloadTensor {
        index: usize,
        #[source]
        source: Box<DecodeError>,
    },
    /// The caller's output buffer does not have one slot per element.
    #[error("output buffer holds {found} values but the tensor has {expected}")]
    OutputLength { expected: usize, found: usize },
    /// The decoded range of a sample, offset + scale * (2^b - 1), overflows f32.
    #[error(
        "sample {sample} decodes out of f32 range: offset {offset} + scale {scale} * {max_code}"
    )]
    RangeOverflow {
        sample: usize,
        scale: f32,
        offset: f32,
        max_code: u32,
    },
}

/// Why a message between nodes ([`crate::envelope`]) was refused: the four things a receiver
/// tells apart (it counts foreign-fleet messages apart from malformed ones, for instance).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// The buffer is larger than the configured message limit; nothing was parsed.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    /// The message was written by another wire version; nothing after the version was parsed.
    #[error("wire version {found}, this node speaks {supported}")]
    Version { found: u64, supported: u16 },
    /// The message belongs to another fleet; nothing after the fleet was parsed.
    #[error("message of fleet `{found}` on fleet `{expected}`'s topic")]
    ForeignFleet { expected: String, found: String },
    /// The bytes are not a complete message of the expected kind, or more follow it.
    #[error("malformed message ({len} bytes): {reason}")]
    Malformed { len: usize, reason: String },
}

impl WireError {
    /// The framing's verdict on a buffer of `len` bytes, in the receiver's four classes.
    pub(crate) fn from_framing(e: DecodeError, len: usize) -> WireError {
        match e {
            DecodeError::MessageTooLarge { len, max } => WireError::TooLarge { len, max },
            DecodeError::UnsupportedVersion { found, supported } => {
                WireError::Version { found, supported }
            }
            DecodeError::TrailingBytes { count, .. } => WireError::Malformed {
                len,
                reason: format!("{count} bytes after the message"),
            },
            other => WireError::Malformed {
                len,
                reason: other.to_string(),
            },
        }
    }
}
