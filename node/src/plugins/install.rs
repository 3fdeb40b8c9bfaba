//! Plugins on disk, in the profile:
//!
//! - `plugins/NAME/`: the plugin's folder, copied whole at install;
//! - `plugin-grants/NAME.json`: the permissions the user granted, with the
//!   hash of the manifest they were granted to (outside the plugin's folder,
//!   and void if its manifest changes);
//! - `plugin-data/NAME/`: the plugin's own files (kept when it is installed
//!   again or upgraded);
//! - `plugin-logs/NAME.log`: what it wrote on standard error.
//!
//! Installing copies into a hidden folder first, checks the copy (what runs
//! is what was checked), and renames it into place, so a plugin is never
//! seen half copied; a failed rename puts the previous version back.

use super::manifest::{MANIFEST, Manifest, ManifestError, Permission};
use std::path::{Path, PathBuf};

/// Most files and folders a plugin's folder may hold.
pub const MAX_FILES: usize = 2_000;
/// Most bytes a plugin's folder may hold.
pub const MAX_BYTES: u64 = 256 * 1024 * 1024;

/// An installed plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Its manifest.
    pub manifest: Manifest,
    /// Its folder, which it runs in.
    pub dir: PathBuf,
    /// The folder for its own files.
    pub data: PathBuf,
    /// Its standard-error log.
    pub log: PathBuf,
    /// The permissions the user granted (a subset of what it asks for).
    pub granted: Vec<Permission>,
}

impl Installed {
    /// Whether the user granted `p`.
    pub fn may(&self, p: Permission) -> bool {
        self.granted.contains(&p)
    }
}

/// Why installing, reading or removing a plugin failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// The manifest is missing or wrong.
    #[error("{path}: {source}")]
    Manifest {
        /// The manifest's path.
        path: String,
        /// What is wrong.
        source: ManifestError,
    },
    /// A file could not be read or written.
    #[error("cannot {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The folder cannot be installed as it is.
    #[error("{0}")]
    Refused(String),
    /// No plugin of that name is installed.
    #[error("no plugin named {0:?} is installed; `skein plugin list` shows those that are")]
    NotInstalled(String),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> InstallError + 'a {
    move |source| InstallError::Io { what, path: path.display().to_string(), source }
}

/// Where installed plugins' folders are.
pub fn plugins_dir(profile: &Path) -> PathBuf {
    profile.join("plugins")
}

fn places(profile: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    (
        plugins_dir(profile).join(name),
        profile.join("plugin-data").join(name),
        profile.join("plugin-logs").join(format!("{name}.log")),
    )
}

fn grants_path(profile: &Path, name: &str) -> PathBuf {
    profile.join("plugin-grants").join(format!("{name}.json"))
}

/// The hash grants are tied to: the manifest's bytes.
fn manifest_hash(dir: &Path) -> Option<String> {
    std::fs::read(dir.join(MANIFEST)).ok().map(|b| blake3::hash(&b).to_hex().to_string())
}

/// Reads and checks the manifest of the plugin folder `src`, and that the
/// program it names is there and executable.
pub fn read_source(src: &Path) -> Result<Manifest, InstallError> {
    let path = src.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => InstallError::Refused(format!(
            "{} has no {MANIFEST}: a plugin's folder holds its manifest and its program",
            src.display()
        )),
        _ => InstallError::Io { what: "read", path: path.display().to_string(), source: e },
    })?;
    let manifest =
        Manifest::parse(&text).map_err(|source| InstallError::Manifest { path: path.display().to_string(), source })?;
    let exec = src.join(&manifest.exec);
    let meta = std::fs::metadata(&exec).map_err(|_| {
        InstallError::Refused(format!(
            "{MANIFEST} names the program {:?}, which is not in {}",
            manifest.exec,
            src.display()
        ))
    })?;
    use std::os::unix::fs::PermissionsExt;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(InstallError::Refused(format!(
            "{} is not an executable file; make it one (chmod +x)",
            exec.display()
        )));
    }
    Ok(manifest)
}

