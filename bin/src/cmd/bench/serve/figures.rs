//! Figures of one load level from its samples, as plain functions.

use super::load::Sample;
use quantpipe_actors::runtime::client::percentile;
use serde::Serialize;
use std::collections::BTreeMap;

/// One load level: `clients` concurrent clients for the measured span.
#[derive(Debug, Serialize, PartialEq)]
pub struct Level {
    pub clients: usize,
    /// Answered items per second over the measured span (after the warm-up).
    pub items_per_s: f64,
    /// `items_per_s` over the batch client's rate on the same pipeline.
    pub of_batch_client: f64,
    pub latency_p50_s: f64,
    pub latency_p99_s: f64,
    /// Requests by HTTP status over the whole level.
    pub requests: BTreeMap<u16, usize>,
    /// Mean items per microbatch over the plan's ubatch.
    pub mean_fill: f64,
}

/// The level's figures: rates and latencies of the answers that arrived between `warmup_s`
/// and `end_s` (answered requests only: status 200).
pub fn level(
    clients: usize,
    samples: &[Sample],
    warmup_s: f64,
    end_s: f64,
    batch_items_per_s: f64,
    mean_fill: f64,
) -> Level {
    let measured: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.status == 200 && s.done_s >= warmup_s && s.done_s <= end_s)
        .collect();
    let span = (end_s - warmup_s).max(f64::MIN_POSITIVE);
    let items_per_s = measured.len() as f64 / span;
    let mut latencies: Vec<f64> = measured.iter().map(|s| s.latency_s).collect();
    latencies.sort_by(f64::total_cmp);
    let mut requests = BTreeMap::new();
    for s in samples {
        *requests.entry(s.status).or_insert(0) += 1;
    }
    Level {
        clients,
        items_per_s,
        of_batch_client: if batch_items_per_s > 0.0 {
            items_per_s / batch_items_per_s
        } else {
            0.0
        },
        latency_p50_s: percentile(&latencies, 50.0),
        latency_p99_s: percentile(&latencies, 99.0),
        requests,
        mean_fill,
    }
}

/// The steady-state rate of a batch run: items answered between its first and last result
/// (`arrivals_s`, each result one microbatch of `ubatch` items), so the pipeline's fill and
/// drain are left out.
pub fn steady_rate(arrivals_s: &[f64], ubatch: usize) -> f64 {
    match (arrivals_s.first(), arrivals_s.last()) {
        (Some(first), Some(last)) if last > first => {
            ((arrivals_s.len() - 1) * ubatch) as f64 / (last - first)
        }
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(done_s: f64, latency_s: f64, status: u16) -> Sample {
        Sample {
            done_s,
            latency_s,
            status,
        }
    }

    #[test]
    fn answers_before_the_warm_up_and_refusals_are_not_counted_as_throughput() {
        let samples = [
            sample(0.5, 0.5, 200),
            sample(1.5, 0.1, 200),
            sample(2.0, 0.3, 200),
            sample(2.5, 0.2, 429),
        ];
        let l = level(2, &samples, 1.0, 3.0, 2.0, 0.5);
        assert_eq!(l.items_per_s, 1.0);
        assert_eq!(l.of_batch_client, 0.5);
        assert_eq!(l.latency_p50_s, 0.1);
        assert_eq!(l.latency_p99_s, 0.3);
        assert_eq!(l.requests[&200], 3);
        assert_eq!(l.requests[&429], 1);
    }

    #[test]
    fn the_batch_rate_leaves_out_the_first_result_and_counts_ubatch_items_per_result() {
        assert_eq!(steady_rate(&[1.0, 2.0, 3.0], 8), 8.0);
        assert_eq!(steady_rate(&[1.0], 8), 0.0);
        assert_eq!(steady_rate(&[], 8), 0.0);
    }
}
