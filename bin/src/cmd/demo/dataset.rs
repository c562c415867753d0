//! The BBC News articles the demo runs: test items and the training items of the 1-NN reference.

use crate::datasets::bbc::{Article, Corpus};
use anyhow::Result;
use std::path::Path;

/// Texts and labels of the demo's test and reference articles.
pub struct Dataset {
    pub classes: Vec<String>,
    pub test_texts: Vec<String>,
    pub test_labels: Vec<usize>,
    pub train_texts: Vec<String>,
    pub train_labels: Vec<usize>,
}

impl Dataset {
    /// The first `limit` test and `train_limit` training articles of the corpus in `dir`.
    pub fn load(dir: &Path, limit: usize, train_limit: usize) -> Result<Dataset> {
        let corpus = Corpus::load(dir)?;
        let (train_idx, test_idx) = corpus.split();
        let pick = |idx: &[usize], n: usize| -> Vec<&Article> {
            idx.iter().take(n).map(|&i| &corpus.articles[i]).collect()
        };
        let test = pick(&test_idx, limit);
        let train = pick(&train_idx, train_limit);
        Ok(Dataset {
            classes: corpus.classes.clone(),
            test_texts: test.iter().map(|a| a.text.clone()).collect(),
            test_labels: test.iter().map(|a| a.label).collect(),
            train_texts: train.iter().map(|a| a.text.clone()).collect(),
            train_labels: train.iter().map(|a| a.label).collect(),
        })
    }
}
