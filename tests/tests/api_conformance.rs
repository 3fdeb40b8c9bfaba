//! The HTTP API against the reference tools an integrator would point at
//! it: Schemathesis generates requests from `/openapi.json` for a bounded
//! minute and finds no 5xx and no answer off the schema, and scim2-tester
//! runs its checks against `/scim/v2` (`tests/conformance/scim_check.py`
//! lists the parts of SCIM the tracker does not offer, each with why; any
//! other failed check fails the test).
//!
//! Both come from PyPI, in a Python virtual environment named by
//! `SKEIN_TEST_VENV` (`scripts/test` makes one).

use skein_tests::{TestTracker, init};
use std::path::{Path, PathBuf};

const PW: &str = "correct horse battery";

fn venv() -> PathBuf {
    let dir = std::env::var_os("SKEIN_TEST_VENV").map(PathBuf::from).unwrap_or_default();
    assert!(
        dir.join("bin/schemathesis").is_file() && dir.join("bin/python").is_file(),
        "set SKEIN_TEST_VENV to a Python virtual environment with schemathesis and scim2-tester \
         (scripts/test makes one; see its pip install line)"
    );
    dir
}

async fn run(program: &Path, args: &[&str], cwd: &Path) -> (bool, String) {
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(300),
        tokio::process::Command::new(program).args(args).current_dir(cwd).kill_on_drop(true).output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{} ran over 5 minutes", program.display()))
    .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs schemathesis and scim2-tester from PyPI in SKEIN_TEST_VENV (scripts/test makes it and runs this)"]
async fn schemathesis_and_scim2_tester_find_nothing_wrong() {
    init();
    let venv = venv();
    let (t, api) = TestTracker::start_with_api().await;
    t.add_user("bob", PW).await;
    let store = t.store().await;
    let scopes: Vec<String> = ["send", "presence", "admin"].map(String::from).to_vec();
    let app = skein_tracker::apps::create(&store, "Conformance", &scopes, None, 1).await.expect("app");
    let hook = skein_tracker::apps::create_hook(&store, Some("Deploys"), "bob", None, 1).await.expect("hook");
    store.close().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // The webhook's real id and secret, so requests reach past its 404.
    let config = format!("[parameters]\nid = \"{}\"\nsecret = \"{}\"\n", hook.app.id, hook.token);
    std::fs::write(dir.path().join("schemathesis.toml"), config).expect("config");

    let schema = format!("http://{api}/openapi.json");
    let auth = format!("Authorization: Bearer {}", app.token);
    let checks = "not_a_server_error,status_code_conformance,content_type_conformance,\
                  response_headers_conformance,response_schema_conformance";
    let args =
        ["--config-file", "schemathesis.toml", "run", &schema, "-H", &auth, "--max-time", "60", "--checks", checks];
    let (ok, out) = run(&venv.join("bin/schemathesis"), &args, dir.path()).await;
    println!("{out}");
    assert!(ok, "Schemathesis found problems (its report is above)");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/scim_check.py");
    let base = format!("http://{api}/scim/v2");
    let args = [script.to_str().expect("utf-8"), &base, &app.token];
    let (ok, out) = run(&venv.join("bin/python"), &args, dir.path()).await;
    println!("{out}");
    assert!(ok, "scim2-tester failed checks the tracker should pass (its report is above)");
}
