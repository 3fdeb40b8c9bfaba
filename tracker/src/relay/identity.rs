//! The relay's persistent libp2p identity, kept in `DATA/relay.key`.
//!
//! Nodes address the relay by its PeerId, so it must survive restarts. The
//! file holds the ed25519 keypair in libp2p's protobuf encoding, mode 0600.

use super::RelayError;
use libp2p::identity::Keypair;
use std::path::Path;

/// Loads the relay's keypair from `path`, creating it on first use.
pub fn load_or_create(path: &Path) -> Result<Keypair, RelayError> {
    let key_error = |reason: String| RelayError::Key { path: path.to_owned(), reason };
    match std::fs::read(path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| {
            key_error(format!(
                "it is not a libp2p key ({e}); remove it to give the relay a new identity \
                 (nodes learn the new PeerId from the tracker)"
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key.to_protobuf_encoding().map_err(|e| key_error(format!("cannot encode a new key: {e}")))?;
            match skein_certs::files::write_private(path, &bytes, false) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), peer_id = %key.public().to_peer_id(), "created the relay identity");
                    Ok(key)
                }
                // Another process created it first: use theirs.
                Err(skein_certs::CertError::AlreadyExists { .. }) => load_or_create(path),
                Err(e) => Err(key_error(e.to_string())),
            }
        }
        Err(e) => Err(key_error(format!("cannot read it: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_is_created_private_reloaded_and_corruption_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("relay.key");
        let first = load_or_create(&path).expect("create");
        let mode = std::fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = load_or_create(&path).expect("reload");
        assert_eq!(first.public().to_peer_id(), again.public().to_peer_id());
        std::fs::write(&path, b"garbage").expect("write");
        let err = load_or_create(&path).expect_err("corrupt key").to_string();
        assert!(err.contains("relay.key"), "{err}");
    }
}
