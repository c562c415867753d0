//! BBC News articles (`data/bbc/<class>/*.txt`) and the accuracy protocol: a fixed seeded 80/20
//! split per class, test articles labelled by 1-nearest-neighbour (cosine) over the fp32
//! embeddings of the training articles.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// Seed of the split (fixed: every run and every report uses the same split).
pub const SPLIT_SEED: u64 = 42;

pub struct Article {
    pub class: usize,
    pub text: String,
}

pub struct Split {
    pub classes: Vec<String>,
    pub train: Vec<Article>,
    pub test: Vec<Article>,
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fisher-Yates with splitmix64: stable across platforms and crate versions.
fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut s = seed;
    for i in (1..v.len()).rev() {
        let j = (splitmix64(&mut s) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// Reads every class folder and splits each class 80/20; both halves are then interleaved by a
/// seeded shuffle so that any prefix mixes the classes.
pub fn load(dir: &Path) -> Result<Split> {
    let mut classes: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("listing BBC folder {} (see scripts/setup)", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    classes.sort();
    if classes.is_empty() {
        bail!("{} has no class folder", dir.display());
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (c, name) in classes.iter().enumerate() {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(name))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
        files.sort();
        shuffle(&mut files, SPLIT_SEED + c as u64);
        let n_train = (files.len() * 4).div_ceil(5);
        for (i, f) in files.iter().enumerate() {
            // Articles are read as bytes: a few BBC files are not valid UTF-8.
            let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            let text = String::from_utf8_lossy(&bytes)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let a = Article { class: c, text };
            if i < n_train {
                train.push(a);
            } else {
                test.push(a);
            }
        }
    }
    shuffle(&mut train, SPLIT_SEED);
    shuffle(&mut test, SPLIT_SEED + 1);
    Ok(Split {
        classes,
        train,
        test,
    })
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
    fn shuffle_is_a_fixed_permutation() {
        let mut a: Vec<u32> = (0..50).collect();
        let mut b = a.clone();
        shuffle(&mut a, 3);
        shuffle(&mut b, 3);
        assert_eq!(a, b);
        assert_ne!(a, (0..50).collect::<Vec<_>>());
        a.sort();
        assert_eq!(a, (0..50).collect::<Vec<_>>());
    }
}
