//! A run's labels (from `--labels`: one per line, a class index or one of the model's label
//! names) and the accuracy of a classifier's outputs against them.

use crate::datasets::class_labels::class_index;
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;

/// The labels file at `path`: one label per non-empty line, `items` of them; `names` are the
/// model's labels (id2label in index order; empty when it has none).
pub fn read_labels(path: &Path, items: usize, names: &[String]) -> Result<Vec<usize>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading labels {}", path.display()))?;
    parse_labels(&text, items, &path.display().to_string(), names)
}

/// Class indices, one per non-empty line of `text` (`name` says where it came from), the
/// first `items` of them; fewer than `items` is an error.
fn parse_labels(text: &str, items: usize, name: &str, names: &[String]) -> Result<Vec<usize>> {
    let labels: Vec<usize> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(items)
        .enumerate()
        .map(|(i, l)| class_index(l, names).map_err(|e| anyhow!("{name} line {}: {e}", i + 1)))
        .collect::<Result<_>>()?;
    if labels.len() != items {
        bail!("{} labels for {} items", labels.len(), items);
    }
    Ok(labels)
}

/// Share of output rows whose argmax is the item's label.
pub fn accuracy(outputs: &[Vec<f32>], labels: &[usize]) -> f64 {
    let correct = outputs
        .iter()
        .zip(labels)
        .filter(|(row, &l)| argmax(row) == l)
        .count();
    correct as f64 / labels.len() as f64
}

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_skip_blank_lines_and_keep_the_first_of_each_item() {
        assert_eq!(
            parse_labels("2\n\n 0 \n1\n3\n", 3, "l", &[]).unwrap(),
            vec![2, 0, 1]
        );
    }

    #[test]
    fn too_few_labels_or_a_non_index_is_an_error_that_names_the_line() {
        let short = parse_labels("1\n2\n", 3, "l", &[]).unwrap_err();
        assert_eq!(short.to_string(), "2 labels for 3 items");
        let bad = parse_labels("1\nsport\n", 2, "labels.txt", &[]).unwrap_err();
        assert_eq!(
            bad.to_string(),
            "labels.txt line 2: `sport` is not a class index"
        );
    }

    #[test]
    fn labels_may_name_the_model_s_classes() {
        let names = ["business", "sport"].map(String::from);
        assert_eq!(
            parse_labels("sport\n0\nBusiness\n", 3, "l", &names).unwrap(),
            vec![1, 0, 0]
        );
    }

    #[test]
    fn accuracy_compares_each_row_s_argmax_with_its_label() {
        let outputs = vec![vec![0.1, 0.9], vec![0.8, 0.2], vec![0.3, 0.7], vec![]];
        assert_eq!(accuracy(&outputs, &[1, 1, 1, 0]), 0.75);
    }
}
