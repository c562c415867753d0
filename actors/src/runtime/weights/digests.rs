//! The leader's digests of its model folder: a SHA-256 of every tensor of the model file, with
//! its dtype, shape and place in the file, and of the small files beside it. Computed once per
//! model folder (reading the whole file once) and kept for the process's life; each assignment
//! then carries the entries of the tensors its shard reads ([`ModelDigests::for_shard`]).

use super::decide::{MODEL_FILE, SMALL_FILES};
use anyhow::{anyhow, Context as _, Result};
use quantpipe_messages::{FileEntry, ShardWeights, TensorEntry};
use quantpipe_model_shards::config::{sentence_pooling, ModelConfig};
use quantpipe_model_shards::shard_tensors::shard_tensor_names;
use quantpipe_model_shards::UnitRange;
use safetensors::SafeTensors;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every tensor and small file of one model folder, with digests.
#[derive(Debug, Clone)]
pub struct ModelDigests {
    pub dir: PathBuf,
    pub config: ModelConfig,
    pub file_len: u64,
    pub tensors: BTreeMap<String, TensorEntry>,
    pub files: Vec<FileEntry>,
}

impl ModelDigests {
    /// Reads `dir`'s model file and small files and digests them.
    pub fn compute(dir: &Path) -> Result<ModelDigests> {
        let config = ModelConfig::from_file(&dir.join("config.json"), sentence_pooling(dir)?)?;
        let path = dir.join(MODEL_FILE);
        let file = std::fs::File::open(&path).with_context(|| format!("{}", path.display()))?;
        // SAFETY: read-only map of the leader's own model file, dropped before returning.
        let mmap = unsafe { memmap2::Mmap::map(&file) }
            .with_context(|| format!("mapping {}", path.display()))?;
        let st = SafeTensors::deserialize(&mmap)
            .map_err(|e| anyhow!("invalid safetensors file {}: {e}", path.display()))?;
        let base = mmap.as_ptr() as usize;
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                let data = view.data();
                let entry = TensorEntry {
                    name: name.clone(),
                    dtype: format!("{:?}", view.dtype()),
                    shape: view.shape().iter().map(|&d| d as u64).collect(),
                    offset: (data.as_ptr() as usize - base) as u64,
                    len: data.len() as u64,
                    sha256: sha256_hex(data),
                };
                (name, entry)
            })
            .collect();
        let mut files = Vec::new();
        for rel in SMALL_FILES {
            let p = dir.join(rel);
            match std::fs::read(&p) {
                Ok(bytes) => files.push(FileEntry {
                    path: rel.to_owned(),
                    len: bytes.len() as u64,
                    sha256: sha256_hex(&bytes),
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(anyhow!("reading {}: {e}", p.display())),
            }
        }
        Ok(ModelDigests {
            dir: dir.to_owned(),
            config,
            file_len: mmap.len() as u64,
            tensors,
            files,
        })
    }

    /// What units `l..=r` read, with digests, for an assignment.
    pub fn for_shard(&self, l: usize, r: usize) -> Result<ShardWeights> {
        let range = UnitRange::new(l, r).validate(self.config.units())?;
        let names = shard_tensor_names(&self.config, range, &|n| self.tensors.contains_key(n))?;
        let tensors = names
            .iter()
            .map(|n| {
                self.tensors.get(n).cloned().ok_or_else(|| {
                    anyhow!("units {l}..{r} read {n:?}, which the model file does not hold")
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ShardWeights {
            file: MODEL_FILE.to_owned(),
            file_len: self.file_len,
            tensors,
            files: self.files.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_the_standard_one() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
