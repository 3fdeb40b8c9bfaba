//! Provisioning over SCIM 2.0 (`/scim/v2`), over real TCP, as an identity
//! provider calls it: users created, found by filter, changed with the
//! PATCH shapes providers send, replaced, and deactivated (which ends
//! their live session at once); departments as SCIM groups, with members
//! moved in and out; and every refusal a SCIM error body.

use serde_json::{Value, json};
use skein_proto::control::Request;
use skein_tests::http::{Reply, request};
use skein_tests::{TestTracker, init, login};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

async fn call(api: SocketAddr, token: &str, method: &str, path: &str, body: Option<&Value>) -> Reply {
    let auth = format!("Bearer {token}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/scim+json")];
    let body = body.map(Value::to_string).unwrap_or_default();
    request(api, method, path, &headers, body.as_bytes()).await
}

/// Asserts `r` is a SCIM error with `status` (and `scim_type`) whose detail says `says`.
fn scim_error(r: &Reply, status: u16, scim_type: Option<&str>, says: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    let v = r.json();
    assert_eq!(v["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error");
    assert_eq!(v["status"], status.to_string());
    assert_eq!(v["scimType"].as_str(), scim_type, "{v}");
    assert!(v["detail"].as_str().is_some_and(|d| d.contains(says)), "{v} does not say {says:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_provider_creates_changes_and_deactivates_users_and_fills_departments() {
    init();
    let (t, api) = TestTracker::start_with_api().await;
    let store = t.store().await;
    let idp = skein_tracker::apps::create(&store, "Okta", &["admin".into()], None, 1).await.expect("app");
    let sender = skein_tracker::apps::create(&store, "Alerts", &["send".into()], None, 1).await.expect("app");
    store.close().await;
    let token = idp.token.as_str();

    let r = call(api, token, "GET", "/scim/v2/ServiceProviderConfig", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["patch"]["supported"], true);
    scim_error(&call(api, &sender.token, "GET", "/scim/v2/Users", None).await, 403, None, "\"admin\" scope");

    // Create.
    let dana = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "userName": "dana",
        "name": {"formatted": "Dana Scully", "givenName": "Dana", "familyName": "Scully"},
        "emails": [{"value": "dana@corp.example", "type": "work", "primary": true}],
        "title": "Agent",
        "password": PW,
        ENTERPRISE: {"department": "Engineering/Backend"},
    });
    let r = call(api, token, "POST", "/scim/v2/Users", Some(&dana)).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let made = r.json();
    let id = made["id"].as_str().expect("an id").to_owned();
    assert_eq!(r.header("location"), Some(format!("/scim/v2/Users/{id}").as_str()));
    assert_eq!(made["displayName"], "Dana Scully");
    assert_eq!(made["emails"][0]["value"], "dana@corp.example");
    assert_eq!(made[ENTERPRISE]["department"], "Engineering/Backend");
    assert_eq!(made["active"], true);
    scim_error(&call(api, token, "POST", "/scim/v2/Users", Some(&dana)).await, 409, Some("uniqueness"), "exists");
    let bad = json!({"userName": "Dana Scully@corp.example"});
    scim_error(
        &call(api, token, "POST", "/scim/v2/Users", Some(&bad)).await,
        400,
        Some("invalidValue"),
        "not a Skein user name",
    );
    scim_error(
        &call(api, token, "POST", "/scim/v2/Users", Some(&json!({"title": "x"}))).await,
        400,
        Some("invalidValue"),
        "userName is required",
    );

    // Find and read.
    let r = call(api, token, "GET", "/scim/v2/Users?filter=userName%20eq%20%22dana%22", None).await;
    assert_eq!(
        (r.json()["totalResults"].as_u64(), r.json()["Resources"][0]["id"].as_str()),
        (Some(1), Some(id.as_str()))
    );
    let r = call(api, token, "GET", "/scim/v2/Users?filter=userName%20eq%20%22nobody%22", None).await;
    assert_eq!(r.json()["totalResults"], 0);
    let r = call(api, token, "GET", "/scim/v2/Users?filter=emails%20co%20%22x%22", None).await;
    scim_error(&r, 400, Some("invalidFilter"), "userName eq");
    assert_eq!(call(api, token, "GET", &format!("/scim/v2/Users/{id}"), None).await.json()["userName"], "dana");
    scim_error(&call(api, token, "GET", "/scim/v2/Users/99999", None).await, 404, None, "no user");

    // Change, as providers send it: with a path, without one.
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "Replace", "path": "title", "value": "Senior Agent"},
        {"op": "replace", "value": {"displayName": "D. Scully", "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}]}},
    ]});
    let r = call(api, token, "PATCH", &format!("/scim/v2/Users/{id}"), Some(&patch)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!((v["title"].as_str(), v["displayName"].as_str()), (Some("Senior Agent"), Some("D. Scully")));
    assert_eq!(v["phoneNumbers"][0]["value"], "+1 555 0100");
    // A replacement clears what it leaves out.
    let put = json!({"userName": "dana", "displayName": "Dana Scully", "active": true});
    let v = call(api, token, "PUT", &format!("/scim/v2/Users/{id}"), Some(&put)).await.json();
    assert!(v.get("emails").is_none() && v.get("title").is_none() && v.get(ENTERPRISE).is_none(), "{v}");
    let rename = json!({"userName": "fox"});
    scim_error(
        &call(api, token, "PUT", &format!("/scim/v2/Users/{id}"), Some(&rename)).await,
        400,
        Some("mutability"),
        "cannot change",
    );
    scim_error(&call(api, token, "DELETE", &format!("/scim/v2/Users/{id}"), None).await, 405, None, "active=false");

    // Departments as groups: made with a member, members moved in and out.
    let r = call(
        api,
        token,
        "POST",
        "/scim/v2/Groups",
        Some(&json!({"displayName": "Sales/EMEA", "members": [{"value": id}]})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let group = r.json();
    let gid = group["id"].as_str().expect("group id").to_owned();
    assert_eq!(group["members"][0]["value"], id.as_str());
    let r = call(api, token, "GET", "/scim/v2/Groups?filter=displayName%20eq%20%22Sales%2FEMEA%22", None).await;
    assert_eq!(r.json()["totalResults"], 1);
    let store = t.store().await;
    assert_eq!(
        store.user_by_name("dana").await.expect("store").expect("dana").department.as_deref(),
        Some("Sales/EMEA")
    );
    let out = json!({"Operations": [{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]});
    let r = call(api, token, "PATCH", &format!("/scim/v2/Groups/{gid}"), Some(&out)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["members"], json!([]));
    assert_eq!(store.user_by_name("dana").await.expect("store").expect("dana").department, None);
    let back = json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": id}]}]});
    let r = call(api, token, "PATCH", &format!("/scim/v2/Groups/{gid}"), Some(&back)).await;
    assert_eq!(r.json()["members"][0]["display"], "dana");
    // Replacing the members (PATCH replace, or PUT) leaves exactly those listed.
    let empty = json!({"Operations": [{"op": "replace", "path": "members", "value": []}]});
    let r = call(api, token, "PATCH", &format!("/scim/v2/Groups/{gid}"), Some(&empty)).await;
    assert_eq!(r.json()["members"], json!([]), "replace sets the whole list");
    let put = json!({"displayName": "Sales/EMEA", "members": [{"value": id}]});
    let r = call(api, token, "PUT", &format!("/scim/v2/Groups/{gid}"), Some(&put)).await;
    assert_eq!((r.status, r.json()["members"][0]["value"].as_str()), (200, Some(id.as_str())));
    let renamed = json!({"displayName": "Sales/APAC", "members": []});
    scim_error(
        &call(api, token, "PUT", &format!("/scim/v2/Groups/{gid}"), Some(&renamed)).await,
        400,
        Some("mutability"),
        "cannot change",
    );
    // Only what is asked for (RFC 7644 §3.4.2.5).
    let r = call(api, token, "GET", &format!("/scim/v2/Users/{id}?attributes=userName"), None).await;
    let keys: Vec<String> = r.json().as_object().expect("object").keys().cloned().collect();
    assert_eq!(keys, ["id", "schemas", "userName"]);
    store.close().await;

    // Deactivation ends dana's live session at once.
    let dir = tempfile::tempdir().expect("tempdir");
    let session = login(&t, dir.path(), "dana", PW).await;
    let off = json!({"Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
    let r = call(api, token, "PATCH", &format!("/scim/v2/Users/{id}"), Some(&off)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["active"], false);
    let deadline = Instant::now() + Duration::from_secs(5);
    while session.client.request(Request::Ping { nonce: 1 }).await.is_ok() {
        assert!(Instant::now() < deadline, "dana's session outlived her deactivation");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = skein_node::session::login(
        &skein_node::profile::Profile::new(dir.path().join("again")),
        &t.address(),
        &t.ca_path(),
        "dana",
        PW.into(),
    )
    .await;
    assert!(again.is_err(), "a deactivated user cannot log in");
    let on = json!({"Operations": [{"op": "replace", "value": {"active": true}}]});
    assert_eq!(call(api, token, "PATCH", &format!("/scim/v2/Users/{id}"), Some(&on)).await.json()["active"], true);
}
