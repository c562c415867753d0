//! Nodes in network namespaces, joined by veth links shaped by `tc tbf`: the leader plans MiniLM
//! across two devices told their link bandwidth (`device.bw_mbps`, the rate of the shaped
//! uplinks), the link is the bottleneck at 32 bits, and the measured throughput of the run must
//! match the discrete-event simulation of the published plan within 15%.
//!
//! Why the plan splits: each device offers less memory than the whole model, so the planner
//! must cut it. Why the link dominates: a 32-bit hidden-state cut of 8 x 128 tokens is 1.6 MB,
//! about 2 s at 6 Mbit/s, several times a half-model forward pass on one core.

use quantpipe_actors::runtime::config::Role;
use quantpipe_integration::{minilm_dir, quantpipe_bin, run_report};
use quantpipe_launcher::minilm::long_texts;
use quantpipe_launcher::netns::{Link, Netns};
use quantpipe_launcher::privilege::root_or_skip;
use quantpipe_launcher::{config_file, ClientRun, Fleet, Place};
use quantpipe_simulator::{simulate_pipeline, SimStage};
use std::time::{Duration, Instant};

/// Rate of both devices' uplinks, Mbit/s.
const RATE_MBIT: f64 = 6.0;
const UBATCH: usize = 8;
const MICROBATCHES: usize = 10;

#[test]
fn a_shaped_link_bottleneck_runs_at_the_simulated_rate() {
    if !root_or_skip("a_shaped_link_bottleneck_runs_at_the_simulated_rate") {
        return;
    }
    let started = Instant::now();
    let bin = quantpipe_bin();
    let model = minilm_dir();
    let dir = tempfile::tempdir().unwrap();
    // Members: 0 leader, 1 and 2 devices, 3 client. `net` outlives `nodes`: processes die first.
    let net = Netns::new("qpshaped", 4).unwrap_or_else(|e| panic!("{e}"));
    let mut nodes = Fleet::new(&bin, dir.path());
    // Whichever device the planner puts first, its uplink is shaped.
    net.set_rate(Link::egress(1), RATE_MBIT).unwrap();
    net.set_rate(Link::egress(2), RATE_MBIT).unwrap();

    let endpoint = |i: usize| format!("tcp/{}:7447", net.addr(i));
    let fleet = format!("shaped{}", std::process::id());
    let node = |name: &str, role: Role, i: usize| {
        let connect = if i == 0 { vec![] } else { vec![endpoint(0)] };
        let mut s = config_file::peer(&fleet, name, role, &model, vec![endpoint(i)], connect);
        // Plain TCP between private namespaces of this test: nothing else is on that network.
        s.security.insecure = true;
        s
    };
    let mut leader = node("leader", Role::Leader, 0);
    leader.leader.expected = vec!["a".into(), "b".into()];
    leader.leader.wait_s = 120.0;
    leader.leader.ubatch = UBATCH;
    leader.leader.bits = 32;
    nodes.start(&leader, Place::Member(&net, 0)).unwrap();
    for (i, name) in [(1, "a"), (2, "b")] {
        let mut device = node(name, Role::Device, i);
        device.device.threads = 1;
        device.device.profile_ubatch = UBATCH;
        device.device.profile_repeats = 2;
        device.device.mem_mb = 70.0;
        device.device.bw_mbps = RATE_MBIT;
        nodes.start(&device, Place::Member(&net, i)).unwrap();
    }
    let mut client = node("client", Role::Device, 3);
    client.client.window = 4;
    client.client.plan_wait_s = 150.0;
    client.client.result_timeout_s = 60.0;
    let client = config_file::write(dir.path(), &client).unwrap();
    let input = dir.path().join("texts.txt");
    std::fs::write(&input, long_texts(UBATCH * MICROBATCHES, 160).join("\n")).unwrap();

    let run = ClientRun::new(&client, &input).json().launch(&bin);
    let run = Place::Member(&net, 3).apply(run);
    let report = run_report(nodes.procs(), "client", &run, Duration::from_secs(170));
    let plan = &report["plan"];
    assert_eq!(plan["source"], "planner", "{plan}");
    assert_eq!(report["items"], UBATCH * MICROBATCHES);
    let stages: Vec<SimStage> = plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| SimStage {
            compute_s: s["compute_s"].as_f64().unwrap(),
            transfer_s: s["transfer_s"].as_f64().unwrap(),
            latency_s: 0.0,
        })
        .collect();
    assert_eq!(stages.len(), 2, "memory forces a split in two: {plan}");
    let compute = stages.iter().map(|s| s.compute_s).fold(0.0, f64::max);
    assert!(
        stages[0].transfer_s > 2.0 * compute,
        "the link should be the bottleneck: {plan}"
    );

    // The plan's buffers (two in, two out per stage) and the run's microbatch count, so that
    // pipeline fill and drain count alike on both sides.
    let predicted = UBATCH as f64 / stages[0].transfer_s.max(compute);
    let sim = simulate_pipeline(&stages, 2, 2, UBATCH, MICROBATCHES, predicted).unwrap();
    let measured = report["items_per_s"].as_f64().unwrap();
    let ratio = measured / sim.throughput_items_per_s;
    eprintln!(
        "shaped link {RATE_MBIT} Mbit/s: measured {measured:.3} items/s, simulated {:.3} \
         (steady bound {predicted:.3}), ratio {ratio:.3}; test took {:.0} s",
        sim.throughput_items_per_s,
        started.elapsed().as_secs_f64()
    );
    assert!(
        (0.85..=1.15).contains(&ratio),
        "measured {measured:.3} items/s vs simulated {:.3} (ratio {ratio:.3})\n{}\n{}",
        sim.throughput_items_per_s,
        net.qdisc_stats(Link::egress(1)),
        net.qdisc_stats(Link::egress(2))
    );
}
