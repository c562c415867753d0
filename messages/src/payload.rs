//! What crosses one pipeline cut: one tensor after units u1/u3, two after u0/u2.
//!
//! Cuts after u0 and u2 split a transformer block in the middle of a residual branch, so the
//! next stage needs both the branch output (attention context, or fc1+GELU output) and the
//! residual/skip input. The reference implementation crashed when quantizing these; here the
//! pair is a first-class payload, each tensor with its own bitwidth and clipping, because the
//! post-GELU tensor is one-sided and the residual is not.

use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::limits::DecodeLimits;
use crate::tensor::{EncodedTensor, FORMAT_VERSION};
use crate::wire;

/// The tensors crossing one cut, in unit-output order: `main` first, then `skip` if present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoundaryPayload {
    // A struct (not an enum) keeps the version as the first array element, which lets the
    // reader check it before parsing anything else; `Option` makes 0 or 3 tensors unrepresentable.
    version: u16,
    main: EncodedTensor,
    skip: Option<EncodedTensor>,
}

impl BoundaryPayload {
    /// A cut after u1 or u3: the block's hidden state.
    pub fn single(hidden: EncodedTensor) -> Self {
        BoundaryPayload {
            version: FORMAT_VERSION,
            main: hidden,
            skip: None,
        }
    }

    /// A cut after u0 or u2: the branch output (`main`: attention context or post-GELU fc1
    /// output) and the residual/skip tensor the next unit adds back.
    pub fn pair(main: EncodedTensor, skip: EncodedTensor) -> Self {
        BoundaryPayload {
            version: FORMAT_VERSION,
            main,
            skip: Some(skip),
        }
    }

    /// The first tensor (hidden state, or branch output of a pair).
    pub fn main(&self) -> &EncodedTensor {
        &self.main
    }

    /// The residual tensor of a pair; `None` for a single-tensor cut.
    pub fn skip(&self) -> Option<&EncodedTensor> {
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
    pub fn tensors(&self) -> impl Iterator<Item = &EncodedTensor> {
        std::iter::once(&self.main).chain(self.skip.as_ref())
    }

    /// Takes the tensors out: (main, skip).
    pub fn into_parts(self) -> (EncodedTensor, Option<EncodedTensor>) {
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
        wire::to_bytes(self)
    }

    /// Parses and validates a wire buffer under `limits` (same guarantees as
    /// [`EncodedTensor::from_bytes`]).
    pub fn from_bytes(buf: &[u8], limits: &DecodeLimits) -> Result<BoundaryPayload, DecodeError> {
        let p: BoundaryPayload = wire::from_bytes_versioned(buf, limits)?;
        p.validate(limits)?;
        Ok(p)
    }
}
