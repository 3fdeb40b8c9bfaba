//! Follows admin events in the store and ends what they end: live
//! sessions, relay access and peers' trust in the devices concerned.
//!
//! Access may end in another process (the admin CLI) or on another tracker
//! sharing the database, so the store is the meeting point: this task reads
//! `admin_events` and, for each, what the store now says. On PostgreSQL it
//! reads them when the database says a new one committed (see
//! [`crate::store::listen`]), and everything after the last it saw when
//! its listening connection comes back; on SQLite, which one tracker
//! serves with the admin CLI beside it, every [`Wake::Every`] period.
//!
//! - Live sessions of the user whose tokens the store no longer holds
//!   unrevoked are told why and closed.
//! - Devices whose certificate the event ended (its expiry is the event's
//!   time, see `store/access.rs`), or that are revoked for good, lose the
//!   relay, and every connected node is told to drop them
//!   ([`Event::DeviceRevoked`]). A device that has logged in again since
//!   holds a new certificate and is left alone.

use crate::admin::{
    EVENT_DEVICE_REVOKED, EVENT_GROUP_CREATED, EVENT_SESSIONS_REVOKED, EVENT_SIGNED_OUT, EVENT_USER_DISABLED,
};
use crate::hub::{Hub, SessionFilter};
use crate::org::Org;
use crate::relay::Relay;
use crate::store::listen::{Heard, Listener};
use crate::store::{ADMIN_CHANNEL, AdminEvent, Store, StoreError};
use skein_proto::bytes::DeviceId;
use skein_proto::control::{Event, RevokedDevice};
use skein_proto::group::{GroupChange, GroupEvent};
use skein_proto::{ErrorBody, ErrorCode};
use std::collections::HashSet;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The first protocol version that understands [`Event::DeviceRevoked`].
const REVOCATION_PROTOCOL: u16 = 2;

/// When to look for new admin events.
#[derive(Debug, Clone)]
pub enum Wake {
    /// Every period (SQLite).
    Every(Duration),
    /// When PostgreSQL at this URL says one committed.
    Listen(String),
}

/// Events read at once at most.
const PAGE: i64 = 256;
/// How soon an event that could not be acted on is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// Acts on admin events as `wake` says, until `shutdown`.
pub async fn run(store: Store, org: Org, hub: Hub, relay: Relay, wake: Wake, shutdown: CancellationToken) {
    let mut seq = match store.last_event_seq().await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot read admin events; live sessions will not end on admin changes");
            return;
        }
    };
    let (mut listener, mut tick) = match wake {
        Wake::Every(every) => {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            (None, Some(tick))
        }
        Wake::Listen(url) => {
            let listener = tokio::select! {
                _ = shutdown.cancelled() => return,
                l = listen(&url) => l,
            };
            (Some(listener), None)
        }
    };
    // Anything committed before listening began is read now.
    let mut behind = true;
    loop {
        if !behind {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = async { tick.as_mut().expect("a tick without a listener").tick().await }, if tick.is_some() => {}
                heard = async { listener.as_mut().expect("a listener").next().await }, if listener.is_some() => {
                    if heard == Heard::Reconnected {
                        tracing::info!(after = seq, "reading the admin events missed while the database was away");
                    }
                }
            }
        }
        behind = match catch_up(&store, &org, &hub, &relay, &mut seq).await {
            Ok(more) => more,
            Err(e) => {
                tracing::warn!(error = %e, "reading or acting on admin events failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    () = tokio::time::sleep(RETRY) => true,
                }
            }
        };
    }
}

/// A listener on the admin events' channel, connecting for as long as it
/// takes.
async fn listen(url: &str) -> Listener {
    let mut backoff = Duration::from_millis(100);
    loop {
        match Listener::connect(url, &[ADMIN_CHANNEL]).await {
            Ok(l) => return l,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "cannot listen for admin events yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(crate::store::listen::MAX_BACKOFF);
            }
        }
    }
}

