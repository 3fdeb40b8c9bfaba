//! The organisation's X.509 CA and the tracker certificates it issues.
//!
//! The CA is a self-signed ECDSA P-256 certificate with
//! `basicConstraints CA:TRUE, pathlen:0` and key usage `keyCertSign,
//! cRLSign`: it signs end-entity certificates only. Tracker certificates are
//! end-entity ECDSA P-256 certificates with `digitalSignature`, the
//! `serverAuth` extended key usage and the DNS/IP subject alternative names
//! clients dial. Nodes trust the CA certificate alone.

use crate::error::CertError;
use crate::files::{ensure_writable, write_private, write_public};
use crate::inspect::{check_is_ca, parse};
use crate::rustls_io::{read_first_cert, read_key};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use time::{Duration, OffsetDateTime};

/// Suggested CA validity: about ten years.
pub const DEFAULT_CA_VALIDITY_DAYS: u32 = 3650;
/// Suggested tracker certificate validity: one year.
pub const DEFAULT_TRACKER_VALIDITY_DAYS: u32 = 365;
/// Longest validity accepted, about one hundred years.
pub const MAX_VALIDITY_DAYS: u32 = 36_525;
/// Certificates start this long before "now" to tolerate clock skew.
const BACKDATE: Duration = Duration::hours(1);
/// X.520 upper bound for an organisation name.
const MAX_ORG_NAME_LEN: usize = 64;

/// The organisation CA: its certificate and signing key.
pub struct OrgCa {
    org_name: String,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    not_after: OffsetDateTime,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for OrgCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrgCa")
            .field("org_name", &self.org_name)
            .field("not_after", &self.not_after)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// A freshly issued certificate and its private key, both PEM.
#[derive(Clone)]
pub struct IssuedCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The PKCS#8 private key, PEM. Keep it secret.
    pub key_pem: String,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert").field("cert_pem", &self.cert_pem).field("key_pem", &"<redacted>").finish()
    }
}

impl IssuedCert {
    /// Writes the certificate and the key (mode 0600). Without `force`,
    /// writes nothing if either file exists.
    pub fn save(&self, cert_path: &Path, key_path: &Path, force: bool) -> Result<(), CertError> {
        ensure_writable(&[cert_path, key_path], force)?;
        write_private(key_path, self.key_pem.as_bytes(), force)?;
        write_public(cert_path, self.cert_pem.as_bytes(), force)
    }
}

impl OrgCa {
    /// Generates a new CA for `org_name`, valid from now for `validity_days`.
    pub fn generate(org_name: &str, validity_days: u32) -> Result<Self, CertError> {
        Self::generate_at(org_name, validity_days, OffsetDateTime::now_utc())
    }

    /// [`OrgCa::generate`] with an explicit current time.
    pub fn generate_at(org_name: &str, validity_days: u32, now: OffsetDateTime) -> Result<Self, CertError> {
        check_org_name(org_name)?;
        let (not_before, not_after) = validity(now, validity_days)?;

        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, format!("{org_name} Skein CA"));
        params.distinguished_name.push(DnType::OrganizationName, org_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial());
        params.not_before = not_before;
        params.not_after = not_after;

