//! Pages of access management over HTTP on a manual clock: TOTP enrolment and sign-in with
//! codes and recovery codes, the global admin's user pages, a tenant admin's members and keys,
//! and the audit log with audited exports. Runs on SQLite and on PostgreSQL.

#[macro_use]
mod common;

use std::time::Duration;

use common::session::{Db, Env, PASSWORD, redirect_of};
use opsboard::auth::{AuditFilter, Role};

on_both_databases!(
    mfa_enrolment_and_login,
    wrong_codes_lock_out_on_their_own_counters,
    rotated_server_key_keeps_second_factors_working,
    admin_and_tenant_admin_pages
);

async fn mfa_enrolment_and_login(db: Db) {
    let Some(env) = Env::start(db, "mfa", |c| c.auth.require_mfa_for_admins = true).await else {
        return;
    };
    env.user("root@ops.test", true, &[]).await;
    let b = env.browser().await;
    // Password alone gets an admin only as far as enrolment.
    let (status, location) = redirect_of(&b.login("root@ops.test", PASSWORD).await);
    assert_eq!((status, location.as_str()), (303, "/account"));
    assert_eq!(
        redirect_of(&b.get("/t/acme").await),
        (303, "/login/mfa".into())
    );
    let r = b
        .client
        .get(env.url("/api/v1/tenants/acme/tables"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a half-signed-in session reaches no API");
    let (csrf, page, secret) = start_enrolment(&b).await;
    assert!(
        page.contains("otpauth://totp/opsboard:root%40ops.test?secret="),
        "{page}"
    );
    assert!(page.contains("data:image/svg+xml;base64,"), "QR code");
    let code = |at_ms: i64| opsboard::auth::totp_code(&secret, at_ms / 30_000).unwrap();
    let wrong = b
        .post_form(
            "/account/mfa/confirm",
            &[("_csrf", &csrf), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status(), 400);
    let r = b
        .post_form(
            "/account/mfa/confirm",
            &[("_csrf", &csrf), ("code", &code(env.clock_ms()))],
        )
        .await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    let recovery: Vec<String> = page
        .split("<li><code>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().to_string())
        .collect();
    assert_eq!(recovery.len(), 10, "{page}");
    assert_eq!(b.get("/t/acme").await.status(), 200, "enrolled: signed in");

    // Next login asks for the code; a wrong one is refused, the right one signs in.
    let b = env.browser().await;
    assert_eq!(
        redirect_of(&b.login("root@ops.test", PASSWORD).await),
        (303, "/login/mfa".into())
    );
    let (_, mfa_page) = b.text("/login/mfa").await;
    let csrf = common::session::csrf_in(&mfa_page);
    assert_eq!(
        b.post_form("/login/mfa", &[("_csrf", &csrf), ("code", "123456")])
            .await
            .status(),
        400
    );
    // The code that confirmed enrolment is spent: the same code, still inside its window, is
    // refused; the next step's code signs in, once.
    let enrolment_code = code(env.clock_ms());
    let r = b
        .post_form("/login/mfa", &[("_csrf", &csrf), ("code", &enrolment_code)])
        .await;
    assert_eq!(r.status(), 400, "a used TOTP code is not accepted again");
    env.clock.advance(std::time::Duration::from_secs(30));
    let fresh = code(env.clock_ms());
    let r = b
        .post_form("/login/mfa", &[("_csrf", &csrf), ("code", &fresh)])
        .await;
    assert_eq!(redirect_of(&r), (303, "/".into()));
    assert_eq!(b.get("/t/acme").await.status(), 200);
    let replay = env.browser().await;
    replay.login("root@ops.test", PASSWORD).await;
    let (_, mfa_page) = replay.text("/login/mfa").await;
    let csrf = common::session::csrf_in(&mfa_page);
    let r = replay
        .post_form("/login/mfa", &[("_csrf", &csrf), ("code", &fresh)])
        .await;
    assert_eq!(r.status(), 400, "a code replayed in its window is refused");

    // A recovery code works once.
    for expected in [303, 400] {
        let b = env.browser().await;
        b.login("root@ops.test", PASSWORD).await;
        let (_, mfa_page) = b.text("/login/mfa").await;
        let csrf = common::session::csrf_in(&mfa_page);
        let r = b
            .post_form(
                "/login/mfa",
                &[("_csrf", &csrf), ("code", &recovery[0].to_uppercase())],
            )
            .await;
        assert_eq!(r.status(), expected);
    }
    let actions: Vec<String> = env
        .auth
        .audit_entries(&AuditFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(actions.contains(&"mfa.enable".into()) && actions.contains(&"mfa.verify".into()));
    env.server.stop().await;
}

/// Starts TOTP enrolment on the account page: the form's CSRF token, the page (unescaped)
/// and the secret it shows.
async fn start_enrolment(b: &common::session::Browser) -> (String, String, String) {
    let csrf = b.csrf().await;
    let page = b
        .post_form("/account/mfa/start", &[("_csrf", &csrf)])
        .await
        .text()
        .await
        .unwrap();
    let page = page.replace("&#x2f;", "/").replace("&amp;", "&");
    let secret = page
        .split("id=\"totp-secret\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    (csrf, page, secret)
}

/// Enrols `email` in TOTP through the account page; returns its secret and recovery codes.
async fn enrol(env: &Env, email: &str) -> (String, Vec<String>) {
    let b = env.browser().await;
    b.login(email, PASSWORD).await;
    let (csrf, _, secret) = start_enrolment(&b).await;
    let code = opsboard::auth::totp_code(&secret, env.clock_ms() / 30_000).unwrap();
    let r = b
        .post_form("/account/mfa/confirm", &[("_csrf", &csrf), ("code", &code)])
        .await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    let recovery = page
        .split("<li><code>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().to_string())
        .collect();
    (secret, recovery)
}

/// Signs `email` in with a code (TOTP or recovery); the final status (303 signed in).
async fn second_factor(env: &Env, email: &str, code: &str) -> u16 {
    let b = env.browser().await;
    assert_eq!(
        redirect_of(&b.login(email, PASSWORD).await),
        (303, "/login/mfa".into())
    );
    let (_, page) = b.text("/login/mfa").await;
    let csrf = common::session::csrf_in(&page);
    b.post_form("/login/mfa", &[("_csrf", &csrf), ("code", code)])
        .await
        .status()
        .as_u16()
}

/// The server key is rotated (`secret_key` new, the old one under `previous_secret_keys`):
/// TOTP and recovery codes made under the old key keep working, the TOTP secret is resealed at
/// start so the old key can then leave the ring, and the recovery codes it hashed then stop.
async fn rotated_server_key_keeps_second_factors_working(db: Db) {
    const OLD: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const NEW: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
    let Some(env) = Env::start(db, "key_rotation", |c| c.auth.secret_key = Some(OLD.into())).await
    else {
        return;
    };
    env.user("kai@acme.test", false, &[("acme", Role::Viewer)])
        .await;
    let (secret, recovery) = enrol(&env, "kai@acme.test").await;
    assert!(
        recovery.iter().all(|c| c.len() == 19),
        "80-bit codes: {recovery:?}"
    );
    let code_at = |env: &Env| opsboard::auth::totp_code(&secret, env.clock_ms() / 30_000).unwrap();

    let env = env
        .restart_with(|c| {
            c.auth.secret_key = Some(NEW.into());
            c.auth.previous_secret_keys = vec![OLD.into()];
        })
        .await;
    env.clock.advance(Duration::from_secs(30));
    assert_eq!(
        second_factor(&env, "kai@acme.test", &code_at(&env)).await,
        303
    );
    assert_eq!(
        second_factor(&env, "kai@acme.test", &recovery[0]).await,
        303
    );

    // The old key leaves: the resealed TOTP secret still opens, old recovery codes do not.
    let env = env
        .restart_with(|c| c.auth.previous_secret_keys.clear())
        .await;
    env.clock.advance(Duration::from_secs(30));
    assert_eq!(
        second_factor(&env, "kai@acme.test", &code_at(&env)).await,
        303
    );
    assert_eq!(
        second_factor(&env, "kai@acme.test", &recovery[1]).await,
        400
    );
    env.server.stop().await;
}

/// Wrong codes count against the account and the client on counters a correct password does
/// not clear: "sign in, send a few wrong codes" repeated runs into a lockout (429 with
/// Retry-After) that even the right code cannot pass; and a half-signed-in session ends after
/// three wrong codes.
async fn wrong_codes_lock_out_on_their_own_counters(db: Db) {
    let Some(env) = Env::start(db, "mfa_brute", |c| c.auth.max_failures_per_account = 5).await
    else {
        return;
    };
    env.user("mo@acme.test", false, &[("acme", Role::Viewer)])
        .await;
    let (secret, _) = enrol(&env, "mo@acme.test").await;
    env.clock.advance(Duration::from_secs(30));

    let half_signed_in = || async {
        let b = env.browser().await;
        assert_eq!(
            redirect_of(&b.login("mo@acme.test", PASSWORD).await),
            (303, "/login/mfa".into())
        );
        let (_, page) = b.text("/login/mfa").await;
        let csrf = common::session::csrf_in(&page);
        (b, csrf)
    };
    // Three wrong codes end the session: the password is asked again.
    let (b, csrf) = half_signed_in().await;
    for _ in 0..2 {
        let r = b
            .post_form("/login/mfa", &[("_csrf", &csrf), ("code", "000000")])
            .await;
        assert_eq!(r.status(), 400);
    }
    let r = b
        .post_form("/login/mfa", &[("_csrf", &csrf), ("code", "000000")])
        .await;
    assert_eq!(redirect_of(&r), (303, "/login".into()), "session ended");
    assert_eq!(redirect_of(&b.get("/t/acme").await).0, 303);

    // Each new login may not reset the count: the fifth wrong code locks the second factor.
    let (b, csrf) = half_signed_in().await;
    let r = b
        .post_form("/login/mfa", &[("_csrf", &csrf), ("code", "111111")])
        .await;
    assert_eq!(r.status(), 400, "fourth wrong code");
    let (b, csrf) = half_signed_in().await;
    let r = b
        .post_form("/login/mfa", &[("_csrf", &csrf), ("code", "222222")])
        .await;
    assert_eq!(r.status(), 429, "fifth wrong code locks");
    assert!(r.headers().contains_key("retry-after"));
    let right = opsboard::auth::totp_code(&secret, env.clock_ms() / 30_000).unwrap();
    let r = b
        .post_form("/login/mfa", &[("_csrf", &csrf), ("code", &right)])
        .await;
    assert_eq!(r.status(), 429, "not even the right code while locked");
    env.server.stop().await;
}

async fn admin_and_tenant_admin_pages(db: Db) {
    let Some(env) = Env::start(db, "admin_pages", |_| {}).await else {
        return;
    };
    env.user("root@ops.test", true, &[]).await;
    env.user("ta@acme.test", false, &[("acme", Role::Admin)])
        .await;
    env.user("viewer@acme.test", false, &[("acme", Role::Viewer)])
        .await;

    // Global admin creates a user: the generated password is shown once and works.
    let root = env.signed_in("root@ops.test").await;
    let csrf = root.csrf().await;
    let page = root
        .post_form(
            "/admin/users",
            &[
                ("_csrf", &csrf),
                ("email", "new@acme.test"),
                ("name", "New"),
                ("tenant", "acme"),
                ("role", "editor"),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    let password = page
        .split("Initial password (shown once): ")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .trim()
        .to_string();
    let newbie = env.browser().await;
    assert_eq!(newbie.login("new@acme.test", &password).await.status(), 303);
    let (_, home) = newbie.text("/").await;
    assert!(
        home.contains(">Acme</a>") && !home.contains("globex"),
        "the picker lists only own tenants: {home}"
    );

    // A tenant admin creates a key (shown once), uses it, rotates it, revokes the new one.
    let ta = env.signed_in("ta@acme.test").await;
    let csrf = ta.csrf().await;
    let page = ta
        .post_form(
            "/t/acme/admin/keys",
            &[
                ("_csrf", &csrf),
                ("name", "agent"),
                ("scope", "ingest"),
                ("scope", "read"),
                ("expires", "90d"),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    let key = page
        .split("id=\"new-secret\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    assert!(key.starts_with("opsb_"));
    let client = reqwest::Client::new();
    let tables = |k: String| {
        client
            .get(env.url("/api/v1/tenants/acme/tables"))
            .bearer_auth(k)
            .send()
    };
    assert_eq!(tables(key.clone()).await.unwrap().status(), 200);
    let (_, admin_page) = ta.text("/t/acme/admin").await;
    assert!(
        !admin_page.contains(&key),
        "the secret is never shown again"
    );
    let id = env.auth.keys(Some("acme")).await.unwrap()[0].id.clone();
    let page = ta
        .post_form(
            &format!("/t/acme/admin/keys/{id}/rotate"),
            &[("_csrf", &csrf)],
        )
        .await
        .text()
        .await
        .unwrap();
    let rotated = page
        .split("id=\"new-secret\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        tables(key).await.unwrap().status(),
        401,
        "rotation revokes the old key"
    );
    assert_eq!(tables(rotated.clone()).await.unwrap().status(), 200);
    // A tenant admin changes roles of their tenant's members only: an account outside the
    // tenant and no account at all get the same answer.
    let grant = |email: &'static str, role: &'static str| {
        let (ta, csrf) = (&ta, csrf.clone());
        async move {
            let r = ta
                .post_form(
                    "/t/acme/admin/members",
                    &[("_csrf", &csrf), ("email", email), ("role", role)],
                )
                .await;
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        }
    };
    let outsider = grant("root@ops.test", "viewer").await;
    let nobody = grant("nobody@nowhere.test", "viewer").await;
    assert!(
        outsider.contains("acme has no member with that email"),
        "{outsider}"
    );
    assert!(
        nobody.contains("acme has no member with that email"),
        "{nobody}"
    );
    let member = grant("viewer@acme.test", "viewer").await;
    assert!(
        member.contains("viewer@acme.test is now viewer of acme"),
        "{member}"
    );
    let r = ta
        .post_form(
            "/t/globex/admin/members",
            &[
                ("_csrf", &csrf),
                ("email", "ta@acme.test"),
                ("role", "admin"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    // Viewers do not manage.
    let viewer = env.signed_in("viewer@acme.test").await;
    assert_eq!(viewer.get("/t/acme/admin").await.status(), 403);
    assert_eq!(viewer.get("/admin").await.status(), 403);

    // Exports are audited with who, what, range and rows; the audit log filters and exports.
    let export = viewer.get("/api/v1/tenants/acme/panels/cpu/export?format=csv&from=2024-01-01T00:00:00Z&to=2024-01-01T12:00:00Z&disable_aggregation=true").await;
    assert_eq!(export.status(), 200);
    let lines = export.text().await.unwrap().lines().count();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let csv = root
        .get("/admin/audit?action=export&format=csv")
        .await
        .text()
        .await
        .unwrap();
    let line = csv
        .lines()
        .find(|l| l.contains("user:viewer@acme.test"))
        .unwrap_or_else(|| panic!("{csv}"));
    assert!(
        line.contains("cpu") && line.contains("2024-01-01T12:00:00Z"),
        "{line}"
    );
    assert!(
        line.contains(&format!("\"\"rows\"\":{}", lines - 1)),
        "{line}"
    );
    let (status, tenant_audit) = ta.text("/t/acme/admin/audit?action=apikey.create").await;
    assert_eq!(status, 200);
    assert!(tenant_audit.contains("user:ta@acme.test") && tenant_audit.contains("apikey.create"));
    assert!(!tenant_audit.contains(&rotated));
    env.server.stop().await;
}
