//! Bad input gets a clear error naming the problem, never a panic.

use quantpipe_model_shards::preprocess::ImagePreprocessor;
use quantpipe_model_shards::presets::preset_config;
use quantpipe_model_shards::weights::SeededRandomWeights;
use quantpipe_model_shards::{Boundary, ModelSource, Shard, UnitRange};
use tch::{Kind, Tensor};

fn write_config(dir: &std::path::Path, architecture: &str) {
    std::fs::write(
        dir.join("config.json"),
        format!(
            r#"{{"architectures": ["{architecture}"], "hidden_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 4, "intermediate_size": 64, "image_size": 16, "patch_size": 4}}"#
        ),
    )
    .unwrap();
}

#[test]
fn missing_safetensors_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "ViTModel");
    let err = ModelSource::open_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn truncated_safetensors_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "ViTModel");
    std::fs::write(
        dir.path().join("model.safetensors"),
        [8u8, 0, 0, 0, 0, 0, 0, 0, b'{'],
    )
    .unwrap();
    let source = ModelSource::open_dir(dir.path()).unwrap();
    let err = source
        .load_shard(UnitRange::new(1, 4))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("invalid safetensors") && err.contains("model.safetensors"),
        "{err}"
    );
}

#[test]
fn unknown_architecture_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "WhisperForConditionalGeneration");
    let err = ModelSource::open_dir(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("WhisperForConditionalGeneration") && err.contains("config.json"),
        "{err}"
    );
}

#[test]
fn unit_range_out_of_bounds_names_the_bounds() {
    let config = preset_config("deit-tiny-distilled-patch16-224").unwrap();
    let err = Shard::load(
        &config,
        UnitRange::new(40, 49),
        &SeededRandomWeights { seed: 1 },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("40..49") && err.contains("1..48"), "{err}");
}

#[test]
fn undecodable_image_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.png");
    std::fs::write(&path, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let config = preset_config("vit-base-patch16-224").unwrap();
    let pre = ImagePreprocessor::for_model(&config, None).unwrap();
    let err = pre.load_file(&path, &config).unwrap_err().to_string();
    assert!(err.contains("broken.png"), "{err}");
}

#[test]
fn wrong_boundary_shapes_are_rejected_naming_the_unit() {
    let config = preset_config("deit-tiny-distilled-patch16-224").unwrap();
    let shard = Shard::load(
        &config,
        UnitRange::new(2, 4),
        &SeededRandomWeights { seed: 1 },
    )
    .unwrap();
    // Unit 2 follows an attention unit: it needs two tensors.
    let one = Boundary::new(
        vec![Tensor::zeros(
            [1, 198, 192],
            (Kind::Float, tch::Device::Cpu),
        )],
        None,
    );
    let err = shard.forward(&one).unwrap_err().to_string();
    assert!(
        err.contains("unit 2") && err.contains("expected 2 tensor"),
        "{err}"
    );
    let wrong = Boundary::new(
        vec![
            Tensor::zeros([1, 198, 192], (Kind::Float, tch::Device::Cpu)),
            Tensor::zeros([1, 197, 192], (Kind::Float, tch::Device::Cpu)),
        ],
        None,
    );
    let err = shard.forward(&wrong).unwrap_err().to_string();
    assert!(
        err.contains("tensor 1") && err.contains("[1, 198, 192]"),
        "{err}"
    );
}

fn small_bert() -> quantpipe_model_shards::config::ModelConfig {
    let json = r#"{"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 32,
        "num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 64,
        "vocab_size": 50, "max_position_embeddings": 32}"#;
    quantpipe_model_shards::config::ModelConfig::from_json(json, None).unwrap()
}

fn tokens(ids: &[i64]) -> Boundary {
    let n = ids.len() as i64;
    Boundary::new(
        vec![Tensor::from_slice(ids).view([1, n])],
        Some(Tensor::ones([1, n], (Kind::Int64, tch::Device::Cpu))),
    )
}

#[test]
fn token_ids_outside_the_vocabulary_are_refused_naming_the_id() {
    let config = small_bert();
    let shard = Shard::load(
        &config,
        UnitRange::new(1, 4),
        &SeededRandomWeights { seed: 1 },
    )
    .unwrap();
    for (ids, named) in [
        (&[1i64, 50, 2][..], "50"),
        (&[-1, 3][..], "-1"),
        (&[i64::MAX][..], "9223372036854775807"),
    ] {
        let err = shard.forward(&tokens(ids)).unwrap_err().to_string();
        assert!(err.contains("vocabulary") && err.contains(named), "{err}");
    }
    assert!(shard.forward(&tokens(&[0, 49, 7])).is_ok());
}
