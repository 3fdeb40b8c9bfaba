//! Signing in without the CA file, against a real tracker: the tracker
//! presents the organisation CA with its certificate, the device shows its
//! fingerprint (the one the tracker prints for its administrator), and once
//! confirmed the CA signs the user in as a CA file would.

use skein_node::first_contact::fetch_ca;
use skein_node::profile::Profile;
use skein_tests::tracker_with_users;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_learns_the_organisation_ca_from_the_tracker_and_signs_in_with_it() {
    let t = tracker_with_users(&["alice"], "correct horse battery").await;
    let presented = fetch_ca(&t.address()).await.expect("the tracker presents its CA");
    let ca = skein_certs::load_certs(&t.ca_path()).expect("the CA file").remove(0);
    assert_eq!(presented.fingerprint, skein_certs::fingerprint(&ca), "the fingerprint of the organisation's CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let learnt = dir.path().join("learnt-ca.pem");
    std::fs::write(&learnt, &presented.pem).expect("write");
    let profile = Profile::new(dir.path().join("alice"));
    let conn = skein_node::session::login(&profile, &t.address(), &learnt, "alice", "correct horse battery".into())
        .await
        .expect("the learnt CA signs alice in");
    conn.client.close();
    assert_eq!(std::fs::read(profile.ca_path()).expect("kept"), presented.pem.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skein_login_takes_the_cas_fingerprint_instead_of_its_file() {
    let t = tracker_with_users(&["alice"], "correct horse battery").await;
    let ca = skein_certs::load_certs(&t.ca_path()).expect("the CA file").remove(0);
    let fingerprint = skein_certs::fingerprint(&ca);
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = dir.path().join("alice");
    let login = |extra: Vec<String>| {
        let (alice, address) = (alice.clone(), t.address());
        async move {
            let mut args = vec!["login".to_owned(), "--tracker".into(), address, "--user".into(), "alice".into()];
            args.extend(extra);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            skein_tests::skein(&alice, &args, Some("correct horse battery")).await
        }
    };
    // Not the organisation's: refused, and nothing kept.
    let wrong = skein_certs::fingerprint(skein_certs::OrgCa::generate("Mallory", 30).expect("ca").cert_der());
    let (ok, _, err) = login(vec!["--fingerprint".into(), wrong]).await;
    assert!(!ok && err.contains("not the one given"), "{err}");
    assert!(!alice.join("ca.pem").exists());
    // Neither a CA file nor a fingerprint, and no terminal to ask on.
    let (ok, _, err) = login(Vec::new()).await;
    assert!(!ok && err.contains("--fingerprint"), "{err}");
    // The right one, typed without colons in lower case.
    let typed = fingerprint.replace(':', "").to_lowercase();
    let (ok, out, err) = login(vec!["--fingerprint".into(), typed]).await;
    assert!(ok && out.contains("Logged in as alice"), "{out}{err}");
    assert_eq!(skein_certs::load_certs(&alice.join("ca.pem")).expect("kept").remove(0), ca);
}
