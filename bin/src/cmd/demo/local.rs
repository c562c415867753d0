//! Work the demo does on its own process before the fleet starts: the 1-NN reference
//! embeddings, the single-device fp32 baseline and the nodes' profiles.

use super::dataset::Dataset;
use super::devices::{self, DemoDevice, DEVICES};
use crate::eval::metrics::nearest_neighbour;
use anyhow::{Context, Result};
use quantpipe_model_shards::preprocess::TextTokenizer;
use quantpipe_model_shards::profile::profile_model;
use quantpipe_model_shards::{ModelSource, UnitRange};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The reference embeddings and what the fastest demo device does with the whole model at fp32.
pub struct Baseline {
    /// Embeddings of the training articles, the 1-NN reference.
    pub reference: Vec<Vec<f32>>,
    /// The device that ran the baseline.
    pub device: &'static DemoDevice,
    pub items_per_s: f64,
    /// 1-NN labels of the test articles.
    pub labels: Vec<usize>,
}

/// Embeds texts on this process (fp32, whole model), `ubatch` at a time; answers rows and the
/// forward seconds (emulated slowdown applied to the time, as the nodes do).
fn embed_local(
    source: &ModelSource,
    tok: &TextTokenizer,
    texts: &[String],
    ubatch: usize,
) -> Result<(Vec<Vec<f32>>, f64)> {
    let shard = source.load_shard(UnitRange::full(source.config().units()))?;
    let mut rows = Vec::with_capacity(texts.len());
    let mut secs = 0.0;
    for chunk in texts.chunks(ubatch) {
        let refs: Vec<&str> = chunk.iter().map(|s| s.as_str()).collect();
        let b = tok.encode_batch(&refs)?;
        let start = Instant::now();
        let out = tch::no_grad(|| shard.forward(&b))?;
        secs += start.elapsed().as_secs_f64();
        let m: Vec<Vec<f32>> = Vec::<Vec<f32>>::try_from(&out.tensors[0])?;
        rows.extend(m);
    }
    Ok((rows, secs))
}

/// Embeds the reference on two threads, then runs the test articles as the fastest demo
/// device would (its thread count, its slowdown applied to the time).
pub fn baseline(
    source: &ModelSource,
    tok: &TextTokenizer,
    data: &Dataset,
    ubatch: usize,
) -> Result<Baseline> {
    tch::set_num_threads(2);
    let (reference, _) = embed_local(source, tok, &data.train_texts, 32)?;
    let device = devices::fastest(&DEVICES).context("demo devices")?;
    tch::set_num_threads(device.threads);
    let (rows, secs) = embed_local(source, tok, &data.test_texts, ubatch)?;
    let items_per_s = data.test_texts.len() as f64 / (secs * device.slowdown);
    let labels = nearest_neighbour(&reference, &data.train_labels, &rows);
    Ok(Baseline {
        reference,
        device,
        items_per_s,
        labels,
    })
}

/// The demo devices' profiles: the file of each thread count, and what a microbatch through the
/// whole model takes at it (seconds, before any slowdown).
pub struct Profiles {
    pub files: BTreeMap<i32, PathBuf>,
    pub whole_model_s: BTreeMap<i32, f64>,
}

/// Profiles at each thread count of the demo devices, written to `out`.
///
/// Measured here one after the other on an otherwise idle machine (nodes profiling at once
/// would slow each other down); each node scales its thread count's profile by its emulated
/// slowdown.
pub fn measure_profiles(source: &ModelSource, ubatch: usize, out: &Path) -> Result<Profiles> {
    let mut profiles = Profiles {
        files: BTreeMap::new(),
        whole_model_s: BTreeMap::new(),
    };
    for threads in DEVICES.iter().map(|d| d.threads).collect::<BTreeSet<_>>() {
        tch::set_num_threads(threads);
        let p = tch::no_grad(|| profile_model(source, ubatch, 1, 3))?;
        let path = out.join(format!("profile-{threads}t.json"));
        std::fs::write(&path, serde_json::to_vec(&p)?)?;
        profiles.files.insert(threads, path);
        profiles
            .whole_model_s
            .insert(threads, p.units.iter().map(|u| u.time_s).sum());
    }
    Ok(profiles)
}
