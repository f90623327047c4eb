//! The pages in a real browser: the `opsboard serve --demo` binary, Debian's Chromium driven by
//! playwright-core (`tests/e2e/dashboard.mjs`). Screenshots of each step land in
//! `target/e2e-screenshots/`. Needs `chromium` and `npm ci` in `tests/e2e`; `.ci/run` installs
//! both and sets `OPSBOARD_E2E=required`, without which a machine lacking them skips loudly.
//! A second walk (`tests/e2e/seeds.mjs`) goes through the seed tenants pimeet, kraliki,
//! pfcam (its events gallery) and omendb (its SLA dashboard).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{TestDirs, copy_dir};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const SEED_EDITOR: &str = "editor@seeds.test";
const SEED_VIEWER: &str = "viewer@seeds.test";

/// Whether Chromium and playwright-core are here; without them the test is skipped loudly, or
/// fails when `OPSBOARD_E2E=required`.
fn browser_available(test: &str) -> bool {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing = if !Path::new(&chromium).exists() {
        format!("no Chromium at {chromium} (apt-get install chromium)")
    } else if !Path::new(REPO)
        .join("tests/e2e/node_modules/playwright-core")
        .exists()
    {
        "no playwright-core (cd tests/e2e && npm ci)".to_string()
    } else {
        return true;
    };
    if std::env::var("OPSBOARD_E2E").as_deref() == Ok("required") {
        panic!("browser test required but {missing}");
    }
    eprintln!("SKIPPED {test}: {missing}");
    false
}

#[tokio::test]
async fn demo_dashboard_in_chromium() {
    if !browser_available("demo_dashboard_in_chromium") {
        return;
    }
    let dirs = TestDirs::new(&[]);
    for tenant in ["demo", "pimeet", "kraliki", "pfcam", "omendb"] {
        copy_dir(
            &Path::new(REPO).join("tenants").join(tenant),
            &dirs.tenants().join(tenant),
        );
    }
    copy_dir(
        &Path::new(REPO).join("panels"),
        &dirs.root.path().join("panels"),
    );
    // The browser signs in through the login page as a viewer of the demo tenant.
    let email = "e2e@demo.test";
    let password = "e2e password for chromium";
    // The walk also plays a device: it writes a reading that crosses an alert threshold.
    let ingest_key = {
        let config = dirs.config();
        let auth = opsboard::auth::Auth::open(&config, opsboard::clock::system())
            .await
            .expect("auth");
        let seeds = ["pimeet", "kraliki", "pfcam", "omendb"].map(String::from);
        let mut tenants = vec!["demo".to_string()];
        tenants.extend(seeds.iter().cloned());
        auth.sync_tenants(&tenants).await.expect("tenants");
        // The seed walk: an editor runs actions, a viewer must not see them.
        for (email, role) in [
            (SEED_EDITOR, opsboard::auth::Role::Editor),
            (SEED_VIEWER, opsboard::auth::Role::Viewer),
        ] {
            let user = auth
                .create_user(
                    &opsboard::auth::Actor::new("tests", None),
                    email,
                    "",
                    password,
                    false,
                )
                .await
                .expect("seed user");
            for tenant in &seeds {
                auth.grant(
                    &opsboard::auth::Actor::new("tests", None),
                    user.id,
                    tenant,
                    role,
                )
                .await
                .expect("grant");
            }
        }
        let actor = opsboard::auth::Actor::new("tests", None);
        let user = auth
            .create_user(&actor, email, "E2E", password, false)
            .await
            .expect("user");
        auth.grant(&actor, user.id, "demo", opsboard::auth::Role::Viewer)
            .await
            .expect("grant");
        let request = opsboard::auth::NewKeyRequest {
            name: "e2e device".into(),
            tenant: Some("demo".into()),
            scopes: vec![opsboard::auth::Scope::Ingest],
            expires_at: None,
        };
        auth.create_key(&actor, request).await.expect("key").1
    };
    let client = common::client_with_key(&common::admin_key(&dirs.config()).await);
    let (mut child, url) = common::spawn_opsboard(&dirs, &["--demo"]);

    // The demo backfills a week in the background; wait for it.
    let mut ready = false;
    for _ in 0..300 {
        let tables: serde_json::Value = match client
            .get(format!("{url}/api/v1/tenants/demo/tables"))
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        let metrics = tables
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["name"] == "metrics")
            .and_then(|t| t["rows"].as_u64())
            .unwrap_or(0);
        if metrics >= 7 * 1_440 * 5 - 10 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ready, "demo history never appeared");

    let shots = Path::new(REPO).join("target/e2e-screenshots");
    let output = Command::new("node")
        .arg(Path::new(REPO).join("tests/e2e/dashboard.mjs"))
        .arg(&url)
        .arg(&shots)
        .env("OPSBOARD_E2E_EMAIL", email)
        .env("OPSBOARD_E2E_PASSWORD", password)
        .env("OPSBOARD_E2E_KEY", &ingest_key)
        .output()
        .expect("run node");
    let seeds = Command::new("node")
        .arg(Path::new(REPO).join("tests/e2e/seeds.mjs"))
        .arg(&url)
        .arg(&shots)
        .env("OPSBOARD_E2E_EDITOR", SEED_EDITOR)
        .env("OPSBOARD_E2E_VIEWER", SEED_VIEWER)
        .env("OPSBOARD_E2E_PASSWORD", password)
        .output()
        .expect("run node");
    let _ = child.kill();
    let _ = child.wait();
    for (walk, output) in [("dashboard", &output), ("seeds", &seeds)] {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{walk} walk failed:\n{stdout}\n{stderr}"
        );
        assert!(stdout.contains("ok - no script errors"), "{stdout}");
    }
}

/// Signing in through an OpenID provider (`tests/e2e/idp.mjs`) and out again, in Chromium
/// (`tests/e2e/oidc.mjs`): the real redirects, the provider's pages, the pages' policy.
#[tokio::test]
async fn oidc_sign_in_in_chromium() {
    if !browser_available("oidc_sign_in_in_chromium") {
        return;
    }
    let Some(idp) = common::idp::Idp::start("oidc_sign_in_in_chromium") else {
        return;
    };
    let dirs = TestDirs::new(&[]);
    copy_dir(
        Path::new(common::fixture::FIXTURE),
        &dirs.tenants().join("acme"),
    );
    let mut config = dirs.config();
    config.auth.oidc = vec![idp.provider()];
    let server = common::TestServer::start(config).await;
    idp.accounts(serde_json::json!({"alice": {"groups": ["ops"]}}))
        .await;
    // The server runs on this test's runtime: the walk waits off it.
    let (url, issuer) = (server.url.clone(), idp.issuer.clone());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(Path::new(REPO).join("tests/e2e/oidc.mjs"))
            .arg(url)
            .arg(issuer)
            .arg(Path::new(REPO).join("target/e2e-screenshots-oidc"))
            .output()
            .expect("run node")
    })
    .await
    .expect("the walk");
    server.stop().await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "oidc walk failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ok - no console errors"), "{stdout}");
}
