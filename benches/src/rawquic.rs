//! The baselines: what raw quinn does on loopback in the same run, with
//! default transport settings and a self-signed certificate.
//!
//! - [`echo_rtt`]: 200-byte echoes on one long-lived bidirectional stream;
//! - [`framed_rate`]: length-prefixed 200-byte messages on one stream, each
//!   acknowledged by the receiver, pipelined;
//! - [`bulk`]: one unidirectional stream of N bytes, discarded by the
//!   receiver (the baseline) or written to a file (what disk writing costs);
//! - [`connect_rate`]: new connections per second, each a full TLS
//!   handshake (no session tickets) with one 200-byte request and answer,
//!   the cost a reconnecting client's session resume must beat.

use crate::report::Samples;
use anyhow::{Context, Result};
use quinn::{ClientConfig, Endpoint, ServerConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// A connected client and server on loopback.
#[derive(Debug)]
pub struct Pair {
    /// The client's side.
    pub client: quinn::Connection,
    /// The server's side.
    pub server: quinn::Connection,
    _endpoints: (Endpoint, Endpoint),
}

/// A self-signed server and a client trusting it; with `resume` false the
/// client keeps no session tickets, so every connection is a full handshake.
fn configs_with(resume: bool) -> Result<(ServerConfig, ClientConfig)> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).context("self-signed certificate")?;
    let der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)?;
    let server = ServerConfig::with_crypto(Arc::new(quinn::crypto::rustls::QuicServerConfig::try_from(server_tls)?));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der)?;
    let mut client_tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    if !resume {
        client_tls.resumption = rustls::client::Resumption::disabled();
    }
    let client = ClientConfig::new(Arc::new(quinn::crypto::rustls::QuicClientConfig::try_from(client_tls)?));
    Ok((server, client))
}

fn configs() -> Result<(ServerConfig, ClientConfig)> {
    configs_with(true)
}

