//! Errors of the HTTP API as problem details (RFC 9457): a JSON body with
//! `type`, `title`, `status` and `detail`, served as
//! `application/problem+json`, with `Retry-After` when a limit was hit.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::time::Duration;

/// One problem, answered with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The HTTP status.
    pub status: StatusCode,
    /// What is wrong and what to do.
    pub detail: String,
    /// For 429 and 503: when to try again.
    pub retry_after: Option<Duration>,
}

/// A problem as the body says it (RFC 9457).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProblemBody {
    /// Always `about:blank`: the status says what kind of problem it is.
    r#type: &'static str,
    /// The status's reason phrase.
    title: String,
    /// The HTTP status.
    status: u16,
    /// What is wrong and what to do.
    detail: String,
}

impl Problem {
    /// A problem with `status` and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self { status, detail: detail.into(), retry_after: None }
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 401: no token, or not a live app's.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    /// 403: the app lacks the scope.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    /// 404: no such user, group or route.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 429: the app's rate limit; try again after `wait`.
    pub fn too_many(wait: Duration) -> Self {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            detail: format!("this app's rate limit was reached; try again in {secs} s"),
            retry_after: Some(Duration::from_secs(secs)),
        }
    }

    /// 503: the store cannot be reached (the tracker keeps serving nodes).
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self { retry_after: Some(Duration::from_secs(5)), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, detail) }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = ProblemBody {
            r#type: "about:blank",
            title: title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut res = (self.status, json).into_response();
        let headers = res.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(wait) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&wait.as_secs().to_string())
        {
            headers.insert(header::RETRY_AFTER, v);
        }
        res
    }
}

/// A query string that does not parse (`?limit=ten`).
impl From<axum::extract::rejection::QueryRejection> for Problem {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        Problem::bad_request(format!("the query string is malformed: {}", e.body_text()))
    }
}

/// A store failure, as the API answers it: details go to the log only.
impl From<crate::store::StoreError> for Problem {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::warn!(error = %e, "the HTTP API could not use the store");
        Problem::unavailable("the tracker cannot reach its store just now; try again shortly")
    }
}
