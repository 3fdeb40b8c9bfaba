//! What a plugin may ask of the node, and how the node does it: read the
//! conversation it was invoked in (`conversation.read`, permission `read`)
//! and post into it as the user (`message.post`, permission `post`). The
//! checks that it was invoked and granted are made before these run, in
//! [`super::process`].

use super::manifest::Permission;
use super::rpc::{self, RpcError};
use crate::control::{ControlReply, ControlRequest};
use crate::daemon::ControlCall;
use crate::events::Events;
use crate::history::History;
use serde_json::{Value, json};
use skein_proto::app::Card;
use tokio::sync::{mpsc, oneshot};

/// Most messages one `conversation.read` returns.
pub const MAX_READ: u32 = 200;
/// Longest text of one message a plugin reads, in bytes (a whole read
/// stays well under the protocol's line limit).
pub const MAX_READ_TEXT: usize = 4 * 1024;

fn clipped(mut text: String) -> String {
    if text.len() > MAX_READ_TEXT {
        let mut end = MAX_READ_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// The node as plugins reach it; cheap to clone.
#[derive(Clone, Debug)]
pub struct Host {
    /// The user the node runs for.
    pub(crate) me: String,
    pub(crate) history: History,
    pub(crate) events: Events,
    calls: mpsc::Sender<ControlCall>,
}

/// The permission a plugin's request needs; `None` for a method the node
/// does not answer.
pub fn permission_for(method: &str) -> Option<Permission> {
    match method {
        "conversation.read" => Some(Permission::Read),
        "message.post" => Some(Permission::Post),
        _ => None,
    }
}

/// What a plugin posts: text, a card, or both (sent as two messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    /// Text.
    pub text: Option<String>,
    /// A card.
    pub card: Option<Card>,
}

impl Post {
    /// Reads `{"text": …, "card": {…}}`; the error says what is wrong.
    pub fn from_json(v: &Value) -> Result<Post, String> {
        let text = match v.get("text") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err("`text` must be a string".into()),
        };
        let card = match v.get("card") {
            None | Some(Value::Null) => None,
            Some(c @ Value::Object(_)) => {
                let mut c = c.clone();
                for list in ["fields", "buttons"] {
                    if c.get(list).is_none() {
                        c[list] = json!([]);
                    }
                }
                let card: Card = serde_json::from_value(c).map_err(|e| format!("`card` is malformed: {e}"))?;
                card.check()?;
                Some(card)
            }
            Some(_) => return Err("`card` must be an object".into()),
        };
        if text.is_none() && card.is_none() {
            return Err("a post needs `text` or a `card`".into());
        }
        Ok(Post { text, card })
    }
}

impl Host {
    pub(crate) fn new(me: String, history: History, events: Events, calls: mpsc::Sender<ControlCall>) -> Host {
        Host { me, history, events, calls }
    }

    /// Answers a plugin's request that was checked to be allowed.
    pub(crate) async fn serve(&self, method: &str, conversation: &str, params: &Value) -> Result<Value, RpcError> {
        let invalid = |message: String| RpcError { code: rpc::INVALID_PARAMS, message };
        match method {
            "conversation.read" => {
                let limit = match params.get("limit") {
                    None | Some(Value::Null) => 50,
                    Some(v) => v
                        .as_u64()
                        .filter(|n| (1..=u64::from(MAX_READ)).contains(n))
                        .ok_or_else(|| invalid(format!("`limit` must be 1 to {MAX_READ}")))?
                        as u32,
                };
                self.read(conversation, limit).await
            }
            "message.post" => {
                let post = Post::from_json(params).map_err(invalid)?;
                self.post(conversation, post).await.map_err(|message| RpcError { code: rpc::FAILED, message })
            }
            other => Err(RpcError { code: rpc::METHOD_NOT_FOUND, message: format!("no method {other:?}") }),
        }
    }

    async fn read(&self, conversation: &str, limit: u32) -> Result<Value, RpcError> {
        let failed = |e: crate::history::HistoryError| RpcError { code: rpc::FAILED, message: e.to_string() };
        let messages = self.history.messages(conversation, limit, None).await.map_err(failed)?;
        let list: Vec<Value> = messages
            .iter()
            .map(|m| {
                json!({
                    "id": m.id.to_hex(), "from": m.from_user, "outgoing": m.outgoing,
                    "sent_at_ms": m.sent_at_ms, "text": clipped(crate::json::body_line(&m.body)),
                })
            })
            .collect();
        Ok(json!({ "conversation": conversation, "messages": list }))
    }

    /// Posts into `conversation` as the user; answers with what was sent.
    pub(crate) async fn post(&self, conversation: &str, post: Post) -> Result<Value, String> {
        let (reply, answer) = oneshot::channel();
        let req = ControlRequest::Post { to: conversation.to_owned(), text: post.text, card: post.card.map(Box::new) };
        self.calls.send(ControlCall { req, reply }).await.map_err(|_| "the node is stopping".to_owned())?;
        let ControlReply { ok, data, error, .. } = answer.await.map_err(|_| "the node is stopping".to_owned())?;
        if ok { Ok(data) } else { Err(error.unwrap_or_else(|| "the post failed".into())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_are_checked() {
        let p = Post::from_json(&json!({"card": {"title": "Ticket #1"}})).expect("should succeed");
        assert_eq!(p.card.expect("should succeed").title, "Ticket #1");
        assert!(Post::from_json(&json!({})).expect_err("should fail").contains("needs"));
        assert!(Post::from_json(&json!({"text": 3})).expect_err("should fail").contains("string"));
        let bad_link = json!({"card": {"title": "x", "buttons": [{"label": "go", "url": "javascript:alert(1)"}]}});
        assert!(Post::from_json(&bad_link).is_err());
        assert_eq!(permission_for("message.post"), Some(Permission::Post));
        assert_eq!(permission_for("fs.read"), None);
    }
}
