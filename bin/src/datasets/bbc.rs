//! BBC News (2,225 articles in 5 classes), as `scripts/setup` unpacks it: `DIR/<class>/*.txt`.
//!
//! The evaluation protocol (DESIGN.md): articles truncated to 128 tokens, a fixed seeded 80/20
//! split ([`Corpus::split`], seed [`SPLIT_SEED`]), test articles labelled by nearest neighbours
//! among the training articles' fp32 embeddings.

use super::split;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// Where `scripts/setup` puts the corpus, relative to the repository root.
pub const DEFAULT_DIR: &str = "data/bbc";

/// Seed of the published 80/20 split (eval-quant, run and demo all report on this split).
pub const SPLIT_SEED: u64 = 42;

/// Fraction of the articles that are training (kNN index) articles.
pub const TRAIN_FRACTION: f64 = 0.8;

/// One article with its class index (classes sorted by name).
pub struct Article {
    pub text: String,
    pub label: usize,
}

/// The corpus: class names (sorted) and every article, sorted by class then file name.
pub struct Corpus {
    pub classes: Vec<String>,
    pub articles: Vec<Article>,
}

impl Corpus {
    /// Reads every `DIR/<class>/*.txt` (invalid UTF-8 is replaced, as the corpus has a few
    /// Latin-1 bytes).
    pub fn load(dir: &Path) -> Result<Corpus> {
        let entries = std::fs::read_dir(dir).with_context(|| {
            format!(
                "cannot read BBC News folder {} (run scripts/setup, or pass --data DIR with \
                 one sub-folder of .txt files per class)",
                dir.display()
            )
        })?;
        let mut class_dirs: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        class_dirs.sort();
        let mut classes = Vec::new();
        let mut articles = Vec::new();
        for class_dir in class_dirs {
            let mut files: Vec<_> = std::fs::read_dir(&class_dir)
                .with_context(|| format!("cannot read {}", class_dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "txt"))
                .collect();
            if files.is_empty() {
                continue;
            }
            files.sort();
            let label = classes.len();
            classes.push(
                class_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            for file in files {
                let bytes = std::fs::read(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                articles.push(Article {
                    text: String::from_utf8_lossy(&bytes).into_owned(),
                    label,
                });
            }
        }
        if classes.len() < 2 {
            bail!(
                "{}: expected one sub-folder of .txt articles per class, found {} class(es)",
                dir.display(),
                classes.len()
            );
        }
        Ok(Corpus { classes, articles })
    }

    /// The fixed seeded 80/20 split, stratified by class ([`split::stratified`] over articles
    /// sorted by class, then file name): (training, test) article indices, each list in a seeded
    /// order that mixes the classes, so any prefix (`--limit`) is a fair sample.
    pub fn split(&self) -> (Vec<usize>, Vec<usize>) {
        let labels: Vec<usize> = self.articles.iter().map(|a| a.label).collect();
        split::stratified(&labels, self.classes.len(), TRAIN_FRACTION, SPLIT_SEED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_come_from_folders_and_missing_corpus_is_named() {
        let dir = tempfile::tempdir().unwrap();
        for (class, n) in [("sport", 5), ("tech", 5)] {
            std::fs::create_dir(dir.path().join(class)).unwrap();
            for i in 0..n {
                std::fs::write(dir.path().join(class).join(format!("{i}.txt")), "x").unwrap();
            }
        }
        let corpus = Corpus::load(dir.path()).unwrap();
        assert_eq!(corpus.classes, ["sport", "tech"]);
        let labels: Vec<usize> = corpus.articles.iter().map(|a| a.label).collect();
        assert_eq!(labels, [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
        let (train, test) = corpus.split();
        assert_eq!((train.len(), test.len()), (8, 2));

        let err = Corpus::load(&dir.path().join("nope"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
