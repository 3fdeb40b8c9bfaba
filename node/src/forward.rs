//! Bots: every message this user receives, forwarded to a company system
//! (`skein daemon --forward-to URL`).
//!
//! The tracker never sees peer messages, so outgoing events come from a
//! bot: an organisation user whose headless node is a member of the groups
//! it serves. Each message it receives (not its own) is written to a queue
//! on disk (`PROFILE/forward-queue`, one file per message, renamed into
//! place whole) and then POSTed as JSON to the URL, signed:
//!
//! ```text
//! X-Skein-Timestamp: 1764590400                     (Unix seconds)
//! X-Skein-Signature: v1=HEX(HMAC-SHA256(secret, "1764590400." + body))
//! ```
//!
//! The receiver recomputes the signature and refuses a stale timestamp. A
//! 2xx answer takes the message off the queue; anything else, or no answer
//! within [`ANSWER_WITHIN`], is tried again after 1 s, 2 s, 4 s … up to a
//! minute, and the queue outlives a restart, so nothing is lost. A 2xx
//! answer whose body is JSON with a `text` is sent back into the
//! conversation as the bot. An `https://` URL is verified against the
//! system's certificate authorities and those given with `--forward-ca`.

use crate::handle::NodeHandle as Node;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{Value, json};
use sha2::Sha256;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Longest wait for the system's answer to one post.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// Longest wait between tries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The header with the signature.
pub const SIGNATURE_HEADER: &str = "x-skein-signature";
/// The header with the time the signature covers.
pub const TIMESTAMP_HEADER: &str = "x-skein-timestamp";

/// Where to forward, and the secret posts are signed with.
#[derive(Clone)]
pub struct Forward {
    /// An `https://` or `http://` URL.
    pub url: hyper::Uri,
    /// The shared secret.
    pub secret: Vec<u8>,
    /// Certificate authorities trusted for an `https://` URL: the system's,
    /// and those in these PEM files (a company's own CA).
    pub extra_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
}

impl std::fmt::Debug for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forward").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Forward {
    /// Checks `url` (an `https://` or `http://` URL with a host) and
    /// `secret` (at least 16 bytes), saying what is wrong.
    pub fn new(url: &str, secret: Vec<u8>) -> Result<Forward, String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("--forward-to {url:?} is not a URL: {e}"))?;
        if !matches!(uri.scheme_str(), Some("https" | "http")) || uri.host().is_none() {
            return Err(format!("--forward-to {url:?}: give an https:// (or http://) URL with a host"));
        }
        if secret.len() < 16 {
            return Err("the forwarding secret must be at least 16 bytes; make one with: openssl rand -hex 32".into());
        }
        Ok(Forward { url: uri, secret, extra_roots: Vec::new() })
    }

    /// Also trusts the certificate authorities in the PEM file `path`.
    pub fn trust(mut self, path: &Path) -> Result<Forward, String> {
        use rustls_pki_types::pem::PemObject;
        let what = |e: &dyn std::fmt::Display| format!("--forward-ca {}: {e}", path.display());
        let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| what(&e))?
            .collect::<Result<_, _>>()
            .map_err(|e| what(&e))?;
        if certs.is_empty() {
            return Err(what(&"holds no PEM certificate"));
        }
        self.extra_roots.extend(certs);
        Ok(self)
    }

    /// The HTTP client: HTTPS trusting the system's authorities and the
    /// extra ones, or plain HTTP.
    fn client(&self) -> Result<Client, String> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        roots.add_parsable_certificates(self.extra_roots.iter().cloned());
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector =
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
        Ok(hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector))
    }
}

/// The signature of `body` sent at `timestamp` (Unix seconds): `v1=` and
/// the HMAC-SHA256 of `"{timestamp}.{body}"` under `secret`, in hex.
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The queue's folder in a profile.
pub fn queue_dir(profile_dir: &Path) -> PathBuf {
    profile_dir.join("forward-queue")
}

