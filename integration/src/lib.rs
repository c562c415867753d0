//! Helpers of quantpipe's multi-node tests: the `quantpipe` binary, MiniLM, a leader and MiniLM
//! devices on loopback ([`LoopbackFleet`]), a zenoh peer of the test itself, a client run's report and outputs, and the single-process reference a
//! pipeline's outputs are compared with. Fleets and client command lines come from
//! `quantpipe_launcher`.

pub mod chaos;
mod loopback_fleet;
mod made_once;

pub use loopback_fleet::{LoopbackFleet, LoopbackFleetSpec};
pub use made_once::dir_made_once;

use quantpipe_actors::runtime::config::{Role, ZenohSettings};
use quantpipe_launcher::{config_file, loopback, Launch, Procs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration/ has a parent")
        .to_path_buf()
}

/// Writes into `dir` the settings of a test's client `client` of `fleet`, listening on `listen`
/// and joining the leader on `leader`: two microbatches in flight, and 90 s for the plan and for
/// each result (a debug build on a shared 2-core machine profiles and plans slowly).
pub fn write_loopback_client(
    dir: &Path,
    fleet: &str,
    model: &Path,
    listen: u16,
    leader: u16,
) -> PathBuf {
    let mut client =
        config_file::loopback_peer(fleet, "client", Role::Device, model, listen, Some(leader));
    client.client.window = 2;
    client.client.plan_wait_s = 90.0;
    client.client.result_timeout_s = 90.0;
    config_file::write(dir, &client).expect("writing the client's settings")
}

/// Builds the `quantpipe` binary (debug profile; a no-op when up to date) and returns its path.
pub fn quantpipe_bin() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(["build", "-p", "quantpipe"])
        .current_dir(repo_root())
        .status()
        .unwrap_or_else(|e| panic!("running `{cargo} build -p quantpipe`: {e}"));
    assert!(
        status.success(),
        "`cargo build -p quantpipe` failed ({status})"
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let bin = target.join("debug").join("quantpipe");
    assert!(
        bin.exists(),
        "no binary at {} after building it",
        bin.display()
    );
    bin
}

/// The MiniLM folder `scripts/setup` fetches; panics naming the fix when it is missing.
pub fn minilm_dir() -> PathBuf {
    let model = repo_root().join("data/minilm");
    assert!(
        model.join("model.safetensors").exists(),
        "MiniLM is missing from {}: run scripts/setup",
        model.display()
    );
    model
}

/// The Fashion-MNIST ViT of the image tests, trained on first use (not by `scripts/setup`, so
/// that the main job's set-up builds nothing): `quantpipe train-vit` with its defaults, seed 0 and
/// one libtorch thread (about 2.5 minutes unloaded; one thread is several times faster than two
/// on a busy 2-core machine), once however many tests ask at the same time.
pub fn fmnist_vit_dir() -> PathBuf {
    let model = repo_root().join("data/fmnist-vit");
    dir_made_once(&model, "model.safetensors", |tmp| {
        eprintln!(
            "training the Fashion-MNIST ViT into {} (once, a few minutes)",
            model.display()
        );
        train_fmnist_vit(&quantpipe_bin(), tmp)
    })
    .unwrap_or_else(|e| {
        panic!(
            "training the Fashion-MNIST ViT into {}: {e}",
            model.display()
        )
    })
}

