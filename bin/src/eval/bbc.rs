//! BBC News through a sentence-embedding model (MiniLM), labelled by nearest neighbours.
//!
//! Protocol (DESIGN.md): articles truncated to [`MAX_TOKENS`] tokens; the fixed seeded 80/20
//! split of [`crate::datasets::bbc`]; each test article takes the label of its nearest training
//! article (cosine over fp32 embeddings; 5-NN majority reported beside it). Quantization only
//! touches the test articles' forward passes: the kNN index is always the fp32 one.

use super::metrics::{agreement, row_cosines, Knn};
use super::pipeline::{Pipeline, Setting};
use super::table::Row;
use super::CutSpec;
use crate::datasets::bbc::Corpus;
use anyhow::{bail, Context, Result};
use quantpipe_model_shards::preprocess::TextTokenizer;
use quantpipe_model_shards::{Family, ModelSource, UnitRange};
use std::path::Path;
use tch::Tensor;

/// Tokens kept per article.
pub const MAX_TOKENS: usize = 128;

/// Rows for every cut and setting. `limit` keeps at most N test articles and 4N training
/// articles (the first of each list of the split), preserving the 80/20 ratio.
pub fn evaluate(
    source: &ModelSource,
    data: &Path,
    cuts: &[CutSpec],
    settings: &[Setting],
    limit: Option<usize>,
    ubatch: usize,
) -> Result<Vec<Row>> {
    let config = source.config();
    if config.family != Family::Bert || config.head.is_classifier() {
        bail!(
            "--dataset bbc needs a sentence-embedding text model (BERT with mean pooling, e.g. \
             MiniLM), but {} is {}",
            source.name(),
            config.architecture
        );
    }
    // Bad cuts are reported before any data is read.
    for spec in cuts {
        spec.cuts(config.units())?;
    }
    let dir = source
        .dir()
        .context("--dataset bbc needs --model-dir (its tokenizer.json)")?;
    let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"), MAX_TOKENS)?;
    let corpus = Corpus::load(data)?;
    let (mut train, mut test) = corpus.split();
    if let Some(n) = limit {
        test.truncate(n.max(1));
        train.truncate(4 * n.max(1));
    }
    let texts = |ids: &[usize]| -> Vec<String> {
        ids.iter()
            .map(|&i| corpus.articles[i].text.clone())
            .collect()
    };
    let labels =
        |ids: &[usize]| -> Vec<usize> { ids.iter().map(|&i| corpus.articles[i].label).collect() };
    let (train_texts, test_texts) = (texts(&train), texts(&test));
    let test_labels = labels(&test);
    let batches = |items: &[String]| -> Vec<Result<quantpipe_model_shards::Boundary>> {
        items
            .chunks(ubatch)
            .map(|chunk| {
                let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                Ok(tokenizer.encode_batch(&refs)?)
            })
            .collect()
    };

    let shard = source.load_shard(UnitRange::full(config.units()))?;
    let start = std::time::Instant::now();
    let index = {
        let _guard = tch::no_grad_guard();
        let mut parts = Vec::new();
        for b in batches(&train_texts) {
            parts.push(shard.forward(&b?)?.tensors.remove(0));
        }
        Tensor::cat(&parts, 0)
    };
    tracing::info!(
        articles = train.len(),
        seconds = start.elapsed().as_secs_f64(),
        "bbc: fp32 training embeddings"
    );
    let knn = Knn::new(&index, labels(&train));

    let mut rows = Vec::new();
    let mut fp32: Option<(Tensor, Vec<usize>)> = None;
    for &spec in cuts {
        let pipeline = Pipeline::new(&shard, spec.cuts(config.units())?)?;
        let mut todo: Vec<Setting> = settings.to_vec();
        if fp32.is_some() {
            todo.retain(|s| *s != Setting::Fp32);
        } else if !todo.contains(&Setting::Fp32) {
            todo.insert(0, Setting::Fp32);
        }
        let start = std::time::Instant::now();
        let outputs = pipeline.run(batches(&test_texts), &todo)?;
        tracing::info!(cut = %spec, cuts = ?pipeline.cuts(), settings = todo.len(),
            seconds = start.elapsed().as_secs_f64(), "bbc evaluated");
        for (&setting, emb) in todo.iter().zip(&outputs) {
            let pred = knn.classify(emb, 1);
            if setting == Setting::Fp32 {
                fp32 = Some((emb.shallow_clone(), pred.clone()));
                if !settings.contains(&Setting::Fp32) {
                    continue;
                }
            }
            let (reference, reference_pred) = fp32.as_ref().expect("fp32 runs first");
            let cosines = row_cosines(emb, reference);
            let (clip, bits) = Row::setting_columns(setting);
            let is_fp32 = setting == Setting::Fp32;
            rows.push(Row {
                model: source.name(),
                dataset: "bbc".into(),
                cut: if is_fp32 {
                    "-".into()
                } else {
                    spec.to_string()
                },
                cuts: if is_fp32 {
                    vec![]
                } else {
                    pipeline.cuts().to_vec()
                },
                clip,
                bits,
                items: test_labels.len(),
                accuracy: agreement(&pred, &test_labels),
                agreement: agreement(&pred, reference_pred),
                accuracy_k5: Some(agreement(&knn.classify(emb, 5), &test_labels)),
                cosine_mean: Some(cosines.iter().sum::<f64>() / cosines.len() as f64),
                cosine_min: Some(cosines.iter().copied().fold(f64::INFINITY, f64::min)),
            });
        }
    }
    Ok(rows)
}
