//! The `quantpipe` command line: bad input exits non-zero naming the problem, boundaries saved by
//! one range feed the next, and a shard's resident memory follows its share of the model.

mod common;

use common::{fails_naming, json, minilm, quantpipe, repo, stderr};
use std::path::Path;

#[test]
fn missing_model_folder_exits_non_zero_naming_the_file() {
    fails_naming(
        &[
            "infer",
            "--model-dir",
            "/nonexistent/model",
            "--input",
            "/etc/hostname",
        ],
        &["/nonexistent/model/config.json"],
    );
}

#[test]
fn unit_range_out_of_bounds_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "hello\n").unwrap();
    let m = minilm();
    fails_naming(
        &[
            "infer",
            "--model-dir",
            m.to_str().unwrap(),
            "--units",
            "20..30",
            "--input",
            input.to_str().unwrap(),
        ],
        &["20..30", "1..24"],
    );
}

#[test]
fn undecodable_image_exits_non_zero_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("cat.jpg");
    std::fs::write(&img, b"\xff\xd8\xff\xe0 definitely not a jpeg").unwrap();
    fails_naming(
        &[
            "infer",
            "--preset",
            "deit-tiny-distilled-patch16-224",
            "--input",
            img.to_str().unwrap(),
        ],
        &["cat.jpg"],
    );
}

/// The JSON report of `quantpipe infer` on `input`, over `units` (default: all) of `model`.
fn infer(model: &Path, units: Option<&str>, input: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["infer", "--model-dir", model.to_str().unwrap()];
    if let Some(units) = units {
        args.extend(["--units", units]);
    }
    args.extend(["--input", input.to_str().unwrap(), "--json"]);
    args.extend(extra);
    json(&quantpipe(&args))
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
    let whole = infer(&m, None, &input, &[]);
    // Unit 5 is the attention unit of block 2: two tensors cross the cut.
    let first = infer(
        &m,
        Some("1..5"),
        &input,
        &["--save-boundary", boundary.to_str().unwrap()],
    );
    assert_eq!(first["boundary_shapes"].as_array().unwrap().len(), 2);
    let second = infer(&m, Some("6..24"), &boundary, &[]);
    let (a, b) = (&whole["outputs"], &second["outputs"]);
    for (x, y) in a.as_array().unwrap().iter().zip(b.as_array().unwrap()) {
        for (p, q) in x.as_array().unwrap().iter().zip(y.as_array().unwrap()) {
            assert!((p.as_f64().unwrap() - q.as_f64().unwrap()).abs() < 1e-5);
        }
    }
}

fn weights_rss_mb(model: &Path, units: &str, image: &Path) -> f64 {
    infer(model, Some(units), image, &[])["weights_rss_mb"]
        .as_f64()
        .unwrap()
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
    repo("config/examples").join(name).display().to_string()
}

/// `quantpipe plan` of the example fleet's tiny-vit, followed by `extra`.
fn plan_example(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["plan", "--model", "tiny-vit"].map(String::from).into();
    for (flag, file) in [
        ("--models", "models.yml"),
        ("--device-types", "device_types.yml"),
        ("--devices", "devices.yml"),
    ] {
        args.extend([flag.to_string(), example(file)]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn plan_written_by_plan_is_simulated_at_its_predicted_rate() {
    let dir = tempfile::tempdir().unwrap();
    let plan_path = dir.path().join("plan.json");
    let plan = json(&quantpipe(&plan_example(&[
        "--ubatch",
        "8",
        "--out",
        plan_path.to_str().unwrap(),
        "--json",
    ])));
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
    fails_naming(&plan_example(&["--bits", "2,four"]), &["2,four"]);
}
