//! A 3-stage MiniLM fleet in network namespaces whose two inter-stage links follow a bandwidth
//! trace (`tc tbf` rates changed while traffic flows), and the figures judged on its timeline:
//! what the adaptive-quantization test and `quantpipe bench adaptive` both run.
//!
//! Members: 0 leader, 1-3 the stages a, b, c (a forced plan of units 1..8, 9..16, 17..24), 4 the
//! client, which writes its timeline with `quantpipe run --report`. The stages are paced by an
//! emulated slowdown over a uniform profile, so their rate (25 items/s with the defaults) is set
//! by the test, not by how busy the machine's cores are; the target sits below it, so whether it
//! is met is a question of the links.
//!
//! A run is judged window by window over any trace ([`judging`]), and plateau by plateau
//! ([`figures`]) over a step trace.

use crate::config_file;
use crate::minilm::{long_texts, write_uniform_profile};
use crate::netns::{Link, Netns};
use crate::{ClientRun, Fleet, Place};
use quantpipe_actors::runtime::config::Role;
use quantpipe_actors::runtime::metrics::unix_s;
use quantpipe_actors::runtime::timeline::{read_csv, TimelineRow};
use quantpipe_adaptive::policy::{Policy, PolicyConfig, PolicyKind};
use quantpipe_adaptive::simulate::oracle_mean_bits;
use quantpipe_adaptive::sizes::{allowed_bits, SizeTable};
use quantpipe_adaptive::trace::Trace;
use quantpipe_messages::Bits;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

pub mod judging;
pub use judging::judgement;

/// zenoh's lease, raised from 10 s: at 5 Mbit/s a stage blocked on 32-bit messages has seconds
/// of data in its socket buffers ahead of its keep-alives, and a `tc` rate change drops the
/// queue, so TCP may stall for a retransmission timeout on top; a node must not be declared
/// gone (and the pipeline re-planned) for that in a test of bitwidths.
const LEASE: (&str, &str) = ("transport/link/tx/lease", "30000");

/// Share of a shaped link's rate that carries TCP payload: tbf counts whole Ethernet frames, and
/// a full frame of 1514 bytes carries 1448 (MSS with timestamps; MTU 1500). No bitwidth whose
/// messages need more than this at the target can meet it, so the oracle does not choose one.
pub const TCP_GOODPUT: f64 = 1448.0 / 1514.0;

/// What the fleet is asked to do.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Params {
    pub ubatch: usize,
    /// Tokens per item (the test texts are long enough to fill them).
    pub seq_len: usize,
    pub hidden: usize,
    /// Items/s the policies work to.
    pub target_items_per_s: f64,
    /// The quantizer's window: recovery is counted in these.
    pub window_s: f64,
    /// The client's timeline window.
    pub report_window_s: f64,
    /// Emulated slowdown over 10 ms per unit: 8 units at x4 is 0.32 s per microbatch.
    pub slowdown: f64,
    pub min_bits: u8,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            ubatch: 8,
            seq_len: 128,
            hidden: 384,
            target_items_per_s: 20.0,
            // Three seconds: a window must hold a whole message's transfer on the slowest link
            // (a raw 1.57 MB cut takes 2.5 s at 5 Mbit/s), and at a step down the messages
            // already on the link (about 1 MB each at 20 bits) take 1.7 s each to drain.
            window_s: 3.0,
            report_window_s: 1.0,
            slowdown: 4.0,
            min_bits: 2,
        }
    }
}

impl Params {
    /// Payload sizes of one cut at every allowed bitwidth.
    pub fn sizes(&self) -> SizeTable {
        SizeTable::from_shapes(
            &[vec![self.ubatch, self.seq_len, self.hidden]],
            &allowed_bits(
                Bits::new(self.min_bits).expect("a valid min_bits"),
                Bits::RAW,
            ),
        )
        .expect("sizes of a MiniLM cut")
    }

    /// Whether some allowed bitwidth carries the target at `mbit` (10% for protocol overhead).
    pub fn feasible(&self, mbit: f64) -> bool {
        self.sizes().lowest().1 as f64 * 1.1 <= self.budget_bytes(mbit)
    }

    fn budget_bytes(&self, mbit: f64) -> f64 {
        mbit * 1e6 / 8.0 * (self.ubatch as f64 / self.target_items_per_s)
    }

