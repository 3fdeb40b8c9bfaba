//! Follows admin events in the store and ends the affected live sessions
//! and relay access.
//!
//! Admin commands may run in another process (or on another tracker sharing
//! the database), so the store is the meeting point: this task polls
//! `admin_events`, tells the hub which sessions to close, and takes relay
//! access away from disabled users' and revoked devices.

use crate::admin::{EVENT_DEVICE_REVOKED, EVENT_SESSIONS_REVOKED, EVENT_USER_DISABLED};
use crate::hub::{Hub, SessionFilter};
use crate::relay::{self, Relay};
use crate::store::{AdminEvent, Store};
use skein_proto::bytes::DeviceId;
use skein_proto::{ErrorBody, ErrorCode};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Polls for admin events every `every` until `shutdown`.
pub async fn run(store: Store, hub: Hub, relay: Relay, every: Duration, shutdown: CancellationToken) {
    let mut seq = match store.last_event_seq().await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot read admin events; live sessions will not end on admin changes");
            return;
        }
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let events = match store.events_since(seq, 256).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "polling admin events failed; retrying");
                continue;
            }
        };
        for ev in events {
            seq = seq.max(ev.seq);
            revoke_relay_access(&store, &relay, &ev).await;
            let at = u64::try_from(ev.at_ms).unwrap_or(0);
            let (filter, reason) = match ev.kind.as_str() {
                EVENT_USER_DISABLED => (
                    SessionFilter::User(ev.user_id),
                    ErrorBody::new(ErrorCode::AccountDisabled, "your account was disabled by an administrator"),
                ),
                EVENT_SESSIONS_REVOKED => (
                    SessionFilter::User(ev.user_id),
                    ErrorBody::new(ErrorCode::SessionRevoked, "your password was changed; log in again"),
                ),
                EVENT_DEVICE_REVOKED => match ev.device_id {
                    Some(d) => (
                        SessionFilter::Device(ev.user_id, DeviceId(d)),
                        ErrorBody::new(ErrorCode::SessionRevoked, "this device was revoked by an administrator"),
                    ),
                    None => continue,
                },
                other => {
                    tracing::debug!(kind = other, "ignoring unknown admin event");
                    continue;
                }
            };
            let n = hub.end_sessions(filter, at, reason).await;
            if n > 0 {
                tracing::info!(kind = %ev.kind, user_id = ev.user_id, sessions = n, "ended live sessions after admin change");
            }
        }
    }
}

/// Disabled users and revoked devices lose the relay at once, not only at
/// the next allow-list refresh.
async fn revoke_relay_access(store: &Store, relay: &Relay, ev: &AdminEvent) {
    let result = match (ev.kind.as_str(), ev.device_id) {
        (EVENT_USER_DISABLED, _) => relay::sync::revoke_user(store, relay, ev.user_id).await.map(|_| ()),
        (EVENT_DEVICE_REVOKED, Some(d)) => relay::sync::revoke_device(store, relay, ev.user_id, d).await.map(|_| ()),
        _ => Ok(()),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, kind = %ev.kind, user_id = ev.user_id, "could not revoke relay access; the next refresh will");
    }
}
