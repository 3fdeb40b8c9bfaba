//! Golden bytes for every control-plane message and every enum variant.
//!
//! postcard encodes enums by variant index and structs by field order, so any
//! reordering, removal or type change alters these bytes. A failing test here
//! means the wire format changed: append new variants and fields instead, and
//! add a golden entry for each. The exhaustive `*_index` matches stop
//! compiling when a variant is added, as a reminder to pin it here.

use serde::{Serialize, de::DeserializeOwned};
use skein_proto::bytes::{DeviceId, GroupId, MailId, PublicKey, SessionToken, Signature};
use skein_proto::control::*;
use skein_proto::device::{DEVICE_CERT_DOMAIN, DeviceCert, DeviceCertBody};
use skein_proto::frame::{decode_payload, encode_frame, encode_payload};
use skein_proto::group::{GroupChange, GroupEvent, GroupKind, LoggedChange, MembershipBody, MembershipCert};
use skein_proto::limits::MAX_CONTROL_FRAME;
use skein_proto::{ErrorBody, ErrorCode, FrameDecoder};
use std::fmt::Debug;

/// Encodes `value`, compares with the pinned `hex`, and decodes `hex` back.
#[track_caller]
fn golden<T>(value: T, hex: &str)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let bytes = encode_payload(&value).expect("encode");
    assert_eq!(hex::encode(&bytes), hex, "encoding of {value:?} changed");
    let decoded: T = decode_payload(&hex::decode(hex).expect("valid hex")).expect("decode");
    assert_eq!(decoded, value);
}

/// Pins a table listing every variant of an enum once, in declaration order:
/// position `i` must hold variant `i`, whose encoding starts with byte `i`.
#[track_caller]
fn golden_variants<T>(table: Vec<(T, &str)>, index: fn(&T) -> usize)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    for (i, (value, hex)) in table.into_iter().enumerate() {
        assert_eq!(index(&value), i, "table out of order at {value:?}");
        assert_eq!(hex.get(..2), Some(format!("{i:02x}").as_str()), "{value:?}");
        golden(value, hex);
    }
}

// ---- fixtures -------------------------------------------------------------

fn device_id() -> DeviceId {
    DeviceId([0xd1; 16])
}

fn x25519() -> PublicKey {
    PublicKey([0x25; 32])
}

fn peer_id() -> Vec<u8> {
    vec![0x00, 0x24, 0x08, 0x01]
}

fn cert_body() -> DeviceCertBody {
    DeviceCertBody {
        version: 1,
        serial: 300,
        org: "acme".into(),
        user: "alice".into(),
        device_id: device_id(),
        peer_id: peer_id(),
        x25519: x25519(),
        issued_at_ms: 1_700_000_000_000,
        expires_at_ms: 1_731_536_000_000,
    }
}

fn cert() -> DeviceCert {
    DeviceCert { body: cert_body(), signature: Signature([0x51; 64]) }
}

fn device_hello() -> DeviceHello {
    DeviceHello {
        device_id: device_id(),
        name: "laptop".into(),
        peer_id: peer_id(),
        x25519: x25519(),
        proof: vec![0x5f; 3],
    }
}

fn membership_cert() -> MembershipCert {
    MembershipCert {
        body: MembershipBody {
            format: 1,
            org: "acme".into(),
            group: GroupId([0x67; 16]),
            version: 3,
            name: "team".into(),
            kind: GroupKind::Discussion { owner: "alice".into() },
            members: vec!["alice".into(), "bob".into()],
            closed: false,
            issued_at_ms: 1_700_000_000_000,
        },
        signature: Signature([0x51; 64]),
    }
}

fn group_event() -> GroupEvent {
    GroupEvent { actor: "alice".into(), change: GroupChange::Added(vec!["carol".into()]), cert: membership_cert() }
}

fn user_entry() -> UserEntry {
    UserEntry {
        name: "alice".into(),
        display_name: "Alice Ng".into(),
        department: Some("Eng/Backend".into()),
        title: None,
        email: Some("a@acme.example".into()),
        phone: None,
        disabled: false,
        status: PresenceStatus::Online,
        last_seen_ms: 1_700_000_000_000,
    }
}

fn presence_entry() -> PresenceEntry {
    PresenceEntry {
        user: "bob".into(),
        status: PresenceStatus::Busy,
        note: Some("in a meeting".into()),
        last_seen_ms: 0,
        devices: 2,
    }
}

