//! The fleet's member list, `members.toml`: who holds a certificate of the fleet's CA and what
//! each may do. Every node's access control is generated from it at start, so removing a member
//! here (and restarting the fleet with the new file) is what takes its rights away.

use crate::error::{io, Error, Result};
use crate::name::check_name;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// What a member may do in the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemberRole {
    /// A node: hosts stages, exchanges stage traffic, acknowledgements, device info and stats
    /// with the other nodes, obeys the leader's assignments.
    Node,
    /// A node that may also plan: serves and announces the plan, assigns and releases shards
    /// (a node whose settings say `role = "leader"`, `"both"` or `"candidate"`).
    Leader,
    /// An HTTP gateway: a client of the fleet.
    Gateway,
    /// A client: puts into stage 0's input, reads the plan, receives its own results.
    Client,
}

impl MemberRole {
    pub const ALL: [MemberRole; 4] = [
        MemberRole::Node,
        MemberRole::Leader,
        MemberRole::Gateway,
        MemberRole::Client,
    ];

    /// Nodes and leaders: the members that run stages.
    pub fn is_node(self) -> bool {
        matches!(self, MemberRole::Node | MemberRole::Leader)
    }

    /// Leaders: the members whose plan and assignments are obeyed.
    pub fn may_lead(self) -> bool {
        self == MemberRole::Leader
    }

    /// Clients and gateways: the members that send work and receive their own results.
    pub fn is_user(self) -> bool {
        matches!(self, MemberRole::Gateway | MemberRole::Client)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MemberRole::Node => "node",
            MemberRole::Leader => "leader",
            MemberRole::Gateway => "gateway",
            MemberRole::Client => "client",
        }
    }
}

impl fmt::Display for MemberRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MemberRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        MemberRole::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`: use node, leader, gateway or client"))
    }
}

/// One enrolled member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's name: its certificate's common name and the `name` of its settings.
    pub name: String,
    pub role: MemberRole,
    /// Serial number of the certificate issued at enrolment (hex), to tell certificates apart.
    #[serde(default)]
    pub serial: String,
}

/// The fleet's member list (`members.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Members {
    pub fleet: String,
    #[serde(default, rename = "member")]
    pub members: Vec<Member>,
}

impl Members {
    /// An empty member list of `fleet`.
    pub fn new(fleet: &str) -> Result<Members> {
        check_name("fleet", fleet)?;
        Ok(Members {
            fleet: fleet.to_owned(),
            members: Vec::new(),
        })
    }

    /// Reads `path`; every name in it must be a valid name, none twice.
    pub fn load(path: &Path) -> Result<Members> {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        let bad = |message: String| Error::BadFile {
            path: path.to_path_buf(),
            message,
        };
        let m: Members = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        check_name("fleet", &m.fleet).map_err(|e| bad(e.to_string()))?;
        for (i, member) in m.members.iter().enumerate() {
            check_name("member", &member.name).map_err(|e| bad(e.to_string()))?;
            if m.members[..i].iter().any(|o| o.name == member.name) {
                return Err(bad(format!("member `{}` is listed twice", member.name)));
            }
        }
        Ok(m)
    }

    /// Writes the list to `path` (through a temporary file, so a reader never sees half of it).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = format!(
            "# Members of fleet `{}`: every node builds its access control from this file at\n\
             # start. Edit it with `quantpipe fleet enroll` / `quantpipe fleet remove`.\n{}",
            self.fleet,
            toml::to_string(self).map_err(|e| Error::BadFile {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?
        );
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))
    }

    pub fn get(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// Adds `member`; a name already in the list is refused.
    pub fn add(&mut self, member: Member) -> Result<()> {
        check_name("member", &member.name)?;
        if self.get(&member.name).is_some() {
            return Err(Error::AlreadyMember(member.name));
        }
        self.members.push(member);
        Ok(())
    }

    /// Removes `name` and returns its entry.
    pub fn remove(&mut self, name: &str) -> Result<Member> {
        let i = self
            .members
            .iter()
            .position(|m| m.name == name)
            .ok_or_else(|| Error::NotMember(name.to_owned()))?;
        Ok(self.members.remove(i))
    }

    /// Names of the members whose role satisfies `pick`, in list order.
    pub fn names(&self, pick: impl Fn(MemberRole) -> bool) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| pick(m.role))
            .map(|m| m.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, role: MemberRole) -> Member {
        Member {
            name: name.into(),
            role,
            serial: String::new(),
        }
    }

    #[test]
    fn member_list_survives_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("members.toml");
        let mut m = Members::new("f").unwrap();
        m.add(member("a", MemberRole::Leader)).unwrap();
        m.add(member("c", MemberRole::Client)).unwrap();
        m.save(&path).unwrap();
        assert_eq!(Members::load(&path).unwrap(), m);
    }

    #[test]
    fn a_name_is_added_once() {
        let mut m = Members::new("f").unwrap();
        m.add(member("a", MemberRole::Node)).unwrap();
        assert!(matches!(
            m.add(member("a", MemberRole::Client)),
            Err(Error::AlreadyMember(_))
        ));
    }

    #[test]
    fn removing_a_stranger_is_an_error() {
        let mut m = Members::new("f").unwrap();
        assert!(matches!(m.remove("x"), Err(Error::NotMember(_))));
    }

    #[test]
    fn a_hand_edited_file_with_a_bad_or_repeated_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("members.toml");
        let twice = "fleet = \"f\"\n[[member]]\nname = \"a\"\nrole = \"node\"\n\
                     [[member]]\nname = \"a\"\nrole = \"client\"\n";
        std::fs::write(&path, twice).unwrap();
        let e = Members::load(&path).unwrap_err().to_string();
        assert!(e.contains("listed twice"), "{e}");
        std::fs::write(
            &path,
            "fleet = \"f\"\n[[member]]\nname = \"a/*\"\nrole = \"node\"\n",
        )
        .unwrap();
        assert!(Members::load(&path).is_err());
    }

    #[test]
    fn roles_parse_from_their_names() {
        for r in MemberRole::ALL {
            assert_eq!(r.as_str().parse::<MemberRole>(), Ok(r));
        }
        assert!("admin".parse::<MemberRole>().is_err());
    }
}
