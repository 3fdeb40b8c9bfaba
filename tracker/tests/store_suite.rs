//! The tracker store's behaviour, written once and run against SQLite (a
//! file in a temporary directory) and PostgreSQL (a fresh database per
//! test on the server named by `SKEIN_TEST_POSTGRES_URL`, dropped at the
//! end). The PostgreSQL tests are `#[ignore]`d, so a plain `cargo test`
//! reports them as ignored; `scripts/test` starts a server and runs them
//! with `--ignored`. Run with `--ignored` but without the variable, they
//! fail and say what is missing.
//!
//! Each `case_*` function is one behaviour; `store_cases!` turns it into
//! `sqlite::case_*` and `postgres::case_*` tests.

#![allow(clippy::unwrap_used)]

use skein_proto::group::GroupChange;
use skein_tracker::store::{
    AccessEnd, CODE_VERSION, DeviceRecord, DeviceScope, GroupKindRecord, GroupStoreChange, Issue, MailRecord,
    MailboxLimits, NewUserRecord, SenderShare, SessionRecord, SessionStart, Store, StoreError, TrackerRecord,
    UserRecord, department_group_id,
};
use sqlx::Connection;
use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

const PG_ENV: &str = "SKEIN_TEST_POSTGRES_URL";

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// Generates one test per backend for each case. Cases listed under
/// `store` take an opened [`Store`]; cases under `url` take the URL of a
/// fresh, empty database and open it themselves.
macro_rules! store_cases {
    (store: [$($case:ident),* $(,)?], url: [$($url_case:ident),* $(,)?] $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::with_sqlite(|url| super::with_store(url, super::$case)).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $url_case() {
                    super::with_sqlite(super::$url_case).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs PostgreSQL: set SKEIN_TEST_POSTGRES_URL (scripts/test starts one)"]
                async fn $case() {
                    super::with_postgres(|url| super::with_store(url, super::$case)).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs PostgreSQL: set SKEIN_TEST_POSTGRES_URL (scripts/test starts one)"]
                async fn $url_case() {
                    super::with_postgres(super::$url_case).await;
                }
            )*
        }
    };
}

store_cases! {
    store: [
        case_settings_race_safe,
        case_department_tree,
        case_users_crud,
        case_user_search,
        case_sessions,
        case_session_start,
        case_devices,
        case_next_serial_concurrent,
        case_events_ordering,
        case_mailbox,
        case_mailbox_quota_concurrent,
        case_mailbox_sender_share,
        case_mailbox_put_each,
        case_access_end,
        case_login_racing_a_disable,
        case_groups,
        case_group_changes_page_forward,
        case_department_groups,
        case_trackers,
        case_apps,
        case_app_pending,
    ],
    url: [
        case_migrations_idempotent,
        case_concurrent_open,
        case_refuses_newer_schema,
    ],
}

/// Opens the store at `url` and runs `case` with it.
async fn with_store<F, Fut>(url: String, case: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let store = Store::open(&url).await.unwrap();
    case(store.clone()).await;
    store.close().await;
}

/// Runs `body` with the URL of a SQLite file in a fresh temporary directory.
async fn with_sqlite<F, Fut>(body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tracker.db").display());
    body(url).await;
}

/// Runs `body` with the URL of a fresh PostgreSQL database, dropping the
/// database afterwards even if `body` panics. Fails when no server is named:
/// these tests run only when asked for, and asking without a server is a
/// mistake to report, not a pass.
async fn with_postgres<F, Fut>(body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let admin_url = match std::env::var(PG_ENV) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "the PostgreSQL store tests need a server: set {PG_ENV} to a URL whose user may create databases \
             (for example postgres://skein@127.0.0.1:5432/postgres), or run scripts/test, which starts a throwaway one"
        ),
    };
    // sqlx may build a rustls client config (sslmode=prefer); pick the
    // provider explicitly, as the binaries do.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let name = format!("skein_test_{:016x}", rand::random::<u64>());
    let mut admin = sqlx::postgres::PgConnection::connect(&admin_url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();

    let outcome = tokio::spawn(body(with_database(&admin_url, &name))).await;

    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
        .execute(&mut admin)
        .await
        .unwrap();
    let _ = admin.close().await;
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{db}?{query}"),
        None => format!("{base}/{db}"),
    }
}

fn new_user(name: &str, display_name: &str, department: Option<&str>) -> NewUserRecord {
    NewUserRecord {
        name: name.into(),
        display_name: display_name.into(),
        password_hash: format!("$argon2id$fake${name}"),
        department: department.map(Into::into),
        title: None,
        email: Some(format!("{name}@example.com")),
        phone: None,
        admin: false,
    }
}

async fn add(store: &Store, name: &str) -> UserRecord {
    store.add_user(new_user(name, name, None)).await.unwrap()
}

fn names(users: &[UserRecord]) -> Vec<&str> {
    users.iter().map(|u| u.name.as_str()).collect()
}

// ---------------------------------------------------------------------------
// Migrations
// ---------------------------------------------------------------------------

async fn case_migrations_idempotent(url: String) {
    let store = Store::open(&url).await.unwrap();
    add(&store, "alice").await;
    store.close().await;

    let store = Store::open(&url).await.unwrap();
    assert_eq!(store.user_by_name("alice").await.unwrap().unwrap().name, "alice");
    assert_eq!(store.count_users().await.unwrap(), 1);
    // The serial counter row is created once, not per open.
    assert_eq!(store.next_serial().await.unwrap(), 1);
    store.close().await;

    let store = Store::open(&url).await.unwrap();
    assert_eq!(store.next_serial().await.unwrap(), 2);
    store.close().await;
}

/// The listener hears what commits, and says when it had to reconnect (so
/// its owner reads what it may have missed), however its connection ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set SKEIN_TEST_POSTGRES_URL (scripts/test starts one)"]
async fn postgres_listener_hears_commits_and_says_when_it_reconnected() {
    use skein_tracker::store::listen::{Heard, Listener};
    with_postgres(|url| async move {
        let chan = "skein_test_listen";
        let mut listener = Listener::connect(&url, &[chan]).await.unwrap();
        let mut other = sqlx::postgres::PgConnection::connect(&url).await.unwrap();
        let notify = format!("NOTIFY {chan}");
        // A notification sent in a transaction that rolls back is never heard;
        // one that commits is.
        sqlx::raw_sql("BEGIN").execute(&mut other).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(notify.clone())).execute(&mut other).await.unwrap();
        sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(notify.clone())).execute(&mut other).await.unwrap();
        let heard = tokio::time::timeout(Duration::from_secs(10), listener.next()).await.unwrap();
        assert_eq!(heard, Heard::Notified { channel: chan.into(), payload: String::new() });
        let quiet = tokio::time::timeout(Duration::from_millis(300), listener.next()).await;
        assert!(quiet.is_err(), "the rolled-back notification must not be heard: {quiet:?}");
        // The server ends the listener's connection (a restart, a network cut).
        let ended = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE pid <> pg_backend_pid() AND datname = current_database() AND query LIKE '%{chan}%'"
        )))
        .execute(&mut other)
        .await
        .unwrap();
        assert!(ended.rows_affected() >= 1, "the listener's connection was found and ended");
        let heard = tokio::time::timeout(Duration::from_secs(20), listener.next()).await.unwrap();
        assert_eq!(heard, Heard::Reconnected);
        // Listening again on the new connection.
        sqlx::raw_sql(sqlx::AssertSqlSafe(notify)).execute(&mut other).await.unwrap();
        let heard = tokio::time::timeout(Duration::from_secs(10), listener.next()).await.unwrap();
        assert_eq!(heard, Heard::Notified { channel: chan.into(), payload: String::new() });
        let _ = other.close().await;
    })
    .await;
}

async fn case_concurrent_open(url: String) {
    // Spawn all first (collect), then await: a lazy iterator would run them one by one.
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { Store::open(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.unwrap().unwrap());
    }
    add(&stores[0], "alice").await;
    assert!(stores[3].user_by_name("alice").await.unwrap().is_some());
    for store in stores {
        store.close().await;
    }
}

