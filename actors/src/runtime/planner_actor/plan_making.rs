//! Making a plan current: plan, have every stage accept it, publish it and release the nodes it
//! leaves out.

use super::{Phase, PlannerActor};
use crate::runtime::planning::release::{may_leave_out, released};
use crate::runtime::planning::{plan_for, PlanRequest, Refusal};
use anyhow::Result;
use quantpipe_messages::{DeviceInfo, PlanInfo};
use std::collections::BTreeSet;

impl PlannerActor {
    /// A plan over `infos` above epoch `previous`, accepted by every stage. A stage that runs a
    /// newer plan than `previous` (its stats did not answer in time) names its epoch in its
    /// refusal: plan once more above it.
    pub(super) fn plan_and_assign(&self, infos: &[DeviceInfo], previous: u64) -> Result<PlanInfo> {
        let plan = self.plan_for(infos, previous)?;
        let Err(e) = self.io.assign(&plan) else {
            return Ok(plan);
        };
        let Some(above) = e
            .downcast_ref::<Refusal>()
            .and_then(Refusal::plan_again_above)
        else {
            return Err(e);
        };
        tracing::warn!("{e}: planning again above epoch {above}");
        let plan = self.plan_for(infos, above)?;
        self.io.assign(&plan)?;
        Ok(plan)
    }

    pub(super) fn plan_for(&self, infos: &[DeviceInfo], previous: u64) -> Result<PlanInfo> {
        let now_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1);
        plan_for(&PlanRequest {
            fleet: &self.io.keys.fleet,
            infos,
            settings: &self.settings,
            previous_epoch: previous,
            now_unix_ms,
        })
    }

    /// Makes `plan` the current one, then releases the alive nodes it leaves out. The releases
    /// go after the announcement: by then clients send under the new plan, so what the
    /// left-out nodes had in flight is late traffic of a replaced plan.
    pub(super) fn publish(&mut self, plan: PlanInfo) -> Result<()> {
        let old = match &self.phase {
            Phase::Running(old) => Some(old),
            _ => None,
        };
        let left_out = if may_leave_out(old, &plan) {
            released(old, &plan, &self.io.alive_nodes()?)
        } else {
            BTreeSet::new()
        };
        self.io.publish(&plan)?;
        for (i, s) in plan.stages.iter().enumerate() {
            tracing::info!(
                "plan epoch {}: stage {i} = {} units {}..{} (out {} bits, predicted compute {:.1} ms)",
                plan.epoch, s.node, s.l, s.r, s.out_bits, s.compute_s * 1e3
            );
        }
        for node in left_out {
            if let Err(e) = self.io.release(&node, plan.epoch) {
                tracing::warn!("{e:#}");
            }
        }
        self.phase = Phase::Running(plan);
        Ok(())
    }
}
