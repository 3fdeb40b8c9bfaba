//! Reading certificates back: a printable summary of each certificate in a
//! PEM file, and verification that a certificate was issued by a given CA.
//!
//! Verification here is the direct check an operator needs ("did this CA
//! sign this tracker certificate, and is it valid now?"), not full RFC 5280
//! path building; rustls/webpki does that at connection time.

use crate::error::CertError;
use crate::rustls_io::{read_certs, read_first_cert};
use rustls_pki_types::CertificateDer;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::path::Path;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

/// A summary of one X.509 certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    /// Subject distinguished name, e.g. `CN=Acme Skein CA, O=Acme`.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Subject alternative names: DNS names and IP addresses as plain text;
    /// other kinds prefixed (`email:`, `URI:`, `other:`).
    pub sans: Vec<String>,
    /// Start of validity, RFC 3339.
    pub not_before: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// SHA-256 of the DER encoding, lowercase hex.
    pub sha256_fingerprint: String,
    /// Whether `basicConstraints` says `CA:TRUE`.
    pub is_ca: bool,
}

impl CertInfo {
    /// Summarises a DER certificate; `path` only names it in errors.
    pub fn from_der(path: &Path, der: &CertificateDer<'_>) -> Result<Self, CertError> {
        let cert = parse(path, der)?;
        Ok(Self::from_parsed(path, &cert, der))
    }

    fn from_parsed(path: &Path, cert: &X509Certificate<'_>, der: &[u8]) -> Self {
        // A malformed SAN extension is shown, not fatal: `show` is for
        // looking at odd certificates too.
        let sans = match cert.subject_alternative_name() {
            Ok(Some(ext)) => ext.value.general_names.iter().map(general_name).collect(),
            Ok(None) => Vec::new(),
            Err(e) => vec![format!("invalid SAN extension in {}: {e}", path.display())],
        };
        Self {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            sans,
            not_before: rfc3339(cert.validity().not_before.to_datetime()),
            not_after: rfc3339(cert.validity().not_after.to_datetime()),
            serial: hex::encode(cert.raw_serial()),
            sha256_fingerprint: hex::encode(Sha256::digest(der)),
            is_ca: cert.is_ca(),
        }
    }
}

/// Summarises every certificate in a PEM file, in file order.
pub fn show(path: &Path) -> Result<Vec<CertInfo>, CertError> {
    read_certs("certificate", path)?.iter().map(|der| CertInfo::from_der(path, der)).collect()
}

/// Checks that the first certificate in `cert_path` was signed by the key of
/// the (first) certificate in `ca_path`, that the CA certificate is a CA, and
/// that both are valid at `now`. Returns the summary of the checked
/// certificate.
pub fn verify_chain(cert_path: &Path, ca_path: &Path, now: OffsetDateTime) -> Result<CertInfo, CertError> {
    let ca_der = read_first_cert("CA certificate", ca_path)?;
    let ca = parse(ca_path, &ca_der)?;
    check_is_ca(ca_path, &ca)?;
    check_validity(ca_path, &ca, now)?;

    let der = read_first_cert("certificate", cert_path)?;
    let cert = parse(cert_path, &der)?;
    let not_signed = || CertError::NotSignedByCa { path: cert_path.to_path_buf(), ca: ca_path.to_path_buf() };
    if cert.issuer().as_raw() != ca.subject().as_raw() {
        return Err(not_signed());
    }
    cert.verify_signature(Some(ca.public_key())).map_err(|_| not_signed())?;
    check_validity(cert_path, &cert, now)?;
    Ok(CertInfo::from_parsed(cert_path, &cert, &der))
}

/// Parses one DER certificate, naming `path` on failure.
pub(crate) fn parse<'a>(path: &Path, der: &'a CertificateDer<'_>) -> Result<X509Certificate<'a>, CertError> {
    X509Certificate::from_der(der)
        .map(|(_rest, cert)| cert)
        .map_err(|e| CertError::MalformedCertificate { path: path.to_path_buf(), reason: e.to_string() })
}

/// Fails unless `cert` has `basicConstraints CA:TRUE` and, if it has a key
/// usage extension, `keyCertSign` in it.
pub(crate) fn check_is_ca(path: &Path, cert: &X509Certificate<'_>) -> Result<(), CertError> {
    let can_sign = match cert.key_usage() {
        Ok(Some(ku)) => ku.value.key_cert_sign(),
        Ok(None) => true,
        Err(_) => false,
    };
    if cert.is_ca() && can_sign { Ok(()) } else { Err(CertError::NotACa { path: path.to_path_buf() }) }
}

fn check_validity(path: &Path, cert: &X509Certificate<'_>, now: OffsetDateTime) -> Result<(), CertError> {
    let validity = cert.validity();
    let not_before = validity.not_before.to_datetime();
    let not_after = validity.not_after.to_datetime();
    if now < not_before {
        return Err(CertError::NotYetValid { path: path.to_path_buf(), not_before: rfc3339(not_before) });
    }
    if now > not_after {
        return Err(CertError::Expired { path: path.to_path_buf(), not_after: rfc3339(not_after) });
    }
    Ok(())
}

/// RFC 3339, falling back to `time`'s own format for years RFC 3339
/// cannot express.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn general_name(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::DNSName(s) => (*s).to_string(),
        GeneralName::IPAddress(bytes) => ip_text(bytes),
        GeneralName::RFC822Name(s) => format!("email:{s}"),
        GeneralName::URI(s) => format!("URI:{s}"),
        other => format!("other:{other:?}"),
    }
}

fn ip_text(bytes: &[u8]) -> String {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        IpAddr::from(v4).to_string()
    } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        IpAddr::from(v6).to_string()
    } else {
        format!("IP:{}", hex::encode(bytes))
    }
}

/// A certificate's SHA-256 fingerprint for people to compare: upper-case
/// hex pairs joined by colons (`AB:CD:…`, 32 pairs).
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}
