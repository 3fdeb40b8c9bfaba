//! Garbage and hostile clients on the control port: random UDP datagrams,
//! QUIC connections that send junk frames, oversized frames, or no hello at
//! all. Each is turned away alone (silent ones once they time out);
//! logged-in clients never notice.

use rand::RngCore;
use skein_node::profile::Profile;
use skein_node::session;
use skein_proto::control::{ClientFrame, Hello, Request, Response, ServerFrame};
use skein_proto::io::{read_frame, write_frame};
use skein_proto::limits::MAX_CONTROL_FRAME;
use skein_proto::{CONTROL_ALPN, ErrorCode};
use skein_tests::{TestTracker, init};
use std::sync::Arc;
use std::time::Duration;

const PW: &str = "correct horse battery";

async fn raw_connection(t: &TestTracker) -> quinn::Connection {
    let mut roots = rustls::RootCertStore::empty();
    for c in skein_certs::load_certs(&t.ca_path()).expect("ca") {
        roots.add(c).expect("root");
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![CONTROL_ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic tls");
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    ep.connect(t.socket_addr(), "localhost").expect("connect").await.expect("handshake")
}

async fn ping(c: &skein_node::tracker_client::TrackerClient, nonce: u64) {
    match c.request(Request::Ping { nonce }).await {
        Ok(Response::Pong { nonce: n, .. }) => assert_eq!(n, nonce),
        other => panic!("logged-in client disturbed: {other:?}"),
    }
}

#[tokio::test]
async fn garbage_never_disturbs_logged_in_clients() {
    init();
    let t = TestTracker::start().await;
    t.add_user("alice", PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let alice =
        session::login(&Profile::new(dir.path()), &t.address(), &t.ca_path(), "alice", PW.into()).await.expect("login");

    // 1. Random datagrams of every size straight at the UDP port.
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut rng = rand::thread_rng();
    for i in 0..2000usize {
        let mut buf = vec![0u8; 1 + (i * 37) % 1400];
        rng.fill_bytes(&mut buf);
        if i % 3 == 0 {
            buf[0] = 0xc0 | (buf[0] & 0x3f); // looks like a QUIC long header
        }
        let _ = sock.send_to(&buf, t.socket_addr()).await;
    }
    ping(&alice.client, 1).await;

    // 2. A QUIC connection whose first frame is junk: it is rejected, alone.
    let conn = raw_connection(&t).await;
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    send.write_all(&[0, 0, 0, 5, 0xff, 0xfe, 0xfd, 0xfc, 0xfb]).await.expect("write");
    let reply: Option<ServerFrame> = read_frame(&mut recv, MAX_CONTROL_FRAME).await.expect("reply");
    assert!(matches!(reply, Some(ServerFrame::Reject(ref b)) if b.code == ErrorCode::Malformed), "{reply:?}");
    ping(&alice.client, 2).await;

    // 3. A valid hello, then an oversized frame header: the connection ends.
    let conn = raw_connection(&t).await;
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    let hello = ClientFrame::Hello(Hello {
        min_version: skein_proto::MIN_PROTOCOL_VERSION,
        max_version: skein_proto::PROTOCOL_VERSION,
        agent: "hostile".into(),
    });
    write_frame(&mut send, &hello, MAX_CONTROL_FRAME).await.expect("hello");
    let welcome: Option<ServerFrame> = read_frame(&mut recv, MAX_CONTROL_FRAME).await.expect("welcome");
    assert!(matches!(welcome, Some(ServerFrame::Welcome(_))));
    send.write_all(&u32::MAX.to_be_bytes()).await.expect("write header");
    let closed = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
    assert!(closed.is_ok(), "the tracker closes a connection announcing a 4 GiB frame");
    ping(&alice.client, 3).await;

    // 4. A request before login is refused with a clear code, the connection survives.
    let conn = raw_connection(&t).await;
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    write_frame(&mut send, &hello, MAX_CONTROL_FRAME).await.expect("hello");
    let _: Option<ServerFrame> = read_frame(&mut recv, MAX_CONTROL_FRAME).await.expect("welcome");
    write_frame(&mut send, &ClientFrame::Request { id: 9, req: Request::Departments }, MAX_CONTROL_FRAME)
        .await
        .expect("req");
    let r: Option<ServerFrame> = read_frame(&mut recv, MAX_CONTROL_FRAME).await.expect("response");
    assert!(
        matches!(r, Some(ServerFrame::Response { id: 9, result: Err(ref b) }) if b.code == ErrorCode::NotAuthenticated),
        "{r:?}"
    );

    // 5. A request variant from the future gets `Unsupported` for its id, not a dropped connection.
    send.write_all(&[0, 0, 0, 3, 1, 42, 100]).await.expect("future request");
    let r: Option<ServerFrame> = read_frame(&mut recv, MAX_CONTROL_FRAME).await.expect("response");
    assert!(
        matches!(r, Some(ServerFrame::Response { id: 42, result: Err(ref b) }) if b.code == ErrorCode::Unsupported),
        "{r:?}"
    );

    // 6. A hello from an incompatible future version is rejected with a reason.
    let conn = raw_connection(&t).await;
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    let future = ClientFrame::Hello(Hello { min_version: 90, max_version: 99, agent: "future".into() });
    write_frame(&mut send, &future, MAX_CONTROL_FRAME).await.expect("hello");
    let r: Option<ServerFrame> = read_frame(&mut recv, MAX_CONTROL_FRAME).await.expect("reject");
    assert!(matches!(r, Some(ServerFrame::Reject(ref b)) if b.code == ErrorCode::UnsupportedVersion), "{r:?}");
    // And so is a version 1 client, which cannot prove its PeerId: told to upgrade.
    let conn = raw_connection(&t).await;
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    let old = ClientFrame::Hello(Hello { min_version: 1, max_version: 1, agent: "skein/0.1.0".into() });
    write_frame(&mut send, &old, MAX_CONTROL_FRAME).await.expect("hello");
    let r: Option<ServerFrame> = read_frame(&mut recv, MAX_CONTROL_FRAME).await.expect("reject");
    assert!(
        matches!(r, Some(ServerFrame::Reject(ref b)) if b.code == ErrorCode::UnsupportedVersion && b.message.contains("upgrade")),
        "{r:?}"
    );

    // 7. Many connections that never say hello are timed out without harm:
    // each is closed within the idle timeout (3 s here) plus a margin, while
    // alice's session lives on.
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(raw_connection(&t).await);
    }
    ping(&alice.client, 4).await;
    let limit = t.config.idle_timeout + Duration::from_secs(5);
    let ends = tokio::time::timeout(limit, futures::future::join_all(idle.iter().map(|c| c.closed())))
        .await
        .unwrap_or_else(|_| panic!("connections that never said hello were still open after {limit:?}"));
    for end in ends {
        // Ended by the idle timeout, or by the tracker's own deadline for
        // the hello (a close with the protocol-error code).
        let timed_out = match &end {
            quinn::ConnectionError::TimedOut => true,
            quinn::ConnectionError::ApplicationClosed(c) => c.error_code == quinn::VarInt::from_u32(1),
            _ => false,
        };
        assert!(timed_out, "a silent connection ends by a time-out: {end:?}");
    }
    ping(&alice.client, 5).await;
    let c = session::login(&Profile::new(dir.path().join("again")), &t.address(), &t.ca_path(), "alice", PW.into())
        .await
        .expect("new logins still work");
    c.client.close();
}