fn addresses() -> Addresses {
    Addresses {
        listen: vec!["/ip4/198.18.0.2/udp/4001/quic-v1".into()],
        observed: vec![],
        relayed: vec!["/p2p-circuit".into()],
    }
}

fn throttled() -> ErrorBody {
    ErrorBody::new(ErrorCode::Throttled, "slow down").retry_after(1500)
}

// ---- exhaustive variant indices -------------------------------------------

fn client_frame_index(v: &ClientFrame) -> usize {
    match v {
        ClientFrame::Hello(_) => 0,
        ClientFrame::Request { .. } => 1,
    }
}

fn server_frame_index(v: &ServerFrame) -> usize {
    match v {
        ServerFrame::Welcome(_) => 0,
        ServerFrame::Reject(_) => 1,
        ServerFrame::Response { .. } => 2,
        ServerFrame::Event(_) => 3,
    }
}

fn request_index(v: &Request) -> usize {
    match v {
        Request::Login(_) => 0,
        Request::Resume(_) => 1,
        Request::Logout => 2,
        Request::SetPresence(_) => 3,
        Request::SubscribePresence(_) => 4,
        Request::UnsubscribePresence => 5,
        Request::Directory(_) => 6,
        Request::Departments => 7,
        Request::LookupPeer { .. } => 8,
        Request::ReportAddresses(_) => 9,
        Request::MailboxPut(_) => 10,
        Request::MailboxFetch { .. } => 11,
        Request::MailboxAck { .. } => 12,
        Request::Admin(_) => 13,
        Request::Ping { .. } => 14,
        Request::ChangePassword { .. } => 15,
        Request::RelayInfo => 16,
        Request::Policy => 17,
        Request::GroupCreate(_) => 18,
        Request::GroupList => 19,
        Request::GroupUpdate { .. } => 20,
        Request::LookupPeers { .. } => 21,
        Request::GroupChanges { .. } => 22,
        Request::MailboxPutMany(_) => 23,
        Request::Trackers => 24,
    }
}

fn response_index(v: &Response) -> usize {
    match v {
        Response::Ok => 0,
        Response::Session(_) => 1,
        Response::PresenceSnapshot(_) => 2,
        Response::Directory(_) => 3,
        Response::Departments(_) => 4,
        Response::Peer(_) => 5,
        Response::MailboxStored { .. } => 6,
        Response::Mail(_) => 7,
        Response::MailboxAcked { .. } => 8,
        Response::Admin(_) => 9,
        Response::Pong { .. } => 10,
        Response::Relay(_) => 11,
        Response::Policy(_) => 12,
        Response::Groups(_) => 13,
        Response::Group(_) => 14,
        Response::Peers(_) => 15,
        Response::GroupChanges(_) => 16,
        Response::MailboxStoredEach(_) => 17,
        Response::Trackers(_) => 18,
    }
}

fn event_index(v: &Event) -> usize {
    match v {
        Event::Presence(_) => 0,
        Event::SessionEnded(_) => 1,
        Event::MailWaiting { .. } => 2,
        Event::ShuttingDown { .. } => 3,
        Event::DeviceRevoked(_) => 4,
        Event::GroupChanged(_) => 5,
    }
}

fn admin_request_index(v: &AdminRequest) -> usize {
    match v {
        AdminRequest::AddUser(_) => 0,
        AdminRequest::SetDisabled { .. } => 1,
        AdminRequest::SetPassword { .. } => 2,
        AdminRequest::AddDepartment { .. } => 3,
        AdminRequest::RevokeDevice { .. } => 4,
        AdminRequest::RelayStats => 5,
    }
}

fn admin_response_index(v: &AdminResponse) -> usize {
    match v {
        AdminResponse::Done => 0,
        AdminResponse::SessionsEnded { .. } => 1,
        AdminResponse::RelayStats(_) => 2,
    }
}

fn presence_status_index(v: &PresenceStatus) -> usize {
    *v as usize
}

fn subscription_index(v: &Subscription) -> usize {
    match v {
        Subscription::All => 0,
        Subscription::Users(_) => 1,
    }
}

fn error_code_index(v: &ErrorCode) -> usize {
    *v as usize
}

// ---- tests ----------------------------------------------------------------

