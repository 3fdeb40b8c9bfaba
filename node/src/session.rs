//! Logging in and resuming: turns a profile into a live tracker session,
//! saving the rotated token every time.

use crate::profile::{Profile, ProfileError, SavedSession};
use crate::tracker_client::{ClientError, TrackerClient, TrackerTarget};
use skein_proto::control::{Event, Login, PresenceStatus, Request, Response, Resume, Session};
use skein_proto::{ErrorBody, ErrorCode};
use std::path::Path;
use tokio::sync::mpsc;

/// Software name sent in the hello.
pub const AGENT: &str = concat!("skein/", env!("CARGO_PKG_VERSION"));

/// Why a session could not be established.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The profile is missing or corrupt.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// Talking to the tracker failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The tracker answered with something unexpected.
    #[error("unexpected answer from the tracker: {0}")]
    Unexpected(String),
}

impl SessionError {
    /// The tracker's error code, if it refused.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Client(c) => c.body().map(|b| b.code),
            _ => None,
        }
    }

    /// True if retrying later may succeed (tracker down or busy), false if
    /// the user must act (log in again, fix the CA file...).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Client(ClientError::Unreachable { .. } | ClientError::Closed | ClientError::Timeout(_)) => true,
            Self::Client(ClientError::Refused(b)) => {
                matches!(b.code, ErrorCode::Unavailable | ErrorCode::Internal | ErrorCode::Throttled)
            }
            _ => false,
        }
    }
}

/// A live session: the client, its events, and the saved state.
#[derive(Debug)]
pub struct Connected {
    /// The tracker connection.
    pub client: TrackerClient,
    /// Events pushed by the tracker.
    pub events: mpsc::Receiver<Event>,
    /// The profile's saved session, already updated.
    pub saved: SavedSession,
    /// The password is a one-time password: the tracker allows nothing
    /// but [`Request::ChangePassword`] (or a logout) until it is changed.
    pub password_change_required: bool,
}

/// Password login. Copies `ca` into the profile and saves the session.
pub async fn login(
    profile: &Profile,
    tracker: &str,
    ca: &Path,
    user: &str,
    password: String,
) -> Result<Connected, SessionError> {
    // Validate the CA file before copying it anywhere.
    skein_certs::rustls_io::load_certs(ca).map_err(ClientError::from)?;
    let pem = std::fs::read(ca).map_err(|source| ProfileError::Io { action: "read", path: ca.to_owned(), source })?;
    let device = profile.device()?;
    let target = TrackerTarget::new(tracker, ca);
    let (client, events) = TrackerClient::connect(&target, AGENT).await?;
    let resp = client
        .request(Request::Login(Login {
            user: user.trim().to_lowercase(),
            password,
            device: device.hello(&client.welcome().nonce),
        }))
        .await?;
    let session = expect_session(resp)?;
    profile.save_ca(&pem)?;
    let mut saved = SavedSession {
        tracker: tracker.to_owned(),
        user: session.user.name.clone(),
        token: String::new(),
        expires_at_ms: 0,
        org: String::new(),
        admin: false,
        org_signing_key: String::new(),
        device_cert: String::new(),
        status: profile.session().map(|s| s.status).unwrap_or_else(|_| "online".into()),
        trackers: Vec::new(),
    };
    saved.update(&session);
    saved.trackers = other_trackers(&client, tracker).await.unwrap_or_default();
    profile.save_session(&saved)?;
    Ok(Connected { client, events, saved, password_change_required: session.password_change_required })
}

/// Resumes the saved session, rotating and saving its token.
pub async fn resume(profile: &Profile) -> Result<Connected, SessionError> {
    resume_avoiding(profile, None).await
}

