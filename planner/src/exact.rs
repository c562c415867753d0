//! The exact EdgePipe optimum when every link runs at the smaller of its two ends' nominal
//! bandwidths.
//!
//! Devices with the same (type, memory, bandwidth) are interchangeable, so they form a *class* and
//! a partial plan is described by how many devices of each class it has used. Planning hosts by
//! class count (not by type index, as the reference scheduler does) is what makes fleets with many
//! hosts per type come out right.
//!
//! # Algorithm
//!
//! A min-max DP over (next unit, multiset of used devices, next class) is
//! `n^2 * prod(count+1) * classes^2`, far too slow for 64 devices of 8 types. Instead we
//! binary-search the bottleneck over the finite set of values it can take (every shard compute
//! time that fits memory, every cut transfer time at every class bandwidth; `O(k n^2)` values for
//! k classes, so `O(log(k n))` checks) and answer "is there a plan with bottleneck <= B?"
//! exactly:
//!
//! 1. **Usable shards.** With link bandwidth `min(bw_u, bw_v)`, the transfer of cut j fits in B
//!    iff it fits on *both* ends' bandwidth. So whether shard (i, j] on class c is usable depends on
//!    c alone: compute <= B, memory fits, and the cuts at both of its ends fit c's bandwidth
//!    ([`Shards`], `O(k n^2)`). That removes the "next class" from the state. The usable ends of a
//!    shard starting at i are *not* an interval (memory and the cut's payload depend on where the
//!    shard ends: after u0/u2 two tensors cross), so "take the longest shard" is not an exchange
//!    argument we can rely on; every usable end is a branch.
//! 2. **Pareto search** ([`solve_pareto`]). Cuts are processed left to right; at each cut we keep
//!    only the usage vectors (devices used per class) that are minimal: if chains reach cut i
//!    with usages `v <= u` componentwise, any completion of the `u` chain from i (it depends only
//!    on i and on the devices left) also completes the `v` chain, so dropping `u` loses no plan.
//! 3. **Lagrangian pruning** ([`Bound`]). For weights `w >= 0` per class, the lightest chain of
//!    usable shards from cut i to n (device counts ignored) weighs `h(i)`; a state at cut i having
//!    used `u` is dropped when `h(i) + w.u > w.count`, because every plan through it would weigh
//!    more than the fleet has to spend. This is valid for any `w`; we use `w = 1` (fewest devices
//!    to reach n) and weights from a few subgradient steps on the Lagrangian dual, which is
//!    tight near the optimal bottleneck, where the fronts are then small. When a lightest chain
//!    already respects the counts it *is* a plan and the check ends there.
//! 4. **Beam probe** ([`check_bound`]). When B is loose the fronts are wide but plans are
//!    plentiful, so the Pareto search first runs keeping only the [`BEAM`] vectors with the most
//!    Lagrangian slack per cut. A plan it finds is valid; if it finds none, that proves nothing and
//!    the full search decides. The verdict of every check is therefore exact.
//!
//! Complexity of one check: `O(k n^2)` to build the shard table and each bound, then
//! `O(sum_i F_i (F_i + k * E))` for fronts of size `F_i` and `E` usable ends per shard start.
//! `F_i` is exponential in k in the worst case (an antichain of usage vectors), but small in
//! practice: the beam caps it where B is loose and the bound prunes it where B is tight. On
//! ViT-Huge (128 units), 16 devices of 4 types plan in about 10 ms and 64 devices of 8 types in
//! about 90 ms (`quantpipe bench planner`).
//!
//! The older depth-first check ([`Dfs`]: longest shards first, a memo of failed states and a
//! capacity bound) stays as an independent reference: [`feasible`] runs either, and the property
//! tests hold them to the same verdicts and both planners to exhaustive search.

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
    let representatives = classes.iter().map(|c| c.devices[0]);
    cm.bottleneck_candidates(representatives, classes.iter().map(|c| c.bw_mbps))
}

/// Shards `(class or device, start cut or first unit, end)` in pipeline order.
pub type Chain = Vec<(usize, usize, usize)>;

/// The deadline passed before the check could decide.
#[derive(Debug)]
pub(crate) struct Timeout;

