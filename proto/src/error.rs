//! Machine-readable error codes carried on the wire.
//!
//! Every failed request is answered with an [`ErrorBody`]: a stable
//! [`ErrorCode`] that programs branch on, and a human sentence that says what
//! failed and what to do next. Codes are appended, never renumbered.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What went wrong, as a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The frame could not be decoded or broke a protocol rule.
    Malformed,
    /// No protocol version is shared by both sides.
    UnsupportedVersion,
    /// The request needs a logged-in session.
    NotAuthenticated,
    /// Unknown user or wrong password (deliberately not distinguished).
    BadCredentials,
    /// The account is disabled by an administrator.
    AccountDisabled,
    /// Too many failed attempts; retry after `retry_after_ms`.
    Throttled,
    /// The session token has expired; log in again with a password.
    SessionExpired,
    /// The session was revoked (logout elsewhere, admin action, rotation).
    SessionRevoked,
    /// The named user, department, device or item does not exist.
    NotFound,
    /// The session lacks the role the request needs.
    PermissionDenied,
    /// The recipient's mailbox is over its size or count limit.
    MailboxFull,
    /// A field or payload is larger than its limit.
    TooLarge,
    /// The thing to create already exists.
    Conflict,
    /// A field is invalid; the message names it.
    InvalidInput,
    /// The request kind is unknown to this peer (a newer protocol feature).
    Unsupported,
    /// The server is shutting down or overloaded; retry later.
    Unavailable,
    /// A server-side failure; the message says what, without secrets.
    Internal,
    /// The password is a one-time password: change it before anything else.
    PasswordChangeRequired,
}

impl ErrorCode {
    /// A stable snake_case name, used in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnsupportedVersion => "unsupported_version",
            Self::NotAuthenticated => "not_authenticated",
            Self::BadCredentials => "bad_credentials",
            Self::AccountDisabled => "account_disabled",
            Self::Throttled => "throttled",
            Self::SessionExpired => "session_expired",
            Self::SessionRevoked => "session_revoked",
            Self::NotFound => "not_found",
            Self::PermissionDenied => "permission_denied",
            Self::MailboxFull => "mailbox_full",
            Self::TooLarge => "too_large",
            Self::Conflict => "conflict",
            Self::InvalidInput => "invalid_input",
            Self::Unsupported => "unsupported",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
            Self::PasswordChangeRequired => "password_change_required",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer: a code plus a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The stable code.
    pub code: ErrorCode,
    /// What failed and what to do next.
    pub message: String,
    /// For [`ErrorCode::Throttled`] and [`ErrorCode::Unavailable`]: when to retry.
    pub retry_after_ms: Option<u32>,
}

impl ErrorBody {
    /// An error with no retry hint.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry_after_ms: None }
    }

    /// Adds a retry hint.
    pub fn retry_after(mut self, ms: u32) -> Self {
        self.retry_after_ms = Some(ms);
        self
    }
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ErrorBody {}
