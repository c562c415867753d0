//! Which plan the leader makes over the devices it has: the forced one of its settings while
//! every node that plan names is among them, else the planner's; at an epoch above the last.

use crate::runtime::config::LeaderSettings;
use crate::runtime::membership;
use crate::runtime::planning::forced::forced_plan_applies;
use crate::runtime::planning::{forced_stages, plan_stages};
use anyhow::{anyhow, Result};
use quantpipe_messages::{DeviceInfo, PlanInfo};
use std::collections::BTreeSet;

/// What a plan is made of.
pub struct PlanRequest<'a> {
    pub fleet: &'a str,
    /// The devices to plan over (at their measured bandwidths where known).
    pub infos: &'a [DeviceInfo],
    pub settings: &'a LeaderSettings,
    /// The epoch the new plan must exceed: the current plan's, or the highest a stage runs.
    pub previous_epoch: u64,
    /// The leader's clock, milliseconds since the Unix epoch.
    pub now_unix_ms: u64,
}

/// A plan over `req.infos` at an epoch above `req.previous_epoch`: the forced one of the
/// settings when every node it names is among them, else the planner's.
pub fn plan_for(req: &PlanRequest) -> Result<PlanInfo> {
    let first = req
        .infos
        .first()
        .ok_or_else(|| anyhow!("no node answered its device info"))?;
    let s = req.settings;
    let names: BTreeSet<String> = req.infos.iter().map(|i| i.name.clone()).collect();
    let (stages, predicted, source) = if forced_plan_applies(&s.stages, &names) {
        let units = first.profile.time_s.len();
        let stages = forced_stages(&s.stages, units, &names, s.bits)?;
        (stages, 0.0, "forced")
    } else {
        if !s.stages.is_empty() {
            tracing::warn!(
                "a node of the forced plan is not alive: planning over {names:?} instead"
            );
        }
        let (stages, predicted) = plan_stages(req.infos, s.ubatch, s.bits)?;
        (stages, predicted, "planner")
    };
    Ok(PlanInfo {
        epoch: membership::next_epoch(req.previous_epoch, req.now_unix_ms),
        model: first.profile.model.clone(),
        ubatch: s.ubatch,
        source: source.into(),
        stages,
        predicted_items_per_s: predicted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::config::ForcedStage;
    use crate::runtime::planning::test_support::info;

    fn settings(forced: &[(&str, [usize; 2])]) -> LeaderSettings {
        LeaderSettings {
            ubatch: 8,
            bits: 32,
            stages: forced
                .iter()
                .map(|(n, units)| ForcedStage {
                    node: n.to_string(),
                    units: *units,
                })
                .collect(),
            ..LeaderSettings::default()
        }
    }

    fn request<'a>(infos: &'a [DeviceInfo], s: &'a LeaderSettings) -> PlanRequest<'a> {
        PlanRequest {
            fleet: "f",
            infos,
            settings: s,
            previous_epoch: 5_000,
            now_unix_ms: 1_000,
        }
    }

    #[test]
    fn the_forced_plan_runs_while_its_nodes_are_alive() {
        let s = settings(&[("a", [1, 2]), ("b", [3, 8])]);
        let infos = [info("a", 1.0), info("b", 1.0), info("c", 1.0)];
        let plan = plan_for(&request(&infos, &s)).unwrap();
        assert_eq!(plan.source, "forced");
        assert_eq!(plan.stages.len(), 2);
        assert_eq!(
            plan.predicted_items_per_s, 0.0,
            "a forced plan predicts nothing"
        );
    }

    #[test]
    fn without_a_node_of_the_forced_plan_the_planner_plans() {
        let s = settings(&[("a", [1, 2]), ("gone", [3, 8])]);
        let infos = [info("a", 1.0), info("b", 1.0)];
        let plan = plan_for(&request(&infos, &s)).unwrap();
        assert_eq!(plan.source, "planner");
        assert!(plan.predicted_items_per_s > 0.0);
    }

    #[test]
    fn a_new_plan_is_above_the_previous_epoch_whatever_the_clock() {
        let s = settings(&[]);
        let infos = [info("a", 1.0)];
        let plan = plan_for(&request(&infos, &s)).unwrap();
        assert_eq!(plan.epoch, 5_001);
        assert_eq!(plan.model.as_str(), "m");
    }

    #[test]
    fn no_device_no_plan() {
        let s = settings(&[]);
        let err = plan_for(&request(&[], &s)).unwrap_err().to_string();
        assert!(err.contains("no node answered"), "{err}");
    }
}
