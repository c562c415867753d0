//! Where a shard's parameters come from: a safetensors checkpoint, seeded random values, or (for
//! training) a `tch` variable store. Model code asks for tensors by their Hugging Face name through
//! [`Weights`], so one forward implementation serves all three.

use crate::error::{Result, ShardError};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tch::{Device, Kind, Tensor};

/// How a parameter is initialised when it is not read from a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Normal(0, std), as Hugging Face initialises linear, embedding and token parameters.
    Normal(f64),
    Zeros,
    Ones,
}

/// A source of named parameters.
pub trait WeightSource {
    /// Returns the parameter `name` with exactly `shape`, as f32 on CPU.
    fn tensor(&self, name: &str, shape: &[i64], init: Init) -> Result<Tensor>;
    /// Whether the source holds `name` (used to detect optional parts such as a pooler).
    fn contains(&self, name: &str) -> bool;
}

/// A safetensors checkpoint, memory-mapped: only the tensors a shard asks for are read, so a
/// shard's resident memory follows its share of the model. The map is dropped with this value.
pub struct SafetensorsWeights {
    path: PathBuf,
    mmap: Mmap,
}

impl SafetensorsWeights {
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| ShardError::io(path, e))?;
        // SAFETY: the checkpoint is opened read-only and not expected to change while loading; a
        // concurrent writer could only corrupt the values read, which the header checks below bound.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| ShardError::io(path, e))?;
        let weights = SafetensorsWeights {
            path: path.to_owned(),
            mmap,
        };
        // Validate the header (and every offset against the file length) once, up front.
        weights.parsed()?;
        Ok(weights)
    }

    fn parsed(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.mmap).map_err(|e| ShardError::Safetensors {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }

    /// Names of all tensors in the file.
    pub fn names(&self) -> Result<Vec<String>> {
        Ok(self
            .parsed()?
            .names()
            .into_iter()
            .map(|s| s.to_owned())
            .collect())
    }
}

impl WeightSource for SafetensorsWeights {
    fn tensor(&self, name: &str, shape: &[i64], _init: Init) -> Result<Tensor> {
        let st = self.parsed()?;
        let view = st.tensor(name).map_err(|_| ShardError::MissingWeight {
            name: name.to_owned(),
            path: self.path.clone(),
        })?;
        let found: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        if found != shape {
            return Err(ShardError::WeightShape {
                name: name.to_owned(),
                expected: shape.to_vec(),
                found,
            });
        }
        let kind = match view.dtype() {
            Dtype::F32 => Kind::Float,
            Dtype::F16 => Kind::Half,
            Dtype::BF16 => Kind::BFloat16,
            Dtype::F64 => Kind::Double,
            other => {
                return Err(ShardError::Safetensors {
                    path: self.path.clone(),
                    message: format!("weight {name:?} has unsupported dtype {other:?}"),
                })
            }
        };
        // from_data_size copies out of the map, so the tensor owns its memory.
        let t = Tensor::f_from_data_size(view.data(), shape, kind)?;
        Ok(t.to_kind(Kind::Float))
    }

    fn contains(&self, name: &str) -> bool {
        self.parsed()
            .map(|st| st.tensor(name).is_ok())
            .unwrap_or(false)
    }
}

/// Seeded random parameters, for presets with no checkpoint (throughput, memory, planning).
///
/// Each tensor's values depend only on the seed and its full name, never on which other tensors
/// were created before it: a shard built alone gets exactly the weights the same units have in the
/// whole model, so stages of a pipeline on different processes compose to the single-process model.
pub struct SeededRandomWeights {
    pub seed: u64,
}

// libtorch's default generator is global; serialise seeding + sampling so names stay reproducible
// when several shards are built on different threads.
static GENERATOR: Mutex<()> = Mutex::new(());

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl WeightSource for SeededRandomWeights {
    fn tensor(&self, name: &str, shape: &[i64], init: Init) -> Result<Tensor> {
        let opts = (Kind::Float, Device::Cpu);
        Ok(match init {
            Init::Zeros => Tensor::zeros(shape, opts),
            Init::Ones => Tensor::ones(shape, opts),
            Init::Normal(std) => {
                let _guard = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
                let seed = (self.seed ^ fnv1a(name.as_bytes())) & (i64::MAX as u64);
                tch::manual_seed(seed as i64);
                Tensor::randn(shape, opts) * std
            }
        })
    }

    fn contains(&self, _name: &str) -> bool {
        true
    }
}

/// A prefixed view of a [`WeightSource`], like a module path: `w.pp("encoder").pp("layer.3")`.
#[derive(Clone)]
pub struct Weights<'a> {
    source: &'a dyn WeightSource,
    prefix: String,
}

impl<'a> Weights<'a> {
    pub fn new(source: &'a dyn WeightSource) -> Self {
        Weights {
            source,
            prefix: String::new(),
        }
    }

    /// The view one level down, at `prefix.name`.
    pub fn pp(&self, name: impl std::fmt::Display) -> Weights<'a> {
        Weights {
            source: self.source,
            prefix: join(&self.prefix, &name.to_string()),
        }
    }

    pub fn get(&self, name: &str, shape: &[i64], init: Init) -> Result<Tensor> {
        self.source.tensor(&join(&self.prefix, name), shape, init)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.source.contains(&join(&self.prefix, name))
    }
}

fn join(prefix: &str, name: &str) -> String {
    match (prefix.is_empty(), name.is_empty()) {
        (true, _) => name.to_owned(),
        (_, true) => prefix.to_owned(),
        _ => format!("{prefix}.{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_weights_depend_on_name_not_order() {
        let w = SeededRandomWeights { seed: 7 };
        let a1 = w.tensor("a", &[4], Init::Normal(1.0)).unwrap();
        let _b = w.tensor("b", &[4], Init::Normal(1.0)).unwrap();
        let a2 = w.tensor("a", &[4], Init::Normal(1.0)).unwrap();
        let b2 = w.tensor("b", &[4], Init::Normal(1.0)).unwrap();
        assert!(a1.equal(&a2));
        assert!(!a1.equal(&b2));
    }

    #[test]
    fn truncated_checkpoint_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let t = Tensor::ones([8, 8], (Kind::Float, Device::Cpu));
        let data: Vec<u8> = Vec::<f32>::try_from(t.flatten(0, -1))
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let view = safetensors::tensor::TensorView::new(Dtype::F32, vec![8, 8], &data).unwrap();
        let bytes = safetensors::serialize([("w", view)], None).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let err = SafetensorsWeights::open(&path).err().unwrap().to_string();
        assert!(err.contains("model.safetensors"), "{err}");

        std::fs::write(&path, &bytes).unwrap();
        let w = SafetensorsWeights::open(&path).unwrap();
        assert!(w.tensor("w", &[8, 8], Init::Zeros).unwrap().equal(&t));
        let err = w
            .tensor("w", &[4, 16], Init::Zeros)
            .unwrap_err()
            .to_string();
        assert!(err.contains("[4, 16]") && err.contains("[8, 8]"), "{err}");
        let err = w
            .tensor("missing", &[1], Init::Zeros)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"missing\""), "{err}");
    }
}
