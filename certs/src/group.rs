//! Membership certificates: signing and verification.
//!
//! A [`MembershipCert`] from `skein_proto::group` is the organisation's
//! signed statement of a group's members at one version. The tracker signs
//! one per version with the same key as device certificates; a node calls
//! [`verify_membership`] before it trusts a group's member list, and keeps
//! the newest version it has seen.

use crate::device::OrgSigningKey;
use ed25519_dalek::VerifyingKey;
use skein_proto::bytes::PublicKey;
use skein_proto::group::{MEMBERSHIP_CERT_VERSION, MembershipBody, MembershipCert};

/// Why a membership certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// The organisation key is not a valid ed25519 key.
    #[error("the organisation key is not a valid ed25519 public key")]
    BadKey,
    /// The signature does not match.
    #[error("the membership certificate's signature is not the organisation's")]
    BadSignature,
    /// A body format this build does not know.
    #[error("membership certificate format {0} is not supported; upgrade skein")]
    UnsupportedVersion(u8),
    /// The member list is not sorted and free of repeats.
    #[error("the membership certificate's member list is not sorted")]
    Unsorted,
}

impl OrgSigningKey {
    /// Signs `body` over [`MembershipBody::signing_bytes`].
    pub fn sign_membership(&self, body: MembershipBody) -> MembershipCert {
        let signature = self.sign_bytes(&body.signing_bytes());
        MembershipCert { body, signature }
    }
}

/// Checks `cert`'s signature under `org_key` and its shape; returns the
/// now-trusted body.
pub fn verify_membership<'c>(
    org_key: &PublicKey,
    cert: &'c MembershipCert,
) -> Result<&'c MembershipBody, MembershipError> {
    let key = VerifyingKey::from_bytes(&org_key.0).map_err(|_| MembershipError::BadKey)?;
    let signature = ed25519_dalek::Signature::from_bytes(&cert.signature.0);
    key.verify_strict(&cert.body.signing_bytes(), &signature).map_err(|_| MembershipError::BadSignature)?;
    let body = &cert.body;
    if body.format != MEMBERSHIP_CERT_VERSION {
        return Err(MembershipError::UnsupportedVersion(body.format));
    }
    if !body.members.windows(2).all(|w| w[0] < w[1]) {
        return Err(MembershipError::Unsorted);
    }
    Ok(body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use skein_proto::bytes::GroupId;
    use skein_proto::group::GroupKind;

    fn body() -> MembershipBody {
        MembershipBody {
            format: MEMBERSHIP_CERT_VERSION,
            org: "Acme".into(),
            group: GroupId([7; 16]),
            version: 3,
            name: "team".into(),
            kind: GroupKind::Discussion { owner: "alice".into() },
            members: vec!["alice".into(), "bob".into(), "carol".into()],
            closed: false,
            issued_at_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn signed_certificates_verify_and_name_their_members() {
        let org = OrgSigningKey::generate();
        let cert = org.sign_membership(body());
        let trusted = verify_membership(&org.public(), &cert).unwrap();
        assert!(trusted.has_member("bob"));
        assert!(!trusted.has_member("mallory"));
    }

    #[test]
    fn forged_or_altered_certificates_are_refused() {
        let org = OrgSigningKey::generate();
        let mut cert = org.sign_membership(body());
        cert.body.members.push("mallory".into());
        assert_eq!(verify_membership(&org.public(), &cert), Err(MembershipError::BadSignature));
        let stranger = OrgSigningKey::generate().sign_membership(body());
        assert_eq!(verify_membership(&org.public(), &stranger), Err(MembershipError::BadSignature));
        let mut unsorted = body();
        unsorted.members.reverse();
        assert_eq!(verify_membership(&org.public(), &org.sign_membership(unsorted)), Err(MembershipError::Unsorted));
        let mut future = body();
        future.format = 9;
        let future = org.sign_membership(future);
        assert_eq!(verify_membership(&org.public(), &future), Err(MembershipError::UnsupportedVersion(9)));
    }
}
