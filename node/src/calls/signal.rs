//! One call's signalling on one device, as a pure state machine: no
//! sockets, no clock. Time comes in as `now` (ms); input through the
//! methods; output as [`Action`]s for the async layer to carry out.
//!
//! - **Caller** ([`Outgoing`]): invites every device of the callee, reports
//!   ringing once one rings, confirms the first device that accepts and
//!   tells the others the call was answered elsewhere. If every device
//!   declines or is busy the call ends so; if none answers within
//!   [`RING_TIMEOUT_MS`] the invites are cancelled.
//! - **Callee** ([`Incoming`]): rings (or answers busy when already in a
//!   call), accepts or declines, and is connected once the caller confirms
//!   its answer. An invite cancelled before it was answered, or one that
//!   rang out, is a missed call to record.
//!
//! Signals from a device that is not part of the call are ignored.

use skein_proto::bytes::{CallId, DeviceId, GroupId};
use skein_proto::call::{CallSignal, CancelReason, Invite, Media, RING_TIMEOUT_MS};
use std::collections::BTreeSet;

/// How long a callee device waits past the ring timeout before giving up
/// on an invite it heard nothing more about.
pub const CALLEE_GRACE_MS: u64 = 5_000;
/// How long an answer waits for the caller's confirmation.
pub const CONFIRM_WITHIN_MS: u64 = 5_000;

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Hung up, by this side (`true`) or the other.
    HungUp(bool),
    /// Every device of the callee declined.
    Declined,
    /// The callee was in another call.
    Busy,
    /// Nobody answered in time.
    NoAnswer,
    /// The caller gave up before an answer.
    Cancelled,
    /// Another device of this user answered.
    AnsweredElsewhere,
    /// This device rang and nobody answered it: a missed call.
    Missed,
    /// The answer was never confirmed.
    Lost,
}

/// Where a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Caller: invites sent, no device rings yet.
    Inviting,
    /// Ringing (on the callee's side: this device; on the caller's: one of theirs).
    Ringing,
    /// Callee: answered, waiting for the caller's confirmation.
    Answering,
    /// Connected with a device; media flows.
    Connected(DeviceId),
    /// Over.
    Ended(End),
}

/// What the call's owner must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `signal` to `device`.
    Send {
        /// The device.
        device: DeviceId,
        /// The signal.
        signal: CallSignal,
    },
    /// Tell the user the call is now in `phase`.
    Report(Phase),
    /// Start audio (and video) with `device`.
    StartMedia(DeviceId),
    /// Stop the media.
    StopMedia,
    /// Record a missed call in the conversation.
    RecordMissed,
}

fn send(device: DeviceId, signal: CallSignal) -> Action {
    Action::Send { device, signal }
}

/// Ends a connected call: hung up here (telling `peer`), or by the other side.
fn hung_up(phase: &mut Phase, call: CallId, here: Option<DeviceId>) -> Vec<Action> {
    *phase = Phase::Ended(End::HungUp(here.is_some()));
    let mut actions: Vec<Action> = here.map(|peer| send(peer, CallSignal::HangUp(call))).into_iter().collect();
    actions.extend([Action::StopMedia, Action::Report(*phase)]);
    actions
}

/// A call this device placed.
#[derive(Debug, Clone)]
pub struct Outgoing {
    call: CallId,
    invited: BTreeSet<DeviceId>,
    refused: BTreeSet<DeviceId>,
    busy: usize,
    phase: Phase,
    deadline_ms: u64,
}

impl Outgoing {
    /// Places call `call` to the devices `callee`: an invite to each.
    pub fn place(
        call: CallId,
        media: Media,
        group: Option<GroupId>,
        callee: &[DeviceId],
        now: u64,
    ) -> (Outgoing, Vec<Action>) {
        let invite = Invite { call, media, group, sent_at_ms: now };
        let invited: BTreeSet<DeviceId> = callee.iter().copied().collect();
        let mut actions: Vec<Action> = invited.iter().map(|d| send(*d, CallSignal::Invite(invite.clone()))).collect();
        let mut out = Outgoing {
            call,
            invited,
            refused: BTreeSet::new(),
            busy: 0,
            phase: Phase::Inviting,
            deadline_ms: now + RING_TIMEOUT_MS,
        };
        if out.invited.is_empty() {
            // No device to ring: as good as unanswered.
            out.phase = Phase::Ended(End::NoAnswer);
            actions.push(Action::Report(out.phase));
        } else {
            actions.push(Action::Report(Phase::Inviting));
        }
        (out, actions)
    }