        let key = KeyPair::generate().map_err(|e| CertError::generate("CA key", e))?;
        let cert = params.self_signed(&key).map_err(|e| CertError::generate("CA certificate", e))?;
        Ok(Self {
            org_name: org_name.to_string(),
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            not_after,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA certificate and its key, checking that the certificate is
    /// a CA and that the key belongs to it.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, CertError> {
        let cert_der = read_first_cert("CA certificate", cert_path)?;
        let cert = parse(cert_path, &cert_der)?;
        check_is_ca(cert_path, &cert)?;

        let key_der = read_key("CA key", key_path)?;
        let key = KeyPair::try_from(&key_der)
            .map_err(|e| CertError::UnsupportedKey { path: key_path.to_path_buf(), reason: e.to_string() })?;
        if key.public_key_raw() != cert.public_key().subject_public_key.data.as_ref() {
            return Err(CertError::KeyMismatch { key: key_path.to_path_buf(), cert: cert_path.to_path_buf() });
        }

        let subject = cert.subject();
        let org_name = subject
            .iter_organization()
            .chain(subject.iter_common_name())
            .find_map(|attr| attr.as_str().ok())
            .map_or_else(|| subject.to_string(), str::to_string);
        let not_after = cert.validity().not_after.to_datetime();
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)
            .map_err(|e| CertError::MalformedCertificate { path: cert_path.to_path_buf(), reason: e.to_string() })?;
        let cert_pem = pem::encode_config(
            &pem::Pem::new("CERTIFICATE", cert_der.as_ref()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        );
        Ok(Self { org_name, cert_der, cert_pem, not_after, issuer })
    }

    /// Writes the CA certificate and key (mode 0600). Without `force`, writes
    /// nothing if either file exists.
    pub fn save(&self, cert_path: &Path, key_path: &Path, force: bool) -> Result<(), CertError> {
        ensure_writable(&[cert_path, key_path], force)?;
        let key_pem = zeroize::Zeroizing::new(self.issuer.key().serialize_pem());
        write_private(key_path, key_pem.as_bytes(), force)?;
        write_public(cert_path, self.cert_pem.as_bytes(), force)
    }

    /// The organisation name (the subject's O attribute).
    pub fn org_name(&self) -> &str {
        &self.org_name
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER (e.g. for a rustls `RootCertStore`).
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// When the CA certificate expires.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// Issues a tracker (TLS server) certificate for `sans`, valid from now
    /// for `validity_days` but never beyond the CA's own expiry.
    ///
    /// Each SAN that parses as an IP address becomes an IP SAN; anything else
    /// must be a valid DNS name (a leading `*.` wildcard is allowed).
    /// Duplicates are dropped. The subject CN is the first SAN.
    pub fn issue_tracker_cert(&self, sans: &[String], validity_days: u32) -> Result<IssuedCert, CertError> {
        self.issue_tracker_cert_at(sans, validity_days, OffsetDateTime::now_utc())
    }

    /// [`OrgCa::issue_tracker_cert`] with an explicit current time.
    pub fn issue_tracker_cert_at(
        &self,
        sans: &[String],
        validity_days: u32,
        now: OffsetDateTime,
    ) -> Result<IssuedCert, CertError> {
        let names = parse_sans(sans)?;
        let Some(first) = sans.first() else {
            return Err(CertError::InvalidParameter {
                what: "subject alternative names",
                reason: "a tracker certificate needs at least one DNS name or IP address".to_string(),
            });
        };
        let (not_before, not_after) = validity(now, validity_days)?;
        let not_after = not_after.min(self.not_after);
        if not_after <= not_before {
            return Err(CertError::InvalidParameter {
                what: "validity",
                reason: format!("the CA expired at {}; create a new CA", crate::inspect::rfc3339(self.not_after)),
            });
        }

        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, first.trim().to_ascii_lowercase());
        params.distinguished_name.push(DnType::OrganizationName, self.org_name.as_str());
        params.subject_alt_names = names;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        params.not_before = not_before;
        params.not_after = not_after;

        let key = KeyPair::generate().map_err(|e| CertError::generate("tracker key", e))?;
        let cert = params.signed_by(&key, &self.issuer).map_err(|e| CertError::generate("tracker certificate", e))?;
        Ok(IssuedCert { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

/// Parses SAN strings: IP address → IP SAN, otherwise a validated DNS name.
/// Keeps the first occurrence of duplicates.
fn parse_sans(sans: &[String]) -> Result<Vec<SanType>, CertError> {
    let mut out: Vec<SanType> = Vec::with_capacity(sans.len());
    for raw in sans {
        let san = parse_san(raw)?;
        if !out.contains(&san) {
            out.push(san);
        }
    }
    Ok(out)
}

fn parse_san(raw: &str) -> Result<SanType, CertError> {
    let s = raw.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let invalid = |reason| CertError::InvalidSan { name: raw.to_string(), reason };
    let dns = s.to_ascii_lowercase();
    check_dns_name(&dns).map_err(invalid)?;
    let ia5 = dns.try_into().map_err(|_| invalid("not an ASCII string"))?;
    Ok(SanType::DnsName(ia5))
}

/// Accepts `label(.label)*` with an optional leading `*.` wildcard, where a
/// label is 1–63 of `[a-z0-9-]` not starting or ending with `-`, the whole
/// name is at most 253 bytes, and the last label is not all digits (so a
/// mistyped IPv4 address is not taken for a host name).
fn check_dns_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name.len() > 253 {
        return Err("longer than 253 characters");
    }
    let rest = name.strip_prefix("*.").unwrap_or(name);
    let labels: Vec<&str> = rest.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Err("empty label (leading, trailing or double dot)");
        }
        if label.len() > 63 {
            return Err("label longer than 63 characters");
        }
        if !label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err("not an IP address, and DNS names may only contain letters, digits, '-' and '.'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("label starts or ends with '-'");
        }
    }
    if labels.last().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        return Err("not a valid IP address, and the last label of a DNS name cannot be numeric");
    }
    Ok(())
}

fn check_org_name(org_name: &str) -> Result<(), CertError> {
    let invalid = |reason: &str| CertError::InvalidParameter { what: "organisation name", reason: reason.to_string() };
    if org_name.trim().is_empty() {
        return Err(invalid("it is empty"));
    }
    if org_name.trim() != org_name {
        return Err(invalid("it has leading or trailing whitespace"));
    }
    if org_name.chars().count() > MAX_ORG_NAME_LEN {
        return Err(invalid("it is longer than 64 characters"));
    }
    if org_name.chars().any(char::is_control) {
        return Err(invalid("it contains control characters"));
    }
    Ok(())
}

fn validity(now: OffsetDateTime, validity_days: u32) -> Result<(OffsetDateTime, OffsetDateTime), CertError> {
    if validity_days == 0 || validity_days > MAX_VALIDITY_DAYS {
        return Err(CertError::InvalidParameter {
            what: "validity",
            reason: format!("{validity_days} days; use 1 to {MAX_VALIDITY_DAYS}"),
        });
    }
    let out_of_range =
        || CertError::InvalidParameter { what: "validity", reason: "the dates are out of range".to_string() };
    // Certificates carry whole seconds; dropping the fraction here keeps
    // `OrgCa::not_after` equal to what the certificate says.
    let now = now.replace_nanosecond(0).map_err(|_| out_of_range())?;
    let not_before = now.checked_sub(BACKDATE).ok_or_else(out_of_range)?;
    let not_after = now.checked_add(Duration::days(i64::from(validity_days))).ok_or_else(out_of_range)?;
    Ok((not_before, not_after))
}

/// A random positive 16-byte serial number.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    // Avoid a leading zero byte so the serial keeps its full length.
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_are_validated() {
        for ok in ["localhost", "tracker.acme.example", "*.acme.example", "a-b.c1", "xn--bcher-kva.example"] {
            assert!(parse_san(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a..b", ".a", "a.", "-a.b", "a_b", "a b", "1.2.3", "999.1.1.1", "ex*ample.com", "héllo"] {
            let err = parse_san(bad).unwrap_err();
            assert!(matches!(err, CertError::InvalidSan { .. }), "{bad}");
        }
        assert!(matches!(parse_san("198.18.0.1").unwrap(), SanType::IpAddress(_)));
        assert!(matches!(parse_san("::1").unwrap(), SanType::IpAddress(_)));
    }

    #[test]
    fn org_names_are_validated() {
        assert!(OrgCa::generate("", 1).is_err());
        assert!(OrgCa::generate(" x", 1).is_err());
        assert!(OrgCa::generate("a\nb", 1).is_err());
        assert!(OrgCa::generate(&"x".repeat(65), 1).is_err());
    }

    #[test]
    fn validity_bounds() {
        assert!(OrgCa::generate("Acme", 0).is_err());
        assert!(OrgCa::generate("Acme", MAX_VALIDITY_DAYS + 1).is_err());
    }

    #[test]
    fn tracker_cert_needs_a_san_and_duplicates_are_dropped() {
        let ca = OrgCa::generate("Acme", 30).unwrap();
        assert!(ca.issue_tracker_cert(&[], 1).is_err());
        let sans = parse_sans(&["localhost".into(), "LOCALHOST".into(), "127.0.0.1".into()]).unwrap();
        assert_eq!(sans.len(), 2);
    }

    #[test]
    fn tracker_cert_does_not_outlive_the_ca() {
        let ca = OrgCa::generate("Acme", 2).unwrap();
        let issued = ca.issue_tracker_cert(&["localhost".into()], 365).unwrap();
        let der = crate::rustls_io::certs_from_pem(Path::new("t.pem"), issued.cert_pem.as_bytes()).unwrap();
        let cert = parse(Path::new("t.pem"), &der[0]).unwrap();
        assert_eq!(cert.validity().not_after.to_datetime(), ca.not_after());
    }

    #[test]
    fn debug_does_not_print_keys() {
        let ca = OrgCa::generate("Acme", 2).unwrap();
        let issued = ca.issue_tracker_cert(&["localhost".into()], 1).unwrap();
        assert!(!format!("{ca:?}").contains("PRIVATE"));
        assert!(!format!("{issued:?}").contains("PRIVATE"));
    }
}
