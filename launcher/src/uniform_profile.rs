//! Profiles of launched nodes in which every unit costs the same.

use anyhow::{Context, Result};
use std::path::Path;

/// Writes a profile (`device.profile_file`) of `model` with `units` units that all cost the
/// same, measured at `ubatch`, whose input holds `input_elements` values per item: the nodes
/// skip measuring, and the planner, when it is used, spreads units evenly by count.
pub fn write_uniform_profile(
    path: &Path,
    model: &str,
    units: usize,
    ubatch: usize,
    input_elements: usize,
) -> Result<()> {
    let units: Vec<String> = (1..=units)
        .map(|u| {
            format!(
                "{{\"unit\":{u},\"time_s\":0.01,\"parameters\":1,\"weight_bytes\":4,\
                 \"output_elements\":1}}"
            )
        })
        .collect();
    let profile = format!(
        "{{\"model\":\"{model}\",\"ubatch\":{ubatch},\"threads\":1,\
         \"input_elements\":{input_elements},\"units\":[{}]}}",
        units.join(",")
    );
    std::fs::write(path, profile).with_context(|| format!("writing {}", path.display()))
}