    /// The mean bitwidth an oracle that knew the link's rate would send at: the one whose
    /// messages fill the link's TCP goodput ([`TCP_GOODPUT`] of the shaped rate) at the target.
    pub fn oracle_bits(&self, mbit: f64) -> f64 {
        let sizes = self.sizes();
        let policy = Policy::new(
            PolicyConfig {
                kind: PolicyKind::Controller,
                max_bits: Bits::RAW,
                min_bits: Bits::new(self.min_bits).expect("a valid min_bits"),
                target_items_per_s: self.target_items_per_s,
                items_per_message: self.ubatch as f64,
                window_s: self.window_s,
            },
            sizes.clone(),
        )
        .expect("a valid policy");
        oracle_mean_bits(&sizes, &policy, mbit * TCP_GOODPUT)
    }
}

/// One plateau of the trace as the fleet lived it (Unix seconds).
#[derive(Debug, Clone, Serialize)]
pub struct Plateau {
    pub mbit: f64,
    pub from: f64,
    pub to: f64,
}

/// A run through the trace: the client's timeline and when each plateau began and ended.
#[derive(Debug, Clone)]
pub struct TraceRun {
    pub policy: String,
    pub rows: Vec<TimelineRow>,
    pub plateaus: Vec<Plateau>,
    /// From starting the processes to the first result, seconds.
    pub startup_s: f64,
    /// Nodes the leader saw leave during the run (their lease ran out), from its log.
    pub lost_nodes: Vec<String>,
}

impl TraceRun {
    /// Nodes that left the fleet, or stopped answering the client's stats queries for
    /// `windows` timeline windows in a row while others answered.
    pub fn unresponsive_nodes(&self, windows: usize) -> Vec<String> {
        let mut out = self.lost_nodes.clone();
        let ends: Vec<f64> = client_rates(&self.rows).iter().map(|r| r.0).collect();
        // Rows of windows where no stage answered carry the client's rate under no node.
        let mut nodes: Vec<&str> = self
            .rows
            .iter()
            .filter(|r| !r.node.is_empty())
            .map(|r| r.node.as_str())
            .collect();
        nodes.sort();
        nodes.dedup();
        for node in nodes {
            let (mut gap, mut longest) = (0, 0);
            for end in &ends {
                let present = self.rows.iter().any(|r| r.unix_s == *end && r.node == node);
                gap = if present { 0 } else { gap + 1 };
                longest = longest.max(gap);
            }
            if longest >= windows && !out.iter().any(|n| n == node) {
                out.push(node.to_owned());
            }
        }
        out.sort();
        out
    }
}

