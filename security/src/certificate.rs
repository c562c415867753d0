//! Reading back what a member's certificate says: its common name (the member's name to the
//! access control), its serial number, and whether a CA signed it.

use crate::error::{io, Error, Result};
use std::path::Path;
use x509_parser::pem::Pem;

/// The first certificate in the PEM file at `path`.
fn read_pem(path: &Path) -> Result<Pem> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes).map_err(|e| Error::BadFile {
        path: path.to_path_buf(),
        message: format!("not a PEM certificate: {e}"),
    })?;
    Ok(pem)
}

fn bad(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::BadFile {
        path: path.to_path_buf(),
        message: format!("not an X.509 certificate: {e}"),
    }
}

/// The common name of the certificate in the PEM file at `path`.
pub fn common_name_of_pem_file(path: &Path) -> Result<String> {
    let pem = read_pem(path)?;
    let cert = pem.parse_x509().map_err(|e| bad(path, e))?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or_else(|| Error::BadFile {
            path: path.to_path_buf(),
            message: "the certificate has no common name".into(),
        })?;
    Ok(cn.to_owned())
}

/// The serial number of a DER certificate, hex with `:` separators.
pub fn serial_of_der(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.raw_serial_as_string())
}

/// Whether the certificate at `certificate` is signed by the CA certificate at `ca`.
pub fn is_signed_by(certificate: &Path, ca: &Path) -> Result<bool> {
    let member_pem = read_pem(certificate)?;
    let member = member_pem.parse_x509().map_err(|e| bad(certificate, e))?;
    let ca_pem = read_pem(ca)?;
    let ca_cert = ca_pem.parse_x509().map_err(|e| bad(ca, e))?;
    Ok(member.verify_signature(Some(ca_cert.public_key())).is_ok())
}
