//! Call signalling between devices, carried over the mesh like messages:
//! the caller's device invites every device of the callee; each rings and
//! says so; the first to accept is confirmed and the others are told the
//! call was answered elsewhere; either side hangs up. An invite nobody
//! answers within [`RING_TIMEOUT_MS`] is cancelled, and the callee's
//! devices record a missed call.
//!
//! What each side does with these is the pure state machine in the node
//! (`skein_node::calls`); this module is only the wire shapes.

use crate::bytes::{CallId, DeviceId, GroupId};
use serde::{Deserialize, Serialize};

/// How long an invite rings before the caller gives up.
pub const RING_TIMEOUT_MS: u64 = 30_000;
/// Most people in one call (a full mesh of devices).
pub const MAX_PARTICIPANTS: usize = 4;

/// What a call carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Media {
    /// Audio only.
    Audio,
    /// Audio and video.
    Video,
}

/// Why a caller withdrew an invite from a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CancelReason {
    /// The caller hung up before anyone answered.
    CallerGaveUp,
    /// Another device of the callee answered first.
    AnsweredElsewhere,
    /// Nobody answered within [`RING_TIMEOUT_MS`].
    NoAnswer,
}

/// An invitation to a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// The call.
    pub call: CallId,
    /// What it carries.
    pub media: Media,
    /// The group it was started from, for a group call.
    pub group: Option<GroupId>,
    /// When the caller placed it, ms since the Unix epoch.
    pub sent_at_ms: u64,
}

/// One signal about a call, from one device to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallSignal {
    /// Caller to each callee device: ring.
    Invite(Invite),
    /// Callee device to caller: this device is ringing.
    Ringing(CallId),
    /// Callee device to caller: this device answers.
    Accept(CallId),
    /// Caller to the device whose answer came first: the call is yours.
    Confirm(CallId),
    /// Callee device to caller: the user declined.
    Decline(CallId),
    /// Callee device to caller: already in another call.
    Busy(CallId),
    /// Caller to a callee device: stop ringing.
    Cancel {
        /// The call.
        call: CallId,
        /// Why.
        reason: CancelReason,
    },
    /// Either side, once connected: the call is over.
    HangUp(CallId),
    /// The host of a group call to each participant's device, whenever
    /// someone joins: who is in the call now. Each pair of participants
    /// links up directly (a full mesh): the device with the smaller id
    /// invites the other, which answers by itself.
    Roster {
        /// The call.
        call: CallId,
        /// Everyone connected to the host, and the host.
        members: Vec<Participant>,
    },
}

/// One participant of a group call: a user and the device they are on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// The user.
    pub user: String,
    /// Their device in the call.
    pub device: DeviceId,
}

impl CallSignal {
    /// The call the signal is about.
    pub fn call(&self) -> CallId {
        match self {
            CallSignal::Invite(i) => i.call,
            CallSignal::Ringing(c)
            | CallSignal::Accept(c)
            | CallSignal::Confirm(c)
            | CallSignal::Decline(c)
            | CallSignal::Busy(c)
            | CallSignal::HangUp(c)
            | CallSignal::Cancel { call: c, .. }
            | CallSignal::Roster { call: c, .. } => *c,
        }
    }
}

/// How a call ended, as its history line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallOutcome {
    /// Answered, then hung up after this long.
    Answered {
        /// How long the call lasted, in ms.
        duration_ms: u64,
    },
    /// Nobody answered (the caller gave up, or it rang out).
    Missed,
    /// The callee declined.
    Declined,
    /// The callee was in another call.
    Busy,
}

/// A call's line in a conversation's history: sent by the caller's device
/// as a message once the call ends, so every device of both users (and
/// the mailbox, for those offline) shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The call.
    pub call: CallId,
    /// What it carried.
    pub media: Media,
    /// How it ended.
    pub outcome: CallOutcome,
}

impl CallRecord {
    /// The message id of a call's record: the same on every device that
    /// makes one (a callee device that rang out makes its own), so each
    /// keeps one line per call.
    pub fn message_id(call: &CallId) -> crate::bytes::MailId {
        let mut id = [0u8; 16];
        for (i, b) in call.0.iter().enumerate() {
            id[i] = b ^ 0x5c;
        }
        crate::bytes::MailId(id)
    }
}