impl Pair {
    /// Connects a fresh client and server endpoint on loopback.
    pub async fn connect() -> Result<Pair> {
        let (server_cfg, client_cfg) = configs()?;
        let server_ep = Endpoint::server(server_cfg, SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let mut client_ep = Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        client_ep.set_default_client_config(client_cfg);
        let addr = server_ep.local_addr()?;
        let (client, server) =
            tokio::join!(async { client_ep.connect(addr, "localhost")?.await.map_err(anyhow::Error::from) }, async {
                let incoming = server_ep.accept().await.context("no incoming connection")?;
                incoming.await.map_err(anyhow::Error::from)
            });
        Ok(Pair { client: client?, server: server?, _endpoints: (client_ep, server_ep) })
    }
}

/// Round trips of a `size`-byte message echoed on one bidirectional stream.
pub async fn echo_rtt(count: usize, size: usize) -> Result<Samples> {
    let pair = Pair::connect().await?;
    let server = pair.server.clone();
    tokio::spawn(async move {
        let (mut send, mut recv) = server.accept_bi().await?;
        let mut buf = vec![0u8; size];
        while recv.read_exact(&mut buf).await.is_ok() {
            send.write_all(&buf).await?;
        }
        anyhow::Ok(())
    });
    let (mut send, mut recv) = pair.client.open_bi().await?;
    let msg = vec![0x5au8; size];
    let mut back = vec![0u8; size];
    let mut samples = Samples::default();
    for i in 0..count + count / 10 {
        let t0 = Instant::now();
        send.write_all(&msg).await?;
        recv.read_exact(&mut back).await?;
        if i >= count / 10 {
            samples.push(t0.elapsed());
        }
    }
    Ok(samples)
}

/// Messages per second: `count` length-prefixed `size`-byte messages on one
/// stream, each acknowledged with one byte; the stream's flow control bounds
/// how far the sender runs ahead of the acks.
pub async fn framed_rate(count: usize, size: usize) -> Result<f64> {
    let pair = Pair::connect().await?;
    let server = pair.server.clone();
    tokio::spawn(async move {
        let (mut send, mut recv) = server.accept_bi().await?;
        let mut buf = vec![0u8; size];
        let mut len = [0u8; 4];
        while recv.read_exact(&mut len).await.is_ok() {
            let n = u32::from_be_bytes(len) as usize;
            buf.resize(n, 0);
            recv.read_exact(&mut buf).await?;
            send.write_all(&[1]).await?;
        }
        anyhow::Ok(())
    });
    let (mut send, mut recv) = pair.client.open_bi().await?;
    let mut frame = (size as u32).to_be_bytes().to_vec();
    frame.extend(std::iter::repeat_n(0x5au8, size));
    let t0 = Instant::now();
    let acks = tokio::spawn(async move {
        let mut ack = [0u8; 1];
        for _ in 0..count {
            recv.read_exact(&mut ack).await?;
        }
        anyhow::Ok(Instant::now())
    });
    for _ in 0..count {
        send.write_all(&frame).await?;
    }
    let done = acks.await??;
    Ok(count as f64 / (done - t0).as_secs_f64())
}

/// Bytes per second of one unidirectional stream of `bytes`, discarded by
/// the receiver, or written to `sink` and synced to disk, as a received
/// file is.
pub async fn bulk(bytes: u64, sink: Option<&Path>) -> Result<f64> {
    let pair = Pair::connect().await?;
    let server = pair.server.clone();
    let mut file = match sink {
        Some(p) => Some(tokio::fs::File::create(p).await.with_context(|| format!("creating {}", p.display()))?),
        None => None,
    };
    let reader = tokio::spawn(async move {
        let mut recv = server.accept_uni().await?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        while let Some(n) = recv.read(&mut buf).await? {
            if let Some(f) = file.as_mut() {
                f.write_all(&buf[..n]).await?;
            }
            total += n as u64;
        }
        if let Some(f) = file.as_mut() {
            f.sync_all().await?;
        }
        anyhow::Ok((total, Instant::now()))
    });
    let mut send = pair.client.open_uni().await?;
    let chunk = vec![0xa5u8; 1 << 20];
    let t0 = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        send.write_all(&chunk[..n]).await?;
        left -= n as u64;
    }
    send.finish()?;
    let (total, done) = tokio::time::timeout(Duration::from_secs(600), reader).await???;
    if let Some(p) = sink {
        let _ = std::fs::remove_file(p);
    }
    anyhow::ensure!(total == bytes, "the baseline received {total} of {bytes} bytes");
    Ok(bytes as f64 / (done - t0).as_secs_f64())
}

/// New connections per second for `period`: `workers` loops spread over
/// `endpoints` client endpoints, each connecting, sending `size` bytes on a
/// bidirectional stream, reading the echo and closing.
pub async fn connect_rate(period: Duration, workers: usize, endpoints: usize, size: usize) -> Result<f64> {
    // Full handshakes: the cost a session resume must beat.
    let (server_cfg, client_cfg) = configs_with(false)?;
    let server_ep = Endpoint::server(server_cfg, SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = server_ep.local_addr()?;
    let accept = server_ep.clone();
    let server = tokio::spawn(async move {
        while let Some(incoming) = accept.accept().await {
            tokio::spawn(async move {
                let conn = incoming.await?;
                let (mut send, mut recv) = conn.accept_bi().await?;
                let mut buf = vec![0u8; size];
                recv.read_exact(&mut buf).await?;
                send.write_all(&buf).await?;
                send.finish()?;
                // The client closes once it has the answer.
                conn.closed().await;
                anyhow::Ok(())
            });
        }
    });
    let mut eps = Vec::new();
    for _ in 0..endpoints.max(1) {
        let mut ep = Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        ep.set_default_client_config(client_cfg.clone());
        eps.push(ep);
    }
    let rate = crate::load::rate(
        period,
        workers,
        |k, _: &mut Option<()>| {
            let ep = eps[k % eps.len()].clone();
            async move {
                let conn = ep.connect(addr, "localhost")?.await?;
                let (mut send, mut recv) = conn.open_bi().await?;
                send.write_all(&vec![0x5au8; size]).await?;
                let mut back = vec![0u8; size];
                recv.read_exact(&mut back).await?;
                conn.close(0u32.into(), b"bye");
                Ok(())
            }
        },
        vec![Some(()); workers],
    )
    .await;
    server.abort();
    rate
}