    /// Where the call is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    fn answering(&self) -> bool {
        matches!(self.phase, Phase::Inviting | Phase::Ringing)
    }

    fn cancel_others(&self, except: Option<DeviceId>, reason: CancelReason) -> Vec<Action> {
        self.invited
            .iter()
            .filter(|d| Some(**d) != except && !self.refused.contains(d))
            .map(|d| send(*d, CallSignal::Cancel { call: self.call, reason }))
            .collect()
    }

    /// A signal from `from`.
    pub fn on_signal(&mut self, from: DeviceId, signal: &CallSignal, _now: u64) -> Vec<Action> {
        if signal.call() != self.call || !self.invited.contains(&from) {
            return Vec::new();
        }
        match signal {
            CallSignal::Ringing(_) if self.phase == Phase::Inviting => {
                self.phase = Phase::Ringing;
                vec![Action::Report(Phase::Ringing)]
            }
            CallSignal::Accept(_) if self.answering() => {
                self.phase = Phase::Connected(from);
                let mut actions = vec![send(from, CallSignal::Confirm(self.call))];
                actions.extend(self.cancel_others(Some(from), CancelReason::AnsweredElsewhere));
                actions.push(Action::StartMedia(from));
                actions.push(Action::Report(self.phase));
                actions
            }
            // Too late: another device has it, or it is over.
            CallSignal::Accept(_) => {
                vec![send(from, CallSignal::Cancel { call: self.call, reason: CancelReason::AnsweredElsewhere })]
            }
            CallSignal::Decline(_) | CallSignal::Busy(_) if self.answering() => {
                if matches!(signal, CallSignal::Busy(_)) {
                    self.busy += 1;
                }
                self.refused.insert(from);
                if self.refused.len() < self.invited.len() {
                    return Vec::new();
                }
                let end = if self.busy > 0 { End::Busy } else { End::Declined };
                self.phase = Phase::Ended(end);
                vec![Action::Report(self.phase)]
            }
            CallSignal::HangUp(_) if self.phase == Phase::Connected(from) => hung_up(&mut self.phase, self.call, None),
            _ => Vec::new(),
        }
    }

    /// The user hangs up (or gives up before an answer).
    pub fn hang_up(&mut self, _now: u64) -> Vec<Action> {
        match self.phase {
            Phase::Connected(peer) => hung_up(&mut self.phase, self.call, Some(peer)),
            Phase::Inviting | Phase::Ringing => {
                let mut actions = self.cancel_others(None, CancelReason::CallerGaveUp);
                self.phase = Phase::Ended(End::Cancelled);
                actions.push(Action::Report(self.phase));
                actions
            }
            _ => Vec::new(),
        }
    }

    /// Time passes.
    pub fn tick(&mut self, now: u64) -> Vec<Action> {
        if !self.answering() || now < self.deadline_ms {
            return Vec::new();
        }
        let mut actions = self.cancel_others(None, CancelReason::NoAnswer);
        self.phase = Phase::Ended(End::NoAnswer);
        actions.push(Action::Report(self.phase));
        actions
    }
}

/// A call to this device.
#[derive(Debug, Clone)]
pub struct Incoming {
    call: CallId,
    caller: DeviceId,
    media: Media,
    phase: Phase,
    deadline_ms: u64,
}

impl Incoming {
    /// An invite from the caller's device `from`. When this device is
    /// already in a call (`busy`) it answers so and keeps nothing.
    pub fn invited(from: DeviceId, invite: &Invite, busy: bool, now: u64) -> (Option<Incoming>, Vec<Action>) {
        if busy {
            return (None, vec![send(from, CallSignal::Busy(invite.call))]);
        }
        let call = Incoming {
            call: invite.call,
            caller: from,
            media: invite.media,
            phase: Phase::Ringing,
            deadline_ms: now + RING_TIMEOUT_MS + CALLEE_GRACE_MS,
        };
        (Some(call), vec![send(from, CallSignal::Ringing(invite.call)), Action::Report(Phase::Ringing)])
    }

    /// Where the call is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// What the call carries.
    pub fn media(&self) -> Media {
        self.media
    }

    /// The user answers.
    pub fn accept(&mut self, now: u64) -> Vec<Action> {
        if self.phase != Phase::Ringing {
            return Vec::new();
        }
        self.phase = Phase::Answering;
        self.deadline_ms = now + CONFIRM_WITHIN_MS;
        vec![send(self.caller, CallSignal::Accept(self.call)), Action::Report(Phase::Answering)]
    }

    /// The user declines.
    pub fn decline(&mut self) -> Vec<Action> {
        if self.phase != Phase::Ringing {
            return Vec::new();
        }
        self.phase = Phase::Ended(End::Declined);
        vec![send(self.caller, CallSignal::Decline(self.call)), Action::Report(self.phase)]
    }

    /// A signal from `from`.
    pub fn on_signal(&mut self, from: DeviceId, signal: &CallSignal, _now: u64) -> Vec<Action> {
        if signal.call() != self.call || from != self.caller {
            return Vec::new();
        }
        match (signal, self.phase) {
            (CallSignal::Confirm(_), Phase::Answering) => {
                self.phase = Phase::Connected(from);
                vec![Action::StartMedia(from), Action::Report(self.phase)]
            }
            (CallSignal::Cancel { reason, .. }, Phase::Ringing | Phase::Answering) => {
                let end = match reason {
                    CancelReason::AnsweredElsewhere => End::AnsweredElsewhere,
                    CancelReason::CallerGaveUp | CancelReason::NoAnswer if self.phase == Phase::Ringing => End::Missed,
                    CancelReason::CallerGaveUp | CancelReason::NoAnswer => End::Cancelled,
                };
                self.phase = Phase::Ended(end);
                let mut actions = vec![Action::Report(self.phase)];
                if end == End::Missed {
                    actions.push(Action::RecordMissed);
                }
                actions
            }
            (CallSignal::HangUp(_), Phase::Connected(_)) => hung_up(&mut self.phase, self.call, None),
            _ => Vec::new(),
        }
    }

    /// The user hangs up.
    pub fn hang_up(&mut self, _now: u64) -> Vec<Action> {
        match self.phase {
            Phase::Connected(peer) => hung_up(&mut self.phase, self.call, Some(peer)),
            Phase::Ringing => self.decline(),
            _ => Vec::new(),
        }
    }

    /// Time passes: an invite heard nothing more about rings out (a missed
    /// call), and an answer never confirmed is given up.
    pub fn tick(&mut self, now: u64) -> Vec<Action> {
        if now < self.deadline_ms {
            return Vec::new();
        }
        match self.phase {
            Phase::Ringing => {
                self.phase = Phase::Ended(End::Missed);
                vec![Action::Report(self.phase), Action::RecordMissed]
            }
            Phase::Answering => {
                self.phase = Phase::Ended(End::Lost);
                vec![Action::Report(self.phase)]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
