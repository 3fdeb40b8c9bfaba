//! The control socket carrying many requests on one connection, against a
//! real daemon, tracker and peer: requests go out without waiting, replies
//! come back as each send completes, each with its request's id, and every
//! message arrives once. A malformed line is answered and the connection
//! goes on; an over-long one is answered and ends it.

use skein_node::control::{Connection, ControlRequest};
use skein_tests::{online, users_with_profiles};
use std::collections::HashSet;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const PW: &str = "correct horse battery";
const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_on_one_connection_are_answered_by_id() {
    let (_t, _dir, [alice, bob]) = users_with_profiles(["alice", "bob"], PW).await;
    let _alice_daemon = online(&alice, &[]).await;
    let mut bob_daemon = online(&bob, &[]).await;

    let socket = skein_node::profile::Profile::new(&alice).socket_path();
    let mut conn = Connection::open(&socket).await.expect("connect").expect("the daemon runs");
    const N: usize = 300;
    let mut sent = HashSet::new();
    for i in 0..N {
        let id =
            conn.send(&ControlRequest::Send { to: "bob".into(), text: format!("pipelined {i}") }).await.expect("send");
        sent.insert(id);
    }
    let mut answered = HashSet::new();
    let mut direct = 0;
    for _ in 0..N {
        let (id, reply) = tokio::time::timeout(T, conn.next_reply()).await.expect("in time").expect("a reply");
        assert!(reply.ok, "{reply:?}");
        assert!(answered.insert(id.expect("an id")), "each request answered once");
        direct += usize::from(reply.data["path"] == "direct");
    }
    println!("{direct} of {N} sends in flight at once went direct");
    assert_eq!(answered, sent);
    let mut got = HashSet::new();
    while got.len() < N {
        let line = bob_daemon.wait_next(T, "the pipelined messages", |l| l.contains("pipelined ")).await;
        assert!(got.insert(line.split("pipelined ").nth(1).map(|s| s.split('"').next().unwrap_or("").to_owned())));
    }

    // The connection carries plain calls too.
    let reply = conn.call(&ControlRequest::Info).await.expect("info");
    assert!(reply.ok && reply.data["user"] == "alice", "{reply:?}");

    // Raw lines: a malformed one is answered, an over-long one ends the connection.
    let mut raw = tokio::net::UnixStream::connect(&socket).await.expect("connect");
    raw.write_all(b"{not json\n{\"cmd\":\"info\",\"req_id\":\"x\"}\n").await.expect("write");
    let mut lines = tokio::io::BufReader::new(raw);
    let mut first = String::new();
    let mut second = String::new();
    use tokio::io::AsyncBufReadExt;
    lines.read_line(&mut first).await.expect("read");
    lines.read_line(&mut second).await.expect("read");
    let replies = [first, second];
    assert!(replies.iter().any(|l| l.contains("\"malformed\"")), "{replies:?}");
    assert!(replies.iter().any(|l| l.contains("\"req_id\":\"x\"") && l.contains("\"ok\":true")), "{replies:?}");
    let mut raw = lines.into_inner();
    raw.write_all(&vec![b'a'; skein_node::control::MAX_LINE + 10]).await.expect("write");
    let mut rest = String::new();
    let mut lines = tokio::io::BufReader::new(raw);
    lines.read_line(&mut rest).await.expect("read");
    assert!(rest.contains("at most"), "{rest}");
    let mut after = String::new();
    assert_eq!(lines.read_line(&mut after).await.expect("read"), 0, "the connection ended");
}
