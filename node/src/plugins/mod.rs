//! Plugins: programs that bring company systems into Skein, run by the
//! node (`skein daemon` and `skein-desk` alike) out of process.
//!
//! A plugin is a folder with a manifest ([`manifest`], `plugin.toml`) and
//! an executable, installed into the profile ([`install`]). The node starts
//! each installed plugin and speaks JSON-RPC 2.0 with it, one object per
//! line on its standard input and output ([`rpc`]). A plugin that crashes,
//! hangs or writes garbage cannot take the node down: its task
//! ([`process`]) stops it and starts it again with a backoff, and disables
//! it after repeated failures ([`policy`]) until it is installed again or
//! the node restarts; it is reported as an event when it runs, when it
//! failed and is started again, and when it is disabled.
//!
//! Permissions bound what the node does for a plugin. A plugin runs as the
//! user, unconfined, so they are no sandbox: install only plugins you
//! trust, as you would any program.
//!
//! ## The protocol
//!
//! The node asks:
//! - `initialize` `{protocol: 1, plugin, user, data_dir, granted}`, once
//!   after each start; any result means ready;
//! - `command` `{invocation, command, args, conversation, user}` for a
//!   slash command (`/ticket open printer broken` has `command: "ticket"`,
//!   `args: "open printer broken"`);
//! - `action` `{invocation, action, conversation, user, message: {id, from,
//!   text, sent_at_ms}}` for a message action.
//!
//! A `command` or `action` is answered with `{reply?, post?}`: `reply` is
//! shown to the user alone; `post` (`{text?, card?}`) is posted into the
//! conversation as the user, with the permission `post`. An error answer
//! is shown to the user as the plugin's.
//!
//! While it answers one, a plugin may ask, naming the `invocation`:
//! `conversation.read` `{invocation, limit?}` (permission `read`) and
//! `message.post` `{invocation, text?, card?}` (permission `post`). It can
//! reach only the conversation it was invoked in, and only then. It may
//! send `log` notifications `{message}`; its standard error goes to its
//! log.

pub(crate) mod host;
pub mod install;
pub mod manifest;
pub mod policy;
pub(crate) mod process;
pub mod rpc;

use host::{Host, Post};
use install::Installed;
use manifest::Permission;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// Longest `reply` a plugin may show, in bytes.
pub const MAX_REPLY: usize = 16 * 1024;

/// Where a plugin is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Started, not yet answered `initialize`.
    #[default]
    Starting,
    /// Answering.
    Running,
    /// Failed; it is started again after a wait.
    Restarting,
    /// Failed too often; not started again until installed again or the node restarts.
    Disabled,
    /// The node stopped it.
    Stopped,
}

/// A plugin's state, as `skein plugin list` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// Where it is.
    pub state: State,
    /// Its last failure.
    pub reason: Option<String>,
    /// How often it was started again.
    pub restarts: u32,
    /// Its process id while it runs.
    pub pid: Option<u32>,
}

/// A change of a plugin's state, which the node reports as an event.
#[derive(Debug, Clone)]
pub struct PluginEvent {
    /// The plugin.
    pub plugin: String,
    /// Its new state.
    pub state: State,
    /// Why it failed.
    pub reason: Option<String>,
    /// When it is tried again.
    pub retry_in: Option<Duration>,
}

impl PluginEvent {
    /// The event's JSON: `{"type": "plugin", "plugin", "state", "reason", "retry_in_ms"}`.
    pub fn to_json(&self) -> Value {
        json!({
            "type": "plugin", "plugin": self.plugin, "state": self.state, "reason": self.reason,
            "retry_in_ms": self.retry_in.map(|d| d.as_millis() as u64),
        })
    }
}