async fn case_refuses_newer_schema(url: String) {
    let store = Store::open(&url).await.unwrap();
    store.close().await;

    // Pretend a newer tracker applied migration 999.
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(999_i64)
    .bind("from the future")
    .bind(true)
    .bind(vec![0_u8; 48])
    .bind(0_i64)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    match Store::open(&url).await {
        Err(StoreError::TooNew { db_version, code_version }) => {
            assert_eq!(db_version, 999);
            assert_eq!(code_version, CODE_VERSION);
        }
        other => panic!("expected TooNew, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Settings, departments, users
// ---------------------------------------------------------------------------

async fn case_settings_race_safe(store: Store) {
    assert_eq!(store.get_setting("org_name").await.unwrap(), None);
    // Spawn all first (collect), then await: a lazy iterator would run them one by one.
    let racers: Vec<_> = (0..10_u8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.put_setting_if_absent("org_key", &[i; 32]).await.unwrap() })
        })
        .collect();
    let mut winners = BTreeSet::new();
    for racer in racers {
        winners.insert(racer.await.unwrap());
    }
    assert_eq!(winners.len(), 1, "every racer must see the same winner");
    let stored = store.get_setting("org_key").await.unwrap().unwrap();
    assert!(winners.contains(&stored));
    assert_eq!(store.put_setting_if_absent("org_key", b"late").await.unwrap(), stored);
}

async fn case_apps(store: Store) {
    let scopes = vec!["send".to_owned(), "presence".to_owned()];
    let icon = b"\x89PNG\r\n\x1a\nicon".to_vec();
    let made = skein_tracker::apps::create(&store, "Ticket system", &scopes, Some(&icon), 10).await.unwrap();
    let found = skein_tracker::apps::authenticate(&store, &made.token).await.unwrap().unwrap();
    assert_eq!(
        (found.name.as_str(), &found.scopes, found.icon.as_deref()),
        ("Ticket system", &scopes, Some(&icon[..]))
    );
    assert!(skein_tracker::apps::create(&store, "Ticket system", &scopes, None, 11).await.is_err());
    store.audit(found.id, 12, "127.0.0.1:5000", "GET", "/v1/presence", 429).await.unwrap();
    let log = store.audit_log(10).await.unwrap();
    assert_eq!((log[0].app.as_str(), log[0].status, log[0].route.as_str()), ("Ticket system", 429, "/v1/presence"));
    // An idempotency key: the same post again is a retry, another post is refused.
    assert!(store.claim_idempotency(found.id, &[1; 16], &[2; 32], 12).await.unwrap());
    assert!(store.claim_idempotency(found.id, &[1; 16], &[2; 32], 13).await.unwrap(), "a retry");
    assert!(!store.claim_idempotency(found.id, &[1; 16], &[3; 32], 13).await.unwrap(), "another post");
    store.revoke_app("Ticket system", 13).await.unwrap();
    assert!(skein_tracker::apps::authenticate(&store, &made.token).await.unwrap().is_none());
    assert_eq!(store.list_apps().await.unwrap()[0].revoked_at_ms, Some(13));
}

async fn case_app_pending(store: Store) {
    use skein_tracker::store::{MAX_PENDING_PER_USER, PendingApp};
    let dana = add(&store, "dana").await;
    let pending =
        |n: u8| PendingApp { id: [n; 16], from_app: "HR".into(), payload: vec![n; 40], stored_at_ms: i64::from(n) };
    assert!(store.app_pending_put(dana.id, &pending(2)).await.unwrap());
    assert!(store.app_pending_put(dana.id, &pending(1)).await.unwrap());
    assert!(store.app_pending_put(dana.id, &pending(1)).await.unwrap(), "the same id again is kept once");
    let waiting = store.app_pending(dana.id).await.unwrap();
    assert_eq!(waiting, vec![pending(1), pending(2)], "oldest first, each once");
    store.app_pending_done(dana.id, &[[1; 16]]).await.unwrap();
    assert_eq!(store.app_pending(dana.id).await.unwrap(), vec![pending(2)]);
    for n in 0..MAX_PENDING_PER_USER - 1 {
        let p = PendingApp { id: (n as u128 + 1000).to_be_bytes(), ..pending(3) };
        assert!(store.app_pending_put(dana.id, &p).await.unwrap());
    }
    assert!(!store.app_pending_put(dana.id, &pending(9)).await.unwrap(), "no more than the limit wait");
    assert_eq!(store.app_pending(dana.id).await.unwrap().len() as i64, MAX_PENDING_PER_USER);
}

async fn case_trackers(store: Store) {
    assert!(store.list_trackers().await.unwrap().is_empty());
    let one = TrackerRecord {
        relay_peer_id: "12D3KooWOne".into(),
        name: "dc-1".into(),
        control_addrs: vec!["198.18.0.1:7400".into(), "tracker.example.org:7400".into()],
        relay_addrs: vec!["/ip4/198.18.0.1/udp/7401/quic-v1/p2p/12D3KooWOne".into()],
        started_at_ms: 1_000,
        last_seen_ms: 1_000,
        running: true,
    };
    let two = TrackerRecord {
        relay_peer_id: "12D3KooWTwo".into(),
        name: "dc-2".into(),
        control_addrs: vec!["198.18.0.2:7400".into()],
        relay_addrs: vec![],
        started_at_ms: 2_000,
        last_seen_ms: 2_000,
        ..one.clone()
    };
    store.tracker_started(&one).await.unwrap();
    store.tracker_started(&two).await.unwrap();
    assert_eq!(store.list_trackers().await.unwrap(), vec![two.clone(), one.clone()], "most recently seen first");
    assert!(store.tracker_seen("12D3KooWOne", 5_000, true).await.unwrap());
    assert!(store.tracker_seen("12D3KooWTwo", 4_000, false).await.unwrap(), "a clean stop");
    assert!(!store.tracker_seen("12D3KooWNone", 4_000, true).await.unwrap(), "no such tracker");
    let list = store.list_trackers().await.unwrap();
    assert_eq!(
        list.iter().map(|t| (t.name.as_str(), t.last_seen_ms, t.running)).collect::<Vec<_>>(),
        [("dc-1", 5_000, true), ("dc-2", 4_000, false)]
    );
    // A restart on new addresses replaces the row and runs again.
    let moved = TrackerRecord {
        control_addrs: vec!["198.18.0.9:7400".into()],
        started_at_ms: 6_000,
        last_seen_ms: 6_000,
        ..two
    };
    store.tracker_started(&moved).await.unwrap();
    assert_eq!(store.list_trackers().await.unwrap()[0], moved);
}

async fn case_department_tree(store: Store) {
    let storage = store.add_department("Eng/Backend/Storage").await.unwrap();
    assert_eq!(storage.path, "Eng/Backend/Storage");
    assert_eq!(storage.parent_path.as_deref(), Some("Eng/Backend"));
    assert_eq!(storage.members, 0);

    // Parents were created silently; the exact path conflicts.
    assert!(matches!(store.add_department("Eng/Backend/Storage").await, Err(StoreError::Conflict(_))));
    assert!(matches!(store.add_department("Eng").await, Err(StoreError::Conflict(_))));
    store.add_department("Eng/Frontend").await.unwrap();
    store.add_department("Engineering").await.unwrap();
    assert!(matches!(store.add_department("Eng//x").await, Err(StoreError::InvalidInput(_))));
    assert!(matches!(store.add_department("").await, Err(StoreError::InvalidInput(_))));

    store.add_user(new_user("ann", "Ann", Some("Eng/Backend"))).await.unwrap();
    store.add_user(new_user("ben", "Ben", Some("Eng/Backend"))).await.unwrap();
    // A user's new department is created on the way.
    store.add_user(new_user("cat", "Cat", Some("Sales/EMEA"))).await.unwrap();
    store.set_disabled("ben", true).await.unwrap();

    let list = store.list_departments().await.unwrap();
    let paths: Vec<(&str, Option<&str>, i64)> =
        list.iter().map(|d| (d.path.as_str(), d.parent_path.as_deref(), d.members)).collect();
    assert_eq!(
        paths,
        vec![
            ("Eng", None, 0),
            ("Eng/Backend", Some("Eng"), 1),
            ("Eng/Backend/Storage", Some("Eng/Backend"), 0),
            ("Eng/Frontend", Some("Eng"), 0),
            ("Engineering", None, 0),
            ("Sales", None, 0),
            ("Sales/EMEA", Some("Sales"), 1),
        ]
    );
    let backend = store.department_by_path("Eng/Backend").await.unwrap().unwrap();
    assert_eq!(backend.members, 1);
    assert!(store.department_by_path("Nope").await.unwrap().is_none());
}

