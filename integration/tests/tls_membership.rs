//! Membership by certificate with real zenoh sessions on loopback, each built from
//! `Settings::zenoh_config()` with the `[security]` of a member of a throwaway fleet CA:
//! enrolled members exchange messages over mutual TLS; peers with a certificate of another CA,
//! or with none, cannot connect at all; a removed member receives nothing once the others
//! restart with the new member list; and a client cannot put another client's results.

use quantpipe_actors::runtime::config::{Role, Settings, ZenohSettings};
use quantpipe_launcher::free_ports;
use quantpipe_messages::Keys;
use quantpipe_security::{throwaway_fleet, MemberRole, ThrowawayFleet};
use std::path::Path;
use std::time::{Duration, Instant};
use zenoh::handlers::FifoChannelHandler;
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::sample::Sample;
use zenoh::{Session, Wait};

/// How long a session may take to connect to its endpoints; `zenoh::open` fails past it.
const CONNECT_LIMIT_MS: u64 = 5_000;
/// How long a message or a subscription may take to arrive when it is allowed.
const ARRIVAL: Duration = Duration::from_secs(10);
/// How long to listen for a message that must not come, after a message sent alongside it
/// by an allowed peer has arrived.
const SILENCE: Duration = Duration::from_millis(1_000);

fn tls(port: u16) -> String {
    format!("tls/127.0.0.1:{port}")
}

/// Connecting waits until every connect endpoint is up (or fails after `CONNECT_LIMIT_MS`),
/// so no test races a link still being set up, and a refused peer's `zenoh::open` fails.
fn connect_synchronously(z: &mut ZenohSettings) {
    z.extra
        .insert("connect/exit_on_failure".into(), "true".into());
    z.extra
        .insert("connect/timeout_ms".into(), CONNECT_LIMIT_MS.to_string());
}

/// The settings of member `name` of `fleet`: listening on `listen`, connecting to `connect`.
fn member(fleet: &ThrowawayFleet, name: &str, listen: Option<u16>, connect: &[u16]) -> Settings {
    let mut s = Settings::new(fleet.ca.fleet(), name, Role::Device, Path::new("unused"));
    s.zenoh = ZenohSettings::peer(
        listen.map(tls).into_iter().collect(),
        connect.iter().copied().map(tls).collect(),
    );
    connect_synchronously(&mut s.zenoh);
    s.security = fleet
        .security(name)
        .unwrap_or_else(|| panic!("{name} is enrolled"));
    s
}

fn open(s: &Settings) -> zenoh::Result<Session> {
    zenoh::open(s.zenoh_config().expect("a member's zenoh config")).wait()
}

fn subscribe(session: &Session, key: &str) -> Subscriber<FifoChannelHandler<Sample>> {
    session.declare_subscriber(key.to_owned()).wait().unwrap()
}

fn publisher(session: &Session, key: &str) -> Publisher<'static> {
    session.declare_publisher(key.to_owned()).wait().unwrap()
}

/// Whether a subscriber matching `p` appears within `limit` (heard from a matching listener).
fn matched_within(p: &Publisher<'_>, limit: Duration) -> bool {
    let listener = p.matching_listener().wait().unwrap();
    if p.matching_status().wait().unwrap().matching() {
        return true;
    }
    let until = Instant::now() + limit;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match listener.recv_timeout(left) {
            Ok(Some(status)) if status.matching() => return true,
            Ok(Some(_)) => continue,
            _ => return false,
        }
    }
}

/// The next payload `sub` receives within `limit`.
fn next_payload(sub: &Subscriber<FifoChannelHandler<Sample>>, limit: Duration) -> Option<String> {
    sub.recv_timeout(limit)
        .ok()
        .flatten()
        .map(|s| s.payload().try_to_string().unwrap().into_owned())
}

fn fleet(dir: &Path, name: &str, members: &[(&str, MemberRole)]) -> ThrowawayFleet {
    throwaway_fleet(dir, &format!("{name}{}", std::process::id()), members).unwrap()
}

