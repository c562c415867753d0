//! The exact planners against exhaustive search, and the cases the reference scheduler gets wrong.

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use quantpipe_planner::{
    self as planner, exact, exhaustive, links, BitPolicy, CostModel, Device, Fleet, ModelProfile,
    PlanConfig, PlanError, PlannerKind,
};

use common::{instance, same};

fn check_error_claim(cm: &CostModel, e: &PlanError) {
    match e {
        PlanError::UnitTooLarge { unit, .. } => {
            for d in 0..cm.devices() {
                assert!(!cm.fits(d, unit - 1, *unit), "unit {unit} fits device {d}");
            }
        }
        PlanError::FleetMemoryExhausted { .. } | PlanError::NoUsableLink => {}
        other => panic!("unexpected error {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1200))]

    /// Per-link planner: exact subset DP equals brute force; the heuristic is valid and never
    /// better than the optimum.
    #[test]
    fn links_exact_matches_exhaustive((model, fleet, cfg) in instance(5, true)) {
        let cm = CostModel::new(&model, &fleet, &cfg).unwrap();
        match (links::solve_exact(&cm), exhaustive::solve(&cm)) {
            (Ok(a), Ok(b)) => {
                let pa = cm.evaluate(&a, "links").unwrap();
                let pb = cm.evaluate(&b, "exhaustive").unwrap();
                prop_assert!(same(pa.bottleneck_s, pb.bottleneck_s),
                    "links {} vs exhaustive {}", pa.bottleneck_s, pb.bottleneck_s);
                if let Ok(h) = links::solve_heuristic(&cm) {
                    let ph = cm.evaluate(&h, "heuristic").unwrap();
                    prop_assert!(ph.bottleneck_s >= pa.bottleneck_s * (1.0 - 1e-12));
                }
            }
            (Err(a), Err(b)) => {
                prop_assert_eq!(&a, &b);
                check_error_claim(&cm, &a);
            }
            (a, b) => prop_assert!(false, "verdicts differ: {:?} vs {:?}", a, b),
        }
    }

    /// No baseline beats the optimum, and chosen bitwidths respect the accuracy budget.
    #[test]
    fn baselines_never_beat_the_optimum((model, fleet, cfg) in instance(5, false)) {
        let best = planner::plan(&model, &fleet, &cfg);
        // About a third of these instances have no plan: 1200 cases reject some 650, well
        // inside proptest's limit of 1024.
        prop_assume!(best.is_ok(), "no plan: {:?}", best);
        let best = best.unwrap();
        let allowed = cfg.bits.allowed(model.units()).unwrap();
        for s in &best.stages[..best.stages.len() - 1] {
            prop_assert!(allowed[s.r - 1].contains(&s.out_bits.unwrap()));
            prop_assert!(s.transfer_s <= best.bottleneck_s);
        }
        for kind in PlannerKind::BASELINES {
            if let Ok(p) = planner::plan_with(kind, &model, &fleet, &cfg) {
                prop_assert!(p.bottleneck_s >= best.bottleneck_s * (1.0 - 1e-12),
                    "{} {} < optimum {}", kind.name(), p.bottleneck_s, best.bottleneck_s);
            }
        }
    }
}

/// Class planner (nominal bandwidths): same optimum as brute force on 1500 random instances, the
/// same typed error when no plan exists, and both outcomes well represented.
#[test]
fn exact_matches_exhaustive() {
    use proptest::test_runner::{Config, TestRunner};
    use std::cell::Cell;
    let (feasible, infeasible) = (Cell::new(0), Cell::new(0));
    let mut runner = TestRunner::new(Config::with_cases(1500));
    runner
        .run(&instance(5, false), |(model, fleet, cfg)| {
            let cm = CostModel::new(&model, &fleet, &cfg).unwrap();
            match (exact::solve(&cm), exhaustive::solve(&cm)) {
                (Ok(a), Ok(b)) => {
                    let pa = cm.evaluate(&a, "exact").unwrap();
                    let pb = cm.evaluate(&b, "exhaustive").unwrap();
                    prop_assert!(
                        same(pa.bottleneck_s, pb.bottleneck_s),
                        "exact {} vs exhaustive {}",
                        pa.bottleneck_s,
                        pb.bottleneck_s
                    );
                    feasible.set(feasible.get() + 1);
                }
                (Err(a), Err(b)) => {
                    prop_assert_eq!(&a, &b);
                    check_error_claim(&cm, &a);
                    infeasible.set(infeasible.get() + 1);
                }
                (a, b) => prop_assert!(false, "verdicts differ: {:?} vs {:?}", a, b),
            }
            Ok(())
        })
        .unwrap();
    assert!(
        feasible.get() >= 300 && infeasible.get() >= 100,
        "{feasible:?} {infeasible:?}"
    );
}

fn two_type_model(n: usize, fast: f64, slow: f64) -> ModelProfile {
    let mut compute_s = BTreeMap::new();
    compute_s.insert("fast".to_string(), vec![fast; n]);
    compute_s.insert("slow".to_string(), vec![slow; n]);
    ModelProfile {
        name: "m".into(),
        weight_bytes: vec![100; n],
        cut_elements: vec![10; n - 1],
        input_elements: 10,
        output_elements: 10,
        compute_s,
    }
}

fn dev(name: &str, ty: &str, mem: u64) -> Device {
    Device {
        name: name.into(),
        device_type: ty.into(),
        mem_bytes: mem,
        bw_mbps: 1000.0,
    }
}

/// Several hosts per type: the reference scheduler indexes hosts by type number, so with hosts
/// [slow, fast, fast, fast] it prices "type 1" with host 1 and hands out hosts wrongly. Here every
/// fast host must get its own shard and the optimum must be the brute-force one.
#[test]
fn many_hosts_per_type_get_distinct_shards() {
    let model = two_type_model(8, 1.0, 4.0);
    let fleet = Fleet::new(vec![
        dev("s0", "slow", 1 << 20),
        dev("f0", "fast", 1 << 20),
        dev("f1", "fast", 1 << 20),
        dev("f2", "fast", 1 << 20),
    ]);
    let cfg = PlanConfig::default();
    let p = planner::plan(&model, &fleet, &cfg).unwrap();
    let ex = planner::plan_with(PlannerKind::Exhaustive, &model, &fleet, &cfg).unwrap();
    assert!(same(p.bottleneck_s, ex.bottleneck_s));
    // 8 units over three fast hosts (3+3+2 units -> 3 s) beats anything using the slow host.
    assert_eq!(p.bottleneck_s, 3.0);
    let mut hosts: Vec<_> = p.stages.iter().map(|s| s.device.clone()).collect();
    hosts.sort();
    assert_eq!(hosts, ["f0", "f1", "f2"]);
}

/// Memory forces a split, and a unit no device can hold is named.
#[test]
fn infeasible_instances_name_the_constraint() {
    let model = two_type_model(4, 1.0, 1.0);
    let cfg = PlanConfig {
        in_buffers: 0,
        out_buffers: 0,
        ubatch: 1,
        dtype_bytes: 1,
        ..PlanConfig::default()
    };
    // Each unit needs 100 weight bytes + 20 working-buffer bytes.
    let small = Fleet::new(vec![dev("a", "fast", 119)]);
    match planner::plan(&model, &small, &cfg) {
        Err(PlanError::UnitTooLarge {
            unit: 1,
            required_bytes: 120,
            largest_bytes: 119,
        }) => {}
        other => panic!("{other:?}"),
    }
    // 215 bytes hold one unit (120) but not two (220).
    let two = Fleet::new(vec![dev("a", "fast", 215), dev("b", "fast", 215)]);
    match planner::plan(&model, &two, &cfg) {
        Err(PlanError::FleetMemoryExhausted {
            devices: 2,
            fleet_bytes: 430,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let four = Fleet::new((0..4).map(|i| dev(&format!("d{i}"), "fast", 215)).collect());
    assert_eq!(planner::plan(&model, &four, &cfg).unwrap().stages.len(), 4);
    let mut four_cut = four.clone();
    for d in &mut four_cut.devices {
        d.bw_mbps = 0.0;
    }
    assert_eq!(
        planner::plan(&model, &four_cut, &cfg),
        Err(PlanError::NoUsableLink)
    );
    let missing = Fleet::new(vec![dev("a", "gpu", 1 << 20)]);
    assert!(matches!(
        planner::plan(&model, &missing, &cfg),
        Err(PlanError::MissingProfile { .. })
    ));
}

/// On a bandwidth-starved fleet, choosing cuts and bitwidths together beats planning with raw
/// activations and quantizing the cuts afterwards.
#[test]
fn quantization_aware_planning_beats_quantizing_afterwards() {
    let n = 8;
    let mut model = two_type_model(n, 0.1, 0.1);
    model.cut_elements = vec![1_000_000; n - 1];
    let fleet = Fleet::new(
        (0..4)
            .map(|i| Device {
                bw_mbps: 20.0,
                ..dev(&format!("d{i}"), "fast", 1 << 30)
            })
            .collect(),
    );
    let cfg = PlanConfig {
        ubatch: 1,
        bits: BitPolicy::Menu {
            menu: vec![2, 4, 8, 16, 32],
            min_bits: 4,
            per_cut_min: None,
        },
        ..PlanConfig::default()
    };
    let joint = planner::plan(&model, &fleet, &cfg).unwrap();
    let after = planner::plan_then_quantize(&model, &fleet, &cfg).unwrap();
    // Raw 4 MB cuts take 1.6 s at 20 Mbit/s, more than the whole model's 0.8 s: the raw plan
    // keeps one stage and quantizing has nothing to act on. At 4 bits a cut takes ~0.2 s, so
    // the joint plan splits 4 ways (0.2 s compute per stage).
    assert_eq!(after.stages.len(), 1);
    assert!((after.bottleneck_s - 0.8).abs() < 1e-9);
    assert_eq!(joint.stages.len(), 4);
    assert!(joint.bottleneck_s < 0.21, "{}", joint.bottleneck_s);
    assert!(joint.cut_bits.iter().all(|b| *b == 4));
    // Tie-break to higher bits: with an ample link the same plan keeps raw activations.
    let mut fat = fleet.clone();
    for d in &mut fat.devices {
        d.bw_mbps = 1e6;
    }
    let p = planner::plan(&model, &fat, &cfg).unwrap();
    assert!(p.cut_bits.iter().all(|b| *b == 32), "{:?}", p.cut_bits);
}

/// The planner's feasibility check (Pareto search with Lagrangian pruning and a beam probe) and
/// the older depth-first check give the same verdict for the same bound on random instances, at
/// the optimum, just below it (infeasible by definition) and around it; every plan either returns
/// stays within the bound.
#[test]
fn pareto_check_agrees_with_dfs_check() {
    use quantpipe_planner::exact::{feasible, Check};
    use quantpipe_planner::random::{random_instance, seeded};
    use rand::Rng as _;
    let (mut yes, mut no) = (0, 0);
    for seed in 0..300u64 {
        let mut rng = seeded(seed);
        let units = rng.random_range(6..25);
        let devices = rng.random_range(2..11);
        let types = rng.random_range(1..5);
        let (model, fleet, mut cfg) = random_instance(&mut rng, units, devices, types, false);
        if seed % 2 == 1 {
            cfg.bits = BitPolicy::Menu {
                menu: vec![2, 4, 8, 32],
                min_bits: 4,
                per_cut_min: None,
            };
        }
        let cm = CostModel::new(&model, &fleet, &cfg).unwrap();
        let limits = match exact::solve(&cm) {
            Ok(stages) => {
                let b = cm.evaluate(&stages, "exact").unwrap().bottleneck_s;
                vec![b, b * (1.0 - 1e-9), b * 0.8, b * 1.05, b * 1.3, b * 3.0]
            }
            Err(_) => vec![0.01, 0.1, 1.0, 100.0],
        };
        for limit in limits {
            let a = feasible(&cm, limit, Check::Pareto).unwrap();
            let f = feasible(&cm, limit, Check::ParetoFull).unwrap();
            let b = feasible(&cm, limit, Check::Dfs).unwrap();
            let b_some = b.is_some();
            assert_eq!(
                (a.is_some(), f.is_some()),
                (b.is_some(), b.is_some()),
                "seed {seed} limit {limit}: pareto {a:?} full {f:?} dfs {b:?}"
            );
            for stages in [a, f, b].into_iter().flatten() {
                let p = cm.evaluate(&stages, "check").unwrap();
                assert!(
                    p.bottleneck_s <= limit,
                    "seed {seed}: {} > {limit}",
                    p.bottleneck_s
                );
            }
            if b_some {
                yes += 1;
            } else {
                no += 1;
            }
        }
    }
    assert!(yes >= 300 && no >= 300, "feasible {yes}, infeasible {no}");
}
