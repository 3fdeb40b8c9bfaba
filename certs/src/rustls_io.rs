//! Loading PEM certificates and private keys in the types rustls wants.
//!
//! The tracker and nodes build their rustls/quinn configurations from
//! these; the rest of this crate uses the same decoders so that every
//! "missing", "empty" or "corrupt" file produces the same one-line error
//! naming the file.

use crate::error::CertError;
use crate::files::read_file;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use zeroize::Zeroizing;

/// Reads every certificate in a PEM file, in file order (leaf first for a
/// chain file).
///
/// Fails, naming the file, if it cannot be read, holds a corrupt PEM
/// section, or holds no certificate at all.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    read_certs("certificate", path)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
///
/// Fails, naming the file, if it cannot be read or holds no private key.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    read_key("private key", path)
}

/// [`load_certs`] with a custom description of the file for read errors.
pub(crate) fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let bytes = read_file(what, path)?;
    certs_from_pem(path, &bytes)
}

/// [`load_private_key`] with a custom description of the file for read errors.
pub(crate) fn read_key(what: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    let bytes = Zeroizing::new(read_file(what, path)?);
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| CertError::NotAPrivateKey { path: path.to_path_buf() })
}

/// Decodes all `CERTIFICATE` sections of `pem_bytes`, read from `path`.
pub(crate) fn certs_from_pem(path: &Path, pem_bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let certs = CertificateDer::pem_slice_iter(pem_bytes)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| CertError::MalformedCertificate { path: path.to_path_buf(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(CertError::NotACertificate { path: path.to_path_buf() });
    }
    Ok(certs)
}

/// The first certificate of a PEM file.
pub(crate) fn read_first_cert(what: &'static str, path: &Path) -> Result<CertificateDer<'static>, CertError> {
    read_certs(what, path)?.into_iter().next().ok_or_else(|| CertError::NotACertificate { path: path.to_path_buf() })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn file_without_certificates_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        fs::write(&path, "hello\n").unwrap();
        let err = load_certs(&path).unwrap_err();
        assert_eq!(err.to_string(), format!("{} is not a PEM certificate", path.display()));
    }

    #[test]
    fn corrupt_base64_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.pem");
        fs::write(&path, "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n").unwrap();
        let err = load_certs(&path).unwrap_err();
        assert!(err.to_string().starts_with(&path.display().to_string()));
    }

    #[test]
    fn file_without_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.key");
        fs::write(&path, "not a key").unwrap();
        let err = load_private_key(&path).unwrap_err();
        assert_eq!(err.to_string(), format!("{} is not a PEM private key", path.display()));
    }
}
