//! Leader election and failover: three `candidate` nodes and no configured leader on loopback.
//! The smallest-named candidate is elected and plans; a client run completes bitwise equal to
//! single-process inference. Then the elected leader (which also hosts a stage) is killed: the next
//! candidate takes over, plans over the nodes left at a higher epoch, and a second run completes
//! on that plan with the same exact outputs.

use quantpipe_integration::fleet::minilm_dir;
use quantpipe_integration::fleet::{
    assert_bitwise_equal, long_texts, node_toml, single_process_outputs,
    write_uniform_minilm_profile,
};
use quantpipe_integration::{free_ports, quantpipe_bin, Procs};
use std::path::Path;
use std::time::{Duration, Instant};

/// Waits until `log` contains `needle`, panicking with every log after `limit`.
fn wait_for(procs: &Procs, log: &Path, needle: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(needle)
    {
        assert!(
            Instant::now() < deadline,
            "`{needle}` not in {} within {limit:?}:\n{}",
            log.display(),
            procs.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
    write_uniform_minilm_profile(&profile, 4);

    let ports = free_ports(5);
    let ep = |i: usize| format!("tcp/127.0.0.1:{}", ports[i]);
    let fleet = format!("elect{}", std::process::id());
    // Every candidate carries the same [leader] section: whoever is elected plans with it.
    let extra = format!(
        "[device]\nthreads = 1\nprofile_ubatch = 4\nprofile_file = \"{}\"\n\
         [leader]\nexpected = [\"a\", \"b\", \"c\"]\nwait_s = 30\nubatch = 4\nbits = 32\n",
        profile.display()
    );
    let mut procs = Procs::new(dir.path());
    let start = |procs: &mut Procs, name: &str, i: usize| {
        let path = dir.path().join(format!("{name}.toml"));
        let connect: Vec<String> = (0..i).map(ep).collect();
        std::fs::write(
            &path,
            node_toml(
                &fleet,
                name,
                &model,
                "candidate",
                &[ep(i)],
                &connect,
                &extra,
            ),
        )
        .unwrap();
        procs.spawn(name, &bin, &["node", "--config", path.to_str().unwrap()]);
    };
    // `a` comes up first, so it is elected whatever the start-up order of the others.
    start(&mut procs, "a", 0);
    wait_for(
        &procs,
        &dir.path().join("a.log"),
        "node a up",
        Duration::from_secs(60),
    );
    start(&mut procs, "b", 1);
    start(&mut procs, "c", 2);
    wait_for(
        &procs,
        &dir.path().join("a.log"),
        "stage 2 = ",
        Duration::from_secs(60),
    );

    let run = |procs: &mut Procs, name: &str, connect: &[String]| -> serde_json::Value {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &path,
            node_toml(
                &fleet,
                name,
                &model,
                "device",
                &[],
                connect,
                "[client]\nwindow = 2\nplan_wait_s = 60\nresult_timeout_s = 60\nstall_s = 3\n",
            ),
        )
        .unwrap();
        let outputs = dir.path().join(format!("{name}.json"));
        let out = procs.run_to_end(
            name,
            &bin,
            &[
                "run",
                "--config",
                path.to_str().unwrap(),
                "--input",
                input.to_str().unwrap(),
                "--save-outputs",
                outputs.to_str().unwrap(),
                "--json",
            ],
            Duration::from_secs(120),
        );
        let report: serde_json::Value = serde_json::from_str(out.trim()).expect("run --json");
        assert_eq!(report["items"], 8, "{report}");
        report
    };
    let epoch = |r: &serde_json::Value| r["plan"]["epoch"].as_u64().unwrap();
    let nodes = |r: &serde_json::Value| -> Vec<String> {
        r["plan"]["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["node"].as_str().unwrap().to_owned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    };

    let first = run(&mut procs, "client1", &[ep(0), ep(1), ep(2)]);
    assert_eq!(nodes(&first), ["a", "b", "c"].map(String::from), "{first}");
    let a_log = std::fs::read_to_string(dir.path().join("a.log")).unwrap();
    assert!(a_log.contains("a elected leader"), "{a_log}");

    let killed = Instant::now();
    procs.kill("a");
    let b_log = dir.path().join("b.log");
    wait_for(&procs, &b_log, "b elected leader", Duration::from_secs(30));
    let elected_after = killed.elapsed();
    wait_for(&procs, &b_log, "stage 1 = ", Duration::from_secs(60));
    let replanned_after = killed.elapsed();
    let second = run(&mut procs, "client2", &[ep(1), ep(2)]);
    assert!(epoch(&second) > epoch(&first), "{first}\n{second}");
    assert_eq!(nodes(&second), ["b", "c"].map(String::from), "{second}");
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

    let single = single_process_outputs(&mut procs, "infer", &bin, &model, &input, 4);
    for name in ["client1", "client2"] {
        let rows: Vec<Vec<f32>> = serde_json::from_slice(
            &std::fs::read(dir.path().join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
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
