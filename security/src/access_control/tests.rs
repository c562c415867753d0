//! The generated access control, evaluated as zenoh evaluates it: a small matcher over the JSON
//! (subjects by common name, policies, rules whose key expression includes the message's),
//! then the fleet's traffic checked as behaviours between named members.

use super::grants::*;
use super::*;
use crate::members::{Member, MemberRole};
use quantpipe_messages::Keys;

/// Whether `rule` (a key expression) includes `key`: `*` is one chunk, `**` any number.
fn includes(rule: &[&str], key: &[&str]) -> bool {
    match (rule.first(), key.first()) {
        (None, None) => true,
        (Some(&"**"), _) => {
            includes(&rule[1..], key) || (!key.is_empty() && includes(rule, &key[1..]))
        }
        (Some(r), Some(k)) => {
            let chunk = *k != "**" && (*r == "*" || r == k);
            chunk && includes(&rule[1..], &key[1..])
        }
        _ => false,
    }
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

/// zenoh's decision on a link to the peer whose certificate names `cn`: `message` on `key`
/// in `flow` is allowed when a policy of a subject matching `cn` has a rule that allows it.
fn allowed(acl: &Value, cn: &str, flow: &str, message: &str, key: &str) -> bool {
    assert_eq!(acl["default_permission"], "deny");
    let subjects: Vec<&str> = acl["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| strs(&s["cert_common_names"]).contains(&cn))
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let key: Vec<&str> = key.split('/').collect();
    acl["policies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| strs(&p["subjects"]).iter().any(|s| subjects.contains(s)))
        .flat_map(|p| strs(&p["rules"]))
        .map(|id| {
            acl["rules"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["id"] == id)
                .expect("a policy names an existing rule")
        })
        .any(|r| {
            r["permission"] == "allow"
                && strs(&r["flows"]).contains(&flow)
                && strs(&r["messages"]).contains(&message)
                && strs(&r["key_exprs"])
                    .iter()
                    .any(|k| includes(&k.split('/').collect::<Vec<_>>(), &key))
        })
}

/// `message` on `key` goes from `from` to `to`: `to` lets it in, and `from` lets it out.
fn passes(acl: &Value, message: &str, key: &str, from: &str, to: &str) -> bool {
    allowed(acl, from, "ingress", message, key) && allowed(acl, to, "egress", message, key)
}

/// `subscriber` (subscribed to `pattern`) receives what `publisher` puts on `key`.
fn delivered(acl: &Value, publisher: &str, subscriber: &str, pattern: &str, key: &str) -> bool {
    passes(acl, DECLARE_SUBSCRIBER, pattern, subscriber, publisher)
        && passes(acl, PUT, key, publisher, subscriber)
}

/// `asker` gets `server`'s answer to a query on `key` (served by a queryable on `served`).
fn answered(acl: &Value, asker: &str, server: &str, served: &str, key: &str) -> bool {
    passes(acl, DECLARE_QUERYABLE, served, server, asker)
        && passes(acl, QUERY, key, asker, server)
        && passes(acl, REPLY, key, server, asker)
}

/// `watcher` (watching `pattern`) sees `holder`'s liveliness token `key`.
fn seen(acl: &Value, watcher: &str, holder: &str, pattern: &str, key: &str) -> bool {
    passes(acl, DECLARE_LIVELINESS_SUBSCRIBER, pattern, watcher, holder)
        && passes(acl, LIVELINESS_QUERY, pattern, watcher, holder)
        && passes(acl, LIVELINESS_TOKEN, key, holder, watcher)
}

/// Leader `l`, nodes `a` and `b`, clients `c1` and `c2`, gateway `g`.
fn fleet() -> Members {
    let mut m = Members::new("f").unwrap();
    for (name, role) in [
        ("l", MemberRole::Leader),
        ("a", MemberRole::Node),
        ("b", MemberRole::Node),
        ("c1", MemberRole::Client),
        ("c2", MemberRole::Client),
        ("g", MemberRole::Gateway),
    ] {
        m.add(Member {
            name: name.into(),
            role,
            serial: String::new(),
        })
        .unwrap();
    }
    m
}

fn keys() -> Keys {
    Keys::new("f")
}

#[test]
fn nodes_exchange_stage_traffic_and_acknowledgements() {
    let (acl, k) = (access_control(&fleet()), keys());
    for (from, to) in [("a", "b"), ("b", "a"), ("l", "a"), ("a", "l")] {
        assert!(delivered(&acl, from, to, &k.stage_in(1), &k.stage_in(1)));
        assert!(delivered(&acl, from, to, &k.link_ack(0), &k.link_ack(0)));
    }
}

#[test]
fn clients_and_gateways_put_into_stage_0_and_no_other_stage() {
    let (acl, k) = (access_control(&fleet()), keys());
    for user in ["c1", "g"] {
        let own = k.stage0_in_from(user);
        assert!(delivered(&acl, user, "a", &k.stage0_ins(), &own));
        assert!(!passes(&acl, PUT, &k.stage_in(0), user, "a"));
        assert!(!passes(&acl, PUT, &k.stage_in(1), user, "a"));
        assert!(!passes(&acl, PUT, &k.link_ack(0), user, "a"));
    }
}

#[test]
fn a_client_cannot_put_on_another_clients_stage0_key() {
    // Stage 0 refuses a microbatch naming another client than its key, so this is what keeps
    // c2 from having its input's results sent to c1.
    let (acl, k) = (access_control(&fleet()), keys());
    assert!(!passes(&acl, PUT, &k.stage0_in_from("c1"), "c2", "a"));
    assert!(!passes(&acl, PUT, &k.stage0_in_from("c1"), "g", "a"));
    assert!(!passes(&acl, PUT, &k.stage0_ins(), "c2", "a"));
}

#[test]
fn clients_cannot_subscribe_to_stage_traffic() {
    let (acl, k) = (access_control(&fleet()), keys());
    let any_stage = "qp/f/stage/*/in";
    for stage in [0, 1] {
        assert!(!delivered(
            &acl,
            "a",
            "c1",
            &k.stage_in(stage),
            &k.stage_in(stage)
        ));
        assert!(!delivered(
            &acl,
            "c2",
            "c1",
            &k.stage_in(stage),
            &k.stage_in(stage)
        ));
    }
    assert!(!delivered(
        &acl,
        "c2",
        "c1",
        &k.stage0_ins(),
        &k.stage0_in_from("c2")
    ));
    assert!(!passes(&acl, DECLARE_SUBSCRIBER, any_stage, "c1", "a"));
    assert!(!passes(&acl, DECLARE_SUBSCRIBER, "qp/f/**", "c1", "a"));
}

#[test]
fn a_client_receives_its_own_results_from_nodes() {
    let (acl, k) = (access_control(&fleet()), keys());
    for node in ["a", "b", "l"] {
        assert!(delivered(
            &acl,
            node,
            "c1",
            &k.result("c1"),
            &k.result("c1")
        ));
        assert!(delivered(&acl, node, "g", &k.result("g"), &k.result("g")));
    }
}

#[test]
fn client_cannot_put_another_clients_results() {
    let (acl, k) = (access_control(&fleet()), keys());
    assert!(!passes(&acl, PUT, &k.result("c1"), "c2", "c1"));
    assert!(!passes(&acl, PUT, &k.result("c1"), "g", "c1"));
    assert!(!passes(&acl, PUT, &k.result("c2"), "c2", "c2"));
}

#[test]
fn client_cannot_receive_another_clients_results() {
    let (acl, k) = (access_control(&fleet()), keys());
    assert!(!delivered(
        &acl,
        "a",
        "c2",
        &k.result("c1"),
        &k.result("c1")
    ));
    assert!(!passes(
        &acl,
        DECLARE_SUBSCRIBER,
        "qp/f/result/*",
        "c2",
        "a"
    ));
    assert!(!passes(&acl, PUT, &k.result("c1"), "a", "c2"));
}

#[test]
fn everyone_reads_the_plan_that_only_leaders_serve_and_announce() {
    let (acl, k) = (access_control(&fleet()), keys());
    for reader in ["a", "c1", "g"] {
        assert!(answered(&acl, reader, "l", &k.plan(), &k.plan()));
        assert!(delivered(
            &acl,
            "l",
            reader,
            &k.plan_changed(),
            &k.plan_changed()
        ));
    }
    for forger in ["a", "c1", "g"] {
        assert!(!passes(&acl, DECLARE_QUERYABLE, &k.plan(), forger, "c2"));
        assert!(!passes(&acl, REPLY, &k.plan(), forger, "c2"));
        assert!(!passes(&acl, PUT, &k.plan_changed(), forger, "b"));
    }
}

#[test]
fn every_member_may_ask_the_leaders_status_that_only_leaders_answer() {
    let (acl, k) = (access_control(&fleet()), keys());
    for asker in ["a", "c1", "g"] {
        assert!(answered(&acl, asker, "l", &k.status("l"), &k.status("*")));
    }
    for forger in ["a", "c1", "g"] {
        assert!(!passes(
            &acl,
            DECLARE_QUERYABLE,
            &k.status(forger),
            forger,
            "c2"
        ));
        assert!(!passes(&acl, REPLY, &k.status("*"), forger, "c2"));
    }
}

#[test]
fn only_leaders_assign_and_release_shards() {
    let (acl, k) = (access_control(&fleet()), keys());
    assert!(answered(&acl, "l", "a", &k.assign("a"), &k.assign("a")));
    assert!(answered(&acl, "l", "a", &k.release("a"), &k.release("a")));
    for forger in ["b", "c1", "g"] {
        assert!(!passes(&acl, QUERY, &k.assign("a"), forger, "a"));
        assert!(!passes(&acl, QUERY, &k.release("a"), forger, "a"));
    }
}

#[test]
fn device_info_and_stats_stay_among_nodes() {
    let (acl, k) = (access_control(&fleet()), keys());
    assert!(answered(&acl, "l", "a", &k.device("a"), &k.device("a")));
    assert!(answered(&acl, "b", "a", &k.stats("a"), &k.stats("*")));
    for user in ["c1", "g"] {
        assert!(!passes(&acl, QUERY, &k.device("a"), user, "a"));
        assert!(!passes(&acl, QUERY, &k.stats("*"), user, "a"));
        assert!(!passes(&acl, REPLY, &k.stats("*"), "a", user));
    }
}

#[test]
fn nodes_serve_weights_to_nodes_and_to_nobody_else() {
    let (acl, k) = (access_control(&fleet()), keys());
    assert!(answered(&acl, "b", "a", &k.weights("a"), &k.weights("a")));
    assert!(answered(&acl, "a", "l", &k.weights("l"), &k.weights("l")));
    assert!(!passes(&acl, DECLARE_QUERYABLE, &k.weights("b"), "a", "l"));
    for user in ["c1", "g"] {
        assert!(!passes(&acl, QUERY, &k.weights("a"), user, "a"));
        assert!(!passes(&acl, REPLY, &k.weights("a"), "a", user));
        assert!(!passes(
            &acl,
            DECLARE_QUERYABLE,
            &k.weights(user),
            user,
            "a"
        ));
    }
}

#[test]
fn a_node_answers_for_itself_alone() {
    let (acl, k) = (access_control(&fleet()), keys());
    for key in [k.device("b"), k.assign("b"), k.release("b"), k.stats("b")] {
        assert!(!passes(&acl, DECLARE_QUERYABLE, &key, "a", "l"), "{key}");
    }
    assert!(!passes(&acl, LIVELINESS_TOKEN, &k.node("b"), "a", "l"));
}

#[test]
fn nodes_see_each_others_tokens_and_only_leaders_hold_leader_and_candidate_tokens() {
    let (acl, k) = (access_control(&fleet()), keys());
    assert!(seen(&acl, "l", "a", &k.nodes(), &k.node("a")));
    assert!(seen(&acl, "a", "l", &k.leaders(), &k.leader("l")));
    assert!(seen(&acl, "b", "l", &k.candidates(), &k.candidate("l")));
    assert!(!passes(&acl, LIVELINESS_TOKEN, &k.leader("a"), "a", "b"));
    assert!(!passes(&acl, LIVELINESS_TOKEN, &k.candidate("a"), "a", "b"));
    for user in ["c1", "g"] {
        assert!(!passes(&acl, LIVELINESS_TOKEN, &k.node(user), user, "l"));
    }
}

#[test]
fn removed_member_gets_no_rule() {
    let mut members = fleet();
    let k = keys();
    assert!(delivered(
        &access_control(&members),
        "a",
        "c1",
        &k.result("c1"),
        &k.result("c1")
    ));
    members.remove("c1").unwrap();
    members.remove("b").unwrap();
    let acl = access_control(&members);
    let text = acl.to_string();
    assert!(
        !text.contains("\"c1\"") && !text.contains("result/c1"),
        "{text}"
    );
    assert!(!delivered(
        &acl,
        "a",
        "c1",
        &k.result("c1"),
        &k.result("c1")
    ));
    assert!(!passes(&acl, PUT, &k.stage0_in_from("c1"), "c1", "a"));
    assert!(!delivered(&acl, "a", "b", &k.stage_in(1), &k.stage_in(1)));
}

#[test]
fn a_stranger_can_neither_send_nor_receive_anything() {
    let (acl, k) = (access_control(&fleet()), keys());
    for key in [
        k.stage_in(0),
        k.stage0_in_from("x"),
        k.plan(),
        k.result("x"),
        k.node("x"),
    ] {
        for message in [PUT, DECLARE_SUBSCRIBER, QUERY, LIVELINESS_TOKEN] {
            assert!(!allowed(&acl, "x", "ingress", message, &key));
            assert!(!allowed(&acl, "x", "egress", message, &key));
        }
    }
}

#[test]
fn every_id_is_unique_and_every_policy_names_existing_rules_and_subjects() {
    let acl = access_control(&fleet());
    let ids = |list: &str| -> Vec<String> {
        acl[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_owned())
            .collect()
    };
    for list in ["rules", "subjects", "policies"] {
        let mut all = ids(list);
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "repeated id in {list}");
    }
    let (rules, subjects) = (ids("rules"), ids("subjects"));
    for p in acl["policies"].as_array().unwrap() {
        assert!(strs(&p["rules"])
            .iter()
            .all(|r| rules.contains(&r.to_string())));
        assert!(strs(&p["subjects"])
            .iter()
            .all(|s| subjects.contains(&s.to_string())));
        assert!(!strs(&p["subjects"]).is_empty());
    }
}

#[test]
fn the_matcher_reads_key_expressions_as_zenoh_does() {
    let inc = |r: &str, k: &str| {
        includes(
            &r.split('/').collect::<Vec<_>>(),
            &k.split('/').collect::<Vec<_>>(),
        )
    };
    assert!(inc("a/*/c", "a/b/c"));
    assert!(inc("a/*/c", "a/*/c"));
    assert!(!inc("a/b/c", "a/*/c"));
    assert!(!inc("a/*", "a/**"));
    assert!(inc("a/**", "a/b/c"));
    assert!(!inc("qp/f/**", "qp/**"));
}

#[test]
fn clients_see_no_liveliness_tokens() {
    let (acl, k) = (access_control(&fleet()), keys());
    for user in ["c1", "g"] {
        assert!(!seen(&acl, user, "a", &k.nodes(), &k.node("a")));
        assert!(!seen(&acl, user, "l", &k.leaders(), &k.leader("l")));
        assert!(!passes(&acl, LIVELINESS_TOKEN, &k.node("a"), "a", user));
    }
}
