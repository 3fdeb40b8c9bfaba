//! A plugin's manifest, `plugin.toml`: what it is, how to start it, the
//! slash commands and message actions it adds, and the permissions it asks
//! for. Parsing and checking only; no IO.
//!
//! ```toml
//! name = "ticket"
//! version = "1.0.0"
//! description = "A small ticket tracker"
//! exec = "ticket.py"            # inside the plugin's folder
//! args = []
//! timeout_ms = 10000            # how long the node waits for an answer
//! permissions = ["post", "read"]
//!
//! [[commands]]
//! name = "ticket"
//! usage = "open TEXT | list | show N | close N"
//! description = "Open, list and close tickets"
//!
//! [[actions]]
//! id = "create-ticket"
//! label = "Create ticket from this message"
//! ```

use serde::{Deserialize, Serialize};
use std::path::{Component, Path};

/// The manifest's file name in a plugin's folder.
pub const MANIFEST: &str = "plugin.toml";
/// The default wait for a plugin's answer, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// The longest wait a manifest may ask for, in milliseconds.
pub const MAX_TIMEOUT_MS: u64 = 30_000;
/// Most slash commands or message actions one plugin adds.
pub const MAX_ENTRIES: usize = 16;
/// Longest manifest file, in bytes.
pub const MAX_MANIFEST: usize = 64 * 1024;

/// What a plugin may do beyond answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Post messages and cards as the user, in the conversation it was invoked in.
    Post,
    /// Read the conversation it was invoked in.
    Read,
}

impl Permission {
    /// The permission's name in a manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Post => "post",
            Permission::Read => "read",
        }
    }

    /// What granting it allows, for the user deciding.
    pub fn meaning(self) -> &'static str {
        match self {
            Permission::Post => "post messages and cards as you, in the conversation you use it in",
            Permission::Read => "read the conversation you use it in",
        }
    }
}

/// A slash command a plugin answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlashCommand {
    /// The command without its slash: `ticket` for `/ticket`.
    pub name: String,
    /// What follows the command, for completion: `open TEXT | list`.
    #[serde(default)]
    pub usage: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
}

/// A message action: an entry in a message's menu.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageAction {
    /// Its id, sent back to the plugin.
    pub id: String,
    /// What the menu says.
    pub label: String,
}

/// A parsed and checked `plugin.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name: lower-case letters, digits and `-`.
    pub name: String,
    /// Its version, as its author numbers them.
    pub version: String,
    /// One line on what it does.
    #[serde(default)]
    pub description: String,
    /// The program to start, relative to the plugin's folder.
    pub exec: String,
    /// Arguments for it.
    #[serde(default)]
    pub args: Vec<String>,
    /// How long the node waits for an answer, in milliseconds.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// What it may do beyond answering.
    #[serde(default)]
    pub permissions: Vec<Permission>,
    /// The slash commands it answers.
    #[serde(default)]
    pub commands: Vec<SlashCommand>,
    /// The message actions it adds.
    #[serde(default)]
    pub actions: Vec<MessageAction>,
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Not TOML in the manifest's shape.
    #[error("{MANIFEST} is not a plugin manifest: {0}")]
    Syntax(String),
    /// A value out of bounds.
    #[error("{MANIFEST}: {0}")]
    Invalid(String),
}

