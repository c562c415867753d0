//! What crosses one pipeline cut: one tensor after units u1/u3, two after u0/u2.
//!
//! Cuts after u0 and u2 split a transformer block in the middle of a residual branch, so the
//! next stage needs both the branch output (attention context, or fc1+GELU output) and the
//! residual/skip input. The reference implementation crashed when quantizing these; here the
//! pair is a first-class payload, each tensor with its own bitwidth and clipping, because the
//! post-GELU tensor is one-sided and the residual is not.

use serde::{Deserialize, Serialize};

use crate::bits::Bits;
use crate::codec::{self, Clip};
use crate::error::{DecodeError, EncodeError};
use crate::framing;
use crate::limits::DecodeLimits;
use crate::msgpack;
use crate::tensor::{EncodedTensor, EncodedTensorRef, FORMAT_VERSION};

/// The tensors crossing one cut, in unit-output order: `main` first, then `skip` if present.
///
/// `D` holds the tensors' payloads (see [`EncodedTensor`]): owned by default, borrowed from the
/// received message in a [`BoundaryPayloadRef`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "D: serde_bytes::Serialize",
    deserialize = "D: serde_bytes::Deserialize<'de>"
))]
pub struct BoundaryPayload<D = Vec<u8>> {
    // A struct (not an enum) keeps the version as the first array element, which lets the
    // reader check it before parsing anything else; `Option` makes 0 or 3 tensors unrepresentable.
    version: u16,
    main: EncodedTensor<D>,
    skip: Option<EncodedTensor<D>>,
}

/// A boundary payload whose tensors' payloads are borrowed from the buffer it was parsed from.
pub type BoundaryPayloadRef<'a> = BoundaryPayload<&'a [u8]>;

impl<D: AsRef<[u8]>> BoundaryPayload<D> {
    /// A cut after u1 or u3: the block's hidden state.
    pub fn single(hidden: EncodedTensor<D>) -> Self {
        BoundaryPayload {
            version: FORMAT_VERSION,
            main: hidden,
            skip: None,
        }
    }

    /// A cut after u0 or u2: the branch output (`main`: attention context or post-GELU fc1
    /// output) and the residual/skip tensor the next unit adds back.
    pub fn pair(main: EncodedTensor<D>, skip: EncodedTensor<D>) -> Self {
        BoundaryPayload {
            version: FORMAT_VERSION,
            main,
            skip: Some(skip),
        }
    }

    /// The first tensor (hidden state, or branch output of a pair).
    pub fn main(&self) -> &EncodedTensor<D> {
        &self.main
    }

    /// The residual tensor of a pair; `None` for a single-tensor cut.
    pub fn skip(&self) -> Option<&EncodedTensor<D>> {
        self.skip.as_ref()
    }

    /// Number of tensors: 1 or 2.
    pub fn len(&self) -> usize {
        1 + usize::from(self.skip.is_some())
    }

    /// Always false: a payload carries at least one tensor. (Present for clippy's `len` rule.)
    pub fn is_empty(&self) -> bool {
        false
    }

    /// All tensors in order (1 or 2).
    pub fn tensors(&self) -> impl Iterator<Item = &EncodedTensor<D>> {
        std::iter::once(&self.main).chain(self.skip.as_ref())
    }

    /// Takes the tensors out: (main, skip).
    pub fn into_parts(self) -> (EncodedTensor<D>, Option<EncodedTensor<D>>) {
        (self.main, self.skip)
    }

    /// Checks the version and every tensor (see [`EncodedTensor::validate`]).
    /// Needed when the payload arrived inside another serde message rather than `from_bytes`.
    pub fn validate(&self, limits: &DecodeLimits) -> Result<(), DecodeError> {
        if self.version != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                found: u64::from(self.version),
                supported: FORMAT_VERSION,
            });
        }
        for (index, t) in self.tensors().enumerate() {
            t.validate(limits).map_err(|e| DecodeError::PayloadTensor {
                index,
                source: Box::new(e),
            })?;
        }
        Ok(())
    }

    /// Serialises to MessagePack.
    pub fn to_bytes(&self) -> Vec<u8> {
        let borrowed = BoundaryPayload {
            version: self.version,
            main: self.main.borrowed(),
            skip: self.skip.as_ref().map(|t| t.borrowed()),
        };
        msgpack::to_bytes(&borrowed)
    }
}

impl BoundaryPayload {
    /// Parses and validates a wire buffer under `limits` (same guarantees as
    /// [`EncodedTensor::from_bytes`]).
    ///
    /// Parsed borrowed and then copied, so that exactly what [`BoundaryPayloadRef::borrow_from`]
    /// accepts is accepted (see [`EncodedTensor::from_bytes`]).
    pub fn from_bytes(buf: &[u8], limits: &DecodeLimits) -> Result<BoundaryPayload, DecodeError> {
        Ok(BoundaryPayloadRef::borrow_from(buf, limits)?.to_owned())
    }
}

