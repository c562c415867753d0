//! File-based entry points for the command line (`quantpipe plan`, `quantpipe simulate`); the
//! clap layer only parses flags into [`PlanRequest`] and prints the JSON.
//!
//! Links file (`--links F`), YAML, rows = sender, columns = receiver, in the order of `devices`:
//!
//! ```yaml
//! devices: [jetson-0, jetson-1, pi-0]
//! bandwidth_mbps:            # Mbit/s (10^6 bit/s); 0 = no link; the diagonal is ignored
//!   - [0, 940, 95]
//!   - [940, 0, 95]
//!   - [95, 95, 0]
//! latency_ms:                # optional, same shape; default_latency_ms otherwise
//!   - [0, 0.3, 2]
//!   - [0.3, 0, 2]
//!   - [2, 2, 0]
//! default_latency_ms: 0.5    # optional, 0 if absent
//! ```
//!
//! Every fleet device must appear in `devices`; extra names are ignored.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::types::{Fleet, LinkMatrix, PlanConfig};
use super::{plan_with, BitPolicy, Plan, PlanError, PlannerKind};
use crate::profiles::pipeedge::{dtype_bytes, load_planner_inputs, read_yaml, ProfileError};
use quantpipe_simulator::{SimError, SimReport};

/// Failures of the file-based API.
#[derive(Debug, Error)]
pub enum CliError {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error("links file: device {0} of the fleet is not listed")]
    LinksMissingDevice(String),
    #[error("links file: {0}")]
    LinksShape(String),
    #[error("bad --bits menu {0:?}: expected comma-separated bitwidths like 2,4,8,32")]
    BadMenu(String),
    #[error("unknown baseline {0:?}: expected even, memory or pipedream")]
    UnknownBaseline(String),
}

/// What `quantpipe plan` passes in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRequest {
    pub models: PathBuf,
    pub device_types: PathBuf,
    pub devices: PathBuf,
    pub model: String,
    pub ubatch: usize,
    pub links: Option<PathBuf>,
    /// `--bits`: the menu (32 = raw); absent means raw activations only.
    pub bits: Option<Vec<u8>>,
    /// `--min-bits`: the smallest bitwidth any cut may use (default: the menu's smallest).
    pub min_bits: Option<u8>,
    pub baseline: Option<PlannerKind>,
    /// PipeEdge dtype name; `torch.float32` by default.
    pub dtype: Option<String>,
    pub in_buffers: Option<u32>,
    pub out_buffers: Option<u32>,
}

/// The links file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinksFile {
    pub devices: Vec<String>,
    pub bandwidth_mbps: Vec<Vec<f64>>,
    #[serde(default)]
    pub latency_ms: Option<Vec<Vec<f64>>>,
    #[serde(default)]
    pub default_latency_ms: f64,
}

impl LinksFile {
    /// The matrix in the fleet's device order.
    pub fn to_matrix(&self, fleet: &Fleet) -> Result<LinkMatrix, CliError> {
        let k = self.devices.len();
        let square = |m: &Vec<Vec<f64>>| m.len() == k && m.iter().all(|r| r.len() == k);
        if !square(&self.bandwidth_mbps) {
            return Err(CliError::LinksShape(format!(
                "bandwidth_mbps must be {k}x{k}"
            )));
        }
        if let Some(l) = &self.latency_ms {
            if !square(l) {
                return Err(CliError::LinksShape(format!("latency_ms must be {k}x{k}")));
            }
        }
        let idx: Vec<usize> = fleet
            .devices
            .iter()
            .map(|d| {
                self.devices
                    .iter()
                    .position(|n| *n == d.name)
                    .ok_or_else(|| CliError::LinksMissingDevice(d.name.clone()))
            })
            .collect::<Result<_, _>>()?;
        let pick = |m: &Vec<Vec<f64>>| -> Vec<Vec<f64>> {
            idx.iter()
                .map(|&a| {
                    idx.iter()
                        .map(|&b| if a == b { 0.0 } else { m[a][b] })
                        .collect()
                })
                .collect()
        };
        let n = idx.len();
        Ok(LinkMatrix {
            bw_mbps: pick(&self.bandwidth_mbps),
            latency_ms: match &self.latency_ms {
                Some(l) => pick(l),
                None => vec![vec![self.default_latency_ms; n]; n],
            },
        })
    }
}

/// Parses `--bits 2,4,8,32`.
pub fn parse_bits_menu(s: &str) -> Result<Vec<u8>, CliError> {
    let v: Result<Vec<u8>, _> = s.split(',').map(|x| x.trim().parse::<u8>()).collect();
    match v {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(CliError::BadMenu(s.to_string())),
    }
}

/// Parses `--baseline even|memory|pipedream`.
pub fn parse_baseline(s: &str) -> Result<PlannerKind, CliError> {
    match s {
        "even" => Ok(PlannerKind::Even),
        "memory" => Ok(PlannerKind::Memory),
        "pipedream" => Ok(PlannerKind::Pipedream),
        _ => Err(CliError::UnknownBaseline(s.to_string())),
    }
}

/// `quantpipe plan`: reads the PipeEdge files (and links), plans, returns the plan.
pub fn plan_from_files(req: &PlanRequest) -> Result<Plan, CliError> {
    let dtype = req.dtype.clone().unwrap_or_else(|| "torch.float32".into());
    let (model, mut fleet) = load_planner_inputs(
        &read_yaml(&req.models)?,
        &read_yaml(&req.device_types)?,
        &read_yaml(&req.devices)?,
        &req.model,
        req.ubatch,
        &dtype,
    )?;
    if let Some(path) = &req.links {
        let lf: LinksFile = read_yaml(path)?;
        fleet.links = Some(lf.to_matrix(&fleet)?);
        fleet.latency_ms = lf.default_latency_ms;
    }
    let defaults = PlanConfig::default();
    let bits = match &req.bits {
        None => BitPolicy::Fixed {
            bits: super::bits::RAW_BITS,
        },
        Some(menu) => BitPolicy::Menu {
            menu: menu.clone(),
            min_bits: req
                .min_bits
                .unwrap_or_else(|| menu.iter().copied().min().unwrap_or(super::bits::RAW_BITS)),
            per_cut_min: None,
        },
    };
    let cfg = PlanConfig {
        ubatch: req.ubatch,
        dtype_bytes: dtype_bytes(&dtype)?,
        in_buffers: req.in_buffers.unwrap_or(defaults.in_buffers),
        out_buffers: req.out_buffers.unwrap_or(defaults.out_buffers),
        bits,
        header_bytes: defaults.header_bytes,
    };
    Ok(plan_with(
        req.baseline.unwrap_or(PlannerKind::Edgepipe),
        &model,
        &fleet,
        &cfg,
    )?)
}

/// Reads a plan written by `quantpipe plan --json` (JSON, or YAML by extension).
pub fn read_plan(path: &Path) -> Result<Plan, SimError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
        path: p.clone(),
        source,
    })?;
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yml" | "yaml")
    );
    let parsed = if yaml {
        serde_yaml::from_str(&text).map_err(|e| e.to_string())
    } else {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    };
    parsed.map_err(|detail| SimError::Parse { path: p, detail })
}

/// `quantpipe simulate --plan F --microbatches N`.
pub fn simulate_plan_file(path: &Path, microbatches: usize) -> Result<SimReport, CliError> {
    Ok(crate::simulate::simulate(&read_plan(path)?, microbatches)?)
}
