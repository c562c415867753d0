//! How the links of a launched fleet are made: TLS with mutual authentication under a throwaway
//! fleet CA (every member enrolled up front, so that each node's access control, generated from
//! the member list at start, knows them all), or plain TCP for the tests that need to see what
//! an unsecured fleet exposes.

use anyhow::{anyhow, Context, Result};
use quantpipe_actors::runtime::config::{Role, Settings};
pub use quantpipe_security::MemberRole;
use quantpipe_security::{throwaway_fleet, ThrowawayFleet};
use std::path::Path;

/// The links of one launched fleet.
pub enum Links {
    /// Plain TCP, loopback only (no CA).
    Plain,
    /// TLS with mutual authentication: every member holds a certificate of this CA.
    Tls(Box<ThrowawayFleet>),
}

/// The member role of a node process of `role`: a node that may plan is a leader.
pub fn node_member_role(role: Role) -> MemberRole {
    if role == Role::Device {
        MemberRole::Node
    } else {
        MemberRole::Leader
    }
}

impl Links {
    /// A throwaway CA for `fleet` in `dir` (created; it must not hold a CA yet) with every
    /// `(name, role)` of `members` enrolled.
    pub fn throwaway(dir: &Path, fleet: &str, members: &[(&str, MemberRole)]) -> Result<Links> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let ca = throwaway_fleet(dir, fleet, members)
            .with_context(|| format!("a throwaway CA for fleet {fleet} in {}", dir.display()))?;
        Ok(Links::Tls(Box::new(ca)))
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Links::Tls(_))
    }

    /// `settings` as a member over these links: with TLS, its `[security]` section (the CA, its
    /// certificate and key, the member list) and every endpoint `tls/`; plain, unchanged.
    /// Fails for a name the CA did not enroll.
    pub fn apply(&self, settings: &mut Settings) -> Result<()> {
        let Links::Tls(ca) = self else {
            return Ok(());
        };
        settings.security = ca.security(&settings.name).ok_or_else(|| {
            anyhow!(
                "{} is not enrolled in the throwaway CA of fleet {}",
                settings.name,
                settings.fleet
            )
        })?;
        for e in settings
            .zenoh
            .listen
            .iter_mut()
            .chain(settings.zenoh.connect.iter_mut())
        {
            *e = tls_endpoint(e);
        }
        Ok(())
    }

    /// One line saying how the fleet's links are made, for a command's output.
    pub fn describe(&self) -> String {
        match self {
            Links::Plain => "plain TCP on loopback, no certificates".into(),
            Links::Tls(ca) => format!(
                "secured: TLS with mutual authentication, {} members enrolled in a throwaway CA \
                 ({}), access control generated from its member list",
                ca.enrolled.len(),
                ca.ca.dir().display()
            ),
        }
    }
}

/// The TLS form of a zenoh endpoint: `tcp/host:port` -> `tls/host:port`; others unchanged.
pub fn tls_endpoint(endpoint: &str) -> String {
    match endpoint.strip_prefix("tcp/") {
        Some(address) => format!("tls/{address}"),
        None => endpoint.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_endpoints_become_tls_and_others_stay() {
        assert_eq!(tls_endpoint("tcp/127.0.0.1:7447"), "tls/127.0.0.1:7447");
        assert_eq!(tls_endpoint("tls/127.0.0.1:7447"), "tls/127.0.0.1:7447");
        assert_eq!(tls_endpoint("udp/127.0.0.1:7447"), "udp/127.0.0.1:7447");
    }

    #[test]
    fn nodes_that_may_plan_are_leaders() {
        assert_eq!(node_member_role(Role::Device), MemberRole::Node);
        for role in [Role::Leader, Role::Both, Role::Candidate] {
            assert_eq!(node_member_role(role), MemberRole::Leader);
        }
    }

    #[test]
    fn tls_links_give_enrolled_members_their_certificates_and_tls_endpoints() {
        let dir = tempfile::tempdir().unwrap();
        let links = Links::throwaway(
            &dir.path().join("ca"),
            "f",
            &[("a", MemberRole::Node), ("c", MemberRole::Client)],
        )
        .unwrap();
        let mut s = crate::config_file::loopback_peer(
            "f",
            "a",
            Role::Device,
            Path::new("m"),
            7002,
            Some(7001),
        );
        links.apply(&mut s).unwrap();
        assert_eq!(s.zenoh.listen, ["tls/127.0.0.1:7002"]);
        assert_eq!(s.zenoh.connect, ["tls/127.0.0.1:7001"]);
        assert!(s.security.certificate.as_ref().unwrap().ends_with("a.pem"));
        // The settings start: certificate, CA and member list agree.
        s.zenoh_config().unwrap();
        let mut stranger =
            crate::config_file::loopback_peer("f", "x", Role::Device, Path::new("m"), 7003, None);
        let err = links.apply(&mut stranger).unwrap_err().to_string();
        assert!(err.contains("x is not enrolled"), "{err}");
    }

    #[test]
    fn plain_links_leave_settings_as_they_are() {
        let mut s =
            crate::config_file::loopback_peer("f", "a", Role::Device, Path::new("m"), 7002, None);
        Links::Plain.apply(&mut s).unwrap();
        assert_eq!(s.zenoh.listen, ["tcp/127.0.0.1:7002"]);
        assert!(!Links::Plain.is_tls());
    }
}
