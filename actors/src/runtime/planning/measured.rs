//! The fleet as it measures itself: every plan made while stages run (a re-plan, a take-over)
//! uses each node's measured outgoing bandwidth, the last window's estimate of its
//! BandwidthProbeActor read from its stats, in place of the nominal `device.bw_mbps` it
//! announced: a link that degraded since start-up is planned as it is now.

use quantpipe_messages::{DeviceInfo, Keys, NodeStats};
use std::collections::BTreeMap;

/// Each node's measured outgoing bandwidth, Mbit/s: the estimate of its link to the next stage
/// in its stats (links into its own stage are what arrived, not what it sent). Nodes without a
/// measured link (no acknowledgement yet, the last stage) are absent.
pub fn measured_bandwidths(stats: &[NodeStats], keys: &Keys) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in stats {
        let incoming = s.stage.map(|k| keys.stage_input(k));
        let best = s
            .links
            .iter()
            .filter(|l| Some(&l.to) != incoming.as_ref())
            .map(|l| l.mbps)
            .filter(|m| *m > 0.0 && m.is_finite())
            .reduce(f64::max);
        if let Some(m) = best {
            out.insert(s.node.clone(), m);
        }
    }
    out
}

/// `infos` with each node's announced bandwidth replaced by its measured one, where measured.
pub fn with_measured_bandwidth(
    infos: &[DeviceInfo],
    measured: &BTreeMap<String, f64>,
) -> Vec<DeviceInfo> {
    infos
        .iter()
        .map(|i| match measured.get(&i.name) {
            Some(&m) => {
                if (m - i.bw_mbps).abs() > 0.1 * i.bw_mbps {
                    tracing::info!(
                        "planning {} at its measured {m:.1} Mbit/s (announced {:.1})",
                        i.name,
                        i.bw_mbps
                    );
                }
                DeviceInfo {
                    bw_mbps: m,
                    ..i.clone()
                }
            }
            None => i.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::planning::plan_stages;
    use crate::runtime::planning::test_support::info;
    use quantpipe_messages::LinkStats;

    #[test]
    fn measured_bandwidth_is_a_nodes_outgoing_link_estimate() {
        let keys = Keys::new("f");
        let link = |to: String, mbps: f64| LinkStats {
            to,
            mbps,
            ..Default::default()
        };
        let stats = [
            NodeStats {
                node: "a".into(),
                stage: Some(0),
                links: vec![
                    link(keys.stage_input(0), 50.0),
                    link(keys.stage_in(1), 12.5),
                ],
                ..Default::default()
            },
            // The last stage: what arrived, and results nobody acknowledges.
            NodeStats {
                node: "b".into(),
                stage: Some(1),
                links: vec![link(keys.stage_in(1), 12.0), link(keys.result("c"), 0.0)],
                ..Default::default()
            },
        ];
        let measured = measured_bandwidths(&stats, &keys);
        assert_eq!(measured, BTreeMap::from([("a".to_string(), 12.5)]));
        let infos = with_measured_bandwidth(&[info("a", 1.0), info("b", 1.0)], &measured);
        assert_eq!((infos[0].bw_mbps, infos[1].bw_mbps), (12.5, 1000.0));
    }

    #[test]
    fn a_link_measured_slow_is_planned_slow() {
        let infos = [info("a", 1.0), info("b", 1.0)];
        let (_, nominal) = plan_stages(&infos, 8, 32).unwrap();
        // 8 x 1000 f32 per cut: 32 kB, 0.5 s at 0.5 Mbit/s, far above the 0.08 s of compute.
        let slow = with_measured_bandwidth(&infos, &BTreeMap::from([("a".to_string(), 0.5)]));
        let (stages, measured) = plan_stages(&slow, 8, 32).unwrap();
        assert!(measured < nominal, "{measured} vs {nominal}");
        assert!(
            stages.len() == 1 || stages.last().unwrap().node == "a",
            "a sends no cut over its slow link: {stages:?}"
        );
    }
}
