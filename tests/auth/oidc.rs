//! OpenID Connect sign-in against a real provider: the npm `oidc-provider` package
//! (`tests/e2e/idp.mjs`), driven through its real redirects and sign-in forms. Group → role
//! mapping re-applied at every sign-in, RP-initiated logout, and every check refusing for real:
//! a tampered, replayed, foreign-browser or stale state, the provider's own error, and ID
//! tokens with a wrong nonce, past their expiry, signed by another key, for another audience,
//! or from another issuer — the provider signs those changed tokens itself (`/test/tamper`).

use opsboard::auth::{AuditFilter, Role};
use opsboard::config::ServerConfig;
use serde_json::{Value, json};

use crate::common::idp::Idp;
use crate::common::session::{Browser, Db, Env};

/// A server whose one provider is `idp`'s, changed by `configure`.
async fn env_with(
    db: Db,
    test: &str,
    configure: impl FnOnce(&mut ServerConfig, &Idp),
) -> Option<(Env, Idp)> {
    let idp = Idp::start(test)?;
    let env = Env::start(db, test, |config| {
        config.auth.oidc = vec![idp.provider()];
        configure(config, &idp);
    })
    .await?;
    Some((env, idp))
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The value of `attribute="…"` after `from` in `html`.
fn attribute<'a>(html: &'a str, from: &str, attribute: &str) -> Option<&'a str> {
    let start = html.find(from)?;
    let rest = &html[start..];
    let at = rest.find(&format!("{attribute}=\""))? + attribute.len() + 2;
    rest[at..].split('"').next()
}

/// Starts a sign-in at opsboard and goes through the provider's pages as `login`; returns the
/// callback URL the provider sends the browser back to (not yet opened).
async fn through_provider(b: &Browser, idp: &Idp, login: &str, next: &str) -> String {
    let r = b.get(&format!("/login/oidc/test?next={next}")).await;
    assert_eq!(r.status(), 303, "start: {:?}", r.text().await);
    let mut url = location(&r);
    assert!(url.starts_with(&idp.issuer), "sent to the provider: {url}");
    for _ in 0..20 {
        if url.starts_with(&b.base) {
            return url;
        }
        let r = b.client.get(&url).send().await.expect("provider page");
        if r.status().is_redirection() {
            let next = location(&r);
            url = if next.starts_with("http") {
                next
            } else {
                format!("{}{next}", idp.issuer)
            };
            continue;
        }
        let html = r.text().await.unwrap();
        let action = attribute(&html, "<form", "action").expect("a form on the provider's page");
        let form: Vec<(&str, &str)> = if html.contains("value=\"login\"") {
            vec![("prompt", "login"), ("login", login)]
        } else {
            vec![("prompt", "consent")]
        };
        let action = if action.starts_with("http") {
            action.to_string()
        } else {
            format!("{}{action}", idp.issuer)
        };
        let r = b
            .client
            .post(action)
            .form(&form)
            .send()
            .await
            .expect("provider form");
        assert!(
            r.status().is_redirection(),
            "after the form: {}",
            r.status()
        );
        url = location(&r);
        if !url.starts_with("http") {
            url = format!("{}{url}", idp.issuer);
        }
    }
    panic!("the provider never sent the browser back");
}

/// The `state` parameter of a callback URL.
fn state_in(url: &str) -> &str {
    let after = url.split("state=").nth(1).expect("a state in the callback");
    after.split('&').next().unwrap_or_default()
}

