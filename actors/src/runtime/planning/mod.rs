//! The leader's decisions, as plain functions of plain data: which plan to make for the alive
//! devices ([`choice`], from the planner's [`inputs`] or the [`forced`] plan of the settings, at
//! the bandwidths the stages [`measured`]), what each stage is told
//! ([`assignments`](mod@assignments)), whether its answer accepts the plan ([`acceptance`]),
//! when the first plan is made and at which epoch ([`first_plan`]), whether a membership change
//! is worth a new plan ([`replan`]), and which nodes a new plan releases ([`release`]).
//!
//! The [`crate::runtime::planner_actor`] holds the state these functions read and does the
//! network I/O; nothing here touches zenoh or actix.

pub mod acceptance;
pub mod assignments;
pub mod choice;
pub mod first_plan;
pub mod flap_damping;
pub mod forced;
pub mod inputs;
pub mod measured;
pub mod partition;
pub mod release;
pub mod replan;

pub use acceptance::{refusal, Refusal};
pub use assignments::assignments;
pub use choice::{plan_for, PlanRequest};
pub use forced::forced_stages;
pub use inputs::{plan_stages, planner_inputs};
pub use measured::{measured_bandwidths, with_measured_bandwidth};

#[cfg(test)]
pub(crate) mod test_support {
    use quantpipe_messages::{DeviceInfo, PlanInfo, PlanStage, UnitTimes};

    /// A device of type `name` with 8 units of 10 ms times `scale`.
    pub fn info(name: &str, scale: f64) -> DeviceInfo {
        DeviceInfo {
            name: name.into(),
            device_type: name.into(),
            mem_bytes: 1 << 30,
            threads: 1,
            slowdown: scale,
            bw_mbps: 1000.0,
            profile: UnitTimes {
                model: "m".into(),
                ubatch: 8,
                input_elements: 128,
                time_s: vec![0.01 * scale; 8],
                weight_bytes: vec![1 << 20; 8],
                output_elements: vec![1000; 8],
            },
        }
    }

    pub fn names(v: &[&str]) -> std::collections::BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Plan `epoch` of one unit per stage, over `nodes` in order.
    pub fn plan_over(epoch: u64, nodes: &[&str]) -> PlanInfo {
        PlanInfo {
            epoch,
            model: "m".into(),
            ubatch: 4,
            source: "planner".into(),
            stages: nodes
                .iter()
                .map(|n| PlanStage {
                    node: n.to_string(),
                    l: 1,
                    r: 1,
                    out_bits: 32,
                    compute_s: 0.0,
                    transfer_s: 0.0,
                })
                .collect(),
            predicted_items_per_s: 1.0,
        }
    }
}
