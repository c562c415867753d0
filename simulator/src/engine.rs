//! The event loop: a time-ordered heap of completions, and after each event a sweep that starts
//! every compute and transfer whose inputs and buffer space are ready.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use serde::{Deserialize, Serialize};

use super::report::{SimError, SimReport};
use super::stats::percentile;

/// One stage as the simulator sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimStage {
    /// Seconds to compute one microbatch.
    pub compute_s: f64,
    /// Seconds to serialise one microbatch onto the outgoing link (ignored for the last stage).
    pub transfer_s: f64,
    /// Seconds from the end of sending until the next stage has it.
    pub latency_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    ComputeDone(usize),
    SendDone(usize),
    Arrive(usize),
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Event {
    t: f64,
    seq: u64,
    kind: Kind,
    mb: usize,
}

impl Eq for Event {}
impl Ord for Event {
    fn cmp(&self, o: &Self) -> Ordering {
        // Min-heap on (time, insertion order) so ties resolve deterministically.
        o.t.total_cmp(&self.t).then(o.seq.cmp(&self.seq))
    }
}
impl PartialOrd for Event {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

#[derive(Default)]
struct StageState {
    inq: VecDeque<usize>,
    reserved: usize,
    computing: Option<usize>,
    finished: Option<usize>, // computed but the send queue was full
    outq: VecDeque<usize>,
    sending: Option<usize>,
    busy_compute: f64,
    busy_link: f64,
}

struct Sim<'a> {
    stages: &'a [SimStage],
    cap_in: usize,
    cap_out: usize,
    st: Vec<StageState>,
    heap: BinaryHeap<Event>,
    seq: u64,
    now: f64,
    next_mb: usize,
    total: usize,
    admitted: Vec<f64>,
    done: Vec<f64>,
}

