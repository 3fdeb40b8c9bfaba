//! One plugin's process and the task that owns it: starts it, speaks
//! JSON-RPC with it ([`super::rpc`]), answers its requests through the
//! [`Host`], times it out, and on a crash, a hang or garbage stops it and
//! starts it again as [`super::policy`] says, or disables it.
//!
//! Nothing a plugin does reaches past this task: its lines are bounded, its
//! own requests run a few at a time (and end with its process), writing to
//! it goes through a bounded queue and is timed out, a flood of its output
//! cannot starve the timers, and the node only ever waits for it through a
//! reply channel that this task always answers. It runs in a process group
//! of its own, with only the environment it needs, and the whole group is
//! killed when it stops.

use super::host::Host;
use super::install::Installed;
use super::policy::{AfterFailure, Supervision};
use super::rpc::{self, Incoming, RpcError};
use super::{PluginError, PluginEvent, State, Status};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long a plugin has to answer `initialize`.
pub const START_WITHIN: Duration = Duration::from_secs(5);
/// Most of a plugin's own requests under way at once.
pub const MAX_PLUGIN_REQUESTS: usize = 4;
/// Largest standard-error log before it is started afresh (the last one is kept as `.1`).
pub const MAX_LOG: u64 = 1024 * 1024;
/// Lines queued for a plugin that has not read them yet, at most.
pub const MAX_UNREAD: usize = 64;
/// `log` notifications written to the node's log per second, at most.
pub const LOGS_PER_SECOND: u32 = 20;
/// What of the node's environment a plugin gets (besides its own `SKEIN_PLUGIN_*`).
const PASSED_ENV: [&str; 8] = ["PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "USER"];

/// A request for the plugin, from the node.
pub(crate) struct Call {
    /// `command` or `action`.
    pub(crate) method: &'static str,
    /// Its parameters; the task adds `invocation`.
    pub(crate) params: Value,
    /// The conversation it was invoked in, which its requests may reach.
    pub(crate) conversation: String,
    /// Where the plugin's result goes.
    pub(crate) reply: oneshot::Sender<Result<Value, PluginError>>,
}

/// A plugin's task, as its owner holds it.
pub(crate) struct Spawned {
    pub(crate) calls: mpsc::Sender<Call>,
    pub(crate) status: watch::Receiver<Status>,
    /// Ends once the plugin's process is gone.
    pub(crate) task: tokio::task::JoinHandle<()>,
}

/// Starts the task for `plugin`; it runs until `stop` fires.
pub(crate) fn spawn(plugin: Installed, host: Host, stop: CancellationToken) -> Spawned {
    let (calls, inbox) = mpsc::channel(32);
    let (status, watch) = watch::channel(Status::default());
    let task =
        Supervisor { plugin, host, stop, inbox, status, last_error: Arc::new(Mutex::new(String::new())), errors: None };
    Spawned { calls, status: watch, task: tokio::spawn(task.run()) }
}

struct Supervisor {
    plugin: Installed,
    host: Host,
    stop: CancellationToken,
    inbox: mpsc::Receiver<Call>,
    status: watch::Sender<Status>,
    last_error: Arc<Mutex<String>>,
    /// The task copying the running process's standard error to its log.
    errors: Option<tokio::task::JoinHandle<()>>,
}

enum Ended {
    Stopped,
    Failed(String),
}

/// What the node is waiting for from the plugin.
enum Waiting {
    Start,
    Call { invocation: String, conversation: String, reply: oneshot::Sender<Result<Value, PluginError>> },
}

struct Pending {
    method: &'static str,
    deadline: tokio::time::Instant,
    waiting: Waiting,
}

impl Supervisor {
    fn name(&self) -> &str {
        &self.plugin.manifest.name
    }

    fn set(&self, state: State, reason: Option<String>, retry_in: Option<Duration>) {
        self.status.send_modify(|s| {
            if state == State::Restarting {
                s.restarts += 1;
            }
            s.state = state;
            s.reason = reason.clone();
        });
        let event = PluginEvent { plugin: self.name().to_owned(), state, reason, retry_in };
        self.host.events.emit(event.to_json());
    }

    async fn run(mut self) {
        let mut policy = Supervision::default();
        let born = Instant::now();
        loop {
            let why = match self.run_once().await {
                Ended::Stopped => break,
                Ended::Failed(why) => why,
            };
            tracing::warn!(plugin = %self.name(), "plugin failed: {why}");
            match policy.failed(born.elapsed()) {
                AfterFailure::RestartAfter(wait) => {
                    self.set(State::Restarting, Some(why), Some(wait));
                    // Calls that come meanwhile wait in the inbox.
                    tokio::select! {
                        _ = self.stop.cancelled() => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                AfterFailure::Disable => {
                    self.set(State::Disabled, Some(why.clone()), None);
                    self.refuse_until_stopped(&why).await;
                    break;
                }
            }
        }
        self.status.send_modify(|s| s.state = State::Stopped);
    }

    async fn refuse_until_stopped(&mut self, why: &str) {
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                call = self.inbox.recv() => match call {
                    None => return,
                    Some(call) => {
                        let e = PluginError::Disabled { plugin: self.name().to_owned(), reason: why.to_owned() };
                        let _ = call.reply.send(Err(e));
                    }
                },
            }
        }
    }

    async fn run_once(&mut self) -> Ended {
        let manifest = &self.plugin.manifest;
        let mut command = Command::new(self.plugin.dir.join(&manifest.exec));
        command.env_clear();
        for key in PASSED_ENV {
            if let Some(v) = std::env::var_os(key) {
                command.env(key, v);
            }
        }
        let mut child = match command
            .args(&manifest.args)
            .current_dir(&self.plugin.dir)
            .process_group(0)
            .env("SKEIN_PLUGIN_NAME", &manifest.name)
            .env("SKEIN_PLUGIN_DATA", &self.plugin.data)
            .env("SKEIN_USER", &self.host.me)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.plugin.dir.join(&manifest.exec).is_file() => {
                let line = interpreter(&self.plugin.dir.join(&manifest.exec));
                return Ended::Failed(format!(
                    "cannot start {}: the program its first line names ({line}) is not installed",
                    manifest.exec
                ));
            }
            Err(e) => return Ended::Failed(format!("cannot start {}: {e}", manifest.exec)),
        };
        self.status.send_modify(|s| {
            s.state = State::Starting;
            s.pid = child.id();
        });
        if let Some(err) = child.stderr.take() {
            self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clear();
            self.errors = Some(tokio::spawn(log_errors(err, self.plugin.log.clone(), self.last_error.clone())));
        }
        let group = child.id();
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            kill_group(group);
            return Ended::Failed("its standard input and output could not be opened".into());
        };
        let mut conn = Conn::new(stdin, self.plugin.manifest.timeout_ms);
        let ended = self.converse(&mut child, &mut conn, BufReader::new(stdout)).await;
        let why = match &ended {
            Ended::Stopped => "the node is stopping".to_owned(),
            Ended::Failed(why) => why.clone(),
        };
        for (_, p) in conn.pending.drain() {
            if let Waiting::Call { reply, .. } = p.waiting {
                let _ = reply.send(Err(PluginError::Failed { plugin: self.name().to_owned(), reason: why.clone() }));
            }
        }
        drop(conn);
        // Closing its input asks it to finish; it gets a moment, then it
        // and whatever it started are killed.
        if tokio::time::timeout(Duration::from_millis(500), child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
        kill_group(group);
        self.status.send_modify(|s| s.pid = None);
        ended
    }

    async fn converse(&mut self, child: &mut Child, conn: &mut Conn, stdout: impl AsyncBufRead + Unpin) -> Ended {
        let mut lines = Lines::new(stdout);
        let start = json!({
            "protocol": 1, "plugin": self.name(), "user": self.host.me,
            "data_dir": self.plugin.data, "granted": self.plugin.granted,
        });
        if let Err(why) = conn.ask("initialize", start, START_WITHIN, Waiting::Start) {
            return Ended::Failed(why);
        }
        let (answers_tx, mut answers) = mpsc::channel::<(Value, Result<Value, RpcError>)>(MAX_PLUGIN_REQUESTS);
        // The plugin's own requests: a few at a time, and none outlives this process.
        let busy = Arc::new(Semaphore::new(MAX_PLUGIN_REQUESTS));
        let mut serving = JoinSet::new();
        let mut logs = (Instant::now(), 0u32);
        let mut started = false;
        loop {
            let deadline = conn.next_deadline();
            // Checked on every turn: a plugin flooding its output keeps the
            // line branch ready and must not keep its timeout from firing.
            if deadline.is_some_and(|d| d <= tokio::time::Instant::now()) {
                let (method, within) = conn.overdue();
                return Ended::Failed(format!("did not answer `{method}` within {}", seconds(within)));
            }
            if let Some(why) = conn.write_failed() {
                return Ended::Failed(why);
            }
            tokio::select! {
                _ = self.stop.cancelled() => return Ended::Stopped,
                why = conn.writer_failed() => return Ended::Failed(why),
                Some(_) = serving.join_next(), if !serving.is_empty() => {}
                line = lines.next() => {
                    let line = match line {
                        Ok(Some(l)) => l,
                        Ok(None) => return Ended::Failed(self.exit_reason(child, "closed its output").await),
                        Err(why) => return Ended::Failed(why),
                    };
                    match rpc::parse(&line) {
                        Err(why) => return Ended::Failed(format!("wrote something that is not JSON-RPC 2.0: {why}")),
                        Ok(Incoming::Response { id, outcome }) => match conn.pending.remove(&id) {
                            Some(Pending { waiting: Waiting::Start, .. }) => match outcome {
                                Ok(_) => {
                                    started = true;
                                    self.set(State::Running, None, None);
                                }
                                Err(e) => return Ended::Failed(format!("refused to start: {}", e.message)),
                            },
                            Some(Pending { waiting: Waiting::Call { reply, .. }, .. }) => {
                                let plugin = self.name().to_owned();
                                let _ = reply.send(outcome.map_err(|e| PluginError::Refused { plugin, message: e.message }));
                            }
                            None => tracing::debug!(plugin = %self.name(), id, "an answer to nothing under way"),
                        },
                        Ok(Incoming::Request { id, method, params }) => {
                            let asked = Asked { id, method: &method, params };
                            if let Some(now) = self.plugin_request(conn, asked, &answers_tx, &busy, &mut serving)
                                && let Err(why) = conn.write(&now)
                            {
                                return Ended::Failed(why);
                            }
                        }
                        Ok(Incoming::Notification { method, params }) => {
                            if logs.0.elapsed() >= Duration::from_secs(1) {
                                logs = (Instant::now(), 0);
                            }
                            logs.1 += 1;
                            if method == "log" && logs.1 <= LOGS_PER_SECOND {
                                let text = params.get("message").and_then(Value::as_str).unwrap_or_default();
                                tracing::info!(plugin = %self.name(), "{}", text.chars().take(1000).collect::<String>());
                            }
                        }
                    }
                }
                status = child.wait() => {
                    let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                    return Ended::Failed(format!("exited ({status}){}", self.last_error_note().await));
                }
                Some((id, outcome)) = answers.recv() => {
                    if let Err(why) = conn.write(&rpc::answer(&id, outcome)) {
                        return Ended::Failed(why);
                    }
                }
                call = self.inbox.recv(), if started => {
                    let Some(call) = call else { return Ended::Stopped };
                    let invocation = format!("{}-{}", self.name(), conn.next_id);
                    let mut params = call.params;
                    params["invocation"] = json!(invocation);
                    let waiting = Waiting::Call { invocation, conversation: call.conversation, reply: call.reply };
                    let within = conn.timeout;
                    if let Err(why) = conn.ask(call.method, params, within, waiting) {
                        return Ended::Failed(why);
                    }
                }
                _ = sleep_until(deadline) => {
                    let (method, within) = conn.overdue();
                    return Ended::Failed(format!("did not answer `{method}` within {}", seconds(within)));
                }
            }
        }
    }

    /// Handles a request from the plugin: an answer to write at once, or
    /// none when a task answers it later through `answers`.
    fn plugin_request(
        &self,
        conn: &Conn,
        asked: Asked<'_>,
        answers: &mpsc::Sender<(Value, Result<Value, RpcError>)>,
        busy: &Arc<Semaphore>,
        serving: &mut JoinSet<()>,
    ) -> Option<String> {
        let Asked { id, method, params } = asked;
        let refuse = |code, message: String| Some(rpc::answer(&id, Err(RpcError { code, message })));
        let Some(need) = super::host::permission_for(method) else {
            return refuse(
                rpc::METHOD_NOT_FOUND,
                format!("the node has no method {method:?}; it answers conversation.read and message.post"),
            );
        };
        if !self.plugin.may(need) {
            return refuse(
                rpc::NOT_PERMITTED,
                format!("{method} needs the permission {:?}, which the user did not grant", need.as_str()),
            );
        }
        let invocation = params.get("invocation").and_then(Value::as_str).unwrap_or_default();
        let Some(conversation) = conn.conversation_of(invocation) else {
            return refuse(
                rpc::NO_INVOCATION,
                "no command or action is under way with that `invocation`: a plugin reads and posts only while it answers one".into(),
            );
        };
        let Ok(permit) = busy.clone().try_acquire_owned() else {
            return refuse(rpc::BUSY, format!("at most {MAX_PLUGIN_REQUESTS} requests may be under way at once"));
        };
        let (host, answers, method) = (self.host.clone(), answers.clone(), method.to_owned());
        serving.spawn(async move {
            let outcome = host.serve(&method, &conversation, &params).await;
            let _ = answers.send((id, outcome)).await;
            drop(permit);
        });
        None
    }

    async fn exit_reason(&mut self, child: &mut Child, what: &str) -> String {
        match tokio::time::timeout(Duration::from_millis(500), child.wait()).await {
            Ok(Ok(status)) => format!("exited ({status}){}", self.last_error_note().await),
            _ => format!("{what}{}", self.last_error_note().await),
        }
    }

    /// What the process last wrote on standard error, once it has been
    /// read to its end (the process has exited), as a note for its failure.
    async fn last_error_note(&mut self) -> String {
        if let Some(task) = self.errors.take() {
            let _ = tokio::time::timeout(Duration::from_millis(300), task).await;
        }
        let last = self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if last.is_empty() { String::new() } else { format!("; it last wrote on standard error: {last}") }
    }
}