async fn case_users_crud(store: Store) {
    let mut new = new_user("alice", "Alice Liddell", Some("Eng"));
    new.title = Some("Engineer".into());
    new.phone = Some("+1 555".into());
    new.admin = true;
    let alice = store.add_user(new).await.unwrap();
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.display_name, "Alice Liddell");
    assert_eq!(alice.department.as_deref(), Some("Eng"));
    assert_eq!(alice.title.as_deref(), Some("Engineer"));
    assert_eq!(alice.email.as_deref(), Some("alice@example.com"));
    assert_eq!(alice.phone.as_deref(), Some("+1 555"));
    assert!(alice.admin);
    assert!(!alice.disabled);
    assert_eq!(alice.last_seen_ms, None);
    assert!(alice.created_at_ms > 0);
    assert_eq!(store.user_by_id(alice.id).await.unwrap(), Some(alice.clone()));

    match store.add_user(new_user("alice", "Other", None)).await {
        Err(StoreError::Conflict(msg)) => assert_eq!(msg, "user alice already exists"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(store.user_by_name("bob").await.unwrap(), None);
    match store.set_password_hash("bob", "x").await {
        Err(StoreError::NotFound(msg)) => assert_eq!(msg, "no user named bob"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(matches!(store.set_disabled("bob", true).await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.set_last_seen(9_999, 1).await, Err(StoreError::NotFound(_))));

    store.set_password_hash("alice", "$argon2id$new").await.unwrap();
    store.set_disabled("alice", true).await.unwrap();
    store.set_last_seen(alice.id, 1_700_000_000_000).await.unwrap();
    let changed = store.user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(changed.password_hash, "$argon2id$new");
    assert!(changed.disabled);
    assert_eq!(changed.last_seen_ms, Some(1_700_000_000_000));
    store.set_disabled("alice", false).await.unwrap();
    assert!(!store.user_by_name("alice").await.unwrap().unwrap().disabled);

    add(&store, "carol").await;
    add(&store, "bob").await;
    assert_eq!(names(&store.list_users().await.unwrap()), ["alice", "bob", "carol"]);
    assert_eq!(store.count_users().await.unwrap(), 3);
    // The password hash never shows in Debug output.
    assert!(!format!("{changed:?}").contains("argon2"));
}

async fn case_user_search(store: Store) {
    store.add_user(new_user("alice", "Alice Smith", Some("Eng/Backend"))).await.unwrap();
    store.add_user(new_user("bob", "Bob 100% Real", Some("Eng"))).await.unwrap();
    store.add_user(new_user("under_score", "Under Score", Some("Engineering"))).await.unwrap();
    store.add_user(new_user("underxscore", "Underx Score", Some("R_D"))).await.unwrap();
    store.add_user(new_user("dave", "Dave", Some("RxD/Lab"))).await.unwrap();
    let mut eve = new_user("eve", "Eve SMITH", Some("Eng/Backend/Storage"));
    eve.title = Some("Storage Lead".into());
    store.add_user(eve).await.unwrap();
    store.add_user(new_user("zed", "Zed Smith", None)).await.unwrap();
    store.set_disabled("zed", true).await.unwrap();

    let search = |text: Option<&'static str>, dept: Option<&'static str>, disabled: bool| {
        let store = store.clone();
        async move {
            let (users, total) = store.search_users(text, dept, disabled, 0, 100).await.unwrap();
            assert_eq!(total, users.len() as i64);
            users.into_iter().map(|u| u.name).collect::<Vec<_>>()
        }
    };

    // Case-insensitive over name, display name, title and e-mail.
    assert_eq!(search(Some("SMITH"), None, false).await, ["alice", "eve"]);
    assert_eq!(search(Some("smith"), None, true).await, ["alice", "eve", "zed"]);
    assert_eq!(search(Some("storage lead"), None, false).await, ["eve"]);
    assert_eq!(search(Some("BOB@EXAMPLE"), None, false).await, ["bob"]);
    // `%` and `_` are literal.
    assert_eq!(search(Some("%"), None, false).await, ["bob"]);
    assert_eq!(search(Some("under_"), None, false).await, ["under_score"]);
    assert_eq!(search(Some("_"), None, false).await, ["under_score"]);
    // Blank text means no text filter.
    assert_eq!(search(Some("  "), None, false).await.len(), 6);

    // Department filter includes sub-departments but not name prefixes.
    assert_eq!(search(None, Some("Eng"), false).await, ["alice", "bob", "eve"]);
    assert_eq!(search(None, Some("Eng/Backend"), false).await, ["alice", "eve"]);
    assert_eq!(search(None, Some("R_D"), false).await, ["underxscore"]);
    assert_eq!(search(Some("smith"), Some("Eng/Backend/Storage"), false).await, ["eve"]);
    assert!(search(None, Some("Nope"), true).await.is_empty());

    // Pagination reports the full total.
    let (page, total) = store.search_users(None, None, true, 2, 3).await.unwrap();
    assert_eq!(total, 7);
    assert_eq!(names(&page), ["dave", "eve", "under_score"]);
    let (page, total) = store.search_users(None, None, false, 5, 10).await.unwrap();
    assert_eq!(total, 6);
    assert_eq!(names(&page), ["underxscore"]);
}

// ---------------------------------------------------------------------------
// Sessions and devices
// ---------------------------------------------------------------------------

fn session(user_id: i64, token: u8, device: u8, expires_at_ms: i64) -> SessionRecord {
    SessionRecord {
        token_hash: *blake3::hash(&[token]).as_bytes(),
        user_id,
        device_id: [device; 16],
        created_at_ms: 1_000,
        expires_at_ms,
        revoked: false,
    }
}

async fn case_sessions(store: Store) {
    let alice = add(&store, "alice").await;
    let bob = add(&store, "bob").await;
    let s1 = session(alice.id, 1, 1, 10_000);
    store.create_session(s1.clone()).await.unwrap();
    assert_eq!(store.session_by_hash(&s1.token_hash).await.unwrap(), Some(s1.clone()));
    let (joined, user) = store.session_and_user(&s1.token_hash).await.unwrap().unwrap();
    assert_eq!((joined, user.name), (s1.clone(), "alice".to_string()));
    assert!(store.session_and_user(&[9; 32]).await.unwrap().is_none());
    assert!(matches!(store.create_session(s1.clone()).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.session_by_hash(&[9; 32]).await.unwrap(), None);

    // Rotation: the new session takes over, the old one is unusable.
    let new_hash = *blake3::hash(b"rotated").as_bytes();
    assert!(store.rotate_session(&s1.token_hash, &new_hash, 20_000, 5_000).await.unwrap());
    let old = store.session_by_hash(&s1.token_hash).await.unwrap().unwrap();
    assert!(old.revoked && !old.is_usable(5_000));
    let new = store.session_by_hash(&new_hash).await.unwrap().unwrap();
    assert_eq!(
        (new.user_id, new.device_id, new.created_at_ms, new.expires_at_ms),
        (alice.id, s1.device_id, 5_000, 20_000)
    );
    assert!(new.is_usable(5_000));
    let again = *blake3::hash(b"again").as_bytes();
    assert!(!store.rotate_session(&s1.token_hash, &again, 20_000, 5_000).await.unwrap());
    assert_eq!(store.session_by_hash(&again).await.unwrap(), None);

    // An expired session cannot rotate.
    let s2 = session(alice.id, 2, 2, 6_000);
    store.create_session(s2.clone()).await.unwrap();
    assert!(!store.rotate_session(&s2.token_hash, &again, 20_000, 6_000).await.unwrap());
    assert_eq!(store.session_by_hash(&again).await.unwrap(), None);
    assert!(!store.session_by_hash(&s2.token_hash).await.unwrap().unwrap().revoked);

    // Revocation: one, per device, per user.
    let s3 = session(alice.id, 3, 2, 30_000);
    let s4 = session(alice.id, 4, 3, 30_000);
    let s5 = session(bob.id, 5, 2, 30_000);
    for s in [&s3, &s4, &s5] {
        store.create_session(s.clone()).await.unwrap();
    }
    assert!(store.revoke_session(&s4.token_hash).await.unwrap());
    assert!(!store.revoke_session(&[7; 32]).await.unwrap());
    assert_eq!(store.revoke_device_sessions(alice.id, [2; 16]).await.unwrap(), 2); // s2, s3
    assert!(store.session_by_hash(&s5.token_hash).await.unwrap().unwrap().is_usable(7_000));
    assert_eq!(store.revoke_user_sessions(alice.id).await.unwrap(), 1); // the rotated one
    assert_eq!(store.revoke_user_sessions(alice.id).await.unwrap(), 0);
    assert!(!store.session_by_hash(&new_hash).await.unwrap().unwrap().is_usable(7_000));

    // Purge removes everything expired by then, revoked or not.
    assert_eq!(store.purge_expired_sessions(10_000).await.unwrap(), 2); // s1, s2
    assert_eq!(store.session_by_hash(&s1.token_hash).await.unwrap(), None);
    assert!(store.session_by_hash(&s3.token_hash).await.unwrap().is_some());
    assert_eq!(store.purge_expired_sessions(30_000).await.unwrap(), 4);
}

fn device(user_id: i64, id: u8, peer: &[u8]) -> DeviceRecord {
    DeviceRecord {
        user_id,
        device_id: [id; 16],
        name: format!("laptop {id}"),
        peer_id: peer.to_vec(),
        x25519: [id; 32],
        cert: vec![0xC0, id],
        cert_expires_at_ms: 90_000,
        revoked: false,
        last_seen_ms: 1_000,
    }
}

async fn case_devices(store: Store) {
    let alice = add(&store, "alice").await;
    let bob = add(&store, "bob").await;
    let d1 = device(alice.id, 1, b"peer-1");
    let d2 = device(alice.id, 2, b"peer-2");
    store.upsert_device(d1.clone()).await.unwrap();
    store.upsert_device(d2.clone()).await.unwrap();
    store.upsert_device(device(bob.id, 1, b"peer-b")).await.unwrap();
    assert_eq!(store.device(alice.id, [1; 16]).await.unwrap(), Some(d1.clone()));
    assert_eq!(store.device(alice.id, [9; 16]).await.unwrap(), None);

    // Upsert updates in place.
    let renewed = DeviceRecord {
        name: "renamed".into(),
        cert: vec![1, 2, 3],
        cert_expires_at_ms: 190_000,
        last_seen_ms: 5_000,
        ..d1.clone()
    };
    store.upsert_device(renewed.clone()).await.unwrap();
    assert_eq!(store.devices_of(alice.id, false).await.unwrap(), vec![renewed.clone(), d2.clone()]);

    // Revocation is visible, sticky, and scoped to the device.
    assert!(!store.is_peer_revoked(b"peer-2").await.unwrap());
    assert!(store.revoke_device(alice.id, [2; 16]).await.unwrap());
    assert!(store.revoke_device(alice.id, [2; 16]).await.unwrap());
    assert!(!store.revoke_device(alice.id, [9; 16]).await.unwrap());
    assert!(store.is_peer_revoked(b"peer-2").await.unwrap());
    assert!(!store.is_peer_revoked(b"peer-1").await.unwrap());
    assert!(!store.is_peer_revoked(b"unknown").await.unwrap());
    // A login is blocked by its own device being revoked or by its PeerId
    // revoked on any device.
    assert!(store.is_device_blocked(alice.id, [2; 16], b"fresh").await.unwrap());
    assert!(store.is_device_blocked(alice.id, [8; 16], b"peer-2").await.unwrap());
    assert!(!store.is_device_blocked(alice.id, [1; 16], b"peer-1").await.unwrap());
    assert!(!store.is_device_blocked(bob.id, [2; 16], b"peer-b").await.unwrap());
    assert!(matches!(store.upsert_device(d2.clone()).await, Err(StoreError::Conflict(_))));
    assert!(store.device(alice.id, [2; 16]).await.unwrap().unwrap().revoked);
    assert_eq!(store.devices_of(alice.id, false).await.unwrap(), vec![renewed.clone()]);
    assert_eq!(store.devices_of(alice.id, true).await.unwrap().len(), 2);
    assert_eq!(store.devices_of(bob.id, false).await.unwrap().len(), 1);

    // The relay's allow-list: valid, unrevoked devices of enabled users.
    let valid = |now| {
        let store = store.clone();
        async move { store.valid_peer_ids(now).await.unwrap() }
    };
    assert_eq!(valid(80_000).await, vec![b"peer-1".to_vec(), b"peer-b".to_vec()]);
    assert_eq!(valid(100_000).await, vec![b"peer-1".to_vec()]);
    assert_eq!(valid(190_000).await, Vec::<Vec<u8>>::new());
    store.set_disabled("bob", true).await.unwrap();
    assert_eq!(valid(80_000).await, vec![b"peer-1".to_vec()]);
    // A PeerId revoked on one device is refused on every device.
    store.upsert_device(device(bob.id, 3, b"peer-2")).await.unwrap();
    store.set_disabled("bob", false).await.unwrap();
    assert_eq!(valid(80_000).await, vec![b"peer-1".to_vec(), b"peer-b".to_vec()]);
}

/// A login or resume writes its session, a serial and the device together,
/// or nothing at all.
async fn case_session_start(store: Store) {
    let alice = add(&store, "alice").await;
    let issue = |user_id: i64, id: u8| {
        move |serial: u64| {
            Ok((DeviceRecord { cert: serial.to_be_bytes().to_vec(), ..device(user_id, id, b"peer-s") }, serial))
        }
    };

    // A login: the session, serial 1 and the device with its certificate.
    let s1 = session(alice.id, 1, 4, 10_000);
    let serial = store.start_session(SessionStart::Create(s1.clone()), issue(alice.id, 4)).await.unwrap();
    assert_eq!(serial, Some(1));
    assert_eq!(store.session_by_hash(&s1.token_hash).await.unwrap(), Some(s1.clone()));
    assert_eq!(store.device(alice.id, [4; 16]).await.unwrap().unwrap().cert, 1u64.to_be_bytes().to_vec());

    // A resume: rotation, serial 2, the device's certificate renewed.
    let new_hash = *blake3::hash(b"resumed").as_bytes();
    let rotate = |old: [u8; 32], new: [u8; 32], now_ms| SessionStart::Rotate {
        old_hash: old,
        new_hash: new,
        new_expires_ms: 20_000,
        now_ms,
    };
    let serial = store.start_session(rotate(s1.token_hash, new_hash, 5_000), issue(alice.id, 4)).await.unwrap();
    assert_eq!(serial, Some(2));
    assert!(store.session_by_hash(&s1.token_hash).await.unwrap().unwrap().revoked);
    assert!(store.session_by_hash(&new_hash).await.unwrap().unwrap().is_usable(5_000));
    assert_eq!(store.device(alice.id, [4; 16]).await.unwrap().unwrap().cert, 2u64.to_be_bytes().to_vec());

    // Resuming a used token changes nothing and uses no serial.
    let other = *blake3::hash(b"other").as_bytes();
    let none = store.start_session(rotate(s1.token_hash, other, 5_000), issue(alice.id, 4)).await.unwrap();
    assert_eq!(none, None);
    assert_eq!(store.session_by_hash(&other).await.unwrap(), None);
    assert_eq!(store.next_serial().await.unwrap(), 3);

    // A revoked device: the rotation is rolled back with the device write.
    assert!(store.revoke_device(alice.id, [4; 16]).await.unwrap());
    let refused = store.start_session(rotate(new_hash, other, 6_000), issue(alice.id, 4)).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    assert!(!store.session_by_hash(&new_hash).await.unwrap().unwrap().revoked);
    assert_eq!(store.session_by_hash(&other).await.unwrap(), None);
    assert_eq!(store.next_serial().await.unwrap(), 4);

    // A failing certificate step stores nothing either.
    let s2 = session(alice.id, 2, 5, 10_000);
    let failed = store
        .start_session(SessionStart::Create(s2.clone()), |_| {
            Err::<(DeviceRecord, ()), _>(StoreError::InvalidInput("no certificate".into()))
        })
        .await;
    assert!(matches!(failed, Err(StoreError::InvalidInput(_))), "{failed:?}");
    assert_eq!(store.session_by_hash(&s2.token_hash).await.unwrap(), None);
    assert_eq!(store.device(alice.id, [5; 16]).await.unwrap(), None);

    // Several in one commit: each succeeds or fails on its own, and a
    // serial taken by one rolled back is handed out again.
    let (s3, s4) = (session(alice.id, 3, 6, 10_000), session(alice.id, 4, 7, 10_000));
    let fails: Issue<u64> = Box::new(|_| Err(StoreError::InvalidInput("no certificate".into())));
    let results = store
        .start_sessions(vec![
            (SessionStart::Create(s3.clone()), Box::new(issue(alice.id, 6))),
            (rotate(s1.token_hash, other, 7_000), Box::new(issue(alice.id, 6))),
            (SessionStart::Create(s4.clone()), fails),
            (SessionStart::Create(s2.clone()), Box::new(issue(alice.id, 5))),
        ])
        .await
        .unwrap();
    assert!(
        matches!(results[..], [Ok(Some(5)), Ok(None), Err(StoreError::InvalidInput(_)), Ok(Some(6))]),
        "{results:?}"
    );
    assert!(store.session_by_hash(&s3.token_hash).await.unwrap().is_some());
    assert_eq!(store.session_by_hash(&s4.token_hash).await.unwrap(), None);
    assert_eq!(store.device(alice.id, [7; 16]).await.unwrap(), None);
    assert_eq!(store.device(alice.id, [5; 16]).await.unwrap().unwrap().cert, 6u64.to_be_bytes().to_vec());
}

async fn case_next_serial_concurrent(store: Store) {
    let first = store.next_serial().await.unwrap();
    assert_eq!(first, 1);
    // Spawn all first (collect), then await: a lazy iterator would run them one by one.
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.next_serial().await.unwrap() })
        })
        .collect();
    let mut serials = Vec::new();
    for caller in callers {
        serials.push(caller.await.unwrap());
    }
    let unique: BTreeSet<u64> = serials.iter().copied().collect();
    assert_eq!(unique.len(), 20, "serials must be unique: {serials:?}");
    assert_eq!(unique.into_iter().collect::<Vec<_>>(), (2..=21).collect::<Vec<u64>>());
    assert_eq!(store.next_serial().await.unwrap(), 22);
}

