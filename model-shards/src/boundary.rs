//! What crosses a cut: one or two activation tensors, plus the attention mask for text models.
//!
//! The mask is not an activation: it is the `[B, T]` 0/1 padding mask every later BERT unit needs
//! (attention and mean pooling), so it travels beside the activations, unquantised.

use crate::error::{Result, ShardError};
use std::path::Path;
use tch::Tensor;

/// Activations entering or leaving a shard.
///
/// Into unit 1: `[pixels]` (`[B, C, S, S]` f32) for image models, `[input_ids]` (`[B, T]` i64)
/// with `mask` for text models. Between units: one tensor after u1/u3, two after u0/u2
/// (partial result, residual). Out of the last unit: `[logits]` or `[embeddings]`.
#[derive(Debug)]
pub struct Boundary {
    pub tensors: Vec<Tensor>,
    pub mask: Option<Tensor>,
}

impl Boundary {
    pub fn new(tensors: Vec<Tensor>, mask: Option<Tensor>) -> Self {
        Boundary { tensors, mask }
    }

    /// Microbatch size (outer dimension).
    pub fn batch(&self) -> i64 {
        self.tensors.first().map(|t| t.size()[0]).unwrap_or(0)
    }

    /// Elements of the activation tensors (what a quantizer compresses).
    pub fn numel(&self) -> usize {
        self.tensors.iter().map(|t| t.numel()).sum()
    }

    pub fn shallow_clone(&self) -> Boundary {
        Boundary {
            tensors: self.tensors.iter().map(|t| t.shallow_clone()).collect(),
            mask: self.mask.as_ref().map(|m| m.shallow_clone()),
        }
    }

    /// Writes the boundary as a safetensors file (`t0`, `t1`, `mask`).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(String, Tensor)> = self
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("t{i}"), t.contiguous()))
            .collect();
        if let Some(m) = &self.mask {
            named.push(("mask".into(), m.contiguous()));
        }
        Tensor::write_safetensors(&named, path)?;
        Ok(())
    }

    /// Reads a boundary written by [`Boundary::save`].
    pub fn load(path: &Path) -> Result<Boundary> {
        if !path.exists() {
            return Err(ShardError::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            ));
        }
        let named = Tensor::read_safetensors(path).map_err(|e| ShardError::Safetensors {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let find = |name: &str| {
            named
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.shallow_clone())
        };
        let tensors: Vec<Tensor> = (0..2).map_while(|i| find(&format!("t{i}"))).collect();
        if tensors.is_empty() {
            return Err(ShardError::Safetensors {
                path: path.to_owned(),
                message: "no boundary tensor `t0` in file".into(),
            });
        }
        Ok(Boundary {
            tensors,
            mask: find("mask"),
        })
    }
}
