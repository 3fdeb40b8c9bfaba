//! Hard limits on what the wire may carry.
//!
//! Decoders check these before allocating; servers check them again on the
//! decoded values and answer [`crate::ErrorCode::TooLarge`] or
//! [`crate::ErrorCode::InvalidInput`] naming the field.

/// Largest control-plane frame payload, in bytes.
pub const MAX_CONTROL_FRAME: usize = 1024 * 1024;
/// Length of the frame's big-endian length prefix.
pub const FRAME_HEADER_LEN: usize = 4;
/// Longest user name, in bytes.
pub const MAX_USER_NAME: usize = 64;
/// Longest display name, title, e-mail or phone field, in bytes.
pub const MAX_TEXT_FIELD: usize = 256;
/// Longest password, in bytes.
pub const MAX_PASSWORD: usize = 1024;
/// Shortest password accepted for new accounts, in characters.
pub const MIN_PASSWORD: usize = 8;
/// Longest department path (`Engineering/Backend/Storage`), in bytes.
pub const MAX_DEPT_PATH: usize = 512;
/// Deepest department tree.
pub const MAX_DEPT_DEPTH: usize = 16;
/// Most addresses a device may report per kind.
pub const MAX_ADDRS: usize = 16;
/// Longest single address string.
pub const MAX_ADDR_LEN: usize = 256;
/// Most users named in one presence subscription.
pub const MAX_SUBSCRIBE_USERS: usize = 10_000;
/// Largest page a directory query returns.
pub const MAX_DIRECTORY_PAGE: u32 = 500;
/// Largest sealed mailbox item, in bytes.
pub const MAX_SEALED_ITEM: usize = 256 * 1024;
/// Most items in one mailbox put, fetch or ack.
pub const MAX_MAIL_BATCH: usize = 64;
/// Most sealed items in one [`crate::control::Request::MailboxPutMany`],
/// across all its users (a 500-member group with two devices each fits in
/// two). The frame limit bounds its bytes as well.
pub const MAX_MAIL_MANY_ITEMS: usize = 512;

/// Checks a user name: 1–64 bytes of lowercase ASCII letters, digits, `.`, `-`, `_`,
/// starting with a letter or digit.
pub fn valid_user_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_USER_NAME
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'))
}

/// Checks a department path: `/`-separated non-empty segments without control
/// characters, at most [`MAX_DEPT_DEPTH`] deep and [`MAX_DEPT_PATH`] long.
pub fn valid_dept_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= MAX_DEPT_PATH
        && path.split('/').count() <= MAX_DEPT_DEPTH
        && path.split('/').all(|seg| !seg.trim().is_empty() && seg.trim() == seg && !seg.chars().any(char::is_control))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        assert!(valid_user_name("alice"));
        assert!(valid_user_name("a.b-c_9"));
        assert!(!valid_user_name(""));
        assert!(!valid_user_name("Alice"));
        assert!(!valid_user_name(".alice"));
        assert!(!valid_user_name("al ice"));
        assert!(!valid_user_name(&"a".repeat(65)));
    }

    #[test]
    fn dept_paths() {
        assert!(valid_dept_path("Engineering"));
        assert!(valid_dept_path("Engineering/Backend Team"));
        assert!(!valid_dept_path(""));
        assert!(!valid_dept_path("Engineering/"));
        assert!(!valid_dept_path("/Engineering"));
        assert!(!valid_dept_path("A/ B"));
        assert!(!valid_dept_path("A/\u{7}"));
        assert!(!valid_dept_path(&vec!["a"; 17].join("/")));
    }
}
