//! Tensors a node fetched from peers, kept in its model folder so a restart or a new assignment
//! fetches only what it lacks: `.quantpipe-cache/<sha256>.bin` holds one tensor's raw bytes
//! (little-endian, as in the safetensors file) and `.quantpipe-cache/index.json` maps each tensor
//! name to its dtype, shape and digest. A file is named by its digest only once its bytes were
//! checked against it, so a file that is there under its digest holds those bytes.
//!
//! [`CachedWeights`] loads a shard from it: only the tensors the shard asks for are read, each
//! through a short-lived memory map, so resident memory grows with the shard, not the model.

use crate::error::{Result, ShardError};
use crate::weights::{Init, WeightSource};
use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// The cache's folder inside a model folder.
pub const CACHE_DIR: &str = ".quantpipe-cache";
const INDEX: &str = "index.json";

/// What the index knows of one cached tensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedTensor {
    /// safetensors dtype name (`F32`, `F16`, `BF16`, `F64`).
    pub dtype: String,
    pub shape: Vec<u64>,
    pub sha256: String,
}

/// The tensor cache of one model folder.
#[derive(Debug, Clone)]
pub struct TensorCache {
    dir: PathBuf,
}

impl TensorCache {
    pub fn in_model_dir(model_dir: &Path) -> Self {
        TensorCache {
            dir: model_dir.join(CACHE_DIR),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the cache has an index (something was fetched into it).
    pub fn exists(&self) -> bool {
        self.dir.join(INDEX).is_file()
    }

    /// Where the tensor whose bytes have digest `sha256` is kept.
    pub fn tensor_path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.bin"))
    }

    /// Whether the bytes of digest `sha256` are cached, `len` of them.
    pub fn holds(&self, sha256: &str, len: u64) -> bool {
        std::fs::metadata(self.tensor_path(sha256))
            .map(|m| m.is_file() && m.len() == len)
            .unwrap_or(false)
    }

    /// The index: tensor name to what is cached of it (empty when nothing was fetched yet).
    pub fn index(&self) -> Result<BTreeMap<String, CachedTensor>> {
        let path = self.dir.join(INDEX);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ShardError::Safetensors {
                path,
                message: format!("tensor cache index: {e}"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(ShardError::io(path, e)),
        }
    }

    /// Adds `entries` to the index (replacing same-named ones), written whole and renamed into
    /// place so a crash leaves the old index or the new one.
    pub fn record(&self, entries: impl IntoIterator<Item = (String, CachedTensor)>) -> Result<()> {
        let mut index = self.index()?;
        index.extend(entries);
        std::fs::create_dir_all(&self.dir).map_err(|e| ShardError::io(&self.dir, e))?;
        let tmp = self.dir.join(format!("{INDEX}.tmp"));
        let bytes = serde_json::to_vec_pretty(&index).expect("the index serialises");
        std::fs::write(&tmp, bytes).map_err(|e| ShardError::io(&tmp, e))?;
        let path = self.dir.join(INDEX);
        std::fs::rename(&tmp, &path).map_err(|e| ShardError::io(&path, e))
    }
}

/// A shard's weights read from a [`TensorCache`].
pub struct CachedWeights {
    cache: TensorCache,
    index: BTreeMap<String, CachedTensor>,
}

impl CachedWeights {
    pub fn open(cache: TensorCache) -> Result<Self> {
        let index = cache.index()?;
        Ok(CachedWeights { cache, index })
    }
}

fn kind_of(dtype: &str) -> Option<(Kind, u64)> {
    match dtype {
        "F32" => Some((Kind::Float, 4)),
        "F16" => Some((Kind::Half, 2)),
        "BF16" => Some((Kind::BFloat16, 2)),
        "F64" => Some((Kind::Double, 8)),
        _ => None,
    }
}

impl WeightSource for CachedWeights {
    fn tensor(&self, name: &str, shape: &[i64], _init: Init) -> Result<Tensor> {
        let missing = || ShardError::MissingWeight {
            name: name.to_owned(),
            path: self.cache.dir().to_owned(),
        };
        let entry = self.index.get(name).ok_or_else(missing)?;
        let found: Vec<i64> = entry.shape.iter().map(|&d| d as i64).collect();
        if found != shape {
            return Err(ShardError::WeightShape {
                name: name.to_owned(),
                expected: shape.to_vec(),
                found,
            });
        }
        let path = self.cache.tensor_path(&entry.sha256);
        let bad = |message: String| ShardError::Safetensors {
            path: path.clone(),
            message,
        };
        let (kind, width) =
            kind_of(&entry.dtype).ok_or_else(|| bad(format!("dtype {:?}", entry.dtype)))?;
        let file = std::fs::File::open(&path).map_err(|e| ShardError::io(&path, e))?;
        // SAFETY: the file is the node's own cache, written once under its digest and never
        // changed afterwards; the map lives only while its bytes are copied into the tensor.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| ShardError::io(&path, e))?;
        let elements: u64 = entry.shape.iter().product();
        if mmap.len() as u64 != elements * width {
            return Err(bad(format!(
                "{} bytes for {name:?} of shape {:?} {}",
                mmap.len(),
                entry.shape,
                entry.dtype
            )));
        }
        // from_data_size copies, so the tensor owns its memory once the map is dropped.
        let t = Tensor::f_from_data_size(&mmap, shape, kind)?;
        Ok(t.to_kind(Kind::Float))
    }

    fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn f32_bytes(t: &Tensor) -> Vec<u8> {
        Vec::<f32>::try_from(t.flatten(0, -1))
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect()
    }

    #[test]
    fn a_cached_tensor_loads_with_its_shape_and_values() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TensorCache::in_model_dir(dir.path());
        assert!(!cache.exists());
        let t = Tensor::arange(12, (Kind::Float, Device::Cpu)).reshape([3, 4]);
        let digest = "ab".repeat(32);
        std::fs::create_dir_all(cache.dir()).unwrap();
        std::fs::write(cache.tensor_path(&digest), f32_bytes(&t)).unwrap();
        let entry = CachedTensor {
            dtype: "F32".into(),
            shape: vec![3, 4],
            sha256: digest.clone(),
        };
        cache.record([("w".to_owned(), entry)]).unwrap();
        assert!(cache.exists() && cache.holds(&digest, 48) && !cache.holds(&digest, 47));

        let w = CachedWeights::open(cache.clone()).unwrap();
        assert!(w.contains("w") && !w.contains("v"));
        assert!(w.tensor("w", &[3, 4], Init::Zeros).unwrap().equal(&t));
        let e = w.tensor("w", &[4, 3], Init::Zeros).unwrap_err().to_string();
        assert!(e.contains("[4, 3]"), "{e}");
        let e = w.tensor("v", &[1], Init::Zeros).unwrap_err().to_string();
        assert!(e.contains("\"v\"") && e.contains(CACHE_DIR), "{e}");
    }

    #[test]
    fn a_cached_file_of_the_wrong_length_is_an_error_not_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TensorCache::in_model_dir(dir.path());
        let digest = "cd".repeat(32);
        std::fs::create_dir_all(cache.dir()).unwrap();
        std::fs::write(cache.tensor_path(&digest), [0u8; 10]).unwrap();
        let entry = CachedTensor {
            dtype: "F32".into(),
            shape: vec![4],
            sha256: digest,
        };
        cache.record([("w".to_owned(), entry)]).unwrap();
        let w = CachedWeights::open(cache).unwrap();
        let e = w.tensor("w", &[4], Init::Zeros).unwrap_err().to_string();
        assert!(e.contains("10 bytes"), "{e}");
    }
}
