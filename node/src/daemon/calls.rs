//! The daemon's answers about calls: place one (to a user, or to a group
//! this user is in), answer, hang up, mute or turn the camera off, the
//! devices calls use, and the current call's state. Placing a call looks
//! the callees' devices up and dials them, so it is answered from its own
//! task.

use super::{Node, is_group_spec, recipient, sendable_group};
use crate::control::{ControlReply, ControlRequest};
use serde_json::Value;
use skein_proto::call::Media;
use tokio::sync::oneshot;

fn answer(r: Result<Value, String>, code: &str) -> ControlReply {
    r.map_or_else(|e| ControlReply::err(code, e), ControlReply::ok)
}

impl Node {
    /// Answers a call request on `reply`.
    pub(super) fn answer_calls(&self, req: ControlRequest, reply: oneshot::Sender<ControlReply>) {
        let calls = self.calls.clone();
        let media = |audio_only: bool| if audio_only { Media::Audio } else { Media::Video };
        match req {
            ControlRequest::Call { to, audio_only, test_source } => {
                if is_group_spec(to.trim()) {
                    let (groups, me) = (self.groups.clone(), self.me.clone());
                    tokio::spawn(async move {
                        let b = match sendable_group(&groups, to.trim(), &me).await {
                            Ok(b) => b,
                            Err(e) => {
                                let _ = reply.send(e);
                                return;
                            }
                        };
                        let placed = calls.place_group(b.group, &b.name, &b.members, media(audio_only), test_source);
                        let _ = reply.send(answer(placed.await, "unavailable"));
                    });
                    return;
                }
                let to = match recipient(&to) {
                    Ok(t) => t,
                    Err(e) => {
                        let _ = reply.send(e);
                        return;
                    }
                };
                tokio::spawn(async move {
                    let _ = reply.send(answer(calls.place(&to, media(audio_only), test_source).await, "unavailable"));
                });
            }
            ControlRequest::Answer { audio_only, test_source } => {
                tokio::spawn(async move {
                    let media = audio_only.then_some(Media::Audio);
                    let _ = reply.send(answer(calls.answer(media, test_source).await, "not_found"));
                });
            }
            ControlRequest::HangUp => {
                tokio::spawn(async move {
                    let _ = reply.send(answer(calls.hang_up().await, "not_found"));
                });
            }
            ControlRequest::CallControls { muted, camera } => {
                tokio::spawn(async move {
                    let _ = reply.send(answer(calls.controls(muted, camera).await, "not_found"));
                });
            }
            ControlRequest::CallDevices => {
                tokio::spawn(async move {
                    let _ = reply.send(answer(calls.devices(None).await, "unavailable"));
                });
            }
            ControlRequest::SetCallDevices { microphone, camera } => {
                tokio::spawn(async move {
                    let _ = reply.send(answer(calls.devices(Some((microphone, camera))).await, "not_found"));
                });
            }
            ControlRequest::CallStatus => {
                let _ = reply.send(ControlReply::ok(calls.status()));
            }
            other => {
                let _ = reply.send(ControlReply::err("internal", format!("not a call request: {other:?}")));
            }
        }
    }
}
