//! The network-namespace harness itself: members reach each other over their veths, a shaped
//! link carries roughly its rate and follows a rate change, and everything is gone after drop.

use quantpipe_launcher::netns::{Link, Netns};
use quantpipe_launcher::privilege::root_or_skip;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

/// Names in `ip netns list`.
fn namespaces() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Bytes member 1 pushes to member 0 over TCP in `secs`, as Mbit/s seen by the receiver.
fn measure_mbit(net: &Netns, port: u16, secs: f64) -> f64 {
    let listener = net.run_in(0, || TcpListener::bind((net.addr(0), port)).unwrap());
    let to = SocketAddr::from((net.addr(0), port));
    std::thread::scope(|s| {
        let receiver = s.spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 1 << 16];
            let mut total = 0usize;
            let mut first: Option<Instant> = None;
            loop {
                let n = conn.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                first.get_or_insert_with(Instant::now);
                total += n;
            }
            total as f64 * 8.0 / first.unwrap().elapsed().as_secs_f64() / 1e6
        });
        net.run_in(1, || {
            let mut conn = TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
            let chunk = vec![7u8; 1 << 16];
            let end = Instant::now() + Duration::from_secs_f64(secs);
            while Instant::now() < end {
                conn.write_all(&chunk).unwrap();
            }
        });
        receiver.join().unwrap()
    })
}

#[test]
fn members_connect_over_tcp_and_a_shaped_link_carries_its_rate() {
    if !root_or_skip("members_connect_over_tcp_and_a_shaped_link_carries_its_rate") {
        return;
    }
    let net = Netns::new("qpharness", 2).unwrap_or_else(|e| panic!("{e}"));
    let names = [net.ns(0).to_owned(), net.ns(1).to_owned()];
    for n in &names {
        assert!(namespaces().contains(n), "{n} was not created");
    }

    // A round trip over the bridge.
    let listener = net.run_in(0, || TcpListener::bind((net.addr(0), 7000)).unwrap());
    let to = SocketAddr::from((net.addr(0), 7000));
    std::thread::scope(|s| {
        s.spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            let mut b = [0u8; 4];
            c.read_exact(&mut b).unwrap();
            c.write_all(&b).unwrap();
        });
        let echoed = net.run_in(1, || {
            let mut c = TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
            c.write_all(b"ping").unwrap();
            let mut b = [0u8; 4];
            c.read_exact(&mut b).unwrap();
            b
        });
        assert_eq!(&echoed, b"ping");
    });
    // The members' addresses exist only inside their namespaces.
    let here = Command::new("ip").args(["-o", "addr"]).output().unwrap();
    let here = String::from_utf8_lossy(&here.stdout);
    assert!(
        !here.contains(&net.addr(0).to_string()) && !here.contains(&net.addr(1).to_string()),
        "a member address is in the caller's namespace:\n{here}"
    );

    // Shaped, then re-shaped while the harness lives: rough figures (loose bounds, a busy
    // two-core machine), the point being that the rate is the one set.
    net.set_rate(Link::egress(1), 40.0).unwrap();
    let at_40 = measure_mbit(&net, 7001, 2.0);
    assert!(
        (26.0..46.0).contains(&at_40),
        "shaped to 40 Mbit/s, measured {at_40:.1}\n{}",
        net.qdisc_stats(Link::egress(1))
    );
    net.set_rate(Link::egress(1), 10.0).unwrap();
    let at_10 = measure_mbit(&net, 7002, 2.0);
    assert!(
        (6.5..11.5).contains(&at_10),
        "re-shaped to 10 Mbit/s, measured {at_10:.1}\n{}",
        net.qdisc_stats(Link::egress(1))
    );
    // Shaping the other direction of member 1 leaves this one as it was.
    net.set_rate(Link::ingress(1), 5.0).unwrap();
    net.unshape(Link::ingress(1)).unwrap();
    net.unshape(Link::ingress(1)).unwrap();
    eprintln!("shaped TCP: {at_40:.1} Mbit/s at 40, {at_10:.1} Mbit/s at 10");

    drop(net);
    let after = namespaces();
    for n in &names {
        assert!(!after.contains(n), "{n} is left after drop");
    }
}

#[test]
fn namespaces_are_removed_when_a_test_panics() {
    if !root_or_skip("namespaces_are_removed_when_a_test_panics") {
        return;
    }
    let names = std::sync::Mutex::new(Vec::new());
    let result = std::panic::catch_unwind(|| {
        let net = Netns::new("qpharness", 1).unwrap_or_else(|e| panic!("{e}"));
        names.lock().unwrap().push(net.ns(0).to_owned());
        panic!("a failing test");
    });
    assert!(result.is_err());
    let names = names.into_inner().unwrap();
    assert_eq!(names.len(), 1);
    assert!(!namespaces().contains(&names[0]));
}

#[test]
fn stale_namespaces_of_dead_processes_are_swept() {
    if !root_or_skip("stale_namespaces_of_dead_processes_are_swept") {
        return;
    }
    // A pid above the kernel's maximum never runs.
    let stale = "qpsweep-4194305-0-m0";
    let status = Command::new("ip")
        .args(["netns", "add", stale])
        .status()
        .unwrap();
    assert!(status.success());
    let net = Netns::new("qpsweep", 1).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !namespaces().iter().any(|n| n == stale),
        "{stale} survived the sweep"
    );
    assert!(
        namespaces().iter().any(|n| n == net.ns(0)),
        "the sweep removed a live namespace"
    );
}
