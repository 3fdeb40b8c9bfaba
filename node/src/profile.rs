//! A node's profile directory: the device's keys and the saved session.
//!
//! ```text
//! PROFILE/device.key     libp2p ed25519 keypair (protobuf encoding), 0600
//! PROFILE/x25519.key     X25519 secret for sealed mail, 0600
//! PROFILE/device.json    device id and name
//! PROFILE/ca.pem         the organisation CA this profile trusts
//! PROFILE/session.json   tracker address, user, session token, certificate, 0600
//! PROFILE/control.sock   the daemon's control socket, while it runs
//! ```
//!
//! Secrets are written to a temporary file created 0600 and renamed into
//! place, so a crash never leaves a half-written or world-readable key.
//!
//! The directory is created 0700. An existing one is used only if it belongs
//! to this user and no one else can write to it: whoever can write there can
//! replace the keys, the trusted CA or the session, or plant links that
//! redirect what the node writes.

use libp2p_identity::{Keypair, PeerId};
use serde::{Deserialize, Serialize};
use skein_proto::bytes::{DeviceId, PublicKey, SessionToken};
use skein_proto::control::DeviceHello;
use skein_proto::device::DeviceCert;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why a profile could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// A file could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file's contents are not what they should be.
    #[error("{path} is corrupt ({reason}); remove the profile directory and log in again")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The profile directory is not safe to keep this device's keys in.
    #[error("refusing to use the profile directory {path}: {problem}")]
    UnsafeDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong and what to do about it.
        problem: String,
    },
    /// Another node runs on this profile.
    #[error("the profile {path} is in use by {holder}; stop it first, or use another --profile")]
    InUse {
        /// The profile directory.
        path: PathBuf,
        /// Who holds it (`skein-desk, pid 1234`).
        holder: String,
    },
    /// No session saved yet.
    #[error("not logged in: run `skein --profile {0} login --tracker HOST:PORT --ca FILE --user NAME` first")]
    NotLoggedIn(PathBuf),
}

/// The device's identity, created on first use.
#[derive(Clone)]
pub struct DeviceIdentity {
    /// Random device identifier.
    pub device_id: DeviceId,
    /// Human name (the host name).
    pub name: String,
    /// libp2p keypair; its PeerId names the device on the mesh.
    pub keypair: Keypair,
    /// X25519 secret for opening sealed mail.
    pub x25519: x25519_dalek::StaticSecret,
}

impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("device_id", &self.device_id)
            .field("name", &self.name)
            .field("peer_id", &self.peer_id())
            .finish_non_exhaustive()
    }
}

impl DeviceIdentity {
    /// The device's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    /// The X25519 public key.
    pub fn x25519_public(&self) -> PublicKey {
        PublicKey(x25519_dalek::PublicKey::from(&self.x25519).to_bytes())
    }

    /// How the device introduces itself at login, on the connection whose
    /// welcome carried `nonce`: signed with its libp2p key, which proves
    /// it holds the PeerId it names.
    pub fn hello(&self, nonce: &[u8; 32]) -> DeviceHello {
        let mut hello = DeviceHello {
            device_id: self.device_id,
            name: self.name.clone(),
            peer_id: self.peer_id().to_bytes(),
            x25519: self.x25519_public(),
            proof: Vec::new(),
        };
        // Signing with an ed25519 key cannot fail; an empty proof is refused.
        hello.proof = self.keypair.sign(&hello.proof_bytes(nonce)).unwrap_or_default();
        hello
    }
}

/// What `session.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedSession {
    /// Tracker `HOST:PORT`.
    pub tracker: String,
    /// The user.
    pub user: String,
    /// Session token (hex).
    pub token: String,
    /// Token expiry, ms since the Unix epoch.
    pub expires_at_ms: u64,
    /// Organisation name.
    pub org: String,
    /// Whether the user is an administrator.
    pub admin: bool,
    /// The organisation's device-certificate key (hex).
    pub org_signing_key: String,
    /// This device's certificate (hex of its postcard encoding).
    pub device_cert: String,
    /// Status the daemon sets when it starts.
    #[serde(default = "default_status")]
    pub status: String,
    /// The organisation's other trackers (`HOST:PORT`), as the last one
    /// said: where a resume turns when `tracker` does not answer.
    #[serde(default)]
    pub trackers: Vec<String>,
}

fn default_status() -> String {
    "online".into()
}

impl SavedSession {
    /// The token.
    pub fn token(&self) -> Option<SessionToken> {
        SessionToken::from_hex(&self.token)
    }

    /// Records a new token and certificate after login or resume.
    pub fn update(&mut self, s: &skein_proto::control::Session) {
        self.token = s.token.to_hex();
        self.expires_at_ms = s.expires_at_ms;
        self.admin = s.admin;
        self.org = s.device_cert.body.org.clone();
        self.org_signing_key = s.org_signing_key.to_hex();
        self.device_cert = hex::encode(skein_proto::frame::encode_payload(&s.device_cert).unwrap_or_default());
    }

