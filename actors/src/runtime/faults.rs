//! Forced faults, for testing how a fleet heals: the `[faults]` section of a node's settings.
//! Off by default; a node that has any set says so loudly at start-up, since it will fail on
//! purpose.
//!
//! ```toml
//! [faults]
//! panic_forward_at = [3]   # panic in the forward pass of this node's 3rd microbatch
//! panic_encode_at = []     # panic while encoding this node's n-th output
//! fail_restart = false     # a worker that panicked cannot restart (its rebuild fails)
//! serve_tampered_weights = false  # the weights queryable serves flipped bytes
//! ```

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSettings {
    /// Forward passes (1 = the node's first microbatch) that panic.
    pub panic_forward_at: Vec<u64>,
    /// Encodes (1 = the node's first output sent on) that panic.
    pub panic_encode_at: Vec<u64>,
    /// A worker that panicked cannot restart, as when its shard no longer loads.
    pub fail_restart: bool,
    /// The node's weights queryable serves every byte flipped, as a peer with a corrupt or
    /// malicious copy would: fetching nodes must refuse its bytes and ask another peer.
    pub serve_tampered_weights: bool,
}

impl FaultSettings {
    /// Whether any fault is forced.
    pub fn any(&self) -> bool {
        *self != FaultSettings::default()
    }

    /// Logs, as an error, every fault forced on node `name`.
    pub fn warn_if_set(&self, name: &str) {
        if self.any() {
            tracing::error!(
                "{name}: FORCED FAULTS ARE ON ([faults] in its settings): it will fail on \
                 purpose: {self:?}"
            );
        }
    }
}

/// Whether the `n`-th call (counting from 1) is one of `at`.
pub fn forced_at(at: &[u64], n: u64) -> bool {
    at.contains(&n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::config::Settings;

    fn settings_with(faults: &str) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("node.toml");
        let text = format!("fleet = \"f\"\nname = \"a\"\nmodel_dir = \"m\"\n{faults}");
        std::fs::write(&path, text)?;
        Settings::load(&path)
    }

    #[test]
    fn no_fault_is_forced_by_default() {
        assert!(!settings_with("").unwrap().faults.any());
    }

    #[test]
    fn the_nth_call_panics_only_when_listed() {
        let f = settings_with("[faults]\npanic_forward_at = [3]\n")
            .unwrap()
            .faults;
        assert!(f.any());
        assert!(!forced_at(&f.panic_forward_at, 2));
        assert!(forced_at(&f.panic_forward_at, 3));
        assert!(!forced_at(&f.panic_forward_at, 4));
    }

    #[test]
    fn serving_tampered_weights_is_a_forced_fault() {
        let f = settings_with("[faults]\nserve_tampered_weights = true\n")
            .unwrap()
            .faults;
        assert!(f.any() && f.serve_tampered_weights);
    }

    #[test]
    fn a_misspelt_fault_is_refused() {
        let e = settings_with("[faults]\npanic_forwrd_at = [3]\n").unwrap_err();
        assert!(format!("{e:#}").contains("panic_forwrd_at"), "{e:#}");
    }
}
