//! Every cut with every setting: the loop both data sets share. The fp32 model runs once, with
//! the first cut, and its outputs are the reference of every agreement; a data set only says how
//! outputs are scored ([`Scorer`]).

use super::pipeline::{Pipeline, Setting};
use super::table::{Row, Scores};
use super::CutSpec;
use anyhow::Result;
use quantpipe_model_shards::{Boundary, ModelSource, Shard};
use std::path::Path;
use tch::Tensor;

/// What `quantpipe eval-quant` asks of a data set.
pub struct Request<'a> {
    pub data: &'a Path,
    pub cuts: &'a [CutSpec],
    pub settings: &'a [Setting],
    /// At most this many test items.
    pub limit: Option<usize>,
    /// Items per forward pass.
    pub ubatch: usize,
}

impl Request<'_> {
    /// Fails on the first cut outside a model of `units` units, before any data is read.
    pub fn check_cuts(&self, units: usize) -> Result<()> {
        for spec in self.cuts {
            spec.cuts(units)?;
        }
        Ok(())
    }
}

/// How a data set scores model outputs.
pub trait Scorer {
    /// What the fp32 outputs give every other setting to agree with (e.g. its predictions).
    type Reference;
    fn reference(&self, fp32: &Tensor) -> Self::Reference;
    /// The scores of `outputs` (one row per test item), against the labels and `reference`.
    fn score(&self, outputs: &Tensor, reference: &Self::Reference) -> Scores;
}

/// The table rows of `dataset`: each cut of `request` with each setting, fp32 once, inputs from
/// `batches` (called once per cut).
pub fn sweep<S, I>(
    source: &ModelSource,
    dataset: &str,
    request: &Request,
    shard: &Shard,
    batches: impl Fn() -> I,
    scorer: &S,
) -> Result<Vec<Row>>
where
    S: Scorer,
    I: IntoIterator<Item = Result<Boundary>>,
{
    let units = source.config().units();
    let mut rows = Vec::new();
    let mut reference: Option<S::Reference> = None;
    for &spec in request.cuts {
        let pipeline = Pipeline::new(shard, spec.cuts(units)?)?;
        let todo = settings_to_run(request.settings, reference.is_some());
        let start = std::time::Instant::now();
        let outputs = pipeline.run(batches(), &todo)?;
        tracing::info!(dataset, cut = %spec, cuts = ?pipeline.cuts(), settings = todo.len(),
            seconds = start.elapsed().as_secs_f64(), "evaluated");
        if let Some(i) = todo.iter().position(|s| *s == Setting::Fp32) {
            reference = Some(scorer.reference(&outputs[i]));
        }
        let reference = reference.as_ref().expect("fp32 runs first");
        for (&setting, output) in todo.iter().zip(&outputs) {
            if setting == Setting::Fp32 && !request.settings.contains(&Setting::Fp32) {
                continue;
            }
            let fp32 = setting == Setting::Fp32;
            let (clip, bits) = Row::setting_columns(setting);
            rows.push(Row {
                model: source.name(),
                dataset: dataset.into(),
                cut: if fp32 { "-".into() } else { spec.to_string() },
                cuts: if fp32 {
                    vec![]
                } else {
                    pipeline.cuts().to_vec()
                },
                clip,
                bits,
                scores: scorer.score(output, reference),
            });
        }
    }
    Ok(rows)
}

/// The settings to run with the next cut: all asked for, with fp32 first when no reference
/// exists yet and never again once one does.
fn settings_to_run(asked: &[Setting], have_reference: bool) -> Vec<Setting> {
    let mut todo = asked.to_vec();
    if have_reference {
        todo.retain(|s| *s != Setting::Fp32);
    } else if !todo.contains(&Setting::Fp32) {
        todo.insert(0, Setting::Fp32);
    }
    todo
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantpipe_messages::clipping::ClipMethod;
    use quantpipe_messages::Bits;

    fn two_bits() -> Setting {
        Setting::Quant {
            clip: ClipMethod::Naive,
            bits: Bits::new(2).unwrap(),
        }
    }

    #[test]
    fn fp32_runs_first_with_the_first_cut_even_when_not_asked_for() {
        assert_eq!(
            settings_to_run(&[two_bits()], false),
            [Setting::Fp32, two_bits()]
        );
        assert_eq!(
            settings_to_run(&[Setting::Fp32, two_bits()], false),
            [Setting::Fp32, two_bits()]
        );
    }

    #[test]
    fn fp32_runs_once() {
        assert_eq!(
            settings_to_run(&[Setting::Fp32, two_bits()], true),
            [two_bits()]
        );
        assert_eq!(settings_to_run(&[two_bits()], true), [two_bits()]);
    }
}