/// Whether `s` may name a plugin, a command or an action: 1 to 32 of
/// `a-z`, `0-9` and `-`, starting with a letter or digit.
pub fn is_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && !s.starts_with('-')
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Manifest {
    /// Parses and checks a manifest's text.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        if text.len() > MAX_MANIFEST {
            return Err(ManifestError::Invalid(format!("the file is over {} KiB", MAX_MANIFEST / 1024)));
        }
        let m: Manifest = toml::from_str(text).map_err(|e| ManifestError::Syntax(e.message().to_owned()))?;
        m.check()?;
        Ok(m)
    }

    fn check(&self) -> Result<(), ManifestError> {
        let bad = |m: String| Err(ManifestError::Invalid(m));
        if !is_name(&self.name) {
            return bad(format!("`name` {:?} must be 1 to 32 of a-z, 0-9 and '-'", self.name));
        }
        if self.version.trim().is_empty() || self.version.len() > 32 {
            return bad("`version` must be 1 to 32 characters".into());
        }
        if self.description.chars().count() > 200 {
            return bad("`description` is over 200 characters".into());
        }
        if !is_inside(&self.exec) {
            return bad(format!(
                "`exec` {:?} must name a program inside the plugin's folder (a relative path without '..')",
                self.exec
            ));
        }
        if self.args.len() > 32 || self.args.iter().any(|a| a.len() > 1024) {
            return bad("`args` may hold at most 32 arguments of at most 1024 bytes".into());
        }
        if !(100..=MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            return bad(format!("`timeout_ms` must be 100 to {MAX_TIMEOUT_MS}"));
        }
        if self.commands.is_empty() && self.actions.is_empty() {
            return bad("a plugin needs at least one `[[commands]]` or `[[actions]]` entry".into());
        }
        if self.commands.len() > MAX_ENTRIES || self.actions.len() > MAX_ENTRIES {
            return bad(format!("at most {MAX_ENTRIES} commands and {MAX_ENTRIES} actions"));
        }
        for c in &self.commands {
            if !is_name(&c.name) {
                return bad(format!("command {:?} must be 1 to 32 of a-z, 0-9 and '-', without the '/'", c.name));
            }
            if c.usage.chars().count() > 200 || c.description.chars().count() > 200 {
                return bad(format!("command {:?}: `usage` and `description` are at most 200 characters", c.name));
            }
        }
        for a in &self.actions {
            if !is_name(&a.id) {
                return bad(format!("action id {:?} must be 1 to 32 of a-z, 0-9 and '-'", a.id));
            }
            if a.label.trim().is_empty() || a.label.chars().count() > 60 {
                return bad(format!("action {:?}: `label` must be 1 to 60 characters", a.id));
            }
        }
        if let Some(d) = duplicate(self.commands.iter().map(|c| c.name.as_str())) {
            return bad(format!("command {d:?} is listed twice"));
        }
        if let Some(d) = duplicate(self.actions.iter().map(|a| a.id.as_str())) {
            return bad(format!("action {d:?} is listed twice"));
        }
        Ok(())
    }

    /// Whether the manifest asks for `p`.
    pub fn asks(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }
}

fn is_inside(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

fn duplicate<'a>(names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = std::collections::BTreeSet::new();
    names.into_iter().find(|n| !seen.insert(*n))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICKET: &str = r#"
name = "ticket"
version = "1.0.0"
exec = "ticket.py"
permissions = ["post", "read"]
[[commands]]
name = "ticket"
usage = "open TEXT"
[[actions]]
id = "create-ticket"
label = "Create ticket from this message"
"#;

    #[test]
    fn a_good_manifest_parses_with_defaults() {
        let m = Manifest::parse(TICKET).expect("should succeed");
        assert_eq!(m.name, "ticket");
        assert_eq!(m.timeout_ms, DEFAULT_TIMEOUT_MS);
        assert!(m.asks(Permission::Post) && m.asks(Permission::Read));
        assert_eq!(m.commands[0].name, "ticket");
    }

    #[test]
    fn bad_manifests_say_what_is_wrong() {
        let cases = [
            (TICKET.replace("ticket.py", "../../bin/sh"), "inside the plugin's folder"),
            (TICKET.replace("ticket.py", "/bin/sh"), "inside the plugin's folder"),
            (TICKET.replace("name = \"ticket\"\nversion", "name = \"Ticket!\"\nversion"), "`name`"),
            (TICKET.replace("name = \"ticket\"\nusage", "name = \"/ticket\"\nusage"), "without the '/'"),
            (TICKET.replace("[\"post\", \"read\"]", "[\"post\", \"root\"]"), "not a plugin manifest"),
            (format!("{TICKET}\nsurprise = 1\n"), "not a plugin manifest"),
            (format!("timeout_ms = 50\n{TICKET}"), "`timeout_ms`"),
            (format!("{TICKET}\n[[commands]]\nname = \"ticket\"\n"), "listed twice"),
            ("name = \"x\"\nversion = \"1\"\nexec = \"x\"\n".to_owned(), "at least one"),
        ];
        for (text, want) in cases {
            let e = Manifest::parse(&text).expect_err("should fail").to_string();
            assert!(e.contains(want), "{e:?} should mention {want:?}");
        }
    }

    #[test]
    fn names() {
        assert!(is_name("ticket") && is_name("a-1"));
        assert!(!is_name("") && !is_name("-a") && !is_name("A") && !is_name(&"a".repeat(33)));
    }
}