/// Why a plugin could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// No plugin answers that command.
    #[error("no plugin provides /{command}{known}; to send text that starts with '/', begin it with '//'")]
    NoCommand {
        /// The command.
        command: String,
        /// The commands there are, as a note.
        known: String,
    },
    /// No such plugin or action.
    #[error("{0}")]
    NotFound(String),
    /// The plugin failed while answering; it is being started again.
    #[error("the plugin {plugin} failed: {reason}; it is started again")]
    Failed {
        /// The plugin.
        plugin: String,
        /// What happened.
        reason: String,
    },
    /// The plugin failed too often.
    #[error("the plugin {plugin} is disabled after repeated failures (the last: {reason}); install it again to retry")]
    Disabled {
        /// The plugin.
        plugin: String,
        /// Its last failure.
        reason: String,
    },
    /// The plugin answered with an error.
    #[error("{plugin}: {message}")]
    Refused {
        /// The plugin.
        plugin: String,
        /// Its message.
        message: String,
    },
    /// The plugin's answer was not what the protocol says.
    #[error("the plugin {plugin} answered badly: {why}")]
    BadAnswer {
        /// The plugin.
        plugin: String,
        /// What is wrong.
        why: String,
    },
    /// What the plugin posted could not be sent.
    #[error("the plugin {plugin}'s post was not sent: {why}")]
    PostFailed {
        /// The plugin.
        plugin: String,
        /// Why.
        why: String,
    },
}

impl PluginError {
    /// The control socket's error code for it.
    pub fn code(&self) -> &'static str {
        match self {
            PluginError::NoCommand { .. } => "invalid_input",
            PluginError::NotFound(_) => "not_found",
            PluginError::Refused { .. } => "refused",
            PluginError::Failed { .. } | PluginError::Disabled { .. } | PluginError::BadAnswer { .. } => {
                "plugin_failed"
            }
            PluginError::PostFailed { .. } => "unavailable",
        }
    }
}

/// What a message's text is, as far as plugins go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slash<'a> {
    /// `/name args`: a slash command.
    Command {
        /// The command, without its slash.
        name: &'a str,
        /// What follows it, trimmed.
        args: &'a str,
    },
    /// `//text`: text that starts with `/`, sent as `/text`.
    Escaped(&'a str),
    /// Anything else: text to send.
    Text,
}

/// Tells a slash command from text: `/word` (lower-case letters, digits
/// and `-`) then a space or the end. `/etc/hosts is down` is text.
pub fn slash(text: &str) -> Slash<'_> {
    if text.starts_with("//") {
        return Slash::Escaped(&text[1..]);
    }
    let Some(rest) = text.strip_prefix('/') else { return Slash::Text };
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let name = &rest[..end];
    if manifest::is_name(name) { Slash::Command { name, args: rest[end..].trim() } } else { Slash::Text }
}

struct Running {
    plugin: Installed,
    calls: mpsc::Sender<process::Call>,
    status: watch::Receiver<Status>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// How long stopping a plugin waits for its process to be gone.
const STOP_WITHIN: Duration = Duration::from_secs(3);

/// The node's plugins; cheap to clone.
#[derive(Clone)]
pub struct Plugins {
    host: Host,
    profile: PathBuf,
    stop: CancellationToken,
    running: Arc<Mutex<BTreeMap<String, Running>>>,
    broken: Arc<Mutex<Vec<(String, String)>>>,
}

/// Stops `plugins` and waits, a while, for each task to end.
async fn finish(plugins: Vec<Running>) {
    for r in &plugins {
        r.stop.cancel();
    }
    for r in plugins {
        if tokio::time::timeout(STOP_WITHIN, r.task).await.is_err() {
            tracing::warn!(plugin = %r.plugin.manifest.name, "a plugin's task did not end in time");
        }
    }
}

impl std::fmt::Debug for Plugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugins").field("profile", &self.profile).finish_non_exhaustive()
    }
}

impl Plugins {
    /// Starts the plugins installed in `profile`; they stop with `stop`.
    pub(crate) fn start(profile: PathBuf, host: Host, stop: CancellationToken) -> Plugins {
        // Plugins run in their own folders: every path they are given is whole.
        let profile = std::path::absolute(&profile).unwrap_or(profile);
        let plugins = Plugins { host, profile, stop, running: Arc::default(), broken: Arc::default() };
        plugins.launch(None);
        plugins
    }