#[test]
fn frames() {
    golden_variants(
        vec![
            (
                ClientFrame::Hello(Hello { min_version: 1, max_version: 2, agent: "skein/0.1.0".into() }),
                "0001020b736b65696e2f302e312e30",
            ),
            (ClientFrame::Request { id: 7, req: Request::Ping { nonce: 42 } }, "01070e2a"),
        ],
        client_frame_index,
    );
    golden_variants(
        vec![
            (
                ServerFrame::Welcome(Welcome {
                    version: 1,
                    org: "acme".into(),
                    tracker_id: "t1".into(),
                    server_time_ms: 1_700_000_000_000,
                    idle_timeout_ms: 30_000,
                    nonce: [0x4e; 32],
                }),
                "00010461636d6502743180d095ffbc31b0ea014e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e",
            ),
            (ServerFrame::Reject(ErrorBody::new(ErrorCode::UnsupportedVersion, "need v1")), "0101076e65656420763100"),
            (ServerFrame::Response { id: 300, result: Ok(Response::Ok) }, "02ac020000"),
            (ServerFrame::Event(Event::MailWaiting { count: 3 }), "030203"),
        ],
        server_frame_index,
    );
    // `Result` is Ok = 0, Err = 1.
    golden(ServerFrame::Response { id: 1, result: Err(throttled()) }, "0201010509736c6f7720646f776e01dc0b");
}

#[test]
fn requests() {
    golden_variants(
        vec![
            (
                Request::Login(Login { user: "alice".into(), password: "hunter22".into(), device: device_hello() }),
                "0005616c6963650868756e746572323210d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1066c6170746f700400240801202525252525252525252525252525252525252525252525252525252525252525035f5f5f",
            ),
            (
                Request::Resume(Resume { token: SessionToken([0x70; 32]), device: device_hello() }),
                "0120707070707070707070707070707070707070707070707070707070707070707010d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1066c6170746f700400240801202525252525252525252525252525252525252525252525252525252525252525035f5f5f",
            ),
            (Request::Logout, "02"),
            (
                Request::SetPresence(SetPresence { status: PresenceStatus::Away, note: Some("lunch".into()) }),
                "030201056c756e6368",
            ),
            (Request::SubscribePresence(Subscription::All), "0400"),
            (Request::UnsubscribePresence, "05"),
            (
                Request::Directory(DirectoryQuery {
                    text: Some("ng".into()),
                    department: None,
                    offset: 100,
                    limit: 50,
                }),
                "0601026e67006432",
            ),
            (Request::Departments, "07"),
            (Request::LookupPeer { user: "bob".into() }, "0803626f62"),
            (
                Request::ReportAddresses(addresses()),
                "0901202f6970342f3139382e31382e302e322f7564702f343030312f717569632d763100010c2f7032702d63697263756974",
            ),
            (
                Request::MailboxPut(MailboxPut {
                    to_user: "bob".into(),
                    items: vec![SealedItem { id: MailId([0x4d; 16]), to_device: device_id(), sealed: vec![1, 2, 3] }],
                }),
                "0a03626f6201104d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d10d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d103010203",
            ),
            (Request::MailboxFetch { limit: 64 }, "0b40"),
            (
                Request::MailboxAck { ids: vec![MailId([0x4d; 16]), MailId([0x4e; 16])] },
                "0c02104d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d104e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e",
            ),
            (Request::Admin(AdminRequest::AddDepartment { path: "Eng".into() }), "0d0303456e67"),
            (Request::Ping { nonce: u64::MAX }, "0effffffffffffffffff01"),
            (
                Request::ChangePassword { old: "old-pass".into(), new: "new-pass".into() },
                "0f086f6c642d70617373086e65772d70617373",
            ),
            (Request::RelayInfo, "10"),
            (Request::Policy, "11"),
            (
                Request::GroupCreate(GroupCreate { name: "team".into(), members: vec!["bob".into()], org: false }),
                "12047465616d0103626f6200",
            ),
            (Request::GroupList, "13"),
            (
                Request::GroupUpdate { group: GroupId([0x67; 16]), update: GroupUpdate::Add(vec!["carol".into()]) },
                "1410676767676767676767676767676767670001056361726f6c",
            ),
            (Request::LookupPeers { users: vec!["bob".into(), "carol".into()] }, "150203626f62056361726f6c"),
            (
                Request::GroupChanges { group: GroupId([0x67; 16]), after_version: 2 },
                "16106767676767676767676767676767676702",
            ),
            (
                Request::MailboxPutMany(vec![MailboxPut {
                    to_user: "bob".into(),
                    items: vec![SealedItem { id: MailId([0x4d; 16]), to_device: device_id(), sealed: vec![1, 2, 3] }],
                }]),
                "170103626f6201104d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d10d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d103010203",
            ),
            (Request::Trackers, "18"),
        ],
        request_index,
    );
}

