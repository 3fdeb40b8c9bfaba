//! Who is calling: the app behind the bearer token, its scopes, its rate
//! limit, and the audit log line each call leaves.
//!
//! [`require_app`] runs before every `/v1` handler: it answers 401 without
//! a live app's token and 429 (with `Retry-After`) past the app's rate,
//! hands the handler the [`Caller`], and records the call and its status
//! in the audit log.

use super::{Api, Problem};
use crate::store::AppRecord;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;

/// The app making the call.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The app.
    pub app: AppRecord,
}

impl Caller {
    /// Refuses the call (403) unless the app has `scope`.
    pub fn need(&self, scope: &str) -> Result<(), Problem> {
        if self.app.scopes.iter().any(|s| s == scope) {
            return Ok(());
        }
        Err(Problem::forbidden(format!(
            "the app {:?} lacks the {scope:?} scope (it has: {}); create an app with it: \
             skein-tracker app create NAME --scopes {scope}",
            self.app.name,
            self.app.scopes.join(", ")
        )))
    }
}

/// The token of `Authorization: Bearer TOKEN`.
fn bearer(headers: &HeaderMap) -> Result<&str, Problem> {
    let missing = || {
        Problem::unauthorized(
            "send the app's token as `Authorization: Bearer TOKEN` (skein-tracker app create makes one)",
        )
    };
    let value = headers.get(header::AUTHORIZATION).ok_or_else(missing)?;
    let value = value.to_str().map_err(|_| missing())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(missing());
    }
    Ok(token.trim())
}

/// Authenticates, rate-limits and audits a call (see the module's text).
pub async fn require_app(
    State(api): State<Arc<Api>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    // SCIM clients read SCIM's error bodies; everyone else problem details.
    let scim = req.uri().path().starts_with("/scim/");
    let refuse = |p: Problem| if scim { super::scim::refusal(p) } else { p.into_response() };
    let token = match bearer(req.headers()) {
        Ok(t) => t.to_owned(),
        Err(p) => return refuse(p),
    };
    let app = match crate::apps::authenticate(&api.state.store, &token).await {
        Ok(Some(app)) => app,
        Ok(None) => {
            return refuse(Problem::unauthorized(
                "the token is not that of a live app: it was revoked, or never issued",
            ));
        }
        Err(e) => return refuse(Problem::from(e)),
    };
    let method = req.method().to_string();
    let route = matched.map_or_else(|| req.uri().path().to_owned(), |m| m.as_str().to_owned());
    let res = match api.take(app.id) {
        Err(wait) => refuse(Problem::too_many(wait)),
        Ok(()) => {
            req.extensions_mut().insert(Caller { app: app.clone() });
            next.run(req).await
        }
    };
    let now = crate::clock::now_ms() as i64;
    let status = res.status().as_u16();
    if let Err(e) = api.state.store.audit(app.id, now, &remote.to_string(), &method, &route, status).await {
        tracing::warn!(error = %e, app = %app.name, "cannot write the API audit log");
    }
    res
}
