//! ViT and DeiT: patch embeddings with class (and DeiT's distillation) token, and their heads.

use crate::config::{Family, Head, ModelConfig};
use crate::error::Result;
use crate::layers::{LayerNorm, Linear};
use crate::weights::{Init, Weights};
use tch::Tensor;

const INIT_STD: f64 = 0.02;

/// `embeddings.*` of ViTModel / DeiTModel.
pub struct PatchEmbeddings {
    projection: Tensor,
    projection_bias: Tensor,
    cls_token: Tensor,
    distillation_token: Option<Tensor>,
    position_embeddings: Tensor,
    patch_size: i64,
}

impl PatchEmbeddings {
    pub fn load(config: &ModelConfig, w: &Weights) -> Result<Self> {
        let (h, p, c) = (config.hidden_size, config.patch_size, config.num_channels);
        let proj = w.pp("patch_embeddings.projection");
        Ok(PatchEmbeddings {
            projection: proj.get("weight", &[h, c, p, p], Init::Normal(INIT_STD))?,
            projection_bias: proj.get("bias", &[h], Init::Zeros)?,
            cls_token: w.get("cls_token", &[1, 1, h], Init::Normal(INIT_STD))?,
            distillation_token: if config.family == Family::Deit {
                Some(w.get("distillation_token", &[1, 1, h], Init::Normal(INIT_STD))?)
            } else {
                None
            },
            position_embeddings: w.get(
                "position_embeddings",
                &[1, config.image_tokens(), h],
                Init::Normal(INIT_STD),
            )?,
            patch_size: p,
        })
    }

    /// `[B, C, S, S]` pixels -> `[B, tokens, H]`.
    pub fn forward(&self, pixels: &Tensor) -> Tensor {
        let b = pixels.size()[0];
        let patches = pixels
            .conv2d(
                &self.projection,
                Some(&self.projection_bias),
                [self.patch_size, self.patch_size],
                [0, 0],
                [1, 1],
                1,
            )
            .flatten(2, -1)
            .transpose(1, 2);
        let mut tokens = vec![self.cls_token.expand([b, -1, -1], false)];
        if let Some(d) = &self.distillation_token {
            tokens.push(d.expand([b, -1, -1], false));
        }
        tokens.push(patches);
        Tensor::cat(&tokens, 1) + &self.position_embeddings
    }
}

/// Final LayerNorm plus the task head of an image model.
pub struct ImageHead {
    layernorm: LayerNorm,
    kind: ImageHeadKind,
}

enum ImageHeadKind {
    Pooler(Linear),
    FirstToken,
    Classifier(Linear),
    Distilled { cls: Linear, distillation: Linear },
}

impl ImageHead {
    /// `backbone` is the `vit` / `deit` view, `root` the checkpoint root (task heads live there).
    pub fn load(config: &ModelConfig, backbone: &Weights, root: &Weights) -> Result<Self> {
        let (h, n) = (config.hidden_size, config.num_labels);
        let kind = match config.head {
            Head::Pooler if backbone.contains("pooler.dense.weight") => {
                ImageHeadKind::Pooler(Linear::load(&backbone.pp("pooler.dense"), h, h, true)?)
            }
            Head::Pooler | Head::FirstToken | Head::MeanPool { .. } => ImageHeadKind::FirstToken,
            Head::Classifier => {
                ImageHeadKind::Classifier(Linear::load(&root.pp("classifier"), h, n, true)?)
            }
            Head::DistilledClassifier => ImageHeadKind::Distilled {
                cls: Linear::load(&root.pp("cls_classifier"), h, n, true)?,
                distillation: Linear::load(&root.pp("distillation_classifier"), h, n, true)?,
            },
        };
        Ok(ImageHead {
            layernorm: LayerNorm::load(&backbone.pp("layernorm"), h, config.layer_norm_eps)?,
            kind,
        })
    }

    /// `[B, tokens, H]` -> `[B, labels]` (or `[B, H]` for the pooler / first token).
    pub fn forward(&self, hidden: &Tensor) -> Tensor {
        let normed = self.layernorm.forward(hidden);
        let first = normed.select(1, 0);
        match &self.kind {
            ImageHeadKind::Pooler(dense) => dense.forward(&first).tanh(),
            ImageHeadKind::FirstToken => first,
            ImageHeadKind::Classifier(c) => c.forward(&first),
            ImageHeadKind::Distilled { cls, distillation } => {
                (cls.forward(&first) + distillation.forward(&normed.select(1, 1))) / 2.0
            }
        }
    }
}
