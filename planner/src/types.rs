//! Planner inputs: the model profile, the fleet, and the knobs of one planning request.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::bits::BitPolicy;
use super::error::PlanError;

/// What the planner needs to know about one model, unit by unit.
///
/// Units are numbered 1..=n in the docs and in plans; the vectors here are 0-based, so unit `u` is
/// at index `u - 1`. A cut after unit `k` (1 <= k < n) carries `cut_elements[k - 1]` elements per
/// sample; after u0/u2 of a block two tensors cross, and the count is their sum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelProfile {
    /// Model name, as keyed in `models.yml`.
    pub name: String,
    /// Weight memory of each unit, in bytes.
    pub weight_bytes: Vec<u64>,
    /// Elements per sample crossing the cut after unit k (index k - 1), length n - 1.
    pub cut_elements: Vec<u64>,
    /// Elements per sample entering unit 1.
    pub input_elements: u64,
    /// Elements per sample leaving unit n.
    pub output_elements: u64,
    /// Per device type: seconds per unit for one microbatch of the planned size, length n.
    pub compute_s: BTreeMap<String, Vec<f64>>,
}

impl ModelProfile {
    /// Number of units n.
    pub fn units(&self) -> usize {
        self.weight_bytes.len()
    }

    /// Elements per sample at boundary `cut`: 0 is the model input, n the model output, and
    /// 1..n the cut after that unit.
    pub fn boundary_elements(&self, cut: usize) -> u64 {
        let n = self.units();
        if cut == 0 {
            self.input_elements
        } else if cut >= n {
            self.output_elements
        } else {
            self.cut_elements[cut - 1]
        }
    }

    /// Checks the vectors agree on n and that every time is finite and non-negative.
    pub fn validate(&self) -> Result<(), PlanError> {
        let n = self.units();
        if n == 0 {
            return Err(PlanError::EmptyModel {
                model: self.name.clone(),
            });
        }
        if self.cut_elements.len() != n - 1 {
            return Err(PlanError::ProfileShape {
                model: self.name.clone(),
                field: "cut_elements".into(),
                expected: n - 1,
                found: self.cut_elements.len(),
            });
        }
        for (ty, times) in &self.compute_s {
            if times.len() != n {
                return Err(PlanError::ProfileShape {
                    model: self.name.clone(),
                    field: format!("compute_s[{ty}]"),
                    expected: n,
                    found: times.len(),
                });
            }
            if let Some(pos) = times.iter().position(|t| !t.is_finite() || *t < 0.0) {
                return Err(PlanError::BadComputeTime {
                    device_type: ty.clone(),
                    unit: pos + 1,
                    value: times[pos],
                });
            }
        }
        Ok(())
    }
}

/// One device of the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// Host name, unique in the fleet.
    pub name: String,
    /// Device type: the key of its compute profile.
    pub device_type: String,
    /// Memory available to the model, in bytes.
    pub mem_bytes: u64,
    /// Nominal network bandwidth in Mbit/s (10^6 bit/s). A link between two devices runs at the
    /// smaller of their two bandwidths unless a [`LinkMatrix`] says otherwise.
    pub bw_mbps: f64,
}

/// Measured pairwise links, indexed by the fleet's device order: `bw_mbps[a][b]` is the bandwidth
/// from device a to device b. Zero (or negative) means no usable link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkMatrix {
    /// Mbit/s, sender row, receiver column.
    pub bw_mbps: Vec<Vec<f64>>,
    /// One-way latency in milliseconds, same indexing; used by the simulator, not by the bound.
    pub latency_ms: Vec<Vec<f64>>,
}

/// The devices a plan may use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fleet {
    pub devices: Vec<Device>,
    /// Measured per-link bandwidth; `None` means "min of the two devices' nominal bandwidth".
    #[serde(default)]
    pub links: Option<LinkMatrix>,
    /// Latency of every link when no matrix is given, in milliseconds.
    #[serde(default)]
    pub latency_ms: f64,
}

impl Fleet {
    /// A fleet without a link matrix.
    pub fn new(devices: Vec<Device>) -> Self {
        Fleet {
            devices,
            links: None,
            latency_ms: 0.0,
        }
    }

    /// Checks names are unique and the link matrix (if any) is square over the fleet.
    pub fn validate(&self) -> Result<(), PlanError> {
        if self.devices.is_empty() {
            return Err(PlanError::NoDevices);
        }
        let mut seen = std::collections::BTreeSet::new();
        for d in &self.devices {
            if !seen.insert(d.name.as_str()) {
                return Err(PlanError::DuplicateDevice {
                    name: d.name.clone(),
                });
            }
            if !d.bw_mbps.is_finite() || d.bw_mbps < 0.0 {
                return Err(PlanError::BadBandwidth {
                    device: d.name.clone(),
                    value: d.bw_mbps,
                });
            }
        }
        if let Some(l) = &self.links {
            let n = self.devices.len();
            let square = |m: &Vec<Vec<f64>>| m.len() == n && m.iter().all(|r| r.len() == n);
            if !square(&l.bw_mbps) || !square(&l.latency_ms) {
                return Err(PlanError::LinkMatrixShape { devices: n });
            }
        }
        Ok(())
    }
}

/// The knobs of one planning request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanConfig {
    /// Items per microbatch; the profile's compute times are for this size.
    pub ubatch: usize,
    /// Bytes per activation value in memory (4 for f32); also the raw wire size at 32 bits.
    pub dtype_bytes: u32,
    /// Receive buffers per stage (PipeEdge's `data_buffers_in`).
    pub in_buffers: u32,
    /// Send buffers per stage (PipeEdge's `data_buffers_out`).
    pub out_buffers: u32,
    /// Which bitwidths each cut may use.
    pub bits: BitPolicy,
    /// Per-sample header bytes on the wire (scale, offset, shape).
    pub header_bytes: u64,
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            ubatch: 8,
            dtype_bytes: 4,
            in_buffers: 2,
            out_buffers: 2,
            bits: BitPolicy::Fixed { bits: 32 },
            header_bytes: super::bits::HEADER_BYTES_PER_SAMPLE,
        }
    }
}
