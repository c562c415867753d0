//! `quantpipe bench planner --json`: planning time on ViT-Huge fleets and the per-link
//! heuristic's gap. Functions return serde structs; timing uses wall-clock medians.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::error::PlanError;
use super::links::{heuristic_gap, GapReport};
use super::types::{Device, Fleet, ModelProfile, PlanConfig};
use super::{exact, BitPolicy, CostModel};
use crate::profiles::synthetic::{vit_profile, DeviceSpeed, VitSpec};

/// One planning-time measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchCase {
    pub name: String,
    pub units: usize,
    pub devices: usize,
    pub device_types: usize,
    pub repetitions: usize,
    /// Median wall-clock planning time (`None`: every repetition hit the deadline).
    pub median_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Wall-clock cap per repetition; past it the exact planner gives up rather than guess.
    pub deadline_ms: f64,
    /// Goal from the issue.
    pub goal_ms: f64,
    pub stages: Option<usize>,
    pub bottleneck_s: Option<f64>,
}

/// The whole planner bench.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannerBench {
    pub cases: Vec<BenchCase>,
    pub link_heuristic_gap: GapReport,
}

/// ViT-Huge (ubatch 8) and a fleet of `types` device types with `per_type` hosts each. Types
/// span 8x in speed (25-200 GFLOP/s), 2-16 GiB of memory and 100-1000 Mbit/s, with memory
/// and bandwidth not ordered like speed, so no type dominates.
pub fn vit_huge_fleet(types: usize, per_type: usize) -> (ModelProfile, Fleet, PlanConfig) {
    let speeds: Vec<DeviceSpeed> = (0..types)
        .map(|t| DeviceSpeed {
            device_type: format!("type{t}"),
            gflops: 25.0 * 2f64.powf(3.0 * t as f64 / (types.max(2) - 1) as f64),
        })
        .collect();
    let ubatch = 8;
    let model = vit_profile(&VitSpec::huge(), ubatch, &speeds);
    let gib = 1u64 << 30;
    let devices = (0..types)
        .flat_map(|t| {
            (0..per_type).map(move |h| Device {
                name: format!("type{t}-{h}"),
                device_type: format!("type{t}"),
                mem_bytes: gib * (2 + ((t * 5) % 15) as u64),
                bw_mbps: [1000.0, 100.0, 500.0, 250.0][(t * 3) % 4],
            })
        })
        .collect();
    let cfg = PlanConfig {
        ubatch,
        bits: BitPolicy::Menu {
            menu: vec![2, 4, 6, 8, 16, 32],
            min_bits: 6,
            per_cut_min: None,
        },
        ..PlanConfig::default()
    };
    (model, Fleet::new(devices), cfg)
}

/// Times `plan` on ViT-Huge over `types` x `per_type` devices.
pub fn time_case(
    name: &str,
    types: usize,
    per_type: usize,
    reps: usize,
    goal_ms: f64,
) -> Result<BenchCase, PlanError> {
    let (model, fleet, cfg) = vit_huge_fleet(types, per_type);
    let cm = CostModel::new(&model, &fleet, &cfg)?;
    let deadline_ms = goal_ms * 10.0;
    let mut times = Vec::with_capacity(reps);
    let mut last = None;
    for _ in 0..reps.max(1) {
        let t0 = Instant::now();
        match exact::solve_within(&cm, Some(t0 + Duration::from_secs_f64(deadline_ms / 1e3))) {
            Ok(stages) => {
                times.push(t0.elapsed().as_secs_f64() * 1e3);
                last = Some(cm.evaluate(&stages, "edgepipe")?);
            }
            Err(PlanError::Deadline) => break,
            Err(e) => return Err(e),
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(BenchCase {
        name: name.into(),
        units: model.units(),
        devices: fleet.devices.len(),
        device_types: types,
        repetitions: times.len(),
        // The nearest-rank median, like every latency figure: a time that was measured.
        median_ms: (!times.is_empty()).then(|| quantpipe_simulator::percentile(&times, 50.0)),
        max_ms: times.last().copied(),
        deadline_ms,
        goal_ms,
        stages: last.as_ref().map(|p| p.stages.len()),
        bottleneck_s: last.as_ref().map(|p| p.bottleneck_s),
    })
}

/// The bench as `quantpipe bench planner --json` reports it. `gap_instances` random 8-12 device
/// link matrices (48-unit models) measure the heuristic; 50 is a good default.
pub fn bench_planner(reps: usize, gap_instances: usize) -> Result<PlannerBench, PlanError> {
    Ok(PlannerBench {
        cases: vec![
            time_case("vit-huge-16dev-4types", 4, 4, reps, 100.0)?,
            time_case("vit-huge-64dev-8types", 8, 8, reps, 2000.0)?,
        ],
        link_heuristic_gap: heuristic_gap(gap_instances, 48, 7)?,
    })
}
