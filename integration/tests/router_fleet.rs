//! A fleet across two subnets joined only by `quantpipe router`: the leader, one device and the
//! client on 10.214.1.0/24, the other device on 10.214.2.0/24, each a process in its own
//! network namespace. Every member is a zenoh client of the router's address on its own subnet
//! (`zenoh.mode = "client"`), so every declaration and every message goes through the router;
//! the router's namespace has a link into each subnet and forwards no IP packet. The leader
//! plans MiniLM over both devices, a client run's outputs equal single-process inference
//! bitwise, and `quantpipe status` shows both devices alive. There is no IP path between the
//! subnets, and once the router joining them is replaced by one on the first subnet alone, the
//! leader keeps the device of its own subnet and no longer sees the other.

use quantpipe_actors::runtime::config::{Role, Settings};
use quantpipe_integration::{
    assert_bitwise_equal, minilm_dir, quantpipe_bin, read_outputs, run_report,
    single_process_outputs,
};
use quantpipe_launcher::minilm::{long_texts, write_uniform_profile};
use quantpipe_launcher::netns::Netns;
use quantpipe_launcher::privilege::root_or_skip;
use quantpipe_launcher::{config_file, ClientRun, Fleet, Launch, Place};
use quantpipe_messages::FleetStatus;
use quantpipe_security::SecuritySettings;
use std::path::Path;
use std::time::{Duration, Instant};

const UBATCH: usize = 4;
const LEASE_MS: u64 = 3000;
const PORT: u16 = 7447;

/// `quantpipe status --json` with `config`, in member `i`'s namespace; the error names what
/// failed (no leader reached, say).
fn status_in(net: &Netns, i: usize, bin: &Path, config: &Path) -> Result<FleetStatus, String> {
    let config = config.to_string_lossy();
    let argv = Launch::new(
        bin,
        &["status", "--json", "--timeout-s", "10", "--config", &config],
    )
    .in_netns(net.ns(i))
    .argv();
    let out = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .expect("running quantpipe status");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("status --json output: {e}"))
}

fn alive(st: &FleetStatus, name: &str) -> bool {
    st.nodes.iter().any(|n| n.name == name && n.alive)
}

/// `quantpipe router` listening on `listen`, plain TCP with the fleet's lease.
fn router(bin: &Path, listen: &[String]) -> Launch {
    let lease = LEASE_MS.to_string();
    let mut args = vec!["router", "--insecure", "--lease-ms", &lease, "--listen"];
    args.extend(listen.iter().map(String::as_str));
    Launch::new(bin, &args)
}

