//! What the leader knows of the alive nodes: the device info of those that host a stage, and
//! which answered none (a leader-only node). A node is asked once while it stays alive.
//!
//! Device info comes off the network, so it is checked before the planner sees it
//! ([`admit_device`]): a node whose info is inconsistent (lengths, numbers not finite or not
//! positive, another node's name) is logged with the reason and left out of the plan; it
//! neither crashes the leader nor makes the plan fail for the others.

use crate::runtime::planning::{measured_bandwidths, with_measured_bandwidth};
use anyhow::{anyhow, bail, Result};
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

    /// Records `name`'s answer to its device-info query. An answer that [`admit_device`]
    /// refuses leaves the node out of plans until it comes back (it is asked again then).
    pub fn record(&mut self, name: String, answer: Result<DeviceInfo>) {
        match answer.and_then(|info| admit_device(&name, info)) {
            Ok(info) => {
                self.devices.insert(name, info);
            }
            Err(e) => {
                tracing::warn!("{name} is left out of plans: {e:#}");
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

    /// The known devices that agree on the model ([`agreeing`]), at their measured bandwidths
    /// where `stats` hold one.
    pub fn infos(&self, stats: &[NodeStats], keys: &Keys) -> Vec<DeviceInfo> {
        let infos: Vec<DeviceInfo> = self.devices.values().cloned().collect();
        let (kept, left_out) = agreeing(infos);
        for i in left_out {
            tracing::warn!(
                "{} is left out of the plan: it profiled `{}` ({} units, microbatches of {}), \
                 unlike most nodes",
                i.name,
                i.profile.model,
                i.profile.time_s.len(),
                i.profile.ubatch
            );
        }
        with_measured_bandwidth(&kept, &measured_bandwidths(stats, keys))
    }
}

/// `info` as node `name` answered it, if the planner can use it: consistent and finite
/// ([`DeviceInfo::validate`]), and about the node that answered.
pub fn admit_device(name: &str, info: DeviceInfo) -> Result<DeviceInfo> {
    if info.name != name {
        bail!("its device info names another node, `{}`", info.name);
    }
    info.validate()
        .map_err(|e| anyhow!("its device info was refused: {e}"))?;
    Ok(info)
}

/// Splits `infos` into the nodes that profiled what most of them profiled (the same model, unit
/// count and microbatch size; the earliest name breaks a tie) and the others, so one node's
/// wrong profile leaves that node out rather than failing the plan for all.
pub fn agreeing(infos: Vec<DeviceInfo>) -> (Vec<DeviceInfo>, Vec<DeviceInfo>) {
    let key = |i: &DeviceInfo| {
        (
            i.profile.model.clone(),
            i.profile.time_s.len(),
            i.profile.ubatch,
        )
    };
    let mut counts: BTreeMap<_, usize> = BTreeMap::new();
    for i in &infos {
        *counts.entry(key(i)).or_default() += 1;
    }
    let most = counts.values().copied().max().unwrap_or(0);
    // The first node (by name, as `infos` come from the book) of a largest group.
    let Some(chosen) = infos.iter().map(key).find(|k| counts[k] == most) else {
        return (infos, Vec::new());
    };
    infos.into_iter().partition(|i| key(i) == chosen)
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

    #[test]
    fn a_device_with_an_inconsistent_profile_stays_out_of_the_plan() {
        let mut book = DeviceBook::default();
        let mut bad = info("b", 1.0);
        bad.profile.time_s[3] = f64::NAN;
        book.record("a".into(), Ok(info("a", 1.0)));
        book.record("b".into(), Ok(bad));
        assert_eq!(book.names(), names(&["a"]));
        // It is not asked again while it stays alive, and again once it came back.
        assert!(book.forget_gone(&names(&["a", "b"])).is_empty());
        assert_eq!(book.forget_gone(&names(&["a"])), Vec::<String>::new());
        assert_eq!(book.forget_gone(&names(&["a", "b"])), ["b"]);
    }

    #[test]
    fn device_info_naming_another_node_is_refused() {
        let err = admit_device("b", info("a", 1.0)).unwrap_err();
        assert!(format!("{err:#}").contains("another node, `a`"), "{err:#}");
        let mut bad = info("a", 1.0);
        bad.bw_mbps = -3.0;
        let err = admit_device("a", bad).unwrap_err();
        assert!(format!("{err:#}").contains("bandwidth -3"), "{err:#}");
        assert!(admit_device("a", info("a", 1.0)).is_ok());
    }

    #[test]
    fn a_node_that_profiled_another_model_is_left_out_not_the_fleet() {
        let mut other = info("b", 1.0);
        other.profile.model = "other".into();
        let mut fewer = info("d", 1.0);
        fewer.profile.ubatch = 2;
        let (kept, out) = agreeing(vec![info("a", 1.0), other, info("c", 2.0), fewer]);
        let names = |v: &[DeviceInfo]| v.iter().map(|i| i.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&kept), ["a", "c"]);
        assert_eq!(names(&out), ["b", "d"]);
        // A tie goes to the group of the first name.
        let mut other = info("b", 1.0);
        other.profile.model = "other".into();
        let (kept, _) = agreeing(vec![info("a", 1.0), other]);
        assert_eq!(names(&kept), ["a"]);
        assert_eq!(agreeing(vec![]), (vec![], vec![]));
    }
}
