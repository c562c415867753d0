//! A throwaway fleet: a CA in a scratch folder with every member enrolled at once, for the demo
//! and for tests that run a secured fleet.

use crate::ca::{Enrolled, FleetCa};
use crate::error::Result;
use crate::members::MemberRole;
use crate::settings::SecuritySettings;
use std::collections::BTreeMap;
use std::path::Path;

/// A CA and its enrolled members' files.
pub struct ThrowawayFleet {
    pub ca: FleetCa,
    pub enrolled: BTreeMap<String, Enrolled>,
}

impl ThrowawayFleet {
    /// The `[security]` section of member `name` (absolute paths), or `None` for a stranger.
    pub fn security(&self, name: &str) -> Option<SecuritySettings> {
        let e = self.enrolled.get(name)?;
        Some(SecuritySettings {
            ca: Some(self.ca.certificate_path()),
            certificate: Some(e.certificate.clone()),
            private_key: Some(e.private_key.clone()),
            members: Some(self.ca.members_path()),
            insecure: false,
        })
    }
}

/// A CA for `fleet` in `dir` (which must not hold one already) with every `(name, role)` of
/// `members` enrolled, their files in `dir/members/`.
pub fn throwaway_fleet(
    dir: &Path,
    fleet: &str,
    members: &[(&str, MemberRole)],
) -> Result<ThrowawayFleet> {
    let ca = FleetCa::init(dir, fleet)?;
    let mut enrolled = BTreeMap::new();
    for (name, role) in members {
        enrolled.insert(name.to_string(), ca.enroll_here(name, *role)?);
    }
    Ok(ThrowawayFleet { ca, enrolled })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_member_of_a_throwaway_fleet_gets_settings_that_pass_the_start_checks() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = throwaway_fleet(
            dir.path(),
            "f",
            &[("a", MemberRole::Leader), ("c", MemberRole::Client)],
        )
        .unwrap();
        for name in ["a", "c"] {
            let s = fleet.security(name).unwrap();
            let listen = vec!["tls/127.0.0.1:7000".to_string()];
            s.secure_zenoh("f", name, &listen, &[]).unwrap();
        }
        assert!(fleet.security("x").is_none());
    }
}
