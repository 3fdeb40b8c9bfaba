//! The `skein` command line.
//!
//! Commands talk to the profile's running daemon over its control socket
//! when there is one, and otherwise open a short session of their own
//! (resuming the saved token, which never makes the user appear online).
//! `--json` prints one JSON document on standard output; failures exit
//! non-zero with a one-line `error:` on standard error. File, image and
//! reaction commands are in [`files`]. Human-readable output shows text that
//! other people chose through [`terminal`], so it cannot drive the terminal;
//! `--json` output is exact.

mod calls;
mod files;
mod plugins;
mod terminal;

use crate::control::{self, ControlReply, ControlRequest};
use crate::daemon;
use crate::json;
use crate::profile::Profile;
use crate::session::{self, parse_status};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use skein_proto::control::{AdminRequest, AdminResponse, DirectoryQuery, Request, Response, Subscription};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// Skein: enterprise messaging, peer to peer.
#[derive(Debug, Parser)]
#[command(name = "skein", version)]
pub struct Cli {
    /// Profile directory holding this device's keys and session.
    #[arg(long, global = true, env = "SKEIN_PROFILE")]
    profile: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Log in; the password comes from SKEIN_PASSWORD or standard input.
    Login {
        /// Tracker address, HOST:PORT.
        #[arg(long)]
        tracker: String,
        /// The organisation CA certificate (the tracker's ca.pem).
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Instead of --ca: the organisation CA's SHA-256 fingerprint, as
        /// `skein-tracker run` prints it; the CA the tracker presents is
        /// used if it matches. Without either, the fingerprint is shown to
        /// confirm on the terminal.
        #[arg(long, conflicts_with = "ca")]
        fingerprint: Option<String>,
        /// User name.
        #[arg(long)]
        user: String,
    },
    /// Run the node: stay connected, show as present, exchange messages, print JSON events.
    Daemon {
        /// UDP address for peer connections (default: all interfaces, random port).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Reach peers only through the tracker's relay: no direct dialing or
        /// hole punching. For testing the relayed path and for locked-down networks.
        #[arg(long)]
        relay_only: bool,
        /// Where accepted files go [default: PROFILE/downloads].
        #[arg(long)]
        download_dir: Option<PathBuf>,
        /// Accept every file offer from users of the organisation, into the
        /// download folder under the offered (sanitised) name.
        #[arg(long)]
        auto_accept: bool,
        /// With --auto-accept, only files up to this many MiB.
        #[arg(long, requires = "auto_accept")]
        auto_accept_max_mib: Option<u64>,
        /// Forward every message this user receives to this https:// (or
        /// http://) URL as signed JSON (a bot); a `text` in the answer is sent back.
        #[arg(long, value_name = "URL")]
        forward_to: Option<String>,
        /// The file holding the secret forwarded messages are signed with
        /// [or SKEIN_FORWARD_SECRET].
        #[arg(long, value_name = "FILE", requires = "forward_to")]
        forward_secret_file: Option<PathBuf>,
        /// For an https:// --forward-to: also trust the certificate
        /// authorities in this PEM file (the system's are trusted already).
        #[arg(long, value_name = "FILE", requires = "forward_to")]
        forward_ca: Option<PathBuf>,
        /// Answer every call at once (for tests and bots).
        #[arg(long)]
        auto_answer: bool,
        /// In calls, send GStreamer's test tone and colour bars instead of
        /// the microphone and camera.
        #[arg(long)]
        test_source: bool,
        /// The microphone for calls, by name (`skein devices` lists them).
        #[arg(long, value_name = "NAME")]
        microphone: Option<String>,
        /// The camera for calls, by name (`skein devices` lists them).
        #[arg(long, value_name = "NAME")]
        camera: Option<String>,
        /// Play the other side of a call on the speaker (otherwise its
        /// audio is decoded and measured only).
        #[arg(long)]
        speaker: bool,
        /// Call video codec: `vp8` for VP8 only; `h264` to insist on H.264
        /// (the daemon does not start without its GStreamer elements), with
        /// VP8 still for peers that lack it. By default H.264 where both
        /// sides have it, otherwise VP8.
        #[arg(long, value_name = "CODEC")]
        video_codec: Option<skein_media::VideoCodec>,
    },
    /// Call a user, or a group of up to 4 (audio and video), and follow the
    /// call: prints `ringing`, `connected` with the path, then statistics
    /// every second (in a group call, each participant's).
    ///
    /// Exits 0 when the call connected and ended with a hang-up.
    Call {
        /// The user to call, or `#group` for a group call.
        user: String,
        /// Send GStreamer's test tone and colour bars instead of the
        /// microphone and camera.
        #[arg(long)]
        test_source: bool,
        /// Audio only.
        #[arg(long)]
        audio_only: bool,
        /// Hang up this many seconds after the call connects (otherwise it
        /// lasts until either side hangs up, or Ctrl+C).
        #[arg(long, value_name = "N")]
        seconds: Option<u64>,
        /// One JSON object per line: the call's states, then `call_stats`.
        #[arg(long)]
        json: bool,
    },
    /// Answer the call that is ringing.
    Answer {
        /// Answer with audio only.
        #[arg(long)]
        audio_only: bool,
        /// Send GStreamer's test tone and colour bars.
        #[arg(long)]
        test_source: bool,
        /// One JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Hang up the current call, or decline the one that is ringing.
    Hangup,
    /// Turn the microphone off (mute) or on in the current call.
    Mic {
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Turn the camera off or on in the current call.
    Camera {
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// List the microphones, cameras and video codecs calls can use; with
    /// --microphone or --camera, tell the running daemon which to use from
    /// its next call on.
    Devices {
        /// One JSON document on standard output.
        #[arg(long)]
        json: bool,
        /// The microphone for the daemon's next calls, by name (`default`: the system's).
        #[arg(long, value_name = "NAME")]
        microphone: Option<String>,
        /// The camera for the daemon's next calls, by name (`default`: the system's).
        #[arg(long, value_name = "NAME")]
        camera: Option<String>,
    },
    /// Send a message; prints `direct`, `relayed` or `queued` once it is delivered or queued.
    ///
    /// A message that starts with a plugin's slash command (`/ticket open
    /// printer broken`) goes to the plugin, and its answer is printed; start
    /// text with `//` to send it with a single leading `/`.
    Send {
        /// Recipient user, or a group (`#name`).
        user: String,
        /// The message.
        text: String,
        /// One JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Show the conversation with a user, or a group (`#name`).
    History {
        /// The other user, or a group.
        user: String,
        /// How many of the latest messages.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// One JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Search the messages kept on this device, in every conversation.
    ///
    /// A message matches when it contains every word, anywhere, also inside
    /// a longer word, ignoring case and accents; quotes, `*` and the like
    /// are searched for as they are. The most relevant come first.
    Search {
        /// What to look for.
        #[arg(value_name = "QUERY", required = true)]
        words: Vec<String>,
        /// Show at most this many messages.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// One JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Show connected peers and how each is reached.
    Peers {
        /// One JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Mark the conversation with a user read (the sender sees a read receipt).
    Read {
        /// The other user.
        user: String,
    },
    /// Show everyone's presence.
    Presence {
        /// One JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Set your status (needs a running daemon to take effect).
    Status {
        /// online, away or busy.
        status: String,
        /// A short note, such as "in a meeting".
        #[arg(long)]
        note: Option<String>,
    },
    /// Search the organisation directory.
    Directory {
        /// Text to match against names, titles and e-mail addresses.
        query: Option<String>,
        /// Only this department and its sub-departments.
        #[arg(long)]
        dept: Option<String>,
        /// One JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Mute a conversation: its messages still count unread, but the
    /// daemon's events say `"muted": true` (a mention of you still notifies).
    Mute {
        /// A user, or a group (`#name` or its id).
        conversation: String,
    },
    /// Unmute a conversation.
    Unmute {
        /// A user, or a group (`#name` or its id).
        conversation: String,
    },
    /// Make, list and change groups (see `skein group --help`).
    #[command(subcommand)]
    Group(GroupCommand),
    /// Install, list and remove plugins, and run their message actions
    /// (see `skein plugin --help`). A message that starts with a plugin's
    /// `/command` goes to the plugin instead of being sent.
    #[command(subcommand)]
    Plugin(plugins::PluginCommand),
    /// Show the department tree.
    Departments {
        /// One JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Offer a file; shows progress and exits 0 once the recipient has it all, verified.
    SendFile {
        /// Recipient user.
        user: String,
        /// The file.
        path: PathBuf,
        /// Offer it under this name.
        #[arg(long)]
        name: Option<String>,
        /// Return once the offer is made, without waiting for the transfer.
        #[arg(long)]
        no_wait: bool,
        /// One JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Send an image: its thumbnail shows at once, the full image is fetched on demand.
    SendImage {
        /// Recipient user.
        user: String,
        /// A PNG, JPEG, GIF or WebP image.
        path: PathBuf,
        /// One JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Accept a file offer (or resume a failed transfer); shows progress until it is saved.
    Accept {
        /// The transfer id (`skein transfers` lists them).
        id: String,
        /// Save into this folder instead of the download folder.
        #[arg(long)]
        to: Option<PathBuf>,
        /// Return once accepted, without waiting for the transfer.
        #[arg(long)]
        no_wait: bool,
        /// One JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Decline a file offer, or stop receiving it.
    Decline {
        /// The transfer id.
        id: String,
    },
    /// List file transfers, or show one.
    Transfers {
        /// One transfer id.
        id: Option<String>,
        /// One JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
    /// React to a message with an emoji (or a :shortcode:), or take it back.
    React {
        /// The message id (`skein history --json` shows ids).
        id: String,
        /// An emoji, such as 👍 or :thumbsup:.
        emoji: String,
        /// Take the reaction back.
        #[arg(long)]
        remove: bool,
    },
    /// Log out: revoke this device's session (and stop its daemon).
    Logout,
    /// Change your password: the current one from `SKEIN_PASSWORD` (or a
    /// prompt), the new one from `SKEIN_NEW_PASSWORD` (or a prompt, twice).
    /// Your other devices are signed out.
    Passwd,
    /// Show what the tracker's relay has carried (administrators only).
    RelayStats {
        /// One JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
}

/// Logs to standard error; `RUST_LOG` selects what (default: warnings).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Without a CA file: the CA the tracker presents, kept in the profile once
/// its fingerprint matches the one given, or the user confirms it.
async fn learn_ca(profile: &Profile, tracker: &str, fingerprint: Option<&str>) -> anyhow::Result<PathBuf> {
    use std::io::IsTerminal;
    let presented = crate::first_contact::fetch_ca(tracker).await?;
    match fingerprint {
        Some(given) if crate::first_contact::same_fingerprint(given, &presented.fingerprint) => {}
        Some(_) => bail!(
            "the tracker at {tracker} presents a CA with the fingerprint {}, not the one given: do not sign in, and tell your administrator",
            presented.fingerprint
        ),
        None if std::io::stdin().is_terminal() => {
            eprintln!("The tracker at {tracker} presents the organisation CA {}", terminal::line(&presented.subject));
            eprintln!("with the SHA-256 fingerprint\n    {}", presented.fingerprint);
            eprint!("Does it match the one your administrator gave you? Type yes to trust it: ");
            let mut answer = String::new();
            std::io::stdin().read_line(&mut answer)?;
            if answer.trim() != "yes" {
                bail!("not trusted: nothing was kept; ask your administrator for the CA file and give it with --ca");
            }
        }
        None => bail!(
            "give the organisation CA with --ca FILE, or its fingerprint with --fingerprint (as `skein-tracker run` prints it)"
        ),
    }
    profile.create()?;
    profile.save_ca(presented.pem.as_bytes())?;
    Ok(profile.ca_path())
}

fn default_profile() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".skein/default")
}

fn read_password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("SKEIN_PASSWORD") {
        return Ok(p);
    }
    let pw = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password: ")?
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

/// The new password for a change: `SKEIN_NEW_PASSWORD`, or asked twice on a
/// terminal. `why` says why one is needed when neither is there.
fn read_new_password(why: &str) -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("SKEIN_NEW_PASSWORD") {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!("{why}: set SKEIN_NEW_PASSWORD to the new password");
    }
    let first = rpassword::prompt_password("New password: ")?;
    let again = rpassword::prompt_password("New password again: ")?;
    if first != again {
        bail!("the two new passwords differ; nothing was changed");
    }
    Ok(first)
}

/// Changes the password over a session of our own.
async fn change_password(conn: &session::Connected, old: String, new: String) -> anyhow::Result<()> {
    match conn.client.request(Request::ChangePassword { old, new }).await? {
        Response::Ok => Ok(()),
        other => bail!("unexpected answer {other:?}"),
    }
}

/// Asks the daemon, if one runs. `Ok(None)`: no daemon.
async fn ask_daemon(profile: &Profile, req: ControlRequest) -> anyhow::Result<Option<Value>> {
    match control::call(&profile.socket_path(), &req).await? {
        None => Ok(None),
        Some(ControlReply { ok: true, data, .. }) => Ok(Some(data)),
        Some(ControlReply { error, code, .. }) => {
            bail!("{} ({})", error.unwrap_or_else(|| "the daemon refused".into()), code.unwrap_or_default())
        }
    }
}

/// Asks the daemon, failing with how to start it when none runs.
async fn need_daemon(profile: &Profile, req: ControlRequest) -> anyhow::Result<Value> {
    match ask_daemon(profile, req).await? {
        Some(v) => Ok(v),
        None => bail!(
            "no daemon is running for this profile: start it with `skein --profile {} daemon`",
            profile.dir().display()
        ),
    }
}

/// One request over a short-lived session of our own.
async fn one_shot(profile: &Profile, req: Request) -> anyhow::Result<Response> {
    let conn = session::resume(profile).await?;
    let resp = conn.client.request(req).await;
    conn.client.close();
    Ok(resp?)
}

/// Group commands. GROUP is `#name` (when only one of your groups has that
/// name) or a group id.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Make a discussion group that you own, with these members.
    Create {
        /// Its name; need not be unique.
        name: String,
        /// Other members, comma-separated user names.
        #[arg(long, value_delimiter = ',')]
        members: Vec<String>,
        /// An org group (administrators): changed by administrators only.
        #[arg(long)]
        org: bool,
        /// One JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Your groups.
    List {
        /// One JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
    /// A group's members.
    Members {
        /// The group.
        group: String,
        /// One JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Invite users (the owner; administrators for org groups).
    Add {
        /// The group.
        group: String,
        /// The users.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Remove users (the owner; administrators for org groups).
    Remove {
        /// The group.
        group: String,
        /// The users.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Leave a group.
    Leave {
        /// The group.
        group: String,
    },
    /// Give a group a new name (the owner).
    Rename {
        /// The group.
        group: String,
        /// The new name.
        name: String,
    },
    /// Close a group for good (the owner).
    Close {
        /// The group.
        group: String,
    },
}

/// A group request, through the daemon when it runs, else over a session
/// of our own.
async fn group_request(profile: &Profile, req: Request) -> anyhow::Result<Response> {
    let encoded = hex::encode(skein_proto::frame::encode_payload(&req)?);
    match ask_daemon(profile, ControlRequest::Group { request: encoded }).await? {
        Some(v) => {
            let hex_response = v["response"].as_str().context("the daemon's answer has no response")?;
            Ok(skein_proto::frame::decode_payload(&hex::decode(hex_response)?)?)
        }
        None => one_shot(profile, req).await,
    }
}

/// Your groups, each certificate checked against the organisation's key.
async fn my_groups(profile: &Profile) -> anyhow::Result<Vec<skein_proto::group::MembershipCert>> {
    let org_key = skein_proto::bytes::PublicKey::from_hex(&profile.session()?.org_signing_key)
        .context("the saved organisation key is unreadable; log in again")?;
    match group_request(profile, Request::GroupList).await? {
        Response::Groups(certs) => {
            for c in &certs {
                skein_certs::verify_membership(&org_key, c)
                    .with_context(|| format!("the tracker sent group {} with a bad certificate", c.body.group))?;
            }
            Ok(certs)
        }
        other => bail!("unexpected answer from the tracker: {other:?}"),
    }
}

/// The conversation a command names: a user's name, or a group's address.
/// A group by id needs no tracker (its history is local, also after leaving
/// it); `#name` is looked up among the user's groups.
async fn conversation_name(profile: &Profile, spec: &str) -> anyhow::Result<String> {
    if let Some(id) = skein_proto::bytes::GroupId::from_hex(spec) {
        return Ok(skein_proto::peer::group_address(&id));
    }
    if spec.starts_with('#') {
        let groups = my_groups(profile).await?;
        return Ok(skein_proto::peer::group_address(&crate::groups::resolve(&groups, spec)?.body.group));
    }
    if let Some(app) = skein_proto::app::app_of(spec.trim()).filter(|a| !a.is_empty()) {
        // An app's conversation, by the app's name as its messages show it.
        return Ok(skein_proto::app::app_sender(app));
    }
    let name = spec.trim().to_lowercase();
    if !skein_proto::limits::valid_user_name(&name) {
        bail!("{spec:?} is neither a user name, a group (#name or a group id) nor an app (app:NAME)");
    }
    Ok(name)
}

/// Mutes or unmutes a conversation: through the daemon when one runs (it
/// keeps the muted conversations in memory, and the change applies to the
/// next message), else in the local history.
async fn set_muted(profile: &Profile, spec: &str, muted: bool) -> anyhow::Result<()> {
    profile.session()?;
    let req = ControlRequest::Mute { conversation: spec.to_owned(), muted };
    if ask_daemon(profile, req).await?.is_some() {
        println!("{} {spec}", if muted { "Muted" } else { "Unmuted" });
        return Ok(());
    }
    let conversation = conversation_name(profile, spec).await?;
    let history = crate::history::History::open(&profile.history_path()).await?;
    let done = history.set_muted(&conversation, muted).await;
    history.close().await;
    done?;
    println!("{} {spec}", if muted { "Muted" } else { "Unmuted" });
    Ok(())
}

/// Runs a group command.
async fn run_group(profile: &Profile, cmd: GroupCommand) -> anyhow::Result<()> {
    use skein_proto::control::{GroupCreate, GroupUpdate};
    let changed = |resp: Response| -> anyhow::Result<skein_proto::group::GroupEvent> {
        match resp {
            Response::Group(ev) => Ok(ev),
            other => bail!("unexpected answer from the tracker: {other:?}"),
        }
    };
    let (group, update) = match cmd {
        GroupCommand::Create { name, members, org, json } => {
            let ev = changed(group_request(profile, Request::GroupCreate(GroupCreate { name, members, org })).await?)?;
            if json {
                println!("{}", crate::groups::group(&ev.cert));
            } else {
                let b = &ev.cert.body;
                println!("Made #{} ({}) with {}", terminal::line(&b.name), b.group, b.members.join(", "));
            }
            return Ok(());
        }
        GroupCommand::List { json } => {
            let groups = my_groups(profile).await?;
            if json {
                println!("{}", Value::Array(groups.iter().map(crate::groups::group).collect()));
            } else {
                for g in &groups {
                    let b = &g.body;
                    let state = if b.closed { ", closed" } else { "" };
                    println!("#{:<24} {}  {} members{state}", terminal::line(&b.name), b.group, b.members.len());
                }
            }
            return Ok(());
        }
        GroupCommand::Members { group, json } => {
            let groups = my_groups(profile).await?;
            let g = crate::groups::resolve(&groups, &group)?;
            if json {
                println!("{}", Value::Array(g.body.members.iter().map(|m| json!(m)).collect()));
            } else {
                for m in &g.body.members {
                    println!("{m}");
                }
            }
            return Ok(());
        }
        GroupCommand::Add { group, users } => (group, GroupUpdate::Add(users)),
        GroupCommand::Remove { group, users } => (group, GroupUpdate::Remove(users)),
        GroupCommand::Leave { group } => (group, GroupUpdate::Leave),
        GroupCommand::Rename { group, name } => (group, GroupUpdate::Rename(name)),
        GroupCommand::Close { group } => (group, GroupUpdate::Close),
    };
    let groups = my_groups(profile).await?;
    let id = crate::groups::resolve(&groups, &group)?.body.group;
    let ev = changed(group_request(profile, Request::GroupUpdate { group: id, update }).await?)?;
    println!("{}", terminal::line(&crate::groups::describe(&ev.actor, &ev.change)));
    Ok(())
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let profile = Profile::new(cli.profile.unwrap_or_else(default_profile));
    match cli.command {
        Command::Login { tracker, ca, user, fingerprint } => {
            let ca = match ca {
                Some(ca) => ca,
                None => learn_ca(&profile, &tracker, fingerprint.as_deref()).await?,
            };
            let password = read_password()?;
            let conn = session::login(&profile, &tracker, &ca, &user, password.clone()).await?;
            if conn.password_change_required {
                eprintln!("The password of {user} is a one-time password; choose your own now.");
                let why =
                    format!("{user} logged in with a one-time password, which must be changed before anything else");
                let changed = match read_new_password(&why) {
                    Ok(new) => change_password(&conn, password, new).await,
                    Err(e) => Err(e),
                };
                conn.client.close();
                changed.context("the profile is logged in, but until the password is changed (`skein passwd`) the tracker allows nothing else")?;
                eprintln!("Password changed.");
            }
            conn.client.close();
            let s = &conn.saved;
            println!(
                "Logged in as {} to {} ({}) on tracker {}; profile {}",
                terminal::line(&s.user),
                terminal::line(&s.org),
                if s.admin { "administrator" } else { "member" },
                s.tracker,
                profile.dir().display()
            );
            Ok(())
        }
        Command::Daemon {
            listen,
            relay_only,
            download_dir,
            auto_accept,
            auto_accept_max_mib,
            forward_to,
            forward_secret_file,
            forward_ca,
            auto_answer,
            test_source,
            microphone,
            camera,
            speaker,
            video_codec,
        } => {
            let video_codecs = match video_codec {
                None => Vec::new(),
                Some(codec) => {
                    // Asked for by name, it must be there: the error names what is missing.
                    skein_media::codecs::usable(&[codec])
                        .with_context(|| format!("--video-codec {codec} cannot be used on this machine"))?;
                    // VP8 is every node's common ground.
                    let mut codecs = vec![skein_media::VideoCodec::Vp8];
                    codecs.extend(Some(codec).filter(|c| *c != skein_media::VideoCodec::Vp8));
                    codecs
                }
            };
            let forward = match forward_to {
                None => None,
                Some(url) => {
                    let secret = match (&forward_secret_file, std::env::var("SKEIN_FORWARD_SECRET")) {
                        (Some(f), _) => std::fs::read(f)
                            .with_context(|| format!("cannot read the forwarding secret {}", f.display()))?
                            .trim_ascii()
                            .to_vec(),
                        (None, Ok(s)) => s.trim().as_bytes().to_vec(),
                        (None, Err(_)) => bail!(
                            "--forward-to needs the secret its posts are signed with: --forward-secret-file FILE \
                             or SKEIN_FORWARD_SECRET"
                        ),
                    };
                    let mut forward = crate::forward::Forward::new(&url, secret).map_err(anyhow::Error::msg)?;
                    if let Some(ca) = &forward_ca {
                        forward = forward.trust(ca).map_err(anyhow::Error::msg)?;
                    }
                    Some(forward)
                }
            };
            let stop = CancellationToken::new();
            let signal_stop = stop.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                signal_stop.cancel();
            });
            let mut options = daemon::DaemonOptions {
                relay_only,
                download_dir,
                auto_accept,
                auto_accept_max: auto_accept_max_mib.map(|m| m.saturating_mul(1 << 20)),
                forward,
                auto_answer,
                media: crate::calls::MediaConfig {
                    test_source,
                    microphone,
                    camera,
                    speaker,
                    video_codecs,
                    pictures: None,
                },
                ..Default::default()
            };
            if let Some(addr) = listen {
                options.listen.push(crate::mesh::quic_addr(addr));
            }
            daemon::run(profile, options, stop).await?;
            Ok(())
        }
        Command::Send { user, text, json } => {
            let v = need_daemon(&profile, ControlRequest::Send { to: user, text }).await?;
            if v.get("plugin").is_some() {
                plugins::print_outcome(&v, json);
            } else if json {
                println!("{v}");
            } else {
                println!("{}", field(&v, "path", "?"));
            }
            Ok(())
        }
        Command::Call { user, test_source, audio_only, seconds, json } => {
            calls::call(&profile, calls::CallArgs { user, test_source, audio_only, seconds, json }).await
        }
        Command::Answer { audio_only, test_source, json } => {
            calls::answer(&profile, audio_only, test_source, json).await
        }
        Command::Hangup => calls::hang_up(&profile).await,
        Command::Mic { state } => calls::controls(&profile, Some(state == "off"), None).await,
        Command::Camera { state } => calls::controls(&profile, None, Some(state == "on")).await,
        Command::Devices { json, microphone: None, camera: None } => calls::devices(json),
        Command::Devices { json, microphone, camera } => calls::use_devices(&profile, microphone, camera, json).await,
        Command::Mute { conversation } => set_muted(&profile, &conversation, true).await,
        Command::Unmute { conversation } => set_muted(&profile, &conversation, false).await,
        Command::History { user, limit, json } => {
            profile.session()?;
            let user = conversation_name(&profile, &user).await?;
            let history = crate::history::History::open(&profile.history_path()).await?;
            let msgs = history.messages(&user, limit, None).await?;
            // A group's event lines from the first message shown on (all of
            // them when the whole conversation is shown).
            let whole = msgs.len() < limit as usize;
            let events = if user.starts_with('#') {
                let since = if whole { 0 } else { msgs.first().map_or(0, |m| m.hlc) };
                history.events(&user, since).await?
            } else {
                Vec::new()
            };
            let mut reactions = Vec::with_capacity(msgs.len());
            let mut members = Vec::with_capacity(msgs.len());
            for m in &msgs {
                reactions.push(history.reactions(m.id).await?);
                let group_sent = m.outgoing && m.conversation.starts_with('#');
                members.push(if group_sent { history.member_states(m.id).await? } else { Vec::new() });
            }
            history.close().await;
            if json {
                let mut list: Vec<(u64, Value)> = msgs
                    .iter()
                    .zip(&reactions)
                    .zip(&members)
                    .map(|((m, r), s)| (m.hlc, json::stored_message(m, r, s)))
                    .collect();
                list.extend(events.iter().map(|e| {
                    let at_ms = crate::hlc::physical_ms(e.hlc);
                    (e.hlc, json!({"type": "event", "actor": e.actor, "text": e.text, "at_ms": at_ms}))
                }));
                // Stable: messages keep the history's order among themselves.
                list.sort_by_key(|(hlc, _)| *hlc);
                println!("{}", Value::Array(list.into_iter().map(|(_, v)| v).collect()));
            } else {
                let mut lines: Vec<(u64, String)> = msgs
                    .iter()
                    .zip(&reactions)
                    .zip(&members)
                    .map(|((m, r), s)| (m.hlc, history_line(m, r, s)))
                    .collect();
                lines.extend(events.iter().map(|e| {
                    let at = json::clock(crate::hlc::physical_ms(e.hlc));
                    (e.hlc, format!("{at}  -- {}", terminal::line(&e.text)))
                }));
                lines.sort_by_key(|(hlc, _)| *hlc);
                for (_, line) in lines {
                    println!("{line}");
                }
            }
            Ok(())
        }
        Command::Search { words, limit, json } => search(&profile, &words.join(" "), limit, json).await,
        Command::Peers { json } => {
            let v = need_daemon(&profile, ControlRequest::Peers).await?;
            if json {
                println!("{v}");
            } else {
                for p in v.as_array().into_iter().flatten() {
                    println!(
                        "{:<16} {:<8} {:<50} {:<10} {}",
                        field(p, "user", "?"),
                        field(p, "path", "?"),
                        field(p, "remote", "?"),
                        p["rtt_ms"].as_f64().map(|r| format!("{r:.1} ms")).unwrap_or_default(),
                        if p["nearby"].as_bool() == Some(true) { "same network" } else { "" }
                    );
                }
            }
            Ok(())
        }
        Command::Read { user } => {
            let v = need_daemon(&profile, ControlRequest::Read { user: user.clone() }).await?;
            println!("Marked {} message(s) from {user} read", v["read"]);
            Ok(())
        }
        Command::Presence { json } => {
            let entries = match ask_daemon(&profile, ControlRequest::Presence).await? {
                Some(v) => v,
                None => match one_shot(&profile, Request::SubscribePresence(Subscription::All)).await? {
                    Response::PresenceSnapshot(list) => Value::Array(list.iter().map(json::presence).collect()),
                    other => bail!("unexpected answer from the tracker: {other:?}"),
                },
            };
            if json {
                println!("{entries}");
            } else {
                let now = crate::now_ms();
                for e in entries.as_array().into_iter().flatten() {
                    let status = e["status"].as_str().unwrap_or("?");
                    let when = if status == "offline" {
                        json::ago(e["last_seen_ms"].as_u64().unwrap_or(0), now)
                    } else {
                        String::new()
                    };
                    let note = e["note"].as_str().map(|n| format!("\"{}\"", terminal::line(n))).unwrap_or_default();
                    println!("{:<20} {:<8} {} {}", field(e, "user", "?"), terminal::line(status), when, note);
                }
            }
            Ok(())
        }
        Command::Status { status, note } => {
            let st = parse_status(&status).map_err(anyhow::Error::msg)?;
            match ask_daemon(&profile, ControlRequest::Status { status: st.as_str().into(), note }).await? {
                Some(_) => println!("Status set to {}", st.as_str()),
                None => {
                    let mut s = profile.session()?;
                    s.status = st.as_str().to_owned();
                    profile.save_session(&s)?;
                    println!(
                        "Status {} saved; it takes effect when `skein --profile {} daemon` runs",
                        st.as_str(),
                        profile.dir().display()
                    );
                }
            }
            Ok(())
        }
        Command::Directory { query, dept, json } => {
            let users =
                match ask_daemon(&profile, ControlRequest::Directory { query: query.clone(), dept: dept.clone() })
                    .await?
                {
                    Some(v) => v,
                    None => {
                        let q = DirectoryQuery { text: query, department: dept, offset: 0, limit: 500 };
                        match one_shot(&profile, Request::Directory(q)).await? {
                            Response::Directory(page) => Value::Array(page.users.iter().map(json::user).collect()),
                            other => bail!("unexpected answer from the tracker: {other:?}"),
                        }
                    }
                };
            if json {
                println!("{users}");
            } else {
                for u in users.as_array().into_iter().flatten() {
                    println!(
                        "{:<20} {:<28} {:<24} {:<20} {}",
                        field(u, "name", "?"),
                        field(u, "display_name", ""),
                        field(u, "department", "-"),
                        field(u, "title", "-"),
                        field(u, "status", "?"),
                    );
                }
            }
            Ok(())
        }
        Command::Group(cmd) => run_group(&profile, cmd).await,
        Command::Plugin(cmd) => plugins::run(&profile, cmd).await,
        Command::Departments { json } => {
            let depts = match ask_daemon(&profile, ControlRequest::Departments).await? {
                Some(v) => v,
                None => match one_shot(&profile, Request::Departments).await? {
                    Response::Departments(d) => Value::Array(d.iter().map(json::department).collect()),
                    other => bail!("unexpected answer from the tracker: {other:?}"),
                },
            };
            if json {
                println!("{depts}");
            } else {
                for d in depts.as_array().into_iter().flatten() {
                    let path = field(d, "path", "?");
                    let depth = path.matches('/').count();
                    println!("{}{} ({})", "  ".repeat(depth), path.rsplit('/').next().unwrap_or(&path), d["members"]);
                }
            }
            Ok(())
        }
        Command::RelayStats { json } => {
            let stats = match one_shot(&profile, Request::Admin(AdminRequest::RelayStats)).await? {
                Response::Admin(AdminResponse::RelayStats(s)) => s,
                other => bail!("unexpected answer from the tracker: {other:?}"),
            };
            let peer =
                |b: &[u8]| libp2p::PeerId::from_bytes(b).map(|p| p.to_string()).unwrap_or_else(|_| hex::encode(b));
            if json {
                let peers: Vec<Value> =
                    stats.peers.iter().map(|p| json!({"peer_id": peer(&p.peer_id), "rx": p.rx, "tx": p.tx})).collect();
                let v = json!({
                    "total_relayed_bytes": stats.total_relayed_bytes,
                    "reservations": stats.reservations,
                    "circuits": stats.circuits,
                    "peers": peers,
                });
                println!("{v}");
            } else {
                println!(
                    "relayed {} bytes in total; {} reservations, {} circuits",
                    stats.total_relayed_bytes, stats.reservations, stats.circuits
                );
                for p in &stats.peers {
                    println!("{:<54} sent {:>12}  received {:>12}", peer(&p.peer_id), p.rx, p.tx);
                }
            }
            Ok(())
        }
        Command::SendFile { user, path, name, no_wait, json } => {
            files::send_file(&profile, user, path, name, no_wait, json).await
        }
        Command::SendImage { user, path, json } => files::send_image(&profile, user, path, json).await,
        Command::Accept { id, to, no_wait, json } => files::accept(&profile, id, to, no_wait, json).await,
        Command::Decline { id } => files::decline(&profile, id).await,
        Command::Transfers { id, json } => files::transfers(&profile, id, json).await,
        Command::React { id, emoji, remove } => files::react(&profile, id, emoji, remove).await,
        Command::Passwd => {
            let user = profile.session()?.user;
            let old = read_password()?;
            let new = read_new_password("no new password given")?;
            let request =
                ControlRequest::ChangePassword { old: control::Secret(old.clone()), new: control::Secret(new.clone()) };
            if ask_daemon(&profile, request).await?.is_none() {
                let conn = session::resume(&profile).await?;
                let changed = change_password(&conn, old, new).await;
                conn.client.close_and_wait(std::time::Duration::from_secs(1)).await;
                changed?;
            }
            println!("Changed the password of {user}; its other devices were signed out");
            Ok(())
        }
        Command::Logout => {
            if ask_daemon(&profile, ControlRequest::Logout).await?.is_none() {
                let user = profile.session()?.user;
                match session::resume(&profile).await {
                    Ok(conn) => {
                        let r = conn.client.request(Request::Logout).await;
                        conn.client.close();
                        r?;
                    }
                    // Already ended on the tracker: forgetting it locally is all that is left.
                    Err(e) if e.code().is_some() => {}
                    Err(e) => return Err(e.into()),
                }
                profile.clear_session()?;
                println!("Logged out {user}");
            } else {
                println!("Logged out; the daemon has stopped");
            }
            Ok(())
        }
    }
}

/// `v[key]` as a string for people, with `default` when it is missing.
fn field<'a>(v: &'a Value, key: &str, default: &'a str) -> std::borrow::Cow<'a, str> {
    terminal::line(v[key].as_str().unwrap_or(default))
}

/// One message of `skein history` for people: time, sender, content, state
/// and reactions, with everything the peer chose escaped.
/// A message this device sent to a group shows how far it got with its
/// members (`members`: each member's state).
fn history_line(
    m: &crate::history::StoredMessage,
    reactions: &[(String, String)],
    members: &[(String, String)],
) -> String {
    let state = match (m.outgoing, members.is_empty()) {
        (false, _) => String::new(),
        (true, true) => format!(" [{}]", terminal::line(&m.state)),
        (true, false) => format!(" [{}]", group_progress(members)),
    };
    let r: Vec<String> =
        reactions.iter().map(|(e, u)| format!("{} {}", terminal::line(e), terminal::line(u))).collect();
    let r = if r.is_empty() { String::new() } else { format!("  ({})", r.join(", ")) };
    let body = json::body_line(&m.body);
    let body = match &m.body {
        skein_proto::peer::MessageBody::Text(_) => terminal::text(&body, "    "),
        _ => terminal::line(&body),
    };
    format!("{} {}: {}{}{}", json::clock(m.sent_at_ms), terminal::line(&m.from_user), body, state, r)
}

/// `skein search`: reads the local history, so it needs no daemon.
async fn search(profile: &Profile, query: &str, limit: u32, json: bool) -> anyhow::Result<()> {
    profile.session()?;
    let history = crate::history::History::open(&profile.history_path()).await?;
    let hits = history.search(query, limit).await;
    history.close().await;
    let hits = hits?;
    if json {
        let list: Vec<Value> = hits
            .iter()
            .map(|h| {
                json!({
                    "id": h.id.to_hex(),
                    "conversation": h.conversation,
                    "from": h.from_user,
                    "sent_at_ms": h.sent_at_ms,
                    "text": h.text,
                    "snippet": h.snippet,
                })
            })
            .collect();
        println!("{}", Value::Array(list));
    } else {
        for h in &hits {
            println!("{}", search_line(h));
        }
    }
    Ok(())
}

/// One hit of `skein search` for people: when (UTC), the conversation, the
/// sender and the snippet on one line, matches in brackets and everything
/// the peer chose escaped.
fn search_line(hit: &crate::history::SearchHit) -> String {
    let mut snippet = String::new();
    for (part, matched) in hit.snippet_parts() {
        let part = terminal::line(&part.replace(['\n', '\t'], " ")).into_owned();
        if matched {
            snippet.push('[');
            snippet.push_str(&part);
            snippet.push(']');
        } else {
            snippet.push_str(&part);
        }
    }
    format!(
        "{}  {}  {}: {}",
        date_time(hit.sent_at_ms),
        terminal::line(&hit.conversation),
        terminal::line(&hit.from_user),
        snippet
    )
}

/// `YYYY-MM-DD HH:MM` in UTC, for a time in ms since the Unix epoch.
fn date_time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, of_day) = (secs / 86_400, secs % 86_400);
    // Days to a civil date (Howard Hinnant's `civil_from_days`), with eras
    // of 400 years counted from 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}", of_day / 3600, of_day / 60 % 60)
}

/// How far a group message got: "delivered to 2 of 3, read by 1",
/// "read by all"; members still waiting for it make it "queued".
fn group_progress(members: &[(String, String)]) -> String {
    let n = members.len();
    let read = members.iter().filter(|(_, s)| s == "read").count();
    let got = members.iter().filter(|(_, s)| s == "delivered" || s == "read").count();
    match (got, read) {
        (0, _) => "queued".to_owned(),
        (_, r) if r == n => "read by all".to_owned(),
        (g, 0) if g == n => "delivered to all".to_owned(),
        (g, r) if g == n => format!("delivered to all, read by {r}"),
        (g, 0) => format!("delivered to {g} of {n}"),
        (g, r) => format!("delivered to {g} of {n}, read by {r}"),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::StoredMessage;
    use skein_proto::bytes::{ContentHash, DeviceId, MailId};
    use skein_proto::file::FileOffer;
    use skein_proto::peer::MessageBody;

    fn stored(from_user: &str, body: MessageBody) -> StoredMessage {
        StoredMessage {
            seq: 1,
            id: MailId([1; 16]),
            conversation: "alice bob".into(),
            from_user: from_user.into(),
            from_device: DeviceId([2; 16]),
            to_user: "alice".into(),
            sent_at_ms: 45_296_000,
            stored_at_ms: 45_296_001,
            body,
            outgoing: false,
            state: "received".into(),
            delivered_at_ms: None,
            read_at_ms: None,
            path: Some("direct".into()),
            hlc: 0,
            group_seq: 0,
        }
    }

    #[test]
    fn history_shows_escapes_instead_of_sending_them_to_the_terminal() {
        let text = "hi\u{1b}[2J\u{1b}]0;owned\u{7}\rok\nfake\u{202e}txt.exe";
        let m = stored("bob\u{1b}[8m", MessageBody::Text(text.into()));
        let reactions = [("👍\u{9b}31m".to_owned(), "carol\u{2067}".to_owned())];
        let line = history_line(&m, &reactions, &[]);
        assert_eq!(
            line,
            "12:34:56 bob\\x1b[8m: hi\\x1b[2J\\x1b]0;owned\\x07\\x0dok\n    fake\\u{202e}txt.exe  \
             (👍\\x9b31m carol\\u{2067})"
        );
        assert!(!line.chars().any(|c| c.is_control() && c != '\n'), "{line:?}");

        let offer = FileOffer { name: "a\u{202e}fdp.exe\n".into(), size: 10, root: ContentHash([0; 32]) };
        let line = history_line(&stored("bob", MessageBody::File(offer)), &[], &[]);
        assert_eq!(line, "12:34:56 bob: [file] a\\u{202e}fdp.exe\\x0a (10 B)");
    }

    #[test]
    fn a_group_message_shows_how_far_it_got_with_its_members() {
        let states = |s: &[&str]| -> Vec<(String, String)> {
            s.iter().enumerate().map(|(i, s)| (format!("u{i}"), (*s).to_owned())).collect()
        };
        let progress = |s: &[&str]| group_progress(&states(s));
        assert_eq!(progress(&["queued", "queued"]), "queued");
        assert_eq!(progress(&["delivered", "queued", "queued"]), "delivered to 1 of 3");
        assert_eq!(progress(&["read", "delivered", "queued"]), "delivered to 2 of 3, read by 1");
        assert_eq!(progress(&["delivered", "delivered"]), "delivered to all");
        assert_eq!(progress(&["read", "delivered"]), "delivered to all, read by 1");
        assert_eq!(progress(&["read", "read"]), "read by all");
        let mut m = stored("alice", MessageBody::Text("hi".into()));
        m.outgoing = true;
        assert_eq!(
            history_line(&m, &[], &states(&["read", "queued"])),
            "12:34:56 alice: hi [delivered to 1 of 2, read by 1]"
        );
    }

    #[test]
    fn search_lines_show_when_where_who_and_the_marked_snippet_escaped() {
        use crate::history::search::{HIGHLIGHT_END, HIGHLIGHT_START};
        let hit = crate::history::SearchHit {
            id: MailId([1; 16]),
            conversation: "#0123".into(),
            from_user: "bob\u{1b}[8m".into(),
            sent_at_ms: 1_709_210_096_000,
            text: String::new(),
            snippet: format!("…the\n{HIGHLIGHT_START}plan\u{1b}[2J{HIGHLIGHT_END} is\r\u{202e}"),
        };
        assert_eq!(search_line(&hit), "2024-02-29 12:34  #0123  bob\\x1b[8m: …the [plan\\x1b[2J] is\\x0d\\u{202e}");
        assert_eq!(date_time(0), "1970-01-01 00:00");
        assert_eq!(date_time(951_782_400_000), "2000-02-29 00:00");
        assert_eq!(date_time(4_102_444_799_999), "2099-12-31 23:59");
    }

    #[test]
    fn json_history_keeps_the_exact_text() {
        let text = "hi\u{1b}[2J\n\u{202e}";
        let v = json::stored_message(&stored("bob\u{7}", MessageBody::Text(text.into())), &[], &[]);
        assert_eq!(v["text"], text);
        assert_eq!(v["from"], "bob\u{7}");
    }
}
