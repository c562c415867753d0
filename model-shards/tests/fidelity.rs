//! Fidelity against the reference implementation: small random models created and saved by
//! Hugging Face `transformers` (tests/reference/make_models.py, run with the project venv) load in
//! model-shards and give the same outputs on the same inputs.

use quantpipe_model_shards::{Boundary, ModelSource, UnitRange};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use tch::Tensor;

const TOLERANCE: f64 = 1e-4;

fn python() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = root.join(".venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run scripts/setup --tests first (it installs torch and transformers)",
        venv.display()
    );
    venv
}

/// Builds the reference models once per test binary.
fn reference_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/make_models.py");
        let out = Command::new(python())
            .arg(&script)
            .arg(dir.path())
            .output()
            .expect("run make_models.py");
        assert!(
            out.status.success(),
            "make_models.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
    .path()
}

fn reference(name: &str) -> (ModelSource, Boundary, Tensor) {
    let dir = reference_dir().join(name);
    let source = ModelSource::open_dir(&dir).unwrap();
    let named = Tensor::read_safetensors(dir.join("reference.safetensors")).unwrap();
    let get = |k: &str| {
        named
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, t)| t.shallow_clone())
    };
    let input = match get("pixel_values") {
        Some(p) => Boundary::new(vec![p], None),
        None => Boundary::new(vec![get("input_ids").unwrap()], get("attention_mask")),
    };
    (source, input, get("output").unwrap())
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

fn assert_matches_transformers(name: &str) {
    let (source, input, expected) = reference(name);
    let units = source.config().units();
    let shard = source.load_shard(UnitRange::full(units)).unwrap();
    let out = shard.forward(&input).unwrap();
    let diff = max_abs_diff(&out.tensors[0], &expected);
    assert!(
        diff <= TOLERANCE,
        "{name}: max abs diff {diff} > {TOLERANCE}"
    );
    // And cut in three stages, including after a u0 and a u2 unit (two tensors cross).
    let cuts = [(1, 5), (6, 7), (8, units)];
    let mut x = input;
    for (l, r) in cuts {
        x = source
            .load_shard(UnitRange::new(l, r))
            .unwrap()
            .forward(&x)
            .unwrap();
    }
    let diff = max_abs_diff(&x.tensors[0], &expected);
    assert!(diff <= TOLERANCE, "{name} (3 stages): max abs diff {diff}");
}

#[test]
fn vit_classifier_matches_transformers() {
    assert_matches_transformers("vit-classifier");
}

#[test]
fn vit_model_pooler_matches_transformers() {
    assert_matches_transformers("vit-model");
}

#[test]
fn deit_distilled_matches_transformers() {
    assert_matches_transformers("deit-distilled");
}

#[test]
fn bert_model_with_padding_mask_matches_transformers() {
    assert_matches_transformers("bert-model");
}

#[test]
fn bert_sequence_classifier_matches_transformers() {
    assert_matches_transformers("bert-classifier");
}

#[test]
fn bert_sentence_embedding_matches_masked_mean_pool() {
    assert_matches_transformers("bert-sentence");
}