async fn case_events_ordering(store: Store) {
    assert_eq!(store.last_event_seq().await.unwrap(), 0);
    assert!(store.events_since(0, 10).await.unwrap().is_empty());
    let a = store.record_event("user_disabled", 7, None, 100).await.unwrap();
    let b = store.record_event("device_revoked", 7, Some([3; 16]), 200).await.unwrap();
    let c = store.record_event("password_changed", 8, None, 150).await.unwrap();
    assert!(a < b && b < c);
    assert_eq!(store.last_event_seq().await.unwrap(), c);

    let all = store.events_since(0, 10).await.unwrap();
    let kinds: Vec<&str> = all.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["user_disabled", "device_revoked", "password_changed"]);
    assert_eq!(all[1].device_id, Some([3; 16]));
    assert_eq!((all[1].user_id, all[1].at_ms), (7, 200));
    assert_eq!(all[0].device_id, None);
    assert_eq!(store.events_since(a, 10).await.unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), [b, c]);
    assert_eq!(store.events_since(0, 2).await.unwrap().len(), 2);
    assert!(store.events_since(c, 10).await.unwrap().is_empty());

    // Concurrent writers still produce a gap-free, increasing log.
    // Spawn all first (collect), then await: a lazy iterator would run them one by one.
    let writers: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.record_event("burst", i, None, 300).await.unwrap() })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let burst = store.events_since(c, 100).await.unwrap();
    assert_eq!(burst.len(), 10);
    assert!(burst.windows(2).all(|w| w[0].seq < w[1].seq));
}

