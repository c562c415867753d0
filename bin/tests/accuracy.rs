//! `quantpipe train-vit` and `quantpipe eval-quant` end to end: a tiny ViT trained on a synthetic
//! Fashion-MNIST-format data set, the quantized evaluation of it and of MiniLM on BBC News, and
//! the errors for bad inputs.

mod common;

use common::{fails_naming, json, minilm, quantpipe, repo, stderr};
use quantpipe_model_shards::{Boundary, ModelSource, UnitRange};
use std::io::Write;
use std::path::Path;

/// Writes one IDX split: 8x8 images whose class (0..4) is which horizontal band is bright, plus
/// noise, so a tiny model can learn it in a few steps.
fn write_split(dir: &Path, prefix: &str, n: usize, seed: u64) {
    let mut state = seed;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for i in 0..n {
        let class = (i % 4) as u8;
        labels.push(class);
        for row in 0..8u8 {
            for _ in 0..8 {
                let base = if row / 2 == class { 200 } else { 30 };
                pixels.push(base + (next() % 40) as u8);
            }
        }
    }
    let put = |name: String, header: &[u32], data: &[u8]| {
        let file = std::fs::File::create(dir.join(name)).unwrap();
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        for w in header {
            gz.write_all(&w.to_be_bytes()).unwrap();
        }
        gz.write_all(data).unwrap();
        gz.finish().unwrap();
    };
    put(
        format!("{prefix}-images-idx3-ubyte.gz"),
        &[0x803, n as u32, 8, 8],
        &pixels,
    );
    put(
        format!("{prefix}-labels-idx1-ubyte.gz"),
        &[0x801, n as u32],
        &labels,
    );
}

fn synthetic_fashion(dir: &Path) {
    write_split(dir, "train", 512, 1);
    write_split(dir, "t10k", 64, 2);
}

fn train_tiny(data: &Path, out: &Path) -> serde_json::Value {
    let (data, out) = (data.to_str().unwrap(), out.to_str().unwrap());
    json(&quantpipe(&[
        "train-vit",
        "--data",
        data,
        "--out",
        out,
        "--seed",
        "3",
        "--epochs",
        "4",
        "--batch",
        "32",
        "--patch",
        "4",
        "--hidden",
        "16",
        "--layers",
        "2",
        "--heads",
        "2",
        "--mlp",
        "32",
        "--lr",
        "3e-3",
        "--threads",
        "1",
        "--json",
    ]))
}

/// `quantpipe eval-quant` of `model` on `dataset` read from `data`, followed by `extra`.
fn eval_quant(model: &Path, dataset: &str, data: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "eval-quant",
        "--model-dir",
        model.to_str().unwrap(),
        "--dataset",
        dataset,
        "--data",
        data.to_str().unwrap(),
    ];
    args.extend(extra);
    quantpipe(&args)
}

#[test]
fn train_vit_lowers_the_loss_and_saves_a_loadable_reproducible_folder() {
    let dir = tempfile::tempdir().unwrap();
    synthetic_fashion(dir.path());
    let out = dir.path().join("vit");
    let report = train_tiny(dir.path(), &out);
    assert_eq!(report["steps"], 64);
    let (first, last) = (
        report["loss_first"].as_f64().unwrap(),
        report["loss_last"].as_f64().unwrap(),
    );
    assert!(last < 0.7 * first, "loss {first} -> {last}");
    assert!(report["test_accuracy"].as_f64().unwrap() > 0.5, "{report}");

    let source = ModelSource::open_dir(&out).unwrap();
    let config = source.config();
    assert_eq!(
        (config.hidden_size, config.num_layers, config.num_labels),
        (16, 2, 10)
    );
    let shard = source.load_shard(UnitRange::full(config.units())).unwrap();
    let x = tch::Tensor::zeros([2, 1, 8, 8], (tch::Kind::Float, tch::Device::Cpu));
    let logits = shard
        .forward(&Boundary::new(vec![x], None))
        .unwrap()
        .tensors
        .remove(0);
    assert_eq!(logits.size(), [2, 10]);

    // The same seed gives the same weights.
    let again = dir.path().join("vit2");
    let report2 = train_tiny(dir.path(), &again);
    assert_eq!(report["loss_last"], report2["loss_last"]);
    assert_eq!(
        std::fs::read(out.join("model.safetensors")).unwrap(),
        std::fs::read(again.join("model.safetensors")).unwrap()
    );
}

