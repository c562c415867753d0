//! Control messages between nodes and the leader: what a node is ([`DeviceInfo`]), what the
//! leader orders it to run or to drop ([`Assignment`], [`Release`]), and the plan the leader
//! publishes ([`PlanInfo`]).

mod assignment;
mod device;
mod plan;

pub use assignment::{Assignment, NextHop, Release};
pub use device::{DeviceInfo, UnitTimes};
pub use plan::{PlanInfo, PlanStage};
