//! Planning with a measured per-link bandwidth matrix.
//!
//! With arbitrary pairwise bandwidths, devices are no longer interchangeable: the transfer of a cut
//! depends on which two devices it joins, so the order of devices matters.
//!
//! - **Exact, up to [`EXACT_MAX_DEVICES`] devices**: binary search on the bottleneck over the
//!   finite set of values it can take, with a feasibility DP over (set of used devices, last
//!   device) whose value is the bitset of cuts where that last device's shard can end.
//!   `2^D * D^2 * n` bit operations per check.
//! - **Heuristic, beyond**: (1) give every device a nominal bandwidth, the median of the links it
//!   has, and solve that class problem exactly; (2) take the resulting device order and improve
//!   it by local search (swap two stages, replace a stage's device with an unused one, drop a
//!   stage, insert an unused device), re-cutting each candidate order optimally with an
//!   `O(k n^2)` min-max DP; stop when no move improves. The result is always a valid plan, and its
//!   gap to the exact optimum on 8-12 device instances is reported by [`heuristic_gap`].

use serde::{Deserialize, Serialize};

use super::bitset;
use super::cost::CostModel;
use super::error::PlanError;
use super::exact;
use super::random::{random_instance, seeded};
use rand::Rng as _;

/// `(device, l, r)` stages.
pub type Stages = Vec<(usize, usize, usize)>;

/// Largest fleet the exact per-link planner accepts.
pub const EXACT_MAX_DEVICES: usize = 12;

/// Every value the bottleneck of a plan can take over this fleet's links, sorted, finite.
fn candidates(cm: &CostModel) -> Vec<f64> {
    // One device per (type, memory): the others compute the same shards in the same time.
    let mut seen_types: Vec<(usize, u64)> = Vec::new();
    let representatives: Vec<usize> = (0..cm.devices())
        .filter(|&d| {
            let key = (cm.type_index(d), cm.fleet.devices[d].mem_bytes);
            let new = !seen_types.contains(&key);
            if new {
                seen_types.push(key);
            }
            new
        })
        .collect();
    let devices = cm.devices();
    let links = (0..devices)
        .flat_map(|a| (0..devices).filter(move |&b| b != a).map(move |b| (a, b)))
        .map(|(a, b)| cm.link_mbps(a, b));
    cm.bottleneck_candidates(representatives, links)
}

/// Subset-DP feasibility for bound `limit`; returns stages when feasible.
fn feasible(cm: &CostModel, limit: f64) -> Option<Vec<(usize, usize, usize)>> {
    let (n, dn) = (cm.n, cm.devices());
    let w = bitset::words_for(n + 1);
    // shard[d][i]: ends j of usable shards (i, j] on d.
    let mut shard = vec![0u64; dn * n * w];
    for d in 0..dn {
        for i in 0..n {
            let row = &mut shard[(d * n + i) * w..(d * n + i + 1) * w];
            for j in i + 1..=n {
                if cm.compute(d, i, j) > limit {
                    break;
                }
                if cm.fits(d, i, j) {
                    bitset::set(row, j);
                }
            }
        }
    }
    // link[u][v]: cuts 1..n-1 whose transfer u -> v fits the bound.
    let mut link = vec![0u64; dn * dn * w];
    for u in 0..dn {
        for v in 0..dn {
            if u == v {
                continue;
            }
            let mbps = cm.link_mbps(u, v);
            let row = &mut link[(u * dn + v) * w..(u * dn + v + 1) * w];
            for cut in 1..n {
                if cm.min_transfer(cut, mbps) <= limit {
                    bitset::set(row, cut);
                }
            }
        }
    }
    let sh = |d: usize, i: usize| &shard[(d * n + i) * w..(d * n + i + 1) * w];
    let lk = |u: usize, v: usize| &link[(u * dn + v) * w..(u * dn + v + 1) * w];
    let idx = |s: usize, u: usize| (s * dn + u) * w;
    let mut dp = vec![0u64; (1usize << dn) * dn * w];
    for d in 0..dn {
        let at = idx(1 << d, d);
        dp[at..at + w].copy_from_slice(sh(d, 0));
    }
    let mut found = None;
    let mut tmp = vec![0u64; w];
    'outer: for s in 1usize..(1 << dn) {
        for u in 0..dn {
            if s >> u & 1 == 0 {
                continue;
            }
            let at = idx(s, u);
            if dp[at..at + w].iter().all(|x| *x == 0) {
                continue;
            }
            if bitset::get(&dp[at..at + w], n) {
                found = Some((s, u));
                break 'outer;
            }
            for v in 0..dn {
                if s >> v & 1 == 1 {
                    continue;
                }
                tmp.iter_mut().for_each(|x| *x = 0);
                let l = lk(u, v);
                for k in 0..w {
                    let ends = dp[at + k] & l[k];
                    let mut x = ends;
                    while x != 0 {
                        let i = k * 64 + x.trailing_zeros() as usize;
                        for (t, s2) in tmp.iter_mut().zip(sh(v, i)) {
                            *t |= s2;
                        }
                        x &= x - 1;
                    }
                }
                let to = idx(s | 1 << v, v);
                for (d, t) in dp[to..to + w].iter_mut().zip(&tmp) {
                    *d |= t;
                }
            }
        }
    }
    let (mut s, mut u) = found?;
    let mut end = n;
    let mut stages = Vec::new();
    loop {
        if s == 1 << u {
            debug_assert!(bitset::get(sh(u, 0), end));
            stages.push((u, 1, end));
            break;
        }
        let prev_s = s & !(1 << u);
        let mut step = None;
        'search: for p in 0..dn {
            if prev_s >> p & 1 == 0 {
                continue;
            }
            let at = idx(prev_s, p);
            for i in 1..end {
                if bitset::get(&dp[at..at + w], i)
                    && bitset::get(lk(p, u), i)
                    && bitset::get(sh(u, i), end)
                {
                    step = Some((p, i));
                    break 'search;
                }
            }
        }
        let (p, i) = step.expect("dp bit without a predecessor");
        stages.push((u, i + 1, end));
        s = prev_s;
        u = p;
        end = i;
    }
    stages.reverse();
    Some(stages)
}

