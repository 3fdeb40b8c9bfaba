//! Property tests: every message survives encode/decode, frames survive any
//! split of the byte stream, and hostile bytes never panic a decoder or make
//! it buffer past its bound.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use serde::{Serialize, de::DeserializeOwned};
use skein_proto::bytes::{DeviceId, GroupId, MailId, PublicKey, SessionToken, Signature};
use skein_proto::control::*;
use skein_proto::device::{DeviceCert, DeviceCertBody};
use skein_proto::frame::{decode_payload, encode_frame, encode_payload};
use skein_proto::group::{GroupChange, GroupEvent, GroupKind, LoggedChange, MembershipBody, MembershipCert};
use skein_proto::limits::{FRAME_HEADER_LEN, MAX_CONTROL_FRAME};
use skein_proto::{ErrorBody, ErrorCode, FrameDecoder, FrameError};
use std::fmt::Debug;

// ---- strategies -----------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    any::<String>()
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    option::of(text())
}

fn blob() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..64)
}

fn device_id() -> impl Strategy<Value = DeviceId> {
    prop::array::uniform16(any::<u8>()).prop_map(DeviceId)
}

fn mail_id() -> impl Strategy<Value = MailId> {
    prop::array::uniform16(any::<u8>()).prop_map(MailId)
}

fn public_key() -> impl Strategy<Value = PublicKey> {
    prop::array::uniform32(any::<u8>()).prop_map(PublicKey)
}

fn token() -> impl Strategy<Value = SessionToken> {
    prop::array::uniform32(any::<u8>()).prop_map(SessionToken)
}

fn signature() -> impl Strategy<Value = Signature> {
    (prop::array::uniform32(any::<u8>()), prop::array::uniform32(any::<u8>())).prop_map(|(a, b)| {
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&a);
        sig[32..].copy_from_slice(&b);
        Signature(sig)
    })
}

fn presence_status() -> impl Strategy<Value = PresenceStatus> {
    prop_oneof![
        Just(PresenceStatus::Offline),
        Just(PresenceStatus::Online),
        Just(PresenceStatus::Away),
        Just(PresenceStatus::Busy),
    ]
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    use ErrorCode::*;
    prop::sample::select(vec![
        Malformed,
        UnsupportedVersion,
        NotAuthenticated,
        BadCredentials,
        AccountDisabled,
        Throttled,
        SessionExpired,
        SessionRevoked,
        NotFound,
        PermissionDenied,
        MailboxFull,
        TooLarge,
        Conflict,
        InvalidInput,
        Unsupported,
        Unavailable,
        Internal,
        PasswordChangeRequired,
    ])
}

fn error_body() -> impl Strategy<Value = ErrorBody> {
    (error_code(), text(), option::of(any::<u32>())).prop_map(|(code, message, retry_after_ms)| ErrorBody {
        code,
        message,
        retry_after_ms,
    })
}

fn cert() -> impl Strategy<Value = DeviceCert> {
    let body =
        (any::<u8>(), any::<u64>(), text(), text(), device_id(), blob(), public_key(), any::<u64>(), any::<u64>())
            .prop_map(|(version, serial, org, user, device_id, peer_id, x25519, issued_at_ms, expires_at_ms)| {
                DeviceCertBody { version, serial, org, user, device_id, peer_id, x25519, issued_at_ms, expires_at_ms }
            });
    (body, signature()).prop_map(|(body, signature)| DeviceCert { body, signature })
}

fn device_hello() -> impl Strategy<Value = DeviceHello> {
    (device_id(), text(), blob(), public_key(), blob())
        .prop_map(|(device_id, name, peer_id, x25519, proof)| DeviceHello { device_id, name, peer_id, x25519, proof })
}

fn addresses() -> impl Strategy<Value = Addresses> {
    (vec(text(), 0..3), vec(text(), 0..3), vec(text(), 0..3)).prop_map(|(listen, observed, relayed)| Addresses {
        listen,
        observed,
        relayed,
    })
}

fn user_entry() -> impl Strategy<Value = UserEntry> {
    (text(), text(), opt_text(), opt_text(), opt_text(), opt_text(), any::<bool>(), presence_status(), any::<u64>())
        .prop_map(|(name, display_name, department, title, email, phone, disabled, status, last_seen_ms)| UserEntry {
            name,
            display_name,
            department,
            title,
            email,
            phone,
            disabled,
            status,
            last_seen_ms,
        })
}

fn presence_entry() -> impl Strategy<Value = PresenceEntry> {
    (text(), presence_status(), opt_text(), any::<u64>(), any::<u16>()).prop_map(
        |(user, status, note, last_seen_ms, devices)| PresenceEntry { user, status, note, last_seen_ms, devices },
    )
}

