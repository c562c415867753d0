//! The `[security]` section of a node's, client's or gateway's settings, and what it turns into:
//! the zenoh settings of TLS with mutual authentication plus the fleet's access control, or
//! (without a CA) the check that nothing listens or connects beyond loopback in plain text
//! unless `insecure = true` says so.

use crate::access_control::access_control;
use crate::certificate::{common_name_of_pem_file, is_signed_by};
use crate::endpoint::{is_loopback, protocol};
use crate::error::{Error, Result};
use crate::members::{Member, Members};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// `[security]`: paths are relative to the settings file's folder when they exist there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecuritySettings {
    /// The fleet's CA certificate (`ca.pem`): set, every link is TLS with mutual authentication
    /// and only certificates this CA signed can connect.
    pub ca: Option<PathBuf>,
    /// This member's certificate (common name = the settings' `name`).
    pub certificate: Option<PathBuf>,
    /// This member's private key.
    pub private_key: Option<PathBuf>,
    /// The fleet's `members.toml`: the access control is generated from it at start.
    pub members: Option<PathBuf>,
    /// Without `ca`: allow plain TCP on addresses beyond loopback (a warning at every start).
    pub insecure: bool,
}

/// What [`SecuritySettings::secure_zenoh`] decided.
#[derive(Debug, Clone, PartialEq)]
pub struct SecureZenoh {
    /// zenoh settings to insert, key path to JSON value (empty without a CA).
    pub entries: Vec<(String, Value)>,
    /// A warning to log at start (`insecure = true`).
    pub warning: Option<String>,
    /// This member's entry in the member list (with a CA).
    pub member: Option<Member>,
}