    /// The decoded device certificate.
    pub fn cert(&self) -> Option<DeviceCert> {
        let bytes = hex::decode(&self.device_cert).ok()?;
        skein_proto::frame::decode_payload(&bytes).ok()
    }
}

/// A profile directory.
#[derive(Debug, Clone)]
pub struct Profile {
    dir: PathBuf,
}

impl Profile {
    /// A profile at `dir` (not created until something is saved).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA copy this profile trusts.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The local message history.
    pub fn history_path(&self) -> PathBuf {
        self.dir.join("history.db")
    }

    /// The daemon's control socket.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.join("control.sock")
    }

    /// Takes the profile for one running node, as `face` (`skein daemon`,
    /// `skein-desk`): a second node on the profile is refused and told
    /// who has it. The lock is the operating system's, so it ends with the
    /// process however that ends; the file only says who holds it.
    pub fn lock(&self, face: &str) -> Result<ProfileLock, ProfileError> {
        use skein_certs::files::{LockFailure, lock_file};
        let path = self.dir.join("node.lock");
        let file = lock_file(&path, face).map_err(|e| match e {
            LockFailure::Held(text) => {
                let holder = if text.is_empty() { "another node".to_owned() } else { text };
                ProfileError::InUse { path: self.dir.clone(), holder }
            }
            LockFailure::Io(action, source) => ProfileError::Io { action, path: path.clone(), source },
        })?;
        Ok(ProfileLock { _file: file })
    }

    /// The saved session.
    pub fn session_path(&self) -> PathBuf {
        self.dir.join("session.json")
    }

    /// Creates the directory (0700) if needed. An existing directory must
    /// belong to this user and be writable by no one else.
    pub fn create(&self) -> Result<(), ProfileError> {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        if !self.dir.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(|source| ProfileError::Io { action: "create", path: self.dir.clone(), source })?;
        }
        let meta = std::fs::metadata(&self.dir).map_err(|source| ProfileError::Io {
            action: "inspect",
            path: self.dir.clone(),
            source,
        })?;
        match unsafe_dir_problem(&self.dir, meta.uid(), meta.mode(), effective_uid()) {
            None => Ok(()),
            Some(problem) => Err(ProfileError::UnsafeDir { path: self.dir.clone(), problem }),
        }
    }

    /// Loads the device identity, creating it on first use.
    pub fn device(&self) -> Result<DeviceIdentity, ProfileError> {
        self.create()?;
        let key_path = self.dir.join("device.key");
        let x_path = self.dir.join("x25519.key");
        let meta_path = self.dir.join("device.json");
        if !key_path.exists() {
            let keypair = Keypair::generate_ed25519();
            let enc = keypair
                .to_protobuf_encoding()
                .map_err(|e| ProfileError::Corrupt { path: key_path.clone(), reason: e.to_string() })?;
            write_atomic(&key_path, &enc, true)?;
            let secret = x25519_dalek::StaticSecret::random_from_rng(rand::rngs::OsRng);
            write_atomic(&x_path, secret.as_bytes(), true)?;
            let mut id = [0u8; 16];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
            let meta = serde_json::json!({ "device_id": hex::encode(id), "name": host_name() });
            write_atomic(&meta_path, meta.to_string().as_bytes(), false)?;
        }
        let enc = read(&key_path)?;
        let keypair = Keypair::from_protobuf_encoding(&enc)
            .map_err(|e| ProfileError::Corrupt { path: key_path.clone(), reason: e.to_string() })?;
        let x = read(&x_path)?;
        let x: [u8; 32] = x
            .try_into()
            .map_err(|_| ProfileError::Corrupt { path: x_path.clone(), reason: "not a 32-byte key".into() })?;
        let meta: serde_json::Value = serde_json::from_slice(&read(&meta_path)?)
            .map_err(|e| ProfileError::Corrupt { path: meta_path.clone(), reason: e.to_string() })?;
        let device_id = meta["device_id"]
            .as_str()
            .and_then(DeviceId::from_hex)
            .ok_or_else(|| ProfileError::Corrupt { path: meta_path.clone(), reason: "no valid device_id".into() })?;
        let name = meta["name"].as_str().unwrap_or("device").to_owned();
        Ok(DeviceIdentity { device_id, name, keypair, x25519: x25519_dalek::StaticSecret::from(x) })
    }

    /// The saved session.
    pub fn session(&self) -> Result<SavedSession, ProfileError> {
        let path = self.session_path();
        if !path.exists() {
            return Err(ProfileError::NotLoggedIn(self.dir.clone()));
        }
        serde_json::from_slice(&read(&path)?).map_err(|e| ProfileError::Corrupt { path, reason: e.to_string() })
    }

    /// Saves the session (0600, atomically).
    pub fn save_session(&self, s: &SavedSession) -> Result<(), ProfileError> {
        self.create()?;
        let text = serde_json::to_vec_pretty(s)
            .map_err(|e| ProfileError::Corrupt { path: self.session_path(), reason: e.to_string() })?;
        write_atomic(&self.session_path(), &text, true)
    }

    /// Forgets the session.
    pub fn clear_session(&self) -> Result<(), ProfileError> {
        match std::fs::remove_file(self.session_path()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ProfileError::Io { action: "remove", path: self.session_path(), source }),
        }
    }

    /// Copies the CA file into the profile.
    pub fn save_ca(&self, pem: &[u8]) -> Result<(), ProfileError> {
        self.create()?;
        write_atomic(&self.ca_path(), pem, false)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ProfileError> {
    std::fs::read(path).map_err(|source| ProfileError::Io { action: "read", path: path.to_owned(), source })
}

/// A profile taken by one running node; released when dropped.
#[derive(Debug)]
pub struct ProfileLock {
    _file: std::fs::File,
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<(), ProfileError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let io = |source| ProfileError::Io { action: "write", path: path.to_owned(), source };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(&tmp)
        .map_err(io)?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// What makes a directory owned by `owner` with `mode` unsafe for a profile
/// of the user `me` (when known), as a sentence that says what to do.
fn unsafe_dir_problem(dir: &Path, owner: u32, mode: u32, me: Option<u32>) -> Option<String> {
    if let Some(me) = me.filter(|&me| me != owner) {
        return Some(format!(
            "it belongs to user id {owner}, not to you (user id {me}), and it holds this device's keys; \
             use a directory of your own with --profile or SKEIN_PROFILE"
        ));
    }
    let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (false, false) => return None,
        (true, false) => "its group",
        (false, true) => "every user",
        (true, true) => "its group and every user",
    };
    Some(format!(
        "it can be written by {who} (mode {:04o}), who could replace this device's keys or session; \
         run `chmod go-w {}` and try again",
        mode & 0o7777,
        dir.display()
    ))
}

/// This process's effective user id, from `/proc/self/status` (`None` where
/// there is no procfs).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    // "Uid:\treal\teffective\tsaved\tfilesystem"
    status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().nth(1)?.parse().ok()
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "device".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn device_identity_is_created_once_with_private_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = Profile::new(dir.path().join("p"));
        let a = p.device().expect("create");
        let b = p.device().expect("reload");
        assert_eq!(a.device_id, b.device_id);
        assert_eq!(a.peer_id(), b.peer_id());
        assert_eq!(a.x25519_public(), b.x25519_public());
        for f in ["device.key", "x25519.key"] {
            let mode = std::fs::metadata(p.dir().join(f)).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
    }

    #[test]
    fn missing_session_says_how_to_log_in_and_corruption_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = Profile::new(dir.path());
        let e = p.session().expect_err("no session").to_string();
        assert!(e.contains("login"), "{e}");
        std::fs::write(dir.path().join("session.json"), "{not json").expect("write");
        let e = p.session().expect_err("corrupt").to_string();
        assert!(e.contains("session.json"), "{e}");
        std::fs::write(dir.path().join("device.key"), "junk").expect("write");
        std::fs::write(dir.path().join("x25519.key"), [0u8; 32]).expect("write");
        std::fs::write(dir.path().join("device.json"), "{}").expect("write");
        let e = p.device().expect_err("corrupt key").to_string();
        assert!(e.contains("device.key"), "{e}");
    }

    #[test]
    fn an_existing_directory_others_can_write_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = Profile::new(dir.path().join("shared"));
        p.create().expect("create");
        let mode = std::fs::metadata(p.dir()).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "a new profile directory is private");
        for (mode, who) in [(0o770, "its group"), (0o707, "every user"), (0o777, "its group and every user")] {
            std::fs::set_permissions(p.dir(), std::fs::Permissions::from_mode(mode)).expect("chmod");
            let e = p.device().expect_err("refused").to_string();
            assert!(e.contains(&format!("can be written by {who} (mode 0{mode:o})")), "{e}");
            assert!(e.contains("chmod go-w") && e.contains(&p.dir().display().to_string()), "{e}");
            assert!(!p.dir().join("device.key").exists(), "no key was written into it");
        }
        // Readable by others is fine: the secrets in it are 0600.
        std::fs::set_permissions(p.dir(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p.device().expect("accepted");
    }

    #[test]
    fn an_existing_directory_of_another_user_is_refused() {
        let dir = Path::new("/home/shared");
        let e = unsafe_dir_problem(dir, 1001, 0o40700, Some(1000)).expect("refused");
        assert!(e.contains("belongs to user id 1001, not to you (user id 1000)") && e.contains("--profile"), "{e}");
        assert_eq!(unsafe_dir_problem(dir, 1000, 0o40700, Some(1000)), None);
        assert_eq!(unsafe_dir_problem(dir, 1000, 0o40755, None), None);
        assert!(unsafe_dir_problem(dir, 1000, 0o41777, None).is_some(), "sticky does not help");
        // The real thing, where the test may change a directory's owner.
        let me = effective_uid().expect("procfs");
        assert_eq!(me, std::fs::metadata("/proc/self").expect("procfs").uid());
        if me == 0 {
            let tmp = tempfile::tempdir().expect("tempdir");
            std::os::unix::fs::chown(tmp.path(), Some(65_534), None).expect("chown");
            let e = Profile::new(tmp.path()).create().expect_err("refused").to_string();
            assert!(e.contains("belongs to user id 65534, not to you (user id 0)"), "{e}");
        }
    }
}