/// Exact optimum with the link matrix (at most [`EXACT_MAX_DEVICES`] devices).
pub fn solve_exact(cm: &CostModel) -> Result<Vec<(usize, usize, usize)>, PlanError> {
    if cm.devices() > EXACT_MAX_DEVICES {
        return Err(PlanError::TooManyDevices {
            devices: cm.devices(),
            max: EXACT_MAX_DEVICES,
        });
    }
    let cands = candidates(cm);
    let Some(&top) = cands.last() else {
        return Err(exact::diagnose(cm));
    };
    let Some(mut best) = feasible(cm, top) else {
        return Err(exact::diagnose(cm));
    };
    let (mut lo, mut hi) = (0usize, cands.len() - 1);
    while lo < hi {
        let mid = (lo + hi) / 2;
        match feasible(cm, cands[mid]) {
            Some(p) => {
                best = p;
                hi = mid;
            }
            None => lo = mid + 1,
        }
    }
    Ok(best)
}

/// Optimal cuts for a fixed device order, every device used: min-max DP in `O(k n^2)`.
/// Returns the bottleneck and stages, or `None` when no cut fits memory and links.
#[allow(clippy::needless_range_loop)] // j indexes the DP row and is the cut itself
pub fn cut_fixed_order(cm: &CostModel, order: &[usize]) -> Option<(f64, Stages)> {
    let (n, k) = (cm.n, order.len());
    if k == 0 || k > n {
        return None;
    }
    let inf = f64::INFINITY;
    // f[p][j]: best bottleneck with order[..=p] covering units 1..=j, order[p] ending at j.
    let mut f = vec![vec![inf; n + 1]; k];
    let mut arg = vec![vec![0usize; n + 1]; k];
    for j in 1..=n {
        if cm.fits(order[0], 0, j) {
            f[0][j] = cm.compute(order[0], 0, j);
        }
    }
    for p in 1..k {
        let (a, b) = (order[p - 1], order[p]);
        let mbps = cm.link_mbps(a, b);
        for i in p..n {
            let base = f[p - 1][i];
            if !base.is_finite() {
                continue;
            }
            let head = base.max(cm.min_transfer(i, mbps));
            if !head.is_finite() {
                continue;
            }
            for j in i + 1..=n {
                if !cm.fits(b, i, j) {
                    continue;
                }
                let v = head.max(cm.compute(b, i, j));
                if v < f[p][j] {
                    f[p][j] = v;
                    arg[p][j] = i;
                }
            }
        }
    }
    let best = f[k - 1][n];
    if !best.is_finite() {
        return None;
    }
    let mut stages = Vec::with_capacity(k);
    let mut j = n;
    for p in (0..k).rev() {
        let i = if p == 0 { 0 } else { arg[p][j] };
        stages.push((order[p], i + 1, j));
        j = i;
    }
    stages.reverse();
    Some((best, stages))
}