// ---------------------------------------------------------------------------
// Mailbox
// ---------------------------------------------------------------------------

fn mail(id: u8, to: &UserRecord, device: u8, from: &UserRecord, size: usize, at: i64) -> MailRecord {
    MailRecord {
        id: [id; 16],
        to_user_id: to.id,
        to_device: [device; 16],
        from_user_id: from.id,
        from_user: String::new(),
        from_app: None,
        sealed: vec![id; size],
        stored_at_ms: at,
    }
}

async fn case_mailbox(store: Store) {
    let alice = add(&store, "alice").await;
    let bob = add(&store, "bob").await;
    let roomy = MailboxLimits { max_items_per_device: 100, max_bytes_per_user: 1_000_000, ..MailboxLimits::default() };

    // Store time orders first, then insertion order (items 3 and 1 tie).
    let batch =
        [mail(2, &bob, 1, &alice, 10, 200), mail(3, &bob, 1, &alice, 10, 100), mail(1, &bob, 1, &alice, 10, 100)];
    assert_eq!(store.mailbox_put(&batch, roomy).await.unwrap(), 3);
    assert_eq!(store.mailbox_put(&[mail(4, &bob, 2, &alice, 10, 50)], roomy).await.unwrap(), 1);
    let fetched = store.mailbox_fetch(bob.id, [1; 16], 10).await.unwrap();
    assert_eq!(fetched.iter().map(|m| m.id[0]).collect::<Vec<_>>(), [3, 1, 2]);
    assert!(fetched.iter().all(|m| m.from_user == "alice" && m.from_user_id == alice.id));
    assert_eq!(fetched[0].sealed, vec![3; 10]);
    assert_eq!(fetched[0].stored_at_ms, 100);
    assert_eq!(store.mailbox_fetch(bob.id, [1; 16], 2).await.unwrap().len(), 2);

    // Duplicates (same recipient device and id) are ignored, also within a batch.
    let dup = [mail(2, &bob, 1, &alice, 10, 300), mail(5, &bob, 1, &alice, 10, 300), mail(5, &bob, 1, &alice, 10, 300)];
    assert_eq!(store.mailbox_put(&dup, roomy).await.unwrap(), 1);
    assert_eq!(store.mailbox_count(bob.id, [1; 16]).await.unwrap(), 4);
    // The same id for another device is a different item.
    assert_eq!(store.mailbox_put(&[mail(2, &bob, 2, &alice, 10, 300)], roomy).await.unwrap(), 1);

    // Over a limit: nothing from the batch is stored.
    let five_per_device =
        MailboxLimits { max_items_per_device: 5, max_bytes_per_user: 1_000_000, ..MailboxLimits::default() };
    let too_many = [mail(6, &bob, 1, &alice, 10, 400), mail(7, &bob, 1, &alice, 10, 400)];
    match store.mailbox_put(&too_many, five_per_device).await {
        Err(StoreError::MailboxFull { user, .. }) => assert_eq!(user, "bob"),
        other => panic!("expected MailboxFull, got {other:?}"),
    }
    assert_eq!(store.mailbox_count(bob.id, [1; 16]).await.unwrap(), 4);
    assert_eq!(store.mailbox_put(&too_many[..1], five_per_device).await.unwrap(), 1);
    let small_user = MailboxLimits { max_items_per_device: 100, max_bytes_per_user: 100, ..MailboxLimits::default() };
    let mixed = [mail(8, &alice, 1, &bob, 10, 400), mail(9, &bob, 3, &alice, 40, 400)];
    assert!(matches!(store.mailbox_put(&mixed, small_user).await, Err(StoreError::MailboxFull { .. })));
    assert_eq!(store.mailbox_count(alice.id, [1; 16]).await.unwrap(), 0, "the put must be all-or-nothing");

    // Ack removes only the named items of that device.
    assert_eq!(store.mailbox_ack(bob.id, [1; 16], &[[3; 16], [1; 16], [42; 16]]).await.unwrap(), 2);
    assert_eq!(store.mailbox_ack(bob.id, [1; 16], &[[3; 16]]).await.unwrap(), 0);
    assert_eq!(store.mailbox_count(bob.id, [1; 16]).await.unwrap(), 3);
    assert_eq!(store.mailbox_count(bob.id, [2; 16]).await.unwrap(), 2);

    // Purge by age.
    assert_eq!(store.mailbox_purge_older_than(250).await.unwrap(), 2); // bob/1 #2 (200), bob/2 #4 (50)
    assert_eq!(
        store.mailbox_fetch(bob.id, [1; 16], 10).await.unwrap().iter().map(|m| m.id[0]).collect::<Vec<_>>(),
        [5, 6]
    );
    assert_eq!(
        store.mailbox_fetch(bob.id, [2; 16], 10).await.unwrap().iter().map(|m| m.id[0]).collect::<Vec<_>>(),
        [2]
    );
}

