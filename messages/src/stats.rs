//! A node's counters, as its stats queryable answers them: work done, messages dropped by
//! cause, and per link what was sent and how fast.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A node's counters, answered on [`Keys::stats`](crate::Keys::stats).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NodeStats {
    pub node: String,
    pub epoch: u64,
    pub stage: Option<u32>,
    pub microbatches: u64,
    pub items: u64,
    /// Seconds spent in forward passes (emulated slowdown included) and in the codec.
    pub busy_forward_s: f64,
    pub busy_codec_s: f64,
    /// CPU seconds of the forward passes on the forward worker's thread (the emulated
    /// slowdown's sleep is not CPU; with more than one intra-op thread the others' share is not
    /// counted), and of the whole process when the stats were taken: with one intra-op thread
    /// the difference is what the node spends outside the model (codec, transport, runtime).
    #[serde(default)]
    pub forward_cpu_s: f64,
    #[serde(default)]
    pub process_cpu_s: f64,
    pub dropped_malformed: u64,
    pub dropped_foreign_fleet: u64,
    pub dropped_stale_epoch: u64,
    pub dropped_wrong_stage: u64,
    pub failed: u64,
    /// Messages refused at admission, by reason (`token-out-of-range`, `wrong-shape`,
    /// `too-large`, ...): what a sender got wrong, whoever it was.
    #[serde(default)]
    pub refused: BTreeMap<String, u64>,
    /// Worker threads restarted after a panic.
    #[serde(default)]
    pub worker_restarts: u64,
    /// Per destination key: what was sent and the link's measured bandwidth; per source key:
    /// what arrived.
    pub links: Vec<LinkStats>,
    /// zenoh declarations the node holds now (each counted when declared and again when
    /// undeclared): subscribers (liveliness subscribers included), queryables and liveliness
    /// tokens. A node that re-plans without leaking comes back to the same counts.
    #[serde(default)]
    pub subscribers: u64,
    #[serde(default)]
    pub queryables: u64,
    #[serde(default)]
    pub liveliness_tokens: u64,
    /// Microbatches the stage holds now (admitted, not yet sent on nor lost), and the most it
    /// ever held at once: what a client sending faster than the pipeline carries piles up here.
    #[serde(default)]
    pub queued: u64,
    #[serde(default)]
    pub queued_high_water: u64,
    /// The most messages the outgoing link ever had sent and not acknowledged at once.
    #[serde(default)]
    pub link_in_flight_high_water: u64,
}

