//! The simulator against the planner's bound, the scaling study, and the file-based CLI API.

mod common;

use std::path::PathBuf;

use proptest::prelude::*;
use quantpipe_planner::cli::{self, PlanRequest};
use quantpipe_planner::profiles::synthetic::{vit_profile, DeviceSpeed, VitSpec};
use quantpipe_planner::scaling::{scaling_study, ScalingConfig};
use quantpipe_planner::simulate;
use quantpipe_planner::{self as planner, BitPolicy, PlanConfig, PlannerKind};

use common::instance;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// With zero latency and at least one buffer each way, the simulated steady-state rate is the
    /// planner's ubatch / bottleneck, and the bottleneck stage or link is saturated.
    #[test]
    fn simulator_agrees_with_the_planner_bound((model, fleet, cfg) in instance(5, false)) {
        let p = planner::plan(&model, &fleet, &cfg);
        prop_assume!(p.is_ok(), "no plan: {:?}", p);
        let p = p.unwrap();
        let r = simulate(&p, 300).unwrap();
        let rel = (r.steady_throughput_items_per_s - p.throughput_items_per_s).abs()
            / p.throughput_items_per_s;
        prop_assert!(rel < 1e-6, "sim {} vs bound {}", r.steady_throughput_items_per_s,
            p.throughput_items_per_s);
        prop_assert!(r.throughput_items_per_s <= p.throughput_items_per_s * (1.0 + 1e-9));
        let busiest = r.stage_utilisation.iter().chain(&r.link_utilisation).cloned().fold(0.0, f64::max);
        prop_assert!(busiest > 0.9);
    }
}

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

#[test]
fn plan_and_simulate_from_example_files() {
    let mut req = PlanRequest {
        models: repo("config/examples/models.yml"),
        device_types: repo("config/examples/device_types.yml"),
        devices: repo("config/examples/devices.yml"),
        model: "tiny-vit".into(),
        ubatch: 8,
        links: None,
        bits: Some(cli::parse_bits_menu("2,4,8,32").unwrap()),
        min_bits: Some(4),
        baseline: None,
        dtype: None,
        in_buffers: None,
        out_buffers: None,
    };
    let p = cli::plan_from_files(&req).unwrap();
    assert_eq!(p.stages.first().unwrap().l, 1);
    assert_eq!(p.stages.last().unwrap().r, 8);
    assert!(p.cut_bits.iter().all(|b| *b >= 4));
    req.links = Some(repo("config/examples/links.yml"));
    let pl = cli::plan_from_files(&req).unwrap();
    req.baseline = Some(cli::parse_baseline("even").unwrap());
    let even = cli::plan_from_files(&req).unwrap();
    assert_eq!(even.planner, "even");
    assert!(even.bottleneck_s >= pl.bottleneck_s);
    // Round trip through a plan file into the simulator.
    let dir = std::env::temp_dir().join(format!("qp-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("plan.json");
    std::fs::write(&f, serde_json::to_string(&pl).unwrap()).unwrap();
    let r = cli::simulate_plan_file(&f, 100).unwrap();
    assert!(r.latency_p99_s >= r.latency_p50_s);
    assert!(r.steady_throughput_items_per_s <= pl.throughput_items_per_s * (1.0 + 1e-9));
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(cli::parse_bits_menu("4,x").is_err());
    assert!(cli::parse_baseline("fastest").is_err());
}

#[test]
fn scaling_study_on_synthetic_vit_large() {
    let speeds = [
        DeviceSpeed {
            device_type: "fast".into(),
            gflops: 200.0,
        },
        DeviceSpeed {
            device_type: "slow".into(),
            gflops: 50.0,
        },
    ];
    let cfg = PlanConfig {
        ubatch: 8,
        bits: BitPolicy::Fixed { bits: 32 },
        ..PlanConfig::default()
    };
    let c = ScalingConfig {
        model: vit_profile(&VitSpec::large(), cfg.ubatch, &speeds),
        fast_type: "fast".into(),
        slow_type: "slow".into(),
        fast_mem_bytes: 4 << 30,
        slow_mem_bytes: 2 << 30,
        fleet_sizes: vec![1, 2, 4, 8, 16],
        link_mbps: vec![1000.0, 100.0],
        cfg,
        microbatches: 64,
    };
    let r = scaling_study(&c).unwrap();
    assert_eq!(r.rows.len(), 10);
    let gig: Vec<_> = r.rows.iter().filter(|x| x.link_mbps == 1000.0).collect();
    // ViT-Large (1.2 GB) fits one 4 GiB device: speedups are against one device, and the optimum
    // never loses ground as devices are added.
    assert_eq!(gig[0].speedup, Some(1.0));
    for w in gig.windows(2) {
        assert!(
            w[1].edgepipe_items_per_s.unwrap() >= w[0].edgepipe_items_per_s.unwrap() * (1.0 - 1e-9)
        );
    }
    assert!(gig[4].speedup.unwrap() > 3.0, "{:?}", gig[4]);
    for row in &r.rows {
        for kind in PlannerKind::BASELINES {
            if let Some(s) = row.speedup_over_baseline[kind.name()] {
                assert!(
                    s >= 1.0 - 1e-6,
                    "{} at {} devices: {s}",
                    kind.name(),
                    row.devices
                );
            }
        }
    }
    println!("{}", serde_json::to_string(&r).unwrap());
}
