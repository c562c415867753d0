//! Control messages between nodes and the leader: what a node is ([`DeviceInfo`]), what the
//! leader orders it to run or to drop ([`Assignment`], [`Release`]), and the plan the leader
//! publishes ([`PlanInfo`]).

mod assignment;
mod device;
mod plan;
mod weights;

pub use assignment::{Assignment, NextHop, Release};
pub use device::{DeviceInfo, UnitTimes};
pub use plan::{PlanInfo, PlanStage};
pub use weights::{
    dtype_bytes, is_relative_inside, FileEntry, ShardWeights, TensorEntry, WeightRequest,
    MAX_CHUNK_BYTES, MAX_SHARD_FILES, MAX_SHARD_TENSORS, MAX_SMALL_FILE_BYTES,
};
