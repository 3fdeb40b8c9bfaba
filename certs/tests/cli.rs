//! The `skein-certs` binary end to end.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skein-certs")).args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn create_issue_show_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let ca_dir = tmp.path().join("ca");
    let out_dir = tmp.path().join("tracker");

    let out = run(&["ca", "create", "--org", "Acme", "--out", p(&ca_dir), "--days", "30"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mode = fs::metadata(ca_dir.join("ca.key")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // A second create refuses, naming the file, and leaves the CA alone.
    let before = fs::read(ca_dir.join("ca.pem")).unwrap();
    let out = run(&["ca", "create", "--org", "Acme", "--out", p(&ca_dir)]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(p(&ca_dir.join("ca.pem"))), "{err}");
    assert_eq!(fs::read(ca_dir.join("ca.pem")).unwrap(), before);

    let out = run(&["ca", "create", "--org", "Acme", "--out", p(&ca_dir), "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(fs::read(ca_dir.join("ca.pem")).unwrap(), before);

    let out = run(&[
        "tracker",
        "issue",
        "--ca-dir",
        p(&ca_dir),
        "--out",
        p(&out_dir),
        "--san",
        "tracker.acme.example",
        "--san",
        "198.18.0.5",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mode = fs::metadata(out_dir.join("tracker.key")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let out = run(&["show", p(&out_dir.join("tracker.pem")), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let sans: Vec<&str> = json[0]["sans"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for san in ["tracker.acme.example", "198.18.0.5", "localhost", "127.0.0.1"] {
        assert!(sans.contains(&san), "{san} not in {sans:?}");
    }

    let out = run(&["show", p(&ca_dir.join("ca.pem"))]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("subject:") && text.contains("SHA-256:"), "{text}");

    let tracker_pem = out_dir.join("tracker.pem");
    let out = run(&["verify", "--ca", p(&ca_dir.join("ca.pem")), p(&tracker_pem)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with(&format!("ok: {} is signed by ", p(&tracker_pem))), "{}", stdout(&out));

    // Against another CA: a one-line error naming the certificate.
    let other = tmp.path().join("other");
    assert!(run(&["ca", "create", "--org", "Other", "--out", p(&other)]).status.success());
    let out = run(&["verify", "--ca", p(&other.join("ca.pem")), p(&tracker_pem)]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim_end(),
        format!("error: {} was not signed by the CA in {}", p(&tracker_pem), p(&other.join("ca.pem")))
    );
}

#[test]
fn missing_ca_is_a_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&["tracker", "issue", "--ca-dir", p(tmp.path()), "--out", p(tmp.path())]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim_end(),
        format!("error: cannot read CA certificate {}: No such file or directory", p(&tmp.path().join("ca.pem")))
    );
    assert!(!tmp.path().join("tracker.pem").exists());
}

#[test]
fn bad_san_is_a_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(run(&["ca", "create", "--org", "Acme", "--out", p(tmp.path())]).status.success());
    let out = run(&["tracker", "issue", "--ca-dir", p(tmp.path()), "--san", "bad_name!"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("bad_name!"), "{err}");
}
