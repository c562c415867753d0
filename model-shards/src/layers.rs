//! The few layers transformer units are made of, as plain tensors and forward functions.

use crate::config::Activation;
use crate::error::Result;
use crate::weights::{Init, Weights};
use tch::Tensor;

/// HF's initializer_range for random presets.
const INIT_STD: f64 = 0.02;

/// y = x W^T + b, with HF's `[out, in]` weight layout.
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn load(w: &Weights, inputs: i64, outputs: i64, bias: bool) -> Result<Linear> {
        Ok(Linear {
            weight: w.get("weight", &[outputs, inputs], Init::Normal(INIT_STD))?,
            bias: if bias {
                Some(w.get("bias", &[outputs], Init::Zeros)?)
            } else {
                None
            },
        })
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, self.bias.as_ref())
    }
}

/// LayerNorm over the last dimension.
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
    size: i64,
}

impl LayerNorm {
    pub fn load(w: &Weights, size: i64, eps: f64) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: w.get("weight", &[size], Init::Ones)?,
            bias: w.get("bias", &[size], Init::Zeros)?,
            eps,
            size,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.layer_norm(
            [self.size],
            Some(&self.weight),
            Some(&self.bias),
            self.eps,
            false,
        )
    }
}

/// Applies the configured activation.
pub fn activate(x: &Tensor, act: Activation) -> Tensor {
    match act {
        Activation::Gelu => x.gelu("none"),
        Activation::GeluTanh => x.gelu("tanh"),
        Activation::Relu => x.relu(),
    }
}

/// Multi-head self-attention up to (not including) the output projection, as HF's
/// `*SelfAttention` modules: returns the merged context `[B, T, H]`.
pub struct SelfAttention {
    query: Linear,
    key: Linear,
    value: Linear,
    heads: i64,
}

impl SelfAttention {
    pub fn load(w: &Weights, hidden: i64, heads: i64, bias: bool) -> Result<SelfAttention> {
        Ok(SelfAttention {
            query: Linear::load(&w.pp("query"), hidden, hidden, bias)?,
            key: Linear::load(&w.pp("key"), hidden, hidden, bias)?,
            value: Linear::load(&w.pp("value"), hidden, hidden, bias)?,
            heads,
        })
    }

    /// `mask_bias` is an additive `[B, 1, 1, T]` mask (0 keep, very negative drop), or None.
    pub fn forward(&self, x: &Tensor, mask_bias: Option<&Tensor>) -> Tensor {
        let (b, t, h) = x.size3().expect("attention input is [B, T, H]");
        let split = |y: Tensor| y.view([b, t, self.heads, h / self.heads]).transpose(1, 2);
        let q = split(self.query.forward(x));
        let k = split(self.key.forward(x));
        let v = split(self.value.forward(x));
        let ctx =
            Tensor::scaled_dot_product_attention(&q, &k, &v, mask_bias, 0.0, false, None, false);
        ctx.transpose(1, 2).reshape([b, t, h])
    }
}

/// Turns a `[B, T]` 0/1 attention mask into the additive bias attention expects.
pub fn mask_bias(mask: &Tensor) -> Tensor {
    let keep = mask.to_kind(tch::Kind::Float).unsqueeze(1).unsqueeze(1);
    (1.0 - keep) * f64::from(f32::MIN)
}
