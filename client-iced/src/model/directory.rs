//! The organisation's directory as a tree: departments in path order, each
//! with its people (reachable ones first), with presence kept current by
//! the node's events, and a search over names, titles and departments.

use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// A person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// User name.
    pub name: String,
    /// Name to show.
    pub display_name: String,
    /// Department path (`Engineering/Backend`), if any.
    pub department: Option<String>,
    /// Job title.
    pub title: Option<String>,
    /// `online`, `away`, `busy` or `offline`.
    pub status: String,
    /// Their status note.
    pub note: Option<String>,
}

/// One line of the tree: a department heading or a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// A department, at a depth (0 for top level).
    Department {
        /// Its last path segment.
        name: &'a str,
        /// Nesting depth.
        depth: usize,
        /// People in it (not counting sub-departments) who are online.
        online: usize,
    },
    /// A person, under the department above.
    Person {
        /// The person.
        person: &'a Person,
        /// Nesting depth of their department plus one.
        depth: usize,
    },
}

/// The directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    people: Vec<Person>,
    departments: Vec<String>,
    /// Presence by user, as the node reports it (wins over the directory's).
    presence: HashMap<String, (String, Option<String>)>,
}

fn rank(status: &str) -> u8 {
    match status {
        "online" => 0,
        "busy" => 1,
        "away" => 2,
        _ => 3,
    }
}

impl Directory {
    /// From the node's `directory` and `departments` answers.
    pub fn load(&mut self, users: &Value, departments: &Value) {
        let s = |v: &Value, k: &str| v[k].as_str().map(str::to_owned);
        self.people = users
            .as_array()
            .into_iter()
            .flatten()
            .filter(|u| !u["disabled"].as_bool().unwrap_or(false))
            .map(|u| Person {
                name: s(u, "name").unwrap_or_default(),
                display_name: s(u, "display_name").unwrap_or_default(),
                department: s(u, "department").filter(|d| !d.is_empty()),
                title: s(u, "title").filter(|t| !t.is_empty()),
                status: s(u, "status").unwrap_or_else(|| "offline".into()),
                note: None,
            })
            .collect();
        self.departments =
            departments.as_array().into_iter().flatten().filter_map(|d| s(d, "path")).collect::<Vec<_>>();
        self.departments.sort();
    }

    /// Everyone's presence at once (the node's `presence` answer).
    pub fn presence_all(&mut self, list: &Value) {
        for p in list.as_array().into_iter().flatten() {
            if let Some(user) = p["user"].as_str() {
                let note = p["note"].as_str().map(str::to_owned);
                self.presence(user, p["status"].as_str().unwrap_or("offline"), note);
            }
        }
    }

    /// One user's presence changed.
    pub fn presence(&mut self, user: &str, status: &str, note: Option<String>) {
        self.presence.insert(user.to_owned(), (status.to_owned(), note));
    }

    /// A person by user name, with current presence.
    pub fn person(&self, name: &str) -> Option<Person> {
        self.people.iter().find(|p| p.name == name).map(|p| self.current(p))
    }

    /// What to call a user: the display name, or the user name.
    pub fn display_name(&self, name: &str) -> String {
        self.people
            .iter()
            .find(|p| p.name == name && !p.display_name.is_empty())
            .map_or_else(|| name.to_owned(), |p| p.display_name.clone())
    }

    /// A user's current status.
    pub fn status(&self, name: &str) -> String {
        match self.presence.get(name) {
            Some((s, _)) => s.clone(),
            None => self.people.iter().find(|p| p.name == name).map_or_else(|| "offline".into(), |p| p.status.clone()),
        }
    }

    fn current(&self, p: &Person) -> Person {
        let mut p = p.clone();
        if let Some((status, note)) = self.presence.get(&p.name) {
            p.status = status.clone();
            p.note = note.clone();
        }
        p
    }