/// Runs the fleet with `policy` (`fixed`, `heuristic`, `controller`) through `trace`, holding
/// its last rate for `hold_s`. Nodes listen on `port` in their namespaces; logs, configs and
/// the timeline go under `dir/<policy>`.
#[allow(clippy::too_many_arguments)]
pub fn run_trace(
    net: &Netns,
    bin: &Path,
    model: &Path,
    dir: &Path,
    policy: &str,
    port: u16,
    trace: &Trace,
    hold_s: f64,
    p: &Params,
) -> Result<TraceRun, String> {
    if net.len() < 5 {
        return Err(format!("the fleet needs 5 namespaces, got {}", net.len()));
    }
    let dir = dir.join(policy);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let profile = dir.join("profile.json");
    write_uniform_profile(&profile, p.ubatch).map_err(|e| format!("{e:#}"))?;
    let first = trace.steps()[0].1;
    for m in [1, 2] {
        net.set_rate(Link::egress(m), first)
            .map_err(|e| e.to_string())?;
    }
    let launched = Instant::now();
    let endpoint = |i: usize| format!("tcp/{}:{port}", net.addr(i));
    let fleet_name = format!("trace{policy}{}", std::process::id());
    let settings = |name: &str, role: Role, i: usize| {
        let connect = if i == 0 { vec![] } else { vec![endpoint(0)] };
        let mut s = config_file::peer(&fleet_name, name, role, model, vec![endpoint(i)], connect);
        s.zenoh.extra.insert(LEASE.0.into(), LEASE.1.into());
        // Plain TCP between the private namespaces of this run: nothing else is on that
        // network, and the trace measures the links, not TLS.
        s.security.insecure = true;
        s
    };
    let mut leader = settings("leader", Role::Leader, 0);
    leader.leader.expected = ["a", "b", "c"].map(String::from).to_vec();
    leader.leader.wait_s = 60.0;
    leader.leader.ubatch = p.ubatch;
    leader.leader.bits = 32;
    leader.leader.stages = config_file::forced(&[("a", [1, 8]), ("b", [9, 16]), ("c", [17, 24])]);
    let mut fleet = Fleet::new(bin, &dir);
    fleet
        .start(&leader, Place::Member(net, 0))
        .map_err(|e| format!("{e:#}"))?;
    for (i, name) in [(1, "a"), (2, "b"), (3, "c")] {
        let mut device = settings(name, Role::Device, i);
        device.device.threads = 1;
        device.device.slowdown = p.slowdown;
        device.device.profile_ubatch = p.ubatch;
        device.device.profile_file = Some(profile.clone());
        device.quantizer.policy = policy.to_owned();
        device.quantizer.min_bits = p.min_bits;
        device.quantizer.target_items_per_s = p.target_items_per_s;
        device.quantizer.window_s = p.window_s;
        fleet
            .start(&device, Place::Member(net, i))
            .map_err(|e| format!("{e:#}"))?;
    }
    let mut client = settings("client", Role::Device, 4);
    // Enough microbatches in flight that 3 stages and 2 links of similar speed keep busy: with
    // few more than stations, a closed pipeline idles each of them a good part of the time.
    client.client.window = 12;
    client.client.plan_wait_s = 90.0;
    client.client.result_timeout_s = 60.0;
    let client_config = config_file::write(&dir, &client).map_err(|e| format!("{e:#}"))?;
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
    };
    // More items than the trace can use: the client is stopped when the trace ends.
    let total_s = trace.steps().last().map_or(0.0, |s| s.0) + hold_s + 60.0;
    let items = (total_s * p.target_items_per_s * 2.0) as usize;
    let input = dir.join("texts.txt");
    write(&input, long_texts(items, 160).join("\n"))?;
    let report = dir.join("report");
    let csv = report.join("timeline.csv");
    let client = ClientRun::new(&client_config, &input).report(&report, p.report_window_s);
    fleet
        .procs()
        .start("client", &client.launch(bin).in_netns(net.ns(4)))
        .map_err(|e| format!("{e:#}"))?;
    // The trace starts once results flow.
    let flowing = |text: &str| {
        read_csv(text)
            .map(|r| r.iter().any(|r| r.items_per_s > 0.0))
            .unwrap_or(false)
    };
    fleet
        .procs()
        .wait_for_file(&csv, "a result", Duration::from_secs(150), flowing)
        .map_err(|e| format!("{policy}: {e:#}"))?;
    let startup_s = launched.elapsed().as_secs_f64();
    let t0 = unix_s();
    let steps = trace.steps();
    let mut plateaus = Vec::new();
    for (k, &(at, mbit)) in steps.iter().enumerate() {
        let wait = t0 + at - unix_s();
        if wait > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(wait));
        }
        // The shapers' counters (sent, dropped, overlimits, backlog) as each plateau ends,
        // kept beside the logs: what a link did when a run goes wrong.
        snapshot_qdiscs(net, &dir, &format!("before {mbit} Mbit/s"));
        for m in [1, 2] {
            net.set_rate(Link::egress(m), mbit)
                .map_err(|e| e.to_string())?;
        }
        let end = steps.get(k + 1).map_or(at + hold_s, |s| s.0);
        plateaus.push(Plateau {
            mbit,
            from: unix_s(),
            to: t0 + end,
        });
    }
    let end = plateaus.last().map_or(t0, |p| p.to);
    std::thread::sleep(Duration::from_secs_f64(
        (end - unix_s()).max(0.0) + p.report_window_s + 0.5,
    ));
    snapshot_qdiscs(net, &dir, "at the end");
    drop(fleet);
    let leader_log = std::fs::read_to_string(dir.join("leader.log")).unwrap_or_default();
    let text =
        std::fs::read_to_string(&csv).map_err(|e| format!("reading {}: {e}", csv.display()))?;
    let rows = read_csv(&text).map_err(|e| format!("{e:#}"))?;
    Ok(TraceRun {
        policy: policy.to_owned(),
        rows,
        plateaus,
        startup_s,
        lost_nodes: lost_nodes(&leader_log),
    })
}

