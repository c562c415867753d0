//! Triton's classification extension: an output answered as its top k classes, each a BYTES
//! element "score:index:label" (label left out when the model has none).

/// Indices of the `k` largest `values`, largest first; equal values keep index order.
pub fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    // Stable: equal scores keep the lower index first. NaN sorts as the smallest.
    order.sort_by(|&a, &b| {
        let (x, y) = (values[a], values[b]);
        match (x.is_nan(), y.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ => y.total_cmp(&x),
        }
    });
    order.truncate(k);
    order
}

/// The top `k` classes of one item's `values`, as Triton writes them.
pub fn classes(values: &[f32], k: usize, labels: &[String]) -> Vec<String> {
    top_k(values, k)
        .into_iter()
        .map(|i| match labels.get(i) {
            Some(label) => format!("{:.6}:{i}:{label}", values[i]),
            None => format!("{:.6}:{i}", values[i]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_come_first_and_ties_keep_index_order() {
        assert_eq!(top_k(&[0.1, 0.9, 0.5, 0.9], 3), vec![1, 3, 2]);
        assert_eq!(top_k(&[1.0, 2.0], 5), vec![1, 0]);
    }

    #[test]
    fn nan_is_never_a_top_class() {
        assert_eq!(top_k(&[f32::NAN, -1.0], 1), vec![1]);
    }

    #[test]
    fn classes_are_score_index_label_strings() {
        let labels = vec!["cat".to_string(), "dog".to_string()];
        assert_eq!(classes(&[0.25, 1.5], 1, &labels), vec!["1.500000:1:dog"]);
        assert_eq!(
            classes(&[0.25, 1.5], 2, &[]),
            vec!["1.500000:1", "0.250000:0"]
        );
    }
}
