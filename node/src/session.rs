//! Logging in and resuming: turns a profile into a live tracker session,
//! saving the rotated token every time.

use crate::profile::{Profile, ProfileError, SavedSession};
use crate::tracker_client::{ClientError, TrackerClient, TrackerTarget};
use skein_proto::control::{Event, Login, PresenceStatus, Request, Response, Resume, Session, TrackerAddrs};
use skein_proto::{ErrorBody, ErrorCode};
use std::path::Path;
use std::time::Duration;
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
    /// The relays of the organisation's running trackers, as the tracker
    /// listed them (`.../p2p/RELAY`).
    pub relays: Vec<String>,
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
    let listed = org_trackers(&client).await;
    saved.trackers = listed.as_ref().map(|l| others(l, tracker)).unwrap_or_default();
    profile.save_session(&saved)?;
    let relays = listed.as_ref().map(|l| relays(l)).unwrap_or_default();
    Ok(Connected { client, events, saved, password_change_required: session.password_change_required, relays })
}

/// Resumes the saved session, rotating and saving its token.
pub async fn resume(profile: &Profile) -> Result<Connected, SessionError> {
    resume_avoiding(profile, None).await
}

/// [`resume`] on the nearest of the organisation's trackers: the saved one
/// and those the last one listed are raced ([`race`]), and the soonest to
/// answer wins, ties broken at random ([`crate::nearest`]). `avoid` (a
/// tracker that just went away) is left out of the race and tried only
/// when no other answers. The tracker that answers becomes the saved one.
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
    let mut last = Vec::new();
    if let Some(a) = avoid
        && let Some(i) = candidates.iter().position(|c| c == a)
        && candidates.len() > 1
    {
        last.push(candidates.remove(i));
    }
    let (addr, (client, events)) = match race(profile, candidates).await {
        Ok(won) => won,
        Err(e) if !e.is_transient() || last.is_empty() => return Err(e),
        Err(_) => race(profile, last).await?,
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
    let listed = org_trackers(&client).await;
    if let Some(list) = &listed {
        saved.trackers = others(list, &saved.tracker);
    }
    profile.save_session(&saved)?;
    let relays = listed.as_ref().map(|l| relays(l)).unwrap_or_default();
    Ok(Connected { client, events, saved, password_change_required: session.password_change_required, relays })
}

/// Connects to every one of `addrs` at once and keeps the nearest (see
/// [`crate::nearest`]); the others are closed. A refusal that retrying
/// cannot mend (an untrusted certificate, say) is returned only when no
/// tracker answered.
async fn race(
    profile: &Profile,
    addrs: Vec<String>,
) -> Result<(String, (TrackerClient, mpsc::Receiver<Event>)), SessionError> {
    use futures::StreamExt;
    let started = tokio::time::Instant::now();
    let mut attempts: futures::stream::FuturesUnordered<_> = addrs
        .into_iter()
        .map(|addr| async move {
            let target = TrackerTarget::new(addr.clone(), profile.ca_path());
            let result = TrackerClient::connect(&target, AGENT).await;
            (addr, result)
        })
        .collect();
    let mut race = crate::nearest::Race::new();
    let mut failure: Option<SessionError> = None;
    loop {
        let next = match race.tie_deadline() {
            Some(d) => match tokio::time::timeout_at(started + d, attempts.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
            None => attempts.next().await,
        };
        let Some((addr, result)) = next else { break };
        match result {
            Ok(connected) => race.answered(started.elapsed(), (addr, connected)),
            Err(e) => {
                let e = SessionError::from(e);
                tracing::info!(tracker = %addr, error = %e, "a tracker did not answer");
                if failure.as_ref().is_none_or(|f| f.is_transient()) {
                    failure = Some(e);
                }
            }
        }
    }
    let answered = race.len();
    match race.pick(&mut rand::thread_rng()) {
        Some((won, rest)) => {
            for (_, (client, _)) in rest {
                client.close();
            }
            tracing::debug!(tracker = %won.0, answered, "nearest tracker chosen");
            Ok(won)
        }
        None => Err(failure.unwrap_or_else(|| SessionError::Unexpected("no tracker to resume on".into()))),
    }
}

/// How often a connected device asks for the list of the organisation's
/// trackers again.
pub const TRACKERS_REFRESH: Duration = Duration::from_secs(60);

/// Saves `list` as the other trackers of the saved session, if the session
/// is still on the tracker `at` that gave it.
pub fn save_trackers(profile: &Profile, at: &str, list: Vec<String>) -> Result<(), ProfileError> {
    let mut saved = profile.session()?;
    if saved.tracker != at || saved.trackers == list {
        return Ok(());
    }
    saved.trackers = list;
    profile.save_session(&saved)
}

/// The organisation's running trackers, as `client`'s tracker lists them
/// (`None` when it cannot say: an older tracker).
pub async fn org_trackers(client: &TrackerClient) -> Option<Vec<TrackerAddrs>> {
    match client.request(Request::Trackers).await {
        Ok(Response::Trackers(list)) => Some(list),
        Ok(_) => None,
        Err(e) => {
            tracing::debug!(error = %e, "the tracker did not list the organisation's trackers");
            None
        }
    }
}

/// The control addresses in `list` other than `current` (and other than
/// unspecified ones, which no device can dial).
pub fn others(list: &[TrackerAddrs], current: &str) -> Vec<String> {
    list.iter()
        .flat_map(|t| t.control.iter())
        .filter(|a| *a != current)
        .filter(|a| a.parse::<std::net::SocketAddr>().map_or(true, |s| !s.ip().is_unspecified()))
        .cloned()
        .collect()
}

/// The relay addresses in `list`.
pub fn relays(list: &[TrackerAddrs]) -> Vec<String> {
    list.iter().flat_map(|t| t.relay.iter()).cloned().collect()
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
