//! Running the `quantpipe` binary from the integration tests.

// Each test crate compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fmt::Debug;
use std::path::PathBuf;
use std::process::{Command, Output};

pub fn quantpipe<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quantpipe"))
        .args(args)
        .output()
        .expect("run quantpipe")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The JSON report of a run that must succeed.
pub fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "quantpipe failed: {}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

/// Runs `args`, which must fail with an error naming every one of `needles`.
pub fn fails_naming<S: AsRef<OsStr> + Debug>(args: &[S], needles: &[&str]) {
    let out = quantpipe(args);
    assert!(!out.status.success(), "{args:?} succeeded");
    let err = stderr(&out);
    for needle in needles {
        assert!(err.contains(needle), "{args:?}: no {needle:?} in {err}");
    }
}

/// `path` relative to the repository root.
pub fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

/// The MiniLM folder `scripts/setup` downloads.
pub fn minilm() -> PathBuf {
    let dir = repo("data/minilm");
    assert!(
        dir.exists(),
        "{} is missing: run scripts/setup first",
        dir.display()
    );
    dir
}
