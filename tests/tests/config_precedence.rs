//! Where the real `skein-tracker run` takes its settings from, lowest
//! precedence first: built-in defaults, the TOML file, `SKEIN_TRACKER_*`
//! environment variables, then flags. Each run starts the binary on a fresh
//! data directory and reads back what it actually did: the address it bound
//! and the store it opened (its serving line), the names in the certificate
//! it issued, and, over a real login as `admin`, the organisation name,
//! tracker id and idle timeout in its welcome, its file-size policy and
//! where its relay listens.

use skein_node::profile::Profile;
use skein_proto::control::{Request, Response};
use skein_tests::{Proc, bin, init};
use std::path::{Path, PathBuf};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);
const MIB: u64 = 1 << 20;

/// Every variable the tracker reads, so none leaks in from the test's own
/// environment.
const ALL_VARS: [&str; 10] = [
    "SKEIN_TRACKER_DATA",
    "SKEIN_TRACKER_CONFIG",
    "SKEIN_TRACKER_DATABASE",
    "SKEIN_TRACKER_LISTEN",
    "SKEIN_TRACKER_RELAY_LISTEN",
    "SKEIN_TRACKER_PUBLIC_ADDR",
    "SKEIN_TRACKER_ORG",
    "SKEIN_TRACKER_IDLE_TIMEOUT",
    "SKEIN_TRACKER_MAX_FILE_MIB",
    "SKEIN_PASSWORD",
];

/// What a running tracker turned out to use.
#[derive(Debug)]
struct Observed {
    listen: std::net::SocketAddr,
    data: String,
    store: String,
    cert_names: Vec<String>,
    org: String,
    tracker_id: String,
    idle_timeout_ms: u32,
    max_file_size: u64,
    relay_addrs: Vec<String>,
}

/// A TOML file setting every layered key, with `tag` in each value.
fn write_toml(data: &Path, ip: &str, tag: &str) {
    std::fs::create_dir_all(data).expect("data dir");
    let toml = format!(
        "listen = \"{ip}:0\"\n\
         relay_listen = \"{ip}:0\"\n\
         public_addrs = [\"{tag}.skein.test\"]\n\
         database = \"sqlite://{db}\"\n\
         org = \"{tag} org\"\n\
         tracker_id = \"{tag}-tracker\"\n\
         idle_timeout_secs = 7\n\
         max_file_size_mib = 7\n\
         password_memory_kib = 1024\n\
         password_iterations = 1\n",
        db = data.join(format!("{tag}.db")).display(),
    );
    std::fs::write(data.join("tracker.toml"), toml).expect("write tracker.toml");
}

/// Runs `skein-tracker ARGS` with exactly `env` among the tracker's
/// variables, logs in as `admin` and reports what it is using.
async fn observe(profiles: &Path, args: &[&str], env: &[(&str, &str)]) -> (Proc, Observed) {
    init();
    // `env -u` clears each variable before setting the chosen ones.
    let mut argv: Vec<String> = Vec::new();
    for v in ALL_VARS {
        argv.extend(["-u".into(), v.into()]);
    }
    argv.push("RUST_LOG=warn".into());
    argv.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
    argv.push(bin("skein-tracker").display().to_string());
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut tracker = Proc::spawn(Path::new("/usr/bin/env"), &argv, &[]);

    let names = tracker.wait_line(T, "the certificate line", |l| l.starts_with("Issued the tracker certificate")).await;
    let cert_names = names.split_once(": ").expect("names").1.split(", ").map(str::to_owned).collect();
    let pw = tracker.wait_line(T, "the admin password", |l| l.contains("one-time password")).await;
    let pw = pw.split_whitespace().last().expect("password").to_owned();
    let serving = tracker.wait_line(T, "the serving line", |l| l.starts_with("Tracker serving on UDP")).await;
    // Tracker serving on UDP ADDR (data in DIR, store URL)
    let listen: std::net::SocketAddr =
        serving.split_whitespace().nth(4).expect("address").parse().expect("socket address");
    let (_, rest) = serving.split_once("(data in ").expect("data dir in the serving line");
    let (data, store) = rest.trim_end_matches(')').split_once(", store ").expect("store in the serving line");
    tracker.wait_line(T, "the relay line", |l| l.starts_with("Relay serving on UDP")).await;

    let ca = PathBuf::from(data).join("ca.pem");
    let profile = Profile::new(profiles.join(format!("admin-{}", listen)));
    let conn = skein_node::session::login(&profile, &listen.to_string(), &ca, "admin", pw)
        .await
        .expect("admin logs in to the tracker it was told to listen on");
    let welcome = conn.client.welcome().clone();
    let Response::Policy(policy) = conn.client.request(Request::Policy).await.expect("policy") else {
        panic!("expected the organisation's policy")
    };
    let Response::Relay(relay) = conn.client.request(Request::RelayInfo).await.expect("relay info") else {
        panic!("expected relay info")
    };
    conn.client.close();
    let seen = Observed {
        listen,
        data: data.to_owned(),
        store: store.to_owned(),
        cert_names,
        org: welcome.org,
        tracker_id: welcome.tracker_id,
        idle_timeout_ms: welcome.idle_timeout_ms,
        max_file_size: policy.max_file_size,
        relay_addrs: relay.addrs,
    };
    eprintln!("{seen:#?}");
    (tracker, seen)
}

