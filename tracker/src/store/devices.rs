//! Enrolled devices and their certificates, revocation, and the counter
//! that hands out certificate serial numbers.
//!
//! Revocation is sticky: once a device is revoked, [`Store::upsert_device`]
//! refuses to change it.

use super::{Store, StoreError, fixed, flag, non_negative};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

/// A device as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// The owning user.
    pub user_id: i64,
    /// The device's identifier, chosen by the device.
    pub device_id: [u8; 16],
    /// Human name of the device.
    pub name: String,
    /// The device's libp2p PeerId, as bytes.
    pub peer_id: Vec<u8>,
    /// The device's X25519 public key.
    pub x25519: [u8; 32],
    /// The signed certificate, encoded; opaque to the store.
    pub cert: Vec<u8>,
    /// When the certificate expires, ms since the Unix epoch.
    pub cert_expires_at_ms: i64,
    /// Revoked devices are refused and their certificates distrusted.
    pub revoked: bool,
    /// Last time the device was connected (devices are stored when they
    /// connect), ms since the Unix epoch.
    pub last_seen_ms: i64,
}

const DEVICE_SELECT: &str = "SELECT user_id, device_id, name, peer_id, x25519, cert, cert_expires_at_ms, \
     revoked, last_seen_ms FROM devices";

impl Store {
    /// Inserts a device, or updates everything but its revocation state if
    /// it exists. Fails with [`StoreError::Conflict`] if the device exists
    /// and is revoked.
    pub async fn upsert_device(&self, device: DeviceRecord) -> Result<(), StoreError> {
        let mut conn = self.pool().acquire().await?;
        upsert_device_on(&mut conn, &device).await
    }

    /// A user's devices, ordered by device id.
    pub async fn devices_of(&self, user_id: i64, include_revoked: bool) -> Result<Vec<DeviceRecord>, StoreError> {
        let sql = if include_revoked {
            "WHERE user_id = $1 ORDER BY device_id"
        } else {
            "WHERE user_id = $1 AND revoked = 0 ORDER BY device_id"
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{DEVICE_SELECT} {sql}")))
            .bind(user_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(device_from_row).collect()
    }

    /// One device of a user, revoked or not.
    pub async fn device(&self, user_id: i64, device_id: [u8; 16]) -> Result<Option<DeviceRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{DEVICE_SELECT} WHERE user_id = $1 AND device_id = $2")))
            .bind(user_id)
            .bind(&device_id[..])
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(device_from_row).transpose()
    }

    /// Marks a device revoked. Returns whether the device exists (it is
    /// revoked afterwards either way). Does not end its sessions or record
    /// an admin event; callers do both.
    pub async fn revoke_device(&self, user_id: i64, device_id: [u8; 16]) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE devices SET revoked = 1 WHERE user_id = $1 AND device_id = $2")
            .bind(user_id)
            .bind(&device_id[..])
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Whether any device with this PeerId has been revoked.
    pub async fn is_peer_revoked(&self, peer_id: &[u8]) -> Result<bool, StoreError> {
        let hit = sqlx::query_scalar::<_, i64>("SELECT 1 FROM devices WHERE peer_id = $1 AND revoked = 1 LIMIT 1")
            .bind(peer_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(hit.is_some())
    }

    /// Whether this device of the user, or any device with this PeerId, is
    /// revoked: one query for what a login checks before it is let in.
    pub async fn is_device_blocked(
        &self,
        user_id: i64,
        device_id: [u8; 16],
        peer_id: &[u8],
    ) -> Result<bool, StoreError> {
        let hit = sqlx::query_scalar::<_, i64>(
            "SELECT 1 FROM devices WHERE revoked = 1 AND ((user_id = $1 AND device_id = $2) OR peer_id = $3) LIMIT 1",
        )
        .bind(user_id)
        .bind(&device_id[..])
        .bind(peer_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(hit.is_some())
    }

    /// The PeerIds (binary) that may use the relay at `now_ms`: devices with
    /// an unexpired certificate that are not revoked, of enabled users, and
    /// whose PeerId was never revoked on any device. Each PeerId once.
    pub async fn valid_peer_ids(&self, now_ms: i64) -> Result<Vec<Vec<u8>>, StoreError> {
        let rows = sqlx::query_scalar::<_, Vec<u8>>(
            "SELECT DISTINCT d.peer_id FROM devices d JOIN users u ON u.id = d.user_id \
             WHERE d.revoked = 0 AND d.cert_expires_at_ms > $1 AND u.disabled = 0 \
               AND NOT EXISTS (SELECT 1 FROM devices r WHERE r.peer_id = d.peer_id AND r.revoked = 1) \
             ORDER BY d.peer_id",
        )
        .bind(now_ms)
        .fetch_all(self.pool())
        .await?;
        Ok(rows)
    }

    /// The next certificate serial number: 1, 2, 3, … Unique across all
    /// processes sharing the database (a single atomic `UPDATE … RETURNING`).
    pub async fn next_serial(&self) -> Result<u64, StoreError> {
        let mut conn = self.pool().acquire().await?;
        next_serial_on(&mut conn).await
    }
}

/// [`Store::upsert_device`] on one connection (or inside a transaction).
pub(super) async fn upsert_device_on(conn: &mut AnyConnection, device: &DeviceRecord) -> Result<(), StoreError> {
    let done = sqlx::query(
        "INSERT INTO devices (user_id, device_id, name, peer_id, x25519, cert, cert_expires_at_ms, revoked, last_seen_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (user_id, device_id) DO UPDATE SET \
           name = excluded.name, peer_id = excluded.peer_id, x25519 = excluded.x25519, \
           cert = excluded.cert, cert_expires_at_ms = excluded.cert_expires_at_ms, \
           revoked = excluded.revoked, last_seen_ms = excluded.last_seen_ms \
         WHERE devices.revoked = 0",
    )
    .bind(device.user_id)
    .bind(&device.device_id[..])
    .bind(&device.name)
    .bind(&device.peer_id[..])
    .bind(&device.x25519[..])
    .bind(&device.cert[..])
    .bind(device.cert_expires_at_ms)
    .bind(i64::from(device.revoked))
    .bind(device.last_seen_ms)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!(
            "device {} of user {} is revoked",
            hex::encode(device.device_id),
            device.user_id
        )));
    }
    Ok(())
}

/// [`Store::next_serial`] on one connection (or inside a transaction).
pub(super) async fn next_serial_on(conn: &mut AnyConnection) -> Result<u64, StoreError> {
    let value = sqlx::query_scalar::<_, i64>(
        "UPDATE counters SET value = value + 1 WHERE name = 'cert_serial' RETURNING value",
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StoreError::Corrupt("the cert_serial counter row is missing".into()))?;
    non_negative(value, "certificate serial")
}

fn device_from_row(row: &AnyRow) -> Result<DeviceRecord, StoreError> {
    Ok(DeviceRecord {
        user_id: row.try_get("user_id")?,
        device_id: fixed(row.try_get("device_id")?, "device id")?,
        name: row.try_get("name")?,
        peer_id: row.try_get("peer_id")?,
        x25519: fixed(row.try_get("x25519")?, "device X25519 key")?,
        cert: row.try_get("cert")?,
        cert_expires_at_ms: row.try_get("cert_expires_at_ms")?,
        revoked: flag(row.try_get("revoked")?),
        last_seen_ms: row.try_get("last_seen_ms")?,
    })
}