#[test]
fn responses() {
    golden_variants(
        vec![
            (Response::Ok, "00"),
            (
                Response::Session(Box::new(Session {
                    token: SessionToken([0x70; 32]),
                    expires_at_ms: 1_700_086_400_000,
                    user: user_entry(),
                    admin: true,
                    device_cert: cert(),
                    org_signing_key: PublicKey([0x0a; 32]),
                    password_change_required: true,
                })),
                "012070707070707070707070707070707070707070707070707070707070707070708088afa8bd3105616c69636508416c696365204e67010b456e672f4261636b656e6400010e614061636d652e6578616d706c6500000180d095ffbc310101ac020461636d6505616c69636510d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1040024080120252525252525252525252525252525252525252525252525252525252525252580d095ffbc3180a8dabcb2324051515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151200a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a01",
            ),
            (Response::PresenceSnapshot(vec![presence_entry()]), "020103626f6203010c696e2061206d656574696e670002"),
            (
                Response::Directory(DirectoryPage { users: vec![user_entry()], total: 1234 }),
                "030105616c69636508416c696365204e67010b456e672f4261636b656e6400010e614061636d652e6578616d706c6500000180d095ffbc31d209",
            ),
            (
                Response::Departments(vec![
                    Department { path: "Eng".into(), parent: None, members: 0 },
                    Department { path: "Eng/Backend".into(), parent: Some("Eng".into()), members: 12 },
                ]),
                "040203456e6700000b456e672f4261636b656e640103456e670c",
            ),
            (
                Response::Peer(PeerInfo {
                    user: "alice".into(),
                    online: vec![DeviceInfo {
                        device_id: device_id(),
                        name: "laptop".into(),
                        cert: cert(),
                        addresses: addresses(),
                        status: PresenceStatus::Online,
                    }],
                    known: vec![cert()],
                }),
                "0505616c6963650110d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1066c6170746f7001ac020461636d6505616c69636510d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1040024080120252525252525252525252525252525252525252525252525252525252525252580d095ffbc3180a8dabcb232405151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515101202f6970342f3139382e31382e302e322f7564702f343030312f717569632d763100010c2f7032702d63697263756974010101ac020461636d6505616c69636510d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1040024080120252525252525252525252525252525252525252525252525252525252525252580d095ffbc3180a8dabcb2324051515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151",
            ),
            (Response::MailboxStored { stored: 2 }, "0602"),
            (
                Response::Mail(vec![MailItem {
                    id: MailId([0x4d; 16]),
                    from_user: "bob".into(),
                    sealed: vec![0xca, 0xfe],
                    stored_at_ms: 1_700_000_000_123,
                }]),
                "0701104d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d03626f6202cafefbd095ffbc31",
            ),
            (Response::MailboxAcked { removed: 1 }, "0801"),
            (Response::Admin(AdminResponse::Done), "0900"),
            (Response::Pong { nonce: 42, server_time_ms: 1_700_000_000_000 }, "0a2a80d095ffbc31"),
            (
                Response::Relay(RelayInfo {
                    peer_id: peer_id(),
                    port: 7401,
                    addrs: vec!["/ip4/198.18.0.1/udp/7401/quic-v1".into()],
                }),
                "0b0400240801e93901202f6970342f3139382e31382e302e312f7564702f373430312f717569632d7631",
            ),
            (Response::Policy(OrgPolicy { max_file_size: 1 << 30 }), "0c8080808004"),
            (
                Response::Groups(vec![membership_cert()]),
                "0d01010461636d65106767676767676767676767676767676703047465616d0205616c6963650205616c69636503626f620080d095ffbc314051515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151",
            ),
            (
                Response::Group(group_event()),
                "0e05616c6963650101056361726f6c010461636d65106767676767676767676767676767676703047465616d0205616c6963650205616c69636503626f620080d095ffbc314051515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151",
            ),
            (Response::Peers(vec![PeerInfo { user: "bob".into(), online: vec![], known: vec![] }]), "0f0103626f620000"),
            (
                Response::GroupChanges(vec![LoggedChange {
                    version: 3,
                    actor: "alice".into(),
                    change: GroupChange::Left,
                    at_ms: 1_700_000_000_000,
                }]),
                "10010305616c6963650380d095ffbc31",
            ),
            (
                Response::MailboxStoredEach(vec![Ok(2), Err(ErrorBody::new(ErrorCode::NotFound, "no user named x"))]),
                "1102000201080f6e6f2075736572206e616d6564207800",
            ),
            (
                Response::Trackers(vec![TrackerAddrs {
                    name: "t1".into(),
                    control: vec!["198.18.0.1:7400".into()],
                    relay: vec![],
                }]),
                "1201027431010f3139382e31382e302e313a3734303000",
            ),
        ],
        response_index,
    );
}

