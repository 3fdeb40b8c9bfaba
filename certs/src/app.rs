//! App messages: signing and verification.
//!
//! The tracker signs each [`AppMessage`] (`skein_proto::app`) with the
//! organisation's key, as it signs device and membership certificates; a
//! node calls [`verify_app_message`] before it takes one from its mailbox,
//! so a message that claims to come from an app but was put there by
//! anyone else is refused.

use crate::device::OrgSigningKey;
use ed25519_dalek::VerifyingKey;
use skein_proto::app::{AppMessage, AppMessageBody};
use skein_proto::bytes::PublicKey;

/// Why an app message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppMessageError {
    /// The organisation key is not a valid ed25519 key.
    #[error("the organisation key is not a valid ed25519 public key")]
    BadKey,
    /// The signature does not match.
    #[error("the app message's signature is not the organisation's")]
    BadSignature,
}

impl OrgSigningKey {
    /// Signs `body` over [`AppMessageBody::signing_bytes`].
    pub fn sign_app_message(&self, body: AppMessageBody) -> AppMessage {
        let signature = self.sign_bytes(&body.signing_bytes());
        AppMessage { body, signature }
    }
}

/// Checks `msg`'s signature under `org_key`; returns the now-trusted body.
pub fn verify_app_message<'m>(org_key: &PublicKey, msg: &'m AppMessage) -> Result<&'m AppMessageBody, AppMessageError> {
    let key = VerifyingKey::from_bytes(&org_key.0).map_err(|_| AppMessageError::BadKey)?;
    let signature = ed25519_dalek::Signature::from_bytes(&msg.signature.0);
    key.verify_strict(&msg.body.signing_bytes(), &signature).map_err(|_| AppMessageError::BadSignature)?;
    Ok(&msg.body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use skein_proto::app::AppPost;
    use skein_proto::bytes::MailId;

    fn body() -> AppMessageBody {
        AppMessageBody {
            id: MailId([3; 16]),
            to_user: "bob".into(),
            group: None,
            sent_at_ms: 1_700_000_000_000,
            icon_png: None,
            post: AppPost { app: "tickets".into(), text: Some("hello".into()), card: None, image: None },
        }
    }

    #[test]
    fn a_signed_message_verifies_and_any_change_does_not() {
        let key = OrgSigningKey::generate();
        let msg = key.sign_app_message(body());
        assert_eq!(verify_app_message(&key.public(), &msg), Ok(&msg.body));
        let mut changed = msg.clone();
        changed.body.to_user = "carol".into();
        assert_eq!(verify_app_message(&key.public(), &changed), Err(AppMessageError::BadSignature));
        let mut changed = msg.clone();
        changed.body.post.app = "payroll".into();
        assert_eq!(verify_app_message(&key.public(), &changed), Err(AppMessageError::BadSignature));
        let other = OrgSigningKey::generate();
        assert_eq!(verify_app_message(&other.public(), &msg), Err(AppMessageError::BadSignature));
    }
}
