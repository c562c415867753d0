//! Seeded random planning instances, for the heuristic-gap report and the benches. A tiny
//! SplitMix64 keeps the crate free of an RNG dependency and the instances identical everywhere.

use std::collections::BTreeMap;

use super::bits::BitPolicy;
use super::types::{Device, Fleet, LinkMatrix, ModelProfile, PlanConfig};

/// SplitMix64: small, fast, and good enough for generating test instances.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Log-uniform in [lo, hi).
    pub fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + self.unit() * (hi.ln() - lo.ln())).exp()
    }
}

/// A random transformer-shaped instance: `units` units whose cuts after u0/u2 carry more
/// elements, `types` device types 1-4x apart in speed, memory from tight to ample, bandwidth
/// 10-1000 Mbit/s, and (if `links`) a random asymmetric link matrix.
pub fn random_instance(
    rng: &mut Rng,
    units: usize,
    devices: usize,
    types: usize,
    links: bool,
) -> (ModelProfile, Fleet, PlanConfig) {
    let base: Vec<f64> = (0..units).map(|_| 0.002 + 0.008 * rng.unit()).collect();
    let weight_bytes: Vec<u64> = (0..units)
        .map(|_| 1_000_000 + rng.below(8_000_000))
        .collect();
    let hidden = 20_000u64;
    let cut_elements = (1..units)
        .map(|k| match k % 4 {
            1 => 2 * hidden,
            3 => 5 * hidden,
            _ => hidden,
        })
        .collect();
    let mut compute_s = BTreeMap::new();
    let mut type_mem = Vec::new();
    let mut type_bw = Vec::new();
    for t in 0..types {
        let speed = 1.0 + 3.0 * rng.unit();
        compute_s.insert(format!("t{t}"), base.iter().map(|b| b * speed).collect());
        type_mem.push(20_000_000 + rng.below(200_000_000));
        type_bw.push(rng.log_uniform(10.0, 1000.0));
    }
    let model = ModelProfile {
        name: "random".into(),
        weight_bytes,
        cut_elements,
        input_elements: hidden,
        output_elements: 1000,
        compute_s,
    };
    let devs: Vec<Device> = (0..devices)
        .map(|d| {
            let t = rng.below(types as u64) as usize;
            Device {
                name: format!("dev{d}"),
                device_type: format!("t{t}"),
                mem_bytes: type_mem[t],
                bw_mbps: type_bw[t],
            }
        })
        .collect();
    let mut fleet = Fleet::new(devs);
    if links {
        let bw = (0..devices)
            .map(|a| {
                (0..devices)
                    .map(|b| {
                        if a == b {
                            0.0
                        } else {
                            rng.log_uniform(10.0, 1000.0)
                        }
                    })
                    .collect()
            })
            .collect();
        fleet.links = Some(LinkMatrix {
            bw_mbps: bw,
            latency_ms: vec![vec![0.5; devices]; devices],
        });
    }
    let cfg = PlanConfig {
        ubatch: 4,
        bits: BitPolicy::Fixed { bits: 32 },
        ..PlanConfig::default()
    };
    (model, fleet, cfg)
}
