//! What each role of the fleet needs to send and receive, read from every place the runtime
//! puts, subscribes, declares a queryable, queries or holds a liveliness token, over the key
//! layout of [`Keys`]. Each [`Grant`] says who may send one kind of message on one key and who
//! may receive it; the access control turns each into an ingress rule for the senders and an
//! egress rule for the receivers, because every peer enforces both on its own links.

use crate::members::{MemberRole, Members};
use quantpipe_messages::Keys;

/// A set of members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// Nodes and leaders.
    Nodes,
    /// Leaders only.
    Leaders,
    /// Nodes, leaders, clients and gateways.
    Everyone,
    /// Clients and gateways.
    Users,
    /// One member.
    Member(String),
}

impl Who {
    /// The names of the members in this set.
    pub fn names(&self, members: &Members) -> Vec<String> {
        match self {
            Who::Nodes => members.names(MemberRole::is_node),
            Who::Leaders => members.names(MemberRole::may_lead),
            Who::Users => members.names(MemberRole::is_user),
            Who::Everyone => members.names(|_| true),
            Who::Member(n) => vec![n.clone()],
        }
    }
}

/// zenoh's access-control message kinds used here.
pub const PUT: &str = "put";
pub const DECLARE_SUBSCRIBER: &str = "declare_subscriber";
pub const DECLARE_QUERYABLE: &str = "declare_queryable";
pub const QUERY: &str = "query";
pub const REPLY: &str = "reply";
pub const LIVELINESS_TOKEN: &str = "liveliness_token";
pub const LIVELINESS_QUERY: &str = "liveliness_query";
pub const DECLARE_LIVELINESS_SUBSCRIBER: &str = "declare_liveliness_subscriber";

/// `from` may send `message` on `key` to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// What the grant is for (the rules' ids start with it).
    pub purpose: String,
    pub message: &'static str,
    pub key: String,
    pub from: Who,
    pub to: Who,
}

fn grant(purpose: &str, message: &'static str, key: &str, from: Who, to: Who) -> Grant {
    Grant {
        purpose: purpose.to_owned(),
        message,
        key: key.to_owned(),
        from,
        to,
    }
}

/// `publishers` put on `key` and `subscribers` receive it: subscribers declare their
/// subscription to the publishers (a put only travels to a peer that declared one).
fn publish(purpose: &str, key: &str, publishers: Who, subscribers: Who) -> Vec<Grant> {
    vec![
        grant(purpose, PUT, key, publishers.clone(), subscribers.clone()),
        grant(purpose, DECLARE_SUBSCRIBER, key, subscribers, publishers),
    ]
}

/// `server` declares a queryable on `key`; `askers` query `query_key` (which includes `key`)
/// and get the answers, which zenoh sends on the query's key.
fn serve(purpose: &str, key: &str, query_key: &str, server: Who, askers: Who) -> Vec<Grant> {
    vec![
        grant(
            purpose,
            DECLARE_QUERYABLE,
            key,
            server.clone(),
            askers.clone(),
        ),
        grant(purpose, QUERY, query_key, askers.clone(), server.clone()),
        grant(purpose, REPLY, query_key, server, askers),
    ]
}

/// `holder` holds the liveliness token `key`, which `watchers` see.
fn token(purpose: &str, key: &str, holder: Who, watchers: Who) -> Grant {
    grant(purpose, LIVELINESS_TOKEN, key, holder, watchers)
}

/// `watchers` subscribe to and query the tokens under `pattern`, asking every peer in
/// `asked` (a peer holding none answers with none: asking reveals nothing, and an ask that
/// never reaches a peer would only leave the asker waiting for its answer).
fn watch(purpose: &str, pattern: &str, watchers: Who, asked: Who) -> Vec<Grant> {
    vec![
        grant(
            purpose,
            DECLARE_LIVELINESS_SUBSCRIBER,
            pattern,
            watchers.clone(),
            asked.clone(),
        ),
        grant(purpose, LIVELINESS_QUERY, pattern, watchers, asked),
    ]
}

