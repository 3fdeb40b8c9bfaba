//! This device's call as the calls task keeps it: the call as a whole and
//! its legs.
//!
//! A **leg** is this device's link with one other participant: a
//! [`signal`](super::signal) state machine, the devices it may talk to,
//! and once connected a media [`Session`]. A one-to-one call has one leg.
//! A group call (up to [`MAX_PARTICIPANTS`]) is a full mesh: the host has a
//! leg to every other member, and each pair of members links up too, so
//! every participant has a leg to every other. The call is connected while
//! any leg is, and over once every leg is.
//!
//! [`Current::shown`] is the call as `skein call` and the desktop app see
//! it: the 1:1 fields as before, and each participant's state, path and
//! figures.

use super::capture::SharedCapture;
use super::media::{IncomingStream, Session};
use super::signal::{Action, End, Incoming, Outgoing, Phase};
use libp2p::PeerId;
use serde_json::{Value, json};
use skein_proto::bytes::{CallId, DeviceId, GroupId};
use skein_proto::call::{CallOutcome, CallSignal, Media};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The most people in a group call, the caller included.
pub const MAX_PARTICIPANTS: usize = 4;

/// A leg's side of the signalling.
pub(super) enum Role {
    /// This device invited.
    Out(Outgoing),
    /// This device was invited.
    In(Incoming),
}

impl Role {
    pub fn phase(&self) -> Phase {
        match self {
            Role::Out(o) => o.phase(),
            Role::In(i) => i.phase(),
        }
    }

    pub fn on_signal(&mut self, from: DeviceId, signal: &CallSignal, now: u64) -> Vec<Action> {
        match self {
            Role::Out(o) => o.on_signal(from, signal, now),
            Role::In(i) => i.on_signal(from, signal, now),
        }
    }

    pub fn hang_up(&mut self, now: u64) -> Vec<Action> {
        match self {
            Role::Out(o) => o.hang_up(now),
            Role::In(i) => i.hang_up(now),
        }
    }

    pub fn tick(&mut self, now: u64) -> Vec<Action> {
        match self {
            Role::Out(o) => o.tick(now),
            Role::In(i) => i.tick(now),
        }
    }

    pub fn accept(&mut self, now: u64) -> Vec<Action> {
        match self {
            Role::In(i) => i.accept(now),
            Role::Out(_) => Vec::new(),
        }
    }
}

/// This device's link with one other participant.
pub(super) struct Leg {
    /// The other participant.
    pub with: String,
    pub role: Role,
    /// Their devices this leg may signal.
    pub peers: HashMap<DeviceId, PeerId>,
    /// The device that invited this one (an incoming leg).
    pub caller_device: Option<DeviceId>,
    pub connected_ms: Option<u64>,
    pub session: Option<Session>,
    /// `direct` or `relayed`, as last seen.
    pub path: Option<String>,
    pub next_stats_ms: u64,
    /// The last statistics line (the final one once the media stopped).
    pub stats: Option<Value>,
    /// The media failed: why, and when to hang up unless the other side does first.
    pub failing: Option<(String, u64)>,
    /// Why the leg is over, once it is.
    pub ended: Option<String>,
    /// Media streams that came before this leg connected here.
    /// (A stream is not `Sync`; the lock makes the task's state so.)
    pub early: Mutex<Vec<IncomingStream>>,
}

impl Leg {
    pub fn new(with: String, role: Role, peers: HashMap<DeviceId, PeerId>, caller_device: Option<DeviceId>) -> Leg {
        Leg {
            with,
            role,
            peers,
            caller_device,
            connected_ms: None,
            session: None,
            path: None,
            next_stats_ms: 0,
            stats: None,
            failing: None,
            ended: None,
            early: Mutex::default(),
        }
    }

    pub fn live(&self) -> bool {
        self.ended.is_none()
    }

    /// The leg's state, as `skein call` names it.
    pub fn state(&self) -> &'static str {
        if self.ended.is_some() {
            return "ended";
        }
        match self.role.phase() {
            Phase::Inviting => "calling",
            Phase::Ringing => "ringing",
            Phase::Answering => "answering",
            Phase::Connected(_) => "connected",
            Phase::Ended(_) => "ended",
        }
    }

    /// The device connected on this leg.
    pub fn device(&self) -> Option<DeviceId> {
        match self.role.phase() {
            Phase::Connected(d) => Some(d),
            _ => None,
        }
    }
}

