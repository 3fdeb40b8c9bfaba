//! `skein send-file`, `send-image`, `accept`, `decline`, `transfers` and
//! `react`.
//!
//! `send-file` and `accept` follow the transfer by asking the daemon for it
//! a few times a second, draw a progress bar on a terminal (bytes, rate,
//! ETA), and exit 0 only once the recipient has the whole file verified.

use super::terminal;
use super::{field, need_daemon};
use crate::control::ControlRequest;
use crate::profile::Profile;
use crate::transfer::disk::human;
use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// How often a waiting command asks the daemon.
const POLL: Duration = Duration::from_millis(200);

fn absolute(path: PathBuf) -> anyhow::Result<String> {
    let abs = std::path::absolute(&path).with_context(|| format!("cannot resolve {}", path.display()))?;
    Ok(abs.display().to_string())
}

pub(super) async fn send_file(
    profile: &Profile,
    user: String,
    path: PathBuf,
    name: Option<String>,
    no_wait: bool,
    json: bool,
) -> anyhow::Result<()> {
    let req = ControlRequest::SendFile { to: user.clone(), path: absolute(path)?, name };
    let offer = need_daemon(profile, req).await?;
    let id = offer["id"].as_str().unwrap_or_default().to_owned();
    if no_wait {
        if json {
            println!("{offer}");
        } else {
            println!(
                "Offered {} to {} ({}); transfer {}",
                field(&offer, "name", "?"),
                terminal::line(&user),
                field(&offer, "path", "?"),
                terminal::line(&id)
            );
        }
        return Ok(());
    }
    if offer["path"] == "queued" {
        eprintln!(
            "{} is not online: the offer waits for them. Waiting for the transfer (Ctrl-C stops waiting; the offer stays).",
            terminal::line(&user)
        );
    }
    let end = follow(profile, &id, &format!("to {}", terminal::line(&user))).await?;
    finish(&end, json, |t| {
        format!(
            "{} has {} ({}), verified",
            terminal::line(&user),
            field(t, "name", "?"),
            human(t["size"].as_u64().unwrap_or(0))
        )
    })
}

pub(super) async fn send_image(profile: &Profile, user: String, path: PathBuf, json: bool) -> anyhow::Result<()> {
    let v = need_daemon(profile, ControlRequest::SendImage { to: user.clone(), path: absolute(path)? }).await?;
    if json {
        println!("{v}");
    } else {
        println!(
            "Sent image {} to {} ({}); the full image is fetched when they open it",
            field(&v, "name", "?"),
            terminal::line(&user),
            field(&v, "path", "?")
        );
    }
    Ok(())
}

pub(super) async fn accept(
    profile: &Profile,
    id: String,
    to: Option<PathBuf>,
    no_wait: bool,
    json: bool,
) -> anyhow::Result<()> {
    let dir = to.map(absolute).transpose()?;
    let t = need_daemon(profile, ControlRequest::Accept { id: id.clone(), dir }).await?;
    if no_wait {
        if json {
            println!("{t}");
        } else {
            println!("Accepted {}; receiving it in the background", field(&t, "name", "?"));
        }
        return Ok(());
    }
    let from = format!("from {}", field(&t, "peer", "?"));
    let end = follow(profile, &id, &from).await?;
    finish(&end, json, |t| format!("Saved {}", field(t, "saved_path", "?")))
}

pub(super) async fn decline(profile: &Profile, id: String) -> anyhow::Result<()> {
    let t = need_daemon(profile, ControlRequest::Decline { id }).await?;
    println!("Declined {}", field(&t, "name", "?"));
    Ok(())
}

pub(super) async fn transfers(profile: &Profile, id: Option<String>, json: bool) -> anyhow::Result<()> {
    let v = need_daemon(profile, ControlRequest::Transfers { id: id.clone() }).await?;
    if json {
        println!("{v}");
        return Ok(());
    }
    let list = if id.is_some() { vec![v] } else { v.as_array().cloned().unwrap_or_default() };
    if list.is_empty() {
        println!("No transfers yet");
    }
    for t in &list {
        let arrow = if t["direction"] == "out" { "→" } else { "←" };
        println!(
            "{}  {arrow} {:<12} {:<32} {:>10} / {:<10} {:<10} {}",
            field(t, "id", "?"),
            field(t, "peer", "?"),
            field(t, "name", "?"),
            human(t["bytes_done"].as_u64().unwrap_or(0)),
            human(t["size"].as_u64().unwrap_or(0)),
            field(t, "state", "?"),
            terminal::line(t["path"].as_str().or(t["error"].as_str()).unwrap_or("")),
        );
    }
    Ok(())
}

pub(super) async fn react(profile: &Profile, id: String, emoji: String, remove: bool) -> anyhow::Result<()> {
    let v = need_daemon(profile, ControlRequest::React { id, emoji, remove }).await?;
    let verb = if remove { "Took back" } else { "Reacted" };
    println!("{verb} {} ({})", field(&v, "emoji", "?"), field(&v, "path", "?"));
    Ok(())
}

/// Follows transfer `id` until it completes, fails or is declined, drawing
/// a progress bar on a terminal. Returns the last state.
async fn follow(profile: &Profile, id: &str, whom: &str) -> anyhow::Result<Value> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>22} [{bar:32.cyan/blue}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    loop {
        let t = need_daemon(profile, ControlRequest::Transfers { id: Some(id.to_owned()) }).await?;
        bar.set_length(t["size"].as_u64().unwrap_or(0));
        bar.set_position(t["bytes_done"].as_u64().unwrap_or(0));
        let state = t["state"].as_str().unwrap_or("?");
        let msg = match (state, t["path"].as_str()) {
            ("offered", _) => format!("waiting {whom}"),
            (_, Some(path)) => format!("{whom} ({})", terminal::line(path)),
            _ => whom.to_owned(),
        };
        bar.set_message(msg);
        match state {
            "completed" => {
                bar.finish_and_clear();
                return Ok(t);
            }
            "declined" | "failed" => {
                bar.abandon();
                let why = t["error"].as_str().map(|e| format!(": {}", terminal::line(e))).unwrap_or_default();
                bail!("{} was {state}{why}", field(&t, "name", "the file"));
            }
            _ => tokio::time::sleep(POLL).await,
        }
    }
}

fn finish(t: &Value, json: bool, line: impl Fn(&Value) -> String) -> anyhow::Result<()> {
    if json {
        println!("{t}");
    } else {
        println!("{}", line(t));
    }
    Ok(())
}