fn admin_request() -> impl Strategy<Value = AdminRequest> {
    let new_user = (text(), text(), text(), opt_text(), opt_text(), opt_text(), opt_text(), any::<bool>()).prop_map(
        |(name, display_name, password, department, title, email, phone, admin)| NewUser {
            name,
            display_name,
            password,
            department,
            title,
            email,
            phone,
            admin,
        },
    );
    prop_oneof![
        new_user.prop_map(AdminRequest::AddUser),
        (text(), any::<bool>()).prop_map(|(user, disabled)| AdminRequest::SetDisabled { user, disabled }),
        (text(), text()).prop_map(|(user, password)| AdminRequest::SetPassword { user, password }),
        text().prop_map(|path| AdminRequest::AddDepartment { path }),
        (text(), device_id()).prop_map(|(user, device_id)| AdminRequest::RevokeDevice { user, device_id }),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    let sealed_item =
        || (mail_id(), device_id(), blob()).prop_map(|(id, to_device, sealed)| SealedItem { id, to_device, sealed });
    prop_oneof![
        (text(), text(), device_hello()).prop_map(|(user, password, device)| Request::Login(Login {
            user,
            password,
            device
        })),
        (token(), device_hello()).prop_map(|(token, device)| Request::Resume(Resume { token, device })),
        Just(Request::Logout),
        (presence_status(), opt_text()).prop_map(|(status, note)| Request::SetPresence(SetPresence { status, note })),
        prop_oneof![Just(Subscription::All), vec(text(), 0..4).prop_map(Subscription::Users)]
            .prop_map(Request::SubscribePresence),
        Just(Request::UnsubscribePresence),
        (opt_text(), opt_text(), any::<u32>(), any::<u32>()).prop_map(|(text, department, offset, limit)| {
            Request::Directory(DirectoryQuery { text, department, offset, limit })
        }),
        Just(Request::Departments),
        text().prop_map(|user| Request::LookupPeer { user }),
        addresses().prop_map(Request::ReportAddresses),
        (text(), vec(sealed_item(), 0..3))
            .prop_map(|(to_user, items)| Request::MailboxPut(MailboxPut { to_user, items })),
        vec((text(), vec(sealed_item(), 0..3)).prop_map(|(to_user, items)| MailboxPut { to_user, items }), 0..3)
            .prop_map(Request::MailboxPutMany),
        any::<u32>().prop_map(|limit| Request::MailboxFetch { limit }),
        vec(mail_id(), 0..4).prop_map(|ids| Request::MailboxAck { ids }),
        admin_request().prop_map(Request::Admin),
        any::<u64>().prop_map(|nonce| Request::Ping { nonce }),
        (text(), text()).prop_map(|(old, new)| Request::ChangePassword { old, new }),
        (text(), vec(text(), 0..4), any::<bool>()).prop_map(|(name, members, org)| Request::GroupCreate(GroupCreate {
            name,
            members,
            org
        })),
        Just(Request::GroupList),
        vec(text(), 0..4).prop_map(|users| Request::LookupPeers { users }),
        (any::<[u8; 16]>(), any::<u64>())
            .prop_map(|(g, after_version)| Request::GroupChanges { group: GroupId(g), after_version }),
        (any::<[u8; 16]>(), group_update()).prop_map(|(g, update)| Request::GroupUpdate { group: GroupId(g), update }),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    let session = (token(), any::<u64>(), user_entry(), any::<bool>(), cert(), public_key(), any::<bool>()).prop_map(
        |(token, expires_at_ms, user, admin, device_cert, org_signing_key, password_change_required)| {
            Response::Session(Box::new(Session {
                token,
                expires_at_ms,
                user,
                admin,
                device_cert,
                org_signing_key,
                password_change_required,
            }))
        },
    );
    let department =
        (text(), opt_text(), any::<u32>()).prop_map(|(path, parent, members)| Department { path, parent, members });
    let peer_info = || {
        let device_info = (device_id(), text(), cert(), addresses(), presence_status()).prop_map(
            |(device_id, name, cert, addresses, status)| DeviceInfo { device_id, name, cert, addresses, status },
        );
        (text(), vec(device_info, 0..2), vec(cert(), 0..2)).prop_map(|(user, online, known)| PeerInfo {
            user,
            online,
            known,
        })
    };
    let mail_item = (mail_id(), text(), blob(), any::<u64>())
        .prop_map(|(id, from_user, sealed, stored_at_ms)| MailItem { id, from_user, sealed, stored_at_ms });
    prop_oneof![
        Just(Response::Ok),
        session,
        vec(presence_entry(), 0..3).prop_map(Response::PresenceSnapshot),
        (vec(user_entry(), 0..3), any::<u32>())
            .prop_map(|(users, total)| Response::Directory(DirectoryPage { users, total })),
        vec(department, 0..3).prop_map(Response::Departments),
        peer_info().prop_map(Response::Peer),
        vec(peer_info(), 0..3).prop_map(Response::Peers),
        vec(
            (any::<u64>(), text(), any::<u64>()).prop_map(|(version, actor, at_ms)| LoggedChange {
                version,
                actor,
                change: GroupChange::Left,
                at_ms
            }),
            0..3
        )
        .prop_map(Response::GroupChanges),
        any::<u32>().prop_map(|stored| Response::MailboxStored { stored }),
        vec(prop_oneof![any::<u32>().prop_map(Ok), error_body().prop_map(Err)], 0..3)
            .prop_map(Response::MailboxStoredEach),
        vec(mail_item, 0..3).prop_map(Response::Mail),
        any::<u32>().prop_map(|removed| Response::MailboxAcked { removed }),
        prop_oneof![Just(AdminResponse::Done), any::<u32>().prop_map(|count| AdminResponse::SessionsEnded { count }),]
            .prop_map(Response::Admin),
        (any::<u64>(), any::<u64>()).prop_map(|(nonce, server_time_ms)| Response::Pong { nonce, server_time_ms }),
        vec(membership_cert(), 0..3).prop_map(Response::Groups),
        group_event().prop_map(Response::Group),
    ]
}

fn group_update() -> impl Strategy<Value = GroupUpdate> {
    prop_oneof![
        vec(text(), 0..3).prop_map(GroupUpdate::Add),
        vec(text(), 0..3).prop_map(GroupUpdate::Remove),
        Just(GroupUpdate::Leave),
        text().prop_map(GroupUpdate::Rename),
        Just(GroupUpdate::Close),
    ]
}

fn membership_cert() -> impl Strategy<Value = MembershipCert> {
    let kind = prop_oneof![
        Just(GroupKind::Org),
        text().prop_map(|path| GroupKind::Department { path }),
        text().prop_map(|owner| GroupKind::Discussion { owner }),
    ];
    let body = (
        any::<u8>(),
        text(),
        any::<[u8; 16]>(),
        any::<u64>(),
        text(),
        kind,
        vec(text(), 0..4),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(format, org, g, version, name, kind, members, closed, issued_at_ms)| MembershipBody {
            format,
            org,
            group: GroupId(g),
            version,
            name,
            kind,
            members,
            closed,
            issued_at_ms,
        });
    (body, signature()).prop_map(|(body, signature)| MembershipCert { body, signature })
}

fn group_event() -> impl Strategy<Value = GroupEvent> {
    let change = prop_oneof![
        Just(GroupChange::Created),
        vec(text(), 0..3).prop_map(GroupChange::Added),
        vec(text(), 0..3).prop_map(GroupChange::Removed),
        Just(GroupChange::Left),
        text().prop_map(|from| GroupChange::Renamed { from }),
        Just(GroupChange::Closed),
    ];
    (text(), change, membership_cert()).prop_map(|(actor, change, cert)| GroupEvent { actor, change, cert })
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        presence_entry().prop_map(Event::Presence),
        error_body().prop_map(Event::SessionEnded),
        any::<u32>().prop_map(|count| Event::MailWaiting { count }),
        any::<u32>().prop_map(|reconnect_after_ms| Event::ShuttingDown { reconnect_after_ms }),
        (text(), any::<[u8; 16]>(), vec(any::<u8>(), 0..40)).prop_map(|(user, d, peer_id)| Event::DeviceRevoked(
            RevokedDevice { user, device_id: DeviceId(d), peer_id }
        )),
        group_event().prop_map(Event::GroupChanged),
    ]
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        (any::<u16>(), any::<u16>(), text()).prop_map(|(min_version, max_version, agent)| ClientFrame::Hello(Hello {
            min_version,
            max_version,
            agent
        })),
        (any::<u32>(), request()).prop_map(|(id, req)| ClientFrame::Request { id, req }),
    ]
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    let welcome = (any::<u16>(), text(), text(), any::<u64>(), any::<u32>(), any::<[u8; 32]>()).prop_map(
        |(version, org, tracker_id, server_time_ms, idle_timeout_ms, nonce)| {
            ServerFrame::Welcome(Welcome { version, org, tracker_id, server_time_ms, idle_timeout_ms, nonce })
        },
    );
    let result = prop_oneof![response().prop_map(Ok), error_body().prop_map(Err)];
    prop_oneof![
        welcome,
        error_body().prop_map(ServerFrame::Reject),
        (any::<u32>(), result).prop_map(|(id, result)| ServerFrame::Response { id, result }),
        event().prop_map(ServerFrame::Event),
    ]
}

