//! The demo's PNG chart: per-stage utilisation, throughput beside the planner's bound and the
//! single device, and each node's items/s per metrics window.

use super::figures::{timelines, StageReport};
use crate::chart::{write_chart, ChartData, StageBar};
use anyhow::Result;
use quantpipe_actors::runtime::client::RunReport;
use quantpipe_actors::runtime::metrics::read_jsonl;
use quantpipe_messages::PlanInfo;
use std::path::{Path, PathBuf};

/// What the chart draws.
pub struct ChartInputs<'a> {
    pub title: String,
    pub plan: &'a PlanInfo,
    pub run: &'a RunReport,
    pub stages: &'a [StageReport],
    pub single_device_items_per_s: f64,
    /// Each device node's metrics file, by node name.
    pub metrics_files: &'a [(String, PathBuf)],
}

/// Reads the nodes' metrics files and writes the chart to `path`.
pub fn write(path: &Path, c: &ChartInputs) -> Result<()> {
    let mut rows = Vec::new();
    for (name, file) in c.metrics_files {
        rows.push((name.clone(), read_jsonl(file)?));
    }
    let elapsed_s = c.run.elapsed_s;
    let data = ChartData {
        title: c.title.clone(),
        stages: c
            .stages
            .iter()
            .map(|s| StageBar {
                label: format!("{} ({}..{})", s.node, s.units[0], s.units[1]),
                forward: s.busy_forward_s / elapsed_s,
                codec: s.busy_codec_s / elapsed_s,
            })
            .collect(),
        throughput: vec![
            ("pipeline".into(), c.run.items_per_s),
            ("planner bound".into(), c.plan.predicted_items_per_s),
            ("1 device fp32".into(), c.single_device_items_per_s),
        ],
        timelines: timelines(&rows),
    };
    write_chart(path, &data)
}