/// The group a group call started from.
#[derive(Debug, Clone)]
pub(super) struct GroupCall {
    pub id: GroupId,
    pub name: String,
    pub members: Vec<String>,
}

/// This device's call.
pub(super) struct Current {
    pub call: CallId,
    pub media: Media,
    pub group: Option<GroupCall>,
    /// This device placed the call.
    pub host: bool,
    pub legs: Vec<Leg>,
    pub started_ms: u64,
    /// When the first leg connected.
    pub connected_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    /// This call sends the test sources whatever the node's media says.
    pub test_source: bool,
    /// The user hung up here.
    pub hung_up_here: bool,
    /// Why the call is over, once every leg is.
    pub ended: Option<String>,
    /// How the last leg to end ended.
    pub last_end: Option<End>,
    /// The capture every leg sends from, from the first connection on.
    pub capture: Option<Arc<SharedCapture>>,
    /// Every state the call went through, so a caller that looks now and
    /// then misses none.
    pub states: Vec<&'static str>,
}

impl Current {
    pub fn new(call: CallId, media: Media, group: Option<GroupCall>, host: bool, now: u64) -> Current {
        Current {
            call,
            media,
            group,
            host,
            legs: Vec::new(),
            started_ms: now,
            connected_ms: None,
            ended_ms: None,
            test_source: false,
            hung_up_here: false,
            ended: None,
            last_end: None,
            capture: None,
            states: Vec::new(),
        }
    }

    pub fn live(&self) -> bool {
        self.ended.is_none()
    }

    /// The call's state: connected while any leg is.
    pub fn state(&self) -> &'static str {
        if self.ended.is_some() {
            return "ended";
        }
        let states: Vec<&str> = self.legs.iter().filter(|l| l.live()).map(Leg::state).collect();
        ["connected", "answering", "ringing", "calling"].into_iter().find(|s| states.contains(s)).unwrap_or("calling")
    }

    /// The live leg with `user`.
    pub fn leg_with(&self, user: &str) -> Option<usize> {
        self.legs.iter().position(|l| l.live() && l.with == user)
    }

    /// Whether every leg is over.
    pub fn all_ended(&self) -> bool {
        self.legs.iter().all(|l| !l.live())
    }

    /// Why the call ended, from its legs.
    pub fn end_reason(&self) -> String {
        if self.group.is_none()
            && let Some(leg) = self.legs.first()
        {
            return leg.ended.clone().unwrap_or_default();
        }
        // Hanging up before anyone answered is declining or giving up,
        // which the legs say.
        if self.hung_up_here && self.connected_ms.is_some() {
            return "hung up".into();
        }
        if self.connected_ms.is_some() {
            return "hung up by the others".into();
        }
        let reasons: Vec<&str> = self.legs.iter().filter_map(|l| l.ended.as_deref()).collect();
        match reasons.first() {
            Some(first) if reasons.iter().all(|r| r == first) => (*first).to_owned(),
            Some(_) => "nobody answered".into(),
            None => "no one to call".into(),
        }
    }

    /// What the call's history line says.
    pub fn outcome(&self) -> CallOutcome {
        match (self.connected_ms, self.last_end) {
            (Some(t), _) => CallOutcome::Answered { duration_ms: self.ended_ms.unwrap_or(t).saturating_sub(t) },
            (None, Some(End::Declined)) => CallOutcome::Declined,
            (None, Some(End::Busy)) => CallOutcome::Busy,
            _ => CallOutcome::Missed,
        }
    }

    /// Whom the call is with: the user, or the group's conversation.
    pub fn with(&self) -> String {
        match &self.group {
            Some(g) => skein_proto::peer::group_address(&g.id),
            None => self.legs.first().map(|l| l.with.clone()).unwrap_or_default(),
        }
    }

    /// The call as `skein call` shows it.
    pub fn shown(&self) -> Value {
        let state = self.state();
        let mut v = json!({
            "type": "call", "call": self.call.to_hex(), "with": self.with(), "state": state,
            "direction": if self.host { "outgoing" } else { "incoming" },
            "media": media_name(self.media),
            "states": self.states,
            "started_ms": self.started_ms,
        });
        if let Some(p) = self.legs.iter().find(|l| l.live() && l.device().is_some()).and_then(|l| l.path.clone()) {
            v["path"] = json!(p);
        }
        if let Some(g) = &self.group {
            v["group"] = json!(skein_proto::peer::group_address(&g.id));
            v["group_name"] = json!(g.name);
        }
        let participants: Vec<Value> = self
            .legs
            .iter()
            .map(|l| {
                let mut p = json!({"user": l.with, "state": l.state(), "path": l.path});
                if let Some(r) = &l.ended {
                    p["reason"] = json!(r);
                }
                if let Some(s) = &l.stats {
                    p["stats"] = s.clone();
                }
                p
            })
            .collect();
        v["participants"] = Value::Array(participants);
        // The figures of the (first) other side, as a one-to-one call shows them.
        if let Some(s) = self.legs.first().and_then(|l| l.stats.clone()) {
            v["stats"] = s;
        }
        if let Some(reason) = &self.ended {
            v["reason"] = json!(reason);
            v["duration_ms"] = json!(self.connected_ms.zip(self.ended_ms).map(|(t, e)| e.saturating_sub(t)));
            v["connected"] = json!(self.connected_ms.is_some());
        }
        v
    }
}