/// Installs the plugin folder `src` into `profile` with the permissions
/// `granted`, in place of an installed plugin of the same name (its own
/// files are kept).
pub fn install(profile: &Path, src: &Path, granted: &[Permission]) -> Result<Installed, InstallError> {
    let name = read_source(src)?.name;
    let root = plugins_dir(profile);
    std::fs::create_dir_all(&root).map_err(io("create", &root))?;
    let fresh = root.join(format!(".{name}.new"));
    let old = root.join(format!(".{name}.old"));
    for leftover in [&fresh, &old] {
        if leftover.exists() {
            std::fs::remove_dir_all(leftover).map_err(io("remove", leftover))?;
        }
    }
    let mut budget = (MAX_FILES, MAX_BYTES);
    let checked = copy_tree(src, &fresh, &mut budget).and_then(|()| check_copy(profile, &fresh, &name, granted));
    let manifest = match checked {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&fresh);
            return Err(e);
        }
    };
    let (dir, data, log) = places(profile, &name);
    if dir.exists() {
        std::fs::rename(&dir, &old).map_err(io("move aside", &dir))?;
    }
    if let Err(e) = std::fs::rename(&fresh, &dir) {
        if old.exists() {
            let _ = std::fs::rename(&old, &dir);
        }
        let _ = std::fs::remove_dir_all(&fresh);
        return Err(InstallError::Io { what: "move into place", path: fresh.display().to_string(), source: e });
    }
    if old.exists() {
        let _ = std::fs::remove_dir_all(&old);
    }
    let grants = grants_path(profile, &name);
    if let Some(parent) = grants.parent() {
        std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    }
    let names: Vec<&str> = granted.iter().map(|p| p.as_str()).collect();
    let record = serde_json::json!({ "granted": names, "manifest": manifest_hash(&dir) });
    crate::profile::write_atomic(&grants, record.to_string().as_bytes(), true)
        .map_err(|e| InstallError::Refused(format!("cannot write {}: {e}", grants.display())))?;
    std::fs::create_dir_all(&data).map_err(io("create", &data))?;
    Ok(Installed { manifest, dir, data, log, granted: granted.to_vec() })
}

/// Checks the copy about to be installed as `name`: its manifest (the one
/// that will run), the permissions granted, and its commands against the
/// other plugins'.
fn check_copy(profile: &Path, copy: &Path, name: &str, granted: &[Permission]) -> Result<Manifest, InstallError> {
    let manifest = read_source(copy)?;
    if manifest.name != name {
        return Err(InstallError::Refused("the plugin's manifest changed while it was copied; try again".into()));
    }
    if let Some(p) = granted.iter().find(|p| !manifest.asks(**p)) {
        return Err(InstallError::Refused(format!("the plugin does not ask for the permission {:?}", p.as_str())));
    }
    for other in installed(profile).into_iter().flatten() {
        if other.manifest.name == manifest.name {
            continue;
        }
        if let Some(c) = manifest.commands.iter().find(|c| other.manifest.commands.iter().any(|o| o.name == c.name)) {
            return Err(InstallError::Refused(format!(
                "the command /{} is already the plugin {:?}'s; remove that one first (`skein plugin remove {}`)",
                c.name, other.manifest.name, other.manifest.name
            )));
        }
    }
    Ok(manifest)
}

