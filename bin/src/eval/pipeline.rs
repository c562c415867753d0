//! Running a model with quantized cuts, the fp32 prefix computed once per batch.

use super::quantize::through_wire;
use anyhow::{bail, Result};
use quantpipe_messages::clipping::ClipMethod;
use quantpipe_messages::Bits;
use quantpipe_model_shards::{Boundary, Shard, UnitRange};
use tch::Tensor;

/// One column setting of the table: the unquantized model, or a (clip, bits) pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Setting {
    Fp32,
    Quant { clip: ClipMethod, bits: Bits },
}

impl Setting {
    /// `fp32` first, then every (clip, bits) pair, clips outermost.
    pub fn grid(clips: &[ClipMethod], bits: &[Bits]) -> Vec<Setting> {
        std::iter::once(Setting::Fp32)
            .chain(
                clips
                    .iter()
                    .flat_map(|&clip| bits.iter().map(move |&bits| Setting::Quant { clip, bits })),
            )
            .collect()
    }
}

/// A whole model (one shard of all its units) with activations quantized after `cuts`.
pub struct Pipeline<'a> {
    shard: &'a Shard,
    cuts: Vec<usize>,
}

impl<'a> Pipeline<'a> {
    /// `cuts` must be ascending unit numbers inside the model; `shard` must hold every unit.
    pub fn new(shard: &'a Shard, cuts: Vec<usize>) -> Result<Self> {
        let units = shard.config().units();
        if shard.range() != UnitRange::full(units) {
            bail!(
                "the evaluation needs the whole model, got units {}",
                shard.range()
            );
        }
        if cuts.is_empty()
            || cuts.windows(2).any(|w| w[0] >= w[1])
            || cuts.iter().any(|&k| k == 0 || k >= units)
        {
            bail!(
                "cuts {cuts:?} are not ascending unit numbers in 1..{}",
                units - 1
            );
        }
        Ok(Pipeline { shard, cuts })
    }

    pub fn cuts(&self) -> &[usize] {
        &self.cuts
    }

    /// Units 1..=first cut at fp32: what every setting starts from.
    pub fn prefix(&self, input: &Boundary) -> Result<Boundary> {
        Ok(self
            .shard
            .forward_units(input, UnitRange::new(1, self.cuts[0]))?)
    }

    /// The model's output for `setting`, from a [`Pipeline::prefix`] output: at each cut the
    /// boundary goes through the wire (unless fp32), then the units up to the next cut run.
    pub fn finish(&self, prefix: &Boundary, setting: Setting) -> Result<Tensor> {
        let units = self.shard.config().units();
        let mut x = prefix.shallow_clone();
        for (i, &cut) in self.cuts.iter().enumerate() {
            if let Setting::Quant { clip, bits } = setting {
                x = through_wire(&x, cut, bits, clip)?;
            }
            let end = self.cuts.get(i + 1).map_or(units, |&next| next);
            x = self.shard.forward_units(&x, UnitRange::new(cut + 1, end))?;
        }
        Ok(x.tensors.remove(0))
    }

    /// Outputs of every setting over all `batches`, concatenated along the batch dimension:
    /// one `[N, ...]` tensor per setting, in the order of `settings`.
    pub fn run<I>(&self, batches: I, settings: &[Setting]) -> Result<Vec<Tensor>>
    where
        I: IntoIterator<Item = Result<Boundary>>,
    {
        let mut outputs: Vec<Vec<Tensor>> = settings.iter().map(|_| Vec::new()).collect();
        for batch in batches {
            let cached = self.prefix(&batch?)?;
            for (out, &setting) in outputs.iter_mut().zip(settings) {
                out.push(self.finish(&cached, setting)?);
            }
        }
        outputs
            .into_iter()
            .map(|parts| {
                if parts.is_empty() {
                    bail!("no items to evaluate");
                }
                Ok(Tensor::cat(&parts, 0))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantpipe_model_shards::weights::SeededRandomWeights;
    use quantpipe_model_shards::ModelConfig;
    use tch::{Device, Kind};

    /// A 3-block ViT with seeded random weights (accuracy does not matter here).
    fn tiny() -> Shard {
        let c = ModelConfig::from_json(
            r#"{"architectures":["ViTForImageClassification"],"hidden_size":32,
                "num_hidden_layers":3,"num_attention_heads":4,"intermediate_size":64,
                "image_size":8,"patch_size":4,"num_channels":1,"num_labels":5}"#,
            None,
        )
        .unwrap();
        Shard::load(
            &c,
            UnitRange::full(c.units()),
            &SeededRandomWeights { seed: 7 },
        )
        .unwrap()
    }

    #[test]
    fn fp32_and_raw_bits_equal_the_plain_model_and_few_bits_do_not() {
        let shard = tiny();
        let c = shard.config().clone();
        tch::manual_seed(5);
        let x = Tensor::randn(
            [2, c.num_channels, c.image_size, c.image_size],
            (Kind::Float, Device::Cpu),
        );
        let input = || Ok(Boundary::new(vec![x.copy()], None));
        let plain = shard.forward(&input().unwrap()).unwrap().tensors.remove(0);
        let units = c.units();
        let p = Pipeline::new(&shard, vec![3, units / 2, units - 2]).unwrap();
        let bits = |b| Bits::new(b).unwrap();
        let settings = [
            Setting::Fp32,
            Setting::Quant {
                clip: ClipMethod::Naive,
                bits: Bits::RAW,
            },
            Setting::Quant {
                clip: ClipMethod::Naive,
                bits: bits(2),
            },
        ];
        let out = p.run([input(), input()], &settings).unwrap();
        assert_eq!(out[0].size()[0], 4);
        assert!(out[0].narrow(0, 0, 2).equal(&plain));
        assert!(out[1].equal(&out[0]));
        assert!(!out[2].allclose(&out[0], 1e-3, 1e-3, false));
    }

    #[test]
    fn bad_cuts_are_rejected() {
        let shard = tiny();
        assert!(Pipeline::new(&shard, vec![5, 5]).is_err());
        assert!(Pipeline::new(&shard, vec![12]).is_err());
        assert!(Pipeline::new(&shard, vec![11]).is_ok());
    }
}
