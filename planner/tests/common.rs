//! Small random instances for the property tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use quantpipe_planner::{BitPolicy, Device, Fleet, LinkMatrix, ModelProfile, PlanConfig};

/// (model, fleet, config) with 1-7 units, 1-`max_devices` devices of 1-3 types (several hosts per
/// type are common), memory from too small to ample, and either raw or menu bitwidths.
pub fn instance(
    max_devices: usize,
    links: bool,
) -> impl Strategy<Value = (ModelProfile, Fleet, PlanConfig)> {
    (1usize..=7, 1usize..=max_devices, 1usize..=3).prop_flat_map(move |(n, d, t)| {
        (
            prop::collection::vec(prop::collection::vec(1u32..20, n), t),
            prop::collection::vec(1u64..6, n),
            prop::collection::vec(1u64..6, n.saturating_sub(1)),
            prop::collection::vec(
                (0..t, 2u64..14, prop::sample::select(vec![1.0, 2.0, 8.0])),
                d,
            ),
            prop::collection::vec(prop::sample::select(vec![0.0, 1.0, 4.0, 8.0]), d * d),
            (any::<bool>(), prop::sample::select(vec![1u8, 4, 8])),
            1u32..3,
        )
            .prop_map(
                move |(times, weights, cuts, devs, bw, (menu, min_bits), bufs)| {
                    let mut compute_s = BTreeMap::new();
                    for (k, ts) in times.iter().enumerate() {
                        compute_s.insert(
                            format!("type{k}"),
                            ts.iter().map(|x| f64::from(*x) * 0.001).collect(),
                        );
                    }
                    let model = ModelProfile {
                        name: "tiny".into(),
                        weight_bytes: weights.iter().map(|w| w * 1000).collect(),
                        cut_elements: cuts.iter().map(|c| c * 1000).collect(),
                        input_elements: 1000,
                        output_elements: 10,
                        compute_s,
                    };
                    let devices: Vec<Device> = devs
                        .iter()
                        .enumerate()
                        .map(|(i, &(ty, mem, bw))| Device {
                            name: format!("host{i}"),
                            device_type: format!("type{ty}"),
                            mem_bytes: mem * 1000 + 4000,
                            bw_mbps: bw,
                        })
                        .collect();
                    let nd = devices.len();
                    let mut fleet = Fleet::new(devices);
                    if links {
                        let m: Vec<Vec<f64>> = (0..nd)
                            .map(|a| {
                                (0..nd)
                                    .map(|b| if a == b { 0.0 } else { bw[a * nd + b] })
                                    .collect()
                            })
                            .collect();
                        fleet.links = Some(LinkMatrix {
                            bw_mbps: m,
                            latency_ms: vec![vec![0.0; nd]; nd],
                        });
                    }
                    let cfg = PlanConfig {
                        ubatch: 1,
                        dtype_bytes: 1,
                        in_buffers: bufs,
                        out_buffers: bufs,
                        bits: if menu {
                            BitPolicy::Menu {
                                menu: vec![2, 4, 8, 32],
                                min_bits,
                                per_cut_min: None,
                            }
                        } else {
                            BitPolicy::Fixed { bits: 32 }
                        },
                        header_bytes: 0,
                    };
                    (model, fleet, cfg)
                },
            )
    })
}

/// Relative float equality for bottlenecks computed along different search paths.
pub fn same(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
}
