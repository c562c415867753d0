//! The four units of a transformer block, for both block layouts.
//!
//! Pre-LN (ViT, DeiT):
//!   u0 = LayerNorm + self-attention -> (context, residual)
//!   u1 = output projection + residual -> hidden
//!   u2 = LayerNorm + fc1 + activation -> (fc1_out, residual)
//!   u3 = fc2 + residual -> hidden
//! Post-LN (BERT):
//!   u0 = self-attention -> (context, block_input)
//!   u1 = LayerNorm(dense(context) + block_input) -> hidden
//!   u2 = intermediate dense + activation -> (inter, attn_out)
//!   u3 = LayerNorm(dense(inter) + attn_out) -> hidden
//! Each unit loads only its own parameters, so a shard cut mid-block holds only what it runs.

use crate::config::{Activation, Family, ModelConfig};
use crate::error::Result;
use crate::layers::{activate, LayerNorm, Linear, SelfAttention};
use crate::units::UnitKind;
use crate::weights::Weights;
use tch::Tensor;

/// One unit with its parameters.
pub enum Unit {
    PreLnAttention {
        ln: LayerNorm,
        attn: SelfAttention,
    },
    PreLnAttentionOutput {
        dense: Linear,
    },
    PreLnMlpIn {
        ln: LayerNorm,
        fc1: Linear,
        act: Activation,
    },
    PreLnMlpOut {
        fc2: Linear,
    },
    PostLnAttention {
        attn: SelfAttention,
    },
    PostLnAttentionOutput {
        dense: Linear,
        ln: LayerNorm,
    },
    PostLnMlpIn {
        fc1: Linear,
        act: Activation,
    },
    PostLnMlpOut {
        fc2: Linear,
        ln: LayerNorm,
    },
}

impl Unit {
    /// Loads unit `unit` (1-based) of the model; `layer` is the `encoder.layer.{i}` weights view.
    pub fn load(config: &ModelConfig, unit: usize, layer: &Weights) -> Result<Unit> {
        let (h, i, eps) = (
            config.hidden_size,
            config.intermediate_size,
            config.layer_norm_eps,
        );
        let act = config.activation;
        let pre_ln = config.family != Family::Bert;
        Ok(match (pre_ln, UnitKind::of(unit)) {
            (true, UnitKind::Attention) => Unit::PreLnAttention {
                ln: LayerNorm::load(&layer.pp("layernorm_before"), h, eps)?,
                attn: SelfAttention::load(
                    &layer.pp("attention.attention"),
                    h,
                    config.num_heads,
                    config.qkv_bias,
                )?,
            },
            (true, UnitKind::AttentionOutput) => Unit::PreLnAttentionOutput {
                dense: Linear::load(&layer.pp("attention.output.dense"), h, h, true)?,
            },
            (true, UnitKind::MlpIn) => Unit::PreLnMlpIn {
                ln: LayerNorm::load(&layer.pp("layernorm_after"), h, eps)?,
                fc1: Linear::load(&layer.pp("intermediate.dense"), h, i, true)?,
                act,
            },
            (true, UnitKind::MlpOut) => Unit::PreLnMlpOut {
                fc2: Linear::load(&layer.pp("output.dense"), i, h, true)?,
            },
            (false, UnitKind::Attention) => Unit::PostLnAttention {
                attn: SelfAttention::load(&layer.pp("attention.self"), h, config.num_heads, true)?,
            },
            (false, UnitKind::AttentionOutput) => Unit::PostLnAttentionOutput {
                dense: Linear::load(&layer.pp("attention.output.dense"), h, h, true)?,
                ln: LayerNorm::load(&layer.pp("attention.output.LayerNorm"), h, eps)?,
            },
            (false, UnitKind::MlpIn) => Unit::PostLnMlpIn {
                fc1: Linear::load(&layer.pp("intermediate.dense"), h, i, true)?,
                act,
            },
            (false, UnitKind::MlpOut) => Unit::PostLnMlpOut {
                fc2: Linear::load(&layer.pp("output.dense"), i, h, true)?,
                ln: LayerNorm::load(&layer.pp("output.LayerNorm"), h, eps)?,
            },
        })
    }

    /// Runs the unit. `xs` holds what crossed into it: one tensor before u0/u2, two before u1/u3
    /// (the caller has checked the count). `mask_bias` is only used by attention.
    pub fn forward(&self, xs: &[Tensor], mask_bias: Option<&Tensor>) -> Vec<Tensor> {
        match self {
            Unit::PreLnAttention { ln, attn } => {
                vec![
                    attn.forward(&ln.forward(&xs[0]), mask_bias),
                    xs[0].shallow_clone(),
                ]
            }
            Unit::PreLnAttentionOutput { dense } => vec![dense.forward(&xs[0]) + &xs[1]],
            Unit::PreLnMlpIn { ln, fc1, act } => {
                vec![
                    activate(&fc1.forward(&ln.forward(&xs[0])), *act),
                    xs[0].shallow_clone(),
                ]
            }
            Unit::PreLnMlpOut { fc2 } => vec![fc2.forward(&xs[0]) + &xs[1]],
            Unit::PostLnAttention { attn } => {
                vec![attn.forward(&xs[0], mask_bias), xs[0].shallow_clone()]
            }
            Unit::PostLnAttentionOutput { dense, ln } => {
                vec![ln.forward(&(dense.forward(&xs[0]) + &xs[1]))]
            }
            Unit::PostLnMlpIn { fc1, act } => {
                vec![activate(&fc1.forward(&xs[0]), *act), xs[0].shallow_clone()]
            }
            Unit::PostLnMlpOut { fc2, ln } => vec![ln.forward(&(fc2.forward(&xs[0]) + &xs[1]))],
        }
    }
}
