//! The daemon's answers about plugins: a slash command typed as a message
//! (`skein send bob '/ticket open …'`), a message action, what a plugin
//! posts, and the list of plugins. Each waits for a plugin, so each is
//! answered from its own task.

use super::{Node, find_group, is_group_spec, recipient};
use crate::control::{ControlReply, ControlRequest};
use serde_json::json;
use skein_proto::bytes::MailId;
use skein_proto::peer::{MessageBody, group_address};
use tokio::sync::oneshot;

fn answer(r: Result<serde_json::Value, crate::plugins::PluginError>) -> ControlReply {
    r.map_or_else(|e| ControlReply::err(e.code(), e.to_string()), ControlReply::ok)
}

impl Node {
    /// Answers a plugin request (or a plugin's post) on `reply`.
    pub(super) fn answer_plugins(&self, req: ControlRequest, reply: oneshot::Sender<ControlReply>) {
        match req {
            ControlRequest::Plugins => {
                let _ = reply.send(ControlReply::ok(self.plugins.list()));
            }
            ControlRequest::PluginsReload { plugin } => {
                let plugins = self.plugins.clone();
                tokio::spawn(async move {
                    plugins.reload(plugin.as_deref()).await;
                    let _ = reply.send(ControlReply::ok(plugins.list()));
                });
            }
            ControlRequest::PluginAction { plugin, action, message } => {
                let (plugins, history) = (self.plugins.clone(), self.history.clone());
                tokio::spawn(async move {
                    let r = async {
                        let id = MailId::from_hex(&message).ok_or_else(|| {
                            ControlReply::err(
                                "invalid_input",
                                format!("{message:?} is not a message id (32 hex digits)"),
                            )
                        })?;
                        let m = match history.get(id).await {
                            Ok(Some(m)) => m,
                            Ok(None) => {
                                return Err(ControlReply::err(
                                    "not_found",
                                    format!("no message {message} is kept on this device"),
                                ));
                            }
                            Err(e) => return Err(ControlReply::err("internal", e.to_string())),
                        };
                        let about = json!({
                            "id": message, "from": m.from_user, "sent_at_ms": m.sent_at_ms,
                            "text": crate::json::body_line(&m.body),
                        });
                        Ok(answer(plugins.action(&plugin, &action, &m.conversation, about).await))
                    };
                    let _ = reply.send(r.await.unwrap_or_else(|e| e));
                });
            }
            ControlRequest::Post { to, text, card } => {
                let mut bodies = Vec::new();
                if let Some(t) = text {
                    if t.trim().is_empty() || t.len() > skein_proto::peer::MAX_TEXT {
                        let m = format!("the text must be 1 to {} bytes", skein_proto::peer::MAX_TEXT);
                        let _ = reply.send(ControlReply::err("invalid_input", m));
                        return;
                    }
                    bodies.push(MessageBody::Text(t));
                }
                if let Some(c) = card {
                    if let Err(e) = c.check() {
                        let _ = reply.send(ControlReply::err("invalid_input", e));
                        return;
                    }
                    bodies.push(MessageBody::Card(c));
                }
                if bodies.is_empty() {
                    let _ = reply.send(ControlReply::err("invalid_input", "a post needs text or a card"));
                    return;
                }
                self.spawn_deliver(to, bodies, reply);
            }
            other => {
                let _ = reply.send(ControlReply::err("internal", format!("not a plugin request: {other:?}")));
            }
        }
    }

    /// Runs the slash command `/name args` typed to `to` (a user or a group).
    pub(super) fn spawn_command(&self, to: String, name: String, args: String, reply: oneshot::Sender<ControlReply>) {
        let (plugins, groups) = (self.plugins.clone(), self.groups.clone());
        tokio::spawn(async move {
            let conversation = if is_group_spec(&to) {
                find_group(&groups, &to).await.map(|g| group_address(&g.body.group))
            } else {
                recipient(&to)
            };
            let r = match conversation {
                Ok(c) => answer(plugins.command(&c, &name, &args).await),
                Err(e) => e,
            };
            let _ = reply.send(r);
        });
    }
}
