//! Per-unit profiling: forward time, weight memory and what each unit emits, the inputs of the
//! planner (and of PipeEdge's `models.yml` / `device_types.yml`).

use crate::boundary::Boundary;
use crate::config::{Family, ModelConfig};
use crate::error::Result;
use crate::model::ModelSource;
use crate::shard::Shard;
use crate::units::UnitRange;
use crate::weights::{Init, WeightSource};
use serde::Serialize;
use std::cell::Cell;
use std::time::Instant;
use tch::{Kind, Tensor};

/// Sequence length of text models when profiling (the accuracy protocol truncates to 128 tokens).
pub const PROFILE_SEQ_LEN: i64 = 128;

/// One unit's measurements.
#[derive(Debug, Clone, Serialize)]
pub struct UnitProfile {
    pub unit: usize,
    /// Median forward time of one microbatch, seconds.
    pub time_s: f64,
    /// Parameters the unit holds (embeddings count with unit 1, the head with the last unit).
    pub parameters: usize,
    /// f32 bytes of those parameters.
    pub weight_bytes: usize,
    /// Activation elements the unit emits per item (summed over both tensors after u0/u2).
    pub output_elements: usize,
}

/// A whole model's per-unit profile at one microbatch size.
#[derive(Debug, Clone, Serialize)]
pub struct ModelProfile {
    pub model: String,
    pub ubatch: usize,
    pub threads: i32,
    /// Elements of one item's unit-1 input (pixels, or token ids).
    pub input_elements: usize,
    pub units: Vec<UnitProfile>,
}

impl ModelProfile {
    pub fn total_parameters(&self) -> usize {
        self.units.iter().map(|u| u.parameters).sum()
    }
}

/// Counts the parameters a shard asks for while passing them through.
struct CountingSource<'a> {
    inner: &'a dyn WeightSource,
    elements: Cell<usize>,
}

impl WeightSource for CountingSource<'_> {
    fn tensor(&self, name: &str, shape: &[i64], init: Init) -> Result<Tensor> {
        let t = self.inner.tensor(name, shape, init)?;
        self.elements.set(self.elements.get() + t.numel());
        Ok(t)
    }

    fn contains(&self, name: &str) -> bool {
        self.inner.contains(name)
    }
}

/// Loads `range` and reports how many parameters it holds.
pub fn load_counting(source: &ModelSource, range: UnitRange) -> Result<(Shard, usize)> {
    let weights = source.weights()?;
    let counting = CountingSource {
        inner: weights.as_ref(),
        elements: Cell::new(0),
    };
    let shard = Shard::load(source.config(), range, &counting)?;
    Ok((shard, counting.elements.get()))
}

/// A deterministic unit-1 input of `ubatch` items: random pixels, or random tokens of
/// [`PROFILE_SEQ_LEN`] (or the model's maximum) with a full mask.
pub fn sample_input(config: &ModelConfig, ubatch: i64, seed: i64) -> Boundary {
    tch::manual_seed(seed);
    match config.family {
        Family::Bert => {
            let t = PROFILE_SEQ_LEN.min(config.max_position_embeddings);
            let opts = (Kind::Int64, tch::Device::Cpu);
            let ids = Tensor::randint_low(1, config.vocab_size, [ubatch, t], opts);
            let mask = Tensor::ones([ubatch, t], opts);
            Boundary::new(vec![ids], Some(mask))
        }
        Family::Vit | Family::Deit => {
            let s = config.image_size;
            let pixels = Tensor::randn(
                [ubatch, config.num_channels, s, s],
                (Kind::Float, tch::Device::Cpu),
            );
            Boundary::new(vec![pixels], None)
        }
    }
}

/// Profiles every unit: each is loaded as its own one-unit shard (so its parameters are counted
/// exactly), then the units run in sequence on a sample microbatch, `warmup` untimed rounds and
/// `repeats` timed rounds; a unit's time is the median of its timed rounds.
pub fn profile_model(
    source: &ModelSource,
    ubatch: usize,
    warmup: usize,
    repeats: usize,
) -> Result<ModelProfile> {
    let config = source.config();
    let shards = (1..=config.units())
        .map(|u| load_counting(source, UnitRange::new(u, u)))
        .collect::<Result<Vec<_>>>()?;
    let input = sample_input(config, ubatch as i64, 0);
    let input_elements = input.tensors[0].numel() / ubatch;
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(repeats); shards.len()];
    let mut output_elements = vec![0; shards.len()];
    for round in 0..warmup + repeats.max(1) {
        let mut x = input.shallow_clone();
        for (i, (shard, _)) in shards.iter().enumerate() {
            let start = Instant::now();
            x = shard.forward(&x)?;
            let elapsed = start.elapsed().as_secs_f64();
            if round >= warmup {
                times[i].push(elapsed);
            }
            output_elements[i] = x.numel() / ubatch;
        }
    }
    let units = shards
        .iter()
        .enumerate()
        .map(|(i, (_, parameters))| UnitProfile {
            unit: i + 1,
            time_s: median(&mut times[i]),
            parameters: *parameters,
            weight_bytes: parameters * 4,
            output_elements: output_elements[i],
        })
        .collect();
    Ok(ModelProfile {
        model: source.name(),
        ubatch,
        threads: tch::get_num_threads(),
        input_elements,
        units,
    })
}

/// Median of the samples (0 when there are none).
pub fn median(samples: &mut [f64]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let n = samples.len();
    if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2.0
    }
}

/// Resident set size of this process in bytes (Linux `VmRSS`), or 0 where unknown.
pub fn resident_bytes() -> usize {
    proc_kb("/proc/self/status", "VmRSS:").map_or(0, |kb| kb as usize * 1024)
}

/// The `key` line of a Linux `/proc` file whose values are in kB (`/proc/meminfo`,
/// `/proc/self/status`), or None where the file or the line is missing.
pub fn proc_kb(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let value = text.lines().find_map(|l| l.strip_prefix(key))?;
    value.trim().trim_end_matches("kB").trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_kb_reads_a_kb_line_and_misses_quietly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status");
        std::fs::write(&path, "Name:\tquantpipe\nVmRSS:\t   1234 kB\n").unwrap();
        let path = path.to_str().unwrap();
        assert_eq!(proc_kb(path, "VmRSS:"), Some(1234));
        assert_eq!(proc_kb(path, "VmSwap:"), None);
        assert_eq!(proc_kb("/nonexistent/status", "VmRSS:"), None);
    }
}