    /// The people matching `query` (all when empty), with presence, by
    /// department path; people with no department under "".
    pub fn people_by_department(&self, query: &str) -> BTreeMap<String, Vec<Person>> {
        let q = query.trim().to_lowercase();
        let matches = |p: &Person| {
            q.is_empty()
                || [Some(&p.name), Some(&p.display_name), p.department.as_ref(), p.title.as_ref()]
                    .into_iter()
                    .flatten()
                    .any(|f| f.to_lowercase().contains(&q))
        };
        let mut by: BTreeMap<String, Vec<Person>> = BTreeMap::new();
        for p in self.people.iter().filter(|p| matches(p)) {
            by.entry(p.department.clone().unwrap_or_default()).or_default().push(self.current(p));
        }
        for list in by.values_mut() {
            list.sort_by(|a, b| {
                rank(&a.status)
                    .cmp(&rank(&b.status))
                    .then_with(|| a.display_name.to_lowercase().cmp(&b.display_name.to_lowercase()))
            });
        }
        by
    }

    /// The tree's lines for `query`: each department that has matching
    /// people (and its parents), then its people; people in no department
    /// last. `people` is what [`Directory::people_by_department`] returned.
    pub fn lines<'a>(&'a self, people: &'a BTreeMap<String, Vec<Person>>) -> Vec<Line<'a>> {
        let mut lines = Vec::new();
        let mut paths: Vec<&str> = self.departments.iter().map(String::as_str).collect();
        for p in people.keys().filter(|k| !k.is_empty()) {
            if !paths.contains(&p.as_str()) {
                paths.push(p);
            }
        }
        paths.sort_unstable();
        for path in paths {
            let has_people = |prefix: &str| {
                people.iter().any(|(d, list)| !list.is_empty() && (d == prefix || d.starts_with(&format!("{prefix}/"))))
            };
            if !has_people(path) {
                continue;
            }
            let depth = path.matches('/').count();
            let here = people.get(path).map(Vec::as_slice).unwrap_or_default();
            let name = path.rsplit('/').next().unwrap_or(path);
            lines.push(Line::Department { name, depth, online: here.iter().filter(|p| p.status != "offline").count() });
            lines.extend(here.iter().map(|person| Line::Person { person, depth: depth + 1 }));
        }
        if let Some(rest) = people.get("").filter(|l| !l.is_empty()) {
            lines.push(Line::Department {
                name: "Everyone else",
                depth: 0,
                online: rest.iter().filter(|p| p.status != "offline").count(),
            });
            lines.extend(rest.iter().map(|person| Line::Person { person, depth: 1 }));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dir() -> Directory {
        let mut d = Directory::default();
        d.load(
            &json!([
                {"name": "alice", "display_name": "Alice Liddell", "department": "Engineering", "status": "online"},
                {"name": "bob", "display_name": "Bob", "department": "Engineering/Backend", "title": "SRE", "status": "offline"},
                {"name": "zoe", "display_name": "Zoë", "department": "Engineering/Backend", "status": "online"},
                {"name": "carol", "display_name": "Carol", "department": null, "status": "away"},
                {"name": "mallory", "display_name": "M", "disabled": true},
            ]),
            &json!([{"path": "Engineering"}, {"path": "Engineering/Backend"}, {"path": "Sales"}]),
        );
        d
    }

    #[test]
    fn the_tree_shows_departments_then_people_reachable_first_and_follows_presence() {
        let mut d = dir();
        let people = d.people_by_department("");
        let names: Vec<String> = d
            .lines(&people)
            .iter()
            .map(|l| match l {
                Line::Department { name, depth, .. } => format!("{depth}:{name}"),
                Line::Person { person, depth } => format!("{depth}:{}", person.name),
            })
            .collect();
        assert_eq!(names, ["0:Engineering", "1:alice", "1:Backend", "2:zoe", "2:bob", "0:Everyone else", "1:carol"]);
        d.presence("bob", "online", Some("on call".into()));
        let people = d.people_by_department("");
        assert_eq!(people["Engineering/Backend"][0].name, "bob", "bob came online and sorts by name among the online");
        assert_eq!(d.person("bob").and_then(|p| p.note).as_deref(), Some("on call"));
        assert_eq!(d.display_name("alice"), "Alice Liddell");
        assert_eq!(d.display_name("nobody"), "nobody");
    }

    #[test]
    fn search_matches_names_titles_and_departments_and_keeps_the_path_to_them() {
        let d = dir();
        let people = d.people_by_department("sre");
        let lines = d.lines(&people);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(matches!(lines[0], Line::Department { name: "Engineering", .. }));
        assert!(matches!(lines[2], Line::Person { person, .. } if person.name == "bob"));
        assert!(d.lines(&d.people_by_department("no such person")).is_empty());
    }
}
