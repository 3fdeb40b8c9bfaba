//! Login, resume, logout and password change.
//!
//! A successful login or resume issues a fresh device certificate, records
//! the device, allows its PeerId on the relay, and registers the connection
//! with the hub. Resume rotates the
//! token: the old one stops working the moment the new one is handed out.

use super::{Authed, ConnCtx, password_error, store_error};
use crate::admin::{EVENT_SESSIONS_REVOKED, EVENT_SIGNED_OUT};
use crate::admin_watch;
use crate::auth::{check_password_policy, new_token, token_hash};
use crate::clock::now_ms;
use crate::hub::LiveSession;
use crate::relay;
use crate::state::State;
use crate::store::{AccessEnd, DeviceRecord, DeviceScope, SessionRecord, SessionStart, StoreError, UserRecord};
use skein_proto::control::{DeviceHello, Login, PresenceStatus, Response, Resume, Session, UserEntry};
use skein_proto::device::DeviceCertBody;
use skein_proto::limits::{MAX_PASSWORD, MAX_TEXT_FIELD, valid_user_name};
use skein_proto::{ErrorBody, ErrorCode};
use std::time::Instant;

const MAX_PEER_ID: usize = 128;
const MAX_PROOF: usize = 256;

/// Whether `d.proof` is a signature over [`DeviceHello::proof_bytes`] by
/// the key `d.peer_id` names (an ed25519 PeerId carries its public key).
fn proves_peer_id(d: &DeviceHello, nonce: &[u8; 32]) -> bool {
    let Ok(peer) = libp2p::PeerId::from_bytes(&d.peer_id) else { return false };
    let multihash = peer.as_ref();
    if multihash.code() != 0 {
        return false; // not an identity multihash: the key is not inside
    }
    let Ok(key) = libp2p::identity::PublicKey::try_decode_protobuf(multihash.digest()) else { return false };
    key.to_peer_id() == peer && key.verify(&d.proof_bytes(nonce), &d.proof)
}

fn bad_credentials() -> ErrorBody {
    ErrorBody::new(ErrorCode::BadCredentials, "wrong user name or password")
}

fn session_ended() -> ErrorBody {
    ErrorBody::new(ErrorCode::SessionRevoked, "this session was ended; log in again with your password")
}

fn device_revoked() -> ErrorBody {
    ErrorBody::new(ErrorCode::PermissionDenied, "this device was revoked by an administrator; use a new profile")
}

fn throttled(wait: std::time::Duration) -> ErrorBody {
    let ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ErrorBody::new(
        ErrorCode::Throttled,
        format!("too many failed logins; try again in {secs} s, or from a network you have logged in from before"),
    )
    .retry_after(ms)
}

fn check_device(d: &DeviceHello, nonce: &[u8; 32]) -> Result<(), ErrorBody> {
    if d.peer_id.is_empty() || d.peer_id.len() > MAX_PEER_ID {
        return Err(ErrorBody::new(ErrorCode::InvalidInput, "device peer id is empty or too long"));
    }
    if d.proof.len() > MAX_PROOF || !proves_peer_id(d, nonce) {
        return Err(ErrorBody::new(
            ErrorCode::PermissionDenied,
            "the device did not prove it holds the key of its PeerId; log in again with an up-to-date skein",
        ));
    }
    if d.name.len() > MAX_TEXT_FIELD {
        return Err(ErrorBody::new(
            ErrorCode::InvalidInput,
            format!("device name is longer than {MAX_TEXT_FIELD} bytes"),
        ));
    }
    Ok(())
}

/// Password login.
///
/// The attempt is counted against the account and the source network
/// before the password is checked (see `login_guard.rs`), and the check
/// waits for a hashing slot (see `passwords.rs`), so a burst of parallel
/// guesses costs a bounded number of argon2 runs and bounded memory.
pub async fn login(state: &State, ctx: &mut ConnCtx, login: Login) -> Result<Response, ErrorBody> {
    if ctx.session.is_some() {
        return Err(ErrorBody::new(ErrorCode::Conflict, "this connection is already logged in"));
    }
    check_device(&login.device, &ctx.nonce)?;
    let name = login.user.trim().to_lowercase();
    let admission = state.with_guard(|g| g.admit(&name, ctx.remote.ip(), Instant::now())).map_err(throttled)?;
    if !valid_user_name(&name) || login.password.len() > MAX_PASSWORD {
        return Err(bad_credentials());
    }
    let user = state.store.user_by_name(&name).await.map_err(store_error)?;
    let ok = state
        .passwords
        .verify(login.password, user.as_ref().map(|u| u.password_hash.clone()))
        .await
        .map_err(password_error)?;
    let user = match (ok, user) {
        (true, Some(u)) => u,
        _ => {
            tracing::info!(user = %name, remote = %ctx.remote, "failed login");
            return Err(bad_credentials());
        }
    };
    state.with_guard(|g| g.succeeded(admission, Instant::now()));
    if user.disabled {
        return Err(account_disabled(&name));
    }
    let token = new_token();
    let now_ms = now_ms();
    let expires = now_ms + state.config.session_ttl.as_millis() as u64;
    check_device_not_revoked(state, &user, &login.device).await?;
    let start = SessionStart::Login {
        session: SessionRecord {
            token_hash: token_hash(&token),
            user_id: user.id,
            device_id: login.device.device_id.0,
            created_at_ms: now_ms as i64,
            expires_at_ms: expires as i64,
            revoked: false,
        },
        epoch: user.session_epoch,
        max_devices: state.config.max_devices_per_user,
    };
    let (device_id, user_id) = (login.device.device_id, user.id);
    let response = establish(state, ctx, user, login.device, start, token, expires).await.map_err(|e| {
        if e.code == ErrorCode::SessionRevoked {
            ErrorBody::new(
                ErrorCode::SessionRevoked,
                format!("account {name} changed while logging in (password reset or account disabled); log in again"),
            )
        } else {
            e
        }
    })?;
    tracing::info!(user = %name, device = %device_id, remote = %ctx.remote, "logged in");
    // App messages posted before the user had any device go to this one,
    // before it drains its mailbox.
    match crate::api::messages::release_pending(state, user_id, device_id.0).await {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(user = %name, device = %device_id, messages = n, "app messages that waited for a device")
        }
        Err(e) => tracing::warn!(user = %name, error = %e, "cannot hand over the app messages that wait for this user"),
    }
    Ok(response)
}