#[test]
fn enrolled_members_exchange_messages_over_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = fleet(
        dir.path(),
        "tlsok",
        &[
            ("l", MemberRole::Leader),
            ("a", MemberRole::Node),
            ("c", MemberRole::Client),
        ],
    );
    let keys = Keys::new(fleet.ca.fleet());
    let ports = free_ports(2).unwrap();
    let l = open(&member(&fleet, "l", Some(ports[0]), &[])).unwrap();
    let a = open(&member(&fleet, "a", Some(ports[1]), &[ports[0]])).unwrap();
    let c = open(&member(&fleet, "c", None, &[ports[1]])).unwrap();

    // Stage traffic between nodes.
    let stage1 = subscribe(&a, &keys.stage_in(1));
    let to_stage1 = publisher(&l, &keys.stage_in(1));
    assert!(
        matched_within(&to_stage1, ARRIVAL),
        "a's subscription reached l"
    );
    to_stage1.put("activation").wait().unwrap();
    assert_eq!(
        next_payload(&stage1, ARRIVAL).as_deref(),
        Some("activation")
    );

    // A client's microbatch into stage 0.
    let stage0 = subscribe(&a, &keys.stage0_ins());
    let to_stage0 = publisher(&c, &keys.stage0_in_from("c"));
    assert!(
        matched_within(&to_stage0, ARRIVAL),
        "a's subscription reached c"
    );
    to_stage0.put("microbatch").wait().unwrap();
    assert_eq!(
        next_payload(&stage0, ARRIVAL).as_deref(),
        Some("microbatch")
    );

    // The leader's plan announcement reaches the client.
    let plans = subscribe(&c, &keys.plan_changed());
    let announce = publisher(&l, &keys.plan_changed());
    assert!(
        matched_within(&announce, ARRIVAL),
        "c's subscription reached l"
    );
    announce.put("plan").wait().unwrap();
    assert_eq!(next_payload(&plans, ARRIVAL).as_deref(), Some("plan"));
}

#[test]
fn peers_without_a_certificate_of_the_fleets_ca_cannot_connect() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = fleet(
        dir.path(),
        "tlsno",
        &[("a", MemberRole::Node), ("b", MemberRole::Node)],
    );
    let port = free_ports(1).unwrap()[0];
    let a = open(&member(&fleet, "a", Some(port), &[])).unwrap();
    let stage1 = subscribe(&a, &Keys::new(fleet.ca.fleet()).stage_in(1));

    // A certificate of another CA, even under a member's name and the fleet's name.
    let other_dir = tempfile::tempdir().unwrap();
    let other = throwaway_fleet(
        other_dir.path(),
        fleet.ca.fleet(),
        &[("b", MemberRole::Node)],
    )
    .unwrap();
    let stranger = member(&other, "b", None, &[port]);
    assert!(
        open(&stranger).is_err(),
        "a certificate of another CA connected"
    );

    // No certificate at all: TLS that trusts the fleet's CA but presents nothing.
    let mut bare = ZenohSettings::peer(vec![], vec![tls(port)]);
    connect_synchronously(&mut bare);
    let mut config = bare.config().unwrap();
    let ca = fleet.ca.certificate_path();
    config
        .insert_json5(
            "transport/link/tls/root_ca_certificate",
            &serde_json::to_string(ca.to_str().unwrap()).unwrap(),
        )
        .unwrap();
    assert!(
        zenoh::open(config).wait().is_err(),
        "a peer without a certificate connected"
    );

    // Plain TCP to the TLS port.
    let mut plain = ZenohSettings::peer(vec![], vec![format!("tcp/127.0.0.1:{port}")]);
    connect_synchronously(&mut plain);
    assert!(
        zenoh::open(plain.config().unwrap()).wait().is_err(),
        "a plain TCP peer connected"
    );

    // The listener itself works: an enrolled member connects and is heard.
    let b = open(&member(&fleet, "b", None, &[port])).unwrap();
    let p = publisher(&b, &Keys::new(fleet.ca.fleet()).stage_in(1));
    assert!(matched_within(&p, ARRIVAL));
    p.put("member").wait().unwrap();
    assert_eq!(next_payload(&stage1, ARRIVAL).as_deref(), Some("member"));
    assert_eq!(next_payload(&stage1, SILENCE), None);
}

