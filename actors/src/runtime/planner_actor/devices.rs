//! What the leader knows of the alive nodes: the device info of those that host a stage, and
//! which answered none (a leader-only node). A node is asked once while it stays alive.

use crate::runtime::planning::{measured_bandwidths, with_measured_bandwidth};
use anyhow::Result;
use quantpipe_messages::{DeviceInfo, Keys, NodeStats};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Default)]
pub struct DeviceBook {
    /// Device info of alive nodes that host a stage.
    devices: BTreeMap<String, DeviceInfo>,
    /// Alive nodes that answered no device info.
    not_devices: BTreeSet<String>,
}

impl DeviceBook {
    /// Forgets the nodes not in `alive` (a node coming back under the same name is asked
    /// again) and answers the alive ones not asked yet.
    pub fn forget_gone(&mut self, alive: &BTreeSet<String>) -> Vec<String> {
        self.devices.retain(|n, _| alive.contains(n));
        self.not_devices.retain(|n| alive.contains(n));
        alive
            .iter()
            .filter(|n| !self.devices.contains_key(*n) && !self.not_devices.contains(*n))
            .cloned()
            .collect()
    }

    /// Records `name`'s answer to its device-info query.
    pub fn record(&mut self, name: String, answer: Result<DeviceInfo>) {
        match answer {
            Ok(info) => {
                self.devices.insert(name, info);
            }
            Err(e) => {
                tracing::info!("{name} hosts no stage: {e:#}");
                self.not_devices.insert(name);
            }
        }
    }

    /// Brings the book in line with `alive`, asking each new node with `ask`.
    pub fn learn(&mut self, alive: &BTreeSet<String>, ask: impl Fn(&str) -> Result<DeviceInfo>) {
        for name in self.forget_gone(alive) {
            let answer = ask(&name);
            self.record(name, answer);
        }
    }

    /// The alive nodes that host a stage.
    pub fn names(&self) -> BTreeSet<String> {
        self.devices.keys().cloned().collect()
    }

    /// The known devices, at their measured bandwidths where `stats` hold one.
    pub fn infos(&self, stats: &[NodeStats], keys: &Keys) -> Vec<DeviceInfo> {
        let infos: Vec<DeviceInfo> = self.devices.values().cloned().collect();
        with_measured_bandwidth(&infos, &measured_bandwidths(stats, keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::planning::test_support::{info, names};
    use anyhow::anyhow;

    #[test]
    fn a_node_is_asked_once_while_alive_and_again_after_coming_back() {
        let mut book = DeviceBook::default();
        assert_eq!(book.forget_gone(&names(&["a", "leader"])), ["a", "leader"]);
        book.record("a".into(), Ok(info("a", 1.0)));
        book.record("leader".into(), Err(anyhow!("no device queryable")));
        assert!(book.forget_gone(&names(&["a", "leader"])).is_empty());
        assert_eq!(book.names(), names(&["a"]));
        // `a` went and came back: it is asked again.
        assert!(book.forget_gone(&names(&["leader"])).is_empty());
        assert!(book.names().is_empty());
        assert_eq!(book.forget_gone(&names(&["a", "leader"])), ["a"]);
    }
}