// ---- helpers --------------------------------------------------------------

fn assert_round_trip<T>(value: &T) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let bytes = encode_payload(value).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let decoded: T = decode_payload(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&decoded, value);
    // A payload is self-delimiting: no proper prefix decodes, and trailing
    // bytes are refused.
    for cut in [0, bytes.len() / 2, bytes.len() - 1] {
        prop_assert!(decode_payload::<T>(&bytes[..cut]).is_err(), "prefix of {} bytes decoded", cut);
    }
    let mut longer = bytes;
    longer.push(0);
    prop_assert!(decode_payload::<T>(&longer).is_err());
    Ok(())
}

/// Feeds `stream` to a decoder in pieces cut at `cuts` (sorted, deduplicated
/// modulo the length) and returns the decoded messages.
fn decode_split<T: DeserializeOwned>(stream: &[u8], cuts: &[usize], max: usize) -> Result<Vec<T>, FrameError> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    cuts.push(stream.len());
    cuts.sort_unstable();
    let mut decoder = FrameDecoder::new(max);
    let mut out = Vec::new();
    let mut start = 0;
    for end in cuts {
        decoder.push(&stream[start..end])?;
        start = end;
        while let Some(msg) = decoder.next_message()? {
            out.push(msg);
        }
    }
    assert_eq!(decoder.buffered(), 0);
    Ok(out)
}

