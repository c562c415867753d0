//! `quantpipe fleet`: the fleet's certificate authority and member list (init, enroll, remove,
//! members) and the access control every member generates from that list (acl).

use anyhow::{Context, Result};
use clap::Subcommand;
use quantpipe_security::{access_control, FleetCa, MemberRole};
use std::path::{Path, PathBuf};

/// Where the CA lives unless `--ca` says otherwise.
const DEFAULT_CA_DIR: &str = "fleet-ca";

#[derive(Subcommand, Debug)]
pub enum Fleet {
    /// Create a fleet CA in DIR: ca.pem, ca.key (readable by you only), members.toml.
    Init {
        dir: PathBuf,
        /// The fleet's name (the `fleet` of every member's settings).
        #[arg(long)]
        fleet: String,
    },
    /// Issue NAME a key and a certificate of the fleet's CA (common name = NAME) and add it to
    /// members.toml.
    Enroll {
        name: String,
        /// What the member may do: node, leader (a node that may plan), gateway or client.
        #[arg(long)]
        role: MemberRole,
        /// The CA folder.
        #[arg(long, default_value = DEFAULT_CA_DIR)]
        ca: PathBuf,
        /// Where NAME.pem and NAME.key go (default: the CA folder's members/).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Take NAME out of members.toml: once the fleet restarts with the new file, its
    /// certificate gets no rule of the access control.
    Remove {
        name: String,
        #[arg(long, default_value = DEFAULT_CA_DIR)]
        ca: PathBuf,
    },
    /// List the fleet's members and their roles.
    Members {
        #[arg(long, default_value = DEFAULT_CA_DIR)]
        ca: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Print the access control (zenoh's `access_control` section, JSON) that every member
    /// generates from members.toml at start, for review.
    Acl {
        #[arg(long, default_value = DEFAULT_CA_DIR)]
        ca: PathBuf,
    },
}

pub fn run(command: Fleet) -> Result<()> {
    match command {
        Fleet::Init { dir, fleet } => {
            let ca = FleetCa::init(&dir, &fleet)?;
            println!(
                "fleet `{fleet}`: CA {} (key {}), members {}",
                ca.certificate_path().display(),
                dir.join(quantpipe_security::CA_KEY).display(),
                ca.members_path().display()
            );
            println!(
                "next: quantpipe fleet enroll NAME --role node|leader|gateway|client --ca {}",
                dir.display()
            );
        }
        Fleet::Enroll {
            name,
            role,
            ca,
            out,
        } => {
            let ca = open(&ca)?;
            let out = out.unwrap_or_else(|| ca.dir().join(quantpipe_security::MEMBERS_DIR));
            let e = ca.enroll(&name, role, &out)?;
            println!("enrolled `{name}` as {role} in fleet `{}`", ca.fleet());
            println!(
                "# the [security] section of {name}'s settings \
                 (name = \"{name}\"; endpoints tls/...):"
            );
            println!("[security]");
            for (key, path) in [
                ("ca", ca.certificate_path()),
                ("certificate", e.certificate),
                ("private_key", e.private_key),
                ("members", ca.members_path()),
            ] {
                println!("{key} = {}", toml_string(&path));
            }
        }
        Fleet::Remove { name, ca } => {
            let ca = open(&ca)?;
            let m = ca.remove(&name)?;
            println!(
                "removed `{}` ({}) from {}: restart every member with this file (or copy it to \
                 each) so their access control drops it",
                m.name,
                m.role,
                ca.members_path().display()
            );
        }
        Fleet::Members { ca, json } => {
            let members = open(&ca)?.members()?;
            super::print(&members, json, |m| {
                let mut s = format!("fleet `{}`: {} member(s)", m.fleet, m.members.len());
                for member in &m.members {
                    s += &format!(
                        "\n  {:<24} {:<8} serial {}",
                        member.name, member.role, member.serial
                    );
                }
                s
            })?;
        }
        Fleet::Acl { ca } => {
            let members = open(&ca)?.members()?;
            println!(
                "{}",
                serde_json::to_string_pretty(&access_control(&members))?
            );
        }
    }
    Ok(())
}

fn open(dir: &Path) -> Result<FleetCa> {
    FleetCa::open(dir).with_context(|| {
        format!(
            "opening the fleet CA in {} (create one with `quantpipe fleet init DIR --fleet NAME`, \
             or pass --ca DIR)",
            dir.display()
        )
    })
}

/// `path` as a TOML string (a JSON string is a valid TOML basic string).
fn toml_string(path: &Path) -> String {
    serde_json::to_string(&path.display().to_string()).expect("a string serialises")
}
