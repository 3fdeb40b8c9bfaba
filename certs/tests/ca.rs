//! The org CA and tracker certificates through the public API: files,
//! permissions, overwrite protection, SANs, chain verification and the
//! one-line errors that name the file.

#![allow(clippy::unwrap_used)]

use skein_certs::{CertError, OrgCa, show, verify_chain};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

struct Dir {
    _tmp: tempfile::TempDir,
    path: PathBuf,
}

impl Dir {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().to_path_buf();
        Self { _tmp: tmp, path }
    }
    fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A CA saved as DIR/ca.pem + DIR/ca.key.
fn saved_ca(dir: &Dir, org: &str) -> OrgCa {
    let ca = OrgCa::generate(org, 30).unwrap();
    ca.save(&dir.join("ca.pem"), &dir.join("ca.key"), false).unwrap();
    ca
}

fn issue(ca: &OrgCa, dir: &Dir, sans: &[&str]) -> PathBuf {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let issued = ca.issue_tracker_cert(&sans, 7).unwrap();
    let cert = dir.join("tracker.pem");
    issued.save(&cert, &dir.join("tracker.key"), true).unwrap();
    cert
}

#[test]
fn ca_create_save_load_round_trip() {
    let dir = Dir::new();
    let ca = saved_ca(&dir, "Acme Corp");
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
    assert!(fs::read_to_string(dir.join("ca.key")).unwrap().contains("PRIVATE KEY"));

    let loaded = OrgCa::load(&dir.join("ca.pem"), &dir.join("ca.key")).unwrap();
    assert_eq!(loaded.org_name(), "Acme Corp");
    assert_eq!(loaded.cert_pem(), ca.cert_pem());
    assert_eq!(loaded.cert_der(), ca.cert_der());
    assert_eq!(loaded.not_after(), ca.not_after());

    // The loaded CA issues certificates that chain to the saved ca.pem.
    let tracker = issue(&loaded, &dir, &["tracker.acme.example"]);
    assert_eq!(mode(&dir.join("tracker.key")), 0o600);
    let info = verify_chain(&tracker, &dir.join("ca.pem"), OffsetDateTime::now_utc()).unwrap();
    assert!(info.issuer.contains("Acme Corp"));
}

#[test]
fn ca_certificate_is_a_ca_with_certsign_and_crlsign() {
    let ca = OrgCa::generate("Acme", 30).unwrap();
    let (_, cert) = X509Certificate::from_der(ca.cert_der()).unwrap();
    assert!(cert.is_ca());
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    let info = &show_pem(ca.cert_pem())[0];
    assert!(info.is_ca);
    assert_eq!(info.subject, info.issuer);
    assert_eq!(info.sha256_fingerprint.len(), 64);
}

fn show_pem(pem: &str) -> Vec<skein_certs::CertInfo> {
    let dir = Dir::new();
    let path = dir.join("x.pem");
    fs::write(&path, pem).unwrap();
    show(&path).unwrap()
}

#[test]
fn save_refuses_to_overwrite_without_force() {
    let dir = Dir::new();
    let first = saved_ca(&dir, "Acme");
    let second = OrgCa::generate("Acme", 30).unwrap();
    let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));

    let err = second.save(&cert, &key, false).unwrap_err();
    assert!(matches!(err, CertError::AlreadyExists { .. }));
    assert!(err.to_string().contains(&cert.display().to_string()), "{err}");
    assert_eq!(fs::read_to_string(&cert).unwrap(), first.cert_pem());

    // Only the key exists: still refused, and the certificate is not written.
    fs::remove_file(&cert).unwrap();
    let err = second.save(&cert, &key, false).unwrap_err();
    assert!(err.to_string().contains(&key.display().to_string()), "{err}");
    assert!(!cert.exists());

    second.save(&cert, &key, true).unwrap();
    assert_eq!(fs::read_to_string(&cert).unwrap(), second.cert_pem());
    assert_eq!(mode(&key), 0o600);
    OrgCa::load(&cert, &key).unwrap();
}

#[test]
fn tracker_cert_has_the_sans_and_is_a_server_end_entity() {
    let dir = Dir::new();
    let ca = saved_ca(&dir, "Acme");
    let tracker = issue(&ca, &dir, &["tracker.acme.example", "198.18.1.3", "fd00::7", "localhost", "127.0.0.1"]);
    let infos = show(&tracker).unwrap();
    assert_eq!(infos.len(), 1);
    let info = &infos[0];
    for san in ["tracker.acme.example", "198.18.1.3", "fd00::7", "localhost", "127.0.0.1"] {
        assert!(info.sans.iter().any(|s| s == san), "{san} missing from {:?}", info.sans);
    }
    assert!(!info.is_ca);

    let der = skein_certs::load_certs(&tracker).unwrap();
    let (_, cert) = X509Certificate::from_der(&der[0]).unwrap();
    assert!(cert.extended_key_usage().unwrap().unwrap().value.server_auth);
    assert!(cert.key_usage().unwrap().unwrap().value.digital_signature());
    assert!(!cert.is_ca());
}

#[test]
fn garbage_san_is_rejected() {
    let ca = OrgCa::generate("Acme", 30).unwrap();
    let err = ca.issue_tracker_cert(&["not a host!".to_string()], 7).unwrap_err();
    assert!(matches!(err, CertError::InvalidSan { .. }));
    assert!(err.to_string().contains("not a host!"));
}