pub(super) fn media_name(m: Media) -> &'static str {
    match m {
        Media::Audio => "audio",
        Media::Video => "video",
    }
}

/// How a leg ended, in words.
pub(super) fn end_reason(end: End) -> &'static str {
    match end {
        End::HungUp(true) => "hung up",
        End::HungUp(false) => "hung up by the other side",
        End::Declined => "declined",
        End::Busy => "busy in another call",
        End::NoAnswer => "no answer",
        End::Cancelled => "cancelled",
        End::AnsweredElsewhere => "answered on another device",
        End::Missed => "missed",
        End::Lost => "the caller did not confirm the answer",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALL: CallId = CallId([1; 16]);

    /// A leg to `with`'s one device, answered or not.
    fn leg(with: &str, device: u8, answered: bool) -> Leg {
        let d = DeviceId([device; 16]);
        let (mut out, _) = Outgoing::place(CALL, Media::Audio, None, &[d], 0);
        if answered {
            out.on_signal(d, &CallSignal::Accept(CALL), 0);
        }
        Leg::new(with.into(), Role::Out(out), HashMap::new(), None)
    }

    fn group_call() -> Current {
        let group = GroupCall { id: GroupId([9; 16]), name: "team".into(), members: vec!["a".into(), "b".into()] };
        Current::new(CALL, Media::Audio, Some(group), true, 0)
    }

    #[test]
    fn a_group_call_is_connected_while_anyone_is_in_it() {
        let mut c = group_call();
        c.legs = vec![leg("bob", 2, false), leg("carol", 3, true)];
        assert_eq!(c.state(), "connected");
        assert_eq!(c.legs[1].device(), Some(DeviceId([3; 16])));
        c.legs[1].ended = Some("hung up by the other side".into());
        assert_eq!(c.state(), "calling", "carol left; bob's still rings");
        assert!(!c.all_ended());
        c.legs[0].ended = Some("no answer".into());
        assert!(c.all_ended());
        assert_eq!(c.with(), skein_proto::peer::group_address(&GroupId([9; 16])));
    }

    #[test]
    fn a_group_call_ends_as_its_legs_say() {
        let mut c = group_call();
        c.legs = vec![leg("bob", 2, false), leg("carol", 3, false)];
        for l in &mut c.legs {
            l.ended = Some("declined".into());
        }
        assert_eq!(c.end_reason(), "declined", "everyone declined");
        c.legs[1].ended = Some("no answer".into());
        assert_eq!(c.end_reason(), "nobody answered");
        c.hung_up_here = true;
        assert_eq!(c.end_reason(), "nobody answered", "giving up before an answer is not a hang-up");
        c.connected_ms = Some(10);
        assert_eq!(c.end_reason(), "hung up");
        c.hung_up_here = false;
        assert_eq!(c.end_reason(), "hung up by the others");
        c.ended_ms = Some(70_010);
        c.last_end = Some(End::HungUp(false));
        assert_eq!(c.outcome(), CallOutcome::Answered { duration_ms: 70_000 });
    }

    #[test]
    fn a_one_to_one_call_ends_as_its_leg_did() {
        let mut c = Current::new(CALL, Media::Video, None, true, 0);
        c.legs = vec![leg("bob", 2, false)];
        c.legs[0].ended = Some("busy in another call".into());
        assert_eq!((c.end_reason().as_str(), c.with().as_str()), ("busy in another call", "bob"));
        c.last_end = Some(End::Busy);
        assert_eq!(c.outcome(), CallOutcome::Busy);
        c.last_end = Some(End::NoAnswer);
        assert_eq!(c.outcome(), CallOutcome::Missed);
    }
}
