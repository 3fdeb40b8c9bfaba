//! Each tracker's part of its users' presence, and its online devices'
//! addresses, for the other trackers on a shared PostgreSQL store (see
//! `crate::presence_sync`): written by the tracker that holds the devices.
//! Presence is announced on [`PRESENCE_CHANNEL`] with `TRACKER USER` as
//! the payload; devices are read when a lookup needs them.

use super::listen::notify;
use super::{Store, StoreError, fixed, flag};
use crate::presence::Remote;
use skein_proto::bytes::DeviceId;
use skein_proto::control::{Addresses, PresenceStatus};
use sqlx::Row;

/// The channel on which a tracker says it changed one of its rows.
pub const PRESENCE_CHANNEL: &str = "skein_presence";
/// The channel on which a tracker says a device logged in (its relay must
/// admit it too), with `TRACKER PEER_ID_HEX` as the payload.
pub const DEVICES_CHANNEL: &str = "skein_devices";
/// The channel on which a tracker says mail came for a device, with
/// `TRACKER USER_ID DEVICE_HEX COUNT` as the payload.
pub const MAIL_CHANNEL: &str = "skein_mail";

fn status_of(text: &str) -> Result<PresenceStatus, StoreError> {
    match text {
        "online" => Ok(PresenceStatus::Online),
        "away" => Ok(PresenceStatus::Away),
        "busy" => Ok(PresenceStatus::Busy),
        other => Err(StoreError::Corrupt(format!("presence status {other:?}"))),
    }
}

fn part_of(r: &sqlx::any::AnyRow) -> Result<Remote, StoreError> {
    Ok(Remote {
        status: status_of(&r.try_get::<String, _>("status")?)?,
        note: r.try_get("note")?,
        devices: u16::try_from(r.try_get::<i64, _>("devices")?).unwrap_or(u16::MAX),
        at_ms: u64::try_from(r.try_get::<i64, _>("at_ms")?).unwrap_or(0),
    })
}