/// Devices used per class, one byte per class (at most 16 classes of at most 127 devices, which
/// [`check_limits`] enforces), so that adding a device is one addition and componentwise
/// comparison is a few word operations.
type Usage = u128;

/// The high bit of every byte of a [`Usage`].
const HIGH: Usage = 0x8080_8080_8080_8080_8080_8080_8080_8080;

fn used(u: Usage, c: usize) -> u32 {
    ((u >> (8 * c)) & 0xff) as u32
}

fn one(c: usize) -> Usage {
    1 << (8 * c)
}

/// `a <= b` in every class (bytes are below 128, so no byte borrows from the next).
fn covers(a: Usage, b: Usage) -> bool {
    ((b | HIGH) - a) & HIGH == HIGH
}

fn total(u: Usage) -> u32 {
    u.to_le_bytes().iter().map(|&b| u32::from(b)).sum()
}

/// Which shards each class may run under one bottleneck bound.
pub(crate) struct Shards {
    n: usize,
    words: usize,
    counts: Vec<u32>,
    /// valid[(c * n + i) * words ..]: bit j set iff class c may run shard (i, j].
    valid: Vec<u64>,
    /// Per class, the most units any usable shard covers.
    maxlen: Vec<usize>,
}

impl Shards {
    /// `limit`: bottleneck bound; `links`: whether transfers must fit within it too.
    ///
    /// With link bandwidth `min(bw_u, bw_v)`, the transfer of a cut fits within the bound iff it
    /// fits on both ends' bandwidth, so shard (i, j] on class c is usable iff its compute is
    /// within the bound, it fits c's memory, and the cuts i and j fit c's bandwidth.
    #[allow(clippy::needless_range_loop)] // j is a cut index into several tables
    pub(crate) fn new(cm: &CostModel, classes: &[Class], limit: f64, links: bool) -> Self {
        let n = cm.n;
        let words = bitset::words_for(n + 1);
        let mut valid = vec![0u64; classes.len() * n * words];
        let mut maxlen = vec![0usize; classes.len()];
        for (c, class) in classes.iter().enumerate() {
            let d = class.devices[0];
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
        Shards {
            n,
            words,
            counts: classes.iter().map(|c| c.devices.len() as u32).collect(),
            valid,
            maxlen,
        }
    }

    fn classes(&self) -> usize {
        self.counts.len()
    }

    /// Ends j of the shards (i, j] class c may run, as a bitset.
    fn ends(&self, c: usize, i: usize) -> &[u64] {
        let base = (c * self.n + i) * self.words;
        &self.valid[base..base + self.words]
    }
}

/// A Lagrangian relaxation of the device counts: with a weight `w[c]` per device of class c,
/// `h[i]` is the least total weight of any chain of usable shards from cut i to n, ignoring how
/// many devices each class has. A plan from cut i that still has `count[c] - used[c]` devices of
/// class c weighs at least `h[i]` and at most `sum w[c] (count[c] - used[c])`, so a state where
/// the first exceeds the second cannot be completed. Any non-negative weights give a valid test;
/// the weights only decide how much it prunes.
struct Bound {
    w: Vec<u64>,
    /// `u64::MAX`: no chain of shards reaches n from this cut.
    h: Vec<u64>,
    budget: u64,
}

impl Bound {
    /// The bound for weights `w`, and the first shard `(class, end)` of a lightest chain from
    /// each cut.
    fn new(sh: &Shards, w: Vec<u64>) -> (Self, Vec<(usize, usize)>) {
        let n = sh.n;
        let mut h = vec![u64::MAX; n + 1];
        let mut next = vec![(usize::MAX, n); n + 1];
        h[n] = 0;
        for i in (0..n).rev() {
            for (c, &wc) in w.iter().enumerate() {
                bitset::for_each(sh.ends(c, i), |j| {
                    if h[j] != u64::MAX && h[j] + wc < h[i] {
                        h[i] = h[j] + wc;
                        next[i] = (c, j);
                    }
                });
            }
        }
        let budget = w
            .iter()
            .zip(&sh.counts)
            .map(|(&wc, &k)| wc * u64::from(k))
            .sum();
        (Bound { w, h, budget }, next)
    }