async fn case_mailbox_quota_concurrent(store: Store) {
    let alice = add(&store, "alice").await;
    let bob = add(&store, "bob").await;
    let limits = MailboxLimits { max_items_per_device: 3, max_bytes_per_user: 1_000_000, ..MailboxLimits::default() };
    // Open all pooled connections first, so the puts below really overlap.
    let warmups: Vec<_> = (0..40)
        .map(|_| {
            let store = store.clone();
            let bob_id = bob.id;
            tokio::spawn(async move { store.mailbox_count(bob_id, [1; 16]).await.unwrap() })
        })
        .collect();
    for warmup in warmups {
        warmup.await.unwrap();
    }
    // Many puts racing for few slots: the quota must still hold.
    // Spawn all first (collect), then await: a lazy iterator would run them one by one.
    let puts: Vec<_> = (0..40_u8)
        .map(|i| {
            let store = store.clone();
            let items = [mail(i, &bob, 1, &alice, 10, 100), mail(i, &bob, 2, &alice, 10, 100)];
            tokio::spawn(async move { store.mailbox_put(&items, limits).await })
        })
        .collect();
    let mut stored = 0;
    for put in puts {
        match put.await.unwrap() {
            Ok(n) => stored += n,
            Err(StoreError::MailboxFull { .. }) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(stored, 6);
    assert_eq!(store.mailbox_count(bob.id, [1; 16]).await.unwrap(), 3);
    assert_eq!(store.mailbox_count(bob.id, [2; 16]).await.unwrap(), 3);
}

// ---------------------------------------------------------------------------
// Backend-independent
// ---------------------------------------------------------------------------

#[tokio::test]
async fn open_errors_never_show_passwords() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Store::open("postgres://skein:hunter2@127.0.0.1:1/skein").await {
        Err(err @ StoreError::Open { .. }) => {
            let StoreError::Open { url_redacted, .. } = &err else { unreachable!() };
            assert_eq!(url_redacted, "postgres://skein:***@127.0.0.1:1/skein");
            assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
        }
        other => panic!("expected Open, got {other:?}"),
    }
    match Store::open("mysql://root:hunter2@localhost/db").await {
        Err(err @ StoreError::UnsupportedUrl { .. }) => assert!(!err.to_string().contains("hunter2")),
        other => panic!("expected UnsupportedUrl, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_is_wal_and_shared_with_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tracker.db").display());
    let tracker = Store::open(&url).await.unwrap();
    // A second store on the same file stands in for the admin CLI process.
    let cli = Store::open(&url).await.unwrap();

    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&pool).await.unwrap();
    assert_eq!(mode.to_ascii_lowercase(), "wal");
    pool.close().await;

    let seen = tracker.last_event_seq().await.unwrap();
    let alice = add(&cli, "alice").await;
    // Writers in both "processes" at once wait for each other instead of failing.
    let (a, b) =
        tokio::join!(cli.set_disabled("alice", true), tracker.record_event("tracker_side", alice.id, None, 1),);
    a.unwrap();
    b.unwrap();
    let seq = cli.record_event("user_disabled", alice.id, None, 2).await.unwrap();
    let events = tracker.events_since(seen, 10).await.unwrap();
    assert_eq!(events.last().map(|e| e.seq), Some(seq));
    assert!(tracker.user_by_name("alice").await.unwrap().unwrap().disabled);
    tracker.close().await;
    cli.close().await;
}

// ---------------------------------------------------------------------------
// Ending access
// ---------------------------------------------------------------------------

/// A login as the tracker stores it: checked against `epoch`, capped at ten devices.
fn login_start(session: SessionRecord, epoch: i64) -> SessionStart {
    SessionStart::Login { session, epoch, max_devices: 10 }
}

fn issue_device(user_id: i64, id: u8) -> impl FnOnce(u64) -> Result<(DeviceRecord, u64), StoreError> + Send + 'static {
    move |serial| Ok((device(user_id, id, &[b'p', id]), serial))
}

async fn case_access_end(store: Store) {
    let alice = add(&store, "alice").await;
    for (token, dev) in [(1, 1), (2, 2), (3, 3)] {
        let started =
            store.start_session(login_start(session(alice.id, token, dev, 100_000), 0), issue_device(alice.id, dev));
        assert!(started.await.unwrap().is_some());
    }
    let tokens = |t: &[u8]| t.iter().map(|n| *blake3::hash(&[*n]).as_bytes()).collect::<std::collections::HashSet<_>>();

    // A logout: one device's session and certificate end; no epoch change.
    let ev = store.end_access(AccessEnd::new(alice.id, DeviceScope::One([1; 16]), "signed_out", 5_000)).await.unwrap();
    assert_eq!((ev.kind.as_str(), ev.device_id), ("signed_out", Some([1; 16])));
    assert_eq!(store.live_tokens_of(alice.id).await.unwrap(), tokens(&[2, 3]));
    assert_eq!(store.device(alice.id, [1; 16]).await.unwrap().unwrap().cert_expires_at_ms, 5_000);
    assert!(!store.device(alice.id, [1; 16]).await.unwrap().unwrap().revoked, "signed out, not revoked");
    assert_eq!(store.user_by_id(alice.id).await.unwrap().unwrap().session_epoch, 0);

    // A password change from device 2: every other device ends, the epoch moves.
    let mut change = AccessEnd::new(alice.id, DeviceScope::AllBut([2; 16]), "sessions_revoked", 6_000);
    change.password_hash = Some("$argon2id$changed".into());
    let ev = store.end_access(change).await.unwrap();
    assert_eq!(ev.device_id, None);
    assert_eq!(store.live_tokens_of(alice.id).await.unwrap(), tokens(&[2]));
    let user = store.user_by_id(alice.id).await.unwrap().unwrap();
    assert_eq!((user.session_epoch, user.password_hash.as_str()), (1, "$argon2id$changed"));
    assert_eq!(store.device(alice.id, [3; 16]).await.unwrap().unwrap().cert_expires_at_ms, 6_000);
    assert_eq!(store.device(alice.id, [2; 16]).await.unwrap().unwrap().cert_expires_at_ms, 90_000);
    assert_eq!(store.device(alice.id, [1; 16]).await.unwrap().unwrap().cert_expires_at_ms, 5_000, "ended earlier");

    // Disabling ends everything; revoking a device is for good.
    let mut disable = AccessEnd::new(alice.id, DeviceScope::All, "user_disabled", 7_000);
    disable.disable = true;
    store.end_access(disable).await.unwrap();
    assert!(store.live_tokens_of(alice.id).await.unwrap().is_empty());
    assert!(store.user_by_id(alice.id).await.unwrap().unwrap().disabled);
    let mut revoke = AccessEnd::new(alice.id, DeviceScope::One([3; 16]), "device_revoked", 8_000);
    revoke.revoke_device = true;
    store.end_access(revoke).await.unwrap();
    assert!(store.device(alice.id, [3; 16]).await.unwrap().unwrap().revoked);
    let mut missing = AccessEnd::new(alice.id, DeviceScope::One([9; 16]), "device_revoked", 8_000);
    missing.revoke_device = true;
    assert!(matches!(store.end_access(missing).await, Err(StoreError::NotFound(_))));
    assert!(matches!(
        store.end_access(AccessEnd::new(9999, DeviceScope::All, "user_disabled", 1)).await,
        Err(StoreError::NotFound(_))
    ));
    // Events come back in order for every tracker to act on.
    let kinds: Vec<String> = store.events_since(0, 10).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["signed_out", "sessions_revoked", "user_disabled", "device_revoked"]);
}

