//! Request handlers: one file per group of related requests. Each handler
//! takes the shared [`State`] and the connection's [`ConnCtx`] and returns
//! the response or an [`ErrorBody`] saying what failed and what to do.

mod admin;
pub mod counts;
mod directory;
pub mod groups;
pub(crate) mod mailbox;
mod presence;
mod session;

use crate::connection::Outgoing;
use crate::hub::LiveSession;
use crate::presence::ConnId;
use crate::state::State;
use crate::store::StoreError;
use skein_proto::control::{OrgPolicy, RelayInfo, Request, Response};
use skein_proto::{ErrorBody, ErrorCode};
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

/// A logged-in connection's session.
#[derive(Debug, Clone)]
pub struct Authed {
    /// What the hub knows of it.
    pub live: LiveSession,
    /// Whether the user is an administrator.
    pub admin: bool,
    /// When the token expires, ms since the Unix epoch.
    pub expires_at_ms: u64,
    /// The password is a one-time password: only a change (or logout) is
    /// allowed until it is replaced.
    pub must_change_password: bool,
}

/// One connection's context.
#[derive(Debug)]
pub struct ConnCtx {
    /// Connection id.
    pub id: ConnId,
    /// Peer address.
    pub remote: SocketAddr,
    /// The control protocol version agreed in the handshake.
    pub protocol: u16,
    /// The random bytes of this connection's welcome, which a device signs
    /// to prove its PeerId.
    pub nonce: [u8; 32],
    /// Set once logged in.
    pub session: Option<Authed>,
    /// The connection's place among those not logged in; given back at login.
    pub stranger: Option<crate::strangers::Slot>,
    /// Presence changes this connection may still make.
    pub presence_rate: crate::rate::RateLimit,
    /// The connection's outgoing queue.
    pub out: Outgoing,
    /// Cancelled to end the connection.
    pub end: CancellationToken,
}

impl ConnCtx {
    /// The session, or `NotAuthenticated`.
    pub fn authed(&self) -> Result<&Authed, ErrorBody> {
        self.session
            .as_ref()
            .ok_or_else(|| ErrorBody::new(ErrorCode::NotAuthenticated, "log in first: this request needs a session"))
    }
}

/// Handles one request.
pub async fn handle(state: &State, ctx: &mut ConnCtx, req: Request) -> Result<Response, ErrorBody> {
    let kind = req.kind();
    state.requests.count(kind);
    let answer = answer(state, ctx, req).await;
    state.metrics.request(kind, &answer);
    answer
}

