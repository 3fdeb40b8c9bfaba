//! A real TLS handshake, in memory, between a rustls server using an issued
//! tracker certificate and a client that trusts only the org CA.

#![allow(clippy::unwrap_used)]

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, RootCertStore, ServerConfig, ServerConnection};
use skein_certs::{OrgCa, load_certs, load_private_key};
use std::sync::Arc;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Issues a tracker certificate, writes it to disk and builds a server
/// config from the files, as the tracker does.
fn server_config(ca: &OrgCa, sans: &[&str]) -> Arc<ServerConfig> {
    let dir = tempfile::tempdir().unwrap();
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let issued = ca.issue_tracker_cert(&sans, 7).unwrap();
    let (cert, key) = (dir.path().join("tracker.pem"), dir.path().join("tracker.key"));
    issued.save(&cert, &key, false).unwrap();
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(load_certs(&cert).unwrap(), load_private_key(&key).unwrap())
        .unwrap();
    Arc::new(config)
}

fn client_config(ca: &OrgCa) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert_der().clone()).unwrap();
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Moves pending TLS records from `from` to `to` and lets `to` process them.
fn transfer(from: &mut Connection, to: &mut Connection) -> Result<(), rustls::Error> {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).unwrap();
    }
    let mut rd = &buf[..];
    while !rd.is_empty() {
        to.read_tls(&mut rd).unwrap();
        to.process_new_packets()?;
    }
    Ok(())
}

/// Runs the handshake to completion; returns the first error either side hits.
fn handshake(server: Arc<ServerConfig>, client: Arc<ClientConfig>, name: &str) -> Result<(), rustls::Error> {
    let name = ServerName::try_from(name.to_string()).unwrap();
    let mut client = Connection::Client(ClientConnection::new(client, name).unwrap());
    let mut server = Connection::Server(ServerConnection::new(server).unwrap());
    for _ in 0..10 {
        transfer(&mut client, &mut server)?;
        transfer(&mut server, &mut client)?;
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
    }
    panic!("handshake did not finish");
}

#[test]
fn handshake_succeeds_with_the_org_ca() {
    let ca = OrgCa::generate("Acme", 30).unwrap();
    let server = server_config(&ca, &["tracker.acme.example", "localhost", "127.0.0.1"]);
    handshake(server.clone(), client_config(&ca), "localhost").unwrap();
    handshake(server.clone(), client_config(&ca), "tracker.acme.example").unwrap();
    handshake(server, client_config(&ca), "127.0.0.1").unwrap();
}

#[test]
fn handshake_succeeds_with_a_ca_loaded_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("ca.pem"), dir.path().join("ca.key"));
    let ca = OrgCa::generate("Acme Corp", 30).unwrap();
    ca.save(&cert, &key, false).unwrap();
    let loaded = OrgCa::load(&cert, &key).unwrap();
    // Issued by the reloaded CA, trusted via the original CA certificate.
    handshake(server_config(&loaded, &["localhost"]), client_config(&ca), "localhost").unwrap();
}

#[test]
fn handshake_fails_with_another_ca() {
    let ca = OrgCa::generate("Acme", 30).unwrap();
    let other = OrgCa::generate("Acme", 30).unwrap();
    let err = handshake(server_config(&ca, &["localhost"]), client_config(&other), "localhost").unwrap_err();
    assert!(matches!(err, rustls::Error::InvalidCertificate(_)), "unexpected error: {err:?}");
}

#[test]
fn handshake_fails_for_a_name_not_in_the_sans() {
    let ca = OrgCa::generate("Acme", 30).unwrap();
    let err =
        handshake(server_config(&ca, &["tracker.acme.example"]), client_config(&ca), "other.acme.example").unwrap_err();
    assert!(matches!(err, rustls::Error::InvalidCertificate(_)), "unexpected error: {err:?}");
}
