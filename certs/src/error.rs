//! Errors for the X.509 side of this crate: the org CA, tracker certificates,
//! inspection and the rustls file helpers.
//!
//! Every variant that concerns a file names it, and every message fits on
//! one line so the CLI can print it as `error: {err}`. Device-certificate
//! errors live in [`crate::device::DeviceCertError`].

use std::io;
use std::path::{Path, PathBuf};

/// An error from creating, loading, saving, inspecting or verifying
/// certificates and keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// A file could not be read.
    #[error("cannot read {what} {}: {}", path.display(), io_reason(source))]
    Read {
        /// What the file was supposed to hold, e.g. "CA certificate".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {what} {}: {}", path.display(), io_reason(source))]
    Write {
        /// What the file was supposed to hold, e.g. "CA key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// Refused to replace an existing file because `force` was not set.
    #[error("{} already exists; refusing to overwrite it without --force", path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The file holds no PEM certificate.
    #[error("{} is not a PEM certificate", path.display())]
    NotACertificate {
        /// The file.
        path: PathBuf,
    },
    /// The file holds a PEM certificate that cannot be parsed.
    #[error("{} holds a malformed certificate: {reason}", path.display())]
    MalformedCertificate {
        /// The file.
        path: PathBuf,
        /// What the parser reported.
        reason: String,
    },
    /// The file holds no PEM private key.
    #[error("{} is not a PEM private key", path.display())]
    NotAPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The file holds a private key this crate cannot use.
    #[error("unsupported private key in {}: {reason}", path.display())]
    UnsupportedKey {
        /// The file.
        path: PathBuf,
        /// What the key parser reported.
        reason: String,
    },
    /// A private key does not belong to the certificate it was loaded with.
    #[error("key {} does not match certificate {}", key.display(), cert.display())]
    KeyMismatch {
        /// The private key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },
    /// The certificate is not a CA certificate (no `basicConstraints CA:TRUE`
    /// or no `keyCertSign` key usage).
    #[error("{} is not a CA certificate", path.display())]
    NotACa {
        /// The file.
        path: PathBuf,
    },
    /// The certificate was not signed by the given CA.
    #[error("{} was not signed by the CA in {}", path.display(), ca.display())]
    NotSignedByCa {
        /// The certificate file.
        path: PathBuf,
        /// The CA certificate file.
        ca: PathBuf,
    },
    /// The certificate's validity period has ended.
    #[error("{} expired at {not_after}", path.display())]
    Expired {
        /// The certificate file.
        path: PathBuf,
        /// End of validity, RFC 3339.
        not_after: String,
    },
    /// The certificate's validity period has not started yet.
    #[error("{} is not valid before {not_before}", path.display())]
    NotYetValid {
        /// The certificate file.
        path: PathBuf,
        /// Start of validity, RFC 3339.
        not_before: String,
    },
    /// A subject alternative name is neither an IP address nor a valid DNS
    /// name. There is no file involved; the name itself is reported.
    #[error("invalid subject alternative name {name:?}: {reason}")]
    InvalidSan {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A certificate parameter was rejected before anything was generated.
    #[error("invalid {what}: {reason}")]
    InvalidParameter {
        /// The parameter, e.g. "organisation name".
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// rcgen failed to generate a key or certificate.
    #[error("cannot generate {what}: {reason}")]
    Generate {
        /// What was being generated, e.g. "tracker certificate".
        what: &'static str,
        /// What rcgen reported.
        reason: String,
    },
}

impl CertError {
    /// Builds a [`CertError::Read`].
    pub(crate) fn read(what: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Read { what, path: path.to_path_buf(), source }
    }

    /// Builds a [`CertError::Write`].
    pub(crate) fn write(what: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Write { what, path: path.to_path_buf(), source }
    }

    /// Builds a [`CertError::Generate`] from an rcgen error.
    pub(crate) fn generate(what: &'static str, err: rcgen::Error) -> Self {
        Self::Generate { what, reason: err.to_string() }
    }
}

/// An I/O error's message without the trailing " (os error N)", so that
/// messages read `... /x/ca.pem: No such file or directory`.
fn io_reason(err: &io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_string(),
        _ => text,
    }
}