    /// Starts the installed plugins that do not run yet (every one, or
    /// only `only`). Of two that answer the same command, the first by name
    /// runs and the other is listed as broken, saying why.
    fn launch(&self, only: Option<&str>) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut broken = self.broken.lock().unwrap_or_else(|e| e.into_inner());
        broken.retain(|(name, _)| only.is_some_and(|o| o != name));
        for found in install::installed(&self.profile) {
            let name = match &found {
                Ok(p) => p.manifest.name.clone(),
                Err((name, _)) => name.clone(),
            };
            if only.is_some_and(|o| o != name) || running.contains_key(&name) {
                continue;
            }
            let plugin = match found {
                Ok(p) => p,
                Err((name, e)) => {
                    tracing::warn!(plugin = %name, "not started: {e}");
                    broken.push((name, e.to_string()));
                    continue;
                }
            };
            let clash = plugin.manifest.commands.iter().find_map(|c| {
                running
                    .values()
                    .find(|r| r.plugin.manifest.commands.iter().any(|o| o.name == c.name))
                    .map(|r| (c.name.clone(), r.plugin.manifest.name.clone()))
            });
            if let Some((command, owner)) = clash {
                let why = format!("its command /{command} is already the plugin {owner}'s; remove one of them");
                tracing::warn!(plugin = %name, "not started: {why}");
                broken.push((name, why));
                continue;
            }
            let stop = self.stop.child_token();
            let spawned = process::spawn(plugin.clone(), self.host.clone(), stop.clone());
            let r = Running { plugin, calls: spawned.calls, status: spawned.status, stop, task: spawned.task };
            running.insert(name, r);
        }
    }

    /// Stops `only` (or every plugin), waits for their processes to be
    /// gone, and starts what is installed now in their place: after an
    /// install or a removal. A plugin that was disabled gets a new chance.
    pub(crate) async fn reload(&self, only: Option<&str>) {
        let stopped: Vec<Running> = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            match only {
                Some(name) => running.remove(name).into_iter().collect(),
                None => std::mem::take(&mut *running).into_values().collect(),
            }
        };
        finish(stopped).await;
        self.launch(only);
    }

    /// Stops every plugin and waits for their processes to be gone (the
    /// node is stopping).
    pub(crate) async fn stop(&self) {
        self.stop.cancel();
        let stopped: Vec<Running> =
            std::mem::take(&mut *self.running.lock().unwrap_or_else(|e| e.into_inner())).into_values().collect();
        finish(stopped).await;
    }

    /// Every installed plugin: its manifest, what was granted and its state.
    pub fn list(&self) -> Value {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<Value> = running.values().map(|r| describe(&r.plugin, &r.status.borrow())).collect();
        for (name, why) in self.broken.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            list.push(json!({"name": name, "state": "broken", "reason": why}));
        }
        Value::Array(list)
    }

    /// Runs the slash command `/name args` typed in `conversation`.
    pub(crate) async fn command(&self, conversation: &str, name: &str, args: &str) -> Result<Value, PluginError> {
        let found = {
            let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            let owner = running.values().find(|r| r.plugin.manifest.commands.iter().any(|c| c.name == name));
            match owner {
                Some(r) => Ok((r.plugin.clone(), r.calls.clone())),
                None => {
                    let all: Vec<String> = running
                        .values()
                        .flat_map(|r| r.plugin.manifest.commands.iter().map(|c| format!("/{}", c.name)))
                        .collect();
                    let known = if all.is_empty() {
                        " (none is installed)".to_owned()
                    } else {
                        format!(" (there are {})", all.join(", "))
                    };
                    Err(PluginError::NoCommand { command: name.to_owned(), known })
                }
            }
        };
        let (plugin, calls) = found?;
        let params = json!({"command": name, "args": args, "conversation": conversation, "user": self.host.me});
        self.invoke(&plugin, calls, "command", params, conversation).await
    }

    /// Runs the message action `action` of `plugin_name` on `message`, in `conversation`.
    pub(crate) async fn action(
        &self,
        plugin_name: &str,
        action: &str,
        conversation: &str,
        message: Value,
    ) -> Result<Value, PluginError> {
        let (plugin, calls) = {
            let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            let r = running.get(plugin_name).ok_or_else(|| {
                PluginError::NotFound(format!(
                    "no plugin named {plugin_name:?} is installed; `skein plugin list` shows those that are"
                ))
            })?;
            if !r.plugin.manifest.actions.iter().any(|a| a.id == action) {
                let ids: Vec<&str> = r.plugin.manifest.actions.iter().map(|a| a.id.as_str()).collect();
                return Err(PluginError::NotFound(format!(
                    "the plugin {plugin_name} has no action {action:?} (it has: {})",
                    if ids.is_empty() { "none".to_owned() } else { ids.join(", ") }
                )));
            }
            (r.plugin.clone(), r.calls.clone())
        };
        let params = json!({"action": action, "conversation": conversation, "user": self.host.me, "message": message});
        self.invoke(&plugin, calls, "action", params, conversation).await
    }

    async fn invoke(
        &self,
        plugin: &Installed,
        calls: mpsc::Sender<process::Call>,
        method: &'static str,
        params: Value,
        conversation: &str,
    ) -> Result<Value, PluginError> {
        let name = plugin.manifest.name.clone();
        let (reply, answer) = oneshot::channel();
        let call = process::Call { method, params, conversation: conversation.to_owned(), reply };
        let stopped = || PluginError::Failed { plugin: name.clone(), reason: "the node stopped it".into() };
        calls.send(call).await.map_err(|_| stopped())?;
        let result = answer.await.map_err(|_| stopped())??;
        let bad = |why: String| PluginError::BadAnswer { plugin: name.clone(), why };
        let Value::Object(result) = result else {
            return Err(bad(format!("`{method}` must be answered with an object")));
        };
        let reply = match result.get("reply") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.len() <= MAX_REPLY => Some(s.clone()),
            Some(_) => return Err(bad(format!("`reply` must be a string of at most {} KiB", MAX_REPLY / 1024))),
        };
        let posted = match result.get("post") {
            None | Some(Value::Null) => Value::Null,
            Some(p) => {
                if !plugin.may(Permission::Post) {
                    return Err(PluginError::PostFailed {
                        plugin: name,
                        why: "it was not granted the permission \"post\"".into(),
                    });
                }
                let post = Post::from_json(p).map_err(|why| bad(format!("`post`: {why}")))?;
                self.host
                    .post(conversation, post)
                    .await
                    .map_err(|why| PluginError::PostFailed { plugin: name.clone(), why })?
            }
        };
        Ok(json!({"plugin": name, "reply": reply, "posted": posted}))
    }
}

