//! The `quantpipe` command line: bad input exits non-zero naming the problem, boundaries saved by
//! one range feed the next, and a shard's resident memory follows its share of the model.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn quantpipe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quantpipe"))
        .args(args)
        .output()
        .expect("run quantpipe")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn minilm() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/minilm");
    assert!(
        dir.exists(),
        "{} is missing: run scripts/setup first",
        dir.display()
    );
    dir
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "quantpipe failed: {}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

#[test]
fn missing_model_folder_exits_non_zero_naming_the_file() {
    let out = quantpipe(&[
        "infer",
        "--model-dir",
        "/nonexistent/model",
        "--input",
        "/etc/hostname",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/nonexistent/model/config.json"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unit_range_out_of_bounds_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "hello\n").unwrap();
    let m = minilm();
    let out = quantpipe(&[
        "infer",
        "--model-dir",
        m.to_str().unwrap(),
        "--units",
        "20..30",
        "--input",
        input.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("20..30") && stderr(&out).contains("1..24"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn undecodable_image_exits_non_zero_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("cat.jpg");
    std::fs::write(&img, b"\xff\xd8\xff\xe0 definitely not a jpeg").unwrap();
    let out = quantpipe(&[
        "infer",
        "--preset",
        "deit-tiny-distilled-patch16-224",
        "--input",
        img.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cat.jpg"), "{}", stderr(&out));
}

#[test]
fn saved_boundary_after_an_attention_unit_feeds_the_next_range() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(
        &input,
        "A man is eating food.\nA man is eating a piece of bread.\n",
    )
    .unwrap();
    let boundary = dir.path().join("cut.safetensors");
    let m = minilm();
    let m = m.to_str().unwrap();
    let whole = json(&quantpipe(&[
        "infer",
        "--model-dir",
        m,
        "--input",
        input.to_str().unwrap(),
        "--json",
    ]));
    // Unit 5 is the attention unit of block 2: two tensors cross the cut.
    let first = json(&quantpipe(&[
        "infer",
        "--model-dir",
        m,
        "--units",
        "1..5",
        "--input",
        input.to_str().unwrap(),
        "--save-boundary",
        boundary.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(first["boundary_shapes"].as_array().unwrap().len(), 2);
    let second = json(&quantpipe(&[
        "infer",
        "--model-dir",
        m,
        "--units",
        "6..24",
        "--input",
        boundary.to_str().unwrap(),
        "--json",
    ]));
    let (a, b) = (&whole["outputs"], &second["outputs"]);
    for (x, y) in a.as_array().unwrap().iter().zip(b.as_array().unwrap()) {
        for (p, q) in x.as_array().unwrap().iter().zip(y.as_array().unwrap()) {
            assert!((p.as_f64().unwrap() - q.as_f64().unwrap()).abs() < 1e-5);
        }
    }
}

fn weights_rss_mb(model: &Path, units: &str, image: &Path) -> f64 {
    let report = json(&quantpipe(&[
        "infer",
        "--model-dir",
        model.to_str().unwrap(),
        "--units",
        units,
        "--input",
        image.to_str().unwrap(),
        "--json",
    ]));
    report["weights_rss_mb"].as_f64().unwrap()
}

#[test]
fn quarter_shard_of_a_checkpoint_holds_about_a_quarter_of_its_weights() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("vit-base");
    let out = quantpipe(&[
        "export-preset",
        "--preset",
        "vit-base-patch16-224",
        "--out",
        model.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let image = dir.path().join("img.png");
    image::RgbImage::from_fn(224, 224, |x, y| image::Rgb([x as u8, y as u8, 7]))
        .save(&image)
        .unwrap();
    let whole = weights_rss_mb(&model, "1..48", &image);
    let quarter = weights_rss_mb(&model, "1..12", &image);
    // ViT-Base holds 346 MB of f32 weights; units 1..12 hold 22.0M of its 86.6M parameters.
    assert!(whole > 300.0, "whole model added only {whole} MB");
    let share = quarter / whole;
    assert!(
        (0.18..0.35).contains(&share),
        "quarter shard holds {share:.2} of the model ({quarter} of {whole} MB)"
    );
}

fn example(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../config/examples")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn plan_written_by_plan_is_simulated_at_its_predicted_rate() {
    let dir = tempfile::tempdir().unwrap();
    let plan_path = dir.path().join("plan.json");
    let (models, types, devices) = (
        example("models.yml"),
        example("device_types.yml"),
        example("devices.yml"),
    );
    let plan = json(&quantpipe(&[
        "plan",
        "--models",
        &models,
        "--device-types",
        &types,
        "--devices",
        &devices,
        "--model",
        "tiny-vit",
        "--ubatch",
        "8",
        "--out",
        plan_path.to_str().unwrap(),
        "--json",
    ]));
    let predicted = plan["throughput_items_per_s"].as_f64().unwrap();
    let sim = json(&quantpipe(&[
        "simulate",
        "--plan",
        plan_path.to_str().unwrap(),
        "--microbatches",
        "100",
        "--json",
    ]));
    let steady = sim["steady_throughput_items_per_s"].as_f64().unwrap();
    assert!(
        (steady - predicted).abs() / predicted < 0.01,
        "simulated {steady} vs predicted {predicted}"
    );
}

#[test]
fn plan_with_a_bad_bits_menu_exits_non_zero_naming_it() {
    let (models, types, devices) = (
        example("models.yml"),
        example("device_types.yml"),
        example("devices.yml"),
    );
    let out = quantpipe(&[
        "plan",
        "--models",
        &models,
        "--device-types",
        &types,
        "--devices",
        &devices,
        "--model",
        "tiny-vit",
        "--bits",
        "2,four",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("2,four"), "{}", stderr(&out));
}