impl SecuritySettings {
    /// Makes every relative path relative to `folder` (the settings file's) when it exists
    /// there, as `model_dir` is; other paths are left relative to the working directory.
    pub fn resolve_relative_to(&mut self, folder: &Path) {
        for p in [
            &mut self.ca,
            &mut self.certificate,
            &mut self.private_key,
            &mut self.members,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                let candidate = folder.join(&*p);
                if candidate.exists() {
                    *p = candidate;
                }
            }
        }
    }

    /// The zenoh settings for member `name` of `fleet` listening on `listen` and connecting to
    /// `connect`, or why it must not start.
    ///
    /// With `ca`: every endpoint must be `tls/...`; the certificate must be signed by the CA
    /// and name `name`; `name` must be in the member list of `fleet`. Without: a `tls/`
    /// endpoint is an error, and an endpoint beyond loopback is refused unless `insecure`.
    pub fn secure_zenoh(
        &self,
        fleet: &str,
        name: &str,
        listen: &[String],
        connect: &[String],
    ) -> Result<SecureZenoh> {
        let endpoints = || listen.iter().chain(connect);
        let Some(ca) = &self.ca else {
            return self.plain(endpoints().collect());
        };
        if self.insecure {
            return Err(settings(
                "[security] sets both `ca` and `insecure = true`: with a CA every link is TLS; \
                 remove `insecure`",
            ));
        }
        let need = |p: &Option<PathBuf>, key: &str| {
            p.clone().ok_or_else(|| {
                settings(format!(
                    "[security] sets `ca` but not `{key}`: a member needs its certificate, its \
                     private key and the fleet's members file (`quantpipe fleet enroll`)"
                ))
            })
        };
        let certificate = need(&self.certificate, "certificate")?;
        let private_key = need(&self.private_key, "private_key")?;
        let members_file = need(&self.members, "members")?;
        if let Some(e) = endpoints().find(|e| protocol(e) != "tls") {
            return Err(settings(format!(
                "endpoint `{e}`: with [security] ca set every endpoint must be `tls/...` \
                 (e.g. `tls/{}`)",
                e.split_once('/').map_or(e.as_str(), |(_, a)| a)
            )));
        }
        let cn = common_name_of_pem_file(&certificate)?;
        if cn != name {
            return Err(settings(format!(
                "certificate {} is issued to `{cn}` but these settings are `{name}`: the settings' \
                 `name` must be the certificate's common name (enroll `{name}`, or set name = \
                 \"{cn}\")",
                certificate.display()
            )));
        }
        if !is_signed_by(&certificate, ca)? {
            return Err(settings(format!(
                "certificate {} is not signed by the CA {}",
                certificate.display(),
                ca.display()
            )));
        }
        let members = Members::load(&members_file)?;
        if members.fleet != fleet {
            return Err(settings(format!(
                "members file {} is fleet `{}`, these settings are fleet `{fleet}`",
                members_file.display(),
                members.fleet
            )));
        }
        let Some(member) = members.get(name).cloned() else {
            return Err(settings(format!(
                "`{name}` is not in the members of fleet `{fleet}` ({}): enroll it, or restore \
                 its entry",
                members_file.display()
            )));
        };
        let path = |p: &Path| -> Result<Value> {
            p.to_str()
                .map(|s| json!(s))
                .ok_or_else(|| settings(format!("path {} is not valid UTF-8", p.display())))
        };
        let tls = "transport/link/tls";
        let entries = vec![
            (format!("{tls}/root_ca_certificate"), path(ca)?),
            (format!("{tls}/listen_certificate"), path(&certificate)?),
            (format!("{tls}/listen_private_key"), path(&private_key)?),
            (format!("{tls}/connect_certificate"), path(&certificate)?),
            (format!("{tls}/connect_private_key"), path(&private_key)?),
            // Both ends present a certificate of the fleet's CA.
            (format!("{tls}/enable_mtls"), json!(true)),
            // Members are addressed by IP and their certificates name the member, not a host:
            // the CA (who may connect) and the access control over the common name (what it may
            // do) are the identity check, so the endpoint's host name is not compared.
            (format!("{tls}/verify_name_on_connect"), json!(false)),
            // Scouting would otherwise open links over every protocol zenoh knows.
            ("transport/link/protocols".into(), json!(["tls"])),
            ("access_control".into(), access_control(&members)),
        ];
        Ok(SecureZenoh {
            entries,
            warning: None,
            member: Some(member),
        })
    }

    /// Without a CA: plain links, refused beyond loopback unless `insecure`.
    fn plain(&self, endpoints: Vec<&String>) -> Result<SecureZenoh> {
        for (key, p) in [
            ("certificate", &self.certificate),
            ("private_key", &self.private_key),
            ("members", &self.members),
        ] {
            if p.is_some() {
                return Err(settings(format!(
                    "[security] sets `{key}` but not `ca`: set `ca` to the fleet's CA \
                     certificate to turn TLS on"
                )));
            }
        }
        if let Some(e) = endpoints.iter().find(|e| protocol(e) == "tls") {
            return Err(settings(format!(
                "endpoint `{e}` is TLS but [security] has no `ca`: set [security] ca, \
                 certificate, private_key and members"
            )));
        }
        let exposed: Vec<&str> = endpoints
            .iter()
            .filter(|e| !is_loopback(e))
            .map(|e| e.as_str())
            .collect();
        if self.insecure {
            let reach = if exposed.is_empty() {
                String::new()
            } else {
                format!(" on {}", exposed.join(", "))
            };
            return Ok(SecureZenoh {
                entries: Vec::new(),
                warning: Some(format!(
                    "[security] insecure = true: fleet traffic{reach} is plain TCP, readable and \
                     forgeable by anyone on the network"
                )),
                member: None,
            });
        }
        if let Some(e) = exposed.first() {
            return Err(settings(format!(
                "endpoint `{e}` is not on loopback and [security] has no `ca`: anyone on that \
                 network could read and forge fleet traffic. Either enroll this member \
                 (`quantpipe fleet enroll`) and set [security] ca, certificate, private_key and \
                 members (with `tls/` endpoints), or set [security] insecure = true on a network \
                 you trust"
            )));
        }
        Ok(SecureZenoh {
            entries: Vec::new(),
            warning: None,
            member: None,
        })
    }
}

