//! Scores of a quantized run against the labels and against the fp32 run.

use tch::{Kind, Tensor};

/// Row-wise argmax of `[N, C]` scores.
pub fn argmax(scores: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(scores.argmax(-1, false)).expect("argmax is int64")
}

/// Fraction of positions where `a` and `b` agree.
pub fn agreement<T: PartialEq>(a: &[T], b: &[T]) -> f64 {
    assert_eq!(a.len(), b.len(), "compared lists differ in length");
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len().max(1) as f64
}

/// Cosine similarity of each row of `a` `[N, D]` with the same row of `b`.
pub fn row_cosines(a: &Tensor, b: &Tensor) -> Vec<f64> {
    let a = a.to_kind(Kind::Double);
    let b = b.to_kind(Kind::Double);
    let dot = (&a * &b).sum_dim_intlist(1, false, Kind::Double);
    let norms = a.norm_scalaropt_dim(2, [1], false) * b.norm_scalaropt_dim(2, [1], false);
    Vec::<f64>::try_from(dot / norms.clamp_min(1e-300)).expect("f64 rows")
}

/// Nearest-neighbour classification by cosine similarity over a fixed set of labelled
/// embeddings (the fp32 embeddings of the training articles).
pub struct Knn {
    /// `[M, D]`, rows L2-normalised.
    index: Tensor,
    labels: Vec<usize>,
}

impl Knn {
    pub fn new(embeddings: &Tensor, labels: Vec<usize>) -> Knn {
        assert_eq!(
            embeddings.size()[0] as usize,
            labels.len(),
            "one label per embedding"
        );
        Knn {
            index: normalise(embeddings),
            labels,
        }
    }

    /// Label of each query row by majority vote of its `k` most similar index rows; a tie goes
    /// to the tied class whose member ranks nearest.
    pub fn classify(&self, queries: &Tensor, k: usize) -> Vec<usize> {
        let k = k.clamp(1, self.labels.len());
        let sims = normalise(queries).mm(&self.index.tr());
        let (_, idx) = sims.topk(k as i64, 1, true, true);
        let idx = Vec::<Vec<i64>>::try_from(idx).expect("int64 indices");
        idx.into_iter()
            .map(|neighbours| {
                let labels: Vec<usize> = neighbours
                    .iter()
                    .map(|&i| self.labels[i as usize])
                    .collect();
                let count = |c: usize| labels.iter().filter(|&&l| l == c).count();
                let best = labels.iter().map(|&c| count(c)).max().unwrap_or(0);
                // `labels` is in rank order, so the first class reaching the top count is the
                // tied class with the nearest member.
                *labels.iter().find(|&&c| count(c) == best).expect("k >= 1")
            })
            .collect()
    }
}

fn normalise(x: &Tensor) -> Tensor {
    x / x.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12)
}

/// Labels each query row by its nearest reference row (cosine similarity).
pub fn nearest_neighbour(
    reference: &[Vec<f32>],
    labels: &[usize],
    queries: &[Vec<f32>],
) -> Vec<usize> {
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    let ref_norms: Vec<f32> = reference.iter().map(|r| norm(r)).collect();
    queries
        .iter()
        .map(|q| {
            let qn = norm(q);
            let mut best = (f32::NEG_INFINITY, 0);
            for (i, r) in reference.iter().enumerate() {
                let dot: f32 = r.iter().zip(q).map(|(a, b)| a * b).sum();
                let sim = dot / (ref_norms[i] * qn);
                if sim > best.0 {
                    best = (sim, labels[i]);
                }
            }
            best.1
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_neighbour_uses_direction() {
        let reference = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        let got = nearest_neighbour(&reference, &[7, 9], &[vec![5.0, 1.0], vec![0.1, 0.2]]);
        assert_eq!(got, vec![7, 9]);
    }

    #[test]
    fn knn_votes_and_breaks_ties_by_rank() {
        let index =
            Tensor::from_slice(&[1.0f32, 0.0, 0.9, 0.1, 0.0, 1.0, 0.1, 0.9, 0.2, 0.8]).view([5, 2]);
        let knn = Knn::new(&index, vec![0, 0, 1, 1, 1]);
        let q = Tensor::from_slice(&[1.0f32, 0.05, 0.05, 1.0]).view([2, 2]);
        assert_eq!(knn.classify(&q, 1), [0, 1]);
        // k = 5: three 1s outvote two 0s even for the query next to the 0s.
        assert_eq!(knn.classify(&q, 5), [1, 1]);
        // k = 4 for query 0: neighbours 0, 0, 1, 1 tie; the nearest is a 0.
        assert_eq!(knn.classify(&q, 4)[0], 0);
    }

    #[test]
    fn cosine_and_agreement() {
        let a = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 2.0]).view([2, 2]);
        let b = Tensor::from_slice(&[2.0f32, 0.0, 1.0, 0.0]).view([2, 2]);
        let c = row_cosines(&a, &b);
        assert!((c[0] - 1.0).abs() < 1e-12 && c[1].abs() < 1e-12);
        assert_eq!(agreement(&[1, 2, 3, 4], &[1, 2, 0, 4]), 0.75);
        assert_eq!(argmax(&a), [0, 1]);
    }
}
