//! The encoded-tensor format: what one quantized activation tensor looks like on the wire.
//!
//! ```text
//! EncodedTensor (rmp-serde, struct as a MessagePack array, in this order)
//!   version : u16            FORMAT_VERSION; checked before anything else is parsed
//!   shape   : [u64]          row-major; shape[0] is the outer (microbatch) dimension
//!   dtype   : u8             element type of the original tensor (0 = f32)
//!   bits    : u8             1..=16 quantized, 32 = raw little-endian f32
//!   params  : [[f32, f32]]   per sample (index of shape[0]): (scale, offset); empty when raw
//!   outliers: [[u32, f32, f32]]  outlier channels: (channel, scale, offset), channels strictly
//!                            increasing and below the last dimension; empty when raw
//!   data    : bin            ceil(n*bits/8) bytes of densely packed codes (see `pack`)
//! ```
//!
//! Value `x` of sample `s` is sent as `code = round((clamp(x, lo, hi) - lo) / scale)` (ties to even) and received
//! as `offset + code * scale`, with `offset = lo` and `scale = (hi - lo) / (2^b - 1)`. Per-sample
//! parameters (rather than one pair per tensor) keep one outlier item of a microbatch from
//! destroying the resolution of the others; they cost 11 bytes per sample on the wire.
//!
//! An outlier channel (an index of the last dimension, e.g. one of the few hidden dimensions of
//! a transformer whose values are 10-100x the others) has its own (scale, offset) for the whole
//! tensor: its codes sit in the same packed stream at the same bitwidth, but decode with its
//! own parameters, so the sample ranges need not stretch (or clip) to cover it. Each costs at
//! most 16 bytes on the wire and nothing in the payload; the encoder's search picks them
//! ([`crate::clipping::OutlierPlan`]).
//!
//! The fixed header is about 20 bytes plus 9 per dimension, so header overhead stays far below the
//! 64 bytes per sample budget (see the `header_overhead_*` tests).

use serde::{Deserialize, Serialize};

use crate::bits::Bits;
use crate::error::DecodeError;
use crate::framing;
use crate::limits::DecodeLimits;
use crate::msgpack;

/// The format version this build writes and reads. Bump on any change of the layout above.
pub const FORMAT_VERSION: u16 = 2;

/// The element type of the tensor before encoding (and after decoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Dtype {
    /// 32-bit IEEE float.
    F32,
}

impl From<Dtype> for u8 {
    fn from(d: Dtype) -> u8 {
        match d {
            Dtype::F32 => 0,
        }
    }
}

impl TryFrom<u8> for Dtype {
    type Error = String;
    fn try_from(v: u8) -> Result<Dtype, String> {
        match v {
            0 => Ok(Dtype::F32),
            other => Err(format!("unknown dtype code {other}")),
        }
    }
}

/// Dequantization parameters of one sample: `x^ = offset + code * scale`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SampleParams {
    /// Step between adjacent codes; 0 for a constant sample (every code decodes to `offset`).
    pub scale: f32,
    /// The value of code 0: the low end of the sample's clipping range.
    pub offset: f32,
}

/// One outlier channel: the index of the last dimension whose values decode with their own
/// parameters, `x^ = offset + code * scale`, in every sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OutlierChannel {
    pub channel: u32,
    pub scale: f32,
    pub offset: f32,
}

impl OutlierChannel {
    /// The channel's parameters in the form the per-sample ones have.
    pub fn params(&self) -> SampleParams {
        SampleParams {
            scale: self.scale,
            offset: self.offset,
        }
    }
}

/// One encoded tensor. Build it with [`crate::codec::encode`]; read it with
/// [`crate::codec::decode`]. Fields are private so that a value built by this crate is always
/// consistent; a value that arrived through serde is checked by [`EncodedTensor::validate`]
/// (which `decode` calls) before any of its numbers are trusted.
///
/// `D` holds the packed payload: an owned `Vec<u8>` by default, or `&[u8]` borrowed from a
/// received message ([`EncodedTensorRef`], parsed by [`EncodedTensorRef::borrow_from`]) so that
/// decoding a large tensor does not first copy its payload out of the message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "D: serde_bytes::Serialize",
    deserialize = "D: serde_bytes::Deserialize<'de>"
))]
pub struct EncodedTensor<D = Vec<u8>> {
    pub(crate) version: u16,
    pub(crate) shape: Vec<u64>,
    pub(crate) dtype: Dtype,
    pub(crate) bits: Bits,
    pub(crate) params: Vec<SampleParams>,
    pub(crate) outliers: Vec<OutlierChannel>,
    // serde_bytes: a MessagePack `bin` (1 byte per byte), not an array of integers (up to 2).
    #[serde(with = "serde_bytes")]
    pub(crate) data: D,
}

