//! Reading and writing certificate and key files.
//!
//! Private keys are created with mode 0600 from the first byte: the file is
//! opened with that mode, so there is no moment when it is readable by
//! others. Without `force` an existing file is never replaced (the file is
//! opened with `create_new`, so a file that appears between a check and the
//! write is not clobbered either). With `force` the new contents go to a
//! fresh temporary file in the same directory, which is then renamed over
//! the old one, so an old key file with looser permissions is replaced
//! rather than rewritten in place.

use crate::error::CertError;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Mode of private key files.
pub const PRIVATE_MODE: u32 = 0o600;
/// Mode of certificate files (before the umask).
pub const PUBLIC_MODE: u32 = 0o644;

/// Reads a whole file, naming it and `what` it should hold on failure.
pub fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, CertError> {
    fs::read(path).map_err(|e| CertError::read(what, path, e))
}

/// Fails with [`CertError::AlreadyExists`] for the first of `paths` that
/// exists, unless `force` is set.
///
/// Call this for every file an operation will write before writing any of
/// them, so a refusal leaves nothing half-written.
pub fn ensure_writable(paths: &[&Path], force: bool) -> Result<(), CertError> {
    if force {
        return Ok(());
    }
    for path in paths {
        // `symlink_metadata` also sees dangling symlinks, which `create_new`
        // would refuse to follow.
        match fs::symlink_metadata(path) {
            Ok(_) => {
                return Err(CertError::AlreadyExists { path: path.to_path_buf() });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(CertError::read("file", path, e)),
        }
    }
    Ok(())
}

/// Writes a private key file with mode 0600.
///
/// Without `force`, fails with [`CertError::AlreadyExists`] if `path` exists.
pub fn write_private(path: &Path, contents: &[u8], force: bool) -> Result<(), CertError> {
    write_with_mode("private key", path, contents, force, PRIVATE_MODE)
}

/// Writes a public file (a certificate) with mode 0644, less the umask.
///
/// Without `force`, fails with [`CertError::AlreadyExists`] if `path` exists.
pub fn write_public(path: &Path, contents: &[u8], force: bool) -> Result<(), CertError> {
    write_with_mode("file", path, contents, force, PUBLIC_MODE)
}

fn write_with_mode(what: &'static str, path: &Path, contents: &[u8], force: bool, mode: u32) -> Result<(), CertError> {
    if !force {
        return match write_new(path, contents, mode) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(CertError::AlreadyExists { path: path.to_path_buf() })
            }
            Err(e) => Err(CertError::write(what, path, e)),
        };
    }
    let tmp = temp_sibling(path);
    let result = write_new(&tmp, contents, mode).and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = result {
        // Best effort: the temporary file may not exist if creating it failed.
        let _ = fs::remove_file(&tmp);
        return Err(CertError::write(what, path, e));
    }
    Ok(())
}

/// Creates `path` (which must not exist) with `mode`, writes and syncs it.
/// On a write failure the partial file is removed.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(path)?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(e);
    }
    Ok(())
}

/// A fresh name next to `path`: `.NAME.tmp-PID-RANDOM`.
fn temp_sibling(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "skein-certs".to_string());
    let tmp_name = format!(".{name}.tmp-{}-{:08x}", std::process::id(), rand::random::<u32>());
    match path.parent() {
        Some(dir) => dir.join(tmp_name),
        None => PathBuf::from(tmp_name),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_file_is_0600_and_not_overwritten_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        write_private(&path, b"one", false).unwrap();
        assert_eq!(mode_of(&path), 0o600);

        let err = write_private(&path, b"two", false).unwrap_err();
        assert!(matches!(err, CertError::AlreadyExists { .. }));
        assert!(err.to_string().contains(&path.display().to_string()));
        assert_eq!(fs::read(&path).unwrap(), b"one");

        write_private(&path, b"two", true).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(mode_of(&path), 0o600);
    }

    #[test]
    fn force_replaces_a_world_readable_key_with_a_0600_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, b"new", true).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(fs::read(&path).unwrap(), b"new");
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn ensure_writable_names_the_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        fs::write(&b, b"x").unwrap();
        ensure_writable(&[&a], false).unwrap();
        let err = ensure_writable(&[&a, &b], false).unwrap_err();
        assert!(err.to_string().contains(&b.display().to_string()));
        ensure_writable(&[&a, &b], true).unwrap();
    }

    #[test]
    fn missing_file_error_names_the_file() {
        let err = read_file("CA certificate", Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert_eq!(err.to_string(), "cannot read CA certificate /nonexistent/ca.pem: No such file or directory");
    }
}

/// Why [`lock_file`] did not take a lock file.
#[derive(Debug)]
pub enum LockFailure {
    /// Another process holds it; what its file says of the holder (empty
    /// when it has not written yet).
    Held(String),
    /// Opening, locking or writing failed (`action` says which).
    Io(&'static str, io::Error),
}

/// Takes the operating system's exclusive lock on `path` (created if
/// missing) and writes `holder, pid N` in it. The lock ends with the
/// process however that ends, or when the returned file is dropped; the
/// file's words only say who holds it, to whoever is refused.
pub fn lock_file(path: &Path, holder: &str) -> Result<fs::File, LockFailure> {
    use std::io::Read;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| LockFailure::Io("open", e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(LockFailure::Held(text.trim().to_owned()));
        }
        Err(fs::TryLockError::Error(e)) => return Err(LockFailure::Io("lock", e)),
    }
    say_holder(&mut file, holder).map_err(|e| LockFailure::Io("write", e))?;
    Ok(file)
}

/// Rewrites who holds a file taken by [`lock_file`].
pub fn say_holder(file: &mut fs::File, holder: &str) -> io::Result<()> {
    use std::io::Seek;
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{holder}, pid {}", std::process::id())
}
