//! The HTTP API that company systems call (`--roles …,api`), built on axum.
//!
//! It serves plain HTTP on a loopback address (default 127.0.0.1:7480), for
//! an operator's HTTPS proxy in front of it, or HTTPS with the tracker's
//! certificate on any address (`--api-tls`, [`https`]). Every `/v1` call carries
//! an app's bearer token ([`auth`]); errors are problem details
//! ([`problem`]); bodies are limited to 1 MiB. `/healthz` says the process
//! is up and `/readyz` that its store answers; `/metrics` serves the
//! tracker's metrics to Prometheus ([`crate::metrics`]).
//!
//! What an app can do: push messages to users, groups and departments
//! ([`messages`]), and read presence and the directory ([`read`]).
//! Incoming webhooks post into one conversation each ([`hooks`]). An
//! identity provider provisions users and departments over SCIM 2.0
//! ([`scim`]).
//! The OpenAPI 3.1 document, made from the handlers (utoipa), is served at
//! `/openapi.json`.

pub mod auth;
pub mod hooks;
pub mod https;
pub mod messages;
pub mod problem;
pub mod read;
pub mod scim;
pub mod scim_schemas;

pub use auth::Caller;
pub use problem::Problem;

use crate::rate::RateLimit;
use crate::state::State;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The default address of the API.
pub const DEFAULT_LISTEN: ([u8; 4], u16) = ([127, 0, 0, 1], 7480);
/// Largest request body.
pub const MAX_BODY: usize = 1 << 20;
/// Calls an app may make at once, then [`RATE_PER_SEC`] a second.
pub const RATE_BURST: u32 = 50;
/// Calls an app may make a second, steadily.
pub const RATE_PER_SEC: f64 = 20.0;

/// What the API's handlers share.
#[derive(Debug)]
pub struct Api {
    /// The tracker.
    pub state: Arc<State>,
    limits: Mutex<HashMap<i64, RateLimit>>,
}

impl Api {
    /// The API of the tracker with `state`.
    pub fn new(state: Arc<State>) -> Arc<Api> {
        Arc::new(Api { state, limits: Mutex::new(HashMap::new()) })
    }

    /// Takes one call from app `id`'s rate, or says how long to wait.
    pub fn take(&self, id: i64) -> Result<(), Duration> {
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        limits.entry(id).or_insert_with(|| RateLimit::new(RATE_BURST, RATE_PER_SEC)).take(Instant::now())
    }
}

/// Adds the bearer-token scheme the `/v1` routes name, and what the API is.
struct Described;

impl utoipa::Modify for Described {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        doc.info.title = "Skein tracker API".into();
        doc.info.version = env!("CARGO_PKG_VERSION").into();
        doc.info.description = Some(
            "What company systems call: an app's bearer token (skein-tracker app create) on every /v1 call; \
             every refusal is a problem body (RFC 9457)."
                .into(),
        );
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build();
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(modifiers(&Described))]
struct Doc;

/// The API's routes, and its OpenAPI document made from them.
pub fn router(api: Arc<Api>) -> Router {
    use utoipa::OpenApi;
    let (v1, doc) = utoipa_axum::router::OpenApiRouter::with_openapi(Doc::openapi())
        .routes(utoipa_axum::routes!(messages::send))
        .routes(utoipa_axum::routes!(read::presence))
        .routes(utoipa_axum::routes!(read::directory))
        .route_layer(axum::middleware::from_fn_with_state(api.clone(), auth::require_app))
        // Webhooks carry their secret in the URL, not a bearer token.
        .routes(utoipa_axum::routes!(hooks::receive))
        .split_for_parts();
    let doc = Arc::new(doc);
    Router::new()
        .route("/healthz", get(|| async { axum::Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .route("/openapi.json", get(move || async move { axum::Json(doc.as_ref().clone()) }))
        .route("/metrics", get(metrics))
        .merge(v1)
        .merge(scim::routes().route_layer(axum::middleware::from_fn_with_state(api.clone(), auth::require_app)))
        .fallback(|| async { Problem::not_found("no such route; the API's routes are under /v1") })
        .method_not_allowed_fallback(|| async {
            Problem::new(StatusCode::METHOD_NOT_ALLOWED, "this route does not take that method")
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(api.clone(), count_calls))
        .with_state(api)
}

/// Counts every call by its route's pattern (`unmatched` for none) and
/// status, for `/metrics`.
async fn count_calls(
    axum::extract::State(api): axum::extract::State<Arc<Api>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    api.state.metrics.api_call(&route, response.status().as_u16());
    response
}

/// `GET /metrics`: the tracker's metrics for Prometheus (text format).
async fn metrics(axum::extract::State(api): axum::extract::State<Arc<Api>>) -> impl axum::response::IntoResponse {
    let body = api.state.metrics.render(&api.state).await;
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}

/// `GET /readyz`: 200 once the store answers, 503 while it does not.
async fn ready(
    axum::extract::State(api): axum::extract::State<Arc<Api>>,
) -> Result<axum::Json<serde_json::Value>, Problem> {
    api.state.store.get_setting("org_name").await?;
    Ok(axum::Json(json!({"status": "ready"})))
}

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Plain HTTP is served on loopback only.
    #[error(
        "the HTTP API serves plain HTTP on a loopback address only (--api-listen {0} is not one): serve HTTPS \
         with the tracker's certificate (--api-tls), or put it behind your HTTPS proxy, listening on 127.0.0.1"
    )]
    NotLoopback(SocketAddr),
    /// The address could not be bound.
    #[error("cannot listen on TCP {addr} for the HTTP API: {source}; choose another address with --api-listen")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Refuses an address the API may not serve on: plain HTTP goes to
/// loopback only; HTTPS (`tls`) anywhere.
pub fn check_listen(addr: SocketAddr, tls: bool) -> Result<(), ApiError> {
    match tls || addr.ip().is_loopback() {
        true => Ok(()),
        false => Err(ApiError::NotLoopback(addr)),
    }
}

/// Binds the API's address.
pub async fn bind(addr: SocketAddr, tls: bool) -> Result<tokio::net::TcpListener, ApiError> {
    check_listen(addr, tls)?;
    tokio::net::TcpListener::bind(addr).await.map_err(|source| ApiError::Bind { addr, source })
}

/// Serves the API on `listener` until `shutdown`: over HTTPS with `tls`,
/// else plain HTTP.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    api: Arc<Api>,
    shutdown: CancellationToken,
) {
    use axum::serve::ListenerExt;
    let app = router(api).into_make_service_with_connect_info::<SocketAddr>();
    let stopped = shutdown.clone().cancelled_owned();
    let served = match tls {
        None => axum::serve(listener, app).with_graceful_shutdown(stopped).await,
        Some(tls) => match https::TlsListener::new(listener, tls, shutdown) {
            // `tap_io` only so that axum hands on the caller's address.
            Ok(l) => axum::serve(l.tap_io(|_| {}), app).with_graceful_shutdown(stopped).await,
            Err(e) => Err(e),
        },
    };
    if let Err(e) = served {
        tracing::error!(error = %e, "the HTTP API stopped");
    }
}
