//! A device that connects to its tracker again (the daemon after a network
//! change or a lost connection) resumes its TLS session with the ticket
//! from its last connection, instead of a full handshake. In a file of its
//! own: session tickets are kept per process and per server name, and
//! another test's connections to 127.0.0.1 would mix theirs in.

use skein_node::tracker_client::{TrackerClient, TrackerTarget};
use skein_tests::TestTracker;

#[tokio::test]
async fn a_reconnection_resumes_its_tls_session() {
    skein_tests::init();
    let t = TestTracker::start().await;
    let target = TrackerTarget::new(t.address(), t.ca_path());
    let sessions = t.running().tls_sessions();
    assert_eq!(sessions.resumed(), 0);

    // The first connection is a full handshake; the tracker's ticket
    // arrives with it (the protocol hello is a round trip after it).
    let (first, _events) = TrackerClient::connect(&target, "resumption test").await.expect("first connection");
    assert_eq!(sessions.resumed(), 0, "nothing to resume yet");
    first.close_and_wait(std::time::Duration::from_secs(1)).await;

    for n in 1..=2u64 {
        let (again, _events) = TrackerClient::connect(&target, "resumption test").await.expect("reconnection");
        assert_eq!(sessions.resumed(), n, "reconnection {n} resumed the session of the connection before it");
        again.close_and_wait(std::time::Duration::from_secs(1)).await;
    }
}