impl Store {
    /// Writes `tracker`'s part of `user`'s presence (`None`: no visible
    /// device there) and, on PostgreSQL, tells the other trackers as it
    /// commits.
    pub async fn put_presence(&self, tracker: &str, user: &str, part: Option<&Remote>) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        match part {
            Some(p) => {
                sqlx::query(
                    "INSERT INTO presence (tracker, user_name, status, note, devices, at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tracker, user_name) DO UPDATE SET \
                     status = excluded.status, note = excluded.note, devices = excluded.devices, at_ms = excluded.at_ms",
                )
                .bind(tracker)
                .bind(user)
                .bind(p.status.as_str())
                .bind(p.note.clone())
                .bind(i64::from(p.devices))
                .bind(i64::try_from(p.at_ms).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM presence WHERE tracker = $1 AND user_name = $2")
                    .bind(tracker)
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        self.notify_presence(&mut tx, tracker, Some(user)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes every row of `tracker` here and in the online devices (left
    /// by its previous run) and tells the other trackers.
    pub async fn clear_presence(&self, tracker: &str) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM presence WHERE tracker = $1").bind(tracker).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM online_devices WHERE tracker = $1").bind(tracker).execute(&mut *tx).await?;
        self.notify_presence(&mut tx, tracker, None).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn notify_presence(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tracker: &str,
        user: Option<&str>,
    ) -> Result<(), StoreError> {
        let payload = format!("{tracker} {}", user.unwrap_or("*"));
        notify(self.backend(), &mut **tx, PRESENCE_CHANNEL, &payload).await
    }

    /// Tells the other trackers on PostgreSQL that `count` items wait for
    /// `device` of user `user_id` (stored through `tracker`).
    pub async fn announce_mail(
        &self,
        tracker: &str,
        user_id: i64,
        device: DeviceId,
        count: u32,
    ) -> Result<(), StoreError> {
        let payload = format!("{tracker} {user_id} {} {count}", hex::encode(device.0));
        notify(self.backend(), self.pool(), MAIL_CHANNEL, &payload).await
    }

    /// Tells the other trackers on PostgreSQL that the device with PeerId
    /// `peer_id` (binary) logged in through `tracker`.
    pub async fn announce_device(&self, tracker: &str, peer_id: &[u8]) -> Result<(), StoreError> {
        let payload = format!("{tracker} {}", hex::encode(peer_id));
        notify(self.backend(), self.pool(), DEVICES_CHANNEL, &payload).await
    }

    /// `tracker`'s part of `user`'s presence, if it has one.
    pub async fn presence_part(&self, tracker: &str, user: &str) -> Result<Option<Remote>, StoreError> {
        let row =
            sqlx::query("SELECT status, note, devices, at_ms FROM presence WHERE tracker = $1 AND user_name = $2")
                .bind(tracker)
                .bind(user)
                .fetch_optional(self.pool())
                .await?;
        row.as_ref().map(part_of).transpose()
    }

    /// Every part of the trackers in `trackers`: (tracker, user, part).
    pub async fn presence_of(&self, trackers: &[String]) -> Result<Vec<(String, String, Remote)>, StoreError> {
        let rows = sqlx::query("SELECT tracker, user_name, status, note, devices, at_ms FROM presence")
            .fetch_all(self.pool())
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            let tracker: String = r.try_get("tracker")?;
            if trackers.contains(&tracker) {
                out.push((tracker, r.try_get("user_name")?, part_of(r)?));
            }
        }
        Ok(out)
    }

    /// Records `device` as online on `tracker` with (user, visible,
    /// addresses), or (`None`) no longer.
    pub async fn put_online_device(
        &self,
        tracker: &str,
        device: DeviceId,
        row: Option<(&str, bool, &Addresses)>,
    ) -> Result<(), StoreError> {
        match row {
            Some((user, visible, addresses)) => {
                let encoded = skein_proto::frame::encode_payload(addresses)
                    .map_err(|e| StoreError::InvalidInput(format!("addresses: {e}")))?;
                sqlx::query(
                    "INSERT INTO online_devices (tracker, device_id, user_name, visible, addresses) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tracker, device_id) DO UPDATE SET \
                     user_name = excluded.user_name, visible = excluded.visible, addresses = excluded.addresses",
                )
                .bind(tracker)
                .bind(device.0.to_vec())
                .bind(user)
                .bind(i64::from(visible))
                .bind(encoded)
                .execute(self.pool())
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM online_devices WHERE tracker = $1 AND device_id = $2")
                    .bind(tracker)
                    .bind(device.0.to_vec())
                    .execute(self.pool())
                    .await?;
            }
        }
        Ok(())
    }

    /// `user`'s devices online on the trackers in `trackers`: (device,
    /// visible, addresses).
    pub async fn online_devices_of(
        &self,
        user: &str,
        trackers: &[String],
    ) -> Result<Vec<(DeviceId, bool, Addresses)>, StoreError> {
        if trackers.is_empty() {
            return Ok(Vec::new());
        }
        let rows =
            sqlx::query("SELECT tracker, device_id, visible, addresses FROM online_devices WHERE user_name = $1")
                .bind(user)
                .fetch_all(self.pool())
                .await?;
        let mut out = Vec::new();
        for r in &rows {
            if !trackers.contains(&r.try_get::<String, _>("tracker")?) {
                continue;
            }
            let device = DeviceId(fixed::<16>(r.try_get("device_id")?, "device id")?);
            let addresses: Addresses = skein_proto::frame::decode_payload(&r.try_get::<Vec<u8>, _>("addresses")?)
                .map_err(|e| StoreError::Corrupt(format!("online device addresses: {e}")))?;
            out.push((device, flag(r.try_get("visible")?), addresses));
        }
        Ok(out)
    }
}