/// The `#!` line of a script, for saying which interpreter is missing.
fn interpreter(path: &Path) -> String {
    let head = std::fs::read(path).map(|b| b.into_iter().take(200).collect::<Vec<u8>>()).unwrap_or_default();
    let first = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_owned();
    if first.starts_with("#!") { first } else { "its interpreter".to_owned() }
}

/// A request from the plugin.
struct Asked<'a> {
    id: Value,
    method: &'a str,
    params: Value,
}

/// Kills what is left of the process group `group` (the plugin and
/// whatever it started).
fn kill_group(group: Option<u32>) {
    let pid = group.and_then(|g| i32::try_from(g).ok()).and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The node's side of the conversation with one running process. Lines
/// for the plugin go through a bounded queue to a writer task, so the
/// node keeps reading while the plugin is slow to read.
struct Conn {
    lines: mpsc::Sender<Vec<u8>>,
    failed: mpsc::Receiver<String>,
    next_id: u64,
    pending: HashMap<u64, Pending>,
    timeout: Duration,
}

impl Conn {
    fn new(mut stdin: ChildStdin, timeout_ms: u64) -> Conn {
        let timeout = Duration::from_millis(timeout_ms);
        let (lines, mut queue) = mpsc::channel::<Vec<u8>>(MAX_UNREAD);
        let (fail, failed) = mpsc::channel(1);
        tokio::spawn(async move {
            // Ends when the conversation drops its sender: stdin closes then.
            while let Some(line) = queue.recv().await {
                let why = match tokio::time::timeout(timeout, stdin.write_all(&line)).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => format!("stopped reading its input ({e})"),
                    Err(_) => format!("stopped reading its input (nothing read for {})", seconds(timeout)),
                };
                let _ = fail.send(why).await;
                return;
            }
        });
        Conn { lines, failed, next_id: 1, pending: HashMap::new(), timeout }
    }

    fn ask(&mut self, method: &'static str, params: Value, within: Duration, waiting: Waiting) -> Result<(), String> {
        let id = self.next_id;
        self.next_id += 1;
        let deadline = tokio::time::Instant::now() + within;
        self.pending.insert(id, Pending { method, deadline, waiting });
        self.write(&rpc::request(id, method, &params))
    }

    /// Queues `line` for the plugin.
    fn write(&mut self, line: &str) -> Result<(), String> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.lines.try_send(bytes).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => format!("stopped reading its input ({MAX_UNREAD} lines unread)"),
            mpsc::error::TrySendError::Closed(_) => "stopped reading its input".to_owned(),
        })
    }

    /// Why writing to the plugin failed, if it did.
    fn write_failed(&mut self) -> Option<String> {
        self.failed.try_recv().ok()
    }

    /// Waits until writing to the plugin fails.
    async fn writer_failed(&mut self) -> String {
        match self.failed.recv().await {
            Some(why) => why,
            None => std::future::pending().await,
        }
    }

    fn next_deadline(&self) -> Option<tokio::time::Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    fn overdue(&self) -> (&'static str, Duration) {
        let first = self.pending.values().min_by_key(|p| p.deadline);
        let within =
            if matches!(first.map(|p| &p.waiting), Some(Waiting::Start)) { START_WITHIN } else { self.timeout };
        (first.map_or("?", |p| p.method), within)
    }

    fn conversation_of(&self, invocation: &str) -> Option<String> {
        self.pending.values().find_map(|p| match &p.waiting {
            Waiting::Call { invocation: i, conversation, .. } if i == invocation => Some(conversation.clone()),
            _ => None,
        })
    }
}

