//! Skein's certificates.
//!
//! Two kinds live here:
//!
//! - **X.509, for TLS to trackers.** The organisation CA ([`OrgCa`]) issues
//!   tracker server certificates with DNS/IP SANs; nodes trust only the CA.
//!   [`inspect`] shows and verifies certificate files, and [`rustls_io`]
//!   loads them in the types rustls and quinn take.
//! - **Device certificates, not X.509.** The tracker signs a
//!   [`skein_proto::device::DeviceCert`] with the organisation's ed25519
//!   [`OrgSigningKey`]; nodes check it with [`verify_device_cert_for`].
//!
//! Private keys are written with mode 0600 and existing files are only
//! replaced on request ([`files`]). Errors name the file involved
//! ([`CertError`]).

pub mod app;
pub mod ca;
pub mod device;
pub mod error;
pub mod files;
pub mod group;
pub mod inspect;
pub mod rustls_io;
pub mod seal;

pub use ca::{DEFAULT_CA_VALIDITY_DAYS, DEFAULT_TRACKER_VALIDITY_DAYS, IssuedCert, OrgCa};
pub use device::{DeviceCertError, OrgSigningKey, verify_device_cert, verify_device_cert_for};
pub use error::CertError;
pub use group::{MembershipError, verify_membership};
pub use inspect::{CertInfo, fingerprint, show, verify_chain};
pub use rustls_io::{load_certs, load_private_key};