#[test]
fn events() {
    golden_variants(
        vec![
            (Event::Presence(presence_entry()), "0003626f6203010c696e2061206d656574696e670002"),
            (
                Event::SessionEnded(ErrorBody::new(ErrorCode::SessionRevoked, "logged out elsewhere")),
                "0107146c6f67676564206f757420656c7365776865726500",
            ),
            (Event::MailWaiting { count: 128 }, "028001"),
            (Event::ShuttingDown { reconnect_after_ms: 5000 }, "038827"),
            (
                Event::DeviceRevoked(RevokedDevice {
                    user: "bob".into(),
                    device_id: DeviceId([7; 16]),
                    peer_id: vec![0, 2, 0xAB, 0xCD],
                }),
                "0403626f621007070707070707070707070707070707040002abcd",
            ),
            (
                Event::GroupChanged(group_event()),
                "0505616c6963650101056361726f6c010461636d65106767676767676767676767676767676703047465616d0205616c6963650205616c69636503626f620080d095ffbc314051515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151",
            ),
        ],
        event_index,
    );
}

#[test]
fn admin() {
    golden_variants(
        vec![
            (
                AdminRequest::AddUser(NewUser {
                    name: "carol".into(),
                    display_name: "Carol".into(),
                    password: "correct horse".into(),
                    department: Some("Eng".into()),
                    title: Some("SRE".into()),
                    email: None,
                    phone: Some("+1 555".into()),
                    admin: false,
                }),
                "00056361726f6c054361726f6c0d636f727265637420686f7273650103456e6701035352450001062b312035353500",
            ),
            (AdminRequest::SetDisabled { user: "carol".into(), disabled: true }, "01056361726f6c01"),
            (
                AdminRequest::SetPassword { user: "carol".into(), password: "new secret".into() },
                "02056361726f6c0a6e657720736563726574",
            ),
            (AdminRequest::AddDepartment { path: "Eng/Backend".into() }, "030b456e672f4261636b656e64"),
            (
                AdminRequest::RevokeDevice { user: "carol".into(), device_id: device_id() },
                "04056361726f6c10d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1",
            ),
            (AdminRequest::RelayStats, "05"),
        ],
        admin_request_index,
    );
    golden_variants(
        vec![
            (AdminResponse::Done, "00"),
            (AdminResponse::SessionsEnded { count: 3 }, "0103"),
            (
                AdminResponse::RelayStats(RelayStats {
                    total_relayed_bytes: 300,
                    reservations: 2,
                    circuits: 1,
                    peers: vec![RelayPeerBytes { peer_id: peer_id(), rx: 200, tx: 100 }],
                }),
                "02ac020201010400240801c80164",
            ),
        ],
        admin_response_index,
    );
}

#[test]
fn small_enums() {
    golden_variants(
        vec![
            (PresenceStatus::Offline, "00"),
            (PresenceStatus::Online, "01"),
            (PresenceStatus::Away, "02"),
            (PresenceStatus::Busy, "03"),
        ],
        presence_status_index,
    );
    golden_variants(
        vec![
            (Subscription::All, "00"),
            (Subscription::Users(vec!["alice".into(), "bob".into()]), "010205616c69636503626f62"),
        ],
        subscription_index,
    );
    use ErrorCode::*;
    let codes = [
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
    ];
    let hex =
        ["00", "01", "02", "03", "04", "05", "06", "07", "08", "09", "0a", "0b", "0c", "0d", "0e", "0f", "10", "11"];
    golden_variants(codes.into_iter().zip(hex).collect(), error_code_index);
    golden(throttled(), "0509736c6f7720646f776e01dc0b");
    golden(ErrorBody::new(Internal, String::new()), "100000");
}

