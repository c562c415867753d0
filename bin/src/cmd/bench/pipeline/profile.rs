//! The profile every node of the bench announces, measured once before any node starts.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Per-unit profile of `model` at `ubatch`, one intra-op thread, pinned to `core` when
/// possible: the file every node reads (`device.profile_file`; nodes scale it by their slowdown).
pub fn measure_profile(
    model: &Path,
    ubatch: usize,
    core: Option<usize>,
    dir: &Path,
) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the quantpipe binary")?;
    let mut cmd = match core {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &c.to_string()]).arg(&exe);
            cmd
        }
        None => Command::new(&exe),
    };
    let out = cmd
        .args(["profile", "--model-dir"])
        .arg(model)
        .args(["--threads", "1", "--ubatch", &ubatch.to_string()])
        .args([
            "--device-type",
            "bench",
            "--warmup",
            "1",
            "--repeats",
            "3",
            "--json",
            "--out",
        ])
        .arg(dir.join("pipeedge"))
        .stderr(Stdio::inherit())
        .output()
        .context("running quantpipe profile")?;
    if !out.status.success() {
        bail!("quantpipe profile failed ({})", out.status);
    }
    let path = dir.join("profile.json");
    std::fs::write(&path, &out.stdout)?;
    Ok(path)
}