/// Forwards `node`'s received messages until `stop`: queues each, and
/// posts the queue in order.
pub async fn run(node: Node, forward: Forward, dir: PathBuf, stop: CancellationToken) {
    if let Err(e) = tokio::fs::create_dir_all(&dir).await {
        tracing::error!(dir = %dir.display(), error = %e, "cannot make the forwarding queue; nothing is forwarded");
        return;
    }
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let mut events = node.events();
    let me = node.user().to_owned();
    let queue = {
        let (dir, wake, stop) = (dir.clone(), wake.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let ev = tokio::select! {
                    () = stop.cancelled() => return,
                    ev = events.recv() => match ev { Some(ev) => ev, None => return },
                };
                if ev["type"] != "message" || ev["from"] == me.as_str() {
                    continue;
                }
                match enqueue(&dir, &ev).await {
                    Ok(()) => wake.notify_one(),
                    Err(e) => tracing::error!(error = %e, "cannot queue a message for forwarding"),
                }
            }
        })
    };
    let client = match forward.client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot set up HTTPS for forwarding; nothing is forwarded");
            queue.abort();
            return;
        }
    };
    let mut backoff = Duration::from_secs(1);
    while !stop.is_cancelled() {
        let Some(next) = oldest(&dir).await else {
            tokio::select! {
                () = stop.cancelled() => break,
                () = wake.notified() => continue,
                // A queue file written while this looked counts too.
                () = tokio::time::sleep(Duration::from_secs(5)) => continue,
            }
        };
        let body = match tokio::fs::read(&next).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(file = %next.display(), error = %e, "cannot read a queued message; skipping it");
                let _ = tokio::fs::remove_file(&next).await;
                continue;
            }
        };
        match post(&client, &forward, body.clone()).await {
            Ok(answer) => {
                backoff = Duration::from_secs(1);
                if let Err(e) = tokio::fs::remove_file(&next).await {
                    tracing::warn!(error = %e, "cannot take a forwarded message off the queue");
                }
                reply(&node, &body, &answer).await;
            }
            Err(why) => {
                tracing::warn!(url = %forward.url, %why, retry_in = ?backoff, "forwarding failed; will try again");
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    queue.abort();
}

/// Writes `ev` to the queue, whole: to a temporary file, synced, then
/// renamed to its place in order.
async fn enqueue(dir: &Path, ev: &Value) -> std::io::Result<()> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let id = ev["id"].as_str().unwrap_or("unknown");
    let name = format!("{nanos:024}-{id}.json");
    let tmp = dir.join(format!(".{name}.tmp"));
    let body = json!({"type": "message", "message": ev}).to_string();
    let mut f = tokio::fs::File::create(&tmp).await?;
    tokio::io::AsyncWriteExt::write_all(&mut f, body.as_bytes()).await?;
    f.sync_all().await?;
    tokio::fs::rename(&tmp, dir.join(name)).await
}

/// The oldest queued message's file.
async fn oldest(dir: &Path) -> Option<PathBuf> {
    let mut entries = tokio::fs::read_dir(dir).await.ok()?;
    let mut best: Option<PathBuf> = None;
    while let Ok(Some(e)) = entries.next_entry().await {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        if best.as_ref().is_none_or(|b| e.path() < *b) {
            best = Some(e.path());
        }
    }
    best
}

type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// Posts `body`, signed; the answer's body on a 2xx status.
async fn post(client: &Client, forward: &Forward, body: Vec<u8>) -> Result<Bytes, String> {
    let timestamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let signature = sign(&forward.secret, timestamp, &body);
    let req = hyper::Request::post(forward.url.clone())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, concat!("skein/", env!("CARGO_PKG_VERSION")))
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, signature)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let answer = tokio::time::timeout(ANSWER_WITHIN, async {
        let resp = client.request(req).await.map_err(|e| format!("no answer: {e}"))?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(|e| format!("the answer broke off: {e}"))?.to_bytes();
        if !status.is_success() {
            return Err(format!("answered {status}"));
        }
        Ok(bytes)
    })
    .await;
    answer.unwrap_or_else(|_| Err(format!("no answer within {ANSWER_WITHIN:?}")))
}

/// Sends the answer's `text`, if it has one, back into the conversation
/// the forwarded message came from.
async fn reply(node: &Node, forwarded: &[u8], answer: &[u8]) {
    let Some(text) = serde_json::from_slice::<Value>(answer).ok().and_then(|v| v["text"].as_str().map(str::to_owned))
    else {
        return;
    };
    let Ok(sent) = serde_json::from_slice::<Value>(forwarded) else { return };
    let Some(conversation) = sent["message"]["conversation"].as_str().filter(|c| !c.starts_with("app:")) else {
        return;
    };
    if let Err(e) = node.send(conversation, &text).await {
        tracing::warn!(%conversation, error = %e, "cannot send the forwarding service's reply");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_dot_body() {
        // Computed apart, as a receiver would: python3 -c "import hmac, hashlib;
        // print(hmac.new(b'0123456789abcdef', b'1700000000.{}', hashlib.sha256).hexdigest())"
        let s = sign(b"0123456789abcdef", 1_700_000_000, b"{}");
        assert_eq!(s, "v1=e4f8e2ecae2295b2ddb2f0b5584c8275e226c0ebe9b3b819e70156bb67122e3e");
        assert_ne!(s, sign(b"0123456789abcdef", 1_700_000_001, b"{}"), "the time is covered");
        assert_ne!(s, sign(b"0123456789abcdeF", 1_700_000_000, b"{}"), "the key is covered");
    }

    #[test]
    fn only_web_urls_and_real_secrets_are_taken() {
        assert!(Forward::new("http://127.0.0.1:9000/skein", vec![1; 32]).is_ok());
        assert!(Forward::new("https://bots.example/x", vec![1; 32]).is_ok());
        assert!(Forward::new("ftp://bots.example/x", vec![1; 32]).is_err_and(|e| e.contains("https://")));
        assert!(Forward::new("not a url", vec![1; 32]).is_err());
        assert!(Forward::new("http://127.0.0.1:9000/", vec![1; 8]).is_err_and(|e| e.contains("16 bytes")));
    }
}