/// Acts on one page of the events after `seq`, moving it on; returns
/// whether a full page came (more may be waiting).
async fn catch_up(store: &Store, org: &Org, hub: &Hub, relay: &Relay, seq: &mut i64) -> Result<bool, StoreError> {
    let events = store.events_since(*seq, PAGE).await?;
    let full = events.len() as i64 >= PAGE;
    for ev in events {
        match ev.group_id {
            Some(group) => announce_group(store, org, hub, &ev, group).await?,
            None => apply(store, hub, relay, &ev).await?,
        };
        *seq = (*seq).max(ev.seq);
    }
    Ok(full)
}

/// A group changed outside a tracker (the admin CLI made an org group or
/// moved a user between departments): its members, and the user concerned,
/// are sent its new certificate.
async fn announce_group(
    store: &Store,
    org: &Org,
    hub: &Hub,
    ev: &AdminEvent,
    group: [u8; 16],
) -> Result<u32, StoreError> {
    let Some(g) = store.group(group).await? else { return Ok(0) };
    let user = store.user_by_id(ev.user_id).await?.map(|u| u.name).unwrap_or_default();
    // What the group's current version changed, as the change's own
    // transaction logged it (a later change may already have come).
    let logged = store.group_changes(g.id, g.version - 1, 1).await?.into_iter().next();
    let (actor, change) = match logged.and_then(|(_, actor, change, _)| {
        Some((actor, skein_proto::frame::decode_payload::<GroupChange>(&change).ok()?))
    }) {
        Some(found) => found,
        None if ev.kind == EVENT_GROUP_CREATED => ("an administrator".to_owned(), GroupChange::Created),
        None if g.has_member(&user) => (String::new(), GroupChange::Added(vec![user.clone()])),
        None => (String::new(), GroupChange::Removed(vec![user.clone()])),
    };
    let event = GroupEvent { actor, change, cert: crate::requests::groups::certify(org, &g) };
    let users: HashSet<String> = g.members.iter().cloned().chain(std::iter::once(user)).collect();
    hub.to_users(users, Event::GroupChanged(event)).await;
    Ok(0)
}

/// Why the sessions an event ends were ended, as their users are told.
fn reason(kind: &str) -> Option<ErrorBody> {
    Some(match kind {
        EVENT_USER_DISABLED => {
            ErrorBody::new(ErrorCode::AccountDisabled, "your account was disabled by an administrator")
        }
        EVENT_SESSIONS_REVOKED => ErrorBody::new(ErrorCode::SessionRevoked, "your password was changed; log in again"),
        EVENT_DEVICE_REVOKED => {
            ErrorBody::new(ErrorCode::SessionRevoked, "this device was revoked by an administrator")
        }
        EVENT_SIGNED_OUT => ErrorBody::new(ErrorCode::SessionRevoked, "logged out"),
        _ => return None,
    })
}

/// Ends what `ev` ended on this tracker; returns how many live sessions
/// it closed. Acting twice on one event does no harm.
pub async fn apply(store: &Store, hub: &Hub, relay: &Relay, ev: &AdminEvent) -> Result<u32, StoreError> {
    let Some(why) = reason(&ev.kind) else {
        tracing::debug!(kind = %ev.kind, "ignoring unknown admin event");
        return Ok(0);
    };
    let live = store.live_tokens_of(ev.user_id).await?;
    let n = hub.end_sessions(SessionFilter::UserExcept(ev.user_id, live), u64::MAX, why).await;
    if n > 0 {
        tracing::info!(kind = %ev.kind, user_id = ev.user_id, sessions = n, "ended live sessions after an access change");
    }
    let Some(user) = store.user_by_id(ev.user_id).await? else { return Ok(n) };
    let ended = store.devices_of(ev.user_id, true).await?.into_iter().filter(|d| {
        let named = ev.device_id.is_none_or(|id| id == d.device_id);
        named && (d.cert_expires_at_ms == ev.at_ms || (d.revoked && ev.kind == EVENT_DEVICE_REVOKED))
    });
    for d in ended {
        if let Ok(peer) = libp2p::PeerId::from_bytes(&d.peer_id) {
            relay.revoke(peer).await;
        }
        let gone = RevokedDevice { user: user.name.clone(), device_id: DeviceId(d.device_id), peer_id: d.peer_id };
        hub.broadcast(Event::DeviceRevoked(gone), REVOCATION_PROTOCOL).await;
    }
    Ok(n)
}