fn account_disabled(name: &str) -> ErrorBody {
    ErrorBody::new(ErrorCode::AccountDisabled, format!("account {name} is disabled; ask an administrator"))
}

/// Token resume with rotation.
pub async fn resume(state: &State, ctx: &mut ConnCtx, resume: Resume) -> Result<Response, ErrorBody> {
    if ctx.session.is_some() {
        return Err(ErrorBody::new(ErrorCode::Conflict, "this connection is already logged in"));
    }
    check_device(&resume.device, &ctx.nonce)?;
    let admission = state.with_guard(|g| g.admit_network(ctx.remote.ip(), Instant::now())).map_err(throttled)?;
    let old = token_hash(&resume.token);
    let now_ms = now_ms();
    let Some((sess, user)) = state.store.session_and_user(&old).await.map_err(store_error)? else {
        return Err(session_ended());
    };
    // A known token, even an ended one, is no guess.
    state.with_guard(|g| g.succeeded(admission, Instant::now()));
    if sess.revoked {
        return Err(session_ended());
    }
    if sess.expires_at_ms <= now_ms as i64 {
        return Err(ErrorBody::new(
            ErrorCode::SessionExpired,
            "your session has expired; log in again with your password",
        ));
    }
    if sess.device_id != resume.device.device_id.0 {
        return Err(ErrorBody::new(ErrorCode::SessionRevoked, "this session belongs to another device; log in again"));
    }
    if user.disabled {
        return Err(account_disabled(&user.name));
    }
    check_device_not_revoked(state, &user, &resume.device).await?;
    let token = new_token();
    let expires = now_ms + state.config.session_ttl.as_millis() as u64;
    let start = SessionStart::Rotate {
        old_hash: old,
        new_hash: token_hash(&token),
        new_expires_ms: expires as i64,
        now_ms: now_ms as i64,
    };
    establish(state, ctx, user, resume.device, start, token, expires).await
}

async fn check_device_not_revoked(state: &State, user: &UserRecord, device: &DeviceHello) -> Result<(), ErrorBody> {
    if state.store.is_device_blocked(user.id, device.device_id.0, &device.peer_id).await.map_err(store_error)? {
        return Err(device_revoked());
    }
    Ok(())
}