#[test]
fn eval_quant_on_all_cuts_raw_bits_equal_fp32() {
    let dir = tempfile::tempdir().unwrap();
    synthetic_fashion(dir.path());
    let model = dir.path().join("vit");
    train_tiny(dir.path(), &model);
    let rows = json(&eval_quant(
        &model,
        "fashion-mnist",
        dir.path(),
        &[
            "--bits",
            "1,32",
            "--clip",
            "naive,ds-aciq",
            "--cut",
            "mid,all",
            "--json",
        ],
    ));
    let rows = rows.as_array().unwrap();
    // fp32, then 2 clips x 2 bits for each of the two cut choices.
    assert_eq!(rows.len(), 9);
    assert_eq!(rows[0]["clip"], "fp32");
    let fp32_acc = rows[0]["accuracy"].as_f64().unwrap();
    for r in &rows[1..] {
        let cuts: Vec<u64> = r["cuts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .collect();
        match r["cut"].as_str().unwrap() {
            // 2 blocks = 8 units: the MLP cut before the middle, and an even 4-stage plan.
            "mid" => assert_eq!(cuts, [3]),
            "all" => assert_eq!(cuts, [2, 4, 6]),
            other => panic!("unexpected cut {other}"),
        }
        if r["bits"] == 32 {
            assert_eq!(r["agreement"], 1.0, "{r}");
            assert_eq!(r["accuracy"].as_f64().unwrap(), fp32_acc, "{r}");
        }
    }
    // 1 bit on every cut of the plan moves some prediction away from fp32.
    let one_bit_all_naive = rows
        .iter()
        .find(|r| r["cut"] == "all" && r["bits"] == 1 && r["clip"] == "naive")
        .unwrap();
    assert!(
        one_bit_all_naive["agreement"].as_f64().unwrap() < 1.0,
        "{one_bit_all_naive}"
    );

    let table = eval_quant(
        &model,
        "fashion-mnist",
        dir.path(),
        &["--bits", "8", "--clip", "aciq", "--limit", "10"],
    );
    assert!(table.status.success(), "{}", stderr(&table));
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        text.starts_with("| model |") && text.contains("| vit | fashion-mnist | mid | aciq | 8 |"),
        "{text}"
    );
}

#[test]
fn minilm_on_bbc_two_bits_lose_to_eight() {
    let rows = json(&eval_quant(
        &minilm(),
        "bbc",
        &repo("data/bbc"),
        &[
            "--bits", "2,8", "--clip", "naive", "--limit", "12", "--json",
        ],
    ));
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["clip"], "fp32");
    assert_eq!(rows[0]["items"], 12);
    let cos = |i: usize| rows[i]["cosine_mean"].as_f64().unwrap();
    assert!((cos(0) - 1.0).abs() < 1e-9, "{}", rows[0]);
    assert!(cos(2) > 0.99, "8 bits: {}", rows[2]);
    assert!(
        cos(1) < cos(2) - 0.01,
        "2 bits {} vs 8 bits {}",
        rows[1],
        rows[2]
    );
    assert!(rows[1]["cosine_min"].as_f64().unwrap() <= cos(1));
    assert!(rows[1]["agreement"].as_f64().unwrap() <= rows[2]["agreement"].as_f64().unwrap());
}

#[test]
fn bad_dataset_and_missing_data_are_named() {
    let minilm = repo("data/minilm");
    let m = minilm.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().to_str().unwrap();
    let with_model = |extra: &[&'static str]| -> Vec<&str> {
        let mut args = vec!["eval-quant", "--model-dir", m];
        args.extend(extra);
        args
    };
    let cases: [(Vec<&str>, &[&str]); 6] = [
        (
            with_model(&["--dataset", "imagenet"]),
            &["imagenet", "fashion-mnist"],
        ),
        (
            with_model(&["--dataset", "bbc", "--data", "/nonexistent/bbc"]),
            &["/nonexistent/bbc"],
        ),
        (
            [
                with_model(&["--dataset", "fashion-mnist", "--data"]),
                vec![empty],
            ]
            .concat(),
            &["image classifier"],
        ),
        (with_model(&["--dataset", "bbc", "--bits", "17"]), &["17"]),
        (
            with_model(&["--dataset", "bbc", "--cut", "24", "--limit", "1"]),
            &["--cut 24"],
        ),
        (
            vec!["train-vit", "--data", "/nonexistent/fm", "--out", empty],
            &["/nonexistent/fm/train-images-idx3-ubyte.gz"],
        ),
    ];
    for (args, needles) in cases {
        fails_naming(&args, needles);
    }
}
