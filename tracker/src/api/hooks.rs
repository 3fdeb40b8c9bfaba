//! Incoming webhooks: `POST /hooks/{id}/{secret}`.
//!
//! A system that can only call a URL (a CI server, a monitoring tool, a
//! script with curl) posts a Slack-style `{"text": …}`, or a card, to the
//! URL `skein-tracker hook create --to '#team'` printed; it lands in the
//! one conversation chosen then, under the hook's name, as
//! `POST /v1/messages` would put it. The secret is the hook's token (the
//! store keeps its hash); a wrong or revoked one, or an unknown id, is a
//! 404 that tells nothing more. Fields Slack senders add that Skein has
//! no use for (`username`, `icon_emoji`, `channel`, `blocks`, …) are
//! ignored, so such senders work unchanged.

use super::messages::{NewCard, NewImage, deliver, json_problem, post_of};
use super::{Api, Problem};
use crate::apps::{HOOK_SCOPE, authenticate};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, State};
use serde::{Deserialize, Serialize};
use skein_proto::bytes::MailId;
use std::net::SocketAddr;
use std::sync::Arc;
use utoipa::ToSchema;

/// What a webhook takes: Slack's `text`, and Skein's card and image.
#[derive(Debug, Deserialize, ToSchema)]
pub struct HookPost {
    /// Plain text.
    text: Option<String>,
    /// A card, beside or instead of the text.
    card: Option<NewCard>,
    /// An image.
    image: Option<NewImage>,
}

/// The post was taken.
#[derive(Debug, Serialize, ToSchema)]
pub struct HookAnswer {
    /// Always true, as Slack answers.
    ok: bool,
    /// The message's id.
    id: String,
}

/// Posts into the conversation the webhook was made for.
#[utoipa::path(
    post,
    path = "/hooks/{id}/{secret}",
    tag = "send",
    params(("id" = i64, Path, description = "The webhook's id"), ("secret" = String, Path, description = "Its secret, shown once when it was made")),
    request_body = HookPost,
    responses(
        (status = 200, description = "Taken", body = HookAnswer),
        (status = 400, description = "A malformed body, or a part of the message over its limits", body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook, or the secret is wrong or revoked", body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 1 MiB", body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as application/json", body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "The webhook's rate limit", body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The store does not answer", body = super::problem::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn receive(
    State(api): State<Arc<Api>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path((id, secret)): Path<(String, String)>,
    body: Result<Json<HookPost>, JsonRejection>,
) -> Result<Json<HookAnswer>, Problem> {
    let unknown = || Problem::not_found("no such webhook: check the URL `skein-tracker hook create` printed");
    let id: i64 = id.parse().map_err(|_| unknown())?;
    let app = authenticate(&api.state.store, &secret).await?.filter(|a| a.id == id).ok_or_else(unknown)?;
    let Some(to) = app.hook_to.clone().filter(|_| app.scopes.iter().any(|s| s == HOOK_SCOPE)) else {
        return Err(unknown());
    };
    let answer = async {
        api.take(app.id).map_err(Problem::too_many)?;
        let Json(p) = body.map_err(json_problem)?;
        let post = post_of(&app.name, &p.text, &p.card, &p.image)?;
        deliver(&api, &app, &to, post, MailId(rand::random())).await
    }
    .await;
    let status = answer.as_ref().map_or_else(|p| p.status.as_u16(), |_| 200);
    let (now, remote) = (crate::clock::now_ms() as i64, remote.to_string());
    if let Err(e) = api.state.store.audit(app.id, now, &remote, "POST", "/hooks/{id}/{secret}", status).await {
        tracing::warn!(error = %e, "cannot write the audit log");
    }
    answer.map(|a| Json(HookAnswer { ok: true, id: a.id }))
}