/// Runs `quantpipe train-vit` into `out` as `scripts/setup` used to.
fn train_fmnist_vit(bin: &Path, out: &Path) -> std::io::Result<()> {
    let out = Command::new(bin)
        .args([
            "train-vit",
            "--data",
            "/usr/share/datasets/fashion-mnist",
            "--out",
        ])
        .arg(out)
        .args(["--seed", "0", "--threads", "1"])
        .output()?;
    if out.status.success() {
        return Ok(());
    }
    Err(std::io::Error::other(format!(
        "`quantpipe train-vit` failed ({}); is Debian's dataset-fashion-mnist installed \
         (scripts/setup --tests)?\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )))
}

/// A zenoh peer session of the test itself (a client, or a hostile peer) connected to the node
/// listening on loopback `port`, with multicast scouting off.
pub fn peer_session(port: u16) -> zenoh::Session {
    use zenoh::Wait;
    let config = ZenohSettings::peer(vec![], vec![loopback(port)])
        .config()
        .expect("a peer's zenoh config");
    zenoh::open(config)
        .wait()
        .expect("opening a test zenoh session")
}

/// Runs the client `run` (a `quantpipe run ... --json`, see `ClientRun`) as process `name` to
/// completion within `limit` and answers its JSON report; panics with every log when it fails.
pub fn run_report(
    procs: &mut Procs,
    name: &str,
    run: &Launch,
    limit: Duration,
) -> serde_json::Value {
    let out = procs
        .run_launch(name, run, limit)
        .unwrap_or_else(|e| panic!("{e:#}"));
    serde_json::from_str(out.trim()).expect("run --json output")
}

/// The rows a client run saved with `--save-outputs path`.
pub fn read_outputs(path: &Path) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_slice(&bytes).expect("saved outputs: a JSON array of rows")
}

/// Rows of single-process `quantpipe infer` (one thread) over the text file `input` in
/// microbatches of `ubatch`: the reference a pipeline's outputs are compared with.
pub fn single_process_outputs(
    procs: &mut Procs,
    log_name: &str,
    bin: &Path,
    model: &Path,
    input: &Path,
    ubatch: usize,
) -> Vec<Vec<f32>> {
    let out = single_process_report(procs, log_name, bin, model, input, ubatch, 120);
    serde_json::from_value(out["outputs"].clone()).expect("infer --json outputs")
}

/// Top-1 labels of single-process `quantpipe infer` (one thread) over the images `input` (a
/// file or a folder) in microbatches of `ubatch`.
pub fn single_process_labels(
    procs: &mut Procs,
    log_name: &str,
    bin: &Path,
    model: &Path,
    input: &Path,
    ubatch: usize,
) -> Vec<usize> {
    let out = single_process_report(procs, log_name, bin, model, input, ubatch, 180);
    serde_json::from_value(out["top1"].clone()).expect("infer --json top1")
}

/// The `--json` report of `quantpipe infer` (one thread) over `input`, given `limit_s` seconds.
fn single_process_report(
    procs: &mut Procs,
    log_name: &str,
    bin: &Path,
    model: &Path,
    input: &Path,
    ubatch: usize,
    limit_s: u64,
) -> serde_json::Value {
    let out = procs
        .run_to_end(
            log_name,
            bin,
            &[
                "infer",
                "--model-dir",
                model.to_str().unwrap(),
                "--input",
                input.to_str().unwrap(),
                "--ubatch",
                &ubatch.to_string(),
                "--threads",
                "1",
                "--json",
            ],
            Duration::from_secs(limit_s),
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    serde_json::from_str(out.trim()).expect("infer --json output")
}

/// Panics naming the first row of `pipeline` that differs from `single` in any bit.
pub fn assert_bitwise_equal(pipeline: &[Vec<f32>], single: &[Vec<f32>]) {
    assert_eq!(pipeline.len(), single.len(), "number of output rows");
    for (i, (p, s)) in pipeline.iter().zip(single).enumerate() {
        assert_eq!(p.len(), s.len(), "item {i}: row length");
        let differ = p
            .iter()
            .zip(s)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(
            differ,
            0,
            "item {i}: {differ} of {} values differ from single-process inference",
            p.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitwise_comparison_tells_minus_zero_from_zero() {
        assert_bitwise_equal(&[vec![1.0, 0.0]], &[vec![1.0, 0.0]]);
        let caught = std::panic::catch_unwind(|| assert_bitwise_equal(&[vec![0.0]], &[vec![-0.0]]));
        assert!(caught.is_err());
    }
}
