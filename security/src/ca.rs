//! The fleet's certificate authority: a key and a self-signed CA certificate in one folder,
//! beside the fleet's `members.toml`. Enrolling a member issues it a key and a certificate whose
//! common name is the member's name; that name is what the access control knows it by.

use crate::error::{io, Error, Result};
use crate::members::{Member, MemberRole, Members};
use crate::name::check_name;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// The CA certificate, in the CA folder.
pub const CA_CERTIFICATE: &str = "ca.pem";
/// The CA's private key (mode 0600), in the CA folder.
pub const CA_KEY: &str = "ca.key";
/// The member list, in the CA folder.
pub const MEMBERS_FILE: &str = "members.toml";
/// Where `enroll` writes members' keys and certificates by default, in the CA folder.
pub const MEMBERS_DIR: &str = "members";

/// How long the CA certificate is valid.
const CA_VALIDITY: Duration = Duration::days(10 * 365);
/// How long a member's certificate is valid.
const MEMBER_VALIDITY: Duration = Duration::days(5 * 365);
/// Certificates start being valid a little in the past, so that a member whose clock is
/// slightly behind the CA's accepts them at once.
const CLOCK_SLACK: Duration = Duration::hours(1);

/// An opened fleet CA.
pub struct FleetCa {
    dir: PathBuf,
    fleet: String,
    certificate_pem: String,
    key: KeyPair,
}

/// What `enroll` issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    pub member: Member,
    /// The member's certificate (PEM), signed by the fleet's CA.
    pub certificate: PathBuf,
    /// The member's private key (PEM, mode 0600).
    pub private_key: PathBuf,
}