fn copy_tree(from: &Path, to: &Path, budget: &mut (usize, u64)) -> Result<(), InstallError> {
    std::fs::create_dir(to).map_err(io("create", to))?;
    for entry in std::fs::read_dir(from).map_err(io("read", from))? {
        let entry = entry.map_err(io("read", from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(io("read", &src))?;
        if kind.is_symlink() {
            return Err(InstallError::Refused(format!(
                "{} is a symbolic link; a plugin's folder is copied whole, so it may hold only files and folders",
                src.display()
            )));
        }
        if kind.is_dir() {
            if budget.0 == 0 {
                return Err(too_big(from));
            }
            budget.0 -= 1;
            copy_tree(&src, &dst, budget)?;
            continue;
        }
        if !kind.is_file() {
            return Err(InstallError::Refused(format!("{} is not a file or a folder", src.display())));
        }
        let size = entry.metadata().map_err(io("read", &src))?.len();
        if budget.0 == 0 || size > budget.1 {
            return Err(too_big(from));
        }
        budget.0 -= 1;
        budget.1 -= size;
        std::fs::copy(&src, &dst).map_err(io("copy", &src))?;
    }
    Ok(())
}

fn too_big(dir: &Path) -> InstallError {
    InstallError::Refused(format!(
        "{} holds more than {MAX_FILES} files and folders or {} MiB; a plugin's folder must be smaller",
        dir.display(),
        MAX_BYTES >> 20
    ))
}

/// The plugins installed in `profile`, by name; a folder that is no longer
/// a good plugin is an error under its folder's name.
pub fn installed(profile: &Path) -> Vec<Result<Installed, (String, InstallError)>> {
    let root = plugins_dir(profile);
    let Ok(entries) = std::fs::read_dir(&root) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names.into_iter().map(|n| read_installed(profile, &n).map_err(|e| (n, e))).collect()
}

fn read_installed(profile: &Path, name: &str) -> Result<Installed, InstallError> {
    let (dir, data, log) = places(profile, name);
    let manifest = read_source(&dir)?;
    if manifest.name != name {
        return Err(InstallError::Refused(format!(
            "{} holds the plugin {:?}; install it again with `skein plugin install`",
            dir.display(),
            manifest.name
        )));
    }
    // Grants hold for the manifest they were given to, and no other.
    let record = std::fs::read(grants_path(profile, name))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .unwrap_or_default();
    let same = record["manifest"].as_str().is_some_and(|h| Some(h.to_owned()) == manifest_hash(&dir));
    if !same && record["granted"].as_array().is_some_and(|g| !g.is_empty()) {
        tracing::warn!(plugin = %name, "its manifest changed since it was installed: no permission holds until it is installed again");
    }
    let granted = serde_json::from_value::<Vec<Permission>>(record["granted"].clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| same && manifest.asks(*p))
        .collect();
    Ok(Installed { manifest, dir, data, log, granted })
}

/// Removes the installed plugin `name`; its own files too with `purge`.
pub fn remove(profile: &Path, name: &str, purge: bool) -> Result<(), InstallError> {
    let (dir, data, log) = places(profile, name);
    if !super::manifest::is_name(name) || !dir.is_dir() {
        return Err(InstallError::NotInstalled(name.to_owned()));
    }
    std::fs::remove_dir_all(&dir).map_err(io("remove", &dir))?;
    let _ = std::fs::remove_file(grants_path(profile, name));
    if purge {
        for p in [&data] {
            if p.exists() {
                std::fs::remove_dir_all(p).map_err(io("remove", p))?;
            }
        }
        let _ = std::fs::remove_file(&log);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn plugin(dir: &Path, name: &str, command: &str) {
        std::fs::create_dir_all(dir).expect("should succeed");
        let manifest = format!(
            "name = \"{name}\"\nversion = \"1\"\nexec = \"run\"\npermissions = [\"post\"]\n[[commands]]\nname = \"{command}\"\n"
        );
        std::fs::write(dir.join(MANIFEST), manifest).expect("should succeed");
        std::fs::write(dir.join("run"), "#!/bin/sh\n").expect("should succeed");
        std::fs::set_permissions(dir.join("run"), std::fs::Permissions::from_mode(0o755)).expect("should succeed");
    }

    #[test]
    fn installs_lists_reinstalls_and_removes() {
        let t = tempfile::tempdir().expect("should succeed");
        let (profile, src) = (t.path().join("p"), t.path().join("src"));
        plugin(&src, "ticket", "ticket");
        std::fs::create_dir_all(src.join("lib")).expect("should succeed");
        std::fs::write(src.join("lib/x"), "x").expect("should succeed");
        let i = install(&profile, &src, &[Permission::Post]).expect("should succeed");
        assert!(i.may(Permission::Post) && i.dir.join("lib/x").is_file());
        std::fs::write(i.data.join("tickets.json"), "[]").expect("should succeed");
        // Again, granting less: the grant changes and the plugin's files stay.
        install(&profile, &src, &[]).expect("should succeed");
        let listed: Vec<_> = installed(&profile).into_iter().map(Result::unwrap).collect();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].granted.is_empty());
        assert!(i.data.join("tickets.json").is_file());
        // Granted to one manifest, void for another: a plugin cannot grant itself more.
        install(&profile, &src, &[Permission::Post]).expect("should succeed");
        let manifest = i.dir.join(MANIFEST);
        let text = std::fs::read_to_string(&manifest).expect("should succeed");
        std::fs::write(&manifest, format!("{text}# changed\n")).expect("should succeed");
        let listed: Vec<_> = installed(&profile).into_iter().map(|r| r.expect("should succeed")).collect();
        assert!(listed[0].granted.is_empty(), "an edited manifest keeps no grant");
        remove(&profile, "ticket", false).expect("should succeed");
        assert!(installed(&profile).is_empty() && i.data.is_dir());
        assert!(matches!(remove(&profile, "ticket", true), Err(InstallError::NotInstalled(_))));
    }

    #[test]
    fn refuses_what_cannot_be_installed_whole() {
        let t = tempfile::tempdir().expect("should succeed");
        let profile = t.path().join("p");
        let src = t.path().join("a");
        plugin(&src, "a", "ticket");
        install(&profile, &src, &[]).expect("should succeed");
        let other = t.path().join("b");
        plugin(&other, "b", "ticket");
        let e = install(&profile, &other, &[]).expect_err("should fail").to_string();
        assert!(e.contains("/ticket is already the plugin \"a\""), "{e}");
        plugin(&other, "b", "other");
        assert!(
            install(&profile, &other, &[Permission::Read])
                .expect_err("should fail")
                .to_string()
                .contains("does not ask")
        );
        std::os::unix::fs::symlink("/etc/passwd", other.join("link")).expect("should succeed");
        assert!(install(&profile, &other, &[]).expect_err("should fail").to_string().contains("symbolic link"));
        std::fs::remove_file(other.join("link")).expect("should succeed");
        std::fs::set_permissions(other.join("run"), std::fs::Permissions::from_mode(0o644)).expect("should succeed");
        assert!(install(&profile, &other, &[]).expect_err("should fail").to_string().contains("chmod +x"));
        let e = install(&profile, t.path(), &[]).expect_err("should fail").to_string();
        assert!(e.contains("has no plugin.toml"), "{e}");
        assert!(!plugins_dir(&profile).join(".b.new").exists());
    }
}
