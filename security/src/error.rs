//! What can go wrong with a fleet's CA, members and security settings.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} `{name}`: use letters, digits, `-`, `_`, `.` (it becomes one key chunk)")]
    BadName { what: String, name: String },
    #[error("`{0}` is already a member of the fleet")]
    AlreadyMember(String),
    #[error("`{0}` is not a member of the fleet")]
    NotMember(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} already exists: refusing to overwrite it")]
    Exists { path: PathBuf },
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("{0}")]
    Settings(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An I/O error on `path`.
pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