/// An encoded tensor whose payload is borrowed from the buffer it was parsed from.
pub type EncodedTensorRef<'a> = EncodedTensor<&'a [u8]>;

impl Default for EncodedTensor {
    /// An empty raw tensor of shape [0]; useful as a reusable buffer for `encode_into`.
    fn default() -> Self {
        EncodedTensor {
            version: FORMAT_VERSION,
            shape: vec![0],
            dtype: Dtype::F32,
            bits: Bits::RAW,
            params: Vec::new(),
            outliers: Vec::new(),
            data: Vec::new(),
        }
    }
}

impl<D: AsRef<[u8]>> EncodedTensor<D> {
    /// The format version the tensor was written with.
    pub fn version(&self) -> u16 {
        self.version
    }
    /// The tensor's shape (row-major, outer dimension first).
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }
    /// The element type of the original tensor.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }
    /// Bits per value.
    pub fn bits(&self) -> Bits {
        self.bits
    }
    /// Per-sample (scale, offset); empty for raw tensors.
    pub fn params(&self) -> &[SampleParams] {
        &self.params
    }
    /// Outlier channels with their own parameters, by increasing channel; empty for raw tensors.
    pub fn outliers(&self) -> &[OutlierChannel] {
        &self.outliers
    }
    /// The packed payload.
    pub fn data(&self) -> &[u8] {
        self.data.as_ref()
    }

    /// Number of values, if the shape's product fits in u64.
    pub fn element_count(&self) -> Option<u64> {
        self.shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
    }

    /// Number of samples: the outer dimension (1 for a rank-0 tensor).
    pub fn sample_count(&self) -> u64 {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Checks every invariant the decoder relies on: version, element count within `limits`,
    /// payload length = ceil(n*b/8) (4n raw), one finite non-negative (scale, offset) per sample
    /// whose decoded range stays finite, and outlier channels strictly increasing, below the last
    /// dimension, with parameters as valid as a sample's (none when raw). Returns the element
    /// count.
    pub fn validate(&self, limits: &DecodeLimits) -> Result<usize, DecodeError> {
        if self.version != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                found: u64::from(self.version),
                supported: FORMAT_VERSION,
            });
        }
        let n = self
            .element_count()
            .ok_or_else(|| DecodeError::ShapeOverflow {
                shape: self.shape.clone(),
            })?;
        if n > limits.max_elements {
            return Err(DecodeError::TooManyElements {
                shape: self.shape.clone(),
                elements: n,
                max: limits.max_elements,
            });
        }
        let n_usize = usize::try_from(n).map_err(|_| DecodeError::ShapeOverflow {
            shape: self.shape.clone(),
        })?;
        let expected =
            self.bits
                .payload_len(n_usize)
                .ok_or_else(|| DecodeError::ShapeOverflow {
                    shape: self.shape.clone(),
                })?;
        if self.data().len() != expected {
            return Err(DecodeError::PayloadLength {
                shape: self.shape.clone(),
                bits: self.bits.get(),
                expected: expected as u64,
                found: self.data().len(),
            });
        }
        let expected_params = if self.bits.is_raw() {
            0
        } else {
            self.sample_count()
        };
        if self.params.len() as u64 != expected_params {
            return Err(DecodeError::ParamCount {
                bits: self.bits.get(),
                expected: expected_params,
                found: self.params.len(),
            });
        }
        let max_code = if self.bits.is_raw() {
            0
        } else {
            self.bits.max_code()
        };
        for (sample, p) in self.params.iter().enumerate() {
            check_params(p, max_code).map_err(|e| e.for_sample(sample))?;
        }
        self.validate_outliers(max_code)?;
        Ok(n_usize)
    }

    /// The outlier-channel rules of [`EncodedTensor::validate`].
    fn validate_outliers(&self, max_code: u32) -> Result<(), DecodeError> {
        if self.outliers.is_empty() {
            return Ok(());
        }
        if self.bits.is_raw() {
            return Err(DecodeError::Malformed(format!(
                "{} outlier channels on a raw 32-bit tensor",
                self.outliers.len()
            )));
        }
        let channels = self.shape.last().copied().unwrap_or(0);
        let mut previous: Option<u32> = None;
        for o in &self.outliers {
            if u64::from(o.channel) >= channels {
                return Err(DecodeError::Malformed(format!(
                    "outlier channel {} outside the last dimension of shape {:?}",
                    o.channel, self.shape
                )));
            }
            if previous.is_some_and(|p| o.channel <= p) {
                return Err(DecodeError::Malformed(format!(
                    "outlier channels not strictly increasing: {} after {}",
                    o.channel,
                    previous.unwrap_or_default()
                )));
            }
            previous = Some(o.channel);
            check_params(&o.params(), max_code).map_err(|e| {
                DecodeError::Malformed(format!("outlier channel {}: {}", o.channel, e.describe()))
            })?;
        }
        Ok(())
    }

    /// Bytes of the serialised form beyond the payload (header and per-sample parameters).
    pub fn header_len(&self) -> usize {
        msgpack::serialized_len(&self.borrowed()) - self.data().len()
    }

    /// The same tensor with its payload borrowed.
    pub fn borrowed(&self) -> EncodedTensorRef<'_> {
        self.with_data(self.data())
    }

    /// This tensor's header with `data` as its payload.
    fn with_data<E>(&self, data: E) -> EncodedTensor<E> {
        EncodedTensor {
            version: self.version,
            shape: self.shape.clone(),
            dtype: self.dtype,
            bits: self.bits,
            params: self.params.clone(),
            outliers: self.outliers.clone(),
            data,
        }
    }

    /// Serialises to MessagePack (the wire form).
    pub fn to_bytes(&self) -> Vec<u8> {
        msgpack::to_bytes(&self.borrowed())
    }
}