/// The answer to one request.
async fn answer(state: &State, ctx: &mut ConnCtx, req: Request) -> Result<Response, ErrorBody> {
    if let Some(s) = ctx.session.as_ref().filter(|s| s.must_change_password)
        && !matches!(
            req,
            Request::ChangePassword { .. }
                | Request::Logout
                | Request::Ping { .. }
                | Request::Policy
                | Request::RelayInfo
        )
    {
        return Err(ErrorBody::new(
            ErrorCode::PasswordChangeRequired,
            format!(
                "the password of {} is a one-time password; choose your own first with `skein passwd`",
                s.live.user
            ),
        ));
    }
    match req {
        Request::Ping { nonce } => Ok(Response::Pong { nonce, server_time_ms: crate::clock::now_ms() }),
        Request::Login(login) => session::login(state, ctx, login).await,
        Request::Resume(resume) => session::resume(state, ctx, resume).await,
        Request::Logout => session::logout(state, ctx).await,
        Request::ChangePassword { old, new } => session::change_password(state, ctx, old, new).await,
        Request::SetPresence(p) => presence::set(state, ctx, p).await,
        Request::SubscribePresence(sub) => presence::subscribe(state, ctx, sub).await,
        Request::UnsubscribePresence => presence::unsubscribe(state, ctx).await,
        Request::Directory(q) => directory::search(state, ctx, q).await,
        Request::Departments => directory::departments(state, ctx).await,
        Request::LookupPeer { user } => directory::lookup(state, ctx, &user).await,
        Request::ReportAddresses(a) => directory::report_addresses(state, ctx, a).await,
        Request::MailboxPut(put) => mailbox::put(state, ctx, put).await,
        Request::MailboxPutMany(puts) => mailbox::put_many(state, ctx, puts).await,
        Request::MailboxFetch { limit } => mailbox::fetch(state, ctx, limit).await,
        Request::MailboxAck { ids } => mailbox::ack(state, ctx, ids).await,
        Request::Admin(a) => admin::handle(state, ctx, a).await,
        Request::GroupCreate(c) => groups::create(state, ctx, c).await,
        Request::GroupList => groups::list(state, ctx).await,
        Request::GroupUpdate { group, update } => groups::update(state, ctx, group, update).await,
        Request::LookupPeers { users } => directory::lookup_many(state, ctx, users).await,
        Request::GroupChanges { group, after_version } => groups::changes(state, ctx, group, after_version).await,
        Request::RelayInfo => {
            ctx.authed()?;
            if !state.config.roles.relay {
                return Err(ErrorBody::new(
                    ErrorCode::Unavailable,
                    "this tracker runs no relay (--roles control); the organisation's relays are in its list of trackers",
                ));
            }
            Ok(relay_info(state))
        }
        Request::Policy => {
            ctx.authed()?;
            Ok(Response::Policy(OrgPolicy { max_file_size: state.config.max_file_size }))
        }
        Request::Trackers => {
            ctx.authed()?;
            trackers(state).await
        }
    }
}

/// The organisation's running trackers, as the list of trackers says.
async fn trackers(state: &State) -> Result<Response, ErrorBody> {
    let now = crate::clock::now_ms() as i64;
    let list = state.store.list_trackers().await.map_err(store_error)?;
    Ok(Response::Trackers(
        list.into_iter()
            .filter(|t| crate::roster::standing(t, now) == "running")
            .map(|t| skein_proto::control::TrackerAddrs {
                name: t.name,
                control: t.control_addrs,
                relay: t.relay_addrs,
            })
            .collect(),
    ))
}

/// Where this tracker's relay is: its PeerId, port and the addresses nodes
/// should dial (IPs first, without `/p2p/`; empty means the control plane's
/// host at `port`).
fn relay_info(state: &State) -> Response {
    let relay = &state.relay;
    Response::Relay(RelayInfo {
        peer_id: relay.peer_id().to_bytes(),
        port: relay.port(),
        addrs: relay.advertised().iter().map(ToString::to_string).collect(),
    })
}

/// Maps a password-hashing failure to an answer.
pub fn password_error(e: crate::passwords::PasswordError) -> ErrorBody {
    match e {
        crate::passwords::PasswordError::Busy(wait) => ErrorBody::new(ErrorCode::Unavailable, e.to_string())
            .retry_after(u32::try_from(wait.as_millis()).unwrap_or(u32::MAX)),
        other => ErrorBody::new(ErrorCode::Internal, other.to_string()),
    }
}

/// Maps a store failure to an answer; internal details go to the log only.
pub fn store_error(e: StoreError) -> ErrorBody {
    match e {
        StoreError::Conflict(m) => ErrorBody::new(ErrorCode::Conflict, m),
        StoreError::NotFound(m) => ErrorBody::new(ErrorCode::NotFound, m),
        e @ StoreError::MailboxFull { .. } => ErrorBody::new(ErrorCode::MailboxFull, e.to_string()),
        e @ StoreError::TooManyDevices { .. } => ErrorBody::new(ErrorCode::Conflict, e.to_string()),
        other => {
            tracing::error!(error = %other, "store failure");
            ErrorBody::new(
                ErrorCode::Internal,
                "the tracker's database failed; try again, and tell an administrator if it persists",
            )
        }
    }
}