#[test]
fn verify_chain_rejects_a_cert_from_another_ca() {
    let dir = Dir::new();
    let _ca = saved_ca(&dir, "Acme");
    let other_dir = Dir::new();
    let other = saved_ca(&other_dir, "Acme");
    // Same organisation name, so the issuer names match: the signature
    // check is what fails.
    let tracker = issue(&other, &other_dir, &["localhost"]);
    let ca_pem = dir.join("ca.pem");
    let err = verify_chain(&tracker, &ca_pem, OffsetDateTime::now_utc()).unwrap_err();
    assert_eq!(err.to_string(), format!("{} was not signed by the CA in {}", tracker.display(), ca_pem.display()));

    let evil_dir = Dir::new();
    let evil = saved_ca(&evil_dir, "Evil");
    let tracker = issue(&evil, &evil_dir, &["localhost"]);
    let err = verify_chain(&tracker, &ca_pem, OffsetDateTime::now_utc()).unwrap_err();
    assert!(matches!(err, CertError::NotSignedByCa { .. }));
}

#[test]
fn verify_chain_checks_the_validity_window() {
    let dir = Dir::new();
    let ca = saved_ca(&dir, "Acme");
    let now = OffsetDateTime::now_utc();
    let issued = ca.issue_tracker_cert_at(&["localhost".to_string()], 10, now - Duration::days(20)).unwrap();
    let tracker = dir.join("old.pem");
    fs::write(&tracker, &issued.cert_pem).unwrap();

    let err = verify_chain(&tracker, &dir.join("ca.pem"), now).unwrap_err();
    assert!(matches!(err, CertError::Expired { .. }), "{err}");
    assert!(err.to_string().starts_with(&format!("{} expired at ", tracker.display())));

    // Fresh certificate checked at a time before it was issued.
    let fresh = issue(&ca, &dir, &["localhost"]);
    let err = verify_chain(&fresh, &dir.join("ca.pem"), now - Duration::days(1)).unwrap_err();
    assert!(matches!(err, CertError::NotYetValid { .. }), "{err}");
}

#[test]
fn verify_chain_requires_the_ca_to_be_a_ca() {
    let dir = Dir::new();
    let ca = saved_ca(&dir, "Acme");
    let tracker = issue(&ca, &dir, &["localhost"]);
    let err = verify_chain(&tracker, &tracker, OffsetDateTime::now_utc()).unwrap_err();
    assert_eq!(err.to_string(), format!("{} is not a CA certificate", tracker.display()));
    let err = OrgCa::load(&tracker, &dir.join("tracker.key")).unwrap_err();
    assert!(matches!(err, CertError::NotACa { .. }));
}

#[test]
fn missing_files_are_named() {
    let dir = Dir::new();
    let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let err = OrgCa::load(&cert, &key).unwrap_err();
    assert_eq!(err.to_string(), format!("cannot read CA certificate {}: No such file or directory", cert.display()));

    saved_ca(&dir, "Acme");
    fs::remove_file(&key).unwrap();
    let err = OrgCa::load(&cert, &key).unwrap_err();
    assert_eq!(err.to_string(), format!("cannot read CA key {}: No such file or directory", key.display()));

    let err = verify_chain(&dir.join("nope.pem"), &cert, OffsetDateTime::now_utc()).unwrap_err();
    assert!(err.to_string().contains(&dir.join("nope.pem").display().to_string()));
    let err = show(&dir.join("nope.pem")).unwrap_err();
    assert!(err.to_string().contains("nope.pem"));
}

#[test]
fn corrupt_files_are_named() {
    let dir = Dir::new();
    saved_ca(&dir, "Acme");
    let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));

    fs::write(&key, "garbage\n").unwrap();
    let err = OrgCa::load(&cert, &key).unwrap_err();
    assert_eq!(err.to_string(), format!("{} is not a PEM private key", key.display()));

    fs::write(&cert, "garbage\n").unwrap();
    let err = OrgCa::load(&cert, &key).unwrap_err();
    assert_eq!(err.to_string(), format!("{} is not a PEM certificate", cert.display()));

    // Valid PEM armour around bytes that are not a certificate.
    fs::write(&cert, "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n").unwrap();
    let err = OrgCa::load(&cert, &key).unwrap_err();
    assert!(matches!(err, CertError::MalformedCertificate { .. }), "{err}");
    assert!(err.to_string().starts_with(&cert.display().to_string()));
    let err = show(&cert).unwrap_err();
    assert!(err.to_string().starts_with(&cert.display().to_string()));
}

#[test]
fn mismatched_key_is_detected() {
    let dir = Dir::new();
    saved_ca(&dir, "Acme");
    let other = Dir::new();
    saved_ca(&other, "Acme");
    let cert = dir.join("ca.pem");
    let key = other.join("ca.key");
    let err = OrgCa::load(&cert, &key).unwrap_err();
    assert_eq!(err.to_string(), format!("key {} does not match certificate {}", key.display(), cert.display()));
}

#[test]
fn show_lists_every_certificate_in_a_bundle() {
    let dir = Dir::new();
    let ca = saved_ca(&dir, "Acme");
    let tracker = issue(&ca, &dir, &["localhost"]);
    let bundle = dir.join("chain.pem");
    let text = fs::read_to_string(&tracker).unwrap() + ca.cert_pem();
    fs::write(&bundle, text).unwrap();
    let infos = show(&bundle).unwrap();
    assert_eq!(infos.len(), 2);
    assert!(!infos[0].is_ca);
    assert!(infos[1].is_ca);
    assert_eq!(infos[0].issuer, infos[1].subject);
    assert_ne!(infos[0].serial, infos[1].serial);
}
