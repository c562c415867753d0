//! Three node processes and a leader over loopback TCP: a forced plan with cuts after u0 (unit 1)
//! and after u2 (unit 3, the post-GELU pair) at 32 bits must give exactly (bitwise) the outputs
//! of single-process inference of the same microbatches.

use quantpipe_actors::runtime::config::Role;
use quantpipe_integration::{
    assert_bitwise_equal, minilm_dir, quantpipe_bin, read_outputs, run_report,
    single_process_outputs, write_loopback_client,
};
use quantpipe_launcher::config_file::{self, loopback_peer};
use quantpipe_launcher::minilm::write_uniform_profile;
use quantpipe_launcher::{free_ports, ClientRun, Fleet, Place};
use std::time::Duration;

const SENTENCES: &[&str] = &[
    "The central bank raised interest rates again this quarter.",
    "A late goal settled the cup final in front of a record crowd.",
    "The new phone ships with a faster chip and a bigger battery.",
    "Parliament debated the budget late into the night.",
    "The film won three awards at the festival.",
    "Shares fell sharply after the profit warning.",
    "The striker signed a four-year contract.",
    "Researchers released an open-source speech model.",
    "Voters head to the polls on Thursday.",
    "Short.",
];

#[test]
fn three_nodes_match_single_process_inference_bitwise_at_32_bits() {
    let bin = quantpipe_bin();
    let model = minilm_dir();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sentences.txt");
    std::fs::write(&input, SENTENCES.join("\n")).unwrap();
    // A profile file spares the nodes a measurement the forced plan does not use.
    let profile = dir.path().join("profile.json");
    write_uniform_profile(&profile, 4).unwrap();

    let ports = free_ports(5).unwrap();
    let fleet = format!("it{}", std::process::id());
    let mut leader = loopback_peer(&fleet, "leader", Role::Leader, &model, ports[0], None);
    leader.leader.expected = ["a", "b", "c"].map(String::from).to_vec();
    leader.leader.wait_s = 60.0;
    leader.leader.ubatch = 4;
    leader.leader.bits = 32;
    leader.leader.stages = config_file::forced(&[("a", [1, 1]), ("b", [2, 3]), ("c", [4, 24])]);
    let mut nodes = Fleet::new(&bin, dir.path());
    nodes.start(&leader, Place::Here).unwrap();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let mut device = loopback_peer(
            &fleet,
            name,
            Role::Device,
            &model,
            ports[i + 1],
            Some(ports[0]),
        );
        device.device.threads = 1;
        device.device.profile_ubatch = 4;
        device.device.profile_file = Some(profile.clone());
        nodes.start(&device, Place::Here).unwrap();
    }
    let client = write_loopback_client(dir.path(), &fleet, &model, ports[4], ports[0]);
    let procs = nodes.procs();
    let outputs = dir.path().join("outputs.json");
    let run = ClientRun::new(&client, &input)
        .save_outputs(&outputs)
        .json()
        .launch(&bin);
    let report = run_report(procs, "client", &run, Duration::from_secs(240));
    assert_eq!(report["items"], SENTENCES.len());
    assert_eq!(report["plan"]["stages"].as_array().unwrap().len(), 3);
    let pipeline = read_outputs(&outputs);

    // The client pads each microbatch to its longest item, so the reference runs the same
    // microbatches (plan ubatch 4) one at a time.
    let mut single: Vec<Vec<f32>> = Vec::new();
    for (i, chunk) in SENTENCES.chunks(4).enumerate() {
        let part = dir.path().join(format!("part{i}.txt"));
        std::fs::write(&part, chunk.join("\n")).unwrap();
        single.extend(single_process_outputs(
            procs,
            &format!("infer{i}"),
            &bin,
            &model,
            &part,
            4,
        ));
    }
    assert_bitwise_equal(&pipeline, &single);
}