fn concat_frames<T: Serialize>(msgs: &[T]) -> Vec<u8> {
    msgs.iter().flat_map(|m| encode_frame(m, MAX_CONTROL_FRAME).expect("encode")).collect()
}

// ---- properties -----------------------------------------------------------

/// How many `Request` variants this build knows (the golden tests pin
/// each); the first unknown variant index is this.
const KNOWN_REQUESTS: u8 = 25;

/// Pins [`KNOWN_REQUESTS`] to the enum: the last variant's tag is one
/// below it, so adding a variant without raising the count fails here
/// every time, not only when the property below happens to draw it.
#[test]
fn known_requests_counts_every_variant() {
    let bytes = encode_payload(&Request::Trackers).expect("encode");
    assert_eq!(
        bytes,
        [KNOWN_REQUESTS - 1],
        "Trackers must be the last Request variant; raise KNOWN_REQUESTS with each new one"
    );
}

proptest! {
    #[test]
    fn client_frames_round_trip(frame in client_frame()) {
        assert_round_trip(&frame)?;
    }

    #[test]
    fn request_id_is_peekable(frame in client_frame()) {
        let bytes = encode_payload(&frame).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let id = match &frame {
            ClientFrame::Request { id, .. } => Some(*id),
            ClientFrame::Hello(_) => None,
        };
        prop_assert_eq!(peek_request_id(&bytes), id);
    }

    /// A request variant from a newer protocol does not decode, but its id
    /// can still be read to answer `Unsupported`.
    #[test]
    fn unknown_request_keeps_its_id(id in any::<u32>(), variant in KNOWN_REQUESTS..128, body in vec(any::<u8>(), 0..32)) {
        let mut bytes = encode_payload(&ClientFrame::Request { id, req: Request::Logout })
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let tag = bytes.pop();
        prop_assert_eq!(tag, Some(2), "Logout is variant 2");
        bytes.push(variant);
        bytes.extend_from_slice(&body);
        prop_assert!(decode_payload::<ClientFrame>(&bytes).is_err());
        prop_assert_eq!(peek_request_id(&bytes), Some(id));
    }

    #[test]
    fn client_frames_survive_any_split(
        frames in vec(client_frame(), 1..4),
        cuts in vec(any::<usize>(), 0..12),
    ) {
        let stream = concat_frames(&frames);
        prop_assert_eq!(decode_split::<ClientFrame>(&stream, &cuts, MAX_CONTROL_FRAME), Ok(frames));
    }
}

