//! What a node needs to build its shard from a peer's copy of the model: for each tensor its
//! place in the peer's safetensors file and the SHA-256 the leader computed of its bytes, and the
//! same for the small files beside it (`config.json`). The leader puts a [`ShardWeights`] in each
//! [`Assignment`](crate::Assignment); a node that lacks some of it asks peers for byte ranges
//! ([`WeightRequest`] on [`Keys::weights`](crate::Keys::weights)) and keeps only bytes whose digest
//! matches.

use serde::{Deserialize, Serialize};

/// The most tensors one shard's list may name (ViT-Huge has about 520 in all).
pub const MAX_SHARD_TENSORS: usize = 8192;
/// The most small files one shard's list may name.
pub const MAX_SHARD_FILES: usize = 8;
/// The longest tensor name or file path accepted.
pub const MAX_NAME_BYTES: usize = 256;
/// The most bytes one [`WeightRequest`] may ask for: answers stay well under zenoh's fragment
/// budget per reply and a server never reads more than this for one query.
pub const MAX_CHUNK_BYTES: u64 = 4 << 20;
/// The largest small file (`config.json` and the like) a node fetches.
pub const MAX_SMALL_FILE_BYTES: u64 = 1 << 20;

/// One tensor of the model file, as the leader read it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TensorEntry {
    pub name: String,
    /// safetensors dtype name (`F32`, `F16`, `BF16`, `F64`).
    pub dtype: String,
    pub shape: Vec<u64>,
    /// Offset of its first byte in the model file, and its length.
    pub offset: u64,
    pub len: u64,
    /// SHA-256 of its bytes, lower-case hex.
    pub sha256: String,
}

/// A small file of the model folder (path relative to it, `/`-separated).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    pub len: u64,
    pub sha256: String,
}

/// The weights of one shard as the leader's copy holds them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShardWeights {
    /// The model file the offsets are in (`model.safetensors`) and its length.
    pub file: String,
    pub file_len: u64,
    pub tensors: Vec<TensorEntry>,
    pub files: Vec<FileEntry>,
}

/// A request for `len` bytes of `file` from `offset`, answered with the bytes alone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WeightRequest {
    pub file: String,
    pub offset: u64,
    pub len: u64,
}

/// Bytes per element of a safetensors dtype the shard loader reads, or `None`.
pub fn dtype_bytes(dtype: &str) -> Option<u64> {
    match dtype {
        "F32" => Some(4),
        "F16" | "BF16" => Some(2),
        "F64" => Some(8),
        _ => None,
    }
}

/// Whether `path` names a file inside a folder: relative, no `..`, `.` or empty parts.
pub fn is_relative_inside(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != ".." && !p.contains('\\'))
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl ShardWeights {
    /// Checks what a node relies on before asking anyone for bytes, naming the first thing
    /// wrong: bounded counts and names, hex digests, known dtypes, lengths that agree with
    /// shapes, ranges inside the file, and file paths inside the model folder.
    pub fn validate(&self) -> Result<(), String> {
        if !is_relative_inside(&self.file) || self.file.len() > MAX_NAME_BYTES {
            return Err(format!(
                "model file {:?} is not a plain relative path",
                self.file
            ));
        }
        if self.tensors.len() > MAX_SHARD_TENSORS {
            return Err(format!(
                "{} tensors (at most {MAX_SHARD_TENSORS})",
                self.tensors.len()
            ));
        }
        if self.files.len() > MAX_SHARD_FILES {
            return Err(format!(
                "{} files (at most {MAX_SHARD_FILES})",
                self.files.len()
            ));
        }
        for t in &self.tensors {
            t.validate(self.file_len)
                .map_err(|e| format!("tensor {:?}: {e}", t.name))?;
        }
        for f in &self.files {
            if !is_relative_inside(&f.path) || f.path.len() > MAX_NAME_BYTES {
                return Err(format!(
                    "file {:?} is not a path inside the model folder",
                    f.path
                ));
            }
            if f.len > MAX_SMALL_FILE_BYTES {
                return Err(format!(
                    "file {:?} of {} bytes (at most {MAX_SMALL_FILE_BYTES})",
                    f.path, f.len
                ));
            }
            if !is_sha256_hex(&f.sha256) {
                return Err(format!("file {:?}: digest is not SHA-256 hex", f.path));
            }
        }
        Ok(())
    }

    /// Bytes of all its tensors.
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.len).sum()
    }
}