/// Until `addr`:[`PORT`] accepts a TCP connection from member `i`'s namespace (10 s at most).
fn wait_for_listener(net: &Netns, i: usize, addr: std::net::Ipv4Addr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while net
        .run_in(i, || {
            std::net::TcpStream::connect_timeout(&(addr, PORT).into(), Duration::from_secs(1))
        })
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the router does not listen on {addr}:{PORT}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn nodes_on_two_subnets_run_a_fleet_through_the_router_alone() {
    if !root_or_skip("nodes_on_two_subnets_run_a_fleet_through_the_router_alone") {
        return;
    }
    let started = Instant::now();
    let bin = quantpipe_bin();
    let model = minilm_dir();
    let dir = tempfile::tempdir().unwrap();
    // Subnet 0: 0 leader, 1 device `ra`, 2 client; subnet 1: 3 device `rb`. `net` outlives
    // `nodes`: processes die first.
    let net = Netns::two_subnets("qprt", 3, 1).unwrap_or_else(|e| panic!("{e}"));
    let mut nodes = Fleet::new(&bin, dir.path());
    let subnet = |i: usize| usize::from(i >= 3);
    let endpoint = |addr: std::net::Ipv4Addr| format!("tcp/{addr}:{PORT}");
    let fleet = format!("qprt{}", std::process::id());

    // No IP path between the subnets: not to the other device, not through the router host.
    for target in [net.addr(3), net.gateway(1)] {
        let direct = net.run_in(0, || {
            std::net::TcpStream::connect_timeout(&(target, PORT).into(), Duration::from_secs(2))
        });
        assert!(
            direct.is_err(),
            "subnet 0 reaches {target} without the router"
        );
    }

    let both = [endpoint(net.gateway(0)), endpoint(net.gateway(1))];
    let router_up = Instant::now();
    nodes
        .procs()
        .start("router", &router(&bin, &both).in_netns(net.hub()))
        .unwrap();
    // A zenoh client that finds no router at start exits: members start once it listens.
    for i in [0, 3] {
        wait_for_listener(&net, i, net.gateway(subnet(i)));
    }

    // A zenoh client of the router's address on its own subnet: it listens nowhere, and
    // everything it declares or sends goes through the router.
    let member = |name: &str, role: Role, i: usize| {
        let mut s = config_file::peer(
            &fleet,
            name,
            role,
            &model,
            Vec::new(),
            vec![endpoint(net.gateway(subnet(i)))],
        );
        s.zenoh.mode = "client".into();
        // Plain TCP between private namespaces of this test: nothing else is on that network.
        s.security = SecuritySettings {
            insecure: true,
            ..Default::default()
        };
        s.zenoh.lease_ms = LEASE_MS;
        s
    };
    let profile = dir.path().join("profile.json");
    write_uniform_profile(&profile, UBATCH).unwrap();
    let mut leader = member("leader", Role::Leader, 0);
    leader.leader.expected = vec!["ra".into(), "rb".into()];
    leader.leader.wait_s = 120.0;
    leader.leader.ubatch = UBATCH;
    leader.leader.bits = 32;
    leader.leader.stages = config_file::forced(&[("ra", [1, 12]), ("rb", [13, 24])]);
    nodes.start(&leader, Place::Member(&net, 0)).unwrap();
    for (i, name) in [(1, "ra"), (3, "rb")] {
        let mut device = member(name, Role::Device, i);
        device.device.threads = 1;
        device.device.profile_ubatch = UBATCH;
        device.device.profile_file = Some(profile.clone());
        nodes.start(&device, Place::Member(&net, i)).unwrap();
    }
    let mut client: Settings = member("client", Role::Device, 2);
    client.client.window = 2;
    client.client.plan_wait_s = 150.0;
    client.client.result_timeout_s = 60.0;
    let client = config_file::write(dir.path(), &client).unwrap();
    let input = dir.path().join("texts.txt");
    std::fs::write(&input, long_texts(UBATCH * 6, 20).join("\n")).unwrap();
    let outputs = dir.path().join("outputs.json");

    let run = ClientRun::new(&client, &input)
        .save_outputs(&outputs)
        .json()
        .launch(&bin);
    let run = Place::Member(&net, 2).apply(run);
    let report = run_report(nodes.procs(), "client", &run, Duration::from_secs(200));
    let first_run_s = router_up.elapsed().as_secs_f64();
    let stages: Vec<&str> = report["plan"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["node"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["ra", "rb"], "{report}");
    let single = single_process_outputs(nodes.procs(), "single", &bin, &model, &input, UBATCH);
    assert_bitwise_equal(&read_outputs(&outputs), &single);

    // The leader sees both devices through the router.
    let observer = {
        let s = member("observer", Role::Device, 2);
        config_file::write(dir.path(), &s).unwrap()
    };
    let st = status_in(&net, 2, &bin, &observer).unwrap_or_else(|e| panic!("{e}"));
    assert!(alive(&st, "ra") && alive(&st, "rb"), "{st:?}");

    // Without a router joining the subnets, they do not see each other: the router is
    // replaced by one on subnet 0 alone, the members there reconnect to it, and the leader
    // keeps `ra` while `rb`, whose router address no longer answers, stays out of its view.
    nodes.procs().kill("router").unwrap();
    let stopped = Instant::now();
    let subnet0 = [endpoint(net.gateway(0))];
    nodes
        .procs()
        .start("router0", &router(&bin, &subnet0).in_netns(net.hub()))
        .unwrap();
    let deadline = stopped + Duration::from_millis(LEASE_MS) + Duration::from_secs(40);
    let (without, last) = loop {
        let st = status_in(&net, 2, &bin, &observer);
        if let Ok(st) = &st {
            if alive(st, "ra") && !alive(st, "rb") {
                break (stopped.elapsed().as_secs_f64(), st.clone());
            }
        }
        assert!(
            Instant::now() < deadline,
            "no view of ra without rb on subnet 0's router: {st:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(alive(&last, "ra") && !alive(&last, "rb"), "{last:?}");
    println!(
        "FIGURES router fleet (2 subnets, zenoh clients of one router, plain TCP): {} items \
         bitwise equal to single-process at {:.2} items/s; router start to run done {first_run_s:.1} s; \
         with subnet 0's router alone the leader saw ra without rb {without:.1} s after the \
         joining router stopped; test took {:.0} s",
        report["items"],
        report["items_per_s"].as_f64().unwrap_or(f64::NAN),
        started.elapsed().as_secs_f64()
    );
}