/// Why a (scale, offset) pair cannot be decoded with.
enum BadParams {
    Invalid(SampleParams),
    Overflow(SampleParams, u32),
}

impl BadParams {
    fn for_sample(self, sample: usize) -> DecodeError {
        match self {
            BadParams::Invalid(p) => DecodeError::InvalidParams {
                sample,
                scale: p.scale,
                offset: p.offset,
            },
            BadParams::Overflow(p, max_code) => DecodeError::RangeOverflow {
                sample,
                scale: p.scale,
                offset: p.offset,
                max_code,
            },
        }
    }

    fn describe(&self) -> String {
        match self {
            BadParams::Invalid(p) => {
                format!("invalid parameters: scale {}, offset {}", p.scale, p.offset)
            }
            BadParams::Overflow(p, max_code) => format!(
                "offset {} + {max_code} x scale {} is not finite",
                p.offset, p.scale
            ),
        }
    }
}

/// Finite, non-negative scale, finite offset, and a finite decoded top of the range.
fn check_params(p: &SampleParams, max_code: u32) -> Result<(), BadParams> {
    if !(p.scale.is_finite() && p.scale >= 0.0 && p.offset.is_finite()) {
        return Err(BadParams::Invalid(*p));
    }
    if !(p.offset + p.scale * max_code as f32).is_finite() {
        return Err(BadParams::Overflow(*p, max_code));
    }
    Ok(())
}

impl EncodedTensor {
    /// Parses and validates a wire buffer: size limit first, then the version (before the rest
    /// is parsed), structure, trailing bytes, and finally [`EncodedTensor::validate`].
    /// Allocation is bounded by the buffer length (itself bounded by `limits`).
    ///
    /// Parsed borrowed and then copied, so that exactly what [`EncodedTensorRef::borrow_from`]
    /// accepts is accepted: an owned payload would also take a MessagePack array of integers
    /// where the format has a `bin`.
    pub fn from_bytes(buf: &[u8], limits: &DecodeLimits) -> Result<EncodedTensor, DecodeError> {
        Ok(EncodedTensorRef::borrow_from(buf, limits)?.to_owned())
    }
}

impl<'a> EncodedTensorRef<'a> {
    /// Like [`EncodedTensor::from_bytes`], with the payload borrowed from `buf` (no copy).
    pub fn borrow_from(
        buf: &'a [u8],
        limits: &DecodeLimits,
    ) -> Result<EncodedTensorRef<'a>, DecodeError> {
        let t: EncodedTensorRef<'a> = framing::decode_versioned(buf, limits, FORMAT_VERSION)?;
        t.validate(limits)?;
        Ok(t)
    }

    /// An owned copy.
    pub fn to_owned(&self) -> EncodedTensor {
        self.with_data(self.data.to_vec())
    }
}