/// Opens the callback; returns status and page.
async fn callback(b: &Browser, url: &str) -> (u16, String) {
    let r = b.client.get(url).send().await.expect("callback");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

async fn sign_in(b: &Browser, idp: &Idp, login: &str) -> (u16, String) {
    let url = through_provider(b, idp, login, "/t/acme").await;
    callback(b, &url).await
}

async fn roles_of(env: &Env, email: &str) -> (bool, Vec<(String, Role)>) {
    let user = env.auth.user_by_email(email).await.expect("user");
    let roles = env.auth.roles(user.id).await.unwrap();
    (user.is_admin, roles.into_iter().collect())
}

async fn audit(env: &Env, action: &str, outcome: &str) -> Vec<opsboard::auth::AuditEntry> {
    let filter = AuditFilter {
        action: Some(action.into()),
        outcome: Some(outcome.into()),
        ..Default::default()
    };
    env.auth.audit_entries(&filter).await.unwrap()
}

pub async fn oidc_sign_in_applies_groups_at_every_sign_in(db: Db) {
    let Some((env, idp)) = env_with(db, "oidc_groups", |_, _| {}).await else {
        return;
    };
    idp.accounts(json!({"alice": {"groups": ["ops-leads", "globex-team"]}}))
        .await;
    let b = env.browser().await;
    let (status, page) = b.text("/login").await;
    assert_eq!(status, 200);
    assert!(page.contains("Sign in with Test IdP"), "{page}");
    assert!(page.contains("href=\"/login/oidc/test?next="), "{page}");

    // First sign-in: the user is created, linked, and given the mapped roles.
    let (status, page) = sign_in(&b, &idp, "alice").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("http-equiv=\"refresh\" content=\"0;url=&#x2f;t&#x2f;acme\""),
        "moves on by a same-site navigation: {page}"
    );
    assert!(b.session_token().is_some());
    assert_eq!(b.get("/t/acme").await.status(), 200, "signed in");
    let me: Value = b.get("/api/v1/me").await.json().await.unwrap();
    assert_eq!(me["email"], "alice@example.com", "{me}");
    assert_eq!(
        roles_of(&env, "alice@example.com").await,
        (
            false,
            vec![
                ("acme".into(), Role::Admin),
                ("globex".into(), Role::Editor)
            ]
        )
    );
    let created = audit(&env, "user.create", "ok").await;
    assert!(
        created.iter().any(|e| e.actor == "oidc:test"),
        "{created:?}"
    );
    assert_eq!(audit(&env, "user.link", "ok").await.len(), 1);
    let logins = audit(&env, "login", "ok").await;
    assert!(
        logins
            .iter()
            .any(|e| e.actor == "user:alice@example.com" && e.details["provider"] == "test"),
        "{logins:?}"
    );

    // Out of ops-leads and globex-team, into ops, with a new email at the provider: the same
    // user (found by issuer and subject), viewer in acme, no longer in globex.
    idp.accounts(json!({"alice": {"groups": ["ops"], "email": "alice.new@example.com"}}))
        .await;
    let b2 = env.browser().await;
    assert_eq!(sign_in(&b2, &idp, "alice").await.0, 200);
    assert_eq!(
        roles_of(&env, "alice@example.com").await,
        (false, vec![("acme".into(), Role::Viewer)])
    );
    assert!(
        env.auth
            .user_by_email("alice.new@example.com")
            .await
            .is_err()
    );
    let revoked = audit(&env, "user.revoke", "ok").await;
    assert!(
        revoked
            .iter()
            .any(|e| e.actor == "oidc:test" && e.tenant.as_deref() == Some("globex")),
        "{revoked:?}"
    );

    // Admin groups make and unmake global admins.
    idp.accounts(json!({"bob": {"groups": ["opsboard-admins"]}}))
        .await;
    assert_eq!(sign_in(&env.browser().await, &idp, "bob").await.0, 200);
    assert!(
        roles_of(&env, "bob@example.com").await.0,
        "bob is a global admin"
    );
    idp.accounts(json!({"bob": {"groups": []}})).await;
    env.user("root@example.com", true, &[]).await;
    assert_eq!(sign_in(&env.browser().await, &idp, "bob").await.0, 200);
    assert!(!roles_of(&env, "bob@example.com").await.0, "no longer");

    // A user an admin made first is linked by email, and keeps roles in unmapped tenants.
    env.user("carol@example.com", false, &[]).await;
    idp.accounts(json!({"carol": {"groups": ["ops"]}})).await;
    assert_eq!(sign_in(&env.browser().await, &idp, "carol").await.0, 200);
    assert_eq!(
        roles_of(&env, "carol@example.com").await.1,
        vec![("acme".into(), Role::Viewer)]
    );

    // Logout ends the local session and sends the browser to the provider's end-session page.
    let csrf = b.csrf().await;
    let r = b.post_form("/logout", &[("_csrf", &csrf)]).await;
    assert_eq!(r.status(), 303);
    let to = location(&r);
    assert!(
        to.starts_with(&format!("{}/session/end?", idp.issuer))
            && to.contains("client_id=opsboard-test")
            && to.contains("post_logout_redirect_uri="),
        "{to}"
    );
    let provider_page = b.client.get(&to).send().await.unwrap();
    assert_eq!(
        provider_page.status(),
        200,
        "the provider accepts the logout request"
    );
    assert_eq!(b.get("/t/acme").await.status(), 303, "signed out here");
    env.server.stop().await;
}

