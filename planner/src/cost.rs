//! The cost model shared by every planner, baseline and test oracle, so that they all agree on
//! what a plan costs: prefix sums of compute time and weights, memory per shard, wire bytes and
//! transfer time per cut, and `evaluate`, which turns stages into a [`Plan`].

use super::bits::{transfer_seconds, wire_bytes};
use super::error::PlanError;
use super::plan::{BottleneckKind, Plan, Stage};
use super::types::{Fleet, ModelProfile, PlanConfig};

/// Precomputed costs for one (model, fleet, config).
#[derive(Debug, Clone)]
pub struct CostModel<'a> {
    pub model: &'a ModelProfile,
    pub fleet: &'a Fleet,
    pub cfg: &'a PlanConfig,
    pub n: usize,
    /// Per device: index into `prefix`.
    dev_type: Vec<usize>,
    /// Per device type in use: prefix sums of compute time, length n + 1.
    prefix: Vec<Vec<f64>>,
    /// Prefix sums of weight bytes, length n + 1.
    weight_prefix: Vec<u64>,
    /// Allowed bitwidths per cut 1..n-1 (index k - 1), ascending.
    pub allowed_bits: Vec<Vec<u8>>,
}

impl<'a> CostModel<'a> {
    pub fn new(
        model: &'a ModelProfile,
        fleet: &'a Fleet,
        cfg: &'a PlanConfig,
    ) -> Result<Self, PlanError> {
        model.validate()?;
        fleet.validate()?;
        if cfg.ubatch == 0 {
            return Err(PlanError::ZeroMicrobatch);
        }
        let n = model.units();
        let mut type_names: Vec<&str> = Vec::new();
        let mut prefix = Vec::new();
        let mut dev_type = Vec::with_capacity(fleet.devices.len());
        for d in &fleet.devices {
            let idx = match type_names.iter().position(|t| *t == d.device_type) {
                Some(i) => i,
                None => {
                    let times = model.compute_s.get(&d.device_type).ok_or_else(|| {
                        PlanError::MissingProfile {
                            model: model.name.clone(),
                            device_type: d.device_type.clone(),
                        }
                    })?;
                    let mut p = vec![0.0; n + 1];
                    for (u, t) in times.iter().enumerate() {
                        p[u + 1] = p[u] + t;
                    }
                    prefix.push(p);
                    type_names.push(&d.device_type);
                    type_names.len() - 1
                }
            };
            dev_type.push(idx);
        }
        let mut weight_prefix = vec![0u64; n + 1];
        for (u, w) in model.weight_bytes.iter().enumerate() {
            weight_prefix[u + 1] = weight_prefix[u] + w;
        }
        let allowed_bits = cfg.bits.allowed(n)?;
        Ok(CostModel {
            model,
            fleet,
            cfg,
            n,
            dev_type,
            prefix,
            weight_prefix,
            allowed_bits,
        })
    }

    /// Number of devices.
    pub fn devices(&self) -> usize {
        self.fleet.devices.len()
    }

    /// Compute seconds of units `i+1..=j` (cuts i < j) on device `d`.
    pub fn compute(&self, d: usize, i: usize, j: usize) -> f64 {
        let p = &self.prefix[self.dev_type[d]];
        p[j] - p[i]
    }

    /// Index of the device's type among the types in use (devices with equal index compute
    /// identically).
    pub fn type_index(&self, d: usize) -> usize {
        self.dev_type[d]
    }

    /// Bytes of one activation buffer at boundary `cut`, in memory (dtype, whole microbatch).
    fn buffer_bytes(&self, cut: usize) -> u64 {
        self.model.boundary_elements(cut) * u64::from(self.cfg.dtype_bytes) * self.cfg.ubatch as u64
    }

    /// Memory a shard of units `i+1..=j` needs: its weights, `in_buffers` receive buffers (none
    /// for the first stage, which reads its input locally), `out_buffers` send buffers, and one
    /// working buffer each way. This is PipeEdge's accounting, kept so their profiles plan alike.
    pub fn mem_required(&self, i: usize, j: usize) -> u64 {
        let weights = self.weight_prefix[j] - self.weight_prefix[i];
        let b_in = self.buffer_bytes(i);
        let b_out = self.buffer_bytes(j);
        let recv = if i > 0 {
            b_in * u64::from(self.cfg.in_buffers)
        } else {
            0
        };
        weights + recv + b_out * u64::from(self.cfg.out_buffers) + b_in + b_out
    }