proptest! {
    // The largest strategies: fewer cases keep debug runs fast.
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn server_frames_round_trip(frame in server_frame()) {
        assert_round_trip(&frame)?;
    }

    #[test]
    fn server_frames_survive_any_split(
        frames in vec(server_frame(), 1..4),
        cuts in vec(any::<usize>(), 0..12),
    ) {
        let stream = concat_frames(&frames);
        prop_assert_eq!(decode_split::<ServerFrame>(&stream, &cuts, MAX_CONTROL_FRAME), Ok(frames));
    }

    /// Corrupting one byte of a valid payload never panics the decoder.
    #[test]
    fn corrupted_payloads_never_panic(
        client in client_frame(),
        server in server_frame(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        for mut bytes in [encode_payload(&client), encode_payload(&server)].into_iter().flatten() {
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let _ = decode_payload::<ClientFrame>(&bytes);
            let _ = decode_payload::<ServerFrame>(&bytes);
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..4096)) {
        if let Ok(ClientFrame::Request { id, .. }) = decode_payload::<ClientFrame>(&bytes) {
            prop_assert_eq!(peek_request_id(&bytes), Some(id));
        } else {
            let _ = peek_request_id(&bytes);
        }
        let _ = decode_payload::<ServerFrame>(&bytes);
        let _ = decode_payload::<DeviceCert>(&bytes);
    }

    /// Whatever arrives, the decoder holds at most one partial frame plus the
    /// latest chunk, and it never panics.
    #[test]
    fn decoder_stays_bounded(
        max in 1usize..512,
        chunks in vec(vec(any::<u8>(), 0..256), 0..32),
    ) {
        let mut decoder = FrameDecoder::new(max);
        'stream: for chunk in &chunks {
            let pushed = decoder.push(chunk);
            prop_assert!(decoder.buffered() <= max + FRAME_HEADER_LEN + chunk.len());
            if pushed.is_err() {
                break;
            }
            loop {
                match decoder.next_payload() {
                    Ok(Some(payload)) => {
                        prop_assert!(!payload.is_empty() && payload.len() <= max);
                        let _ = decode_payload::<ClientFrame>(&payload);
                        let _ = decode_payload::<ServerFrame>(&payload);
                    }
                    Ok(None) => break,
                    Err(_) => break 'stream,
                }
            }
            prop_assert!(decoder.buffered() < max + FRAME_HEADER_LEN);
        }
    }

    /// Valid small frames with an oversized one in the middle: everything
    /// before it decodes, then the decoder fails instead of buffering it.
    #[test]
    fn oversized_frame_is_refused(
        before in vec(any::<u64>(), 0..4),
        max in 16usize..64,
        excess in 1usize..1024,
    ) {
        let pings: Vec<ClientFrame> =
            before.iter().map(|&nonce| ClientFrame::Request { id: 1, req: Request::Ping { nonce } }).collect();
        let mut stream = concat_frames(&pings);
        let len = max + excess;
        stream.extend_from_slice(&u32::try_from(len).expect("small").to_be_bytes());
        stream.extend(std::iter::repeat_n(0u8, len));
        let mut decoder = FrameDecoder::new(max);
        let mut got = Vec::new();
        let mut error = None;
        for byte in &stream {
            if let Err(e) = decoder.push(std::slice::from_ref(byte)) {
                error = Some(e);
                break;
            }
            match decoder.next_message::<ClientFrame>() {
                Ok(Some(msg)) => got.push(msg),
                Ok(None) => {}
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        prop_assert_eq!(got, pings);
        prop_assert_eq!(error, Some(FrameError::TooLarge { len, max }));
        prop_assert!(decoder.buffered() <= FRAME_HEADER_LEN);
    }
}

/// A complete frame and an oversized header arriving in one read: the
/// complete frame is still delivered, and the next call reports the error.
#[test]
fn frame_before_oversized_header_is_delivered() {
    let ping = ClientFrame::Request { id: 1, req: Request::Ping { nonce: 7 } };
    let mut stream = concat_frames(std::slice::from_ref(&ping));
    stream.extend_from_slice(&u32::MAX.to_be_bytes());
    let mut decoder = FrameDecoder::new(64);
    decoder.push(&stream).expect("the first header is fine");
    assert_eq!(decoder.next_message::<ClientFrame>(), Ok(Some(ping)));
    assert_eq!(decoder.next_message::<ClientFrame>(), Err(FrameError::TooLarge { len: u32::MAX as usize, max: 64 }));
}

/// postcard decodes overlong varints, so the frame below is a valid
/// `ClientFrame::Request { id: 3, req: Logout }` with its variant index
/// written as `81 00`. Found by the `control_payload` fuzz target.
#[test]
fn peek_reads_overlong_varints() {
    let bytes = [0x81, 0x00, 0x03, 0x02];
    assert_eq!(decode_payload::<ClientFrame>(&bytes), Ok(ClientFrame::Request { id: 3, req: Request::Logout }));
    assert_eq!(peek_request_id(&bytes), Some(3));
}
