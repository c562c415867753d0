//! BERT: word/position/token-type embeddings, and its heads (pooler, classifier, sentence
//! embedding by masked mean pooling).

use crate::config::{Head, ModelConfig};
use crate::error::Result;
use crate::layers::{LayerNorm, Linear};
use crate::weights::{Init, Weights};
use tch::{Kind, Tensor};

const INIT_STD: f64 = 0.02;

/// `embeddings.*` of BertModel.
pub struct TokenEmbeddings {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    layernorm: LayerNorm,
}

impl TokenEmbeddings {
    pub fn load(config: &ModelConfig, w: &Weights) -> Result<Self> {
        let h = config.hidden_size;
        Ok(TokenEmbeddings {
            word: w.get(
                "word_embeddings.weight",
                &[config.vocab_size, h],
                Init::Normal(INIT_STD),
            )?,
            position: w.get(
                "position_embeddings.weight",
                &[config.max_position_embeddings, h],
                Init::Normal(INIT_STD),
            )?,
            token_type: w.get(
                "token_type_embeddings.weight",
                &[config.type_vocab_size, h],
                Init::Normal(INIT_STD),
            )?,
            layernorm: LayerNorm::load(&w.pp("LayerNorm"), h, config.layer_norm_eps)?,
        })
    }

    /// `[B, T]` token ids -> `[B, T, H]`; token type 0 for every token (single segment).
    pub fn forward(&self, ids: &Tensor) -> Tensor {
        let t = ids.size()[1];
        let positions = Tensor::arange(t, (Kind::Int64, ids.device()));
        let x = Tensor::embedding(&self.word, ids, -1, false, false)
            + Tensor::embedding(&self.position, &positions, -1, false, false).unsqueeze(0)
            + self.token_type.get(0);
        self.layernorm.forward(&x)
    }
}

/// The head after the last BERT block.
pub enum TextHead {
    Pooler(Linear),
    Classifier { pooler: Linear, classifier: Linear },
    MeanPool { normalize: bool },
}

impl TextHead {
    pub fn load(config: &ModelConfig, backbone: &Weights, root: &Weights) -> Result<Self> {
        let (h, n) = (config.hidden_size, config.num_labels);
        Ok(match config.head {
            Head::MeanPool { normalize } => TextHead::MeanPool { normalize },
            Head::Classifier => TextHead::Classifier {
                pooler: Linear::load(&backbone.pp("pooler.dense"), h, h, true)?,
                classifier: Linear::load(&root.pp("classifier"), h, n, true)?,
            },
            _ => TextHead::Pooler(Linear::load(&backbone.pp("pooler.dense"), h, h, true)?),
        })
    }

    /// `[B, T, H]` hidden states and `[B, T]` mask -> `[B, H]` or `[B, labels]`.
    pub fn forward(&self, hidden: &Tensor, mask: &Tensor) -> Tensor {
        match self {
            TextHead::Pooler(dense) => dense.forward(&hidden.select(1, 0)).tanh(),
            TextHead::Classifier { pooler, classifier } => {
                classifier.forward(&pooler.forward(&hidden.select(1, 0)).tanh())
            }
            TextHead::MeanPool { normalize } => {
                let m = mask.to_kind(Kind::Float).unsqueeze(-1);
                let summed = (hidden * &m).sum_dim_intlist(1, false, Kind::Float);
                let counts = m.sum_dim_intlist(1, false, Kind::Float).clamp_min(1e-9);
                let mean = summed / counts;
                if *normalize {
                    let norm = mean.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
                    mean / norm
                } else {
                    mean
                }
            }
        }
    }
}
