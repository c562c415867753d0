//! Exhaustive search: every ordered choice of distinct devices and every split of the units over
//! them. Exponential, so limited to small instances; it is the oracle the property tests hold the
//! fast planners to. It prices plans device by device through [`CostModel`] (no classes, no
//! bitsets), so it shares no search logic with the planners it checks.

use super::cost::CostModel;
use super::error::PlanError;

/// Largest instance `solve` accepts.
pub const MAX_DEVICES: usize = 7;
pub const MAX_UNITS: usize = 12;

struct Search<'a, 'b> {
    cm: &'b CostModel<'a>,
    best: f64,
    best_stages: Option<Vec<(usize, usize, usize)>>,
    stages: Vec<(usize, usize, usize)>,
}

impl Search<'_, '_> {
    fn rec(&mut self, i: usize, used: u32, worst: f64) {
        let cm = self.cm;
        if i == cm.n {
            if self.best_stages.is_none() || worst < self.best {
                self.best = worst;
                self.best_stages = Some(self.stages.clone());
            }
            return;
        }
        for d in 0..cm.devices() {
            if used >> d & 1 == 1 {
                continue;
            }
            let transfer = match self.stages.last() {
                Some(&(prev, _, _)) => cm.min_transfer(i, cm.link_mbps(prev, d)),
                None => 0.0,
            };
            if !transfer.is_finite() {
                continue;
            }
            for j in i + 1..=cm.n {
                if !cm.fits(d, i, j) {
                    continue;
                }
                let w = worst.max(transfer).max(cm.compute(d, i, j));
                self.stages.push((d, i + 1, j));
                self.rec(j, used | 1 << d, w);
                self.stages.pop();
            }
        }
    }
}

/// The optimal `(device, l, r)` stages by brute force, or the planners' diagnosis when none fit.
pub fn solve(cm: &CostModel) -> Result<Vec<(usize, usize, usize)>, PlanError> {
    if cm.devices() > MAX_DEVICES || cm.n > MAX_UNITS {
        return Err(PlanError::TooLargeForExhaustive {
            max_devices: MAX_DEVICES,
            max_units: MAX_UNITS,
        });
    }
    let mut s = Search {
        cm,
        best: f64::INFINITY,
        best_stages: None,
        stages: Vec::new(),
    };
    s.rec(0, 0, 0.0);
    s.best_stages.ok_or_else(|| super::exact::diagnose(cm))
}
