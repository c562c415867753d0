//! Synthetic ViT profiles of plausible shape, for planning studies before real profiles exist.
//!
//! Per block (pre-LN, hidden h, MLP width m, sequence s), units and their cost:
//! - u0 LayerNorm + QKV + attention: `2*3*s*h^2 + 2*2*s^2*h` FLOPs, weights `3h^2 + 5h`,
//!   output context + residual = `2*s*h` elements;
//! - u1 output projection + residual: `2*s*h^2`, weights `h^2 + h`, output `s*h`;
//! - u2 LayerNorm + fc1 + GELU: `2*s*h*m`, weights `h*m + m + 2h`, output fc1 + residual
//!   = `s*(m + h)`;
//! - u3 fc2 + residual: `2*s*h*m`, weights `h*m + h`, output `s*h`.
//!
//! Unit 1 also carries the patch embedding, the last unit the final norm and head. Compute time is
//! FLOPs times the microbatch size over the device's sustained FLOP/s.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ModelProfile;

/// A ViT's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VitSpec {
    pub name: String,
    pub blocks: usize,
    pub hidden: u64,
    pub mlp: u64,
    pub seq: u64,
    pub patch: u64,
    pub image: u64,
    pub classes: u64,
}

impl VitSpec {
    fn vit(name: &str, blocks: usize, hidden: u64, mlp: u64, patch: u64) -> Self {
        let image = 224;
        VitSpec {
            name: name.into(),
            blocks,
            hidden,
            mlp,
            seq: (image / patch).pow(2) + 1,
            patch,
            image,
            classes: 1000,
        }
    }
    /// ViT-Base/16: 48 units.
    pub fn base() -> Self {
        Self::vit("ViT-Base", 12, 768, 3072, 16)
    }
    /// ViT-Large/16: 96 units.
    pub fn large() -> Self {
        Self::vit("ViT-Large", 24, 1024, 4096, 16)
    }
    /// ViT-Huge/14: 128 units.
    pub fn huge() -> Self {
        Self::vit("ViT-Huge", 32, 1280, 5120, 14)
    }
}

/// A device type's sustained speed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceSpeed {
    pub device_type: String,
    /// Sustained GFLOP/s on transformer layers.
    pub gflops: f64,
}

/// The planner profile of `spec` for microbatches of `ubatch` on each device type.
pub fn vit_profile(spec: &VitSpec, ubatch: usize, speeds: &[DeviceSpeed]) -> ModelProfile {
    let (h, m, s) = (spec.hidden, spec.mlp, spec.seq);
    let n = spec.blocks * 4;
    let mut flops = Vec::with_capacity(n);
    let mut params = Vec::with_capacity(n);
    let mut cuts = Vec::with_capacity(n);
    for _ in 0..spec.blocks {
        flops.extend([
            6 * s * h * h + 4 * s * s * h,
            2 * s * h * h,
            2 * s * h * m,
            2 * s * h * m,
        ]);
        params.extend([3 * h * h + 5 * h, h * h + h, h * m + m + 2 * h, h * m + h]);
        cuts.extend([2 * s * h, s * h, s * (m + h), s * h]);
    }
    let patch_in = 3 * spec.patch * spec.patch;
    params[0] += patch_in * h + h + s * h + h; // patch projection, cls token, positions
    flops[0] += 2 * (s - 1) * patch_in * h;
    params[n - 1] += 2 * h + h * spec.classes + spec.classes; // final norm, head
    flops[n - 1] += 2 * h * spec.classes;
    cuts.pop();
    let compute_s: BTreeMap<String, Vec<f64>> = speeds
        .iter()
        .map(|sp| {
            let t = flops
                .iter()
                .map(|f| *f as f64 * ubatch as f64 / (sp.gflops * 1e9))
                .collect();
            (sp.device_type.clone(), t)
        })
        .collect();
    ModelProfile {
        name: spec.name.clone(),
        weight_bytes: params.iter().map(|p| p * 4).collect(),
        cut_elements: cuts,
        input_elements: 3 * spec.image * spec.image,
        output_elements: spec.classes,
        compute_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_the_real_models() {
        let sp = [DeviceSpeed {
            device_type: "x".into(),
            gflops: 100.0,
        }];
        let l = vit_profile(&VitSpec::large(), 1, &sp);
        assert_eq!(l.units(), 96);
        let params: u64 = l.weight_bytes.iter().sum::<u64>() / 4;
        assert!((300_000_000..310_000_000).contains(&params), "{params}");
        let h = vit_profile(&VitSpec::huge(), 1, &sp);
        assert_eq!(h.units(), 128);
        let params: u64 = h.weight_bytes.iter().sum::<u64>() / 4;
        assert!((625_000_000..640_000_000).contains(&params), "{params}");
        // Cuts after u2 carry fc1 output + residual: the widest.
        assert_eq!(l.cut_elements[2], 197 * (4096 + 1024));
        assert!(l.validate().is_ok());
    }
}
