//! A display and a desktop session for testing the desktop app for real:
//! an Xvfb X server on a free display number, a session D-Bus with a
//! monitor that records desktop notifications, and the window driven with
//! `xdotool` and photographed with ImageMagick's `import`.
//!
//! [`missing_tools`] says which of those programs this machine lacks, so a
//! test can say why it cannot run.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The programs a desktop test needs, and the Debian packages they come in.
const TOOLS: [(&str, &str); 5] = [
    ("Xvfb", "xvfb"),
    ("xdotool", "xdotool"),
    ("import", "imagemagick"),
    ("dbus-daemon", "dbus"),
    ("dbus-monitor", "dbus"),
];

/// The packages providing the programs missing here (none: all are here).
pub fn missing_tools() -> Vec<&'static str> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = |name: &str| std::env::split_paths(&path).any(|d| d.join(name).is_file());
    let mut missing: Vec<&str> = TOOLS.iter().filter(|(t, _)| !found(t)).map(|(_, p)| *p).collect();
    missing.dedup();
    missing
}

/// A running Xvfb and session bus, stopped when dropped.
#[derive(Debug)]
pub struct Desktop {
    /// `:N`.
    pub display: String,
    /// The session bus address.
    pub bus: String,
    xvfb: Child,
    dbus: Child,
    monitor: Child,
    notifications: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// Every line the notification monitor printed so far.
    pub seen: Vec<String>,
}

impl Desktop {
    /// Starts an X server (1280×800, 24-bit) on a free display and a
    /// session bus with a notification monitor.
    pub async fn start() -> Desktop {
        let n = (90..200)
            .find(|n| {
                !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
            })
            .expect("a free X display number");
        let display = format!(":{n}");
        let xvfb = Command::new("Xvfb")
            .args([display.as_str(), "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start Xvfb");
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
        crate::wait_for(Duration::from_secs(10), "Xvfb's socket", || {
            let ready = socket.exists();
            async move { ready.then_some(()) }
        })
        .await;
        let mut dbus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start dbus-daemon");
        let mut lines = BufReader::new(dbus.stdout.take().expect("piped")).lines();
        let bus = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("dbus-daemon prints its address")
            .expect("read the address")
            .expect("an address line");
        let mut monitor = Command::new("dbus-monitor")
            .args(["--address", &bus, "interface='org.freedesktop.Notifications',member='Notify'"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start dbus-monitor");
        let (tx, notifications) = tokio::sync::mpsc::unbounded_channel();
        let mut out = BufReader::new(monitor.stdout.take().expect("piped")).lines();
        tokio::spawn(async move {
            while let Ok(Some(l)) = out.next_line().await {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Desktop { display, bus, xvfb, dbus, monitor, notifications, seen: Vec::new() }
    }

    /// The environment a program on this desktop needs.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![("DISPLAY", self.display.clone()), ("DBUS_SESSION_BUS_ADDRESS", self.bus.clone())]
    }

    /// Runs `xdotool ARGS` on this display, failing the test if it fails.
    pub async fn xdotool(&self, args: &[&str]) -> String {
        let out = Command::new("xdotool").args(args).env("DISPLAY", &self.display).output().await.expect("run xdotool");
        assert!(out.status.success(), "xdotool {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The id of the first window whose name contains `name`, waiting for it.
    pub async fn window(&self, name: &str) -> String {
        let id = self.xdotool(&["search", "--sync", "--limit", "1", "--name", name]).await;
        id.lines().next().unwrap_or_default().to_owned()
    }

    /// Gives `window` the keyboard focus.
    pub async fn focus(&self, window: &str) {
        self.xdotool(&["windowfocus", "--sync", window]).await;
    }

    /// Takes the keyboard focus away from every window (to the root).
    pub async fn unfocus(&self) {
        let root = self.xdotool(&["search", "--maxdepth", "0", "--name", ""]).await;
        let root = root.lines().next().unwrap_or_default().to_owned();
        self.xdotool(&["windowfocus", &root]).await;
    }

    /// Types `text` into the focused window.
    pub async fn type_text(&self, text: &str) {
        self.xdotool(&["type", "--delay", "25", text]).await;
    }

    /// Presses keys (`Return`, `ctrl+1`, `shift+Tab`).
    pub async fn key(&self, keys: &str) {
        self.xdotool(&["key", "--delay", "60", keys]).await;
    }

    /// Saves `window` as a PNG at `path`, as the display shows it.
    pub async fn capture(&self, window: &str, path: &Path) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        let out = Command::new("import")
            .args(["-window", window, path.to_str().expect("utf-8 path")])
            .env("DISPLAY", &self.display)
            .output()
            .await
            .expect("run import");
        assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Waits for a notification whose lines include `text`.
    pub async fn notification(&mut self, text: &str, timeout: Duration) -> bool {
        let quoted = format!("\"{text}\"");
        if self.seen.iter().any(|l| l.contains(&quoted)) {
            return true;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        while let Ok(Some(line)) = tokio::time::timeout_at(deadline, self.notifications.recv()).await {
            let hit = line.contains(&quoted);
            self.seen.push(line);
            if hit {
                return true;
            }
        }
        false
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        let _ = self.monitor.start_kill();
        let _ = self.dbus.start_kill();
        let _ = self.xvfb.start_kill();
    }
}

/// Checks that a screenshot shows something: a real picture, not blank
/// and not all one colour. Returns how many colours it has.
pub fn check_picture(path: &Path) -> usize {
    let img = image::open(path).unwrap_or_else(|e| panic!("{} is not a picture: {e}", path.display())).to_rgb8();
    assert!(img.width() >= 640 && img.height() >= 480, "{} is only {}×{}", path.display(), img.width(), img.height());
    let colours: std::collections::HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    assert!(colours.len() > 50, "{} has only {} colours: blank or one colour", path.display(), colours.len());
    colours.len()
}