impl Sim<'_> {
    fn push(&mut self, dt: f64, kind: Kind, mb: usize) {
        self.seq += 1;
        self.heap.push(Event {
            t: self.now + dt,
            seq: self.seq,
            kind,
            mb,
        });
    }

    /// Starts everything that can start now; loops until nothing changes.
    fn sweep(&mut self) {
        let last = self.st.len() - 1;
        loop {
            let mut changed = false;
            // Admit new microbatches into stage 0.
            while self.next_mb < self.total && self.st[0].inq.len() < self.cap_in {
                self.admitted[self.next_mb] = self.now;
                self.st[0].inq.push_back(self.next_mb);
                self.next_mb += 1;
                changed = true;
            }
            for k in 0..=last {
                // A blocked stage moves its finished microbatch once the send queue has room.
                if self.st[k].finished.is_some() && self.st[k].outq.len() < self.cap_out {
                    let mb = self.st[k].finished.take().expect("checked");
                    self.st[k].outq.push_back(mb);
                    changed = true;
                }
                if self.st[k].computing.is_none() && self.st[k].finished.is_none() {
                    if let Some(mb) = self.st[k].inq.pop_front() {
                        self.st[k].computing = Some(mb);
                        let c = self.stages[k].compute_s;
                        self.st[k].busy_compute += c;
                        self.push(c, Kind::ComputeDone(k), mb);
                        changed = true;
                    }
                }
                if k < last && self.st[k].sending.is_none() && !self.st[k].outq.is_empty() {
                    let rx = &self.st[k + 1];
                    if rx.inq.len() + rx.reserved < self.cap_in {
                        let mb = self.st[k].outq.pop_front().expect("checked");
                        self.st[k].sending = Some(mb);
                        self.st[k + 1].reserved += 1;
                        let t = self.stages[k].transfer_s;
                        self.st[k].busy_link += t;
                        self.push(t, Kind::SendDone(k), mb);
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
    }

    fn handle(&mut self, e: Event) {
        let last = self.st.len() - 1;
        match e.kind {
            Kind::ComputeDone(k) => {
                self.st[k].computing = None;
                if k == last {
                    self.done[e.mb] = self.now;
                } else if self.st[k].outq.len() < self.cap_out {
                    self.st[k].outq.push_back(e.mb);
                } else {
                    self.st[k].finished = Some(e.mb);
                }
            }
            Kind::SendDone(k) => {
                self.st[k].sending = None;
                let lat = self.stages[k].latency_s;
                self.push(lat, Kind::Arrive(k + 1), e.mb);
            }
            Kind::Arrive(k) => {
                self.st[k].reserved -= 1;
                self.st[k].inq.push_back(e.mb);
            }
        }
    }
}

/// Simulates `microbatches` microbatches of `ubatch` items through `stages` with the given buffer
/// counts (each at least 1). `predicted` is echoed into the report.
pub fn simulate_pipeline(
    stages: &[SimStage],
    in_buffers: u32,
    out_buffers: u32,
    ubatch: usize,
    microbatches: usize,
    predicted: f64,
) -> Result<SimReport, SimError> {
    if stages.is_empty() {
        return Err(SimError::NoStages);
    }
    if microbatches == 0 {
        return Err(SimError::NoMicrobatches);
    }
    for (k, s) in stages.iter().enumerate() {
        for (what, v) in [
            ("compute_s", s.compute_s),
            ("transfer_s", s.transfer_s),
            ("latency_s", s.latency_s),
        ] {
            let last_link = k + 1 == stages.len() && what != "compute_s";
            if !(last_link || v.is_finite() && v >= 0.0) {
                return Err(SimError::BadTime {
                    stage: k,
                    what,
                    value: v,
                });
            }
        }
    }
    let mut sim = Sim {
        stages,
        cap_in: in_buffers.max(1) as usize,
        cap_out: out_buffers.max(1) as usize,
        st: (0..stages.len()).map(|_| StageState::default()).collect(),
        heap: BinaryHeap::new(),
        seq: 0,
        now: 0.0,
        next_mb: 0,
        total: microbatches,
        admitted: vec![0.0; microbatches],
        done: vec![f64::NAN; microbatches],
    };
    sim.sweep();
    while let Some(e) = sim.heap.pop() {
        sim.now = e.t;
        sim.handle(e);
        sim.sweep();
    }
    let makespan = sim.now;
    let mut lat: Vec<f64> = sim
        .done
        .iter()
        .zip(&sim.admitted)
        .map(|(d, a)| d - a)
        .collect();
    lat.sort_by(f64::total_cmp);
    let first = sim.done.iter().copied().fold(f64::INFINITY, f64::min);
    let items = (microbatches * ubatch) as f64;
    let steady = if microbatches > 1 && makespan > first {
        ((microbatches - 1) * ubatch) as f64 / (makespan - first)
    } else {
        items / makespan
    };
    let util = |b: f64| if makespan > 0.0 { b / makespan } else { 0.0 };
    Ok(SimReport {
        microbatches,
        ubatch,
        makespan_s: makespan,
        throughput_items_per_s: items / makespan,
        steady_throughput_items_per_s: steady,
        predicted_throughput_items_per_s: predicted,
        latency_p50_s: percentile(&lat, 50.0),
        latency_p90_s: percentile(&lat, 90.0),
        latency_p99_s: percentile(&lat, 99.0),
        stage_utilisation: sim.st.iter().map(|s| util(s.busy_compute)).collect(),
        link_utilisation: sim.st[..stages.len() - 1]
            .iter()
            .map(|s| util(s.busy_link))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(c: f64, t: f64) -> SimStage {
        SimStage {
            compute_s: c,
            transfer_s: t,
            latency_s: 0.0,
        }
    }

    #[test]
    fn single_stage_is_sequential() {
        let r = simulate_pipeline(&[st(0.5, 0.0)], 1, 1, 2, 10, 4.0).unwrap();
        assert!((r.makespan_s - 5.0).abs() < 1e-12);
        assert!((r.steady_throughput_items_per_s - 4.0).abs() < 1e-9);
        // Latency counts from admission into the receive buffer: every microbatch after the first
        // waits one compute there.
        assert!((r.latency_p50_s - 1.0).abs() < 1e-12);
        assert!((r.stage_utilisation[0] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn transfer_bottleneck_sets_the_rate() {
        let r = simulate_pipeline(
            &[st(1.0, 2.5), st(2.0, 0.0), st(1.5, 0.0)],
            1,
            1,
            1,
            200,
            0.4,
        )
        .unwrap();
        assert!((r.steady_throughput_items_per_s - 0.4).abs() < 1e-9);
        assert!((r.link_utilisation[0] - 200.0 * 2.5 / r.makespan_s).abs() < 1e-12);
    }

    #[test]
    fn latency_beyond_buffers_lowers_the_rate() {
        // One receive slot, reserved for send + 10 s latency: one microbatch per 11 s.
        let mut a = st(1.0, 1.0);
        a.latency_s = 10.0;
        let r = simulate_pipeline(&[a.clone(), st(1.0, 0.0)], 1, 1, 1, 50, 1.0).unwrap();
        assert!((r.steady_throughput_items_per_s - 1.0 / 11.0).abs() < 1e-9);
        // Enough receive slots to cover the latency restore the bound.
        let r = simulate_pipeline(&[a, st(1.0, 0.0)], 12, 1, 1, 200, 1.0).unwrap();
        assert!((r.steady_throughput_items_per_s - 1.0).abs() < 1e-9);
        assert!(r.latency_p50_s >= 12.0);
    }
}
