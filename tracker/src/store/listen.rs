//! Hearing what other trackers and admin commands change in a shared
//! PostgreSQL store, as their transactions commit (`LISTEN`/`NOTIFY`).
//!
//! A notification only says "look again": what changed is read from the
//! tables, which hold everything. So nothing is lost to a dropped database
//! connection either: a [`Listener`] that loses its connection connects
//! again (waiting a little longer after each failure, up to
//! [`MAX_BACKOFF`]) and says so ([`Heard::Reconnected`]), and its owner
//! reads what it may have missed meanwhile.

use sqlx::postgres::PgListener;
use std::time::Duration;

/// The longest wait between attempts to reconnect.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What a [`Listener`] heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// A notification.
    Notified {
        /// Its channel.
        channel: String,
        /// What it carried.
        payload: String,
    },
    /// The connection was lost and is back: notifications sent meanwhile
    /// were not heard.
    Reconnected,
}

/// Listens on some channels of one PostgreSQL database.
#[derive(Debug)]
pub struct Listener {
    url: String,
    channels: Vec<String>,
    inner: Option<PgListener>,
}

impl Listener {
    /// Connects to `url` and listens on `channels`.
    pub async fn connect(url: &str, channels: &[&str]) -> Result<Listener, sqlx::Error> {
        let mut l =
            Listener { url: url.to_owned(), channels: channels.iter().map(|c| (*c).to_owned()).collect(), inner: None };
        l.inner = Some(l.open().await?);
        Ok(l)
    }

    async fn open(&self) -> Result<PgListener, sqlx::Error> {
        let mut inner = PgListener::connect(&self.url).await?;
        let channels: Vec<&str> = self.channels.iter().map(String::as_str).collect();
        inner.listen_all(channels).await?;
        Ok(inner)
    }

    /// Waits for the next notification, or for the connection to come back
    /// after it was lost (reconnecting as long as it takes).
    pub async fn next(&mut self) -> Heard {
        if let Some(inner) = self.inner.as_mut() {
            match inner.try_recv().await {
                Ok(Some(n)) => {
                    return Heard::Notified { channel: n.channel().to_owned(), payload: n.payload().to_owned() };
                }
                Ok(None) => tracing::warn!("lost the database connection that listens for changes; reconnecting"),
                Err(e) => tracing::warn!(error = %e, "listening for changes in the database failed; reconnecting"),
            }
        }
        self.inner = None;
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.open().await {
                Ok(inner) => {
                    self.inner = Some(inner);
                    tracing::info!("listening for changes in the database again");
                    return Heard::Reconnected;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "cannot reconnect to the database to listen for changes");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Sends `payload` on `channel` through `conn` (delivered when its
/// transaction commits), on PostgreSQL only. Payloads are words of
/// letters, digits, '.', '-', '_' and '*' separated by spaces (ids, user
/// names, hex); anything else is refused rather than quoted.
pub(super) async fn notify<'c, E>(
    backend: super::Backend,
    conn: E,
    channel: &str,
    payload: &str,
) -> Result<(), super::StoreError>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    if backend != super::Backend::Postgres {
        return Ok(());
    }
    if !payload.chars().all(|c| c.is_ascii_alphanumeric() || " .-_*".contains(c)) {
        return Err(super::StoreError::InvalidInput(format!("cannot announce {payload:?} on {channel}")));
    }
    let sql = format!("NOTIFY {channel}, '{payload}'");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(conn).await?;
    Ok(())
}
