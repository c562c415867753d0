//! Three node processes and a leader over loopback TCP: a forced plan with cuts after u0 (unit 1)
//! and after u2 (unit 3, the post-GELU pair) at 32 bits must give exactly (bitwise) the outputs
//! of single-process inference of the same microbatches.

use quantpipe_integration::fleet::minilm_dir;
use quantpipe_integration::fleet::{
    assert_bitwise_equal, single_process_outputs, write_uniform_minilm_profile,
};
use quantpipe_integration::{free_ports, quantpipe_bin, Procs};
use std::path::Path;
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

fn node_toml(
    fleet: &str,
    name: &str,
    model: &Path,
    role: &str,
    listen: u16,
    connect: Option<u16>,
    extra: &str,
) -> String {
    let connect = connect
        .map(|p| format!("\"tcp/127.0.0.1:{p}\""))
        .unwrap_or_default();
    format!(
        "fleet = \"{fleet}\"\nname = \"{name}\"\nrole = \"{role}\"\nmodel_dir = \"{}\"\n\
         [zenoh]\nlisten = [\"tcp/127.0.0.1:{listen}\"]\nconnect = [{connect}]\n{extra}",
        model.display()
    )
}

#[test]
fn three_nodes_match_single_process_inference_bitwise_at_32_bits() {
    let bin = quantpipe_bin();
    let model = minilm_dir();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sentences.txt");
    std::fs::write(&input, SENTENCES.join("\n")).unwrap();
    // A profile file spares the nodes a measurement the forced plan does not use.
    let profile = dir.path().join("profile.json");
    write_uniform_minilm_profile(&profile, 4);

    let ports = free_ports(5);
    let fleet = format!("it{}", std::process::id());
    let device = format!(
        "[device]\nthreads = 1\nprofile_ubatch = 4\nprofile_file = \"{}\"\n",
        profile.display()
    );
    let leader_extra = "[leader]\nexpected = [\"a\", \"b\", \"c\"]\nwait_s = 60\nubatch = 4\nbits = 32\n\
        stages = [{ node = \"a\", units = [1, 1] }, { node = \"b\", units = [2, 3] }, { node = \"c\", units = [4, 24] }]\n";
    let mut procs = Procs::new(dir.path());
    let configs = [
        ("leader", "leader", ports[0], None, leader_extra.to_string()),
        ("a", "device", ports[1], Some(ports[0]), device.clone()),
        ("b", "device", ports[2], Some(ports[0]), device.clone()),
        ("c", "device", ports[3], Some(ports[0]), device.clone()),
    ];
    for (name, role, listen, connect, extra) in &configs {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &path,
            node_toml(&fleet, name, &model, role, *listen, *connect, extra),
        )
        .unwrap();
        procs.spawn(name, &bin, &["node", "--config", path.to_str().unwrap()]);
    }
    let client = dir.path().join("client.toml");
    std::fs::write(
        &client,
        node_toml(
            &fleet,
            "client",
            &model,
            "device",
            ports[4],
            Some(ports[0]),
            "[client]\nwindow = 2\nplan_wait_s = 90\nresult_timeout_s = 90\n",
        ),
    )
    .unwrap();
    let outputs = dir.path().join("outputs.json");
    let report = procs.run_to_end(
        "client",
        &bin,
        &[
            "run",
            "--config",
            client.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--save-outputs",
            outputs.to_str().unwrap(),
            "--json",
        ],
        Duration::from_secs(240),
    );
    let report: serde_json::Value = serde_json::from_str(report.trim()).expect("run --json output");
    assert_eq!(report["items"], SENTENCES.len());
    assert_eq!(report["plan"]["stages"].as_array().unwrap().len(), 3);
    let pipeline: Vec<Vec<f32>> =
        serde_json::from_slice(&std::fs::read(&outputs).unwrap()).unwrap();

    // The client pads each microbatch to its longest item, so the reference runs the same
    // microbatches (plan ubatch 4) one at a time.
    let mut single: Vec<Vec<f32>> = Vec::new();
    for (i, chunk) in SENTENCES.chunks(4).enumerate() {
        let part = dir.path().join(format!("part{i}.txt"));
        std::fs::write(&part, chunk.join("\n")).unwrap();
        single.extend(single_process_outputs(
            &mut procs,
            &format!("infer{i}"),
            &bin,
            &model,
            &part,
            4,
        ));
    }
    assert_bitwise_equal(&pipeline, &single);
}
