//! Model and device profiles: PipeEdge's YAML files, read and written as they are, their
//! conversion into planner inputs, and synthetic ViT profiles of plausible shape.

pub mod pipeedge;
pub mod synthetic;

pub use pipeedge::{
    load_planner_inputs, DeviceTypeEntry, DeviceTypesYml, DevicesYml, ModelEntry,
    ModelProfileEntry, ModelsYml, ProfileError,
};
pub use synthetic::{DeviceSpeed, VitSpec};
