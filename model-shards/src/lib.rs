//! Transformer models on libtorch that run any contiguous range of *units*.
//!
//! A block is cut into four units (see [`units`]); a [`Shard`] holds units `[l, r]` of a model, the
//! embeddings when `l == 1` and the final norm and head when `r` is the last unit, and reads only
//! its own parameters. Models come from a Hugging Face folder (`config.json` +
//! `model.safetensors`) or from a preset with seeded random weights ([`ModelSource`]).
//!
//! Families: ViT, DeiT (distilled) and BERT, one module each ([`vit`], [`bert`]); their blocks share
//! [`block`]. Everything runs in inference mode (no grad, no dropout), except shards built for
//! training with [`Shard::load_trainable`] (see [`train`]).

pub mod bert;
pub mod block;
pub mod boundary;
pub mod config;
pub mod error;
pub mod layers;
pub mod model;
pub mod preprocess;
pub mod presets;
pub mod profile;
pub mod shard;
pub mod shard_tensors;
pub mod tensor_cache;
pub mod train;
pub mod units;
pub mod vit;
pub mod weights;

pub use boundary::Boundary;
pub use config::{Family, Head, ModelConfig};
pub use error::{Result, ShardError};
pub use model::{ModelSource, DEFAULT_PRESET_SEED};
pub use shard::Shard;
pub use units::UnitRange;