/// The key with a `*` chunk where `a` and `b` differ (`stage/0/in`, `stage/1/in` ->
/// `stage/*/in`): a wildcard over a numbered key, taken from [`Keys`] itself.
fn wildcard_between(a: &str, b: &str) -> String {
    a.split('/')
        .zip(b.split('/'))
        .map(|(x, y)| if x == y { x } else { "*" })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every grant of the fleet `members` describes.
pub fn fleet_grants(members: &Members) -> Vec<Grant> {
    use Who::*;
    let k = Keys::new(&members.fleet);
    let any_stage_in = wildcard_between(&k.stage_in(0), &k.stage_in(1));
    let any_link_ack = wildcard_between(&k.link_ack(0), &k.link_ack(1));
    let mut g = Vec::new();

    // Activations between stages (and the idle links' probes), acknowledgements back.
    g.extend(publish("stage-in", &any_stage_in, Nodes, Nodes));
    g.extend(publish("link-ack", &any_link_ack, Nodes, Nodes));
    // Clients and gateways send their microbatches into stage 0 and nowhere else, each on its
    // own key (stage 0 refuses a microbatch naming another client than its key): nobody can
    // have results sent to another client. Stage 0 subscribes to all of them at once.
    g.push(grant(
        "stage0-in",
        DECLARE_SUBSCRIBER,
        &k.stage0_ins(),
        Nodes,
        Users,
    ));
    for user in members.names(MemberRole::is_user) {
        let purpose = format!("stage0-in-{user}");
        g.push(grant(
            &purpose,
            PUT,
            &k.stage0_in_from(&user),
            Member(user),
            Nodes,
        ));
    }
    // A user's results come from the last stage (a node) and go to that user alone.
    for user in members.names(MemberRole::is_user) {
        let purpose = format!("result-{user}");
        g.extend(publish(&purpose, &k.result(&user), Nodes, Member(user)));
    }
    // The plan is served and announced by leaders; nodes and users read it.
    g.extend(serve("plan", &k.plan(), &k.plan(), Leaders, Everyone));
    g.extend(publish(
        "plan-changed",
        &k.plan_changed(),
        Leaders,
        Everyone,
    ));

    for node in members.names(MemberRole::is_node) {
        let me = || Member(node.clone());
        let p = |what: &str| format!("{what}-{node}");
        // Each node answers for itself alone: device info and assignments to leaders, stats
        // to the other nodes.
        g.extend(serve(
            &p("device"),
            &k.device(&node),
            &k.device("*"),
            me(),
            Leaders,
        ));
        g.extend(serve(
            &p("assign"),
            &k.assign(&node),
            &k.assign("*"),
            me(),
            Leaders,
        ));
        g.extend(serve(
            &p("release"),
            &k.release(&node),
            &k.release("*"),
            me(),
            Leaders,
        ));
        g.extend(serve(
            &p("stats"),
            &k.stats(&node),
            &k.stats("*"),
            me(),
            Nodes,
        ));
        // A node holding the model file serves byte ranges of it to the other nodes, so a
        // node without its shard's tensors fetches them (and checks them against the plan's
        // digests); users get no weights.
        g.extend(serve(
            &p("weights"),
            &k.weights(&node),
            &k.weights("*"),
            me(),
            Nodes,
        ));
        g.push(token(&p("node"), &k.node(&node), me(), Nodes));
    }
    for leader in members.names(MemberRole::may_lead) {
        let me = || Member(leader.clone());
        let p = |what: &str| format!("{what}-{leader}");
        g.push(token(&p("candidate"), &k.candidate(&leader), me(), Nodes));
        // `quantpipe status`: whoever may lead answers what it sees (nodes, plan, links) to
        // any member; the answer carries no traffic, and the plan in it is readable already.
        g.extend(serve(
            &p("status"),
            &k.status(&leader),
            &k.status("*"),
            me(),
            Everyone,
        ));
        g.push(token(&p("leader"), &k.leader(&leader), me(), Nodes));
    }
    // Nodes watch who is alive, who may lead and who leads.
    g.extend(watch("nodes", &k.nodes(), Nodes, Nodes));
    g.extend(watch("candidates", &k.candidates(), Nodes, Nodes));
    g.extend(watch("leaders", &k.leaders(), Nodes, Nodes));
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_numbered_key_becomes_a_wildcard_over_its_number_only() {
        let k = Keys::new("0");
        assert_eq!(
            wildcard_between(&k.stage_in(0), &k.stage_in(1)),
            "qp/0/stage/*/in"
        );
        assert_eq!(
            wildcard_between(&k.link_ack(0), &k.link_ack(1)),
            "qp/0/stage/*/ack"
        );
    }
}