    /// Least weight of any plan through a state at cut `i` having used `u` (`u64::MAX`: none).
    fn spent(&self, i: usize, u: Usage) -> u64 {
        let h = self.h[i];
        if h == u64::MAX {
            return u64::MAX;
        }
        let spent: u64 = self
            .w
            .iter()
            .enumerate()
            .map(|(c, &wc)| wc * u64::from(used(u, c)))
            .sum();
        h + spent
    }

    /// Whether a state at cut `i` having used `u` may still reach n.
    fn open(&self, i: usize, u: Usage) -> bool {
        self.spent(i, u) <= self.budget
    }
}

/// Scale of the integer Lagrangian weights.
const WEIGHT_SCALE: f64 = 1e6;
/// Subgradient steps spent choosing the weights.
const SUBGRADIENT_STEPS: usize = 40;

/// The bounds the Pareto search prunes with, or a plan if a lightest chain already respects
/// the device counts (then the bound is feasible and no search is needed).
fn bounds(sh: &Shards) -> Result<Vec<Bound>, Vec<(usize, usize, usize)>> {
    let k = sh.classes();
    let chain = |next: &[(usize, usize)]| {
        let mut out = Vec::new();
        let mut i = 0;
        while i < sh.n {
            let (c, j) = next[i];
            out.push((c, i, j));
            i = j;
        }
        out
    };
    let fits_counts = |shards: &[(usize, usize, usize)]| {
        let mut u = vec![0u32; k];
        for &(c, _, _) in shards {
            u[c] += 1;
        }
        u.iter().zip(&sh.counts).all(|(a, b)| a <= b)
    };
    let mut out = Vec::new();
    // Devices count: the fewest devices that reach n.
    let (ones, next) = Bound::new(sh, vec![1; k]);
    if ones.h[0] != u64::MAX {
        let c = chain(&next);
        if fits_counts(&c) {
            return Err(c);
        }
    }
    out.push(ones);
    if out[0].h[0] == u64::MAX || !out[0].open(0, 0) {
        return Ok(out);
    }
    // Subgradient ascent on the dual, starting from "a device of class c is worth the units
    // it can cover at most": raise the weight of over-used classes, lower the others.
    let mut lambda: Vec<f64> = sh
        .maxlen
        .iter()
        .map(|&m| if m > 0 { 1.0 / m as f64 } else { 1.0 })
        .collect();
    let mut best: Option<(i128, Bound)> = None;
    for step in 0..SUBGRADIENT_STEPS {
        let w: Vec<u64> = lambda
            .iter()
            .map(|l| (l * WEIGHT_SCALE).round().max(0.0) as u64)
            .collect();
        let (b, next) = Bound::new(sh, w);
        let c = chain(&next);
        if fits_counts(&c) {
            return Err(c);
        }
        let gap = i128::from(b.h[0]) - i128::from(b.budget);
        let mut g = vec![0f64; k];
        for &(cl, _, _) in &c {
            g[cl] += 1.0;
        }
        for (gc, &cnt) in g.iter_mut().zip(&sh.counts) {
            *gc -= f64::from(cnt);
        }
        let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
        let better = best.as_ref().is_none_or(|(bg, _)| gap > *bg);
        let done = gap > 0;
        if better {
            best = Some((gap, b));
        }
        if done || norm == 0.0 {
            break;
        }
        let mean = lambda.iter().sum::<f64>() / k as f64;
        let alpha = mean / (1.0 + step as f64 / 4.0);
        for (l, gc) in lambda.iter_mut().zip(&g) {
            *l = (*l + alpha * gc / norm).max(0.0);
        }
    }
    if let Some((_, b)) = best {
        out.push(b);
    }
    Ok(out)
}

/// One state of the Pareto search: the chain of shards that reaches cut `end` having used
/// `usage`, ending with class `class` on (start, end].
struct Node {
    usage: Usage,
    parent: u32,
    class: u8,
    start: u16,
    end: u16,
}

/// Whether a plan within the bound exists, by a forward search over cuts that keeps, at each cut,
/// only the usage vectors no other vector reaching the same cut is below in every class.
///
/// Exact: if a chain reaches cut i with usage `u` and another with usage `v <= u`, every
/// completion of the first from cut i (which only depends on i and on the devices left) also
/// completes the second, so dropping `u` loses no plan. Every usable shard end is tried (not just
/// the longest: which cuts a class may end at depends on the cut's payload and memory, so a
/// shorter shard can be the only way on), and states are dropped only when a [`Bound`] proves they
/// cannot reach n.
///
pub(crate) fn solve_pareto(
    sh: &Shards,
    beam: Option<usize>,
    deadline: Option<Instant>,
) -> Result<Option<Chain>, Timeout> {
    let n = sh.n;
    let bounds = match bounds(sh) {
        Ok(b) => b,
        Err(plan) => return Ok(Some(plan)),
    };
    if !bounds.iter().all(|b| b.open(0, 0)) {
        return Ok(None);
    }
    let open = |i: usize, u: Usage| bounds.iter().all(|b| b.open(i, u));
    let mut nodes = vec![Node {
        usage: 0,
        parent: u32::MAX,
        class: 0,
        start: 0,
        end: 0,
    }];
    let mut pending: Vec<Vec<u32>> = vec![Vec::new(); n + 1];
    pending[0].push(0);
    let mut front: Vec<(u32, Usage, u32)> = Vec::new();
    let mut kept: Vec<(u32, Usage)> = Vec::new();
    for i in 0..n {
        front.clear();
        front.extend(pending[i].drain(..).map(|id| {
            let u = nodes[id as usize].usage;
            (total(u), u, id)
        }));
        front.sort_unstable_by_key(|&(t, u, _)| (t, u));
        front.dedup_by_key(|&mut (_, u, _)| u);
        kept.clear();
        for &(_, u, id) in front.iter() {
            // Sorted by total: only a vector already kept can be below u.
            if !kept.iter().any(|&(_, k)| covers(k, u)) {
                kept.push((id, u));
            }
        }
        if let Some(width) = beam {
            if kept.len() > width {
                let slack = bounds.last().expect("at least the device-count bound");
                kept.sort_by_cached_key(|&(_, u)| slack.spent(i, u));
                kept.truncate(width);
            }
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            return Err(Timeout);
        }
        for &(id, u) in kept.iter() {
            for c in 0..sh.classes() {
                if used(u, c) >= sh.counts[c] {
                    continue;
                }
                let v = u + one(c);
                let mut done = None;
                bitset::for_each(sh.ends(c, i), |j| {
                    if done.is_some() || !open(j, v) {
                        return;
                    }
                    nodes.push(Node {
                        usage: v,
                        parent: id,
                        class: c as u8,
                        start: i as u16,
                        end: j as u16,
                    });
                    let new = (nodes.len() - 1) as u32;
                    if j == n {
                        done = Some(new);
                    } else {
                        pending[j].push(new);
                    }
                });
                if let Some(mut at) = done {
                    let mut plan = Vec::new();
                    while nodes[at as usize].parent != u32::MAX {
                        let nd = &nodes[at as usize];
                        plan.push((nd.class as usize, nd.start as usize, nd.end as usize));
                        at = nd.parent;
                    }
                    plan.reverse();
                    return Ok(Some(plan));
                }
            }
        }
    }
    Ok(None)
}

/// The depth-first check this planner used before [`solve_pareto`]: longest shards first, a memo
/// of failed (cut, usage) states and a capacity bound. Exact but exponential on large fleets when
/// the bound is infeasible; kept as a second, independent check of [`solve_pareto`].
pub(crate) struct Dfs<'a> {
    sh: &'a Shards,
    /// reach[k * (n + 1) + i]: no k shards of any classes starting at cut i get past this cut
    /// (k-fold composition of the monotone "furthest end from here or earlier").
    reach: Vec<usize>,
    total: u32,
    /// (cut, usage) states from which unit n cannot be reached.
    failed: HashSet<(usize, Usage)>,
}