async fn case_login_racing_a_disable(store: Store) {
    // A login that checked its password before a disable or reset (epoch
    // 0) and is stored after it is refused.
    let alice = add(&store, "alice").await;
    let mut disable = AccessEnd::new(alice.id, DeviceScope::All, "user_disabled", 2_000);
    disable.disable = true;
    store.end_access(disable).await.unwrap();
    let late = store.start_session(login_start(session(alice.id, 1, 1, 100_000), 0), issue_device(alice.id, 1));
    assert_eq!(late.await.unwrap(), None, "refused: the account changed while it logged in");
    assert!(store.session_by_hash(blake3::hash(&[1]).as_bytes()).await.unwrap().is_none());

    // Racing for real, many times over: whichever commits first, no
    // session started before the reset survives it.
    let bob = add(&store, "bob").await;
    for round in 0..20u8 {
        let epoch = store.user_by_id(bob.id).await.unwrap().unwrap().session_epoch;
        let s = session(bob.id, 100 + round, 2, 100_000);
        let login = {
            let store = store.clone();
            let s = s.clone();
            tokio::spawn(async move { store.start_session(login_start(s, epoch), issue_device(bob.id, 2)).await })
        };
        let reset = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut end = AccessEnd::new(bob.id, DeviceScope::All, "sessions_revoked", 3_000 + i64::from(round));
                end.password_hash = Some(format!("$argon2id$round{round}"));
                store.end_access(end).await
            })
        };
        let (stored, ended) = (login.await.unwrap().unwrap(), reset.await.unwrap());
        ended.unwrap();
        let row = store.session_by_hash(&s.token_hash).await.unwrap();
        match stored {
            None => assert_eq!(row, None, "round {round}: a refused login stores nothing"),
            Some(_) => assert!(row.unwrap().revoked, "round {round}: a login stored first is ended by the reset"),
        }
        assert!(store.live_tokens_of(bob.id).await.unwrap().is_empty(), "round {round}");
    }
}

async fn case_mailbox_sender_share(store: Store) {
    let alice = add(&store, "alice").await;
    let bob = add(&store, "bob").await;
    let carol = add(&store, "carol").await;
    let limits = MailboxLimits {
        max_items_per_device: 100,
        max_bytes_per_user: 1_000_000,
        sender_share: SenderShare { items_per_device: 2, bytes_per_user: 250 },
    };
    let item = |from: &UserRecord, n: u8, size: usize| MailRecord {
        id: [n; 16],
        to_user_id: bob.id,
        to_device: [1; 16],
        from_user_id: from.id,
        from_user: from.name.clone(),
        from_app: None,
        sealed: vec![n; size],
        stored_at_ms: 1_000,
    };
    assert_eq!(store.mailbox_put(&[item(&alice, 1, 10), item(&alice, 2, 10)], limits).await.unwrap(), 2);
    let full = store.mailbox_put(&[item(&alice, 3, 10)], limits).await;
    assert!(
        matches!(&full, Err(StoreError::MailboxFull { user, limit }) if user == "bob" && limit.contains("any one sender")),
        "{full:?}"
    );
    assert_eq!(store.mailbox_count(bob.id, [1; 16]).await.unwrap(), 2, "nothing of the refused put stored");
    assert_eq!(store.mailbox_put(&[item(&carol, 4, 10)], limits).await.unwrap(), 1, "others still get through");
    let big = store.mailbox_put(&[MailRecord { to_device: [2; 16], ..item(&carol, 5, 300) }], limits).await;
    assert!(matches!(big, Err(StoreError::MailboxFull { .. })), "bytes count per sender too: {big:?}");

    // Items an app posted are stored under the recipient's own id, named
    // after the app, and each app is a sender of its own: bob's copies to
    // his other devices and two apps each get their share.
    let from_app = |app: Option<&str>, n: u8| MailRecord { from_app: app.map(str::to_owned), ..item(&bob, n, 10) };
    for app in [None, Some("Tickets"), Some("Alerts")] {
        let put = [
            from_app(app, 10 + app.map_or(0, |a| a.len() as u8)),
            from_app(app, 20 + app.map_or(0, |a| a.len() as u8)),
        ];
        assert_eq!(store.mailbox_put(&put, limits).await.unwrap(), 2, "{app:?} has a share of its own");
        let over = store.mailbox_put(&[from_app(app, 30 + app.map_or(0, |a| a.len() as u8))], limits).await;
        assert!(matches!(over, Err(StoreError::MailboxFull { .. })), "{app:?}: {over:?}");
    }
    let fetched = store.mailbox_fetch(bob.id, [1; 16], 100).await.unwrap();
    let names: Vec<&str> = fetched.iter().map(|r| r.from_user.as_str()).collect();
    assert_eq!(
        names,
        ["alice", "alice", "carol", "bob", "bob", "app:Tickets", "app:Tickets", "app:Alerts", "app:Alerts"]
    );
    assert_eq!(fetched[5].from_app.as_deref(), Some("Tickets"));
    assert_eq!(fetched[0].from_app, None);
}

async fn case_mailbox_put_each(store: Store) {
    let alice = add(&store, "alice").await;
    let bob = add(&store, "bob").await;
    let carol = add(&store, "carol").await;
    let dave = add(&store, "dave").await;
    let limits = MailboxLimits {
        max_items_per_device: 100,
        max_bytes_per_user: 1_000_000,
        sender_share: SenderShare { items_per_device: 2, bytes_per_user: 10_000 },
    };
    let item = |to: &UserRecord, n: u8| MailRecord {
        id: [n; 16],
        to_user_id: to.id,
        to_device: [1; 16],
        from_user_id: alice.id,
        from_user: alice.name.clone(),
        from_app: None,
        sealed: vec![n; 10],
        stored_at_ms: 1_000,
    };
    // Carol's mailbox already holds alice's share.
    assert_eq!(store.mailbox_put(&[item(&carol, 1), item(&carol, 2)], limits).await.unwrap(), 2);
    let puts = vec![
        vec![item(&bob, 3), MailRecord { to_device: [2; 16], ..item(&bob, 3) }],
        vec![item(&carol, 4)],
        vec![item(&dave, 5)],
        vec![item(&dave, 5)],
    ];
    let out = store.mailbox_put_each(&puts, limits).await.unwrap();
    assert_eq!(out.len(), 4, "{out:?}");
    assert!(matches!(out[0], Ok(2)), "{out:?}");
    assert!(matches!(&out[1], Err(StoreError::MailboxFull { user, .. }) if user == "carol"), "{out:?}");
    assert!(matches!(out[2], Ok(1)), "{out:?}");
    assert!(matches!(out[3], Ok(0)), "a copy already stored is not stored twice: {out:?}");
    assert_eq!(store.mailbox_count(bob.id, [2; 16]).await.unwrap(), 1);
    assert_eq!(store.mailbox_count(carol.id, [1; 16]).await.unwrap(), 2, "nothing of the refused put stored");
    assert_eq!(store.mailbox_count(dave.id, [1; 16]).await.unwrap(), 1);
}