impl<'a> BoundaryPayloadRef<'a> {
    /// Like [`BoundaryPayload::from_bytes`], with the tensors' payloads borrowed from `buf`
    /// (no copy): what a stage decodes straight into its input tensors.
    pub fn borrow_from(
        buf: &'a [u8],
        limits: &DecodeLimits,
    ) -> Result<BoundaryPayloadRef<'a>, DecodeError> {
        let p: BoundaryPayloadRef<'a> = framing::decode_versioned(buf, limits, FORMAT_VERSION)?;
        p.validate(limits)?;
        Ok(p)
    }

    /// An owned copy.
    pub fn to_owned(&self) -> BoundaryPayload {
        BoundaryPayload {
            version: self.version,
            main: self.main.to_owned(),
            skip: self.skip.as_ref().map(EncodedTensorRef::to_owned),
        }
    }
}

/// One tensor to encode into a payload: row-major `values` of `shape` (`shape[0]` samples) at
/// `bits`, clipped by `clip`.
#[derive(Debug, Clone, Copy)]
pub struct TensorToEncode<'a> {
    pub values: &'a [f32],
    pub shape: &'a [usize],
    pub bits: Bits,
    pub clip: Clip<'a>,
}

/// Appends the wire form of the payload of `main` (and `skip`, after a u0/u2 cut) to `out`,
/// encoding each tensor straight into it ([`codec::encode_to_wire`]): the same bytes as
/// `BoundaryPayload::single(..)` / `pair(..)` `.to_bytes()` without an intermediate copy of each
/// tensor. On error `out` keeps what it held before.
pub fn write_payload(
    out: &mut Vec<u8>,
    main: TensorToEncode<'_>,
    skip: Option<TensorToEncode<'_>>,
) -> Result<(), EncodeError> {
    let before = out.len();
    // One allocation of the whole message: growing by doubling would copy tens of megabytes
    // and, past glibc's mmap threshold, fault a fresh mapping in.
    let upper_bound: usize = std::iter::once(main)
        .chain(skip)
        .map(|t| wire_len_bound(&t))
        .sum();
    out.reserve(upper_bound + 8);
    let written = (|| {
        rmp::encode::write_array_len(out, 3).expect("writing MessagePack into a Vec cannot fail");
        msgpack::write_value(out, &FORMAT_VERSION);
        for t in std::iter::once(main).chain(skip) {
            codec::encode_to_wire(t.values, t.shape, t.bits, t.clip, out)?;
        }
        if skip.is_none() {
            msgpack::write_value(out, &());
        }
        Ok(())
    })();
    written.inspect_err(|_| out.truncate(before))
}

/// One piece of a payload's wire form (see [`payload_pieces`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadPiece {
    /// Bytes written here: the MessagePack structure, and the codes of quantized tensors.
    Written(Vec<u8>),
    /// The values of tensor `i` (0: main, 1: skip) as they lie in memory: a raw (32-bit)
    /// tensor's payload on a little-endian host, which the caller sends from where it is.
    Values(usize),
}

/// The wire form of the payload of `main` (and `skip`) as pieces whose concatenation is
/// exactly what [`write_payload`] writes, with the values of raw tensors left where they are:
/// a stage sending 32-bit activations hands its tensors' memory to the transport instead of
/// copying tens of megabytes behind a header. On a big-endian host every piece is written.
pub fn payload_pieces(
    main: TensorToEncode<'_>,
    skip: Option<TensorToEncode<'_>>,
) -> Result<Vec<PayloadPiece>, EncodeError> {
    let mut pieces = Vec::new();
    let mut written = Vec::new();
    rmp::encode::write_array_len(&mut written, 3)
        .expect("writing MessagePack into a Vec cannot fail");
    msgpack::write_value(&mut written, &FORMAT_VERSION);
    for (i, t) in std::iter::once(main).chain(skip).enumerate() {
        if t.bits.is_raw() && cfg!(target_endian = "little") {
            codec::write_raw_header(t.values, t.shape, &mut written)?;
            pieces.push(PayloadPiece::Written(std::mem::take(&mut written)));
            pieces.push(PayloadPiece::Values(i));
        } else {
            written.reserve(wire_len_bound(&t));
            codec::encode_to_wire(t.values, t.shape, t.bits, t.clip, &mut written)?;
        }
    }
    if skip.is_none() {
        msgpack::write_value(&mut written, &());
    }
    if !written.is_empty() {
        pieces.push(PayloadPiece::Written(written));
    }
    Ok(pieces)
}

/// At least the wire length of one encoded tensor of `n` values of `shape` at `bits`: the
/// payload, one (scale, offset) pair per sample at most 11 bytes, the outlier channels the
/// payload's budget allows (DS-ACIQ only), and the fixed fields with at most 9 bytes per dimension.
fn wire_len_bound(t: &TensorToEncode<'_>) -> usize {
    let (n, shape, bits) = (t.values.len(), t.shape, t.bits);
    let samples = if bits.is_raw() {
        0
    } else {
        shape.first().copied().unwrap_or(1)
    };
    let payload = bits.payload_len(n).unwrap_or(0);
    let outliers = if t.clip.ds_aciq().is_some() {
        crate::clipping::outlier_budget(payload) * crate::clipping::OUTLIER_WIRE_BYTES
    } else {
        0
    };
    payload + outliers + 11 * samples + 9 * shape.len() + 32
}