/// A refused callback: 403, the reason on the login page, no session, audited.
async fn refused(env: &Env, b: &Browser, url: &str, reason: &str) {
    let (status, page) = callback(b, url).await;
    assert_eq!(status, 403, "{reason}: {page}");
    assert!(page.contains(reason), "expected {reason:?} in {page}");
    assert!(b.session_token().is_none(), "{reason}: no session");
    let failed = audit(env, "login", "failed").await;
    assert!(
        failed.iter().any(|e| e.details["reason"]
            .as_str()
            .is_some_and(|r| r.contains(reason))),
        "{reason} audited: {failed:?}"
    );
}

pub async fn oidc_refuses_what_does_not_check_out(db: Db) {
    let Some((env, idp)) = env_with(db, "oidc_refusals", |_, _| {}).await else {
        return;
    };
    // The state: changed, from another browser, replayed, stale.
    let b = env.browser().await;
    let url = through_provider(&b, &idp, "dave", "/").await;
    let state = state_in(&url);
    let tampered = url.replace(state, &format!("{}x", state));
    refused(&env, &b, &tampered, "unknown or was already used").await;
    refused(
        &env,
        &env.browser().await,
        &url,
        "started in another browser",
    )
    .await;
    refused(&env, &b, &url, "unknown or was already used").await;
    let url = through_provider(&b, &idp, "dave", "/").await;
    env.clock.advance(std::time::Duration::from_secs(11 * 60));
    refused(&env, &b, &url, "longer than 10 minutes").await;
    // The provider's own refusal.
    let url = through_provider(&b, &idp, "dave", "/").await;
    let state = state_in(&url);
    let denied = format!(
        "{}/login/oidc/test/callback?error=access_denied&state={state}",
        b.base
    );
    refused(&env, &b, &denied, "access_denied").await;

    // ID tokens the provider signed with changed claims, or that another key signed.
    let now = chrono::Utc::now().timestamp();
    for (change, reason) in [
        (json!({"claims": {"nonce": "not-the-one"}}), "nonce"),
        (
            json!({"claims": {"exp": now - 600, "iat": now - 1200}}),
            "Expired",
        ),
        (
            json!({"claims": {"iat": now + 600, "exp": now + 1200}}),
            "issued in the future",
        ),
        (json!({"sign": "rogue"}), "Signature verification failed"),
        (json!({"claims": {"sub": ""}}), "subject"),
        (
            json!({"claims": {"aud": "another-client"}}),
            "Invalid audiences",
        ),
        (
            json!({"claims": {"iss": "http://127.0.0.1:1"}}),
            "Invalid issuer",
        ),
    ] {
        let url = through_provider(&b, &idp, "dave", "/").await;
        idp.tamper(change).await;
        refused(&env, &b, &url, reason).await;
    }
    assert!(
        env.auth.user_by_email("dave@example.com").await.is_err(),
        "never created"
    );

    // A token 30 s past its expiry is within the clock skew allowed.
    let url = through_provider(&b, &idp, "dave", "/").await;
    idp.tamper(json!({"claims": {"exp": now - 30}})).await;
    let (status, page) = callback(&b, &url).await;
    assert_eq!(status, 200, "{page}");
    let b = env.browser().await;

    // The provider rotates its key: the new key is fetched and the sign-in goes through.
    let url = through_provider(&b, &idp, "dave", "/").await;
    idp.tamper(json!({"sign": "next"})).await;
    let (status, page) = callback(&b, &url).await;
    assert_eq!(status, 200, "{page}");

    // The account: unverified email, a foreign domain, disabled; an existing account is
    // linked only when the provider says the email is verified (a new one is made without).
    idp.accounts(json!({
        "erin": {"email_verified": false},
        "frank": {"email": "frank@other.org"},
        "ivan": {"email_verified": "omit"},
        "jane": {"email_verified": "omit"},
    }))
    .await;
    // (A fresh browser for each person: the provider remembers who signed in there before.)
    env.user("ivan@example.com", false, &[("globex", Role::Admin)])
        .await;
    for (login, reason) in [
        ("ivan", "does not say ivan@example.com is verified"),
        ("erin", "has not verified erin@example.com"),
        ("frank", "other.org is not an allowed domain"),
    ] {
        let b = env.browser().await;
        let url = through_provider(&b, &idp, login, "/").await;
        refused(&env, &b, &url, reason).await;
    }
    let (status, _) = sign_in(&env.browser().await, &idp, "jane").await;
    assert_eq!(status, 200, "a new account is made without email_verified");
    let dave = env.auth.user_by_email("dave@example.com").await.unwrap();
    env.auth
        .set_disabled(&opsboard::auth::Actor::new("tests", None), dave.id, true)
        .await
        .unwrap();
    let b = env.browser().await;
    let url = through_provider(&b, &idp, "dave", "/").await;
    refused(&env, &b, &url, "is disabled").await;
    env.server.stop().await;
}

