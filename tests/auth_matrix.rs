//! The isolation matrix: every route of the router (taken from `opsboard::http::routes()`, the
//! list the router is built from, so a new route cannot be left out) is called for tenant
//! `globex` by callers of tenant `acme` — an acme admin's session and an acme key with every
//! scope — and anonymously. Nothing of globex may come back and nothing of globex may change.
//! The same calls for acme must pass, so the matrix cannot pass by refusing everything.
//! Runs on SQLite and on PostgreSQL.

mod common;

use common::session::{Db, Env, GLOBEX_MARKER, redirect_of};
use opsboard::auth::Role;
use opsboard::http::{Access, routes};

/// The only routes anyone may call without signing in.
const PUBLIC: &[&str] = &[
    "GET /api/docs",
    "GET /api/v1/openapi.json",
    "GET /healthz",
    "GET /login",
    "POST /login",
    "GET /login/oidc/{provider}",
    "GET /login/oidc/{provider}/callback",
    "GET /static/app.css",
    "GET /static/app.js",
    "GET /static/favicon.svg",
];

struct Ids {
    user: String,
    key: String,
}

/// The route's path for `tenant`, every other parameter filled with something that exists.
fn fill(path: &str, tenant: &str, ids: &Ids) -> String {
    let action = if path.contains("/keys/") {
        "revoke"
    } else {
        "disable"
    };
    let id = if path.contains("/keys/") {
        &ids.key
    } else {
        &ids.user
    };
    path.replace("{tenant}", tenant)
        .replace("{table}", "metrics")
        .replace("{name}", "default")
        .replace("{dashboard}", "default")
        .replace("{panel}", "cpu")
        .replace("{id}", id)
        .replace("{action}", action)
}

/// `fill`, plus the query parameter that names the tenant on routes that take it there (the
/// InfluxDB write paths' `bucket` or `db`).
fn route_url(route: &opsboard::http::Route, tenant: &str, ids: &Ids) -> String {
    let path = fill(route.path, tenant, ids);
    match route.access {
        Access::TenantFrom(_, param) => format!("{path}?{param}={tenant}"),
        _ => path,
    }
}

async fn call(
    client: &reqwest::Client,
    method: &reqwest::Method,
    url: &str,
    auth: Option<&str>,
    csrf: Option<&str>,
) -> reqwest::Response {
    let mut request = client.request(method.clone(), url);
    if let Some(key) = auth {
        request = request.bearer_auth(key);
    }
    if *method == reqwest::Method::POST {
        let token = csrf.unwrap_or("");
        request = request.header("x-csrf-token", token);
        request = if url.contains("/query") {
            request.json(&serde_json::json!({"sql": "SELECT * FROM metrics"}))
        } else if url.contains("/write/") {
            request
                .header("content-type", "application/x-ndjson")
                .body("{\"time\":\"2024-01-01T00:00:00Z\",\"host\":\"x\",\"cpu\":1,\"mem\":1}\n")
        } else {
            request.form(&[
                ("_csrf", token),
                ("email", "victim@globex.test"),
                ("role", "viewer"),
                ("name", "x"),
                ("scope", "read"),
            ])
        };
    }
    request.send().await.expect("request")
}

