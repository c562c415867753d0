//! zenoh's `access_control` section of a fleet, generated from its member list: default deny,
//! one subject per member (its certificate's common name), and for every [`Grant`] an ingress
//! rule for the members that may send and an egress rule for the members that may receive.
//!
//! Every peer gets the whole section and enforces it on its own links: a receiver refuses what
//! a sender may not send (ingress), and a sender never hands a message to a peer that may not
//! receive it (egress), so neither a forged message nor a curious subscriber gets through,
//! whichever peers are connected to each other.

mod grants;
#[cfg(test)]
mod tests;

pub use grants::{fleet_grants, Grant, Who};

use crate::members::Members;
use serde_json::{json, Value};

/// zenoh's `access_control` section for the fleet `members` describes (default deny).
/// A member not in the list matches no subject, so everything it sends or would receive is
/// denied.
pub fn access_control(members: &Members) -> Value {
    let subjects: Vec<Value> = members
        .members
        .iter()
        .map(|m| json!({ "id": m.name, "cert_common_names": [m.name] }))
        .collect();
    let mut rules = Vec::new();
    let mut policies = Vec::new();
    for g in fleet_grants(members) {
        for (flow, who) in [("ingress", &g.from), ("egress", &g.to)] {
            let names = who.names(members);
            if names.is_empty() {
                continue;
            }
            let id = format!("{}/{}/{flow}", g.purpose, g.message);
            rules.push(json!({
                "id": id,
                "messages": [g.message],
                "flows": [flow],
                "key_exprs": [g.key],
                "permission": "allow",
            }));
            policies.push(json!({ "id": id, "rules": [id], "subjects": names }));
        }
    }
    json!({
        "enabled": true,
        "default_permission": "deny",
        "rules": rules,
        "subjects": subjects,
        "policies": policies,
    })
}
