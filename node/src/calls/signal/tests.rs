//! The signalling state machines driven against each other in memory, on
//! virtual time: a caller and two devices of the callee.

use super::*;

const ALICE: DeviceId = DeviceId([0xa1; 16]);
const BOB_LAPTOP: DeviceId = DeviceId([0xb1; 16]);
const BOB_PHONE: DeviceId = DeviceId([0xb2; 16]);
const EVE: DeviceId = DeviceId([0xee; 16]);
const CALL: CallId = CallId([7; 16]);

/// A caller and the callee's devices, with the signals between them.
struct Net {
    alice: Outgoing,
    bob: Vec<(DeviceId, Option<Incoming>)>,
    /// Everything each side reported or was asked to do, in order.
    seen: Vec<(DeviceId, Action)>,
}

impl Net {
    fn new(now: u64) -> Net {
        let (alice, actions) = Outgoing::place(CALL, Media::Video, None, &[BOB_LAPTOP, BOB_PHONE], now);
        let mut net = Net { alice, bob: vec![(BOB_LAPTOP, None), (BOB_PHONE, None)], seen: Vec::new() };
        net.run(ALICE, actions, now);
        net
    }

    /// Carries out `actions` of `from`, delivering each signal, until quiet.
    fn run(&mut self, from: DeviceId, actions: Vec<Action>, now: u64) {
        let mut queue: Vec<(DeviceId, Action)> = actions.into_iter().map(|a| (from, a)).collect();
        while !queue.is_empty() {
            let (by, action) = queue.remove(0);
            self.seen.push((by, action.clone()));
            let Action::Send { device, signal } = action else { continue };
            let more = if device == ALICE {
                self.alice.on_signal(by, &signal, now)
            } else {
                let slot = self.bob.iter_mut().find(|(d, _)| *d == device).expect("a device of bob");
                match (&mut slot.1, &signal) {
                    (None, CallSignal::Invite(invite)) => {
                        let (call, actions) = Incoming::invited(by, invite, false, now);
                        slot.1 = call;
                        actions
                    }
                    (Some(call), _) => call.on_signal(by, &signal, now),
                    (None, _) => Vec::new(),
                }
            };
            queue.extend(more.into_iter().map(|a| (device, a)));
        }
    }

    fn bob(&mut self, device: DeviceId) -> &mut Incoming {
        self.bob.iter_mut().find(|(d, _)| *d == device).and_then(|(_, c)| c.as_mut()).expect("ringing")
    }

    fn did(&self, device: DeviceId, want: &Action) -> bool {
        self.seen.iter().any(|(d, a)| *d == device && a == want)
    }
}

#[test]
fn the_first_device_to_answer_gets_the_call_and_the_other_stops_ringing() {
    let mut net = Net::new(0);
    assert_eq!(net.alice.phase(), Phase::Ringing, "both devices ring, and alice hears it");
    assert_eq!(net.bob(BOB_PHONE).phase(), Phase::Ringing);
    let actions = net.bob(BOB_LAPTOP).accept(1_000);
    net.run(BOB_LAPTOP, actions, 1_000);
    assert_eq!(net.alice.phase(), Phase::Connected(BOB_LAPTOP));
    assert_eq!(net.bob(BOB_LAPTOP).phase(), Phase::Connected(ALICE));
    assert_eq!(net.bob(BOB_PHONE).phase(), Phase::Ended(End::AnsweredElsewhere));
    assert!(net.did(ALICE, &Action::StartMedia(BOB_LAPTOP)) && net.did(BOB_LAPTOP, &Action::StartMedia(ALICE)));
    assert!(!net.did(BOB_PHONE, &Action::RecordMissed), "answered elsewhere is no missed call");
    // The phone answers a moment too late: it is told so, and nothing changes.
    let late = net.bob(BOB_PHONE).accept(1_100);
    assert!(late.is_empty(), "an ended call does not answer");
    let told = net.alice.on_signal(BOB_PHONE, &CallSignal::Accept(CALL), 1_100);
    assert_eq!(told, vec![send(BOB_PHONE, CallSignal::Cancel { call: CALL, reason: CancelReason::AnsweredElsewhere })]);
    assert_eq!(net.alice.phase(), Phase::Connected(BOB_LAPTOP));
    // Bob hangs up: both ends stop.
    let actions = net.bob(BOB_LAPTOP).hang_up(60_000);
    net.run(BOB_LAPTOP, actions, 60_000);
    assert_eq!(net.alice.phase(), Phase::Ended(End::HungUp(false)));
    assert_eq!(net.bob(BOB_LAPTOP).phase(), Phase::Ended(End::HungUp(true)));
    assert!(net.did(ALICE, &Action::StopMedia));
}