fn relay_on(seen: &Observed, ip: &str) -> bool {
    seen.relay_addrs.iter().any(|a| a.starts_with(&format!("/ip4/{ip}/udp/")))
}

fn hostname() -> String {
    let h = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    if h.is_empty() { "tracker".into() } else { h }
}

#[tokio::test]
async fn without_a_file_or_variables_the_defaults_hold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let d = data.to_str().expect("utf-8");
    let (_t, seen) =
        observe(dir.path(), &["run", "--data", d, "--listen", "127.0.0.1:0", "--relay-listen", "127.0.0.1:0"], &[])
            .await;
    assert_eq!(seen.org, "Skein");
    assert_eq!(seen.tracker_id, format!("{}:{}", hostname(), seen.listen.port()), "named after its host and port");
    assert_eq!(seen.idle_timeout_ms, 15_000);
    assert_eq!(seen.max_file_size, 4096 * MIB);
    assert_eq!(seen.store, format!("sqlite://{}", data.join("tracker.db").display()));
    assert_eq!(seen.cert_names, ["localhost", "127.0.0.1"], "no public names unless configured");
}

#[tokio::test]
async fn the_toml_file_overrides_the_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    write_toml(&data, "127.0.0.2", "toml");
    let (_t, seen) = observe(dir.path(), &["run", "--data", data.to_str().expect("utf-8")], &[]).await;
    assert_eq!(seen.listen.ip().to_string(), "127.0.0.2");
    assert!(relay_on(&seen, "127.0.0.2"), "{:?}", seen.relay_addrs);
    assert_eq!(seen.store, format!("sqlite://{}", data.join("toml.db").display()));
    assert!(data.join("toml.db").exists() && !data.join("tracker.db").exists());
    assert!(seen.cert_names.contains(&"toml.skein.test".to_owned()), "{:?}", seen.cert_names);
    assert!(seen.cert_names.contains(&"127.0.0.2".to_owned()), "the listen IP is in the certificate");
    assert_eq!(seen.org, "toml org");
    assert_eq!(seen.tracker_id, "toml-tracker");
    assert_eq!(seen.idle_timeout_ms, 7_000);
    assert_eq!(seen.max_file_size, 7 * MIB);
}