// ---------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------

async fn case_group_changes_page_forward(store: Store) {
    let alice = add(&store, "alice").await;
    let g = [0x70; 16];
    store.create_group(g, "team", Some(alice.id), &[], 4, 1_000).await.unwrap();
    store.create_group([0x71; 16], "other", Some(alice.id), &[], 4, 1_000).await.unwrap();
    for v in (1..=7).rev() {
        store.log_group_change(g, v, "alice", &[v as u8], 1_000 + v).await.unwrap();
    }
    store.log_group_change(g, 3, "mallory", &[0xff], 9_999).await.unwrap();
    store.log_group_change([0x71; 16], 1, "bob", &[1], 1_000).await.unwrap();
    let page = |after, limit| {
        let store = store.clone();
        async move { store.group_changes(g, after, limit).await.unwrap() }
    };
    let versions = |rows: Vec<(i64, String, Vec<u8>, i64)>| rows.into_iter().map(|r| r.0).collect::<Vec<_>>();
    assert_eq!(versions(page(0, 3).await), [1, 2, 3], "the oldest first");
    assert_eq!(versions(page(3, 3).await), [4, 5, 6]);
    assert_eq!(versions(page(6, 3).await), [7]);
    assert!(page(7, 3).await.is_empty());
    let third = page(2, 1).await.remove(0);
    assert_eq!((third.1.as_str(), third.2, third.3), ("alice", vec![3], 1_003), "a version is logged once");
}

async fn case_groups(store: Store) {
    let alice = add(&store, "alice").await;
    let bob = add(&store, "bob").await;
    add(&store, "carol").await;
    add(&store, "dave").await;
    let id = [0x61; 16];
    let members = vec!["carol".to_owned(), "bob".to_owned()];
    let g = store.create_group(id, "team", Some(alice.id), &members, 4, 1_000).await.unwrap();
    assert_eq!(g.members, ["alice", "bob", "carol"], "sorted, the owner included");
    assert_eq!((g.version, g.kind.clone()), (1, GroupKindRecord::Discussion(Some("alice".into()))));
    assert_eq!(store.groups_of(bob.id).await.unwrap(), vec![g.clone()]);
    let unknown = store.create_group([0x62; 16], "x", Some(alice.id), &["zed".to_owned()], 4, 1_000).await;
    assert!(matches!(unknown, Err(StoreError::NotFound(m)) if m.contains("zed")));
    assert_eq!(store.group([0x62; 16]).await.unwrap(), None, "nothing of a refused group is kept");

    // Every change is a new version.
    let g = store.change_group(id, GroupStoreChange::Add(vec!["dave".into()]), 4, 2_000).await.unwrap();
    assert_eq!((g.version, g.members.len()), (2, 4));
    let too_many = store.change_group(id, GroupStoreChange::Add(vec!["bob".into(), "zed".into()]), 4, 2_000).await;
    assert!(matches!(too_many, Err(StoreError::NotFound(_))));
    let g = store.change_group(id, GroupStoreChange::Remove(vec!["bob".into()]), 4, 3_000).await.unwrap();
    assert_eq!((g.version, g.has_member("bob")), (3, false));
    assert!(store.groups_of(bob.id).await.unwrap().is_empty());
    let five = add(&store, "erin").await;
    let _ = five;
    let g = store.change_group(id, GroupStoreChange::Add(vec!["erin".into()]), 4, 3_500).await.unwrap();
    assert_eq!(g.members.len(), 4);
    let over = store.change_group(id, GroupStoreChange::Add(vec!["bob".into()]), 4, 3_600).await;
    assert!(matches!(over, Err(StoreError::InvalidInput(m)) if m.contains("at most 4")), "the fifth is refused");
    assert_eq!(store.group(id).await.unwrap().unwrap().version, 4, "and changes nothing");
    let g = store.change_group(id, GroupStoreChange::Rename("crew".into()), 4, 4_000).await.unwrap();
    assert_eq!((g.name.as_str(), g.version), ("crew", 5));
    let g = store.change_group(id, GroupStoreChange::Close, 4, 5_000).await.unwrap();
    assert!(g.closed);
    let closed = store.change_group(id, GroupStoreChange::Rename("again".into()), 4, 6_000).await;
    assert!(matches!(closed, Err(StoreError::Conflict(m)) if m.contains("closed")));
    assert!(matches!(store.change_group([9; 16], GroupStoreChange::Close, 4, 1).await, Err(StoreError::NotFound(_))));
    // Org groups have no owner.
    let org = store.create_group([0x63; 16], "all hands", None, &["bob".to_owned()], 500, 1).await.unwrap();
    assert_eq!((org.kind, org.members), (GroupKindRecord::Org, vec!["bob".to_owned()]));
    assert_eq!(store.all_groups().await.unwrap().len(), 2);
}

async fn case_department_groups(store: Store) {
    store.add_department("Eng/Backend").await.unwrap();
    let eng = department_group_id("Eng");
    let backend = department_group_id("Eng/Backend");
    let g = store.group(backend).await.unwrap().expect("a department has its group from the start");
    assert_eq!(
        (g.kind, g.name.as_str(), g.members.len()),
        (GroupKindRecord::Department("Eng/Backend".into()), "Backend", 0)
    );
    let alice = store.add_user(new_user("alice", "Alice", Some("Eng/Backend"))).await.unwrap();
    let before = store.group(eng).await.unwrap().unwrap();
    assert_eq!(before.members, ["alice"], "a department's group takes in its sub-departments");
    assert_eq!(store.group(backend).await.unwrap().unwrap().members, ["alice"]);
    let mine: Vec<[u8; 16]> = store.groups_of(alice.id).await.unwrap().iter().map(|g| g.id).collect();
    assert_eq!(mine.len(), 2);
    // A move: the old groups lose her, the new one gains her, all move on a version.
    let changed = store.set_user_department("alice", Some("Sales")).await.unwrap();
    let sales = department_group_id("Sales");
    let mut expected = vec![eng, backend, sales];
    expected.sort();
    assert_eq!(changed, expected);
    assert!(store.group(eng).await.unwrap().unwrap().members.is_empty());
    assert!(store.group(eng).await.unwrap().unwrap().version > before.version);
    assert_eq!(store.group(sales).await.unwrap().unwrap().members, ["alice"]);
    let mine: Vec<[u8; 16]> = store.groups_of(alice.id).await.unwrap().iter().map(|g| g.id).collect();
    assert_eq!(mine, vec![sales]);
    // The move logged each group's new version, in its own transaction.
    for (group, change) in
        [(eng, GroupChange::Removed(vec!["alice".into()])), (sales, GroupChange::Added(vec!["alice".into()]))]
    {
        let version = store.group(group).await.unwrap().unwrap().version;
        let logged = store.group_changes(group, version - 1, 10).await.unwrap();
        assert_eq!(logged.len(), 1, "{logged:?}");
        let decoded: GroupChange = skein_proto::frame::decode_payload(&logged[0].2).unwrap();
        assert_eq!((logged[0].0, decoded), (version, change));
    }
    // Department groups are not changed by hand.
    let by_hand = store.change_group(sales, GroupStoreChange::Add(vec!["alice".into()]), 500, 1).await;
    assert!(matches!(by_hand, Err(StoreError::Conflict(_))));
    assert!(matches!(store.set_user_department("nobody", None).await, Err(StoreError::NotFound(_))));
}