/// Newline-separated lines of at most [`rpc::MAX_LINE`] bytes; blank lines are skipped.
struct Lines<R> {
    reader: R,
    line: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> Lines<R> {
    fn new(reader: R) -> Self {
        Lines { reader, line: Vec::new() }
    }

    /// The next line; `None` at the end. Cancel-safe: a partial line stays buffered.
    async fn next(&mut self) -> Result<Option<Vec<u8>>, String> {
        loop {
            let buf = self.reader.fill_buf().await.map_err(|e| format!("its output could not be read: {e}"))?;
            if buf.is_empty() {
                return Ok(if self.line.is_empty() { None } else { Some(std::mem::take(&mut self.line)) });
            }
            let (take, done) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (i, true),
                None => (buf.len(), false),
            };
            self.line.extend_from_slice(&buf[..take]);
            self.reader.consume(take + usize::from(done));
            if self.line.len() > rpc::MAX_LINE {
                return Err(format!("wrote a line over {} KiB", rpc::MAX_LINE / 1024));
            }
            if done {
                if self.line.last() == Some(&b'\r') {
                    self.line.pop();
                }
                if self.line.iter().all(u8::is_ascii_whitespace) {
                    self.line.clear();
                    continue;
                }
                return Ok(Some(std::mem::take(&mut self.line)));
            }
        }
    }
}