impl<'a> Dfs<'a> {
    pub(crate) fn new(sh: &'a Shards) -> Self {
        let n = sh.n;
        // g(i) = furthest end of any usable shard starting at or before i (monotone).
        let mut g = vec![0usize; n + 1];
        for i in 0..=n {
            let mut best = if i > 0 { g[i - 1].max(i) } else { 0 };
            if i < n {
                for c in 0..sh.classes() {
                    if let Some(&j) = bitset::descending(sh.ends(c, i)).first() {
                        best = best.max(j);
                    }
                }
            }
            g[i] = best;
        }
        let total: u32 = sh.counts.iter().sum();
        let mut reach = Vec::with_capacity((total as usize + 1) * (n + 1));
        reach.extend(0..=n);
        for k in 1..=total as usize {
            for i in 0..=n {
                let prev = reach[(k - 1) * (n + 1) + i];
                reach.push(g[prev]);
            }
        }
        Dfs {
            sh,
            reach,
            total,
            failed: HashSet::new(),
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

    fn dfs(&mut self, i: usize, u: Usage, path: &mut Vec<(usize, usize, usize)>) -> bool {
        let sh = self.sh;
        let n = sh.n;
        if i == n {
            return true;
        }
        if self.failed.contains(&(i, u)) {
            return false;
        }
        let k = sh.classes();
        let capacity: usize = (0..k)
            .map(|c| (sh.counts[c] - used(u, c)) as usize * sh.maxlen[c])
            .sum();
        let left = self.total - total(u);
        if capacity >= n - i && self.reach[left as usize * (n + 1) + i] >= n {
            for c in 0..k {
                if used(u, c) >= sh.counts[c] {
                    continue;
                }
                for j in bitset::descending(sh.ends(c, i)) {
                    if self.dfs(j, u + one(c), path) {
                        path.push((c, i, j));
                        return true;
                    }
                }
            }
        }
        self.failed.insert((i, u));
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
    let sh = Shards::new(cm, &cl, f64::INFINITY, false);
    if let Ok(Some(_)) = solve_pareto(&sh, None, None) {
        return PlanError::NoUsableLink;
    }
    PlanError::FleetMemoryExhausted {
        model_bytes: cm.model.weight_bytes.iter().sum(),
        fleet_bytes: cm.fleet.devices.iter().map(|d| d.mem_bytes).sum(),
        devices: cm.devices(),
    }
}

/// Which feasibility check [`feasible`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// What the planner runs: the beam probe, then the full Pareto search if the probe fails.
    Pareto,
    /// The full Pareto search alone.
    ParetoFull,
    /// The older depth-first search, an independent reference.
    Dfs,
}

/// Whether some plan has bottleneck at most `limit` (transfers included), as `(device, l, r)`
/// stages, by the chosen check. The planner's binary search asks exactly this question.
pub fn feasible(cm: &CostModel, limit: f64, check: Check) -> Result<Option<Chain>, PlanError> {
    let cl = classes(cm);
    check_limits(&cl)?;
    let sh = Shards::new(cm, &cl, limit, true);
    let found = match check {
        Check::Pareto => check_bound(&sh, None)?,
        Check::ParetoFull => {
            solve_pareto(&sh, None, None).map_err(|Timeout| PlanError::Deadline)?
        }
        Check::Dfs => Dfs::new(&sh).solve(),
    };
    Ok(found.map(|p| to_devices(&cl, &p)))
}

/// Usage vectors per cut the beam probe of [`check_bound`] keeps.
const BEAM: usize = 64;

/// Whether a plan exists within the bound. A beam probe (the Pareto search keeping at each cut
/// only the [`BEAM`] vectors with the most Lagrangian slack) finds a plan quickly when the bound
/// is loose, where full Pareto fronts are widest; a plan it finds is a plan, but its failure
/// proves nothing, so only then does the full search decide.
fn check_bound(sh: &Shards, deadline: Option<Instant>) -> Result<Option<Chain>, PlanError> {
    let found = solve_pareto(sh, Some(BEAM), deadline).map_err(|Timeout| PlanError::Deadline)?;
    if found.is_some() {
        return Ok(found);
    }
    solve_pareto(sh, None, deadline).map_err(|Timeout| PlanError::Deadline)
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
    let check = |limit: f64| check_bound(&Shards::new(cm, &cl, limit, true), deadline);
    let Some(mut best) = check(top)? else {
        return Err(diagnose(cm));
    };
    // Invariant: cands[hi] feasible (best is its plan); everything below lo infeasible.
    let (mut lo, mut hi) = (0usize, cands.len() - 1);
    while lo < hi {
        let mid = (lo + hi) / 2;
        match check(cands[mid])? {
            Some(p) => {
                best = p;
                hi = mid;
            }
            None => lo = mid + 1,
        }
    }
    Ok(to_devices(&cl, &best))
}
