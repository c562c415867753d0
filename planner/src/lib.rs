//! The EdgePipe planner: cut a model's units into contiguous shards and map them onto devices so
//! that pipeline throughput is the best the fleet allows.
//!
//! Formulation (EdgePipe, arXiv 2110.14895): a plan is an ordered list of stages `(device, [l, r])`
//! covering units 1..n; its bottleneck is the max over stages of max(compute time of the shard,
//! time to send the shard's output to the next stage), and a stage's memory (weights plus in/out
//! buffers) must fit its device. The planner minimises the bottleneck; throughput is
//! `ubatch / bottleneck`. Bitwidths of the cuts are chosen together with the cuts
//! ([`bits::BitPolicy::Menu`]).
//!
//! Entry points: [`plan`] (the optimum), [`plan_with`] (any [`PlannerKind`], including the
//! baselines), [`simulate()`] (a plan through the discrete-event simulator), [`cli`] (file-based
//! requests for `quantpipe plan`), [`scaling`] and [`bench`]. Main types: [`ModelProfile`] and
//! [`Fleet`] in, [`Plan`] out; [`profiles`] reads PipeEdge's YAML profile files into them and makes
//! synthetic ViT profiles.

#![forbid(unsafe_code)]

pub mod baselines;
pub mod bench;
pub mod bits;
pub mod bitset;
pub mod cli;
pub mod cost;
pub mod error;
pub mod exact;
pub mod exhaustive;
pub mod links;
pub mod plan;
pub mod profiles;
pub mod random;
pub mod scaling;
pub mod simulate;
pub mod types;

use serde::{Deserialize, Serialize};

pub use bits::BitPolicy;
pub use cost::CostModel;
pub use error::PlanError;
pub use plan::{BottleneckKind, Plan, Stage};
pub use simulate::simulate;
pub use types::{Device, Fleet, LinkMatrix, ModelProfile, PlanConfig};

/// Which planner to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlannerKind {
    /// The optimum: exact class planner, or the per-link planner when a matrix is given (exact up
    /// to 12 devices, heuristic beyond).
    Edgepipe,
    /// The per-link heuristic even where exact is affordable (for comparisons).
    LinksHeuristic,
    /// Brute force (small instances only).
    Exhaustive,
    /// Equal units per device.
    Even,
    /// Units proportional to memory (exo).
    Memory,
    /// Identical-worker planner evaluated on the real fleet.
    Pipedream,
}

impl PlannerKind {
    /// Name used in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PlannerKind::Edgepipe => "edgepipe",
            PlannerKind::LinksHeuristic => "links-heuristic",
            PlannerKind::Exhaustive => "exhaustive",
            PlannerKind::Even => "even",
            PlannerKind::Memory => "memory",
            PlannerKind::Pipedream => "pipedream",
        }
    }

    /// The baselines, in report order.
    pub const BASELINES: [PlannerKind; 3] = [
        PlannerKind::Even,
        PlannerKind::Memory,
        PlannerKind::Pipedream,
    ];
}

/// The optimal plan.
pub fn plan(model: &ModelProfile, fleet: &Fleet, cfg: &PlanConfig) -> Result<Plan, PlanError> {
    plan_with(PlannerKind::Edgepipe, model, fleet, cfg)
}

/// A plan by the chosen planner, priced on the real fleet.
pub fn plan_with(
    kind: PlannerKind,
    model: &ModelProfile,
    fleet: &Fleet,
    cfg: &PlanConfig,
) -> Result<Plan, PlanError> {
    let cm = CostModel::new(model, fleet, cfg)?;
    let stages = match kind {
        PlannerKind::Edgepipe if fleet.links.is_some() => links::solve(&cm)?,
        PlannerKind::Edgepipe => exact::solve(&cm)?,
        PlannerKind::LinksHeuristic => links::solve_heuristic(&cm)?,
        PlannerKind::Exhaustive => exhaustive::solve(&cm)?,
        PlannerKind::Even => baselines::even(&cm),
        PlannerKind::Memory => baselines::memory(&cm),
        PlannerKind::Pipedream => baselines::pipedream(&cm)?,
    };
    cm.evaluate(&stages, kind.name())
}

/// What "plan at 32 bits, then quantize" gives: the cuts of the raw-activation optimum, each
/// cut then set to its bitwidth under `cfg.bits`. Quantization-aware planning ([`plan`] with a
/// menu) is never worse and, on bandwidth-starved fleets, better.
pub fn plan_then_quantize(
    model: &ModelProfile,
    fleet: &Fleet,
    cfg: &PlanConfig,
) -> Result<Plan, PlanError> {
    let raw = PlanConfig {
        bits: BitPolicy::Fixed {
            bits: bits::RAW_BITS,
        },
        ..cfg.clone()
    };
    let raw_plan = plan(model, fleet, &raw)?;
    let cm = CostModel::new(model, fleet, cfg)?;
    let index = |name: &str| fleet.devices.iter().position(|d| d.name == name);
    let stages: Vec<_> = raw_plan
        .stages
        .iter()
        .map(|s| {
            (
                index(&s.device).expect("plan device from this fleet"),
                s.l,
                s.r,
            )
        })
        .collect();
    cm.evaluate(&stages, "plan-then-quantize")
}