pub async fn oidc_only_servers_take_no_passwords(db: Db) {
    let Some((env, idp)) = env_with(db, "oidc_only", |config, _| {
        config.auth.local_passwords = false;
        config.auth.oidc[0].auto_create_users = false;
        let mut unreachable = config.auth.oidc[0].clone();
        unreachable.name = "unreachable".into();
        unreachable.issuer = "http://127.0.0.1:1".into();
        config.auth.oidc.push(unreachable);
    })
    .await
    else {
        return;
    };
    env.user("gina@example.com", false, &[]).await;
    let b = env.browser().await;
    let (_, page) = b.text("/login").await;
    assert!(!page.contains("type=\"password\""), "{page}");
    assert!(page.contains("Sign in with Test IdP"));
    // The form is gone; a post made by hand (with the login form's CSRF cookie) is refused.
    let csrf = b
        .cookie("opsboard_login")
        .expect("the login page's CSRF cookie");
    let r = b
        .post_form(
            "/login",
            &[
                ("_csrf", csrf.as_str()),
                ("email", "gina@example.com"),
                ("password", crate::common::session::PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("password is turned off"));
    assert!(b.session_token().is_none());
    // No account is made for strangers when auto_create_users is off.
    let url = through_provider(&b, &idp, "henry", "/").await;
    refused(&env, &b, &url, "henry@example.com has no opsboard account").await;
    let (status, page) = sign_in(&env.browser().await, &idp, "gina").await;
    assert_eq!(status, 200, "a known user signs in: {page}");
    // A provider that cannot be reached: the login page says so, instead of failing blankly.
    let r = env.browser().await.get("/login/oidc/unreachable").await;
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("discovery document"));
    let r = env.browser().await.get("/login/oidc/nope").await;
    assert_eq!(r.status(), 404);
    env.server.stop().await;
}

/// Made-up callbacks take from the sign-in rate like password checks: past the burst they get
/// 429 + `Retry-After`, and write no audit entry.
pub async fn oidc_callbacks_share_the_sign_in_rate(db: Db) {
    let Some(env) = Env::start(db, "oidc_rate", |config| {
        config.auth.logins_per_second = 0.01;
        config.auth.login_burst = 3;
        config.auth.oidc = vec![
            serde_yaml::from_str("name: test\nissuer: http://127.0.0.1:1\nclient_id: c\n").unwrap(),
        ];
    })
    .await
    else {
        return;
    };
    let b = env.browser().await;
    let mut statuses = vec![];
    for i in 0..5 {
        let r = b
            .get(&format!(
                "/login/oidc/test/callback?state=made-up-{i}&code=x"
            ))
            .await;
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
        }
    }
    assert_eq!(statuses, [403, 403, 403, 429, 429]);
    assert_eq!(audit(&env, "login", "failed").await.len(), 3);
    env.server.stop().await;
}