impl NodeStats {
    /// The counters accumulated since `earlier` (the same node's stats, taken before): what a
    /// measured run added. Links are this snapshot's.
    pub fn since(&self, earlier: &NodeStats) -> NodeStats {
        NodeStats {
            microbatches: self.microbatches.saturating_sub(earlier.microbatches),
            items: self.items.saturating_sub(earlier.items),
            busy_forward_s: self.busy_forward_s - earlier.busy_forward_s,
            busy_codec_s: self.busy_codec_s - earlier.busy_codec_s,
            forward_cpu_s: self.forward_cpu_s - earlier.forward_cpu_s,
            process_cpu_s: self.process_cpu_s - earlier.process_cpu_s,
            dropped_malformed: self
                .dropped_malformed
                .saturating_sub(earlier.dropped_malformed),
            dropped_foreign_fleet: self
                .dropped_foreign_fleet
                .saturating_sub(earlier.dropped_foreign_fleet),
            dropped_stale_epoch: self
                .dropped_stale_epoch
                .saturating_sub(earlier.dropped_stale_epoch),
            dropped_wrong_stage: self
                .dropped_wrong_stage
                .saturating_sub(earlier.dropped_wrong_stage),
            failed: self.failed.saturating_sub(earlier.failed),
            refused: self
                .refused
                .iter()
                .map(|(reason, &n)| {
                    let before = earlier.refused.get(reason).copied().unwrap_or(0);
                    (reason.clone(), n.saturating_sub(before))
                })
                .filter(|&(_, n)| n > 0)
                .collect(),
            worker_restarts: self.worker_restarts.saturating_sub(earlier.worker_restarts),
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LinkStats {
    pub to: String,
    pub messages: u64,
    pub bytes: u64,
    pub put_s: f64,
    /// The link's bandwidth while transmitting over the last window, from the receiver's
    /// acknowledgements, Mbit/s (0 before any).
    pub mbps: f64,
    /// Share of the last window the link was transmitting.
    pub utilisation: f64,
    /// Items acknowledged per second over the last window.
    pub items_per_s: f64,
    /// Mean bitwidth of the messages sent in the last window, and the policy's target rate
    /// (0 under `fixed`).
    pub bits_mean: f64,
    pub target_items_per_s: f64,
    /// Mean of receiver clock minus sender clock over received messages on this link (only
    /// meaningful where the clocks agree, e.g. loopback), seconds.
    pub transfer_s_mean: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_since_an_earlier_snapshot_hold_what_was_added_in_between() {
        let earlier = NodeStats {
            node: "n1".into(),
            microbatches: 2,
            busy_forward_s: 1.0,
            forward_cpu_s: 0.9,
            process_cpu_s: 5.0,
            failed: 1,
            ..Default::default()
        };
        let later = NodeStats {
            microbatches: 12,
            busy_forward_s: 6.0,
            forward_cpu_s: 5.4,
            process_cpu_s: 10.5,
            failed: 1,
            ..earlier.clone()
        };
        let d = later.since(&earlier);
        assert_eq!((d.node.as_str(), d.microbatches, d.failed), ("n1", 10, 0));
        assert!((d.busy_forward_s - 5.0).abs() < 1e-12);
        assert!((d.forward_cpu_s - 4.5).abs() < 1e-12);
        assert!((d.process_cpu_s - 5.5).abs() < 1e-12);
    }

    #[test]
    fn refusals_and_restarts_since_an_earlier_snapshot_hold_what_was_added_in_between() {
        let earlier = NodeStats {
            refused: BTreeMap::from([("too-large".into(), 2), ("wrong-shape".into(), 1)]),
            worker_restarts: 1,
            ..Default::default()
        };
        let later = NodeStats {
            refused: BTreeMap::from([
                ("too-large".into(), 2),
                ("wrong-shape".into(), 4),
                ("token-out-of-range".into(), 3),
            ]),
            worker_restarts: 3,
            ..Default::default()
        };
        let d = later.since(&earlier);
        assert_eq!(
            d.refused,
            BTreeMap::from([("token-out-of-range".into(), 3), ("wrong-shape".into(), 3)])
        );
        assert_eq!(d.worker_restarts, 2);
    }

    #[test]
    fn stats_from_a_node_without_declaration_or_queue_counters_read_as_zero() {
        let mut json = serde_json::to_value(NodeStats::default()).unwrap();
        let map = json.as_object_mut().unwrap();
        for field in [
            "subscribers",
            "queryables",
            "liveliness_tokens",
            "queued",
            "queued_high_water",
            "link_in_flight_high_water",
        ] {
            assert!(map.remove(field).is_some(), "{field}");
        }
        let read: NodeStats = serde_json::from_value(json).unwrap();
        assert_eq!(read, NodeStats::default());
    }

    #[test]
    fn stats_since_an_earlier_snapshot_keep_the_current_declarations_and_high_waters() {
        let earlier = NodeStats {
            subscribers: 9,
            queued_high_water: 1,
            ..Default::default()
        };
        let later = NodeStats {
            subscribers: 4,
            queued_high_water: 3,
            link_in_flight_high_water: 2,
            ..Default::default()
        };
        let d = later.since(&earlier);
        assert_eq!(
            (
                d.subscribers,
                d.queued_high_water,
                d.link_in_flight_high_water
            ),
            (4, 3, 2)
        );
    }

    #[test]
    fn stats_from_a_node_without_refusal_counters_read_as_none_refused() {
        let old = NodeStats::default();
        let mut json = serde_json::to_value(&old).unwrap();
        let map = json.as_object_mut().unwrap();
        map.remove("refused");
        map.remove("worker_restarts");
        let read: NodeStats = serde_json::from_value(json).unwrap();
        assert!(read.refused.is_empty());
        assert_eq!(read.worker_restarts, 0);
    }
}
