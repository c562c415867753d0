//! Where the bench's nodes run: one core each, round-robin, the nodes that share a core
//! emulated slower; pinned with `taskset` when it is installed.

use std::process::{Command, Stdio};

pub fn have_taskset() -> bool {
    Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Cores this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Core of node `k` of `n` and its emulated slowdown: round-robin over cores; nodes that share
/// a core are slowed by `shared` (1 when every node has its own core).
pub fn placement(n: usize, cores: usize, shared: f64) -> Vec<(usize, f64)> {
    (0..n)
        .map(|k| {
            let core = k % cores;
            let sharing = (0..n).filter(|j| j % cores == core).count() > 1;
            (core, if sharing { shared } else { 1.0 })
        })
        .collect()
}

/// The nodes of one run, where each runs and how much slower it is emulated.
pub struct Layout {
    /// Node names, `n0`, `n1`, ...
    pub names: Vec<String>,
    /// Per node, in `names` order: its core and emulated slowdown.
    pub place: Vec<(usize, f64)>,
    pub cores: usize,
    /// Whether each node is pinned to its core.
    pub pinned: bool,
}

impl Layout {
    /// `nodes` nodes over `cores` cores, those sharing one slowed by `shared`.
    pub fn new(nodes: usize, cores: usize, pinned: bool, shared: f64) -> Layout {
        Layout {
            names: (0..nodes).map(|k| format!("n{k}")).collect(),
            place: placement(nodes, cores, shared),
            cores,
            pinned,
        }
    }

    /// Core and emulated slowdown of `node` (the first node's for a name not in the run).
    pub fn of(&self, node: &str) -> (usize, f64) {
        let idx = self.names.iter().position(|n| n == node).unwrap_or(0);
        self.place[idx]
    }

    /// Whether another node runs on `core`.
    pub fn shared(&self, core: usize) -> bool {
        self.place.iter().filter(|p| p.0 == core).count() > 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_get_their_own_core_until_they_must_share_and_sharers_are_slowed() {
        assert_eq!(placement(2, 2, 3.0), vec![(0, 1.0), (1, 1.0)]);
        assert_eq!(placement(3, 2, 3.0), vec![(0, 3.0), (1, 1.0), (0, 3.0)]);
        assert_eq!(placement(2, 4, 3.0), vec![(0, 1.0), (1, 1.0)]);
    }

    #[test]
    fn a_layout_answers_each_node_s_core_and_who_shares_it() {
        let layout = Layout::new(3, 2, true, 3.0);
        assert_eq!(layout.of("n1"), (1, 1.0));
        assert_eq!(layout.of("n2"), (0, 3.0));
        assert_eq!(layout.of("elsewhere"), (0, 3.0));
        assert!(layout.shared(0));
        assert!(!layout.shared(1));
    }
}
