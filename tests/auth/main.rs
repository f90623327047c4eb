//! Sign-in, sessions, keys, MFA, lockouts, CSRF and the audit log, through HTTP against a real
//! server on a manual clock. Every scenario runs on SQLite and on PostgreSQL.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

use std::time::Duration;

mod api;
mod lockouts;
mod oidc;

use api::*;
use common::session::{Browser, Db, Env, PASSWORD, redirect_of};
use lockouts::*;
use oidc::*;
use opsboard::auth::{AuditFilter, Role};

on_both_databases!(
    lockout_per_account_grows_and_ends,
    parallel_wrong_passwords_are_checked_no_more_than_the_limit,
    audit_entries_are_bounded,
    lockout_per_ip,
    lockout_per_forwarded_ip_behind_trusted_proxy,
    a_stranger_locks_only_themselves_out_and_sign_ins_share_a_rate,
    csrf_is_required_for_cookie_changes,
    sessions_expire_when_idle_and_absolutely,
    keys_are_scoped_revocable_and_rate_limited,
    password_change_and_disable_end_sessions,
    removed_tenant_folder_makes_tenant_inactive,
    global_admins_manage_users,
    tenant_admins_manage_keys_and_members,
    editors_silence_and_acknowledge,
    the_api_describes_itself,
    schemathesis_finds_nothing_undocumented,
    oidc_sign_in_applies_groups_at_every_sign_in,
    oidc_refuses_what_does_not_check_out,
    oidc_only_servers_take_no_passwords,
    oidc_callbacks_share_the_sign_in_rate,
);

/// What a request puts in the audit log is bounded: a tenant that is no tenant name stays out
/// of the tenant column, long details and actor names are cut.
async fn audit_entries_are_bounded(db: Db) {
    let Some(env) = Env::start(db, "audit_bounds", |_| {}).await else {
        return;
    };
    let actor = opsboard::auth::Actor::new("x".repeat(10_000), None);
    let event = opsboard::auth::AuditEvent::denied(
        "access",
        serde_json::json!({"path": "/".repeat(100_000)}),
    )
    .in_tenant("../../etc/passwd");
    env.auth.audit(&actor, event).await;
    let entries = env
        .auth
        .audit_entries(&AuditFilter::default())
        .await
        .unwrap();
    let entry = entries.iter().find(|e| e.action == "access").unwrap();
    assert_eq!(entry.tenant, None);
    assert!(entry.details.to_string().len() <= 4200, "details cut");
    assert!(entry.actor.len() <= 210, "actor cut");
    env.server.stop().await;
}

