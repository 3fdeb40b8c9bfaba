//! Passwords with the real binaries: the first administrator's one-time
//! password must be replaced before the account does anything else, and
//! `skein passwd` changes a password, with or without a daemon, signing
//! the user's other devices out.

use skein_tests::{Proc, bin, init, output, skein};
use std::path::Path;
use std::time::Duration;
use tokio::process::Command;

const T: Duration = Duration::from_secs(30);

/// `skein` with both passwords in the environment (either may be absent).
async fn skein_with(profile: &Path, args: &[&str], current: Option<&str>, new: Option<&str>) -> (bool, String, String) {
    let mut cmd = Command::new(bin("skein"));
    cmd.arg("--profile").arg(profile).args(args).stdin(std::process::Stdio::null());
    cmd.env_remove("SKEIN_PASSWORD").env_remove("SKEIN_NEW_PASSWORD");
    if let Some(p) = current {
        cmd.env("SKEIN_PASSWORD", p);
    }
    if let Some(p) = new {
        cmd.env("SKEIN_NEW_PASSWORD", p);
    }
    output(cmd, "skein").await
}

#[tokio::test]
async fn the_one_time_password_is_replaced_before_anything_else() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("tracker");
    let data_s = data.to_str().expect("utf-8 path");
    let mut tracker = Proc::spawn(
        &bin("skein-tracker"),
        &["run", "--data", data_s, "--listen", "127.0.0.1:0"],
        &[("RUST_LOG", "warn")],
    );
    let line = tracker.wait_line(T, "the admin password", |l| l.contains("one-time password")).await;
    let otp = line.split_whitespace().last().expect("the password").to_owned();
    let serving = tracker.wait_line(T, "the serving line", |l| l.starts_with("Tracker serving on UDP")).await;
    let addr = serving.split_whitespace().nth(4).expect("address").to_owned();
    let ca = data.join("ca.pem");
    let login = ["login", "--tracker", &addr, "--ca", ca.to_str().expect("utf-8"), "--user", "admin"];
    let profile = dir.path().join("admin");

    // Without a new password at hand, the login says what is missing.
    let (ok, _, err) = skein_with(&profile, &login, Some(&otp), None).await;
    assert!(!ok, "a one-time password cannot be kept");
    assert!(err.contains("one-time password") && err.contains("SKEIN_NEW_PASSWORD"), "{err}");
    let (ok, _, err) = skein(&profile, &["departments"], None).await;
    assert!(!ok && err.contains("skein passwd"), "until it is changed, nothing else: {err}");

    // `skein passwd` replaces it.
    let (ok, out, err) = skein_with(&profile, &["passwd"], Some(&otp), Some("the admin's own password")).await;
    assert!(ok, "{err}");
    assert!(out.contains("Changed the password of admin"), "{out}");
    let (ok, out, err) = skein(&profile, &["departments", "--json"], None).await;
    assert!(ok, "{err}");
    assert!(out.starts_with('['), "{out}");

    // The one-time password is gone; a login with the new one asks nothing more.
    let other = dir.path().join("admin-2");
    let (ok, _, err) = skein_with(&other, &login, Some(&otp), Some("whatever")).await;
    assert!(!ok && err.contains("wrong user name or password"), "{err}");
    let (ok, out, err) = skein_with(&other, &login, Some("the admin's own password"), None).await;
    assert!(ok, "{err}");
    assert!(out.contains("Logged in as admin"), "{out}");
    assert!(!err.contains("one-time"), "{err}");

    // A change through a running daemon signs the other device out.
    let mut daemon = skein_tests::daemon(&other, &[]);
    daemon.wait_line(T, "the daemon connected", |l| l.contains(r#""type":"connected""#)).await;
    let (ok, _, err) = skein_with(&other, &["passwd"], Some("the admin's own password"), Some("a third one")).await;
    assert!(ok, "{err}");
    let (ok, _, err) = skein(&profile, &["departments"], None).await;
    assert!(!ok && err.contains("log in again"), "the first profile's session ended: {err}");
    let (ok, _, err) = skein(&other, &["presence"], None).await;
    assert!(ok, "the daemon's own session carries on: {err}");
}
