//! The zenoh key expressions of one fleet, `qp/<fleet>/...`: the one place that names every
//! topic, liveliness token and queryable that nodes, the leader and clients use.

/// Key expressions of one fleet.
#[derive(Debug, Clone)]
pub struct Keys {
    pub fleet: String,
}

impl Keys {
    pub fn new(fleet: &str) -> Self {
        Keys {
            fleet: fleet.to_owned(),
        }
    }
    /// Liveliness token of a node (membership).
    pub fn node(&self, name: &str) -> String {
        format!("qp/{}/node/{name}", self.fleet)
    }
    /// Every node's liveliness token.
    pub fn nodes(&self) -> String {
        format!("qp/{}/node/*", self.fleet)
    }
    /// Liveliness token of a node that may be elected leader (role `candidate`).
    pub fn candidate(&self, name: &str) -> String {
        format!("qp/{}/candidate/{name}", self.fleet)
    }
    /// Every candidate's liveliness token.
    pub fn candidates(&self) -> String {
        format!("qp/{}/candidate/*", self.fleet)
    }
    /// Liveliness token of the node acting as leader: a configured leader (role `leader` or
    /// `both`) for its whole life, an elected candidate while it leads.
    pub fn leader(&self, name: &str) -> String {
        format!("qp/{}/leader/{name}", self.fleet)
    }
    /// Every acting leader's liveliness token.
    pub fn leaders(&self) -> String {
        format!("qp/{}/leader/*", self.fleet)
    }
    /// The name in a token key of this fleet, `qp/<fleet>/<kind>/<name>`.
    pub fn token_name<'a>(&self, kind: &str, key: &'a str) -> Option<&'a str> {
        key.strip_prefix("qp/")?
            .strip_prefix(self.fleet.as_str())?
            .strip_prefix('/')?
            .strip_prefix(kind)?
            .strip_prefix('/')
    }
    /// Queryable answering a node's [`DeviceInfo`](crate::DeviceInfo).
    pub fn device(&self, name: &str) -> String {
        format!("qp/{}/device/{name}", self.fleet)
    }
    /// Queryable taking an [`Assignment`](crate::Assignment) and answering an [`AssignAck`](crate::AssignAck) once the shard is loaded.
    pub fn assign(&self, name: &str) -> String {
        format!("qp/{}/ctl/{name}/assign", self.fleet)
    }
    /// Queryable taking a [`Release`](crate::Release) and answering an [`AssignAck`](crate::AssignAck) once the node holds no
    /// shard and listens on no stage key.
    pub fn release(&self, name: &str) -> String {
        format!("qp/{}/ctl/{name}/release", self.fleet)
    }
    /// Queryable of the leader answering the current [`PlanInfo`](crate::PlanInfo).
    pub fn plan(&self) -> String {
        format!("qp/{}/plan", self.fleet)
    }
    /// Where the leader announces every new [`PlanInfo`](crate::PlanInfo) (control priority): clients move to
    /// its epoch and send again what the old plan had not answered.
    pub fn plan_changed(&self) -> String {
        format!("qp/{}/plan/changed", self.fleet)
    }
    /// Input of pipeline stage `i` > 0, from stage `i - 1`; stage 0 takes each client's
    /// microbatches on [`Keys::stage0_in_from`] below this key.
    pub fn stage_in(&self, stage: u32) -> String {
        format!("qp/{}/stage/{stage}/in", self.fleet)
    }
    /// What the node running stage `i` subscribes to, and the key its stats give the
    /// incoming link: [`Keys::stage0_ins`] for stage 0, [`Keys::stage_in`] otherwise.
    pub fn stage_input(&self, stage: u32) -> String {
        match stage {
            0 => self.stage0_ins(),
            _ => self.stage_in(stage),
        }
    }
    /// Where client `client` puts its microbatches for stage 0. The sender's name is in the
    /// key so that access control can bind it to the sender's certificate, and stage 0 refuses
    /// a microbatch whose header names another client: nobody can have results sent to
    /// another client's key.
    pub fn stage0_in_from(&self, client: &str) -> String {
        format!("{}/{client}", self.stage_in(0))
    }
    /// What stage 0 subscribes to: every client's [`Keys::stage0_in_from`].
    pub fn stage0_ins(&self) -> String {
        self.stage0_in_from("*")
    }
    /// The client named by a key of [`Keys::stage0_ins`], or `None` for any other key.
    pub fn stage0_sender<'a>(&self, key: &'a str) -> Option<&'a str> {
        let name = key
            .strip_prefix(self.stage_in(0).as_str())?
            .strip_prefix('/')?;
        (!name.is_empty() && !name.contains('/')).then_some(name)
    }
    /// Where stage `i + 1` acknowledges each message it accepted from stage `i` ([`LinkAck`](crate::LinkAck),
    /// control priority): how stage `i` measures its outgoing link.
    pub fn link_ack(&self, stage: u32) -> String {
        format!("qp/{}/stage/{stage}/ack", self.fleet)
    }
    /// Where the last stage sends a client's results.
    pub fn result(&self, client: &str) -> String {
        format!("qp/{}/result/{client}", self.fleet)
    }
    /// Queryable answering a node's [`NodeStats`](crate::NodeStats).
    pub fn stats(&self, name: &str) -> String {
        format!("qp/{}/stats/{name}", self.fleet)
    }
    /// Queryable of a node holding the model file: it answers a
    /// [`WeightRequest`](crate::WeightRequest) with the bytes asked for.
    pub fn weights(&self, name: &str) -> String {
        format!("qp/{}/weights/{name}", self.fleet)
    }
    /// Queryable of a node that may lead, answering the [`FleetStatus`](crate::FleetStatus)
    /// it sees (`quantpipe status`).
    pub fn status(&self, name: &str) -> String {
        format!("qp/{}/status/{name}", self.fleet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stage0_sender_is_read_back_from_its_key_and_nothing_else() {
        let k = Keys::new("f");
        assert_eq!(k.stage0_in_from("c1"), "qp/f/stage/0/in/c1");
        assert_eq!(k.stage0_ins(), "qp/f/stage/0/in/*");
        assert_eq!(k.stage_input(0), k.stage0_ins());
        assert_eq!(k.stage_input(2), k.stage_in(2));
        assert_eq!(k.stage0_sender(&k.stage0_in_from("c1")), Some("c1"));
        assert_eq!(k.stage0_sender(&k.stage_in(0)), None);
        assert_eq!(k.stage0_sender(&k.stage_in(1)), None);
        assert_eq!(k.stage0_sender("qp/f/stage/0/in/"), None);
        assert_eq!(k.stage0_sender("qp/f/stage/0/in/a/b"), None);
        assert_eq!(k.stage0_sender("qp/f/stage/0/inx/a"), None);
        assert_eq!(Keys::new("g").stage0_sender(&k.stage0_in_from("c1")), None);
    }

    #[test]
    fn token_names_are_read_back_from_their_keys() {
        let k = Keys::new("f");
        assert_eq!(k.token_name("candidate", &k.candidate("b")), Some("b"));
        assert_eq!(k.token_name("leader", &k.leader("a")), Some("a"));
        assert_eq!(k.token_name("leader", &k.candidate("a")), None);
        assert_eq!(k.token_name("node", "qp/ff/node/a"), None);
    }
}