/// [`resume`] on the saved tracker or, when it does not answer, on the
/// organisation's other trackers, in the order the last one listed them;
/// `avoid` (a tracker that just went away) is tried last. The tracker
/// that answers becomes the saved one.
pub async fn resume_avoiding(profile: &Profile, avoid: Option<&str>) -> Result<Connected, SessionError> {
    let mut saved = profile.session()?;
    let token = saved.token().ok_or_else(|| ProfileError::Corrupt {
        path: profile.session_path(),
        reason: "the token is not valid hex".into(),
    })?;
    let device = profile.device()?;
    let mut candidates: Vec<String> = Vec::new();
    for addr in std::iter::once(&saved.tracker).chain(saved.trackers.iter()) {
        if !candidates.contains(addr) {
            candidates.push(addr.clone());
        }
    }
    if let Some(a) = avoid
        && let Some(i) = candidates.iter().position(|c| c == a)
        && candidates.len() > 1
    {
        let gone = candidates.remove(i);
        candidates.push(gone);
    }
    let mut reached = None;
    let mut failure = None;
    for addr in candidates {
        let target = TrackerTarget::new(addr.clone(), profile.ca_path());
        match TrackerClient::connect(&target, AGENT).await {
            Ok(c) => {
                reached = Some((addr, c));
                break;
            }
            Err(e) => {
                let e = SessionError::from(e);
                if !e.is_transient() {
                    return Err(e);
                }
                tracing::info!(tracker = %addr, error = %e, "a tracker did not answer; trying the next");
                failure = Some(e);
            }
        }
    }
    let Some((addr, (client, events))) = reached else {
        return Err(failure.unwrap_or_else(|| SessionError::Unexpected("no tracker to resume on".into())));
    };
    if addr != saved.tracker {
        tracing::info!(from = %saved.tracker, to = %addr, "resuming on another tracker of the organisation");
        saved.tracker = addr;
    }
    let resume = Request::Resume(Resume { token, device: device.hello(&client.welcome().nonce) });
    let resp = match client.request(resume).await {
        Ok(r) => r,
        Err(ClientError::Refused(b)) if matches!(b.code, ErrorCode::SessionExpired | ErrorCode::SessionRevoked) => {
            return Err(ClientError::Refused(ErrorBody {
                message: format!(
                    "{}: run `skein --profile {} login --tracker {} --ca FILE --user {}`",
                    b.message,
                    profile.dir().display(),
                    saved.tracker,
                    saved.user
                ),
                ..b
            })
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    let session = expect_session(resp)?;
    saved.update(&session);
    if let Some(others) = other_trackers(&client, &saved.tracker).await {
        saved.trackers = others;
    }
    profile.save_session(&saved)?;
    Ok(Connected { client, events, saved, password_change_required: session.password_change_required })
}

/// The control addresses of the organisation's running trackers other than
/// `current`, as it says (`None` when it cannot say: an older tracker).
async fn other_trackers(client: &TrackerClient, current: &str) -> Option<Vec<String>> {
    match client.request(Request::Trackers).await {
        Ok(Response::Trackers(list)) => Some(
            list.into_iter()
                .flat_map(|t| t.control)
                .filter(|a| a != current)
                .filter(|a| a.parse::<std::net::SocketAddr>().map_or(true, |s| !s.ip().is_unspecified()))
                .collect(),
        ),
        Ok(_) => None,
        Err(e) => {
            tracing::debug!(error = %e, "the tracker did not list the organisation's trackers");
            None
        }
    }
}

fn expect_session(resp: Response) -> Result<Box<Session>, SessionError> {
    match resp {
        Response::Session(s) => Ok(s),
        other => Err(SessionError::Unexpected(format!("{other:?}"))),
    }
}

/// Parses a presence status word, naming the valid ones on failure.
pub fn parse_status(s: &str) -> Result<PresenceStatus, String> {
    match PresenceStatus::parse(s) {
        Some(PresenceStatus::Offline) | None => Err(format!("unknown status {s:?}: use online, away or busy")),
        Some(st) => Ok(st),
    }
}