impl FleetCa {
    /// Creates a CA for `fleet` in `dir` (created if needed): `ca.pem`, `ca.key` (0600) and an
    /// empty `members.toml`. Refuses a folder that already holds a CA.
    pub fn init(dir: &Path, fleet: &str) -> Result<FleetCa> {
        check_name("fleet", fleet)?;
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        for f in [CA_CERTIFICATE, CA_KEY, MEMBERS_FILE] {
            let path = dir.join(f);
            if path.exists() {
                return Err(Error::Exists { path });
            }
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(&format!("quantpipe fleet {fleet} CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, CA_VALIDITY);
        let certificate_pem = params.self_signed(&key)?.pem();
        write_secret(&dir.join(CA_KEY), &key.serialize_pem())?;
        let cert_path = dir.join(CA_CERTIFICATE);
        std::fs::write(&cert_path, &certificate_pem).map_err(io(&cert_path))?;
        Members::new(fleet)?.save(&dir.join(MEMBERS_FILE))?;
        Ok(FleetCa {
            dir: dir.to_path_buf(),
            fleet: fleet.to_owned(),
            certificate_pem,
            key,
        })
    }

    /// Opens the CA in `dir` (made by [`FleetCa::init`]).
    pub fn open(dir: &Path) -> Result<FleetCa> {
        let read = |f: &str| {
            let path = dir.join(f);
            std::fs::read_to_string(&path).map_err(io(&path))
        };
        let certificate_pem = read(CA_CERTIFICATE)?;
        let key = KeyPair::from_pem(&read(CA_KEY)?).map_err(|e| Error::BadFile {
            path: dir.join(CA_KEY),
            message: e.to_string(),
        })?;
        let members = Members::load(&dir.join(MEMBERS_FILE))?;
        Ok(FleetCa {
            dir: dir.to_path_buf(),
            fleet: members.fleet,
            certificate_pem,
            key,
        })
    }

    pub fn fleet(&self) -> &str {
        &self.fleet
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate every member trusts (`[security] ca`).
    pub fn certificate_path(&self) -> PathBuf {
        self.dir.join(CA_CERTIFICATE)
    }

    /// The member list (`[security] members`).
    pub fn members_path(&self) -> PathBuf {
        self.dir.join(MEMBERS_FILE)
    }

    /// The current member list.
    pub fn members(&self) -> Result<Members> {
        Members::load(&self.members_path())
    }

    /// Issues `name` a key and a certificate (common name = `name`) in `out_dir` (`<name>.pem`,
    /// `<name>.key`, 0600) and adds it to `members.toml`. A name already enrolled, an invalid
    /// name, or existing files are refused.
    pub fn enroll(&self, name: &str, role: MemberRole, out_dir: &Path) -> Result<Enrolled> {
        check_name("member", name)?;
        let mut members = self.members()?;
        if members.get(name).is_some() {
            return Err(Error::AlreadyMember(name.to_owned()));
        }
        let certificate = out_dir.join(format!("{name}.pem"));
        let private_key = out_dir.join(format!("{name}.key"));
        for path in [&certificate, &private_key] {
            if path.exists() {
                return Err(Error::Exists { path: path.clone() });
            }
        }
        std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;

        let key = KeyPair::generate()?;
        // The name is also a DNS name, so that fleets that prefer name verification can turn it
        // on; quantpipe itself addresses members by IP and checks identity by CA and CN.
        let mut params = CertificateParams::new(vec![name.to_owned()])?;
        params.distinguished_name = common_name(name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        validity(&mut params, MEMBER_VALIDITY);
        let issuer = Issuer::from_ca_cert_pem(&self.certificate_pem, &self.key)?;
        let cert = params.signed_by(&key, &issuer)?;
        let serial = crate::certificate::serial_of_der(cert.der()).unwrap_or_default();

        write_secret(&private_key, &key.serialize_pem())?;
        std::fs::write(&certificate, cert.pem()).map_err(io(&certificate))?;
        let member = Member {
            name: name.to_owned(),
            role,
            serial,
        };
        members.add(member.clone())?;
        members.save(&self.members_path())?;
        Ok(Enrolled {
            member,
            certificate,
            private_key,
        })
    }

    /// Enrolls `name` with its files in the CA folder's `members/`.
    pub fn enroll_here(&self, name: &str, role: MemberRole) -> Result<Enrolled> {
        self.enroll(name, role, &self.dir.join(MEMBERS_DIR))
    }

    /// Takes `name` out of `members.toml`: once the fleet restarts with the new file, its
    /// certificate (still signed by the CA) matches no rule of the access control, so nothing
    /// it sends is accepted and nothing is sent to it.
    pub fn remove(&self, name: &str) -> Result<Member> {
        let mut members = self.members()?;
        let removed = members.remove(name)?;
        members.save(&self.members_path())?;
        Ok(removed)
    }
}

fn common_name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn validity(params: &mut CertificateParams, length: Duration) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - CLOCK_SLACK;
    params.not_after = now + length;
}

/// Writes a private key readable by its owner only.
fn write_secret(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Error::Exists {
            path: path.to_path_buf(),
        },
        _ => Error::Io {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    f.write_all(text.as_bytes()).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificate::common_name_of_pem_file;

    #[test]
    fn an_enrolled_members_certificate_carries_its_name_and_the_ca_signs_it() {
        let dir = tempfile::tempdir().unwrap();
        let ca = FleetCa::init(dir.path(), "f").unwrap();
        let e = ca.enroll_here("node-a", MemberRole::Node).unwrap();
        assert_eq!(common_name_of_pem_file(&e.certificate).unwrap(), "node-a");
        assert!(crate::certificate::is_signed_by(&e.certificate, &ca.certificate_path()).unwrap());
        let other = tempfile::tempdir().unwrap();
        let stranger = FleetCa::init(other.path(), "f").unwrap();
        assert!(
            !crate::certificate::is_signed_by(&e.certificate, &stranger.certificate_path())
                .unwrap()
        );
        assert_eq!(
            ca.members().unwrap().get("node-a").unwrap().role,
            MemberRole::Node
        );
    }

    #[cfg(unix)]
    #[test]
    fn private_keys_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ca = FleetCa::init(dir.path(), "f").unwrap();
        let e = ca.enroll_here("a", MemberRole::Client).unwrap();
        for key in [dir.path().join(CA_KEY), e.private_key] {
            let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
    }

    #[test]
    fn enrolling_a_name_twice_or_a_name_that_is_not_a_key_chunk_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = FleetCa::init(dir.path(), "f").unwrap();
        ca.enroll_here("a", MemberRole::Node).unwrap();
        let out = tempfile::tempdir().unwrap();
        assert!(matches!(
            ca.enroll("a", MemberRole::Client, out.path()),
            Err(Error::AlreadyMember(_))
        ));
        for bad in ["a/b", "*", "c**"] {
            assert!(matches!(
                ca.enroll(bad, MemberRole::Client, out.path()),
                Err(Error::BadName { .. })
            ));
        }
    }

    #[test]
    fn a_folder_holding_a_ca_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        FleetCa::init(dir.path(), "f").unwrap();
        assert!(matches!(
            FleetCa::init(dir.path(), "f"),
            Err(Error::Exists { .. })
        ));
    }

    #[test]
    fn a_reopened_ca_enrolls_members_its_certificate_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let first = FleetCa::init(dir.path(), "f").unwrap();
        drop(first);
        let ca = FleetCa::open(dir.path()).unwrap();
        assert_eq!(ca.fleet(), "f");
        let e = ca.enroll_here("b", MemberRole::Leader).unwrap();
        assert!(crate::certificate::is_signed_by(&e.certificate, &ca.certificate_path()).unwrap());
    }

    #[test]
    fn a_removed_member_leaves_the_list_and_may_be_enrolled_again_under_new_files() {
        let dir = tempfile::tempdir().unwrap();
        let ca = FleetCa::init(dir.path(), "f").unwrap();
        ca.enroll_here("a", MemberRole::Node).unwrap();
        assert_eq!(ca.remove("a").unwrap().name, "a");
        assert!(ca.members().unwrap().get("a").is_none());
        assert!(matches!(ca.remove("a"), Err(Error::NotMember(_))));
        let out = tempfile::tempdir().unwrap();
        ca.enroll("a", MemberRole::Node, out.path()).unwrap();
    }
}
