//! Leader election and failover: three `candidate` nodes and no configured leader on loopback.
//! The smallest-named candidate is elected and plans; a client run completes bitwise equal to
//! single-process inference. Then the elected leader (which also hosts a stage) is killed: the next
//! candidate takes over, plans over the nodes left at a higher epoch, and a second run completes
//! on that plan with the same exact outputs.

use quantpipe_actors::runtime::config::Role;
use quantpipe_integration::{
    assert_bitwise_equal, minilm_dir, quantpipe_bin, read_outputs, run_report,
    single_process_outputs,
};
use quantpipe_launcher::minilm::{long_texts, write_uniform_profile};
use quantpipe_launcher::{config_file, free_ports, loopback, ClientRun, Fleet, Place, Procs};
use std::path::Path;
use std::time::{Duration, Instant};

/// Waits until `log` contains `needle`, panicking with every log after `limit`.
fn wait_for(procs: &Procs, log: &Path, needle: &str, limit: Duration) {
    procs
        .wait_for_file(log, needle, limit, |t| t.contains(needle))
        .unwrap_or_else(|e| panic!("{e:#}"));
}

#[test]
fn when_the_elected_candidate_dies_the_next_candidate_replans_at_a_higher_epoch() {
    let bin = quantpipe_bin();
    let started = Instant::now();
    let model = minilm_dir();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("texts.txt");
    std::fs::write(&input, long_texts(8, 160).join("\n")).unwrap();
    let profile = dir.path().join("profile.json");
    write_uniform_profile(&profile, 4).unwrap();

    let ports = free_ports(5).unwrap();
    let ep = |i: usize| loopback(ports[i]);
    let fleet = format!("elect{}", std::process::id());
    let mut nodes = Fleet::new(&bin, dir.path());
    let start = |nodes: &mut Fleet, name: &str, i: usize| {
        let connect: Vec<String> = (0..i).map(ep).collect();
        let mut s = config_file::peer(&fleet, name, Role::Candidate, &model, vec![ep(i)], connect);
        s.device.threads = 1;
        s.device.profile_ubatch = 4;
        s.device.profile_file = Some(profile.clone());
        // Every candidate carries the same [leader] section: whoever is elected plans with it.
        s.leader.expected = ["a", "b", "c"].map(String::from).to_vec();
        s.leader.wait_s = 30.0;
        s.leader.ubatch = 4;
        s.leader.bits = 32;
        nodes.start(&s, Place::Here).unwrap();
    };
    // `a` comes up first, so it is elected whatever the start-up order of the others.
    start(&mut nodes, "a", 0);
    wait_for(
        nodes.procs(),
        &dir.path().join("a.log"),
        "node a up",
        Duration::from_secs(60),
    );
    start(&mut nodes, "b", 1);
    start(&mut nodes, "c", 2);
    wait_for(
        nodes.procs(),
        &dir.path().join("a.log"),
        "stage 2 = ",
        Duration::from_secs(60),
    );

    let run = |procs: &mut Procs, name: &str, connect: &[String]| -> serde_json::Value {
        let mut s = config_file::peer(&fleet, name, Role::Device, &model, vec![], connect.to_vec());
        s.client.window = 2;
        s.client.plan_wait_s = 60.0;
        s.client.result_timeout_s = 60.0;
        s.client.stall_s = 3.0;
        let path = config_file::write(dir.path(), &s).unwrap();
        let outputs = dir.path().join(format!("{name}.json"));
        let run = ClientRun::new(&path, &input)
            .save_outputs(&outputs)
            .json()
            .launch(&bin);
        let report = run_report(procs, name, &run, Duration::from_secs(120));
        assert_eq!(report["items"], 8, "{report}");
        report
    };
    let epoch = |r: &serde_json::Value| r["plan"]["epoch"].as_u64().unwrap();
    let stage_nodes = |r: &serde_json::Value| -> Vec<String> {
        r["plan"]["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["node"].as_str().unwrap().to_owned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    };

    let first = run(nodes.procs(), "client1", &[ep(0), ep(1), ep(2)]);
    assert_eq!(
        stage_nodes(&first),
        ["a", "b", "c"].map(String::from),
        "{first}"
    );
    let a_log = std::fs::read_to_string(dir.path().join("a.log")).unwrap();
    assert!(a_log.contains("a elected leader"), "{a_log}");

    let killed = Instant::now();
    nodes.procs().kill("a").unwrap();
    let b_log = dir.path().join("b.log");
    wait_for(
        nodes.procs(),
        &b_log,
        "b elected leader",
        Duration::from_secs(30),
    );
    let elected_after = killed.elapsed();
    wait_for(nodes.procs(), &b_log, "stage 1 = ", Duration::from_secs(60));
    let replanned_after = killed.elapsed();
    let second = run(nodes.procs(), "client2", &[ep(1), ep(2)]);
    assert!(epoch(&second) > epoch(&first), "{first}\n{second}");
    assert_eq!(
        stage_nodes(&second),
        ["b", "c"].map(String::from),
        "{second}"
    );
    let b_text = std::fs::read_to_string(&b_log).unwrap();
    assert!(
        b_text.contains(&format!(
            "takes over as leader: stages run plan epoch {}",
            epoch(&first)
        )),
        "{b_text}"
    );
    let c_log = std::fs::read_to_string(dir.path().join("c.log")).unwrap();
    assert!(!c_log.contains("c elected leader"), "{c_log}");

    let single = single_process_outputs(nodes.procs(), "infer", &bin, &model, &input, 4);
    for name in ["client1", "client2"] {
        let rows = read_outputs(&dir.path().join(format!("{name}.json")));
        assert_bitwise_equal(&rows, &single);
    }
    eprintln!(
        "leader failover: epoch {} on a, b, c; a killed; b elected after {:.1} s, plan epoch {} \
         on b, c after {:.1} s; test took {:.0} s",
        epoch(&first),
        elected_after.as_secs_f64(),
        epoch(&second),
        replanned_after.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
