//! What a node tells the leader about itself: its device, and the per-unit profile of its local
//! model that the planner plans with.

use serde::{Deserialize, Serialize};

/// One node's description, answered on [`Keys::device`](crate::Keys::device).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeviceInfo {
    pub name: String,
    /// Profile key: nodes of one type share a compute profile in the planner.
    pub device_type: String,
    /// Memory the node offers to the model, bytes.
    pub mem_bytes: u64,
    /// libtorch intra-op threads of its forward passes.
    pub threads: i32,
    /// Emulated slowdown (1 = none): each forward pass is padded to `slowdown x` its profiled
    /// time, so the node behaves like a device that much slower.
    pub slowdown: f64,
    /// Nominal link bandwidth, Mbit/s.
    pub bw_mbps: f64,
    /// The profile, already scaled by `slowdown`.
    pub profile: UnitTimes,
}

/// A node's per-unit profile of its local model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UnitTimes {
    pub model: String,
    pub ubatch: usize,
    pub input_elements: u64,
    /// Seconds per microbatch of `ubatch` items, per unit (index u - 1).
    pub time_s: Vec<f64>,
    pub weight_bytes: Vec<u64>,
    /// Elements per item leaving each unit.
    pub output_elements: Vec<u64>,
}

impl DeviceInfo {
    /// Checks what a planner relies on, naming the first thing wrong: a name and device type,
    /// memory and threads, a finite slowdown of at least 1, a finite positive bandwidth, and a
    /// profile ([`UnitTimes::validate`]).
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || self.device_type.is_empty() {
            return Err("a device needs a name and a device type".into());
        }
        if self.mem_bytes == 0 {
            return Err("memory of 0 bytes".into());
        }
        if self.threads < 1 {
            return Err(format!("{} threads", self.threads));
        }
        if !(self.slowdown.is_finite() && self.slowdown >= 1.0) {
            return Err(format!("slowdown {} (a finite number >= 1)", self.slowdown));
        }
        if !(self.bw_mbps.is_finite() && self.bw_mbps > 0.0) {
            return Err(format!(
                "bandwidth {} Mbit/s (a finite number > 0)",
                self.bw_mbps
            ));
        }
        self.profile.validate().map_err(|e| format!("profile: {e}"))
    }
}

impl UnitTimes {
    /// Checks the profile's lengths and numbers: one time, weight size and output size per
    /// unit, four units per block, every time finite and positive, every size positive.
    pub fn validate(&self) -> Result<(), String> {
        let units = self.time_s.len();
        if self.model.is_empty() {
            return Err("no model name".into());
        }
        if self.ubatch == 0 {
            return Err("microbatches of 0 items".into());
        }
        if units == 0 || !units.is_multiple_of(4) {
            return Err(format!(
                "{units} units (a model has four per block, at least one block)"
            ));
        }
        if self.weight_bytes.len() != units || self.output_elements.len() != units {
            return Err(format!(
                "{units} unit times, {} weight sizes and {} output sizes",
                self.weight_bytes.len(),
                self.output_elements.len()
            ));
        }
        if let Some((u, t)) = self
            .time_s
            .iter()
            .enumerate()
            .find(|(_, t)| !(t.is_finite() && **t > 0.0))
        {
            return Err(format!("unit {} takes {t} s (a finite number > 0)", u + 1));
        }
        if self.input_elements == 0 {
            return Err("input of 0 elements".into());
        }
        if let Some(u) = self.output_elements.iter().position(|&n| n == 0) {
            return Err(format!("unit {} outputs 0 elements", u + 1));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> DeviceInfo {
        DeviceInfo {
            name: "a".into(),
            device_type: "laptop".into(),
            mem_bytes: 1 << 30,
            threads: 1,
            slowdown: 1.0,
            bw_mbps: 100.0,
            profile: UnitTimes {
                model: "minilm".into(),
                ubatch: 8,
                input_elements: 128,
                time_s: vec![0.01; 8],
                weight_bytes: vec![1000; 8],
                output_elements: vec![100; 8],
            },
        }
    }

    fn refused(change: impl FnOnce(&mut DeviceInfo)) -> String {
        let mut i = info();
        change(&mut i);
        i.validate().unwrap_err()
    }

    #[test]
    fn a_consistent_device_is_accepted() {
        assert_eq!(info().validate(), Ok(()));
    }

    #[test]
    fn numbers_that_are_not_finite_or_not_positive_are_refused_naming_them() {
        assert!(refused(|i| i.bw_mbps = f64::NAN).contains("bandwidth NaN"));
        assert!(refused(|i| i.bw_mbps = 0.0).contains("bandwidth 0"));
        assert!(refused(|i| i.bw_mbps = f64::INFINITY).contains("bandwidth inf"));
        assert!(refused(|i| i.slowdown = 0.5).contains("slowdown 0.5"));
        assert!(refused(|i| i.slowdown = f64::NAN).contains("slowdown"));
        assert!(refused(|i| i.mem_bytes = 0).contains("memory"));
        assert!(refused(|i| i.threads = 0).contains("0 threads"));
        let e = refused(|i| i.profile.time_s[2] = -1.0);
        assert!(e.contains("unit 3 takes -1"), "{e}");
        let e = refused(|i| i.profile.time_s[7] = f64::NAN);
        assert!(e.contains("unit 8 takes NaN"), "{e}");
        assert!(refused(|i| i.profile.time_s[0] = 0.0).contains("unit 1"));
        assert!(refused(|i| i.profile.output_elements[4] = 0).contains("unit 5 outputs 0"));
        assert!(refused(|i| i.profile.input_elements = 0).contains("input"));
        assert!(refused(|i| i.profile.ubatch = 0).contains("0 items"));
    }

    #[test]
    fn profile_lengths_must_agree_in_whole_blocks() {
        let e = refused(|i| i.profile.weight_bytes.pop().map(drop).unwrap_or(()));
        assert!(e.contains("8 unit times, 7 weight sizes"), "{e}");
        let e = refused(|i| i.profile.output_elements.push(1));
        assert!(e.contains("9 output sizes"), "{e}");
        let e = refused(|i| {
            i.profile.time_s.truncate(6);
            i.profile.weight_bytes.truncate(6);
            i.profile.output_elements.truncate(6);
        });
        assert!(e.contains("6 units"), "{e}");
        assert!(refused(|i| i.profile.time_s.clear()).contains("0 units"));
    }

    #[test]
    fn nameless_devices_are_refused() {
        assert!(refused(|i| i.name.clear()).contains("name"));
        assert!(refused(|i| i.device_type.clear()).contains("device type"));
        assert!(refused(|i| i.profile.model.clear()).contains("model name"));
    }
}
