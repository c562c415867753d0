//! Per-stage rates between scrapes: items/s and busy share from the growth of each node's
//! cumulative counters ([`NodeStats`]) since the previous scrape.

use quantpipe_messages::NodeStats;
use std::collections::HashMap;
use std::time::Instant;

/// One stage's figures at a scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct StageFigures {
    pub node: String,
    pub stage: Option<u32>,
    /// Items and seconds of forward and codec work per second since the previous scrape
    /// (`None` at a node's first scrape: there is nothing to compare with yet).
    pub items_per_s: Option<f64>,
    pub busy_share: Option<f64>,
    /// Cumulative counters as the node reported them.
    pub items: u64,
    pub microbatches: u64,
}

/// Items/s and busy share between `earlier` and `now`, `dt_s` seconds apart; `None` when no
/// time passed or the node restarted (its counters went down).
pub fn rates(earlier: &NodeStats, now: &NodeStats, dt_s: f64) -> Option<(f64, f64)> {
    if dt_s <= 0.0 || now.items < earlier.items || now.microbatches < earlier.microbatches {
        return None;
    }
    let d = now.since(earlier);
    let busy = (d.busy_forward_s + d.busy_codec_s).max(0.0);
    Some((d.items as f64 / dt_s, (busy / dt_s).min(1.0)))
}

/// The previous scrape's stats of every node.
#[derive(Default)]
pub struct RateTracker {
    last: HashMap<String, (Instant, NodeStats)>,
}

impl RateTracker {
    /// Figures of `stats` taken at `at`, against each node's previous stats; remembers these.
    pub fn update(&mut self, at: Instant, stats: Vec<NodeStats>) -> Vec<StageFigures> {
        let figures = stats
            .iter()
            .map(|s| {
                let r = self.last.get(&s.node).and_then(|(t, prev)| {
                    rates(prev, s, at.saturating_duration_since(*t).as_secs_f64())
                });
                StageFigures {
                    node: s.node.clone(),
                    stage: s.stage,
                    items_per_s: r.map(|r| r.0),
                    busy_share: r.map(|r| r.1),
                    items: s.items,
                    microbatches: s.microbatches,
                }
            })
            .collect();
        self.last = stats
            .into_iter()
            .map(|s| (s.node.clone(), (at, s)))
            .collect();
        figures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stats(node: &str, items: u64, busy_s: f64) -> NodeStats {
        NodeStats {
            node: node.into(),
            stage: Some(0),
            items,
            microbatches: items / 4,
            busy_forward_s: busy_s,
            ..NodeStats::default()
        }
    }

    #[test]
    fn rates_are_growth_over_time() {
        let (items, busy) = rates(&stats("a", 10, 1.0), &stats("a", 30, 2.5), 2.0).unwrap();
        assert_eq!(items, 10.0);
        assert_eq!(busy, 0.75);
    }

    #[test]
    fn a_restarted_node_or_no_time_gives_no_rate() {
        assert!(rates(&stats("a", 30, 1.0), &stats("a", 10, 2.0), 1.0).is_none());
        assert!(rates(&stats("a", 10, 1.0), &stats("a", 10, 1.0), 0.0).is_none());
    }

    #[test]
    fn the_first_scrape_has_counters_but_no_rates_and_the_second_has_both() {
        let mut t = RateTracker::default();
        let t0 = Instant::now();
        let first = t.update(t0, vec![stats("a", 8, 0.5)]);
        assert_eq!(first[0].items, 8);
        assert_eq!(first[0].items_per_s, None);
        let second = t.update(t0 + Duration::from_secs(4), vec![stats("a", 16, 1.5)]);
        assert_eq!(second[0].items_per_s, Some(2.0));
        assert_eq!(second[0].busy_share, Some(0.25));
    }
}
