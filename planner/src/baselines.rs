//! Baselines users compare EdgePipe against. Each makes `(device, l, r)` stages that are priced
//! by the same [`CostModel::evaluate`] as the optimal plan, so reports are like for like.

use super::cost::CostModel;
use super::error::PlanError;
use super::exact;

/// Equal units per device, devices in fleet order (at most one unit per device at least).
pub fn even(cm: &CostModel) -> Vec<(usize, usize, usize)> {
    let k = cm.devices().min(cm.n);
    let (q, rem) = (cm.n / k, cm.n % k);
    let mut l = 1;
    (0..k)
        .map(|d| {
            let len = q + usize::from(d < rem);
            let s = (d, l, l + len - 1);
            l += len;
            s
        })
        .collect()
}

/// Units in proportion to device memory, devices in fleet order (exo's memory-weighted split).
/// A device whose share rounds to zero units gets none.
pub fn memory(cm: &CostModel) -> Vec<(usize, usize, usize)> {
    let total: u128 = cm
        .fleet
        .devices
        .iter()
        .map(|d| u128::from(d.mem_bytes))
        .sum();
    let n = cm.n as u128;
    let mut cum = 0u128;
    let mut prev = 0usize;
    let mut out = Vec::new();
    for (d, dev) in cm.fleet.devices.iter().enumerate() {
        cum += u128::from(dev.mem_bytes);
        let end = match (n * cum + total / 2).checked_div(total) {
            Some(e) => e as usize,
            None => cm.n * (d + 1) / cm.devices(), // no memory reported: split evenly
        };
        let end = end.min(cm.n);
        if end > prev {
            out.push((d, prev + 1, end));
            prev = end;
        }
    }
    if let Some(last) = out.last_mut() {
        last.2 = cm.n;
    }
    out
}

/// PipeDream-style: plans optimally as if every device were the fleet's most common type (with
/// that type's first host's memory and bandwidth), i.e. identical workers, then maps the stages
/// onto the real devices in fleet order. The caller evaluates the result on the real fleet.
pub fn pipedream(cm: &CostModel) -> Result<Vec<(usize, usize, usize)>, PlanError> {
    let devs = &cm.fleet.devices;
    let mut counts: Vec<(&str, usize, usize)> = Vec::new(); // (type, count, first host)
    for (i, d) in devs.iter().enumerate() {
        match counts.iter_mut().find(|c| c.0 == d.device_type) {
            Some(c) => c.1 += 1,
            None => counts.push((&d.device_type, 1, i)),
        }
    }
    let reference = counts
        .iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)))
        .map(|c| &devs[c.2])
        .ok_or(PlanError::NoDevices)?;
    let mut uniform = cm.fleet.clone();
    uniform.links = None;
    for d in uniform.devices.iter_mut() {
        d.device_type = reference.device_type.clone();
        d.mem_bytes = reference.mem_bytes;
        d.bw_mbps = reference.bw_mbps;
    }
    let ucm = CostModel::new(cm.model, &uniform, cm.cfg)?;
    let stages = exact::solve(&ucm)?;
    // Identical workers: the k-th stage runs on the k-th device of the fleet.
    Ok(stages
        .iter()
        .enumerate()
        .map(|(k, &(_, l, r))| (k, l, r))
        .collect())
}
