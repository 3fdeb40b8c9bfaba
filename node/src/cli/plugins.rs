//! `skein plugin …`: installing, listing and removing plugins, and running
//! a plugin's message action. Installing and removing change the profile
//! directly and then ask a running node to start its plugins again, so
//! they work with or without one.

use super::{ask_daemon, need_daemon, terminal};
use crate::control::ControlRequest;
use crate::plugins::install::{self, Installed};
use crate::plugins::manifest::Permission;
use crate::profile::Profile;
use anyhow::bail;
use clap::Subcommand;
use serde_json::{Value, json};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

/// Plugin commands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Install a plugin from its folder (a plugin.toml and its program),
    /// or install it again over the same name.
    Install {
        /// The plugin's folder.
        dir: PathBuf,
        /// Grant every permission it asks for without asking.
        #[arg(long)]
        yes: bool,
        /// Grant only these of the permissions it asks for (comma-separated:
        /// post, read), without asking.
        #[arg(long, value_delimiter = ',', conflicts_with = "yes")]
        grant: Option<Vec<String>>,
        /// One JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Show the installed plugins, their commands and actions, and their state.
    List {
        /// One JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Remove a plugin (its own files are kept unless --purge).
    Remove {
        /// The plugin's name.
        name: String,
        /// Remove its own files and its log too.
        #[arg(long)]
        purge: bool,
    },
    /// Run a plugin's message action on a message (ids as `skein history --json` shows them).
    Action {
        /// The plugin's name.
        plugin: String,
        /// The action's id.
        action: String,
        /// The message's id.
        message: String,
        /// One JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a plugin command.
pub(super) async fn run(profile: &Profile, cmd: PluginCommand) -> anyhow::Result<()> {
    match cmd {
        PluginCommand::Install { dir, yes, grant: only, json } => {
            let manifest = install::read_source(&dir)?;
            let granted = match only {
                Some(names) => names.iter().map(|n| parse_permission(n)).collect::<anyhow::Result<Vec<_>>>()?,
                None => grant(&manifest.name, &manifest.permissions, yes)?,
            };
            profile.create()?;
            let installed = install::install(profile.dir(), &dir, &granted)?;
            let reload = ControlRequest::PluginsReload { plugin: Some(installed.manifest.name.clone()) };
            let running = ask_daemon(profile, reload).await?.is_some();
            if json {
                println!(
                    "{}",
                    json!({"installed": installed.manifest.name, "version": installed.manifest.version,
                    "granted": installed.granted, "started": running})
                );
            } else {
                print_installed(&installed, running);
            }
            Ok(())
        }
        PluginCommand::List { json } => {
            let list = match ask_daemon(profile, ControlRequest::Plugins).await? {
                Some(v) => v,
                None => crate::plugins::list_installed(profile.dir()),
            };
            if json {
                println!("{list}");
            } else {
                print_list(&list);
            }
            Ok(())
        }
        PluginCommand::Remove { name, purge } => {
            install::remove(profile.dir(), &name, purge)?;
            let running =
                ask_daemon(profile, ControlRequest::PluginsReload { plugin: Some(name.clone()) }).await?.is_some();
            println!("Removed {}{}", terminal::line(&name), if running { "; the node has stopped it" } else { "" });
            Ok(())
        }
        PluginCommand::Action { plugin, action, message, json } => {
            let v = need_daemon(profile, ControlRequest::PluginAction { plugin, action, message }).await?;
            print_outcome(&v, json);
            Ok(())
        }
    }
}

fn parse_permission(name: &str) -> anyhow::Result<Permission> {
    match name.trim() {
        "post" => Ok(Permission::Post),
        "read" => Ok(Permission::Read),
        other => bail!("{other:?} is not a permission; plugins may ask for post and read"),
    }
}

/// The permissions the user grants: all with `yes`, else as answered on
/// the terminal; refused when there is no terminal to ask on.
fn grant(name: &str, asked: &[Permission], yes: bool) -> anyhow::Result<Vec<Permission>> {
    if asked.is_empty() || yes {
        return Ok(asked.to_vec());
    }
    if !std::io::stdin().is_terminal() {
        let names: Vec<&str> = asked.iter().map(|p| p.as_str()).collect();
        bail!(
            "the plugin {name} asks for the permissions {}; pass --yes to grant them (see `skein plugin install --help`)",
            names.join(", ")
        );
    }
    println!("The plugin {} asks to:", terminal::line(name));
    for p in asked {
        println!("  - {} ({})", p.meaning(), p.as_str());
    }
    print!("Grant these? [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        bail!("not installed: the permissions were not granted");
    }
    Ok(asked.to_vec())
}

fn print_installed(p: &Installed, running: bool) {
    let m = &p.manifest;
    println!("Installed {} {}", terminal::line(&m.name), terminal::line(&m.version));
    for c in &m.commands {
        println!("  /{} {}", c.name, terminal::line(&c.usage));
    }
    for a in &m.actions {
        println!("  action {}: {}", a.id, terminal::line(&a.label));
    }
    if running {
        println!("The running node has started it.");
    } else {
        println!("It starts with the node (`skein daemon` or the desktop app).");
    }
}

fn print_list(list: &Value) {
    let empty = Vec::new();
    let list = list.as_array().unwrap_or(&empty);
    if list.is_empty() {
        println!("No plugins are installed; `skein plugin install DIR` installs one.");
        return;
    }
    for p in list {
        let s = |k: &str| terminal::line(p[k].as_str().unwrap_or("")).into_owned();
        println!("{} {}  [{}]", s("name"), s("version"), s("state"));
        if let Some(reason) = p["reason"].as_str() {
            println!("  last failure: {}", terminal::line(reason));
        }
        for c in p["commands"].as_array().unwrap_or(&empty) {
            let u = terminal::line(c["usage"].as_str().unwrap_or(""));
            println!("  /{} {u}", terminal::line(c["name"].as_str().unwrap_or("")));
        }
        for a in p["actions"].as_array().unwrap_or(&empty) {
            let (id, label) = (a["id"].as_str().unwrap_or(""), a["label"].as_str().unwrap_or(""));
            println!("  action {}: {}", terminal::line(id), terminal::line(label));
        }
        let granted: Vec<&str> = p["granted"].as_array().unwrap_or(&empty).iter().filter_map(Value::as_str).collect();
        if !granted.is_empty() {
            println!("  granted: {}", granted.join(", "));
        }
    }
}

/// What a plugin answered a command or an action with, for people: its
/// reply, and where its post went.
pub(super) fn print_outcome(v: &Value, json: bool) {
    if json {
        println!("{v}");
        return;
    }
    if let Some(reply) = v["reply"].as_str() {
        println!("{}", terminal::text(reply, "  "));
    }
    if let Some(path) = v["posted"]["path"].as_str() {
        println!("posted: {}", terminal::line(path));
    }
}
