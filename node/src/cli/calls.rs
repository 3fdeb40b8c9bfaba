//! `skein call`, `answer`, `hangup`, `mic`, `camera` and `devices`.
//!
//! `skein call` places the call (to a user, or to a `#group`) through the
//! daemon and follows it by asking a few times a second: it prints
//! `ringing`, then `connected` with the path, then the statistics once a
//! second (in a group call, each participant's, and each participant's
//! comings and goings), and hangs up after
//! `--seconds` (or on Ctrl+C). It exits 0 when the call connected and
//! ended with a hang-up, by either side.

use super::{need_daemon, shutdown_signal};
use crate::control::ControlRequest;
use crate::profile::Profile;
use anyhow::bail;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

/// How often `skein call` asks the daemon.
const POLL: Duration = Duration::from_millis(200);
/// How long `skein call` waits for a hung-up call to be reported over.
const ENDING: Duration = Duration::from_secs(5);

/// What `skein call` was asked.
#[derive(Debug, Clone)]
pub(super) struct CallArgs {
    pub user: String,
    pub test_source: bool,
    pub audio_only: bool,
    pub seconds: Option<u64>,
    pub json: bool,
}

/// Prints a line; an error when standard output is gone (a closed pipe),
/// so the call is hung up rather than left running unseen.
fn out(line: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_fmt(line)?;
    stdout.write_all(b"\n")?;
    stdout.flush()
}

fn print_state(v: &Value, json_out: bool) -> std::io::Result<()> {
    if json_out {
        let mut line = v.clone();
        if let Some(o) = line.as_object_mut() {
            o.remove("stats");
        }
        return out(format_args!("{line}"));
    }
    match v["state"].as_str().unwrap_or("?") {
        "connected" => out(format_args!("connected ({})", v["path"].as_str().unwrap_or("unknown path"))),
        "ended" => out(format_args!("ended: {}", v["reason"].as_str().unwrap_or("?"))),
        other => out(format_args!("{other}")),
    }
}

/// A statistics line; in a group call, saying whose figures they are.
fn print_stats(s: &Value, json_out: bool, whose: bool) -> std::io::Result<()> {
    if json_out {
        return out(format_args!("{s}"));
    }
    let num = |k: &str| s[k].as_f64().map_or("-".to_owned(), |x| format!("{x}"));
    let with = if whose { format!("{}: ", s["with"].as_str().unwrap_or("?")) } else { String::new() };
    let codec = match s["video_codec"].as_str().and_then(|c| c.parse::<skein_media::VideoCodec>().ok()) {
        Some(c) => format!(" {}", c.label()),
        None => String::new(),
    };
    out(format_args!(
        "{with}{}s {} rtt {} ms, loss {}%, audio {} kbit/s, video{codec} {} kbit/s, {} fps, {} frames, {} audio gaps, latency audio {} ms video {} ms",
        s["seconds"],
        s["path"].as_str().unwrap_or("?"),
        num("rtt_ms"),
        num("loss_pct"),
        num("audio_kbps"),
        num("video_kbps"),
        num("fps"),
        s["frames_received"],
        s["audio_gaps"],
        num("audio_latency_ms"),
        num("video_latency_ms"),
    ))
}

