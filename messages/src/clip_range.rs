//! The range a quantizer spreads its levels over: shared by the clipping methods that choose it
//! and the scalar quantizer that applies it, so neither module imports the other.

use serde::{Deserialize, Serialize};

/// A clipping range: values below `lo` / above `hi` are clamped before quantization.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClipRange {
    pub lo: f32,
    pub hi: f32,
}

impl ClipRange {
    pub fn new(lo: f32, hi: f32) -> Self {
        ClipRange { lo, hi }
    }
    /// hi - lo.
    pub fn width(&self) -> f32 {
        self.hi - self.lo
    }
}
