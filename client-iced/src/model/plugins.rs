//! The node's plugins as the app uses them: the slash commands the
//! composer completes and the message actions a message offers, read from
//! the node's plugin list (`skein plugin list --json`'s shape).

use serde_json::Value;

/// A slash command a plugin answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The command, without its slash.
    pub name: String,
    /// What follows it.
    pub usage: String,
    /// What it does.
    pub description: String,
}

/// A message action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// The plugin that offers it.
    pub plugin: String,
    /// Its id.
    pub id: String,
    /// What the menu says.
    pub label: String,
}

/// The plugins that answer (running, or starting again after a failure).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plugins {
    /// Their slash commands.
    pub commands: Vec<Command>,
    /// Their message actions.
    pub actions: Vec<Action>,
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_owned()
}

impl Plugins {
    /// Reads the node's plugin list; disabled and broken plugins offer nothing.
    pub fn from_list(list: &Value) -> Plugins {
        let mut p = Plugins::default();
        for plugin in list.as_array().into_iter().flatten() {
            if matches!(plugin["state"].as_str(), Some("disabled" | "broken" | "stopped")) {
                continue;
            }
            for c in plugin["commands"].as_array().into_iter().flatten() {
                p.commands.push(Command { name: s(c, "name"), usage: s(c, "usage"), description: s(c, "description") });
            }
            for a in plugin["actions"].as_array().into_iter().flatten() {
                p.actions.push(Action { plugin: s(plugin, "name"), id: s(a, "id"), label: s(a, "label") });
            }
        }
        p.commands.sort_by(|a, b| a.name.cmp(&b.name));
        p
    }

    /// The commands that complete what the composer holds: `/` and the
    /// start of a command's name, nothing after it yet.
    pub fn completing(&self, composer: &str) -> Vec<&Command> {
        let Some(typed) = composer.strip_prefix('/') else { return Vec::new() };
        if typed.starts_with('/') || typed.contains(char::is_whitespace) {
            return Vec::new();
        }
        self.commands.iter().filter(|c| c.name.starts_with(typed)).take(8).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn commands_complete_and_disabled_plugins_offer_nothing() {
        let list = json!([
            {"name": "ticket", "state": "running",
             "commands": [{"name": "ticket", "usage": "open TEXT", "description": "Tickets"}],
             "actions": [{"id": "create-ticket", "label": "Create ticket"}]},
            {"name": "tasks", "state": "restarting", "commands": [{"name": "task", "usage": "", "description": ""}]},
            {"name": "bad", "state": "disabled", "commands": [{"name": "tix", "usage": "", "description": ""}]},
        ]);
        let p = Plugins::from_list(&list);
        let names = |typed: &str| p.completing(typed).iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        assert_eq!(names("/"), ["task", "ticket"]);
        assert_eq!(names("/ti"), ["ticket"]);
        assert!(names("/ticket open").is_empty() && names("//ti").is_empty() && names("ti").is_empty());
        assert_eq!(
            p.actions,
            [Action { plugin: "ticket".into(), id: "create-ticket".into(), label: "Create ticket".into() }]
        );
    }
}