async fn matrix(db: Db) {
    let Some(env) = Env::start(db, "isolation_matrix", |_| {}).await else {
        return;
    };
    env.user("admin@acme.test", false, &[("acme", Role::Admin)])
        .await;
    let victim = env
        .user("victim@globex.test", false, &[("globex", Role::Admin)])
        .await;
    let (_, acme_key) = env.key(Some("acme"), "ingest,read,act,admin").await;
    let (globex_key_id, _) = env.key(Some("globex"), "read").await;
    let ids = Ids {
        user: victim.to_string(),
        key: globex_key_id.clone(),
    };
    let rows_before = env.server.count("globex", "metrics").await;
    let browser = env.signed_in("admin@acme.test").await;
    let csrf = browser.csrf().await;
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let table = routes();
    let mut public: Vec<String> = table
        .iter()
        .filter(|r| r.access == Access::Public)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    public.sort();
    let mut expected = PUBLIC.to_vec();
    expected.sort();
    assert_eq!(
        public, expected,
        "a route became public; add it here only if it must be"
    );

    let mut checked = 0;
    for route in &table {
        let method = reqwest::Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
        let target = env.url(&route_url(route, "globex", &ids));
        let what = format!("{} {}", route.method, route.path);
        if route.access == Access::Public {
            continue;
        }
        // Anonymous: 401 from the API, the login page from pages.
        let r = call(&anonymous, &method, &target, None, None).await;
        let (status, location) = redirect_of(&r);
        if route.path.starts_with("/api/") || matches!(route.access, Access::TenantFrom(..)) {
            assert_eq!(status, 401, "anonymous {what}");
        } else {
            assert!(
                status == 303 && location.starts_with("/login"),
                "anonymous {what}: {status} {location}"
            );
        }
        let cross_tenant = matches!(
            route.access,
            Access::Tenant(_) | Access::TenantFrom(..) | Access::GlobalAdmin
        );
        if !cross_tenant {
            // Routes about the caller alone (their account, sign-out): nothing of globex in them.
            if method == reqwest::Method::GET {
                let body = browser
                    .get(&fill(route.path, "globex", &ids))
                    .await
                    .text()
                    .await
                    .unwrap();
                assert!(!body.contains(GLOBEX_MARKER), "{what} leaked globex");
            }
            continue;
        }
        for (who, response) in [
            (
                "acme admin session",
                call(&browser.client, &method, &target, None, Some(&csrf)).await,
            ),
            (
                "acme key",
                call(&anonymous, &method, &target, Some(&acme_key), None).await,
            ),
        ] {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            assert!(
                status == 403 || status == 404,
                "{who} on {what} for globex: {status} {body}"
            );
            assert!(
                !body.contains(GLOBEX_MARKER),
                "{who} on {what} got globex data: {body}"
            );
            checked += 1;
        }
        // The control: the same caller on its own tenant gets through the guard.
        if let Access::Tenant(need) = route.access
            && method == reqwest::Method::GET
        {
            let own = env.url(&route_url(route, "acme", &ids));
            let r = call(&browser.client, &method, &own, None, None).await;
            let status = r.status().as_u16();
            assert!(
                status != 401 && status != 403,
                "acme admin on own {what} ({need:?}): {status}"
            );
            let r = call(&anonymous, &method, &own, Some(&acme_key), None).await;
            assert!(
                r.status().as_u16() != 401 && r.status().as_u16() != 403,
                "acme key on own {what}"
            );
        }
    }
    assert!(checked >= 2 * 20, "only {checked} cross-tenant calls made");

    // Nothing of globex changed: rows, key, member.
    assert_eq!(env.server.count("globex", "metrics").await, rows_before);
    assert!(
        env.auth
            .key(&globex_key_id)
            .await
            .unwrap()
            .revoked_at
            .is_none()
    );
    let user = env.auth.user(victim).await.unwrap();
    assert!(!user.disabled);
    assert_eq!(
        env.auth.roles(victim).await.unwrap().get("globex"),
        Some(&Role::Admin)
    );
    // ...and the refusals are in the audit log.
    let denied = env
        .auth
        .audit_entries(&opsboard::auth::AuditFilter {
            outcome: Some("denied".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        denied
            .iter()
            .any(|e| e.actor == "user:admin@acme.test" && e.tenant.as_deref() == Some("globex"))
    );
    assert!(
        denied
            .iter()
            .any(|e| e.actor.starts_with("key:") && e.tenant.as_deref() == Some("globex"))
    );
    env.server.stop().await;
}

#[tokio::test]
async fn isolation_matrix_sqlite() {
    matrix(Db::Sqlite).await;
}

#[tokio::test]
async fn isolation_matrix_postgres() {
    matrix(Db::Postgres).await;
}
