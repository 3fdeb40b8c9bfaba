//! The branch-office NAT lab, driven from Rust.
//!
//! [`Lab::up`] builds the namespaces of `tests/lab/lab.sh` under a prefix
//! unique to this process, runs programs inside them, and tears everything
//! down when dropped, including when a test panics or times out. Labs left
//! by a process that was killed are swept at the next start.
//!
//! Hosts (see `tests/lab/README.md`): trackers `t1` 198.18.0.1 and `t2`
//! 198.18.0.2 on the simulated internet; routers `ra` and `rb`; hosts `a1`,
//! `a2` behind `ra` on 198.19.1.0/24 and `b1` behind `rb` on 198.19.2.0/24.

use crate::Proc;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Whether this process runs as root.
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX) == 0
}

/// Why the lab cannot run here, or `None` when it can: it needs root for
/// network namespaces and nftables, and the `ip` and `nft` commands.
pub fn unavailable() -> Option<String> {
    if !is_root() {
        return Some(
            "the NAT lab needs root (network namespaces, veths and nftables); run `scripts/natlab` (it uses sudo), \
             or `scripts/test` as root (as `.ci/run` does)"
                .to_owned(),
        );
    }
    let missing: Vec<&str> = ["ip", "nft"].into_iter().filter(|c| !on_path(c)).collect();
    (!missing.is_empty()).then(|| {
        format!(
            "the NAT lab needs the {} command(s): install iproute2 and nftables (`scripts/natlab` and \
             `scripts/test` do)",
            missing.join(" and ")
        )
    })
}

/// Whether `command` is an executable file in a directory of `PATH` (or of
/// the sbin directories, which a non-login root shell may leave out).
fn on_path(command: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .any(|dir| std::fs::metadata(dir.join(command)).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0))
}

/// A NAT behaviour for a router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// Endpoint-independent mapping with port preservation.
    Cone,
    /// A new external port per destination.
    Symmetric,
}

impl Nat {
    fn as_str(self) -> &'static str {
        match self {
            Nat::Cone => "cone",
            Nat::Symmetric => "symmetric",
        }
    }
}

/// A built lab; dropping it tears it down.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    script: PathBuf,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

const PREFIX_HEAD: &str = "skl";

impl Lab {
    /// Builds a lab with cone NAT on both routers. Panics with the script's
    /// output when that fails.
    pub fn up() -> Lab {
        let script = script();
        sweep_stale(&script);
        let prefix = format!("{PREFIX_HEAD}{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let lab = Lab { prefix, script };
        lab.run(&["up"]);
        lab
    }

    /// The namespace prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        let (sub, rest) = args.split_first().expect("a lab.sh subcommand");
        let out = Command::new("bash")
            .arg(&self.script)
            .arg(sub)
            .arg(&self.prefix)
            .args(rest)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.script.display()));
        assert!(
            out.status.success() || out.status.code() == Some(3),
            "lab.sh {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Sets a router's (`ra` or `rb`) NAT behaviour.
    pub fn nat(&self, router: &str, nat: Nat) {
        self.run(&["nat", router, nat.as_str()]);
    }

    /// Drops `percent` % of packets each way on a router's WAN side.
    pub fn loss(&self, router: &str, percent: u32) {
        self.run(&["loss", router, &percent.to_string()]);
    }

    /// Cuts (`true`) or restores a branch's WAN traffic to and from the
    /// other branches, leaving the trackers reachable: hole punching fails
    /// while it is cut, and everything between the branches goes through
    /// the relay.
    pub fn isolate(&self, router: &str, cut: bool) {
        self.run(&["isolate", router, if cut { "on" } else { "off" }]);
    }

    /// Adds `ms` of delay on a router's WAN side; `false` when the kernel
    /// has no netem, in which case nothing changed.
    pub fn delay(&self, router: &str, ms: u32) -> bool {
        self.run(&["delay", router, &ms.to_string()]).status.success()
    }

    /// Runs `program args` inside `host` to completion (at most a minute):
    /// (exit ok, stdout, stderr).
    pub async fn output(
        &self,
        host: &str,
        program: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (bool, String, String) {
        let mut cmd = tokio::process::Command::new("ip");
        cmd.args(["netns", "exec", &format!("{}-{host}", self.prefix)]).arg(program).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        crate::output(cmd, &format!("{} {args:?} on {host}", program.display())).await
    }

    /// Runs `program args` inside `host`, collecting its output lines.
    pub fn spawn(&self, host: &str, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let ns = format!("{}-{host}", self.prefix);
        let mut all = vec!["netns", "exec", ns.as_str(), program.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        Proc::spawn(Path::new("ip"), &all, env)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = Command::new("bash").arg(&self.script).arg("down").arg(&self.prefix).output();
        if let Ok(o) = out
            && !o.status.success()
        {
            eprintln!("lab.sh down {} failed: {}", self.prefix, String::from_utf8_lossy(&o.stderr));
        }
    }
}

/// `tests/lab/lab.sh`.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("lab").join("lab.sh")
}

/// Tears down labs whose process is gone (killed before it could clean up).
fn sweep_stale(script: &Path) {
    let Ok(dir) = std::fs::read_dir("/run/netns") else { return };
    let mut stale: Vec<String> = Vec::new();
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(prefix) = name.split('-').next().filter(|p| p.starts_with(PREFIX_HEAD)) else { continue };
        let pid = prefix[PREFIX_HEAD.len()..].split('x').next().and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive && !stale.iter().any(|s| s == prefix) {
            stale.push(prefix.to_owned());
        }
    }
    for p in stale {
        eprintln!("natlab: removing the stale lab {p}");
        let _ = Command::new("bash").arg(script).arg("down").arg(&p).output();
    }
}