#[tokio::test]
async fn environment_variables_override_the_toml_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    write_toml(&data, "127.0.0.2", "toml");
    let env_db = format!("sqlite://{}", data.join("env.db").display());
    let env = [
        // The data directory itself comes from the environment here, and
        // the TOML file is found in it.
        ("SKEIN_TRACKER_DATA", data.to_str().expect("utf-8")),
        ("SKEIN_TRACKER_LISTEN", "127.0.0.3:0"),
        ("SKEIN_TRACKER_RELAY_LISTEN", "127.0.0.3:0"),
        ("SKEIN_TRACKER_PUBLIC_ADDR", "env.skein.test"),
        ("SKEIN_TRACKER_DATABASE", &env_db),
        ("SKEIN_TRACKER_ORG", "env org"),
        ("SKEIN_TRACKER_IDLE_TIMEOUT", "8"),
        ("SKEIN_TRACKER_MAX_FILE_MIB", "8"),
    ];
    let (_t, seen) = observe(dir.path(), &["run"], &env).await;
    assert_eq!(seen.data, data.display().to_string());
    assert_eq!(seen.listen.ip().to_string(), "127.0.0.3");
    assert!(relay_on(&seen, "127.0.0.3") && !relay_on(&seen, "127.0.0.2"), "{:?}", seen.relay_addrs);
    assert_eq!(seen.store, env_db);
    assert!(data.join("env.db").exists() && !data.join("toml.db").exists());
    assert!(seen.cert_names.contains(&"env.skein.test".to_owned()), "{:?}", seen.cert_names);
    assert!(!seen.cert_names.contains(&"toml.skein.test".to_owned()), "{:?}", seen.cert_names);
    assert_eq!(seen.org, "env org");
    assert_eq!(seen.idle_timeout_ms, 8_000);
    assert_eq!(seen.max_file_size, 8 * MIB);
    // No variable sets the tracker id: the file's value stands.
    assert_eq!(seen.tracker_id, "toml-tracker");
}

#[tokio::test]
async fn flags_override_environment_variables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    write_toml(&data, "127.0.0.2", "toml");
    let elsewhere = dir.path().join("not-this-one");
    let env_db = format!("sqlite://{}", data.join("env.db").display());
    let env = [
        ("SKEIN_TRACKER_DATA", elsewhere.to_str().expect("utf-8")),
        ("SKEIN_TRACKER_LISTEN", "127.0.0.3:0"),
        ("SKEIN_TRACKER_RELAY_LISTEN", "127.0.0.3:0"),
        ("SKEIN_TRACKER_PUBLIC_ADDR", "env.skein.test"),
        ("SKEIN_TRACKER_DATABASE", &env_db),
        ("SKEIN_TRACKER_ORG", "env org"),
        ("SKEIN_TRACKER_IDLE_TIMEOUT", "8"),
        ("SKEIN_TRACKER_MAX_FILE_MIB", "8"),
    ];
    let flag_db = format!("sqlite://{}", data.join("flag.db").display());
    let args = [
        "run",
        "--data",
        data.to_str().expect("utf-8"),
        "--listen",
        "127.0.0.4:0",
        "--relay-listen",
        "127.0.0.4:0",
        "--public-addr",
        "flag.skein.test",
        "--database",
        &flag_db,
        "--org",
        "flag org",
        "--idle-timeout-secs",
        "9",
        "--max-file-size-mib",
        "9",
    ];
    let (_t, seen) = observe(dir.path(), &args, &env).await;
    assert_eq!(seen.data, data.display().to_string());
    assert!(!elsewhere.exists(), "the data directory from the environment was not used");
    assert_eq!(seen.listen.ip().to_string(), "127.0.0.4");
    assert!(relay_on(&seen, "127.0.0.4") && !relay_on(&seen, "127.0.0.3"), "{:?}", seen.relay_addrs);
    assert_eq!(seen.store, flag_db);
    assert!(data.join("flag.db").exists() && !data.join("env.db").exists());
    assert!(seen.cert_names.contains(&"flag.skein.test".to_owned()), "{:?}", seen.cert_names);
    assert!(!seen.cert_names.contains(&"env.skein.test".to_owned()), "{:?}", seen.cert_names);
    assert_eq!(seen.org, "flag org");
    assert_eq!(seen.idle_timeout_ms, 9_000);
    assert_eq!(seen.max_file_size, 9 * MIB);
    assert_eq!(seen.tracker_id, "toml-tracker");
}
