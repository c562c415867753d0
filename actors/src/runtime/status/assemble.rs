//! From what a leader saw (tokens, plan, device infos, stats) to the [`FleetStatus`] it
//! answers: plain data in, plain data out.

use quantpipe_messages::{
    DeviceInfo, FleetStatus, Keys, LinkStatus, NodeDevice, NodeStats, NodeStatus, PlanInfo,
};
use std::collections::BTreeSet;

/// What a leader saw of its fleet at one moment.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub leader: String,
    pub leading: bool,
    pub plan: Option<PlanInfo>,
    /// Names whose node token is up.
    pub alive: BTreeSet<String>,
    /// Nodes the leader waits for (its `leader.expected`): shown even when not alive.
    pub expected: Vec<String>,
    pub devices: Vec<DeviceInfo>,
    pub stats: Vec<NodeStats>,
}

/// The status `seen` describes: every node alive, planned or expected, with the plan's stage
/// and units and the device it announced; each link of the plan with the sender's figures.
pub fn assemble(seen: &Observed, keys: &Keys) -> FleetStatus {
    let planned = |name: &str| {
        seen.plan.as_ref().and_then(|p| {
            p.stages
                .iter()
                .position(|s| s.node == name)
                .map(|i| (i as u32, [p.stages[i].l, p.stages[i].r]))
        })
    };
    let mut names: BTreeSet<String> = seen.alive.clone();
    names.extend(seen.expected.iter().cloned());
    if let Some(p) = &seen.plan {
        names.extend(p.stages.iter().map(|s| s.node.clone()));
    }
    let nodes = names
        .into_iter()
        .map(|name| {
            let at = planned(&name);
            NodeStatus {
                alive: seen.alive.contains(&name),
                stage: at.map(|a| a.0),
                units: at.map(|a| a.1),
                device: seen.devices.iter().find(|d| d.name == name).map(device),
                name,
            }
        })
        .collect();
    FleetStatus {
        leader: seen.leader.clone(),
        leading: seen.leading,
        plan: seen.plan.clone(),
        nodes,
        links: links(seen, keys),
    }
}

fn device(d: &DeviceInfo) -> NodeDevice {
    NodeDevice {
        device_type: d.device_type.clone(),
        mem_bytes: d.mem_bytes,
        threads: d.threads,
        slowdown: d.slowdown,
        bw_mbps: d.bw_mbps,
    }
}

