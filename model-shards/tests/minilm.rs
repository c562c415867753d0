//! Real pretrained weights: MiniLM-L6 sentence embeddings (fetched by scripts/setup into data/).

use quantpipe_model_shards::preprocess::TextTokenizer;
use quantpipe_model_shards::{ModelSource, UnitRange};
use std::path::PathBuf;

fn minilm_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/minilm");
    assert!(
        dir.join("model.safetensors").exists(),
        "{} is missing: run scripts/setup first",
        dir.display()
    );
    dir
}

#[test]
fn minilm_cosine_matches_published_value() {
    let dir = minilm_dir();
    let source = ModelSource::open_dir(&dir).unwrap();
    let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"), 128).unwrap();
    let input = tokenizer
        .encode_batch(&["A man is eating food.", "A man is eating a piece of bread."])
        .unwrap();
    let shard = source
        .load_shard(UnitRange::full(source.config().units()))
        .unwrap();
    let emb = shard.forward(&input).unwrap().tensors.remove(0);
    assert_eq!(emb.size(), [2, 384]);
    let cos = (emb.get(0) * emb.get(1))
        .sum(tch::Kind::Float)
        .double_value(&[]);
    assert!(
        (cos - 0.755).abs() <= 0.001,
        "cosine {cos}, published 0.7553"
    );
    // Embeddings are L2-normalised (the Normalize module of the sentence-transformers config).
    let norm = emb.get(0).norm().double_value(&[]);
    assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
}

#[test]
fn minilm_padding_does_not_change_an_embedding() {
    let dir = minilm_dir();
    let source = ModelSource::open_dir(&dir).unwrap();
    let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"), 128).unwrap();
    let shard = source.load_shard(UnitRange::full(24)).unwrap();
    let alone = tokenizer.encode_batch(&["short"]).unwrap();
    let padded = tokenizer
        .encode_batch(&[
            "short",
            "a much longer sentence that forces padding of the first",
        ])
        .unwrap();
    let a = shard.forward(&alone).unwrap().tensors.remove(0);
    let b = shard.forward(&padded).unwrap().tensors.remove(0);
    let diff = (a.get(0) - b.get(0)).abs().max().double_value(&[]);
    assert!(diff < 1e-5, "padding changed the embedding by {diff}");
}
