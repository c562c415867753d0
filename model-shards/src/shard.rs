//! A shard: the units `[l, r]` of one model, with the embeddings when it starts at unit 1 and the
//! final norm and head when it ends at the last unit.

use crate::bert::{TextHead, TokenEmbeddings};
use crate::block::Unit;
use crate::boundary::Boundary;
use crate::config::{Family, ModelConfig};
use crate::error::{Result, ShardError};
use crate::layers::mask_bias;
use crate::units::{block_of, tensors_after, UnitKind, UnitRange};
use crate::vit::{ImageHead, PatchEmbeddings};
use crate::weights::{WeightSource, Weights};
use tch::{Kind, Tensor};

enum Embeddings {
    Patches(PatchEmbeddings),
    Tokens(TokenEmbeddings),
}

enum HeadModule {
    Image(ImageHead),
    Text(TextHead),
}

/// A loaded shard, ready to run in inference mode.
pub struct Shard {
    config: ModelConfig,
    range: UnitRange,
    embeddings: Option<Embeddings>,
    units: Vec<Unit>,
    head: Option<HeadModule>,
    /// Whether forward passes record an autograd graph (training); see [`Shard::load_trainable`].
    trainable: bool,
}

impl Shard {
    /// Loads units `range` of the model from `source`, reading only the parameters they use.
    pub fn load(
        config: &ModelConfig,
        range: UnitRange,
        source: &dyn WeightSource,
    ) -> Result<Shard> {
        Self::load_with_grad(config, range, source, false)
    }

    /// Like [`Shard::load`], but the forward passes run with autograd on, so a loss computed from
    /// the output back-propagates into the parameters `source` handed out (for training through
    /// [`crate::train::VarStoreWeights`]). Inference shards run under `no_grad` instead; use this
    /// constructor only for training.
    pub fn load_trainable(
        config: &ModelConfig,
        range: UnitRange,
        source: &dyn WeightSource,
    ) -> Result<Shard> {
        Self::load_with_grad(config, range, source, true)
    }

    fn load_with_grad(
        config: &ModelConfig,
        range: UnitRange,
        source: &dyn WeightSource,
        trainable: bool,
    ) -> Result<Shard> {
        let range = range.validate(config.units())?;
        let root = Weights::new(source);
        let backbone = match config.backbone_prefix() {
            "" => root.clone(),
            prefix => root.pp(prefix),
        };
        // Loading copies weights into fresh tensors; no autograd graph is wanted for any of them
        // (a trainable source hands out its leaf variables, which keep requires_grad regardless).
        let _guard = tch::no_grad_guard();
        let embeddings = if range.start == 1 {
            let w = backbone.pp("embeddings");
            Some(match config.family {
                Family::Bert => Embeddings::Tokens(TokenEmbeddings::load(config, &w)?),
                Family::Vit | Family::Deit => {
                    Embeddings::Patches(PatchEmbeddings::load(config, &w)?)
                }
            })
        } else {
            None
        };
        let units = range
            .units()
            .map(|u| Unit::load(config, u, &backbone.pp("encoder.layer").pp(block_of(u))))
            .collect::<Result<Vec<_>>>()?;
        let head = if range.end == config.units() {
            Some(match config.family {
                Family::Bert => HeadModule::Text(TextHead::load(config, &backbone, &root)?),
                Family::Vit | Family::Deit => {
                    HeadModule::Image(ImageHead::load(config, &backbone, &root)?)
                }
            })
        } else {
            None
        };
        Ok(Shard {
            config: config.clone(),
            range,
            embeddings,
            units,
            head,
            trainable,
        })
    }