#[test]
fn a_removed_member_receives_nothing_once_the_others_restart_with_the_new_member_list() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = fleet(
        dir.path(),
        "tlsrm",
        &[
            ("a", MemberRole::Node),
            ("b", MemberRole::Node),
            ("c", MemberRole::Node),
        ],
    );
    let key = Keys::new(fleet.ca.fleet()).stage_in(1);
    let ports = free_ports(3).unwrap();
    let b = open(&member(&fleet, "b", Some(ports[0]), &[])).unwrap();
    let b_hears = subscribe(&b, &key);
    let c = open(&member(&fleet, "c", Some(ports[1]), &[])).unwrap();
    let c_hears = subscribe(&c, &key);
    let a = open(&member(&fleet, "a", None, &[ports[0], ports[1]])).unwrap();
    {
        let p = publisher(&a, &key);
        assert!(matched_within(&p, ARRIVAL));
        // Both subscriptions must have reached a before the put: wait for each delivery.
        p.put("before").wait().unwrap();
        assert_eq!(next_payload(&c_hears, ARRIVAL).as_deref(), Some("before"));
        if next_payload(&b_hears, ARRIVAL).is_none() {
            panic!("b, still a member, did not receive");
        }
    }

    fleet.ca.remove("b").unwrap();
    // The others restart with the new members.toml; b keeps its session (and its old list).
    a.close().wait().unwrap();
    c.close().wait().unwrap();
    let c = open(&member(&fleet, "c", Some(ports[2]), &[])).unwrap();
    let c_hears = subscribe(&c, &key);
    // a connects to b's endpoint too: the link comes up (b's certificate is still signed by
    // the CA), but no rule of a's access control names b.
    let a = open(&member(&fleet, "a", None, &[ports[0], ports[2]])).unwrap();
    let p = publisher(&a, &key);
    assert!(matched_within(&p, ARRIVAL));
    p.put("after").wait().unwrap();
    assert_eq!(next_payload(&c_hears, ARRIVAL).as_deref(), Some("after"));
    assert_eq!(
        next_payload(&b_hears, SILENCE),
        None,
        "the removed member received"
    );
}

#[test]
fn a_client_cannot_put_another_clients_results() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = fleet(
        dir.path(),
        "tlsfg",
        &[
            ("a", MemberRole::Node),
            ("c1", MemberRole::Client),
            ("c2", MemberRole::Client),
        ],
    );
    let result = Keys::new(fleet.ca.fleet()).result("c1");
    let port = free_ports(1).unwrap()[0];
    let c1 = open(&member(&fleet, "c1", Some(port), &[])).unwrap();
    let results = subscribe(&c1, &result);

    // The forger is enrolled and connected to c1 directly, and runs with its own access
    // control switched off: only c1's rules stand between it and c1's results.
    let mut config = member(&fleet, "c2", None, &[port]).zenoh_config().unwrap();
    config
        .insert_json5("access_control/enabled", "false")
        .unwrap();
    let c2 = zenoh::open(config).wait().unwrap();
    let forger = publisher(&c2, &result);
    for _ in 0..3 {
        forger.put("forged").wait().unwrap();
    }

    let a = open(&member(&fleet, "a", None, &[port])).unwrap();
    let genuine = publisher(&a, &result);
    assert!(
        matched_within(&genuine, ARRIVAL),
        "c1's subscription reached the node"
    );
    for _ in 0..3 {
        forger.put("forged").wait().unwrap();
    }
    genuine.put("genuine").wait().unwrap();
    assert_eq!(next_payload(&results, ARRIVAL).as_deref(), Some("genuine"));
    forger.put("forged").wait().unwrap();
    assert_eq!(
        next_payload(&results, SILENCE),
        None,
        "a forged result arrived"
    );
    assert!(
        !forger.matching_status().wait().unwrap().matching(),
        "c1's subscription was declared to another client"
    );
}

