//! BBC News through a sentence-embedding model (MiniLM), labelled by nearest neighbours.
//!
//! Protocol (DESIGN.md): articles truncated to [`MAX_TOKENS`] tokens; the fixed seeded 80/20
//! split of [`crate::datasets::bbc`]; each test article takes the label of its nearest training
//! article (cosine over fp32 embeddings; 5-NN majority reported beside it). Quantization only
//! touches the test articles' forward passes: the kNN index is always the fp32 one.

use super::metrics::{agreement, row_cosines, Knn};
use super::sweep::{sweep, Request, Scorer};
use super::table::{Row, Scores};
use crate::datasets::bbc::Corpus;
use anyhow::{bail, Context, Result};
use quantpipe_model_shards::preprocess::TextTokenizer;
use quantpipe_model_shards::{Boundary, Family, ModelSource, Shard, UnitRange};
use tch::Tensor;

/// Tokens kept per article.
pub const MAX_TOKENS: usize = 128;

/// Rows for every cut and setting. `limit` keeps at most N test articles and 4N training
/// articles (the first of each list of the split), preserving the 80/20 ratio.
pub fn evaluate(source: &ModelSource, request: &Request) -> Result<Vec<Row>> {
    let config = source.config();
    if config.family != Family::Bert || config.head.is_classifier() {
        bail!(
            "--dataset bbc needs a sentence-embedding text model (BERT with mean pooling, e.g. \
             MiniLM), but {} is {}",
            source.name(),
            config.architecture
        );
    }
    request.check_cuts(config.units())?;
    let dir = source
        .dir()
        .context("--dataset bbc needs --model-dir (its tokenizer.json)")?;
    let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"), MAX_TOKENS)?;
    let corpus = Corpus::load(request.data)?;
    let (mut train, mut test) = corpus.split();
    if let Some(n) = request.limit {
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
    let batches = |items: &[String]| -> Vec<Result<Boundary>> {
        items
            .chunks(request.ubatch)
            .map(|chunk| {
                let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                Ok(tokenizer.encode_batch(&refs)?)
            })
            .collect()
    };

    let shard = source.load_shard(UnitRange::full(config.units()))?;
    let start = std::time::Instant::now();
    let index = embed(&shard, batches(&texts(&train)))?;
    tracing::info!(
        articles = train.len(),
        seconds = start.elapsed().as_secs_f64(),
        "bbc: fp32 training embeddings"
    );
    let scorer = NearestArticle {
        knn: Knn::new(&index, labels(&train)),
        labels: labels(&test),
    };
    let test_texts = texts(&test);
    sweep(
        source,
        "bbc",
        request,
        &shard,
        || batches(&test_texts),
        &scorer,
    )
}

/// fp32 embeddings of every batch, concatenated.
fn embed(shard: &Shard, batches: Vec<Result<Boundary>>) -> Result<Tensor> {
    let _guard = tch::no_grad_guard();
    let mut parts = Vec::new();
    for b in batches {
        parts.push(shard.forward(&b?)?.tensors.remove(0));
    }
    Ok(Tensor::cat(&parts, 0))
}

/// Labels test articles by their nearest training articles; compares embeddings with fp32's.
struct NearestArticle {
    knn: Knn,
    /// Labels of the test articles.
    labels: Vec<usize>,
}

impl Scorer for NearestArticle {
    /// The fp32 embeddings and their 1-NN labels.
    type Reference = (Tensor, Vec<usize>);

    fn reference(&self, fp32: &Tensor) -> Self::Reference {
        (fp32.shallow_clone(), self.knn.classify(fp32, 1))
    }

    fn score(&self, embeddings: &Tensor, (fp32, fp32_pred): &Self::Reference) -> Scores {
        let pred = self.knn.classify(embeddings, 1);
        let cosines = row_cosines(embeddings, fp32);
        Scores {
            items: self.labels.len(),
            accuracy: agreement(&pred, &self.labels),
            agreement: agreement(&pred, fp32_pred),
            accuracy_k5: Some(agreement(&self.knn.classify(embeddings, 5), &self.labels)),
            cosine_mean: Some(cosines.iter().sum::<f64>() / cosines.len() as f64),
            cosine_min: Some(cosines.iter().copied().fold(f64::INFINITY, f64::min)),
        }
    }
}