pub(super) async fn call(profile: &Profile, args: CallArgs) -> anyhow::Result<()> {
    let req =
        ControlRequest::Call { to: args.user.clone(), audio_only: args.audio_only, test_source: args.test_source };
    let placed = need_daemon(profile, req).await?;
    let id = placed["call"].as_str().unwrap_or_default().to_owned();
    if args.json {
        println!(
            "{}",
            json!({"type": "call", "call": id, "with": args.user, "state": "calling", "devices": placed["devices"]})
        );
    } else {
        println!("calling {} ({} device(s) online)", args.user, placed["devices"]);
    }
    let interrupted = shutdown_signal();
    tokio::pin!(interrupted);
    let mut seen = Followed { state: "calling".into(), ..Followed::default() };
    let mut connected_at: Option<tokio::time::Instant> = None;
    let mut hung_up_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = &mut interrupted, if hung_up_at.is_none() => {
                hung_up_at = Some(tokio::time::Instant::now());
                let _ = need_daemon(profile, ControlRequest::HangUp).await;
            }
            _ = tokio::time::sleep(POLL) => {}
        }
        let v = need_daemon(profile, ControlRequest::CallStatus).await?;
        if v["call"].as_str() != Some(id.as_str()) {
            bail!("the daemon has no call {id} any more (it restarted?)");
        }
        if let Err(e) = follow(&v, &id, &args, &mut seen) {
            if hung_up_at.is_none() {
                let _ = need_daemon(profile, ControlRequest::HangUp).await;
            }
            bail!("cannot print ({e}); the call was hung up");
        }
        if seen.state == "connected" && connected_at.is_none() {
            connected_at = Some(tokio::time::Instant::now());
        }
        if seen.state == "ended" {
            let reason = v["reason"].as_str().unwrap_or_default();
            let connected = v["connected"].as_bool().unwrap_or(false);
            if connected && reason.starts_with("hung up") {
                return Ok(());
            }
            if connected {
                bail!("the call with {} broke off: {reason}", args.user);
            }
            bail!("the call to {} ended without being answered: {reason}", args.user);
        }
        if let (Some(secs), Some(at), None) = (args.seconds, connected_at, hung_up_at)
            && at.elapsed() >= Duration::from_secs(secs)
        {
            hung_up_at = Some(tokio::time::Instant::now());
            need_daemon(profile, ControlRequest::HangUp).await?;
        }
        if hung_up_at.is_some_and(|t| t.elapsed() > ENDING) {
            bail!("the call was hung up but the daemon did not report it over within {ENDING:?}");
        }
    }
}

/// What `skein call` has printed so far.
#[derive(Debug, Default)]
struct Followed {
    state: String,
    /// States printed, of those the call went through.
    printed: usize,
    /// Each participant's last statistics line seen, and state printed.
    stats: HashMap<String, Value>,
    participants: HashMap<String, String>,
}

/// Prints what is new in the call's status `v`: the states passed through
/// since the last look (ringing may be over before it is seen), each
/// participant's new statistics line, in a group call each participant's
/// changes, and the call's current state with its details.
fn follow(v: &Value, id: &str, args: &CallArgs, seen: &mut Followed) -> std::io::Result<()> {
    let now_state = v["state"].as_str().unwrap_or_default().to_owned();
    let states: Vec<&str> = v["states"].as_array().map_or(Vec::new(), |s| s.iter().filter_map(Value::as_str).collect());
    for (i, passed) in states.iter().enumerate().skip(seen.printed) {
        if i + 1 == states.len() {
            break;
        }
        if *passed != "calling" {
            print_state(&json!({"type": "call", "call": id, "with": args.user, "state": passed}), args.json)?;
        }
        seen.printed = i + 1;
    }
    // The call's new state, before what happened in it; its end, after.
    let changed = now_state != seen.state;
    if changed && now_state != "ended" {
        print_state(v, args.json)?;
    }
    let group = v.get("group").is_some();
    let participants = v["participants"].as_array().map_or(&[][..], |p| p.as_slice());
    for p in participants {
        let user = p["user"].as_str().unwrap_or_default();
        let state = p["state"].as_str().unwrap_or_default();
        if group && seen.participants.get(user).map(String::as_str) != Some(state) {
            seen.participants.insert(user.to_owned(), state.to_owned());
            print_participant(id, p, args.json)?;
        }
        let Some(s) = p.get("stats").filter(|s| s["call"].as_str() == Some(id)) else { continue };
        if seen.stats.get(user).is_some_and(|last| last["at_ms"] == s["at_ms"]) {
            continue;
        }
        if now_state == "connected" || s["final"] == json!(true) {
            print_stats(s, args.json, group)?;
        }
        seen.stats.insert(user.to_owned(), s.clone());
    }
    if changed {
        if now_state == "ended" {
            print_state(v, args.json)?;
        }
        seen.state = now_state;
        seen.printed = states.len();
    }
    Ok(())
}