#[test]
fn unanswered_calls_ring_out_and_are_missed_on_every_device() {
    let mut net = Net::new(0);
    assert!(net.alice.tick(RING_TIMEOUT_MS - 1).is_empty());
    let actions = net.alice.tick(RING_TIMEOUT_MS);
    net.run(ALICE, actions, RING_TIMEOUT_MS);
    assert_eq!(net.alice.phase(), Phase::Ended(End::NoAnswer));
    for d in [BOB_LAPTOP, BOB_PHONE] {
        assert_eq!(net.bob(d).phase(), Phase::Ended(End::Missed));
        assert!(net.did(d, &Action::RecordMissed));
    }
    assert!(net.alice.tick(RING_TIMEOUT_MS + 1).is_empty(), "it ends once");
}

#[test]
fn a_callee_that_never_hears_the_cancel_still_rings_out() {
    let (_, actions) = Incoming::invited(ALICE, &invite(), false, 0);
    assert_eq!(actions[0], send(ALICE, CallSignal::Ringing(CALL)));
    let (bob, _) = Incoming::invited(ALICE, &invite(), false, 0);
    let mut bob = bob.expect("ringing");
    assert!(bob.tick(RING_TIMEOUT_MS + CALLEE_GRACE_MS - 1).is_empty());
    assert_eq!(
        bob.tick(RING_TIMEOUT_MS + CALLEE_GRACE_MS),
        vec![Action::Report(Phase::Ended(End::Missed)), Action::RecordMissed]
    );
    // An answer never confirmed is given up.
    let (bob2, _) = Incoming::invited(ALICE, &invite(), false, 0);
    let mut bob2 = bob2.expect("ringing");
    bob2.accept(10);
    assert_eq!(bob2.tick(10 + CONFIRM_WITHIN_MS), vec![Action::Report(Phase::Ended(End::Lost))]);
}

fn invite() -> Invite {
    Invite { call: CALL, media: Media::Audio, group: None, sent_at_ms: 0 }
}

#[test]
fn declines_busy_and_giving_up() {
    // Both decline: declined.
    let mut net = Net::new(0);
    for d in [BOB_LAPTOP, BOB_PHONE] {
        let actions = net.bob(d).decline();
        net.run(d, actions, 5);
    }
    assert_eq!(net.alice.phase(), Phase::Ended(End::Declined));
    // One declines, the other is busy: busy.
    let (mut alice, _) = Outgoing::place(CALL, Media::Audio, None, &[BOB_LAPTOP, BOB_PHONE], 0);
    assert!(alice.on_signal(BOB_LAPTOP, &CallSignal::Decline(CALL), 1).is_empty(), "one device still rings");
    alice.on_signal(BOB_PHONE, &CallSignal::Busy(CALL), 2);
    assert_eq!(alice.phase(), Phase::Ended(End::Busy));
    // A busy device answers so and keeps nothing.
    let (call, actions) = Incoming::invited(ALICE, &invite(), true, 0);
    assert!(call.is_none() && actions == vec![send(ALICE, CallSignal::Busy(CALL))]);
    // The caller gives up: a missed call on each device.
    let mut net = Net::new(0);
    let actions = net.alice.hang_up(3_000);
    net.run(ALICE, actions, 3_000);
    assert_eq!(net.alice.phase(), Phase::Ended(End::Cancelled));
    assert!(net.did(BOB_PHONE, &Action::RecordMissed) && net.did(BOB_LAPTOP, &Action::RecordMissed));
}

#[test]
fn devices_outside_the_call_and_other_calls_change_nothing() {
    let mut net = Net::new(0);
    assert!(net.alice.on_signal(EVE, &CallSignal::Accept(CALL), 1).is_empty(), "eve was not invited");
    assert!(net.alice.on_signal(BOB_LAPTOP, &CallSignal::Accept(CallId([8; 16])), 1).is_empty(), "another call");
    assert!(net.bob(BOB_PHONE).on_signal(EVE, &CallSignal::Confirm(CALL), 1).is_empty(), "eve is not the caller");
    assert_eq!(net.alice.phase(), Phase::Ringing);
    // A confirmation that was never asked for connects nothing.
    assert!(net.bob(BOB_PHONE).on_signal(ALICE, &CallSignal::Confirm(CALL), 1).is_empty());
    assert_eq!(net.bob(BOB_PHONE).phase(), Phase::Ringing);
    // Nobody to call: over at once.
    let (alone, _) = Outgoing::place(CALL, Media::Audio, None, &[], 0);
    assert_eq!(alone.phase(), Phase::Ended(End::NoAnswer));
}