#[test]
fn device_cert() {
    golden(
        cert_body(),
        "01ac020461636d6505616c69636510d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1040024080120252525252525252525252525252525252525252525252525252525252525252580d095ffbc3180a8dabcb232",
    );
    golden(
        cert(),
        "01ac020461636d6505616c69636510d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1040024080120252525252525252525252525252525252525252525252525252525252525252580d095ffbc3180a8dabcb2324051515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151",
    );
    let signing = cert_body().signing_bytes();
    assert_eq!(
        hex::encode(&signing),
        "736b65696e2f6465766963652d636572742f76310001ac020461636d6505616c69636510d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1040024080120252525252525252525252525252525252525252525252525252525252525252580d095ffbc3180a8dabcb232"
    );
    assert!(signing.starts_with(DEVICE_CERT_DOMAIN));
    assert_eq!(signing[DEVICE_CERT_DOMAIN.len()..], encode_payload(&cert_body()).expect("encode")[..]);
}

#[test]
fn whole_frame() {
    let hello = ClientFrame::Hello(Hello { min_version: 1, max_version: 1, agent: "skein/0.1.0".into() });
    let frame = encode_frame(&hello, MAX_CONTROL_FRAME).expect("encode");
    assert_eq!(hex::encode(&frame), "0000000f0001010b736b65696e2f302e312e30");
    let mut decoder = FrameDecoder::new(MAX_CONTROL_FRAME);
    decoder.push(&frame).expect("push");
    assert_eq!(decoder.next_message::<ClientFrame>().expect("decode"), Some(hello));
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn device_proof_bytes() {
    // What a device signs to prove its PeerId: changing it locks every
    // device out until both ends agree again.
    let bytes = device_hello().proof_bytes(&[0x4e; 32]);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "736b65696e206465766963652070726f6f66207631004e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4ed1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d100000004002408012525252525252525252525252525252525252525252525252525252525252525"
    );
}

#[test]
fn groups() {
    let update_index = |v: &GroupUpdate| match v {
        GroupUpdate::Add(_) => 0,
        GroupUpdate::Remove(_) => 1,
        GroupUpdate::Leave => 2,
        GroupUpdate::Rename(_) => 3,
        GroupUpdate::Close => 4,
    };
    golden_variants(
        vec![
            (GroupUpdate::Add(vec!["carol".into()]), "0001056361726f6c"),
            (GroupUpdate::Remove(vec!["bob".into()]), "010103626f62"),
            (GroupUpdate::Leave, "02"),
            (GroupUpdate::Rename("ops".into()), "03036f7073"),
            (GroupUpdate::Close, "04"),
        ],
        update_index,
    );
    let change_index = |v: &GroupChange| match v {
        GroupChange::Created => 0,
        GroupChange::Added(_) => 1,
        GroupChange::Removed(_) => 2,
        GroupChange::Left => 3,
        GroupChange::Renamed { .. } => 4,
        GroupChange::Closed => 5,
    };
    golden_variants(
        vec![
            (GroupChange::Created, "00"),
            (GroupChange::Added(vec!["carol".into()]), "0101056361726f6c"),
            (GroupChange::Removed(vec!["bob".into()]), "020103626f62"),
            (GroupChange::Left, "03"),
            (GroupChange::Renamed { from: "old".into() }, "04036f6c64"),
            (GroupChange::Closed, "05"),
        ],
        change_index,
    );
    let kind_index = |v: &GroupKind| match v {
        GroupKind::Org => 0,
        GroupKind::Department { .. } => 1,
        GroupKind::Discussion { .. } => 2,
    };
    golden_variants(
        vec![
            (GroupKind::Org, "00"),
            (GroupKind::Department { path: "Eng".into() }, "0103456e67"),
            (GroupKind::Discussion { owner: "alice".into() }, "0205616c696365"),
        ],
        kind_index,
    );
    // What the organisation signs for a group: a domain tag, then the body.
    let signing: String = membership_cert().body.signing_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        signing,
        "736b65696e2f6d656d626572736869702d636572742f763100010461636d65106767676767676767676767676767676703047465616d0205616c6963650205616c69636503626f620080d095ffbc31"
    );
}
