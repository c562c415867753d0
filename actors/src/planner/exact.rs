//! The exact EdgePipe optimum when every link runs at the smaller of its two ends' nominal
//! bandwidths.
//!
//! Devices with the same (type, memory, bandwidth) are interchangeable, so they form a *class* and
//! a partial plan is described by how many devices of each class it has used. Planning hosts by
//! class count (not by type index, as the reference scheduler does) is what makes fleets with many
//! hosts per type come out right.
//!
//! Instead of a min-max DP over (next unit, multiset of used devices, next class), which is
//! `n^2 * prod(count+1) * classes^2` and far too slow for 64 devices of 8 types, we binary-search
//! the bottleneck over the finite set of values it can take (every shard compute time that fits
//! memory, every cut transfer time at every class bandwidth) and answer "is there a plan with
//! bottleneck <= B?" exactly:
//!
//! - With link bandwidth `min(bw_u, bw_v)`, the transfer of cut j fits in B iff it fits on *both*
//!   ends' bandwidth. So whether a shard (i, j] on class c is usable depends on c alone: compute
//!   <= B, memory fits, and the cuts at both of its ends fit c's bandwidth. That removes the
//!   "next class" from the state.
//! - The check is a depth-first search over (next cut, devices used per class), longest shards
//!   first (a feasible B is usually found on the first descent), with a memo of failed states
//!   and a capacity bound (the remaining devices, each covering at most its longest usable shard,
//!   must reach unit n). Both prunings only discard states that cannot reach n, so the answer is
//!   exact; `exhaustive` checks that on thousands of random instances.

use std::collections::HashSet;
use std::time::Instant;

use super::bitset;
use super::cost::CostModel;
use super::error::PlanError;

/// Devices that are interchangeable for planning.
#[derive(Debug, Clone)]
pub struct Class {
    /// Device indices in fleet order; stages take them in this order.
    pub devices: Vec<usize>,
    /// Nominal bandwidth, Mbit/s.
    pub bw_mbps: f64,
}

/// Groups devices by (type, memory, nominal bandwidth).
pub fn classes(cm: &CostModel) -> Vec<Class> {
    let mut keys: Vec<(usize, u64, u64)> = Vec::new();
    let mut out: Vec<Class> = Vec::new();
    for (d, dev) in cm.fleet.devices.iter().enumerate() {
        let key = (cm.type_index(d), dev.mem_bytes, dev.bw_mbps.to_bits());
        match keys.iter().position(|k| *k == key) {
            Some(c) => out[c].devices.push(d),
            None => {
                keys.push(key);
                out.push(Class {
                    devices: vec![d],
                    bw_mbps: dev.bw_mbps,
                });
            }
        }
    }
    out
}