/// The documented heuristic: class plan on median link bandwidths, then local search over the
/// device order with optimal re-cutting.
pub fn solve_heuristic(cm: &CostModel) -> Result<Vec<(usize, usize, usize)>, PlanError> {
    let dn = cm.devices();
    // (1) Nominal bandwidth = median of the device's outgoing and incoming links.
    let mut nominal = cm.fleet.clone();
    nominal.links = None;
    for (d, dev) in nominal.devices.iter_mut().enumerate() {
        let mut bws: Vec<f64> = (0..dn)
            .filter(|&o| o != d)
            .flat_map(|o| [cm.link_mbps(d, o), cm.link_mbps(o, d)])
            .collect();
        bws.sort_by(f64::total_cmp);
        dev.bw_mbps = bws.get(bws.len() / 2).copied().unwrap_or(dev.bw_mbps);
    }
    let ncm = CostModel::new(cm.model, &nominal, cm.cfg)?;
    let mut order: Vec<usize> = match exact::solve(&ncm) {
        Ok(stages) => stages.iter().map(|s| s.0).collect(),
        Err(_) => vec![(0..dn)
            .max_by_key(|&d| cm.fleet.devices[d].mem_bytes)
            .unwrap_or(0)],
    };
    let mut best = cut_fixed_order(cm, &order);
    // (2) First-improvement local search over the order.
    loop {
        let cur = best.as_ref().map_or(f64::INFINITY, |b| b.0);
        let unused: Vec<usize> = (0..dn).filter(|d| !order.contains(d)).collect();
        let mut moves: Vec<Vec<usize>> = Vec::new();
        for a in 0..order.len() {
            for b in a + 1..order.len() {
                let mut o = order.clone();
                o.swap(a, b);
                moves.push(o);
            }
            for &u in &unused {
                let mut o = order.clone();
                o[a] = u;
                moves.push(o);
            }
            if order.len() > 1 {
                let mut o = order.clone();
                o.remove(a);
                moves.push(o);
            }
        }
        for pos in 0..=order.len() {
            for &u in &unused {
                let mut o = order.clone();
                o.insert(pos, u);
                moves.push(o);
            }
        }
        let improved = moves.into_iter().find_map(|o| {
            cut_fixed_order(cm, &o)
                .filter(|r| r.0 < cur)
                .map(|r| (o, r))
        });
        match improved {
            Some((o, r)) => {
                order = o;
                best = Some(r);
            }
            None => break,
        }
    }
    match best {
        Some((_, stages)) => Ok(stages),
        // The heuristic found nothing: fall back to the exact answer when it is affordable,
        // else explain why.
        None if dn <= EXACT_MAX_DEVICES => solve_exact(cm),
        None => Err(exact::diagnose(cm)),
    }
}

/// Exact when the fleet is small enough, the heuristic beyond.
pub fn solve(cm: &CostModel) -> Result<Vec<(usize, usize, usize)>, PlanError> {
    if cm.devices() <= EXACT_MAX_DEVICES {
        solve_exact(cm)
    } else {
        solve_heuristic(cm)
    }
}

/// The heuristic's gap to the exact optimum over random instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GapReport {
    pub instances: usize,
    /// Instances where some plan exists (the gap is computed over these).
    pub feasible: usize,
    /// Instances where the heuristic matched the optimum.
    pub optimal: usize,
    /// Mean and max of heuristic bottleneck / exact bottleneck - 1.
    pub mean_gap: f64,
    pub max_gap: f64,
    pub min_devices: usize,
    pub max_devices: usize,
    pub units: usize,
    pub seed: u64,
}

/// Runs the heuristic and the exact planner on `instances` random fleets of 8-12 devices with
/// random link matrices and reports the gap.
pub fn heuristic_gap(instances: usize, units: usize, seed: u64) -> Result<GapReport, PlanError> {
    let mut rng = seeded(seed);
    let (mut feasible_n, mut optimal, mut sum, mut max) = (0, 0, 0.0, 0.0f64);
    for _ in 0..instances {
        let devices = rng.random_range(8..=12);
        let (model, fleet, cfg) = random_instance(&mut rng, units, devices, 3, true);
        let cm = CostModel::new(&model, &fleet, &cfg)?;
        let Ok(ex) = solve_exact(&cm) else {
            continue;
        };
        let ex = cm.evaluate(&ex, "exact")?.bottleneck_s;
        let h = cm
            .evaluate(&solve_heuristic(&cm)?, "heuristic")?
            .bottleneck_s;
        let gap = h / ex - 1.0;
        feasible_n += 1;
        if gap <= 1e-12 {
            optimal += 1;
        }
        sum += gap;
        max = max.max(gap);
    }
    Ok(GapReport {
        instances,
        feasible: feasible_n,
        optimal,
        mean_gap: if feasible_n > 0 {
            sum / feasible_n as f64
        } else {
            0.0
        },
        max_gap: max,
        min_devices: 8,
        max_devices: 12,
        units,
        seed,
    })
}