/// Each cut of the plan: the sending stage's outgoing link, as its own stats measure it
/// (stats of a node that runs another stage now, or of another epoch, are not this link's).
fn links(seen: &Observed, keys: &Keys) -> Vec<LinkStatus> {
    let Some(plan) = &seen.plan else {
        return Vec::new();
    };
    plan.stages
        .windows(2)
        .enumerate()
        .map(|(i, pair)| {
            let from_stage = i as u32;
            let measured = seen
                .stats
                .iter()
                .filter(|s| s.node == pair[0].node && s.stage == Some(from_stage))
                .filter(|s| s.epoch == plan.epoch)
                .flat_map(|s| s.links.iter())
                .find(|l| l.to == keys.stage_in(from_stage + 1));
            let mut link = LinkStatus {
                from_stage,
                from: pair[0].node.clone(),
                to: pair[1].node.clone(),
                planned_bits: pair[0].out_bits,
                ..Default::default()
            };
            if let Some(l) = measured {
                link.mbps = l.mbps;
                link.bits_in_use = l.bits_mean;
                link.items_per_s = l.items_per_s;
                link.utilisation = l.utilisation;
            }
            link
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantpipe_messages::{LinkStats, PlanStage, UnitTimes};

    fn stage(node: &str, l: usize, r: usize, bits: u8) -> PlanStage {
        PlanStage {
            node: node.into(),
            l,
            r,
            out_bits: bits,
            compute_s: 0.01,
            transfer_s: 0.001,
        }
    }

    fn plan(epoch: u64, stages: Vec<PlanStage>) -> PlanInfo {
        PlanInfo {
            epoch,
            model: "minilm".into(),
            ubatch: 8,
            source: "planner".into(),
            stages,
            predicted_items_per_s: 40.0,
        }
    }

    fn info(name: &str) -> DeviceInfo {
        DeviceInfo {
            name: name.into(),
            device_type: "cpu-1t".into(),
            mem_bytes: 2 << 30,
            threads: 1,
            slowdown: 2.0,
            bw_mbps: 1000.0,
            profile: UnitTimes {
                model: "minilm".into(),
                ubatch: 8,
                input_elements: 1,
                time_s: vec![0.01; 24],
                weight_bytes: vec![1; 24],
                output_elements: vec![1; 24],
            },
        }
    }

    fn stats(node: &str, epoch: u64, stage: u32, to: &str, mbps: f64, bits: f64) -> NodeStats {
        NodeStats {
            node: node.into(),
            epoch,
            stage: Some(stage),
            links: vec![LinkStats {
                to: to.into(),
                mbps,
                bits_mean: bits,
                items_per_s: 30.0,
                utilisation: 0.25,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn seen() -> Observed {
        let k = Keys::new("f");
        Observed {
            leader: "leader".into(),
            leading: true,
            plan: Some(plan(3, vec![stage("a", 1, 10, 6), stage("b", 11, 24, 32)])),
            alive: ["leader", "a", "b"].map(String::from).into(),
            expected: vec!["a".into(), "b".into(), "c".into()],
            devices: vec![info("a"), info("b")],
            stats: vec![
                // a's incoming link (from clients) is not the cut.
                stats("a", 3, 0, &k.stage0_ins(), 5.0, 32.0),
                stats("a", 3, 0, &k.stage_in(1), 812.5, 5.5),
                stats("b", 3, 1, &k.result("client"), 900.0, 32.0),
            ],
        }
    }

    #[test]
    fn every_node_alive_planned_or_expected_is_listed_with_its_stage_and_device() {
        let st = assemble(&seen(), &Keys::new("f"));
        let names: Vec<&str> = st.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "leader"]);
        let a = &st.nodes[0];
        assert!(a.alive);
        assert_eq!((a.stage, a.units), (Some(0), Some([1, 10])));
        assert_eq!(a.device.as_ref().unwrap().slowdown, 2.0);
        let c = &st.nodes[2];
        assert!(!c.alive && c.stage.is_none() && c.device.is_none());
        let leader = &st.nodes[3];
        assert!(leader.alive && leader.stage.is_none());
        assert_eq!(st.plan.as_ref().unwrap().epoch, 3);
    }

    #[test]
    fn each_cut_gets_the_senders_measured_bandwidth_and_bitwidth() {
        let st = assemble(&seen(), &Keys::new("f"));
        assert_eq!(st.links.len(), 1);
        let l = &st.links[0];
        assert_eq!(
            (l.from.as_str(), l.to.as_str(), l.from_stage),
            ("a", "b", 0)
        );
        assert_eq!((l.planned_bits, l.mbps, l.bits_in_use), (6, 812.5, 5.5));
    }

    #[test]
    fn stats_of_another_epoch_are_not_the_links_figures() {
        let mut s = seen();
        s.stats[1].epoch = 2;
        let st = assemble(&s, &Keys::new("f"));
        assert_eq!((st.links[0].mbps, st.links[0].bits_in_use), (0.0, 0.0));
        assert_eq!(st.links[0].planned_bits, 6);
    }

    #[test]
    fn without_a_plan_there_are_nodes_and_no_links() {
        let s = Observed {
            plan: None,
            ..seen()
        };
        let st = assemble(&s, &Keys::new("f"));
        assert!(st.links.is_empty());
        assert!(st.nodes.iter().all(|n| n.stage.is_none()));
        assert_eq!(st.nodes.len(), 4);
    }
}
