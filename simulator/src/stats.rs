//! Summary statistics of measured samples, shared by the simulator's and the client's reports.

use statrs::statistics::{Data, OrderStatistics};

/// The `p`-th percentile (0-100) of `samples` by nearest rank: the smallest sample with at least
/// `p`% of the samples at or below it, so a reported latency is always one that was measured.
/// statrs selects the order statistic; its own `percentile` interpolates (Hyndman-Fan R-8), which
/// would report values nobody measured, so the rank is chosen here. The samples may come in any
/// order; none gives 0.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let n = samples.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    Data::new(samples.to_vec()).order_statistic(rank.clamp(1, n))
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_picks_a_measured_sample() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[3.0], 90.0), 3.0);
        assert_eq!(percentile(&[], 90.0), 0.0);
    }

    #[test]
    fn unsorted_samples_give_the_sorted_answer() {
        let v = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(percentile(&v, 50.0), 3.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 100.0), 5.0);
    }
}