async fn csrf_is_required_for_cookie_changes(db: Db) {
    let Some(env) = Env::start(db, "csrf", |_| {}).await else {
        return;
    };
    env.user("cat@acme.test", false, &[("acme", Role::Admin)])
        .await;
    let b = env.signed_in("cat@acme.test").await;
    let csrf = b.csrf().await;
    // A form posted without the token, or with another, is refused and audited.
    let r = b
        .post_form("/t/acme/admin/keys", &[("name", "k"), ("scope", "read")])
        .await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("CSRF"));
    let r = b
        .post_form(
            "/t/acme/admin/keys",
            &[("_csrf", "0000"), ("name", "k"), ("scope", "read")],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(
        env.auth.keys(Some("acme")).await.unwrap().is_empty(),
        "no key was made"
    );
    // Scripts send the token as a header; the API under a cookie needs it too.
    let query = |token: Option<&str>| {
        let mut r = b
            .client
            .post(env.url("/api/v1/tenants/acme/query"))
            .json(&serde_json::json!({"sql": "SELECT 1 AS x"}));
        if let Some(t) = token {
            r = r.header("x-csrf-token", t);
        }
        r.send()
    };
    assert_eq!(query(None).await.unwrap().status(), 403);
    assert_eq!(query(Some(&csrf)).await.unwrap().status(), 200);
    // The login form has its own token: a post from elsewhere (no cookie) is refused.
    let stranger = Browser::new(&env.server.url);
    let r = stranger
        .post_form(
            "/login",
            &[
                ("_csrf", "x"),
                ("email", "cat@acme.test"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    // With the token, the change goes through.
    let r = b
        .post_form(
            "/t/acme/admin/keys",
            &[("_csrf", &csrf), ("name", "k"), ("scope", "read")],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(env.auth.keys(Some("acme")).await.unwrap().len(), 1);
    let denied = env
        .auth
        .audit_entries(&AuditFilter {
            outcome: Some("denied".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        denied
            .iter()
            .any(|e| e.details["reason"].as_str().unwrap_or("").contains("CSRF"))
    );
    env.server.stop().await;
}

async fn sessions_expire_when_idle_and_absolutely(db: Db) {
    let Some(env) = Env::start(db, "session_expiry", |c| {
        c.auth.session_idle_timeout = "30m".parse().unwrap();
        c.auth.session_absolute_timeout = "2h".parse().unwrap();
    })
    .await
    else {
        return;
    };
    env.user("dan@acme.test", false, &[("acme", Role::Viewer)])
        .await;
    let b = env.signed_in("dan@acme.test").await;
    assert_eq!(b.get("/t/acme").await.status(), 200);
    env.clock.advance(Duration::from_secs(20 * 60));
    assert_eq!(b.get("/t/acme").await.status(), 200, "20 min idle is fine");
    env.clock.advance(Duration::from_secs(25 * 60));
    assert_eq!(
        b.get("/t/acme").await.status(),
        200,
        "25 min since the last use"
    );
    // A session nobody comes back to is pruned once past its timeout; a live one stays.
    let forgotten = env.signed_in("dan@acme.test").await;
    drop(forgotten);
    assert_eq!(env.auth.prune_expired().await.unwrap().0, 0);
    env.clock.advance(Duration::from_secs(31 * 60));
    assert!(env.auth.prune_expired().await.unwrap().0 >= 1);
    let (status, location) = redirect_of(&b.get("/t/acme").await);
    assert_eq!(
        (status, location.as_str()),
        (303, "/login?next=%2Ft%2Facme"),
        "31 min idle ends it"
    );

    // Used every 20 minutes, the session still ends 2 hours after login.
    let b = env.signed_in("dan@acme.test").await;
    for _ in 0..5 {
        env.clock.advance(Duration::from_secs(20 * 60));
        assert_eq!(b.get("/t/acme").await.status(), 200);
    }
    env.clock.advance(Duration::from_secs(21 * 60));
    assert_eq!(
        b.get("/t/acme").await.status(),
        303,
        "2 h 1 min after login"
    );
    env.server.stop().await;
}

async fn keys_are_scoped_revocable_and_rate_limited(db: Db) {
    let Some(env) = Env::start(db, "keys", |c| {
        c.auth.api_burst = 10;
        c.auth.api_rate_per_second = 1.0;
    })
    .await
    else {
        return;
    };
    let (_, ingest) = env.key(Some("acme"), "ingest").await;
    let client = reqwest::Client::new();
    let write = |key: String, tenant: &'static str| {
        client
            .post(env.url(&format!("/api/v1/tenants/{tenant}/write/metrics")))
            .bearer_auth(key)
            .header("content-type", "application/x-ndjson")
            .body("{\"time\":\"2024-01-02T00:00:00Z\",\"host\":\"k\",\"cpu\":1,\"mem\":1}\n")
            .send()
    };
    assert_eq!(write(ingest.clone(), "acme").await.unwrap().status(), 200);
    assert_eq!(
        write(ingest.clone(), "globex").await.unwrap().status(),
        403,
        "bound to acme"
    );
    let q = client
        .post(env.url("/api/v1/tenants/acme/query"))
        .bearer_auth(&ingest)
        .json(&serde_json::json!({"sql": "SELECT count(*) FROM metrics"}))
        .send()
        .await
        .unwrap();
    assert_eq!(q.status(), 403, "ingest-only keys cannot query");
    for path in [
        "/api/v1/tenants/acme/tables",
        "/api/v1/tenants/acme/panels/cpu/data",
        "/t/acme",
    ] {
        let r = client
            .get(env.url(path))
            .bearer_auth(&ingest)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }

    // A typo is caught by the checksum; an unknown key is 401 too.
    let mut typo = ingest.clone();
    typo.replace_range(20..21, if &ingest[20..21] == "a" { "b" } else { "a" });
    let r = client
        .get(env.url("/api/v1/tenants/acme/tables"))
        .bearer_auth(&typo)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("checksum"));

    // The rate limit: 10 at once, then 429 with Retry-After; a second later one more.
    let (_, read) = env.key(Some("acme"), "read").await;
    let get = || {
        client
            .get(env.url("/api/v1/tenants/acme/tables"))
            .bearer_auth(read.clone())
            .send()
    };
    for _ in 0..10 {
        assert_eq!(get().await.unwrap().status(), 200);
    }
    let r = get().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    env.clock.advance(Duration::from_secs(1));
    assert_eq!(get().await.unwrap().status(), 200);

    // Revoked: refused on the very next request.
    let (id, reader) = env.key(Some("acme"), "read").await;
    let r = client
        .get(env.url("/api/v1/tenants/acme/tables"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    env.auth
        .revoke_key(&opsboard::auth::Actor::new("tests", None), &id)
        .await
        .unwrap();
    let r = client
        .get(env.url("/api/v1/tenants/acme/tables"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Expired keys stop working at their expiry.
    let request = opsboard::auth::NewKeyRequest {
        name: "short".into(),
        tenant: Some("acme".into()),
        scopes: vec![opsboard::auth::Scope::Read],
        expires_at: Some(env.clock_ms() + 60_000),
    };
    let (_, short) = env
        .auth
        .create_key(&opsboard::auth::Actor::new("tests", None), request)
        .await
        .unwrap();
    let r = client
        .get(env.url("/api/v1/tenants/acme/tables"))
        .bearer_auth(&short)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    env.clock.advance(Duration::from_secs(61));
    let r = client
        .get(env.url("/api/v1/tenants/acme/tables"))
        .bearer_auth(&short)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let used = env.auth.keys(Some("acme")).await.unwrap();
    assert!(
        used.iter().any(|k| k.last_used_at.is_some()),
        "last use is recorded"
    );
    env.server.stop().await;
}

async fn password_change_and_disable_end_sessions(db: Db) {
    let Some(env) = Env::start(db, "end_sessions", |_| {}).await else {
        return;
    };
    env.user("root@ops.test", true, &[]).await;
    let eve = env
        .user("eve@acme.test", false, &[("acme", Role::Viewer)])
        .await;
    let laptop = env.signed_in("eve@acme.test").await;
    let phone = env.signed_in("eve@acme.test").await;
    let csrf = laptop.csrf().await;
    // The current-password check is a guess like a login: it takes the account's lockout.
    let mut statuses = vec![];
    for _ in 0..6 {
        let r = laptop
            .post_form(
                "/account/password",
                &[
                    ("_csrf", &csrf),
                    ("current", "not the password"),
                    ("password", "a much newer password"),
                ],
            )
            .await;
        statuses.push((r.status().as_u16(), r.headers().contains_key("retry-after")));
    }
    assert_eq!(statuses[..5], [(400, false); 5], "{statuses:?}");
    assert_eq!(statuses[5], (429, true), "{statuses:?}");
    env.clock.advance(Duration::from_secs(3600));
    let r = laptop
        .post_form(
            "/account/password",
            &[
                ("_csrf", &csrf),
                ("current", PASSWORD),
                ("password", "a much newer password"),
            ],
        )
        .await;
    assert_eq!(redirect_of(&r), (303, "/login".into()));
    assert_eq!(
        phone.get("/t/acme").await.status(),
        303,
        "the other session ended too"
    );
    let b = env.browser().await;
    assert_eq!(
        b.login("eve@acme.test", "a much newer password")
            .await
            .status(),
        303
    );
    assert_eq!(b.get("/t/acme").await.status(), 200);
    let root = env.signed_in("root@ops.test").await;
    let csrf = root.csrf().await;
    root.post_form(&format!("/admin/users/{eve}/disable"), &[("_csrf", &csrf)])
        .await;
    assert_eq!(
        b.get("/t/acme").await.status(),
        303,
        "disabling ends sessions"
    );
    assert_eq!(
        env.browser()
            .await
            .login("eve@acme.test", "a much newer password")
            .await
            .status(),
        401
    );
    env.server.stop().await;
}

async fn removed_tenant_folder_makes_tenant_inactive(db: Db) {
    let Some(env) = Env::start(db, "tenant_sync", |_| {}).await else {
        return;
    };
    let id = env
        .user(
            "fay@acme.test",
            false,
            &[("acme", Role::Viewer), ("globex", Role::Viewer)],
        )
        .await;
    assert_eq!(
        env.auth.tenants(true).await.unwrap(),
        vec!["acme", "globex"]
    );
    std::fs::remove_dir_all(env.dirs.tenants().join("globex")).unwrap();
    // The server notices on its next configuration poll.
    let mut inactive = false;
    for _ in 0..50 {
        if env.auth.tenants(true).await.unwrap() == vec!["acme"] {
            inactive = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(inactive, "globex still active");
    assert_eq!(
        env.auth.tenants(false).await.unwrap(),
        vec!["acme", "globex"],
        "kept, inactive"
    );
    let roles = env.auth.roles(id).await.unwrap();
    assert!(roles.contains_key("acme") && !roles.contains_key("globex"));
    // Its data was not touched.
    assert!(
        !env.dirs.parquet_files("globex", "metrics").is_empty()
            || !env.dirs.wal_segments("globex", "metrics").is_empty()
    );
    env.server.stop().await;
}

/// Behind TLS the session cookie is `Secure` and `__Host-` prefixed (browsers then refuse it
/// from any other path, domain or plain-HTTP origin).
#[tokio::test]
async fn cookies_behind_tls_are_secure_and_host_prefixed() {
    let Some(env) = Env::start(Db::Sqlite, "behind_tls", |c| c.auth.behind_tls = true).await else {
        return;
    };
    env.user("tls@acme.test", false, &[("acme", Role::Viewer)])
        .await;
    let b = env.browser().await;
    let page = b.get("/login").await;
    assert_eq!(
        page.headers()["strict-transport-security"],
        "max-age=31536000",
        "HSTS behind TLS"
    );
    assert_eq!(page.headers()["cache-control"], "no-store");
    let login_cookie = page.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        login_cookie.starts_with("__Host-opsboard_login=") && login_cookie.contains("; Secure"),
        "{login_cookie}"
    );
    let csrf = common::session::csrf_in(&page.text().await.unwrap());
    let token = login_cookie.split(';').next().unwrap().to_string();
    let r = b
        .client
        .post(env.url("/login"))
        .header("cookie", token)
        .form(&[
            ("_csrf", csrf.as_str()),
            ("email", "tls@acme.test"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookies: Vec<&str> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("__Host-opsboard_session="))
        .expect("session cookie");
    for attribute in ["; Path=/", "; HttpOnly", "; SameSite=Strict", "; Secure"] {
        assert!(session.contains(attribute), "{session} lacks {attribute}");
    }
    assert!(!session.contains("Domain="));
    env.server.stop().await;
}
