//! The one error type of the crate: every variant names what was wrong and where.

use std::path::PathBuf;

/// Errors raised while loading a model or running a shard.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("unsupported architecture {0:?}: expected one of ViTModel, ViTForImageClassification, DeiTModel, DeiTForImageClassification, DeiTForImageClassificationWithTeacher, BertModel, BertForSequenceClassification")]
    UnknownArchitecture(String),
    #[error("invalid safetensors file {path}: {message}")]
    Safetensors { path: PathBuf, message: String },
    #[error("weight {name:?} is missing from {path}")]
    MissingWeight { name: String, path: PathBuf },
    #[error("weight {name:?} has shape {found:?}, the config implies {expected:?}")]
    WeightShape {
        name: String,
        expected: Vec<i64>,
        found: Vec<i64>,
    },
    #[error("unit range {start}..{end} is out of bounds: this model has units 1..{units}")]
    UnitRange {
        start: usize,
        end: usize,
        units: usize,
    },
    #[error("bad input to unit {unit}: {message}")]
    Input { unit: usize, message: String },
    #[error("cannot decode image {path}: {message}")]
    Image { path: PathBuf, message: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("unknown preset {0:?}; known presets: {1}")]
    UnknownPreset(String, String),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

pub type Result<T, E = ShardError> = std::result::Result<T, E>;

impl ShardError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ShardError::Io {
            path: path.into(),
            source,
        }
    }
}