/// Appends what the plugin writes on standard error to its log, and keeps
/// its last line for failure messages. It reads whatever comes, however
/// long its lines, so the plugin never blocks on it.
async fn log_errors(mut err: tokio::process::ChildStderr, log: std::path::PathBuf, last: Arc<Mutex<String>>) {
    use tokio::io::AsyncReadExt;
    if let Some(dir) = log.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let keep = |line: &[u8]| {
        let text: String = String::from_utf8_lossy(line).chars().take(300).collect();
        *last.lock().unwrap_or_else(|e| e.into_inner()) = text;
    };
    let mut chunk = vec![0u8; 8192];
    let mut line: Vec<u8> = Vec::new();
    loop {
        let n = match err.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        append_log(&log, &chunk[..n]);
        for b in &chunk[..n] {
            match *b {
                b'\n' => {
                    if !line.iter().all(u8::is_ascii_whitespace) {
                        keep(&line);
                    }
                    line.clear();
                }
                b if line.len() < 1200 => line.push(b),
                _ => {}
            }
        }
    }
    if !line.iter().all(u8::is_ascii_whitespace) {
        keep(&line);
    }
}

fn append_log(log: &Path, bytes: &[u8]) {
    use std::io::Write;
    if std::fs::metadata(log).is_ok_and(|m| m.len() > MAX_LOG) {
        let _ = std::fs::rename(log, log.with_extension("log.1"));
    }
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
        let _ = f.write_all(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_bounded_and_cancel_safe() {
        let input: &[u8] = b"{\"a\":1}\r\n\n  \npartial";
        let mut lines = Lines::new(BufReader::with_capacity(3, input));
        assert_eq!(lines.next().await.expect("should succeed").expect("should succeed"), b"{\"a\":1}");
        assert_eq!(lines.next().await.expect("should succeed").expect("should succeed"), b"partial");
        assert_eq!(lines.next().await.expect("should succeed"), None);
        let long = vec![b'x'; rpc::MAX_LINE + 10];
        let mut lines = Lines::new(BufReader::new(&long[..]));
        assert!(lines.next().await.expect_err("should fail").contains("over 1024 KiB"));
    }
}