fn settings(message: impl Into<String>) -> Error {
    Error::Settings(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::members::MemberRole;
    use crate::throwaway::throwaway_fleet;

    fn v(e: &[&str]) -> Vec<String> {
        e.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plain_tcp_beyond_loopback_is_refused_naming_the_endpoint_and_both_ways_out() {
        let s = SecuritySettings::default();
        let e = s
            .secure_zenoh("f", "a", &v(&["tcp/0.0.0.0:7447"]), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("tcp/0.0.0.0:7447"), "{e}");
        assert!(
            e.contains("quantpipe fleet enroll") && e.contains("insecure = true"),
            "{e}"
        );
        let e = s
            .secure_zenoh("f", "a", &[], &v(&["tcp/10.0.0.1:7447"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("tcp/10.0.0.1:7447"), "{e}");
    }

    #[test]
    fn plain_tcp_on_loopback_starts_without_a_warning() {
        let s = SecuritySettings::default();
        let z = s
            .secure_zenoh("f", "a", &v(&["tcp/127.0.0.1:7447"]), &v(&["tcp/[::1]:1"]))
            .unwrap();
        assert!(z.entries.is_empty() && z.warning.is_none());
    }

    #[test]
    fn insecure_allows_plain_tcp_beyond_loopback_with_a_warning() {
        let s = SecuritySettings {
            insecure: true,
            ..Default::default()
        };
        let z = s
            .secure_zenoh("f", "a", &v(&["tcp/10.0.0.1:7447"]), &[])
            .unwrap();
        assert!(z.entries.is_empty());
        assert!(z.warning.unwrap().contains("tcp/10.0.0.1:7447"));
    }

    #[test]
    fn with_a_ca_every_endpoint_must_be_tls() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = throwaway_fleet(dir.path(), "f", &[("a", MemberRole::Node)]).unwrap();
        let s = fleet.security("a").unwrap();
        let e = s
            .secure_zenoh("f", "a", &v(&["tls/127.0.0.1:1"]), &v(&["tcp/127.0.0.1:2"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`tcp/127.0.0.1:2`") && e.contains("tls/127.0.0.1:2"),
            "{e}"
        );
    }

    #[test]
    fn with_a_ca_zenoh_gets_mutual_tls_tls_only_links_and_the_access_control() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = throwaway_fleet(dir.path(), "f", &[("a", MemberRole::Node)]).unwrap();
        let z = fleet
            .security("a")
            .unwrap()
            .secure_zenoh("f", "a", &v(&["tls/0.0.0.0:1"]), &[])
            .unwrap();
        let get = |k: &str| z.entries.iter().find(|(key, _)| key == k).map(|(_, v)| v);
        assert_eq!(get("transport/link/tls/enable_mtls"), Some(&json!(true)));
        assert_eq!(
            get("transport/link/tls/verify_name_on_connect"),
            Some(&json!(false))
        );
        assert_eq!(get("transport/link/protocols"), Some(&json!(["tls"])));
        assert_eq!(
            get("access_control").unwrap()["default_permission"],
            json!("deny")
        );
        for k in [
            "root_ca_certificate",
            "listen_certificate",
            "connect_private_key",
        ] {
            assert!(get(&format!("transport/link/tls/{k}")).is_some(), "{k}");
        }
    }

    #[test]
    fn a_name_other_than_the_certificates_common_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = throwaway_fleet(
            dir.path(),
            "f",
            &[("a", MemberRole::Client), ("b", MemberRole::Client)],
        )
        .unwrap();
        let e = fleet
            .security("a")
            .unwrap()
            .secure_zenoh("f", "b", &[], &v(&["tls/127.0.0.1:1"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("issued to `a`") && e.contains("`b`"), "{e}");
    }

    #[test]
    fn a_member_not_in_the_list_or_of_another_fleet_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = throwaway_fleet(dir.path(), "f", &[("a", MemberRole::Node)]).unwrap();
        let s = fleet.security("a").unwrap();
        let e = s.secure_zenoh("g", "a", &[], &[]).unwrap_err().to_string();
        assert!(e.contains("fleet `f`"), "{e}");
        fleet.ca.remove("a").unwrap();
        let e = s.secure_zenoh("f", "a", &[], &[]).unwrap_err().to_string();
        assert!(e.contains("not in the members"), "{e}");
    }

    #[test]
    fn a_certificate_of_another_ca_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let fleet = throwaway_fleet(dir.path(), "f", &[("a", MemberRole::Node)]).unwrap();
        let stranger = throwaway_fleet(other.path(), "f", &[("a", MemberRole::Node)]).unwrap();
        let mut s = fleet.security("a").unwrap();
        s.certificate = stranger.security("a").unwrap().certificate;
        let e = s.secure_zenoh("f", "a", &[], &[]).unwrap_err().to_string();
        assert!(e.contains("not signed by the CA"), "{e}");
    }

    #[test]
    fn relative_paths_resolve_against_the_settings_folder_when_they_exist_there() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "x").unwrap();
        let mut s = SecuritySettings {
            ca: Some("ca.pem".into()),
            members: Some("elsewhere.toml".into()),
            ..Default::default()
        };
        s.resolve_relative_to(dir.path());
        assert_eq!(s.ca, Some(dir.path().join("ca.pem")));
        assert_eq!(s.members, Some(PathBuf::from("elsewhere.toml")));
    }
}
