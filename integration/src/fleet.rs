//! Configuration files of test fleets: one TOML per node or client, as `quantpipe node` and
//! `quantpipe run` read them.

use crate::Procs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A node's (or client's) settings file: fleet, name, role, local model folder, zenoh endpoints,
/// then `extra` TOML sections (`[device]`, `[leader]`, `[client]`).
/// The MiniLM folder `scripts/setup` fetches; panics naming the fix when it is missing.
pub fn minilm_dir() -> PathBuf {
    let model = crate::repo_root().join("data/minilm");
    assert!(
        model.join("model.safetensors").exists(),
        "MiniLM is missing from {}: run scripts/setup",
        model.display()
    );
    model
}

pub fn node_toml(
    fleet: &str,
    name: &str,
    model: &Path,
    role: &str,
    listen: &[String],
    connect: &[String],
    extra: &str,
) -> String {
    let list = |v: &[String]| {
        v.iter()
            .map(|e| format!("\"{e}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "fleet = \"{fleet}\"\nname = \"{name}\"\nrole = \"{role}\"\nmodel_dir = \"{}\"\n\
         [zenoh]\nlisten = [{}]\nconnect = [{}]\n{extra}",
        model.display(),
        list(listen),
        list(connect)
    )
}

/// `n` text items of at least `min_words` words each (long enough that a 128-token tokenizer
/// truncates them, so every microbatch has the profiled sequence length).
pub fn long_texts(n: usize, min_words: usize) -> Vec<String> {
    const WORDS: &[&str] = &[
        "the",
        "central",
        "bank",
        "raised",
        "interest",
        "rates",
        "while",
        "a",
        "late",
        "goal",
        "settled",
        "the",
        "cup",
        "final",
        "and",
        "parliament",
        "debated",
        "the",
        "budget",
        "shares",
        "fell",
        "after",
        "a",
        "profit",
        "warning",
        "researchers",
        "released",
        "a",
        "speech",
        "model",
    ];
    (0..n)
        .map(|i| {
            let mut s = format!("item {i}");
            for k in 0..min_words {
                s.push(' ');
                s.push_str(WORDS[(i * 7 + k * 3) % WORDS.len()]);
            }
            s
        })
        .collect()
}

/// Writes a MiniLM profile (`device.profile_file`) in which all 24 units cost the same, so the
/// nodes skip measuring and the planner, when it is used, spreads units evenly by count.
pub fn write_uniform_minilm_profile(path: &Path, ubatch: usize) {
    let units: Vec<String> = (1..=24)
        .map(|u| {
            format!(
                "{{\"unit\":{u},\"time_s\":0.01,\"parameters\":1,\"weight_bytes\":4,\
                 \"output_elements\":1}}"
            )
        })
        .collect();
    let profile = format!(
        "{{\"model\":\"minilm\",\"ubatch\":{ubatch},\"threads\":1,\"input_elements\":128,\
         \"units\":[{}]}}",
        units.join(",")
    );
    std::fs::write(path, profile).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
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
    let out = procs.run_to_end(
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
        Duration::from_secs(120),
    );
    let out: serde_json::Value = serde_json::from_str(out.trim()).expect("infer --json output");
    serde_json::from_value(out["outputs"].clone()).expect("infer --json outputs")
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
    fn node_toml_lists_endpoints_and_appends_sections() {
        let t = node_toml(
            "f",
            "a",
            Path::new("/m"),
            "device",
            &["tcp/10.0.0.1:7447".into()],
            &[],
            "[device]\nthreads = 1\n",
        );
        assert!(
            t.contains("listen = [\"tcp/10.0.0.1:7447\"]\nconnect = []\n[device]"),
            "{t}"
        );
    }

    #[test]
    fn long_texts_have_the_requested_words() {
        let t = long_texts(3, 150);
        assert_eq!(t.len(), 3);
        assert!(t.iter().all(|s| s.split(' ').count() == 152));
        assert_ne!(t[0], t[1]);
    }
    #[test]
    fn bitwise_comparison_tells_minus_zero_from_zero() {
        assert_bitwise_equal(&[vec![1.0, 0.0]], &[vec![1.0, 0.0]]);
        let caught = std::panic::catch_unwind(|| assert_bitwise_equal(&[vec![0.0]], &[vec![-0.0]]));
        assert!(caught.is_err());
    }
}
