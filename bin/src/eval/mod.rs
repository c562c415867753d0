//! Accuracy of a model whose activations are quantized where a pipeline cuts it.
//!
//! What crosses a cut is encoded with the real codec (clipping, quantization, dense packing,
//! serialisation to bytes) and decoded back before the next unit runs, per sample (one scale and
//! offset per item of the microbatch). Units before the first cut are run once per batch at fp32
//! and their output cached; every (clip, bits) setting then quantizes that cached boundary and
//! runs the rest ([`pipeline`]). [`sweep`] runs every cut with every setting; the data-set drivers
//! ([`bbc`], [`fashion`]) say how outputs are scored, and the scores become table rows ([`table`]) and, per cell, the ordering of the clipping
//! methods ([`ordering`]).

pub mod bbc;
pub mod cuts;
pub mod fashion;
pub mod metrics;
pub mod ordering;
pub mod pipeline;
pub mod quantize;
pub mod sweep;
pub mod table;

pub use cuts::CutSpec;
pub use pipeline::Setting;
pub use sweep::Request;