    /// Whether device `d` can hold units `i+1..=j`.
    pub fn fits(&self, d: usize, i: usize, j: usize) -> bool {
        self.mem_required(i, j) <= self.fleet.devices[d].mem_bytes
    }

    /// Bandwidth from device `a` to device `b` in Mbit/s.
    pub fn link_mbps(&self, a: usize, b: usize) -> f64 {
        match &self.fleet.links {
            Some(l) => l.bw_mbps[a][b],
            None => self.fleet.devices[a]
                .bw_mbps
                .min(self.fleet.devices[b].bw_mbps),
        }
    }

    /// One-way latency from `a` to `b` in seconds.
    pub fn link_latency_s(&self, a: usize, b: usize) -> f64 {
        match &self.fleet.links {
            Some(l) => l.latency_ms[a][b] / 1e3,
            None => self.fleet.latency_ms / 1e3,
        }
    }

    /// Wire bytes per microbatch for the cut after unit `cut` at `bits`.
    pub fn cut_bytes(&self, cut: usize, bits: u8) -> u64 {
        wire_bytes(
            self.model.boundary_elements(cut),
            bits,
            self.cfg.dtype_bytes,
            self.cfg.ubatch,
            self.cfg.header_bytes,
        )
    }

    /// Smallest allowed bitwidth at `cut` (the fastest transfer the accuracy budget permits).
    pub fn min_bits(&self, cut: usize) -> u8 {
        self.allowed_bits[cut - 1][0]
    }

    /// Every value a plan's bottleneck can take: the compute time of each shard that fits on
    /// each of `devices` (one per kind of device), and each cut's transfer at its smallest
    /// bitwidth over each of `bandwidths`; sorted, finite, without repeats. The planners search
    /// this list for the smallest feasible bottleneck.
    pub fn bottleneck_candidates(
        &self,
        devices: impl IntoIterator<Item = usize>,
        bandwidths: impl IntoIterator<Item = f64>,
    ) -> Vec<f64> {
        let n = self.n;
        let mut v = Vec::new();
        for d in devices {
            for i in 0..n {
                for j in i + 1..=n {
                    if self.fits(d, i, j) {
                        v.push(self.compute(d, i, j));
                    }
                }
            }
        }
        let mut bws: Vec<f64> = bandwidths.into_iter().collect();
        bws.sort_by(f64::total_cmp);
        bws.dedup();
        for cut in 1..n {
            for &bw in &bws {
                v.push(self.min_transfer(cut, bw));
            }
        }
        v.retain(|x| x.is_finite());
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    }

    /// Seconds to send the cut after unit `cut` at its smallest allowed bitwidth over `mbps`.
    pub fn min_transfer(&self, cut: usize, mbps: f64) -> f64 {
        transfer_seconds(self.cut_bytes(cut, self.min_bits(cut)), mbps)
    }

    /// Turns `(device, l, r)` stages (1-based inclusive unit ranges) into a plan report.
    ///
    /// Each cut first takes its smallest allowed bitwidth (that minimises the bottleneck), then the
    /// largest allowed bitwidth whose transfer still fits within the bottleneck: the same rate
    /// with less quantization error.
    pub fn evaluate(
        &self,
        stages: &[(usize, usize, usize)],
        planner: &str,
    ) -> Result<Plan, PlanError> {
        self.check_stages(stages)?;
        let mut out = Vec::with_capacity(stages.len());
        for (k, &stage) in stages.iter().enumerate() {
            let next = stages.get(k + 1).map(|&(next, _, _)| next);
            out.push(self.price_stage(stage, next)?);
        }
        let (bottleneck_s, bottleneck_stage, bottleneck_kind) = bottleneck(&out);
        for s in out.iter_mut() {
            self.raise_bits_within(s, bottleneck_s);
        }
        let cut_bits = out.iter().filter_map(|s| s.out_bits).collect();
        Ok(Plan {
            model: self.model.name.clone(),
            planner: planner.to_string(),
            ubatch: self.cfg.ubatch,
            in_buffers: self.cfg.in_buffers,
            out_buffers: self.cfg.out_buffers,
            stages: out,
            cut_bits,
            bottleneck_s,
            bottleneck_stage,
            bottleneck_kind,
            throughput_items_per_s: self.cfg.ubatch as f64 / bottleneck_s,
        })
    }

