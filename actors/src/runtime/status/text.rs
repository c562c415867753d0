//! The fleet's status as a terminal shows it: the plan in one line, then a table of nodes and
//! one of links.

use quantpipe_messages::{FleetStatus, LinkStatus, NodeStatus};

/// The status as lines of text.
pub fn render(st: &FleetStatus) -> String {
    let mut out = vec![format!("leader {}", st.leader)];
    out.push(match &st.plan {
        Some(p) => format!(
            "plan epoch {} ({}): {}, microbatch {}, {} stage(s), predicted {:.2} items/s",
            p.epoch,
            p.source,
            p.model,
            p.ubatch,
            p.stages.len(),
            p.predicted_items_per_s
        ),
        None => "plan: none yet".to_owned(),
    });
    out.push(String::new());
    let mut nodes = vec![row(&["node", "alive", "stage", "units", "device"])];
    nodes.extend(st.nodes.iter().map(node_row));
    out.extend(table(&nodes));
    if !st.links.is_empty() {
        out.push(String::new());
        let mut links = vec![row(&[
            "link", "from", "to", "measured", "bits", "planned", "items/s", "busy",
        ])];
        links.extend(st.links.iter().map(link_row));
        out.extend(table(&links));
    }
    out.join("\n")
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

fn node_row(n: &NodeStatus) -> Vec<String> {
    let device = match &n.device {
        Some(d) => format!(
            "{}, {} MiB, {} thread(s), slowdown x{}, {} Mbit/s",
            d.device_type,
            d.mem_bytes >> 20,
            d.threads,
            d.slowdown,
            d.bw_mbps
        ),
        None => "-".to_owned(),
    };
    vec![
        n.name.clone(),
        if n.alive { "yes" } else { "no" }.to_owned(),
        n.stage.map_or("-".to_owned(), |s| s.to_string()),
        n.units.map_or("-".to_owned(), |[l, r]| format!("{l}-{r}")),
        device,
    ]
}

fn link_row(l: &LinkStatus) -> Vec<String> {
    let measured = match l.mbps > 0.0 {
        true => format!("{:.1} Mbit/s", l.mbps),
        false => "not yet".to_owned(),
    };
    let bits = match l.bits_in_use > 0.0 {
        true => format!("{:.1}", l.bits_in_use),
        false => "-".to_owned(),
    };
    vec![
        format!("{} -> {}", l.from_stage, l.from_stage + 1),
        l.from.clone(),
        l.to.clone(),
        measured,
        bits,
        l.planned_bits.to_string(),
        format!("{:.1}", l.items_per_s),
        format!("{:.0}%", 100.0 * l.utilisation),
    ]
}

/// Rows with every column padded to its widest cell, two spaces apart.
fn table(rows: &[Vec<String>]) -> Vec<String> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantpipe_messages::{NodeDevice, PlanInfo, PlanStage};

    fn status() -> FleetStatus {
        FleetStatus {
            leader: "leader".into(),
            leading: true,
            plan: Some(PlanInfo {
                epoch: 2,
                model: "minilm".into(),
                ubatch: 8,
                source: "planner".into(),
                stages: vec![
                    PlanStage {
                        node: "node-a".into(),
                        l: 1,
                        r: 11,
                        out_bits: 8,
                        compute_s: 0.0,
                        transfer_s: 0.0,
                    },
                    PlanStage {
                        node: "node-b".into(),
                        l: 12,
                        r: 24,
                        out_bits: 32,
                        compute_s: 0.0,
                        transfer_s: 0.0,
                    },
                ],
                predicted_items_per_s: 41.234,
            }),
            nodes: vec![
                NodeStatus {
                    name: "node-a".into(),
                    alive: true,
                    stage: Some(0),
                    units: Some([1, 11]),
                    device: Some(NodeDevice {
                        device_type: "cpu-1t".into(),
                        mem_bytes: 2048 << 20,
                        threads: 1,
                        slowdown: 1.0,
                        bw_mbps: 1000.0,
                    }),
                },
                NodeStatus {
                    name: "node-c".into(),
                    ..Default::default()
                },
            ],
            links: vec![LinkStatus {
                from_stage: 0,
                from: "node-a".into(),
                to: "node-b".into(),
                planned_bits: 8,
                mbps: 812.34,
                bits_in_use: 6.5,
                items_per_s: 30.0,
                utilisation: 0.125,
            }],
        }
    }

    #[test]
    fn the_plan_nodes_and_links_read_in_aligned_columns() {
        let text = render(&status());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "leader leader");
        assert_eq!(
            lines[1],
            "plan epoch 2 (planner): minilm, microbatch 8, 2 stage(s), predicted 41.23 items/s"
        );
        assert_eq!(lines[3], "node    alive  stage  units  device");
        assert_eq!(
            lines[4],
            "node-a  yes    0      1-11   cpu-1t, 2048 MiB, 1 thread(s), slowdown x1, 1000 Mbit/s"
        );
        assert_eq!(lines[5], "node-c  no     -      -      -");
        assert_eq!(
            lines[7],
            "link    from    to      measured      bits  planned  items/s  busy"
        );
        assert_eq!(
            lines[8],
            "0 -> 1  node-a  node-b  812.3 Mbit/s  6.5   8        30.0     12%"
        );
    }

    #[test]
    fn a_fleet_without_plan_or_measurement_says_so() {
        let mut st = status();
        st.plan = None;
        st.links[0].mbps = 0.0;
        st.links[0].bits_in_use = 0.0;
        let text = render(&st);
        assert!(text.contains("plan: none yet"), "{text}");
        assert!(text.contains("not yet"), "{text}");
    }
}