#[test]
fn a_client_cannot_put_into_stage0_on_another_clients_key() {
    // Stage 0 sends results to the client a microbatch names only if it came on that client's
    // key; here a forger with its own access control off tries that key on the node itself.
    let dir = tempfile::tempdir().unwrap();
    let fleet = fleet(
        dir.path(),
        "tlsim",
        &[
            ("a", MemberRole::Node),
            ("c1", MemberRole::Client),
            ("c2", MemberRole::Client),
        ],
    );
    let keys = Keys::new(fleet.ca.fleet());
    let port = free_ports(1).unwrap()[0];
    let a = open(&member(&fleet, "a", Some(port), &[])).unwrap();
    let stage0 = subscribe(&a, &keys.stage0_ins());

    let mut config = member(&fleet, "c2", None, &[port]).zenoh_config().unwrap();
    config
        .insert_json5("access_control/enabled", "false")
        .unwrap();
    let c2 = zenoh::open(config).wait().unwrap();
    let own = publisher(&c2, &keys.stage0_in_from("c2"));
    assert!(
        matched_within(&own, ARRIVAL),
        "stage 0's subscription reached c2"
    );
    let impersonating = publisher(&c2, &keys.stage0_in_from("c1"));
    for _ in 0..3 {
        impersonating.put("as c1").wait().unwrap();
    }
    own.put("as c2").wait().unwrap();
    assert_eq!(next_payload(&stage0, ARRIVAL).as_deref(), Some("as c2"));
    impersonating.put("as c1").wait().unwrap();
    assert_eq!(
        next_payload(&stage0, SILENCE),
        None,
        "stage 0 took a microbatch on another client's key"
    );
}

/// The answers `session` gets to a query on `key` (every queryable asked, each answer kept).
fn answers(session: &Session, key: &str) -> Vec<String> {
    let replies = session
        .get(key.to_owned())
        .target(zenoh::query::QueryTarget::All)
        .consolidation(zenoh::query::ConsolidationMode::None)
        .timeout(Duration::from_secs(2))
        .wait()
        .unwrap();
    let mut out = Vec::new();
    while let Ok(reply) = replies.recv() {
        if let Ok(sample) = reply.result() {
            out.push(sample.payload().try_to_string().unwrap().into_owned());
        }
    }
    out
}

#[test]
fn stats_are_answered_to_nodes_and_device_info_to_leaders_only() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = fleet(
        dir.path(),
        "tlsq",
        &[
            ("l", MemberRole::Leader),
            ("a", MemberRole::Node),
            ("b", MemberRole::Node),
            ("c", MemberRole::Client),
        ],
    );
    let keys = Keys::new(fleet.ca.fleet());
    let port = free_ports(1).unwrap()[0];
    let b = open(&member(&fleet, "b", Some(port), &[])).unwrap();
    let serve = |key: String, answer: &'static str| {
        b.declare_queryable(key)
            .callback(move |q| {
                let key = q.key_expr().clone();
                q.reply(key, answer).wait().unwrap();
            })
            .wait()
            .unwrap()
    };
    let _stats = serve(keys.stats("b"), "stats of b");
    let _device = serve(keys.device("b"), "device of b");
    let l = open(&member(&fleet, "l", None, &[port])).unwrap();
    let a = open(&member(&fleet, "a", None, &[port])).unwrap();
    let c = open(&member(&fleet, "c", None, &[port])).unwrap();

    // A querier's matching listener hears the queryable's declaration: the bounded wait for it
    // (on the queryable's own key: zenoh matches a querier only with queryables including its key).
    for (who, key) in [(&l, keys.device("b")), (&a, keys.stats("b"))] {
        let querier = who.declare_querier(key).wait().unwrap();
        let listener = querier.matching_listener().wait().unwrap();
        if !querier.matching_status().wait().unwrap().matching() {
            let status = listener.recv_timeout(ARRIVAL).unwrap();
            assert!(
                status.is_some_and(|s| s.matching()),
                "b's queryable on {} reached its querier",
                querier.key_expr()
            );
        }
    }
    // Stats answer on the query's key, `stats/*`, as `timeline::query_stats` asks.
    assert_eq!(answers(&a, &keys.stats("*")), ["stats of b"]);
    assert_eq!(answers(&l, &keys.device("b")), ["device of b"]);
    assert!(
        answers(&a, &keys.device("b")).is_empty(),
        "a plain node read device info"
    );
    assert!(
        answers(&c, &keys.stats("*")).is_empty(),
        "a client read stats"
    );
    assert!(
        answers(&c, &keys.device("b")).is_empty(),
        "a client read device info"
    );
}
