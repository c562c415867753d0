//! EdgePipe's scaling study on synthetic (or measured) profiles: fleets of 1, 2, 4, 8, 16
//! devices of two types whose speed differs by a factor, on 1 Gbit/s and 100 Mbit/s links. For
//! each fleet the optimal plan and each baseline are simulated; speedups are simulated
//! throughput over the smallest fleet that fits the model, and over each baseline.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::types::{Device, Fleet, ModelProfile, PlanConfig};
use super::{plan_with, PlanError, PlannerKind};
use crate::simulate::simulate;

/// The study's knobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingConfig {
    /// Must have compute times for `fast_type` and `slow_type`.
    pub model: ModelProfile,
    pub fast_type: String,
    pub slow_type: String,
    pub fast_mem_bytes: u64,
    pub slow_mem_bytes: u64,
    /// Fleet sizes; devices alternate fast, slow, fast, ... (one device = one fast device).
    pub fleet_sizes: Vec<usize>,
    pub link_mbps: Vec<f64>,
    pub cfg: PlanConfig,
    pub microbatches: usize,
}

/// One (link, fleet size) row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingRow {
    pub link_mbps: f64,
    pub devices: usize,
    /// Simulated items/s of the optimal plan (`None`: the model does not fit).
    pub edgepipe_items_per_s: Option<f64>,
    pub edgepipe_stages: Option<usize>,
    /// Over the smallest fitting fleet on the same link.
    pub speedup: Option<f64>,
    /// Per baseline: simulated items/s (`None`: does not fit memory).
    pub baseline_items_per_s: BTreeMap<String, Option<f64>>,
    /// Per baseline: edgepipe / baseline.
    pub speedup_over_baseline: BTreeMap<String, Option<f64>>,
}

/// The whole curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingReport {
    pub model: String,
    pub rows: Vec<ScalingRow>,
    /// Per link: the fleet size speedups are relative to.
    pub reference_devices: BTreeMap<String, Option<usize>>,
}

fn fleet(c: &ScalingConfig, size: usize, mbps: f64) -> Fleet {
    Fleet::new(
        (0..size)
            .map(|i| {
                let fast = i % 2 == 0;
                Device {
                    name: format!("{}-{i}", if fast { "fast" } else { "slow" }),
                    device_type: if fast { &c.fast_type } else { &c.slow_type }.clone(),
                    mem_bytes: if fast {
                        c.fast_mem_bytes
                    } else {
                        c.slow_mem_bytes
                    },
                    bw_mbps: mbps,
                }
            })
            .collect(),
    )
}

fn simulated(
    kind: PlannerKind,
    c: &ScalingConfig,
    f: &Fleet,
) -> Result<Option<(f64, usize)>, PlanError> {
    match plan_with(kind, &c.model, f, &c.cfg) {
        Ok(p) => {
            let r = simulate(&p, c.microbatches).map_err(|e| PlanError::BadStages {
                units: c.model.units(),
                detail: e.to_string(),
            })?;
            Ok(Some((r.steady_throughput_items_per_s, p.stages.len())))
        }
        Err(
            PlanError::UnitTooLarge { .. }
            | PlanError::FleetMemoryExhausted { .. }
            | PlanError::MemoryExceeded { .. }
            | PlanError::NoUsableLink,
        ) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Runs the study.
pub fn scaling_study(c: &ScalingConfig) -> Result<ScalingReport, PlanError> {
    let mut rows = Vec::new();
    let mut reference = BTreeMap::new();
    for &mbps in &c.link_mbps {
        let mut base: Option<(usize, f64)> = None;
        for &size in &c.fleet_sizes {
            let f = fleet(c, size, mbps);
            let ep = simulated(PlannerKind::Edgepipe, c, &f)?;
            if base.is_none() {
                base = ep.map(|(t, _)| (size, t));
            }
            let mut bl = BTreeMap::new();
            let mut over = BTreeMap::new();
            for kind in PlannerKind::BASELINES {
                let t = simulated(kind, c, &f)?.map(|x| x.0);
                over.insert(kind.name().to_string(), ep.zip(t).map(|((e, _), b)| e / b));
                bl.insert(kind.name().to_string(), t);
            }
            rows.push(ScalingRow {
                link_mbps: mbps,
                devices: size,
                edgepipe_items_per_s: ep.map(|x| x.0),
                edgepipe_stages: ep.map(|x| x.1),
                speedup: ep.zip(base).map(|((e, _), (_, b))| e / b),
                baseline_items_per_s: bl,
                speedup_over_baseline: over,
            });
        }
        reference.insert(format!("{mbps}"), base.map(|b| b.0));
    }
    Ok(ScalingReport {
        model: c.model.name.clone(),
        rows,
        reference_devices: reference,
    })
}
