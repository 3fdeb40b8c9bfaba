//! The `skein-tracker` command line: `run` and the admin commands.
//!
//! Configuration layers, lowest precedence first: built-in defaults, the
//! TOML file (`--config`, or `DATA/tracker.toml` if present),
//! `SKEIN_TRACKER_*` environment variables, then flags. Admin commands work
//! on the store directly, so they also work while a tracker is running.

use crate::admin;
use crate::config::{FileConfig, TrackerConfig};
use crate::init::ensure_initialised;
use crate::passwords::Passwords;
use crate::server::Tracker;
use crate::store::Store;
use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use skein_proto::control::NewUser;
use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The Skein tracker: login, presence, directory and connection brokering.
#[derive(Debug, Parser)]
#[command(name = "skein-tracker", version)]
pub struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Common {
    /// Data directory (certificates, keys, SQLite database).
    #[arg(long, global = true, env = "SKEIN_TRACKER_DATA")]
    data: Option<PathBuf>,
    /// TOML configuration file (default: DATA/tracker.toml if it exists).
    #[arg(long, global = true, env = "SKEIN_TRACKER_CONFIG")]
    config: Option<PathBuf>,
    /// Store URL: sqlite://PATH or postgres://USER:PASS@HOST/DB (default: SQLite in DATA).
    #[arg(long, global = true, env = "SKEIN_TRACKER_DATABASE")]
    database: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Initialise the data directory on first run, then serve until SIGINT/SIGTERM.
    Run(RunArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage departments.
    #[command(subcommand)]
    Dept(DeptCmd),
    /// Manage groups (org groups; department groups exist by themselves).
    #[command(subcommand)]
    Group(GroupCmd),
    /// The organisation's trackers.
    #[command(subcommand)]
    Trackers(TrackersCmd),
    /// Apps of the HTTP API (company systems with a token).
    #[command(subcommand)]
    App(AppCmd),
    /// Incoming webhooks: URLs that post into one conversation.
    #[command(subcommand)]
    Hook(HookCmd),
    /// Print the organisation CA certificate (PEM) that nodes must trust.
    ExportCa {
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Control-plane UDP address [default: 0.0.0.0:7400].
    #[arg(long, env = "SKEIN_TRACKER_LISTEN")]
    listen: Option<SocketAddr>,
    /// Relay UDP address [default: 0.0.0.0:7401].
    #[arg(long, env = "SKEIN_TRACKER_RELAY_LISTEN")]
    relay_listen: Option<SocketAddr>,
    /// DNS name or IP that nodes use to reach this tracker; added to the
    /// certificate when the data directory is first initialised. Repeatable.
    #[arg(long = "public-addr", env = "SKEIN_TRACKER_PUBLIC_ADDR", value_delimiter = ',')]
    public_addrs: Vec<String>,
    /// Organisation name, used when the data directory is first initialised.
    #[arg(long, env = "SKEIN_TRACKER_ORG")]
    org: Option<String>,
    /// Seconds of silence after which a client is marked offline.
    #[arg(long, env = "SKEIN_TRACKER_IDLE_TIMEOUT")]
    idle_timeout_secs: Option<u64>,
    /// Largest file users may send each other, in MiB [default: 4096].
    #[arg(long, env = "SKEIN_TRACKER_MAX_FILE_MIB")]
    max_file_size_mib: Option<u64>,
    /// Join the organisation whose tracker keeps its data in this
    /// directory (or a directory with copies of its ca.pem, ca.key and
    /// org.key): copies ca.pem and org.key and issues this tracker's
    /// certificate with the CA key. Needs the organisation's PostgreSQL
    /// database (--database).
    #[arg(long, value_name = "DIR")]
    join: Option<PathBuf>,
    /// What this process serves: control (logins, presence, directory,
    /// mailbox), relay, or both [default: control,relay]. A relay-only
    /// process needs the organisation's PostgreSQL database and no keys.
    #[arg(long, env = "SKEIN_TRACKER_ROLES", value_name = "ROLES")]
    roles: Option<crate::roles::Roles>,
    /// This tracker's name in the list of trackers [default: HOST:PORT].
    #[arg(long, env = "SKEIN_TRACKER_NAME")]
    name: Option<String>,
    /// The HTTP API's TCP address, with --roles …,api [default: 127.0.0.1:7480].
    #[arg(long, env = "SKEIN_TRACKER_API_LISTEN")]
    api_listen: Option<SocketAddr>,
    /// Serve the HTTP API over HTTPS with the tracker's certificate (which
    /// the organisation CA signed), on any address; without it, plain HTTP
    /// on loopback only, for a proxy in front.
    #[arg(long, env = "SKEIN_TRACKER_API_TLS")]
    api_tls: bool,
}

#[derive(Debug, Subcommand)]
enum AppCmd {
    /// Create an app and print its bearer token, this once.
    Create {
        /// The app's name, shown beside what it posts.
        name: String,
        /// What it may do: send, presence, admin (comma-separated).
        #[arg(long)]
        scopes: String,
        /// A PNG icon shown beside what it posts.
        #[arg(long, value_name = "FILE")]
        icon: Option<PathBuf>,
        /// Print `{"name": …, "token": …}`.
        #[arg(long)]
        json: bool,
    },
    /// Every app, with its scopes and whether it is revoked.
    List {
        /// One JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an app's token: its calls are refused from now on.
    Revoke {
        /// The app's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum TrackersCmd {
    /// Every tracker of the organisation, with its addresses and when it was last seen.
    List {
        /// One JSON array.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum UserCmd {
    /// Add a user; the password comes from SKEIN_PASSWORD or standard input.
    Add {
        /// Login name (lowercase letters, digits, '.', '-', '_').
        name: String,
        /// Full name.
        #[arg(long)]
        display_name: Option<String>,
        /// Department path, such as Engineering/Backend (created if missing).
        #[arg(long)]
        dept: Option<String>,
        /// Job title.
        #[arg(long)]
        title: Option<String>,
        /// E-mail address.
        #[arg(long)]
        email: Option<String>,
        /// Phone number.
        #[arg(long)]
        phone: Option<String>,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
    },
    /// Disable a user and end their sessions.
    Disable {
        /// The user.
        name: String,
    },
    /// Re-enable a disabled user.
    Enable {
        /// The user.
        name: String,
    },
    /// Set a user's password (SKEIN_PASSWORD or standard input) and end their sessions.
    Passwd {
        /// The user.
        name: String,
    },
    /// List users.
    List {
        /// One JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Move a user to another department (created if missing); the groups
    /// of the departments left and joined follow.
    Move {
        /// The user.
        name: String,
        /// The new department, such as Engineering/Backend.
        #[arg(long, conflicts_with = "no_dept", required_unless_present = "no_dept")]
        dept: Option<String>,
        /// Out of every department.
        #[arg(long)]
        no_dept: bool,
    },
}

#[derive(Debug, Subcommand)]
enum GroupCmd {
    /// Make an org group, changed by administrators only.
    Create {
        /// Its name; need not be unique.
        name: String,
        /// Org groups are the only kind made here (users make discussion groups with `skein group create`).
        #[arg(long, required = true)]
        org: bool,
        /// Members, comma-separated user names.
        #[arg(long, value_delimiter = ',')]
        members: Vec<String>,
    },
    /// List every group.
    List {
        /// One JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum DeptCmd {
    /// Add a department (and any missing parents).
    Add {
        /// Path such as Engineering/Backend.
        path: String,
    },
    /// List departments.
    List {
        /// One JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
}

/// Logs to standard error; `RUST_LOG` selects what (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // PostgreSQL's notices at start (a migration table that exists) are
        // not news.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx::postgres::notice=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// The default data directory: `$XDG_DATA_HOME/skein-tracker`, else
/// `~/.local/share/skein-tracker`.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("skein-tracker");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/skein-tracker")
}

fn load_config(common: &Common) -> anyhow::Result<TrackerConfig> {
    let data = common.data.clone().unwrap_or_else(default_data_dir);
    let mut cfg = TrackerConfig::new(&data);
    let file = match &common.config {
        Some(p) => Some(p.clone()),
        None => Some(data.join("tracker.toml")).filter(|p| p.exists()),
    };
    if let Some(p) = file {
        cfg = FileConfig::load(&p).map_err(anyhow::Error::msg)?.apply(cfg);
    }
    if let Some(db) = &common.database {
        cfg.database = Some(db.clone());
    }
    Ok(cfg)
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut cfg = load_config(&cli.common)?;
    match cli.command {
        Command::Run(args) => {
            if let Some(v) = args.listen {
                cfg.listen = v;
            }
            if let Some(v) = args.relay_listen {
                cfg.relay_listen = v;
            }
            if !args.public_addrs.is_empty() {
                cfg.public_addrs = args.public_addrs;
            }
            if let Some(v) = args.org {
                cfg.org = v;
            }
            if let Some(v) = args.idle_timeout_secs {
                cfg.idle_timeout = std::time::Duration::from_secs(v.max(1));
            }
            if let Some(v) = args.max_file_size_mib {
                cfg.max_file_size = crate::config::mib(v);
            }
            if let Some(v) = args.roles {
                cfg.roles = v;
            }
            if let Some(v) = args.name {
                cfg.tracker_id = v;
            }
            if let Some(v) = args.api_listen {
                cfg.api_listen = v;
            }
            if args.api_tls {
                cfg.api_tls = true;
            }
            if !cfg.roles.control {
                if args.join.is_some() {
                    anyhow::bail!(
                        "a relay-only tracker (--roles relay) keeps no keys of the organisation: leave out --join"
                    );
                }
                return serve_relay(cfg).await;
            }
            serve(cfg, args.join).await
        }
        Command::Trackers(TrackersCmd::List { json }) => trackers(cfg, json).await,
        Command::App(cmd) => app(cfg, cmd).await,
        Command::Hook(cmd) => hook(cfg, cmd).await,
        Command::User(cmd) => user(cfg, cmd).await,
        Command::Dept(cmd) => dept(cfg, cmd).await,
        Command::Group(cmd) => group(cfg, cmd).await,
        Command::ExportCa { out } => {
            let path = cfg.ca_cert_path();
            let pem = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "cannot read CA certificate {}; has `skein-tracker run` initialised this data directory?",
                    path.display()
                )
            })?;
            match out {
                Some(o) => std::fs::write(&o, pem).with_context(|| format!("cannot write {}", o.display()))?,
                None => print!("{pem}"),
            }
            Ok(())
        }
    }
}

async fn serve(cfg: TrackerConfig, join: Option<PathBuf>) -> anyhow::Result<()> {
    // Listening for SIGTERM and SIGINT from the start: one that comes as
    // soon as the serving line is printed must stop the tracker cleanly,
    // not kill it.
    use tokio::signal::unix::{SignalKind, signal};
    let signals = (signal(SignalKind::terminate()).ok(), signal(SignalKind::interrupt()).ok());
    if cfg.roles.api {
        crate::api::check_listen(cfg.api_listen, cfg.api_tls)?;
    }
    let lock = Tracker::lock(&cfg)?;
    if let Some(from) = &join {
        let joined = crate::join::prepare(&cfg, from)?;
        for path in &joined.copied {
            println!("Copied {} from {}", path.display(), from.display());
        }
        if let Some(names) = &joined.issued_cert {
            println!(
                "Issued the tracker certificate for: {} (with the CA key in {}, which was not copied)",
                names.join(", "),
                from.display()
            );
        }
    }
    let report = ensure_initialised(&cfg).await?;
    let dir = cfg.data_dir.display();
    if report.created_ca {
        println!("Created the organisation CA: {}", cfg.ca_cert_path().display());
    }
    if let Some(names) = &report.issued_cert {
        println!("Issued the tracker certificate for: {}", names.join(", "));
    }
    if let Some(pw) = &report.admin_password {
        println!("Created administrator account `admin` with one-time password: {pw}");
        println!(
            "  (shown only now; the first `skein login` as admin asks for a new one, or set one with `skein-tracker user passwd admin --data {dir}`)"
        );
    }
    let running = Tracker::start_locked(cfg.clone(), lock).await?;
    let port = running.local_addr().port();
    println!(
        "Tracker serving on UDP {} (data in {dir}, store {})",
        running.local_addr(),
        crate::store::redact_url(&cfg.database_url())
    );
    let relay = running.relay();
    match cfg.roles.relay {
        true => println!("Relay serving on UDP {} as {}", relay.port(), relay.peer_id()),
        false => println!("No relay here (--roles control): devices reserve on the organisation's relays"),
    }
    if let Some(api) = running.api_addr() {
        println!("HTTP API serving on http://{api} (apps: skein-tracker app create NAME --scopes send,presence)");
    }
    if let Some(ca) = skein_certs::rustls_io::load_certs(&cfg.ca_cert_path())?.first() {
        println!(
            "Organisation CA fingerprint (SHA-256), which users confirm when they first sign in without the CA file:"
        );
        println!("             {}", skein_certs::fingerprint(ca));
    }
    // On a shared database admin commands need its URL too; the password
    // in it is not printed.
    let database = match cfg.database.as_deref() {
        Some(url) => format!(" --database '{}'", crate::store::redact_url(url)),
        None => String::new(),
    };
    println!("Add a user:  SKEIN_PASSWORD=... skein-tracker user add alice --data {dir}{database}");
    println!(
        "Log in:      SKEIN_PASSWORD=... skein --profile ~/.skein/alice login --tracker 127.0.0.1:{port} --ca {} --user alice",
        cfg.ca_cert_path().display()
    );
    running.run_until(shutdown_signal(signals)).await;
    println!("Tracker stopped.");
    Ok(())
}

/// `run --roles relay`: the relay alone, until SIGTERM or SIGINT.
async fn serve_relay(cfg: TrackerConfig) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let signals = (signal(SignalKind::terminate()).ok(), signal(SignalKind::interrupt()).ok());
    let lock = Tracker::lock(&cfg)?;
    let running = crate::relay_role::start(cfg.clone(), lock).await?;
    let relay = running.relay();
    println!(
        "Relay serving on UDP {} as {} (relay role only; store {})",
        relay.port(),
        relay.peer_id(),
        crate::store::redact_url(&cfg.database_url())
    );
    for a in relay.advertised() {
        println!("  devices reach it at {a}");
    }
    running.run_until(shutdown_signal(signals)).await;
    println!("Relay stopped.");
    Ok(())
}

/// The roles a tracker of the list serves, as its addresses show.
fn roles_of(t: &crate::store::TrackerRecord) -> String {
    crate::roles::Roles { control: !t.control_addrs.is_empty(), relay: !t.relay_addrs.is_empty(), api: false }
        .to_string()
}

#[derive(Debug, Subcommand)]
enum HookCmd {
    /// Make a webhook and print its URL's path, this once.
    Create {
        /// Whom its posts go to: a user (bob), a group (#team) or a
        /// department (dept:/Engineering).
        #[arg(long)]
        to: String,
        /// The name its posts show [default: Webhook, or Webhook 2, …].
        #[arg(long)]
        name: Option<String>,
        /// A PNG icon shown beside its posts.
        #[arg(long, value_name = "FILE")]
        icon: Option<PathBuf>,
        /// Print `{"name": …, "to": …, "path": …}`.
        #[arg(long)]
        json: bool,
    },
    /// Every webhook, with where it posts and whether it is revoked.
    List {
        /// One JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a webhook: posts to its URL are refused from now on.
    Revoke {
        /// The webhook's name.
        name: String,
    },
}

async fn hook(cfg: TrackerConfig, cmd: HookCmd) -> anyhow::Result<()> {
    let store = open_store(&cfg).await?;
    let result = hook_on(&store, &cfg, cmd).await;
    store.close().await;
    result
}

async fn hook_on(store: &Store, cfg: &TrackerConfig, cmd: HookCmd) -> anyhow::Result<()> {
    let now = crate::clock::now_ms() as i64;
    match cmd {
        HookCmd::Create { to, name, icon, json } => {
            let icon = match &icon {
                Some(p) => Some(std::fs::read(p).with_context(|| format!("cannot read the icon {}", p.display()))?),
                None => None,
            };
            let made = crate::apps::create_hook(store, name.as_deref(), &to, icon.as_deref(), now).await?;
            let path = format!("/hooks/{}/{}", made.app.id, made.token);
            if json {
                println!("{}", serde_json::json!({"name": made.app.name, "to": made.app.hook_to, "path": path}));
            } else {
                println!("Created webhook {} posting to {}.", made.app.name, to.trim());
                println!("Post to this URL, shown only now (the tracker keeps only a hash of its secret):");
                println!("{}://{}{path}", if cfg.api_tls { "https" } else { "http" }, cfg.api_listen);
                println!("  curl -X POST -H 'Content-Type: application/json' -d '{{\"text\": \"Deployed\"}}' URL");
            }
        }
        HookCmd::List { json } => {
            let hooks: Vec<_> = store.list_apps().await?.into_iter().filter(|a| a.hook_to.is_some()).collect();
            if json {
                let list: Vec<_> = hooks
                    .iter()
                    .map(|a| {
                        serde_json::json!({
                            "name": a.name, "id": a.id, "to": a.hook_to, "created_at_ms": a.created_at_ms,
                            "revoked_at_ms": a.revoked_at_ms, "icon": a.icon.is_some(),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else if hooks.is_empty() {
                println!("No webhooks yet: skein-tracker hook create --to '#team'");
            } else {
                for a in &hooks {
                    let state = if a.revoked_at_ms.is_some() { "revoked" } else { "active" };
                    println!("{}  {state}  posts to {}", a.name, a.hook_to.as_deref().unwrap_or_default());
                }
            }
        }
        HookCmd::Revoke { name } => {
            let is_hook = store.list_apps().await?.iter().any(|a| a.name == name && a.hook_to.is_some());
            if !is_hook {
                anyhow::bail!("no webhook named {name:?}; `skein-tracker hook list` shows them");
            }
            store.revoke_app(&name, now).await?;
            println!("Revoked webhook {name}: posts to its URL are refused from now on.");
        }
    }
    Ok(())
}

async fn app(cfg: TrackerConfig, cmd: AppCmd) -> anyhow::Result<()> {
    let store = open_store(&cfg).await?;
    let result = app_on(&store, cmd).await;
    store.close().await;
    result
}

async fn app_on(store: &Store, cmd: AppCmd) -> anyhow::Result<()> {
    let now = crate::clock::now_ms() as i64;
    match cmd {
        AppCmd::Create { name, scopes, icon, json } => {
            let scopes = crate::apps::parse_scopes(&scopes).map_err(anyhow::Error::msg)?;
            let icon = match &icon {
                Some(p) => Some(std::fs::read(p).with_context(|| format!("cannot read the icon {}", p.display()))?),
                None => None,
            };
            let made = crate::apps::create(store, &name, &scopes, icon.as_deref(), now).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"name": made.app.name, "token": made.token, "scopes": made.app.scopes})
                );
            } else {
                println!("Created app {} with scopes {}.", made.app.name, made.app.scopes.join(", "));
                println!("Its token, shown only now (the tracker keeps only a hash of it):");
                println!("{}", made.token);
            }
        }
        AppCmd::List { json } => {
            let apps = store.list_apps().await?;
            if json {
                let list: Vec<_> = apps
                    .iter()
                    .map(|a| {
                        serde_json::json!({
                            "name": a.name, "scopes": a.scopes, "created_at_ms": a.created_at_ms,
                            "revoked_at_ms": a.revoked_at_ms, "icon": a.icon.is_some(),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else if apps.is_empty() {
                println!("No apps yet: skein-tracker app create NAME --scopes send,presence");
            } else {
                for a in &apps {
                    let state = if a.revoked_at_ms.is_some() { "revoked" } else { "active" };
                    println!("{}  {state}  scopes {}", a.name, a.scopes.join(","));
                }
            }
        }
        AppCmd::Revoke { name } => {
            store.revoke_app(&name, now).await?;
            println!("Revoked the token of app {name}: its calls are refused from now on.");
        }
    }
    Ok(())
}

async fn trackers(cfg: TrackerConfig, json: bool) -> anyhow::Result<()> {
    let store = open_store(&cfg).await?;
    let list = store.list_trackers().await;
    store.close().await;
    let list = list?;
    let now = crate::clock::now_ms() as i64;
    if json {
        let list: Vec<_> = list
            .iter()
            .map(|t| {
                serde_json::json!({
                    "name": t.name,
                    "relay_peer_id": t.relay_peer_id,
                    "roles": roles_of(t),
                    "control_addrs": t.control_addrs,
                    "relay_addrs": t.relay_addrs,
                    "started_at_ms": t.started_at_ms,
                    "last_seen_ms": t.last_seen_ms,
                    "state": crate::roster::standing(t, now),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(());
    }
    if list.is_empty() {
        println!("No tracker has served this store yet.");
    }
    for t in &list {
        let ago = std::time::Duration::from_millis(now.saturating_sub(t.last_seen_ms).max(0) as u64);
        println!(
            "{}  {}  {}  last seen {} ago  control {}  relay {}",
            t.name,
            roles_of(t),
            crate::roster::standing(t, now),
            crate::roster::ago(ago),
            if t.control_addrs.is_empty() { "-".to_owned() } else { t.control_addrs.join(", ") },
            if t.relay_addrs.is_empty() { "-".to_owned() } else { t.relay_addrs.join(", ") },
        );
    }
    Ok(())
}

async fn shutdown_signal(signals: (Option<tokio::signal::unix::Signal>, Option<tokio::signal::unix::Signal>)) {
    let (mut term, mut int) = signals;
    let term = async {
        match term.as_mut() {
            Some(t) => drop(t.recv().await),
            None => std::future::pending().await,
        }
    };
    let int = async {
        match int.as_mut() {
            Some(i) => drop(i.recv().await),
            None => drop(tokio::signal::ctrl_c().await),
        }
    };
    tokio::select! {
        () = term => {}
        () = int => {}
    }
}

async fn open_store(cfg: &TrackerConfig) -> anyhow::Result<Store> {
    if cfg.database.is_none() && !cfg.data_dir.join("tracker.db").exists() {
        bail!(
            "no tracker data in {}; start the tracker once with `skein-tracker run --data {}`, or pass --data or --database",
            cfg.data_dir.display(),
            cfg.data_dir.display()
        );
    }
    Ok(Store::open(&cfg.database_url()).await?)
}

/// Reads a password from `SKEIN_PASSWORD`, or standard input (prompting
/// without echo on a terminal).
fn read_password(prompt: &str) -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("SKEIN_PASSWORD") {
        return Ok(p);
    }
    let pw = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(prompt)?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            bail!("the two passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if pw.is_empty() {
        bail!("no password given: set SKEIN_PASSWORD or pass it on standard input");
    }
    Ok(pw)
}

async fn user(cfg: TrackerConfig, cmd: UserCmd) -> anyhow::Result<()> {
    let store = open_store(&cfg).await?;
    let result = user_inner(&cfg, &store, cmd).await;
    store.close().await;
    result
}

async fn user_inner(cfg: &TrackerConfig, store: &Store, cmd: UserCmd) -> anyhow::Result<()> {
    match cmd {
        UserCmd::Add { name, display_name, dept, title, email, phone, admin } => {
            admin::check_user_name(&name)?;
            if store.user_by_name(&name).await?.is_some() {
                bail!("user {name} already exists");
            }
            let password = read_password(&format!("Password for {name}: "))?;
            let new = NewUser {
                name: name.clone(),
                display_name: display_name.unwrap_or_default(),
                password,
                department: dept,
                title,
                email,
                phone,
                admin,
            };
            let u = admin::add_user(store, new, &Passwords::per_core(cfg.password_cost.clone())).await?;
            println!("Added user {} ({}){}", u.name, u.display_name, if u.admin { ", administrator" } else { "" });
        }
        UserCmd::Move { name, dept, no_dept: _ } => {
            admin::check_user_name(&name)?;
            if let Some(d) = &dept {
                admin::check_dept(d)?;
            }
            let groups = store.set_user_department(&name, dept.as_deref()).await?;
            let to = dept.as_deref().unwrap_or("no department");
            println!("Moved {name} to {to}; {} department group(s) changed", groups.len());
        }
        UserCmd::Disable { name } => {
            admin::set_disabled(store, &name, true).await?;
            println!("Disabled {name}; their sessions end within seconds.");
        }
        UserCmd::Enable { name } => {
            admin::set_disabled(store, &name, false).await?;
            println!("Enabled {name}.");
        }
        UserCmd::Passwd { name } => {
            admin::check_user_name(&name)?;
            if store.user_by_name(&name).await?.is_none() {
                bail!("no user named {name}");
            }
            let password = read_password(&format!("New password for {name}: "))?;
            admin::set_password(store, &name, password, &Passwords::per_core(cfg.password_cost.clone())).await?;
            println!("Password of {name} changed; their sessions were ended.");
        }
        UserCmd::List { json } => {
            let users = store.list_users().await?;
            if json {
                let list: Vec<_> = users
                    .iter()
                    .map(|u| {
                        serde_json::json!({
                            "name": u.name, "display_name": u.display_name, "department": u.department,
                            "title": u.title, "email": u.email, "phone": u.phone,
                            "admin": u.admin, "disabled": u.disabled, "last_seen_ms": u.last_seen_ms,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                for u in users {
                    let flags = [(u.admin, "admin"), (u.disabled, "disabled")]
                        .iter()
                        .filter(|(on, _)| *on)
                        .map(|(_, f)| *f)
                        .collect::<Vec<_>>()
                        .join(",");
                    println!(
                        "{:<20} {:<28} {:<24} {}",
                        u.name,
                        u.display_name,
                        u.department.as_deref().unwrap_or("-"),
                        flags
                    );
                }
            }
        }
    }
    Ok(())
}

async fn group(cfg: TrackerConfig, cmd: GroupCmd) -> anyhow::Result<()> {
    use skein_proto::group::MAX_GROUP_MEMBERS;
    let store = open_store(&cfg).await?;
    let result = async {
        match cmd {
            GroupCmd::Create { name, org: _, members } => {
                let name = name.trim();
                if name.is_empty() || name.len() > skein_proto::group::MAX_GROUP_NAME {
                    bail!("a group name is 1-{} bytes", skein_proto::group::MAX_GROUP_NAME);
                }
                let id: [u8; 16] = rand::random();
                let now = crate::clock::now_ms() as i64;
                let g = store.create_group(id, name, None, &members, MAX_GROUP_MEMBERS, now).await?;
                let created = skein_proto::frame::encode_payload(&skein_proto::group::GroupChange::Created)?;
                store.log_group_change(g.id, g.version, "an administrator", &created, now).await?;
                // Running trackers tell the members.
                let anyone = store.user_by_name(members.first().map_or("admin", String::as_str)).await?;
                if let Some(u) = anyone {
                    store.record_group_event(admin::EVENT_GROUP_CREATED, g.id, u.id, now).await?;
                }
                println!("Made org group {} ({}) with {} members", g.name, hex::encode(g.id), g.members.len());
            }
            GroupCmd::List { json } => {
                let groups = store.all_groups().await?;
                let kind = |g: &crate::store::GroupRecord| match &g.kind {
                    crate::store::GroupKindRecord::Org => "org".to_owned(),
                    crate::store::GroupKindRecord::Department(p) => format!("department {p}"),
                    crate::store::GroupKindRecord::Discussion(o) => {
                        format!("discussion of {}", o.as_deref().unwrap_or("a deleted user"))
                    }
                };
                if json {
                    let list: Vec<_> = groups
                        .iter()
                        .map(|g| {
                            serde_json::json!({"id": hex::encode(g.id), "name": g.name, "kind": kind(g),
                                "version": g.version, "closed": g.closed, "members": g.members})
                        })
                        .collect();
                    println!("{}", serde_json::Value::Array(list));
                } else {
                    for g in &groups {
                        let closed = if g.closed { ", closed" } else { "" };
                        println!(
                            "{:<24} {}  {}, {} members{closed}",
                            g.name,
                            hex::encode(g.id),
                            kind(g),
                            g.members.len()
                        );
                    }
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}

async fn dept(cfg: TrackerConfig, cmd: DeptCmd) -> anyhow::Result<()> {
    let store = open_store(&cfg).await?;
    let result = async {
        match cmd {
            DeptCmd::Add { path } => {
                admin::add_department(&store, &path).await?;
                println!("Added department {path}");
            }
            DeptCmd::List { json } => {
                let depts = store.list_departments().await?;
                if json {
                    let list: Vec<_> = depts
                        .iter()
                        .map(|d| serde_json::json!({"path": d.path, "parent": d.parent_path, "members": d.members}))
                        .collect();
                    println!("{}", serde_json::Value::Array(list));
                } else {
                    for d in depts {
                        let depth = d.path.matches('/').count();
                        let leaf = d.path.rsplit('/').next().unwrap_or(&d.path);
                        println!("{}{} ({})", "  ".repeat(depth), leaf, d.members);
                    }
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}

#[cfg(test)]
mod tests {
    use crate::store::redact_url as redact;

    #[test]
    fn redacts_database_passwords() {
        assert_eq!(redact("postgres://skein:secret@db/skein"), "postgres://skein:***@db/skein");
        assert_eq!(redact("sqlite:///x/tracker.db"), "sqlite:///x/tracker.db");
    }
}