/// Every value the bottleneck of a plan can take for this fleet's classes, sorted, finite.
fn candidates(cm: &CostModel, classes: &[Class]) -> Vec<f64> {
    let n = cm.n;
    let mut v = Vec::new();
    for c in classes {
        let d = c.devices[0];
        for i in 0..n {
            for j in i + 1..=n {
                if cm.fits(d, i, j) {
                    v.push(cm.compute(d, i, j));
                }
            }
        }
    }
    let mut bws: Vec<f64> = classes.iter().map(|c| c.bw_mbps).collect();
    bws.sort_by(f64::total_cmp);
    bws.dedup();
    for cut in 1..n {
        for &bw in &bws {
            v.push(cm.min_transfer(cut, bw));
        }
    }
    v.retain(|x| x.is_finite());
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

/// The feasibility check for one bottleneck bound.
pub(crate) struct Feasibility {
    n: usize,
    words: usize,
    counts: Vec<u32>,
    /// valid[(c * n + i) * words ..]: bit j set iff class c may run shard (i, j].
    valid: Vec<u64>,
    /// Per class, the most units any usable shard covers.
    maxlen: Vec<usize>,
    /// reach[k * (n + 1) + i]: no k shards of any classes starting at cut i get past this cut
    /// (k-fold composition of the monotone "furthest end from here or earlier").
    reach: Vec<usize>,
    total: u32,
    /// (cut, usage) states from which unit n cannot be reached.
    failed: HashSet<(usize, u128)>,
    /// Give up (exactness intact: the caller gets an error, never a worse plan) after this.
    deadline: Option<Instant>,
    calls: u64,
    pub(crate) timed_out: bool,
}

impl Feasibility {
    /// `limit`: bottleneck bound; `links`: whether transfers must fit within it too.
    #[allow(clippy::needless_range_loop)] // j is a cut index into several tables
    pub(crate) fn new(cm: &CostModel, classes: &[Class], limit: f64, links: bool) -> Self {
        let n = cm.n;
        let words = bitset::words_for(n + 1);
        let mut valid = vec![0u64; classes.len() * n * words];
        let mut maxlen = vec![0usize; classes.len()];
        for (c, class) in classes.iter().enumerate() {
            let d = class.devices[0];
            // Whether the cut after unit `cut` fits this class's bandwidth within the bound.
            let cut_ok: Vec<bool> = (0..=n)
                .map(|cut| {
                    !links || cut == 0 || cut == n || cm.min_transfer(cut, class.bw_mbps) <= limit
                })
                .collect();
            for i in 0..n {
                if !cut_ok[i] {
                    continue;
                }
                let row = &mut valid[(c * n + i) * words..(c * n + i + 1) * words];
                for j in i + 1..=n {
                    if cm.compute(d, i, j) > limit {
                        break; // compute only grows with j
                    }
                    if cut_ok[j] && cm.fits(d, i, j) {
                        bitset::set(row, j);
                        maxlen[c] = maxlen[c].max(j - i);
                    }
                }
            }
        }
        // g(i) = furthest end of any usable shard starting at or before i (monotone).
        let mut g = vec![0usize; n + 1];
        for i in 0..=n {
            let mut best = if i > 0 { g[i - 1].max(i) } else { 0 };
            for c in 0..classes.len() {
                if i < n {
                    let row = &valid[(c * n + i) * words..(c * n + i + 1) * words];
                    if let Some(&j) = bitset::descending(row).first() {
                        best = best.max(j);
                    }
                }
            }
            g[i] = best;
        }
        let total: u32 = classes.iter().map(|c| c.devices.len() as u32).sum();
        let mut reach = Vec::with_capacity((total as usize + 1) * (n + 1));
        reach.extend(0..=n);
        for k in 1..=total as usize {
            for i in 0..=n {
                let prev = reach[(k - 1) * (n + 1) + i];
                reach.push(g[prev]);
            }
        }
        Feasibility {
            n,
            reach,
            total,
            words,
            counts: classes.iter().map(|c| c.devices.len() as u32).collect(),
            valid,
            maxlen,
            failed: HashSet::new(),
            deadline: None,
            calls: 0,
            timed_out: false,
        }
    }

    /// A plan as (class, i, j) shards if one exists within the bound.
    pub(crate) fn solve(&mut self) -> Option<Vec<(usize, usize, usize)>> {
        let mut path = Vec::new();
        if self.dfs(0, 0, &mut path) {
            path.reverse();
            Some(path)
        } else {
            None
        }
    }

    fn used(packed: u128, c: usize) -> u32 {
        ((packed >> (8 * c)) & 0xff) as u32
    }

    fn dfs(&mut self, i: usize, used: u128, path: &mut Vec<(usize, usize, usize)>) -> bool {
        if i == self.n {
            return true;
        }
        if self.failed.contains(&(i, used)) || self.timed_out {
            return false;
        }
        self.calls += 1;
        if self.calls.is_multiple_of(4096) && self.deadline.is_some_and(|d| Instant::now() > d) {
            self.timed_out = true;
            return false;
        }
        let capacity: usize = (0..self.counts.len())
            .map(|c| (self.counts[c] - Self::used(used, c)) as usize * self.maxlen[c])
            .sum();
        let left = self.total
            - (0..self.counts.len())
                .map(|c| Self::used(used, c))
                .sum::<u32>();
        if capacity >= self.n - i && self.reach[left as usize * (self.n + 1) + i] >= self.n {
            for c in 0..self.counts.len() {
                if Self::used(used, c) >= self.counts[c] {
                    continue;
                }
                let base = (c * self.n + i) * self.words;
                let ends = bitset::descending(&self.valid[base..base + self.words]);
                for j in ends {
                    if self.dfs(j, used + (1u128 << (8 * c)), path) {
                        path.push((c, i, j));
                        return true;
                    }
                }
            }
        }
        if !self.timed_out {
            self.failed.insert((i, used));
        }
        false
    }
}

/// Maps class shards onto concrete devices, taking each class's hosts in fleet order.
fn to_devices(classes: &[Class], shards: &[(usize, usize, usize)]) -> Vec<(usize, usize, usize)> {
    let mut next = vec![0usize; classes.len()];
    shards
        .iter()
        .map(|&(c, i, j)| {
            let d = classes[c].devices[next[c]];
            next[c] += 1;
            (d, i + 1, j)
        })
        .collect()
}

fn check_limits(classes: &[Class]) -> Result<(), PlanError> {
    let per_class = classes.iter().map(|c| c.devices.len()).max().unwrap_or(0);
    if classes.len() > 16 || per_class > 127 {
        return Err(PlanError::TooManyClasses {
            classes: classes.len(),
            per_class,
        });
    }
    Ok(())
}

/// Explains why no plan exists: a unit too large for every device, the fleet's memory as a
/// whole, or (if memory alone could be satisfied) the links.
pub fn diagnose(cm: &CostModel) -> PlanError {
    let n = cm.n;
    let largest = cm
        .fleet
        .devices
        .iter()
        .map(|d| d.mem_bytes)
        .max()
        .unwrap_or(0);
    for u in 1..=n {
        let need = cm.mem_required(u - 1, u);
        if need > largest {
            return PlanError::UnitTooLarge {
                unit: u,
                required_bytes: need,
                largest_bytes: largest,
            };
        }
    }
    let cl = classes(cm);
    if let Err(e) = check_limits(&cl) {
        return e;
    }
    let mut f = Feasibility::new(cm, &cl, f64::INFINITY, false);
    if f.solve().is_some() {
        return PlanError::NoUsableLink;
    }
    PlanError::FleetMemoryExhausted {
        model_bytes: cm.model.weight_bytes.iter().sum(),
        fleet_bytes: cm.fleet.devices.iter().map(|d| d.mem_bytes).sum(),
        devices: cm.devices(),
    }
}

/// Optimal `(device, l, r)` stages under nominal-bandwidth links.
pub fn solve(cm: &CostModel) -> Result<Vec<(usize, usize, usize)>, PlanError> {
    solve_within(cm, None)
}

/// [`solve`] that gives up with [`PlanError::Deadline`] once `deadline` passes.
pub fn solve_within(
    cm: &CostModel,
    deadline: Option<Instant>,
) -> Result<Vec<(usize, usize, usize)>, PlanError> {
    let cl = classes(cm);
    check_limits(&cl)?;
    let cands = candidates(cm, &cl);
    let Some(&top) = cands.last() else {
        return Err(diagnose(cm));
    };
    let mut f = Feasibility::new(cm, &cl, top, true);
    f.deadline = deadline;
    let found = f.solve();
    if f.timed_out {
        return Err(PlanError::Deadline);
    }
    let Some(mut best) = found else {
        return Err(diagnose(cm));
    };
    // Invariant: cands[hi] feasible (best is its plan); everything below lo infeasible.
    let (mut lo, mut hi) = (0usize, cands.len() - 1);
    while lo < hi {
        let mid = (lo + hi) / 2;
        let mut f = Feasibility::new(cm, &cl, cands[mid], true);
        f.deadline = deadline;
        let found = f.solve();
        if f.timed_out {
            return Err(PlanError::Deadline);
        }
        match found {
            Some(p) => {
                best = p;
                hi = mid;
            }
            None => lo = mid + 1,
        }
    }
    Ok(to_devices(&cl, &best))
}