/// Stores the session change, a device certificate and the device record
/// in one transaction (shared with other logins waiting at the same time),
/// then registers the connection with the hub.
async fn establish(
    state: &State,
    ctx: &mut ConnCtx,
    user: UserRecord,
    device: DeviceHello,
    start: SessionStart,
    token: skein_proto::bytes::SessionToken,
    expires: u64,
) -> Result<Response, ErrorBody> {
    let now = now_ms();
    let cert_expires = now + state.config.device_cert_ttl.as_millis() as u64;
    let (org, hello, user_id, user_name) = (state.org.clone(), device.clone(), user.id, user.name.clone());
    let issue = move |serial| {
        let cert = org.signing.sign(DeviceCertBody {
            version: skein_certs::device::DEVICE_CERT_VERSION,
            serial,
            org: org.name.clone(),
            user: user_name,
            device_id: hello.device_id,
            peer_id: hello.peer_id.clone(),
            x25519: hello.x25519,
            issued_at_ms: now,
            expires_at_ms: cert_expires,
        });
        let record = DeviceRecord {
            user_id,
            device_id: hello.device_id.0,
            name: hello.name,
            peer_id: hello.peer_id,
            x25519: hello.x25519.0,
            cert: skein_proto::frame::encode_payload(&cert)
                .map_err(|e| StoreError::InvalidInput(format!("the device certificate cannot be encoded: {e}")))?,
            cert_expires_at_ms: cert_expires as i64,
            revoked: false,
            last_seen_ms: now as i64,
        };
        Ok((record, cert))
    };
    let cert = match state.enrolment.start(start, Box::new(issue)).await {
        Ok(Some(cert)) => cert,
        Ok(None) => return Err(session_ended()),
        Err(e) => return Err(store_error(e)),
    };
    // In force before the client sees its certificate, so it can reserve at
    // once; and on the other trackers' relays, which its peers may use.
    relay::sync::allow_bytes(&state.relay, &device.peer_id).await;
    let me = state.relay.peer_id().to_string();
    if let Err(e) = state.store.announce_device(&me, &device.peer_id).await {
        tracing::warn!(error = %e, "cannot tell the other trackers' relays of a device; they learn of it within a minute");
    }
    let live = LiveSession {
        user_id: user.id,
        user: user.name.clone(),
        device_id: device.device_id,
        token_hash: token_hash(&token),
        started_ms: now_ms(),
        protocol: ctx.protocol,
    };
    state.hub.register(ctx.id, live.clone(), ctx.out.clone(), ctx.end.clone()).await;
    let must_change_password = user.must_change_password;
    ctx.session = Some(Authed { live, admin: user.admin, expires_at_ms: expires, must_change_password });
    ctx.stranger = None;
    let presence = state.hub.entries(vec![user.name.clone()]).await;
    let entry = user_entry(&user, presence.first().map(|p| (p.status, p.last_seen_ms)));
    Ok(Response::Session(Box::new(Session {
        token,
        expires_at_ms: expires,
        user: entry,
        admin: user.admin,
        device_cert: cert,
        org_signing_key: state.org.signing.public(),
        password_change_required: must_change_password,
    })))
}

/// The directory view of a user record with live presence merged in.
pub fn user_entry(u: &UserRecord, presence: Option<(PresenceStatus, u64)>) -> UserEntry {
    let (status, live_seen) = presence.unwrap_or((PresenceStatus::Offline, 0));
    UserEntry {
        name: u.name.clone(),
        display_name: u.display_name.clone(),
        department: u.department.clone(),
        title: u.title.clone(),
        email: u.email.clone(),
        phone: u.phone.clone(),
        disabled: u.disabled,
        status,
        last_seen_ms: live_seen.max(u.last_seen_ms.and_then(|v| u64::try_from(v).ok()).unwrap_or(0)),
    }
}

/// Ends this session: its token, and this device's certificate, so that
/// neither the relay nor its peers accept the device until it logs in
/// again. Other trackers and the device's peers hear of it through the
/// admin event this records.
pub async fn logout(state: &State, ctx: &mut ConnCtx) -> Result<Response, ErrorBody> {
    let authed = ctx.authed()?.clone();
    let (user_id, device) = (authed.live.user_id, authed.live.device_id);
    let end = AccessEnd::new(user_id, DeviceScope::One(device.0), EVENT_SIGNED_OUT, now_ms() as i64);
    let event = state.store.end_access(end).await.map_err(store_error)?;
    admin_watch::apply(&state.store, &state.hub, &state.relay, &event).await.map_err(store_error)?;
    tracing::info!(user = %authed.live.user, device = %device, "logged out");
    Ok(Response::Ok)
}

/// Changes the own password, given the current one. Guessing the current
/// password is throttled like a login; the change ends every other session
/// and device certificate of the user, and this connection stays.
pub async fn change_password(
    state: &State,
    ctx: &mut ConnCtx,
    old: String,
    new: String,
) -> Result<Response, ErrorBody> {
    let authed = ctx.authed()?.clone();
    check_password_policy(&new).map_err(|m| ErrorBody::new(ErrorCode::InvalidInput, m))?;
    let user = state
        .store
        .user_by_id(authed.live.user_id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ErrorBody::new(ErrorCode::NotFound, "your account no longer exists"))?;
    let admission =
        state.with_guard(|g| g.admit_strict(&user.name, ctx.remote.ip(), Instant::now())).map_err(throttled)?;
    if old.len() > MAX_PASSWORD
        || !state.passwords.verify(old, Some(user.password_hash.clone())).await.map_err(password_error)?
    {
        return Err(ErrorBody::new(ErrorCode::BadCredentials, "the current password is wrong"));
    }
    state.with_guard(|g| g.succeeded(admission, Instant::now()));
    let hash = state.passwords.hash(new).await.map_err(password_error)?;
    let keep = DeviceScope::AllBut(authed.live.device_id.0);
    let mut end = AccessEnd::new(user.id, keep, EVENT_SESSIONS_REVOKED, now_ms() as i64);
    end.password_hash = Some(hash);
    let event = state.store.end_access(end).await.map_err(store_error)?;
    let ended = admin_watch::apply(&state.store, &state.hub, &state.relay, &event).await.map_err(store_error)?;
    if let Some(s) = ctx.session.as_mut() {
        s.must_change_password = false;
    }
    tracing::info!(user = %user.name, other_sessions_ended = ended, "password changed");
    Ok(Response::Ok)
}