/// Appends `tc -s qdisc` of both shaped links to `dir/qdiscs.txt`.
fn snapshot_qdiscs(net: &Netns, dir: &Path, when: &str) {
    use std::io::Write;
    let mut text = format!("== {when} (unix {:.3})\n", unix_s());
    for m in [1, 2] {
        text += &net.qdisc_stats(Link::egress(m));
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("qdiscs.txt"))
    {
        let _ = f.write_all(text.as_bytes());
    }
}

/// Nodes a leader's log says left the fleet (`["a"] left: re-planning ...`).
pub fn lost_nodes(leader_log: &str) -> Vec<String> {
    let mut out: Vec<String> = leader_log
        .lines()
        .filter_map(|l| {
            l.split_once("] left: re-planning")?
                .0
                .rsplit_once('[')
                .map(|p| p.1)
        })
        .flat_map(|names| {
            names
                .split(',')
                .map(|n| n.trim().trim_matches('"').to_owned())
        })
        .filter(|n| !n.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// What one plateau showed.
#[derive(Debug, Clone, Serialize)]
pub struct PlateauFigures {
    pub mbit: f64,
    /// Whether some allowed bitwidth can carry the target at this rate.
    pub feasible: bool,
    /// Mean items/s of the client from 2 windows after the step to the plateau's end.
    pub held_items_per_s: Option<f64>,
    pub held_share_of_target: Option<f64>,
    /// Seconds from the step to the end of the first timeline window at >= 95% of the target
    /// (None: never on this plateau), and the same in quantizer windows.
    pub regained_after_s: Option<f64>,
    pub regained_after_windows: Option<f64>,
    /// Mean bitwidth per link (stage -> mean) after the first 2 windows, their mean, and the
    /// oracle's for the plateau's rate.
    pub mean_bits_per_link: BTreeMap<u32, f64>,
    pub mean_bits: Option<f64>,
    pub oracle_bits: f64,
}

/// The client's rate per timeline window: (window end, items/s).
pub fn client_rates(rows: &[TimelineRow]) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for r in rows {
        if out.last().map(|p| p.0) != Some(r.unix_s) {
            out.push((r.unix_s, r.items_per_s));
        }
    }
    out
}

/// Figures of every plateau of `run`.
pub fn figures(run: &TraceRun, p: &Params) -> Vec<PlateauFigures> {
    let rates = client_rates(&run.rows);
    let target = p.target_items_per_s;
    run.plateaus
        .iter()
        .map(|pl| {
            let settle = pl.from + 2.0 * p.window_s;
            let inside = |end: f64, from: f64| end - p.report_window_s >= from && end <= pl.to;
            let held: Vec<f64> = rates
                .iter()
                .filter(|(end, _)| inside(*end, settle))
                .map(|r| r.1)
                .collect();
            let held = (!held.is_empty()).then(|| held.iter().sum::<f64>() / held.len() as f64);
            let regained = rates
                .iter()
                .find(|(end, r)| inside(*end, pl.from) && *r >= 0.95 * target)
                .map(|(end, _)| end - pl.from);
            let mut bits: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
            for r in run
                .rows
                .iter()
                .filter(|r| r.unix_s >= settle && r.unix_s <= pl.to && r.bits_mean > 0.0)
            {
                if let Some(s) = r.stage {
                    bits.entry(s).or_default().push(r.bits_mean);
                }
            }
            let per_link: BTreeMap<u32, f64> = bits
                .into_iter()
                .map(|(s, v)| (s, v.iter().sum::<f64>() / v.len() as f64))
                .collect();
            let mean_bits = (!per_link.is_empty())
                .then(|| per_link.values().sum::<f64>() / per_link.len() as f64);
            PlateauFigures {
                mbit: pl.mbit,
                feasible: p.feasible(pl.mbit),
                held_items_per_s: held,
                held_share_of_target: held.map(|h| h / target),
                regained_after_s: regained,
                regained_after_windows: regained.map(|s| s / p.window_s),
                mean_bits_per_link: per_link,
                mean_bits,
                oracle_bits: p.oracle_bits(pl.mbit),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(unix_s: f64, stage: u32, items_per_s: f64, bits: f64) -> TimelineRow {
        TimelineRow {
            t_s: unix_s - 100.0,
            unix_s,
            items_per_s,
            target_items_per_s: 20.0,
            node: format!("n{stage}"),
            stage: Some(stage),
            mbps: 10.0,
            utilisation: 1.0,
            bits_mean: bits,
            accuracy_cost_pct: None,
        }
    }

    #[test]
    fn figures_judge_each_plateau_after_two_windows() {
        let p = Params {
            window_s: 1.0,
            ..Params::default()
        };
        // A plateau from 100 to 108: the rate dips for two windows after the step, then holds.
        let rates = [10.0, 12.0, 20.0, 21.0, 22.0, 20.0, 19.0, 21.0];
        let rows: Vec<TimelineRow> = rates
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                let end = 101.0 + i as f64;
                [row(end, 0, *r, 16.0), row(end, 1, *r, 18.0)]
            })
            .collect();
        let run = TraceRun {
            policy: "controller".into(),
            rows,
            plateaus: vec![Plateau {
                mbit: 20.0,
                from: 100.0,
                to: 108.0,
            }],
            startup_s: 0.0,
            lost_nodes: vec![],
        };
        let f = &figures(&run, &p)[0];
        assert!(f.feasible);
        // Windows ending at 103..=108 are judged: 20, 21, 22, 20, 19, 21.
        assert!((f.held_items_per_s.unwrap() - 20.5).abs() < 1e-9, "{f:?}");
        assert_eq!(f.regained_after_s, Some(3.0));
        assert_eq!(f.mean_bits, Some(17.0));
        assert!(f.oracle_bits > 16.0 && f.oracle_bits < 32.0, "{f:?}");
    }

    #[test]
    fn nodes_that_left_are_read_from_the_leader_log() {
        let log = "2026-11-24T22:20:30Z  WARN planner_actor: [\"a\"] left: re-planning from epoch 1 to 2 over [\"b\", \"c\"]\n\
                   2026-11-24T22:20:31Z  INFO planner_actor: [\"a\"] joined; keeping plan epoch 2\n\
                   2026-11-24T22:20:40Z  WARN planner_actor: [\"b\", \"c\"] left: re-planning from epoch 2 to 3 over [\"a\"]\n";
        assert_eq!(lost_nodes(log), ["a", "b", "c"]);
        assert!(lost_nodes("plan epoch 1 ready: 3 stage(s)\n").is_empty());
    }

    #[test]
    fn a_node_missing_from_the_timeline_for_windows_in_a_row_is_unresponsive() {
        // n1 answers every window; n0 misses windows 3..=6 (four in a row).
        let rows: Vec<TimelineRow> = (0..10)
            .flat_map(|i| {
                let end = 101.0 + i as f64;
                let mut v = vec![row(end, 1, 20.0, 16.0)];
                if !(3..=6).contains(&i) {
                    v.push(row(end, 0, 20.0, 16.0));
                }
                v
            })
            .collect();
        let run = TraceRun {
            policy: "controller".into(),
            rows,
            plateaus: vec![],
            startup_s: 0.0,
            lost_nodes: vec![],
        };
        let mut run = run;
        // A window where no stage answered: a row under no node, which is no node gone.
        let mut empty = row(111.0, 0, 0.0, 0.0);
        empty.node = String::new();
        run.rows.push(empty);
        assert_eq!(run.unresponsive_nodes(4), ["n0"]);
        assert!(run.unresponsive_nodes(5).is_empty());
    }

    #[test]
    fn the_lowest_plateaus_are_infeasible_and_the_oracle_sits_at_the_ends() {
        let p = Params::default();
        assert!(
            !p.feasible(1.0),
            "2 bits of 8 x 128 x 384 take 0.3 s at 1 Mbit/s"
        );
        assert!(p.feasible(5.0));
        assert_eq!(p.oracle_bits(1000.0), 32.0);
        assert_eq!(p.oracle_bits(0.1), 2.0);
    }

    #[test]
    fn the_oracle_fills_the_tcp_goodput_of_a_shaped_link_not_its_nominal_rate() {
        let p = Params::default();
        // At 20 Mbit/s and 20 items/s a message of 8 items may take 0.4 s: 1,000,000 bytes at
        // the nominal rate, 956,407 of TCP payload. 8 x 128 x 384 values take 786,432 bytes at
        // 16 bits and twice that at 32 (plus headers): time-shared, a mean of about
        // 16 + 16 x 170k / 786k = 19.5 bits, where the nominal rate would say 20.3.
        let bits = p.oracle_bits(20.0);
        assert!((bits - 19.46).abs() < 0.05, "{bits}");
    }
}
