//! The store's error type.
//!
//! Wrapping variants (`Open`, `Migrate`, `Database`) keep the underlying
//! error as their `source()` rather than repeating it in `Display`; print
//! the whole chain (`{:#}` with anyhow) to see the cause.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be reached or the URL is unusable.
    #[error(
        "cannot open the store at {url_redacted}: check the URL, that the database server is running, and the credentials"
    )]
    Open {
        /// The URL with any password replaced by `***`.
        url_redacted: String,
        /// What went wrong.
        #[source]
        source: sqlx::Error,
    },
    /// The URL names a database kind the store does not support.
    #[error("unsupported store URL {url_redacted}: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl {
        /// The URL with any password replaced by `***`.
        url_redacted: String,
    },
    /// Bringing the schema up to date failed.
    #[error("cannot bring the store schema up to date")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The database was migrated by a newer tracker than this one.
    #[error(
        "the store schema is at version {db_version} but this tracker only knows up to version {code_version}: run a newer tracker"
    )]
    TooNew {
        /// Highest migration applied to the database.
        db_version: i64,
        /// Highest migration this build knows.
        code_version: i64,
    },
    /// A uniqueness rule was violated, such as "user alice already exists".
    #[error("{0}")]
    Conflict(String),
    /// The named record does not exist, such as "no user named bob".
    #[error("{0}")]
    NotFound(String),
    /// Accepting the items would exceed a mailbox limit; nothing was stored.
    #[error("the mailbox of {user} is full ({limit}); retry after the recipient has fetched mail")]
    MailboxFull {
        /// The recipient user's name.
        user: String,
        /// Which limit, such as "at most 1000 items per device".
        limit: String,
    },
    /// The user has as many devices signed in as the organisation allows.
    #[error(
        "you already have {limit} devices signed in, the most allowed; sign out on one of them (`skein logout`) or ask an administrator to revoke one"
    )]
    TooManyDevices {
        /// The most devices with a valid certificate per user.
        limit: u32,
    },
    /// An argument is malformed, such as an empty department path segment.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A stored value has an impossible shape, such as a 15-byte device id.
    #[error("corrupt store data: {0}")]
    Corrupt(String),
    /// Any other database failure.
    #[error("database operation failed")]
    Database(#[from] sqlx::Error),
    /// A transaction shared with other operations failed as a whole.
    #[error("the shared transaction failed: {0}")]
    Shared(String),
}

impl StoreError {
    /// Maps a unique violation to [`StoreError::Conflict`] with `message`,
    /// anything else to [`StoreError::Database`].
    pub(crate) fn conflict_or_db(err: sqlx::Error, message: impl FnOnce() -> String) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Conflict(message()),
            _ => Self::Database(err),
        }
    }
}

/// Replaces the password in a database URL (`user:pass@` and any
/// `password=` query parameter) with `***`, so URLs can go into messages.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return redact_query(url);
    };
    let rest_start = scheme_end + 3;
    let query_start = url[rest_start..].find(['?', '#']).map_or(url.len(), |i| rest_start + i);
    let before_query = &url[rest_start..query_start];
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..rest_start]);
    // The last '@' before the query ends the userinfo, even if the password
    // itself contains '/' or '@'.
    match before_query.rfind('@') {
        Some(at) => {
            let userinfo = &before_query[..at];
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..colon]);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&before_query[at..]);
        }
        None => out.push_str(before_query),
    }
    out.push_str(&redact_query(&url[query_start..]));
    out
}

/// Redacts `password=` values in a `?a=b&c=d` suffix.
fn redact_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.to_ascii_lowercase().find("password=") {
        let boundary_ok = pos == 0 || matches!(rest.as_bytes()[pos - 1], b'?' | b'&' | b';' | b' ');
        let value_start = pos + "password=".len();
        out.push_str(&rest[..value_start]);
        rest = &rest[value_start..];
        if boundary_ok {
            let end = rest.find(['&', '#', ';', ' ']).unwrap_or(rest.len());
            out.push_str("***");
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://user:pass@host/db"), "postgres://user:***@host/db");
        assert_eq!(redact_url("postgres://user@host/db"), "postgres://user@host/db");
        assert_eq!(
            redact_url("postgres://u:p/a@ss@host:5432/db?sslmode=require"),
            "postgres://u:***@host:5432/db?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://host/db?user=u&password=secret&sslmode=disable"),
            "postgres://host/db?user=u&password=***&sslmode=disable"
        );
        assert_eq!(redact_url("sqlite:///var/lib/skein/tracker.db"), "sqlite:///var/lib/skein/tracker.db");
    }
}