fn describe(p: &Installed, status: &Status) -> Value {
    let m = &p.manifest;
    json!({
        "name": m.name, "version": m.version, "description": m.description,
        "commands": m.commands, "actions": m.actions,
        "permissions": m.permissions, "granted": p.granted,
        "state": status.state, "reason": status.reason, "restarts": status.restarts, "pid": status.pid,
        "dir": p.dir, "log": p.log,
    })
}

/// The plugins installed in `profile`, described as [`Plugins::list`]
/// does, for when no node runs (their state is `installed`).
pub fn list_installed(profile: &std::path::Path) -> Value {
    let list = install::installed(profile)
        .into_iter()
        .map(|found| match found {
            Ok(p) => {
                let mut v = describe(&p, &Status::default());
                v["state"] = json!("installed");
                v
            }
            Err((name, e)) => json!({"name": name, "state": "broken", "reason": e.to_string()}),
        })
        .collect();
    Value::Array(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slash_commands_are_told_from_text() {
        assert_eq!(
            slash("/ticket open printer broken"),
            Slash::Command { name: "ticket", args: "open printer broken" }
        );
        assert_eq!(slash("/ticket"), Slash::Command { name: "ticket", args: "" });
        assert_eq!(slash("//ticket is a command"), Slash::Escaped("/ticket is a command"));
        assert_eq!(slash("/etc/hosts is down"), Slash::Text);
        assert_eq!(slash("/Shrug"), Slash::Text);
        assert_eq!(slash("hello /ticket"), Slash::Text);
        assert_eq!(slash("/"), Slash::Text);
    }
}