    pub fn range(&self) -> UnitRange {
        self.range
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Runs every unit of the shard.
    pub fn forward(&self, input: &Boundary) -> Result<Boundary> {
        self.forward_units(input, self.range)
    }

    /// Runs the sub-range `units` of this shard (the profiler times units one at a time this way).
    pub fn forward_units(&self, input: &Boundary, units: UnitRange) -> Result<Boundary> {
        if units.start < self.range.start || units.end > self.range.end || units.is_empty() {
            return Err(ShardError::UnitRange {
                start: units.start,
                end: units.end,
                units: self.config.units(),
            });
        }
        self.check_input(input, units.start)?;
        let _guard = (!self.trainable).then(tch::no_grad_guard);
        let mask = input.mask.as_ref().map(|m| m.shallow_clone());
        let bias = mask.as_ref().map(mask_bias);
        let mut xs: Vec<Tensor> = if units.start == 1 {
            let x = &input.tensors[0];
            vec![match self
                .embeddings
                .as_ref()
                .expect("shard starting at unit 1 has embeddings")
            {
                Embeddings::Patches(e) => e.forward(x),
                Embeddings::Tokens(e) => e.forward(x),
            }]
        } else {
            input.tensors.iter().map(|t| t.shallow_clone()).collect()
        };
        for u in units.units() {
            xs = self.units[u - self.range.start].forward(&xs, bias.as_ref());
        }
        if units.end == self.config.units() {
            let hidden = &xs[0];
            xs = vec![match self
                .head
                .as_ref()
                .expect("shard ending at the last unit has a head")
            {
                HeadModule::Image(h) => h.forward(hidden),
                HeadModule::Text(h) => {
                    h.forward(hidden, mask.as_ref().expect("checked: text has a mask"))
                }
            }];
        }
        Ok(Boundary { tensors: xs, mask })
    }

    /// Checks count, rank, dtype and sizes of what enters unit `unit`, naming what is wrong.
    fn check_input(&self, input: &Boundary, unit: usize) -> Result<()> {
        let bad = move |message: String| ShardError::Input { unit, message };
        let expected = if unit == 1 {
            1
        } else {
            tensors_after(unit - 1)
        };
        if input.tensors.len() != expected {
            return Err(bad(format!(
                "expected {expected} tensor(s), got {}",
                input.tensors.len()
            )));
        }
        let b = input.tensors[0].size().first().copied().unwrap_or(0);
        if b == 0 {
            return Err(bad("empty microbatch".into()));
        }
        let tokens = if unit == 1 {
            self.check_model_input(&input.tensors[0], b)
        } else {
            self.check_boundary(&input.tensors, unit, b)
        }
        .map_err(bad)?;
        if self.config.family == Family::Bert {
            check_mask(input.mask.as_ref(), b, tokens).map_err(bad)?;
        }
        Ok(())
    }

    /// Token ids (text) or pixels (images) entering unit 1: the tokens per item.
    fn check_model_input(&self, x: &Tensor, b: i64) -> std::result::Result<i64, String> {
        let c = &self.config;
        let size = x.size();
        if c.family == Family::Bert {
            if size.len() != 2 || x.kind() != Kind::Int64 {
                return Err(format!(
                    "expected token ids [batch, seq] int64, got {:?} {:?}",
                    size,
                    x.kind()
                ));
            }
            if size[1] > c.max_position_embeddings || size[1] == 0 {
                return Err(format!(
                    "sequence length {} outside 1..={}",
                    size[1], c.max_position_embeddings
                ));
            }
            // An id outside the vocabulary makes libtorch's embedding throw, which tch turns
            // into a panic: refuse it here, naming the first one.
            let outside = x.lt(0).logical_or(&x.ge(c.vocab_size));
            if outside.any().int64_value(&[]) != 0 {
                let at = outside
                    .reshape(-1)
                    .to_kind(Kind::Int64)
                    .argmax(0, false)
                    .int64_value(&[]);
                let id = x.reshape(-1).int64_value(&[at]);
                return Err(format!(
                    "token id {id} outside the vocabulary 0..{}",
                    c.vocab_size
                ));
            }
            Ok(size[1])
        } else {
            let want = [b, c.num_channels, c.image_size, c.image_size];
            if size != want || x.kind() != Kind::Float {
                return Err(format!(
                    "expected pixels {want:?} float, got {:?} {:?}",
                    size,
                    x.kind()
                ));
            }
            Ok(c.image_tokens())
        }
    }

    /// The hidden states leaving unit `unit - 1`: the tokens per item.
    fn check_boundary(
        &self,
        xs: &[Tensor],
        unit: usize,
        b: i64,
    ) -> std::result::Result<i64, String> {
        let c = &self.config;
        let widths: Vec<i64> = match UnitKind::of(unit - 1) {
            UnitKind::MlpIn => vec![c.intermediate_size, c.hidden_size],
            UnitKind::Attention => vec![c.hidden_size, c.hidden_size],
            _ => vec![c.hidden_size],
        };
        let t = xs[0].size().get(1).copied().unwrap_or(0);
        if c.family != Family::Bert && t != c.image_tokens() {
            return Err(format!("expected {} tokens, got {t}", c.image_tokens()));
        }
        for (i, (x, w)) in xs.iter().zip(widths).enumerate() {
            if x.size() != [b, t, w] || x.kind() != Kind::Float {
                return Err(format!(
                    "tensor {i}: expected [{b}, {t}, {w}] float, got {:?} {:?}",
                    x.size(),
                    x.kind()
                ));
            }
        }
        Ok(t)
    }
}

/// A text model's attention mask: `[batch, tokens]`.
fn check_mask(mask: Option<&Tensor>, b: i64, tokens: i64) -> std::result::Result<(), String> {
    match mask {
        Some(m) if m.size() == [b, tokens] => Ok(()),
        Some(m) => Err(format!(
            "attention mask {:?}, expected [{b}, {tokens}]",
            m.size()
        )),
        None => Err("text models need an attention mask".into()),
    }
}