impl TensorEntry {
    fn validate(&self, file_len: u64) -> Result<(), String> {
        if self.name.is_empty() || self.name.len() > MAX_NAME_BYTES {
            return Err("name empty or too long".into());
        }
        let Some(width) = dtype_bytes(&self.dtype) else {
            return Err(format!(
                "dtype {:?} is not one the loader reads",
                self.dtype
            ));
        };
        let elements = self
            .shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .ok_or("shape overflows")?;
        if elements.checked_mul(width) != Some(self.len) {
            return Err(format!(
                "{} bytes for shape {:?} of {}",
                self.len, self.shape, self.dtype
            ));
        }
        match self.offset.checked_add(self.len) {
            Some(end) if end <= file_len => {}
            _ => {
                return Err(format!(
                    "bytes {}+{} outside the model file of {file_len}",
                    self.offset, self.len
                ))
            }
        }
        if !is_sha256_hex(&self.sha256) {
            return Err("digest is not SHA-256 hex".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights() -> ShardWeights {
        ShardWeights {
            file: "model.safetensors".into(),
            file_len: 1000,
            tensors: vec![TensorEntry {
                name: "encoder.layer.0.attention.self.query.weight".into(),
                dtype: "F32".into(),
                shape: vec![4, 8],
                offset: 100,
                len: 128,
                sha256: "ab".repeat(32),
            }],
            files: vec![FileEntry {
                path: "1_Pooling/config.json".into(),
                len: 200,
                sha256: "0f".repeat(32),
            }],
        }
    }

    fn refused(change: impl FnOnce(&mut ShardWeights)) -> String {
        let mut w = weights();
        change(&mut w);
        w.validate().unwrap_err()
    }

    #[test]
    fn a_consistent_list_is_accepted() {
        assert_eq!(weights().validate(), Ok(()));
        assert_eq!(weights().tensor_bytes(), 128);
    }

    #[test]
    fn ranges_outside_the_file_and_lengths_unlike_the_shape_are_refused() {
        assert!(refused(|w| w.tensors[0].offset = 900).contains("outside the model file"));
        assert!(refused(|w| w.tensors[0].offset = u64::MAX).contains("outside"));
        assert!(refused(|w| w.tensors[0].len = 127).contains("127 bytes for shape"));
        assert!(refused(|w| w.tensors[0].shape = vec![u64::MAX, 2]).contains("overflows"));
        assert!(refused(|w| w.tensors[0].dtype = "I64".into()).contains("dtype"));
        assert!(refused(|w| w.tensors[0].sha256 = "AB".repeat(32)).contains("digest"));
    }

    #[test]
    fn paths_that_leave_the_model_folder_are_refused() {
        assert!(refused(|w| w.files[0].path = "../secret".into()).contains("inside"));
        assert!(refused(|w| w.files[0].path = "/etc/passwd".into()).contains("inside"));
        assert!(refused(|w| w.files[0].path = "a//b".into()).contains("inside"));
        assert!(refused(|w| w.file = "../model.safetensors".into()).contains("model file"));
        assert!(refused(|w| w.files[0].len = MAX_SMALL_FILE_BYTES + 1).contains("at most"));
    }

    #[test]
    fn counts_are_bounded() {
        let e = refused(|w| {
            let t = w.tensors[0].clone();
            w.tensors = vec![t; MAX_SHARD_TENSORS + 1];
        });
        assert!(e.contains("at most"), "{e}");
        let e = refused(|w| {
            let f = w.files[0].clone();
            w.files = vec![f; MAX_SHARD_FILES + 1];
        });
        assert!(e.contains("at most"), "{e}");
    }

    #[test]
    fn an_assignment_from_a_leader_without_weights_still_decodes() {
        use crate::{envelope, Assignment, NextHop};
        // The assignment as leaders sent it before it carried weights.
        #[derive(Serialize)]
        struct Older {
            epoch: u64,
            model: String,
            stage: u32,
            stages: u32,
            l: usize,
            r: usize,
            next: NextHop,
            out_bits: u8,
            target_items_per_s: f64,
        }
        let older = Older {
            epoch: 3,
            model: "m".into(),
            stage: 0,
            stages: 1,
            l: 1,
            r: 8,
            next: NextHop::Client,
            out_bits: 32,
            target_items_per_s: 1.0,
        };
        let a: Assignment = envelope::decode(&envelope::encode("f", &older), "f").unwrap();
        assert_eq!((a.epoch, a.r, a.weights), (3, 8, None));
        let with = Assignment {
            weights: Some(weights()),
            ..a
        };
        let back: Assignment = envelope::decode(&envelope::encode("f", &with), "f").unwrap();
        assert_eq!(back, with);
    }
}