/// A group call's participant, as they join, ring, connect and leave.
fn print_participant(id: &str, p: &Value, json_out: bool) -> std::io::Result<()> {
    let (user, state) = (p["user"].as_str().unwrap_or("?"), p["state"].as_str().unwrap_or("?"));
    if json_out {
        let mut line = json!({"type": "call_participant", "call": id, "user": user, "state": state});
        for key in ["path", "reason"] {
            if let Some(x) = p.get(key).filter(|x| !x.is_null()) {
                line[key] = x.clone();
            }
        }
        return out(format_args!("{line}"));
    }
    match (state, p["path"].as_str(), p["reason"].as_str()) {
        ("connected", Some(path), _) => out(format_args!("  {user}: connected ({path})")),
        ("ended", _, Some(reason)) => out(format_args!("  {user}: ended: {reason}")),
        (state, _, _) => out(format_args!("  {user}: {state}")),
    }
}

pub(super) async fn answer(
    profile: &Profile,
    audio_only: bool,
    test_source: bool,
    json_out: bool,
) -> anyhow::Result<()> {
    let v = need_daemon(profile, ControlRequest::Answer { audio_only, test_source }).await?;
    if json_out {
        println!("{v}");
    } else {
        println!("answered the call from {}", v["with"].as_str().unwrap_or("?"));
    }
    Ok(())
}

pub(super) async fn hang_up(profile: &Profile) -> anyhow::Result<()> {
    let v = need_daemon(profile, ControlRequest::HangUp).await?;
    println!("{}", v["reason"].as_str().or(v["state"].as_str()).unwrap_or("hung up"));
    Ok(())
}

pub(super) async fn controls(profile: &Profile, muted: Option<bool>, camera: Option<bool>) -> anyhow::Result<()> {
    let v = need_daemon(profile, ControlRequest::CallControls { muted, camera }).await?;
    let on_off = |b: bool| if b { "on" } else { "off" };
    println!(
        "microphone {}, camera {}",
        on_off(!v["muted"].as_bool().unwrap_or(false)),
        on_off(v["camera"].as_bool().unwrap_or(false))
    );
    Ok(())
}

/// Tells the daemon which microphone and camera its next calls use.
pub(super) async fn use_devices(
    profile: &Profile,
    microphone: Option<String>,
    camera: Option<String>,
    json_out: bool,
) -> anyhow::Result<()> {
    let named = |n: String| if n == "default" { String::new() } else { n };
    let request = ControlRequest::SetCallDevices { microphone: microphone.map(named), camera: camera.map(named) };
    let v = need_daemon(profile, request).await?;
    if json_out {
        println!("{v}");
        return Ok(());
    }
    let name = |k: &str| v[k].as_str().map_or_else(|| "the system's default".to_owned(), |n| format!("{n:?}"));
    println!("the next calls use microphone {}, camera {}", name("microphone"), name("camera"));
    Ok(())
}

pub(super) fn devices(json_out: bool) -> anyhow::Result<()> {
    use skein_media::VideoCodec;
    let found = skein_media::devices::list()?;
    let codecs: Vec<(VideoCodec, Result<(), skein_media::MediaError>)> =
        VideoCodec::ALL.into_iter().map(|c| (c, skein_media::codecs::can_use(c))).collect();
    if json_out {
        let mut list: Vec<Value> = found.iter().map(|d| json!({"kind": d.kind, "name": d.name})).collect();
        list.extend(
            codecs.iter().filter(|(_, ok)| ok.is_ok()).map(|(c, _)| json!({"kind": "video_codec", "name": c.name()})),
        );
        println!("{}", Value::Array(list));
        return Ok(());
    }
    if found.is_empty() {
        println!("no microphone or camera found (calls can still use --test-source)");
    }
    for d in found {
        println!("{:<10} {}", d.kind, d.name);
    }
    for (codec, usable) in codecs {
        match usable {
            Ok(()) => println!("{:<10} {}", "video", codec.label()),
            Err(e) => println!("{:<10} {} cannot be used: {e}", "video", codec.label()),
        }
    }
    Ok(())
}
