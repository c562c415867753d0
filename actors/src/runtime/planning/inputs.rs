//! The planner's view of the fleet: its inputs built from the nodes' device info, and the plan
//! it picks for them.

use anyhow::{anyhow, bail, Context as _, Result};
use quantpipe_messages::{DeviceInfo, PlanStage};
use quantpipe_planner::{self as planner, BitPolicy, Device, Fleet, ModelProfile, PlanConfig};
use std::collections::BTreeMap;

/// The planner's inputs built from the nodes' device info.
pub fn planner_inputs(
    infos: &[DeviceInfo],
    ubatch: usize,
    bits: u8,
) -> Result<(ModelProfile, Fleet, PlanConfig)> {
    let first = infos
        .first()
        .ok_or_else(|| anyhow!("no device to plan for"))?;
    check_profiles_agree(infos, first, ubatch)?;
    let p = &first.profile;
    let n = p.time_s.len();
    let mut compute_s = BTreeMap::new();
    for i in infos {
        // Nodes of one type share the first one's profile (the planner groups by type).
        compute_s
            .entry(i.device_type.clone())
            .or_insert_with(|| i.profile.time_s.clone());
    }
    let model = ModelProfile {
        name: p.model.clone(),
        weight_bytes: p.weight_bytes.clone(),
        cut_elements: p.output_elements[..n - 1].to_vec(),
        input_elements: p.input_elements,
        output_elements: p.output_elements[n - 1],
        compute_s,
    };
    let fleet = Fleet::new(
        infos
            .iter()
            .map(|i| Device {
                name: i.name.clone(),
                device_type: i.device_type.clone(),
                mem_bytes: i.mem_bytes,
                bw_mbps: i.bw_mbps,
            })
            .collect(),
    );
    let cfg = PlanConfig {
        ubatch,
        bits: BitPolicy::Fixed { bits },
        ..PlanConfig::default()
    };
    Ok((model, fleet, cfg))
}

/// Every node profiled the same model, with units, at the plan's microbatch size.
fn check_profiles_agree(infos: &[DeviceInfo], first: &DeviceInfo, ubatch: usize) -> Result<()> {
    let p = &first.profile;
    if p.time_s.is_empty() {
        bail!("node {} profiled no unit of `{}`", first.name, p.model);
    }
    if p.output_elements.len() != p.time_s.len() || p.weight_bytes.len() != p.time_s.len() {
        bail!(
            "node {}'s profile of `{}` has {} unit times, {} output sizes and {} weight sizes",
            first.name,
            p.model,
            p.time_s.len(),
            p.output_elements.len(),
            p.weight_bytes.len()
        );
    }
    for i in infos {
        if i.profile.model != p.model || i.profile.time_s.len() != p.time_s.len() {
            bail!(
                "nodes disagree on the model: {} has `{}` ({} units), {} has `{}` ({} units)",
                first.name,
                p.model,
                p.time_s.len(),
                i.name,
                i.profile.model,
                i.profile.time_s.len()
            );
        }
        if i.profile.ubatch != ubatch {
            bail!(
                "node {} profiled microbatches of {}, the plan uses {ubatch}: set its \
                 device.profile_ubatch",
                i.name,
                i.profile.ubatch
            );
        }
    }
    Ok(())
}

/// The plan the planner picks for these nodes, and its predicted throughput (items/s).
pub fn plan_stages(infos: &[DeviceInfo], ubatch: usize, bits: u8) -> Result<(Vec<PlanStage>, f64)> {
    let (model, fleet, cfg) = planner_inputs(infos, ubatch, bits)?;
    let plan = planner::plan(&model, &fleet, &cfg).context("planning")?;
    let stages = plan
        .stages
        .iter()
        .map(|s| PlanStage {
            node: s.device.clone(),
            l: s.l,
            r: s.r,
            out_bits: s.out_bits.unwrap_or(32),
            compute_s: s.compute_s,
            transfer_s: s.transfer_s,
        })
        .collect();
    Ok((stages, plan.throughput_items_per_s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::planning::test_support::info;

    #[test]
    fn planner_gives_the_slow_node_fewer_units() {
        let infos = [info("fast", 1.0), info("slow", 3.0)];
        let (stages, predicted) = plan_stages(&infos, 8, 32).unwrap();
        assert!(predicted > 0.0);
        let units = |n: &str| {
            stages
                .iter()
                .filter(|s| s.node == n)
                .map(|s| s.r - s.l + 1)
                .sum::<usize>()
        };
        assert_eq!(units("fast") + units("slow"), 8);
        assert!(units("fast") > units("slow"), "{stages:?}");
    }

    #[test]
    fn mismatched_profiles_are_refused() {
        let mut b = info("b", 1.0);
        b.profile.ubatch = 4;
        let err = planner_inputs(&[info("a", 1.0), b], 8, 32)
            .unwrap_err()
            .to_string();
        assert!(err.contains("profiled microbatches of 4"), "{err}");
    }

    #[test]
    fn a_profile_without_units_is_refused_not_a_panic() {
        let mut a = info("a", 1.0);
        a.profile.time_s.clear();
        a.profile.output_elements.clear();
        a.profile.weight_bytes.clear();
        let err = planner_inputs(&[a], 8, 32).unwrap_err().to_string();
        assert!(err.contains("profiled no unit"), "{err}");
    }
}
