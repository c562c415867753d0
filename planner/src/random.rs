//! Seeded random planning instances, for the heuristic-gap report, the benches and the tests.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::bits::BitPolicy;
use super::types::{Device, Fleet, LinkMatrix, ModelProfile, PlanConfig};

/// The generator behind [`seeded`]. ChaCha8 because rand_chacha promises the same stream for a
/// seed on every platform and in every release (rand's `StdRng` does not), so a seed names one
/// set of instances for good.
pub type InstanceRng = ChaCha8Rng;

/// A generator whose instances depend only on `seed`.
pub fn seeded(seed: u64) -> InstanceRng {
    InstanceRng::seed_from_u64(seed)
}

/// Log-uniform in [lo, hi): bandwidths spread evenly over decades.
fn log_uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    rng.random_range(lo.ln()..hi.ln()).exp()
}

/// A random transformer-shaped instance: `units` units whose cuts after u0/u2 carry more
/// elements, `types` device types 1-4x apart in speed, memory from tight to ample, bandwidth
/// 10-1000 Mbit/s, and (if `links`) a random asymmetric link matrix.
pub fn random_instance(
    rng: &mut impl Rng,
    units: usize,
    devices: usize,
    types: usize,
    links: bool,
) -> (ModelProfile, Fleet, PlanConfig) {
    let base: Vec<f64> = (0..units)
        .map(|_| 0.002 + 0.008 * rng.random::<f64>())
        .collect();
    let weight_bytes: Vec<u64> = (0..units)
        .map(|_| 1_000_000 + rng.random_range(0..8_000_000))
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
        let speed = 1.0 + 3.0 * rng.random::<f64>();
        compute_s.insert(format!("t{t}"), base.iter().map(|b| b * speed).collect());
        type_mem.push(20_000_000 + rng.random_range(0..200_000_000));
        type_bw.push(log_uniform(rng, 10.0, 1000.0));
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
            let t = rng.random_range(0..types.max(1));
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
                            log_uniform(rng, 10.0, 1000.0)
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