    /// Stages must cover units 1..n in order, each on a distinct device of the fleet.
    fn check_stages(&self, stages: &[(usize, usize, usize)]) -> Result<(), PlanError> {
        let n = self.n;
        let bad = |detail: String| PlanError::BadStages { units: n, detail };
        if stages.is_empty() {
            return Err(bad("no stages".into()));
        }
        let mut expect = 1;
        let mut used = vec![false; self.devices()];
        for &(d, l, r) in stages {
            if d >= self.devices() {
                return Err(bad(format!("device index {d} out of range")));
            }
            if std::mem::replace(&mut used[d], true) {
                return Err(bad(format!(
                    "device {} used twice",
                    self.fleet.devices[d].name
                )));
            }
            if l != expect || r < l || r > n {
                return Err(bad(format!("stage [{l}, {r}] after unit {}", expect - 1)));
            }
            expect = r + 1;
        }
        if expect != n + 1 {
            return Err(bad(format!("stages end at unit {}", expect - 1)));
        }
        Ok(())
    }

    /// Stage `(d, l, r)` priced on its device, its cut (to device `next`, if any) at the
    /// smallest allowed bitwidth; an error when the shard does not fit the device's memory.
    fn price_stage(
        &self,
        (d, l, r): (usize, usize, usize),
        next: Option<usize>,
    ) -> Result<Stage, PlanError> {
        let dev = &self.fleet.devices[d];
        let need = self.mem_required(l - 1, r);
        if need > dev.mem_bytes {
            return Err(PlanError::MemoryExceeded {
                device: dev.name.clone(),
                l,
                r,
                required_bytes: need,
                available_bytes: dev.mem_bytes,
            });
        }
        let (transfer_s, bits, bytes, mbps, lat) = match next {
            Some(next) => {
                let mbps = self.link_mbps(d, next);
                let b = self.min_bits(r);
                let bytes = self.cut_bytes(r, b);
                (
                    transfer_seconds(bytes, mbps),
                    Some(b),
                    bytes,
                    mbps,
                    self.link_latency_s(d, next),
                )
            }
            None => (0.0, None, 0, 0.0, 0.0),
        };
        Ok(Stage {
            device: dev.name.clone(),
            device_type: dev.device_type.clone(),
            l,
            r,
            compute_s: self.compute(d, l - 1, r),
            transfer_s,
            out_bits: bits,
            out_bytes: bytes,
            out_link_mbps: mbps,
            out_latency_s: lat,
            mem_required_bytes: need,
            mem_available_bytes: dev.mem_bytes,
        })
    }

    /// Raises a cut's bitwidth to the largest allowed one whose transfer stays within the
    /// bottleneck (its current one always does).
    fn raise_bits_within(&self, s: &mut Stage, bottleneck_s: f64) {
        if s.out_bits.is_none() {
            return;
        }
        for &b in self.allowed_bits[s.r - 1].iter().rev() {
            let bytes = self.cut_bytes(s.r, b);
            let t = transfer_seconds(bytes, s.out_link_mbps);
            if t <= bottleneck_s || Some(b) == s.out_bits {
                s.out_bits = Some(b);
                s.out_bytes = bytes;
                s.transfer_s = t;
                return;
            }
        }
    }
}

/// Max over stages of max(compute, transfer), with the stage and kind that attain it.
pub fn bottleneck(stages: &[Stage]) -> (f64, usize, BottleneckKind) {
    let mut best = (f64::NEG_INFINITY, 0, BottleneckKind::Compute);
    for (k, s) in stages.iter().enumerate() {
        if s.compute_s > best.0 {
            best = (s.compute_s, k, BottleneckKind::Compute);
        }
        if s.transfer_s > best.0 {
            best = (s.transfer_s, k, BottleneckKind::Transfer);
        }
    }
    best
}
