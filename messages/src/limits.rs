//! Resource limits applied when decoding untrusted buffers.
//!
//! A message's size is checked before any byte of it is parsed, and every allocation the decoder
//! makes is bounded by the buffer length: the payload must be exactly ceil(n*b/8) bytes, so a
//! tensor cannot declare more elements than its bytes can hold (at most 8 per byte at 1 bit).
//! `max_elements` additionally caps the f32 output a caller may be asked to allocate.

use serde::{Deserialize, Serialize};

/// Limits for [`crate::EncodedTensor::from_bytes`], [`crate::BoundaryPayload::from_bytes`] and
/// [`crate::codec::decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecodeLimits {
    /// Largest accepted wire message, in bytes.
    pub max_message_bytes: usize,
    /// Largest accepted element count of one tensor (4 bytes each once decoded).
    pub max_elements: u64,
}

impl DecodeLimits {
    /// 256 MiB: the largest boundary tensor we expect (ViT-Huge, microbatch 64, raw f32: 64 x 257
    /// x 5120 x 4 B = 337 MB would need raising it) with room to spare at any quantized width.
    pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 << 20;
    /// 2^28 elements = 1 GiB of decoded f32.
    pub const DEFAULT_MAX_ELEMENTS: u64 = 1 << 28;
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_message_bytes: Self::DEFAULT_MAX_MESSAGE_BYTES,
            max_elements: Self::DEFAULT_MAX_ELEMENTS,
        }
    }
}
