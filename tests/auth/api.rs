//! The JSON management API as scripts drive it: `GET /api/v1/me`, users (global admins),
//! tenants with usage, members and keys (tenant admins), silences and acknowledgements, with
//! the pages' access rules (CSRF for cookies, scopes for keys), their audit entries and 400s
//! that name the place; the public OpenAPI document and its page; and `schemathesis` fuzzing
//! the whole document against a live server with a tenant key.

use serde_json::{Value, json};

use super::common::session::{Browser, Db, Env};
use opsboard::auth::{AuditFilter, Role};

/// `method path` with a bearer key and a JSON body; (status, body as JSON or text).
async fn call(env: &Env, key: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = reqwest::Client::new()
        .request(method, env.url(path))
        .bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    answer(request.send().await.expect("request")).await
}

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// Each of `actions` is in the audit log, by an actor `by` accepts.
async fn assert_audited(env: &Env, actions: &[&str], by: impl Fn(&str) -> bool) {
    let entries = env
        .auth
        .audit_entries(&AuditFilter::default())
        .await
        .unwrap();
    for action in actions {
        let found = entries.iter().any(|e| e.action == *action && by(&e.actor));
        assert!(found, "{action} audited");
    }
}

/// A cookie caller's JSON request, with or without the session's CSRF token.
async fn session_call(
    browser: &Browser,
    method: &str,
    path: &str,
    body: Value,
    csrf: Option<&str>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = browser
        .client
        .request(method, format!("{}{path}", browser.base))
        .json(&body);
    if let Some(token) = csrf {
        request = request.header("x-csrf-token", token);
    }
    answer(request.send().await.expect("request")).await
}

pub async fn global_admins_manage_users(db: Db) {
    let Some(env) = Env::start(db, "api_users", |_| {}).await else {
        return;
    };
    let root = env.user("root@ops.test", true, &[]).await;
    let (_, admin_key) = env.key(None, "admin").await;
    let (status, me) = call(&env, &admin_key, "GET", "/api/v1/me", None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        (me["kind"].as_str(), me["global_admin"].as_bool()),
        (Some("key"), Some(true))
    );
    assert_eq!(me["scopes"], json!(["admin"]));

    let new = json!({"email": "New@Acme.test", "name": "New", "tenant": "acme", "role": "editor"});
    let (status, created) =
        call(&env, &admin_key, "POST", "/api/v1/users", Some(new.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["user"]["email"], "new@acme.test");
    assert_eq!(created["user"]["roles"], json!({"acme": "editor"}));
    let password = created["password"].as_str().unwrap().to_string();
    let browser = env.browser().await;
    assert_eq!(
        browser.login("new@acme.test", &password).await.status(),
        303
    );
    let (status, again) = call(&env, &admin_key, "POST", "/api/v1/users", Some(new)).await;
    assert_eq!(status, 409, "{again}");

    // Bad input names the place; nothing is created.
    let (status, e) = call(
        &env,
        &admin_key,
        "POST",
        "/api/v1/users",
        Some(json!({"email": 3})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        e["error"].as_str().unwrap().contains("line 1 column"),
        "{e}"
    );
    let bad_role = json!({"email": "x@acme.test", "tenant": "acme", "role": "owner"});
    let (status, e) = call(&env, &admin_key, "POST", "/api/v1/users", Some(bad_role)).await;
    assert_eq!(status, 400, "{e}");
    assert!(env.auth.user_by_email("x@acme.test").await.is_err());
    let (status, e) = call(&env, &admin_key, "GET", "/api/v1/users/abc", None).await;
    assert_eq!((status, e["error"].is_string()), (400, true), "{e}");

    let id = created["user"]["id"].as_i64().unwrap();
    let (status, user) = call(
        &env,
        &admin_key,
        "POST",
        &format!("/api/v1/users/{id}/disable"),
        None,
    )
    .await;
    assert_eq!(
        (status, user["disabled"].as_bool()),
        (200, Some(true)),
        "{user}"
    );
    assert_eq!(
        browser.get("/api/v1/me").await.status(),
        401,
        "disabling ends sessions"
    );
    call(
        &env,
        &admin_key,
        "POST",
        &format!("/api/v1/users/{id}/enable"),
        None,
    )
    .await;
    let (status, fresh) = call(
        &env,
        &admin_key,
        "POST",
        &format!("/api/v1/users/{id}/password"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let fresh = fresh["password"].as_str().unwrap();
    assert_eq!(
        env.browser()
            .await
            .login("new@acme.test", fresh)
            .await
            .status(),
        303
    );

    // The last enabled global admin keeps the role; with a second one, it can go.
    let set_admin = async |user: i64, admin: bool| {
        let path = format!("/api/v1/users/{user}/admin");
        call(
            &env,
            &admin_key,
            "PUT",
            &path,
            Some(json!({"global_admin": admin})),
        )
        .await
    };
    let (status, e) = set_admin(root, false).await;
    assert_eq!(status, 409, "{e}");
    let disable_root = format!("/api/v1/users/{root}/disable");
    let (status, e) = call(&env, &admin_key, "POST", &disable_root, None).await;
    assert_eq!(status, 409, "the last enabled admin stays enabled: {e}");
    assert_eq!(set_admin(id, true).await.0, 200);
    let (status, user) = set_admin(root, false).await;
    assert_eq!(
        (status, user["global_admin"].as_bool()),
        (200, Some(false)),
        "{user}"
    );

    let (status, users) = call(&env, &admin_key, "GET", "/api/v1/users", None).await;
    assert_eq!(status, 200);
    assert_eq!(users.as_array().unwrap().len(), 2);
    // A tenant key, even with every scope, is no global admin.
    let (_, tenant_key) = env.key(Some("acme"), "ingest,read,act,admin").await;
    let (status, _) = call(&env, &tenant_key, "GET", "/api/v1/users", None).await;
    assert_eq!(status, 403);

    // Every key, and global keys, for global admins only.
    let (status, all) = call(&env, &admin_key, "GET", "/api/v1/keys", None).await;
    assert_eq!(status, 200);
    let tenants: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["tenant"].as_str())
        .collect();
    assert!(tenants.contains(&"acme"), "{all}");
    let ask = json!({"name": "reporting", "scopes": ["read"]});
    let (status, _) = call(&env, &tenant_key, "POST", "/api/v1/keys", Some(ask.clone())).await;
    assert_eq!(status, 403);
    let (status, created) = call(&env, &admin_key, "POST", "/api/v1/keys", Some(ask)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["key"]["tenant"], Value::Null);
    let global_reader = created["secret"].as_str().unwrap();
    for tenant in ["acme", "globex"] {
        let path = format!("/api/v1/tenants/{tenant}/tables");
        assert_eq!(call(&env, global_reader, "GET", &path, None).await.0, 200);
    }
    let one = format!("/api/v1/keys/{}", created["key"]["id"].as_str().unwrap());
    assert_eq!(call(&env, &admin_key, "DELETE", &one, None).await.0, 200);
    let (status, _) = call(&env, global_reader, "GET", "/api/v1/me", None).await;
    assert_eq!(status, 401, "a revoked key is refused at once");

    let actions = ["user.create", "user.disable", "user.password", "user.admin"];
    assert_audited(&env, &actions, |actor| actor.starts_with("key:")).await;
    env.server.stop().await;
}

pub async fn tenant_admins_manage_keys_and_members(db: Db) {
    let Some(env) = Env::start(db, "api_keys_members", |_| {}).await else {
        return;
    };
    env.user("boss@acme.test", false, &[("acme", Role::Admin)])
        .await;
    let member = env
        .user("dev@acme.test", false, &[("acme", Role::Viewer)])
        .await;
    env.user("outsider@globex.test", false, &[("globex", Role::Admin)])
        .await;
    let boss = env.signed_in("boss@acme.test").await;
    let csrf = boss.csrf().await;

    let (status, me) = answer(boss.get("/api/v1/me").await).await;
    assert_eq!(status, 200, "{me}");
    let acme = &me["tenants"][0];
    assert_eq!(
        (acme["tenant"].as_str(), acme["role"].as_str()),
        (Some("acme"), Some("admin"))
    );
    assert!(acme["may"].as_array().unwrap().contains(&json!("manage")));
    assert_eq!(me["tenants"].as_array().unwrap().len(), 1, "{me}");

    // A cookie caller's change needs the CSRF token.
    let ask = json!({"name": "agents", "scopes": ["ingest"], "expires_in": "30d"});
    let keys = "/api/v1/tenants/acme/keys";
    let (status, _) = session_call(&boss, "POST", keys, ask.clone(), None).await;
    assert_eq!(status, 403);
    let (status, created) = session_call(&boss, "POST", keys, ask, Some(&csrf)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["key"]["status"], "active");
    assert!(created["key"]["expires_at"].is_string());
    let secret = created["secret"].as_str().unwrap().to_string();
    let id = created["key"]["id"].as_str().unwrap().to_string();
    let write = |key: String| {
        let url = env.url("/api/v1/tenants/acme/write/metrics");
        async move {
            let body = "{\"time\":\"2024-01-02T00:00:00Z\",\"host\":\"k\",\"cpu\":1,\"mem\":1}\n";
            let r = reqwest::Client::new()
                .post(url)
                .bearer_auth(key)
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }
    };
    assert_eq!(write(secret.clone()).await, 200);
    // Scopes hold: an ingest key cannot read or manage.
    let (status, _) = call(&env, &secret, "GET", keys, None).await;
    assert_eq!(status, 403);
    let (status, listed) = answer(boss.get(keys).await).await;
    assert_eq!(status, 200);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("secret").is_none())
    );

    // Rotation: the old secret stops, the new one works; revoking ends the new one.
    let rotate = format!("{keys}/{id}/rotate");
    let (status, rotated) = session_call(&boss, "POST", &rotate, json!({}), Some(&csrf)).await;
    assert_eq!(status, 201, "{rotated}");
    assert_eq!(write(secret.clone()).await, 401);
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    assert_eq!(write(new_secret.clone()).await, 200);
    let new_id = rotated["key"]["id"].as_str().unwrap();
    let revoke = format!("{keys}/{new_id}");
    let (status, revoked) = session_call(&boss, "DELETE", &revoke, json!({}), Some(&csrf)).await;
    assert_eq!(
        (status, revoked["status"].as_str()),
        (200, Some("revoked")),
        "{revoked}"
    );
    assert_eq!(write(new_secret).await, 401);
    // Another tenant's key is not found, whatever its id.
    let (globex_key, _) = env.key(Some("globex"), "read").await;
    let path = format!("{keys}/{globex_key}");
    let (status, _) = session_call(&boss, "DELETE", &path, json!({}), Some(&csrf)).await;
    assert_eq!(status, 404);
    assert!(
        env.auth
            .key(&globex_key)
            .await
            .unwrap()
            .revoked_at
            .is_none()
    );

    // Members: change a role, refuse an outsider (the same 404 as nobody), remove.
    let members = "/api/v1/tenants/acme/members";
    let promote = json!({"email": "dev@acme.test", "role": "editor"});
    let (status, m) = session_call(&boss, "POST", members, promote, Some(&csrf)).await;
    assert_eq!((status, m["role"].as_str()), (200, Some("editor")), "{m}");
    for email in ["outsider@globex.test", "nobody@acme.test"] {
        let ask = json!({"email": email, "role": "viewer"});
        let (status, e) = session_call(&boss, "POST", members, ask, Some(&csrf)).await;
        assert_eq!(status, 404, "{email}: {e}");
        assert_eq!(e["error"], "acme has no member with that email");
    }
    let remove = format!("{members}/{member}");
    let (status, _) = session_call(&boss, "DELETE", &remove, json!({}), Some(&csrf)).await;
    assert_eq!(status, 204);
    let (_, listed) = answer(boss.get(members).await).await;
    let emails: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["email"].as_str())
        .collect();
    assert_eq!(emails, ["boss@acme.test"]);

    // Tenants: the admin sees acme with its usage; a read key sees acme without it.
    let (status, tenants) = answer(boss.get("/api/v1/tenants").await).await;
    assert_eq!(status, 200);
    let tenants = tenants.as_array().unwrap();
    assert_eq!(tenants.len(), 1);
    assert_eq!(tenants[0]["status"], "active");
    assert_eq!(tenants[0]["config_errors"], 0);
    assert!(
        tenants[0]["usage"]["ingested"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["table"] == "metrics")
    );
    assert!(tenants[0]["usage"]["rows_today"].as_u64().unwrap() >= 2);
    let (_, reader) = env.key(Some("acme"), "read").await;
    let (_, seen) = call(&env, &reader, "GET", "/api/v1/tenants", None).await;
    assert_eq!(seen[0]["usage"], Value::Null, "{seen}");
    let (status, _) = call(&env, &reader, "GET", "/api/v1/tenants/acme/usage", None).await;
    assert_eq!(status, 403);

    // A broken file shows in the tenant's status (the last good configuration keeps serving).
    let broken = env.dirs.tenants().join("acme/panels/broken.yaml");
    std::fs::write(&broken, "id: broken\ntype: no_such_kind\n").unwrap();
    let mut errors = 0;
    for _ in 0..100 {
        let (_, tenants) = answer(boss.get("/api/v1/tenants").await).await;
        errors = tenants[0]["config_errors"].as_u64().unwrap_or(0);
        if errors > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(errors >= 1, "the broken panel file is counted");

    let actions = [
        "apikey.create",
        "apikey.revoke",
        "user.grant",
        "user.revoke",
    ];
    assert_audited(&env, &actions, |actor| actor == "user:boss@acme.test").await;
    env.server.stop().await;
}

pub async fn editors_silence_and_acknowledge(db: Db) {
    let Some(env) = Env::start(db, "api_alerts", |_| {}).await else {
        return;
    };
    let (_, act) = env.key(Some("acme"), "read,act").await;
    let (_, read) = env.key(Some("acme"), "read").await;
    let silences = "/api/v1/tenants/acme/alerts/silences";
    let ask = json!({"matchers": "alertname=disk_high, host=~web-.*", "duration": "2h", "comment": "deploy"});
    let (status, _) = call(&env, &read, "POST", silences, Some(ask.clone())).await;
    assert_eq!(status, 403);
    let (status, created) = call(&env, &act, "POST", silences, Some(ask)).await;
    assert_eq!(status, 201, "{created}");
    let (_, listed) = call(&env, &read, "GET", silences, None).await;
    assert_eq!(
        listed[0]["matchers"], "alertname=disk_high, host=~web-.*",
        "{listed}"
    );
    assert_eq!(listed[0]["comment"], "deploy");
    let bad = json!({"matchers": "host=~(", "duration": "2h"});
    let (status, e) = call(&env, &act, "POST", silences, Some(bad)).await;
    assert_eq!(status, 400, "{e}");
    let one = format!("{silences}/{}", created["id"]);
    assert_eq!(call(&env, &act, "DELETE", &one, None).await.0, 204);
    assert_eq!(call(&env, &act, "DELETE", &one, None).await.0, 404);
    let (_, listed) = call(&env, &read, "GET", silences, None).await;
    assert_eq!(listed, json!([]));
    let ack = json!({"rule": "no_such_rule", "labels": {"host": "a"}});
    let (status, answer) = call(
        &env,
        &act,
        "POST",
        "/api/v1/tenants/acme/alerts/ack",
        Some(ack),
    )
    .await;
    assert_eq!(
        (status, answer["acknowledged"].as_bool()),
        (200, Some(false)),
        "{answer}"
    );
    env.server.stop().await;
}

/// The document and its page are public; the page is rendered here, from the document. What
/// schemathesis found stays fixed: a repeated query parameter is the API's JSON 400 (it was
/// axum's plain text), and an OTLP refusal is a `google.rpc.Status` as documented.
pub async fn the_api_describes_itself(db: Db) {
    let Some(env) = Env::start(db, "api_document", |_| {}).await else {
        return;
    };
    let (_, key) = env.key(Some("acme"), "ingest,read").await;
    let client = reqwest::Client::new();
    for (method, path) in [
        (
            "GET",
            "/api/v1/tenants/acme/panels/cpu/data?max_points=1&max_points=2",
        ),
        (
            "POST",
            "/api/v1/tenants/acme/write/metrics?precision=s&precision=ms",
        ),
        ("POST", "/api/v1/tenants/acme/query?format=csv&format=json"),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = client
            .request(method, env.url(path))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{path}");
        let kind = r.headers()["content-type"].to_str().unwrap().to_string();
        assert_eq!(kind, "application/json", "{path}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("duplicate field"),
            "{body}"
        );
    }
    // A path parameter that is not UTF-8 once decoded: axum's refusal, as the API's JSON.
    let (_, admin) = env.key(None, "admin").await;
    let r = client
        .get(env.url("/api/v1/users/%FF"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("UTF-8"), "{body}");
    // A body over `http.max_request_bytes` (1 MiB): a 413, as JSON too.
    let r = client
        .post(env.url("/api/v1/keys"))
        .bearer_auth(&admin)
        .body(vec![b' '; 2 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["content-type"], "application/json");
    let r = client
        .post(env.url("/api/v1/tenants/acme/otlp/v1/metrics"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let status: Value = r.json().await.unwrap();
    assert_eq!(status["code"], 3, "{status}");
    let doc: Value = reqwest::get(env.url("/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/v1/me"]["get"].is_object());
    let page = reqwest::get(env.url("/api/docs")).await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&"POST /api/v1/tenants/{tenant}/keys".replace('/', "&#x2f;")),
        "{html}"
    );
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "no CDN: everything is served from here"
    );
    env.server.stop().await;
}

/// schemathesis (PyPI) generates requests from the document for every operation — valid ones
/// and broken ones — with an acme key that has every scope, and checks that no answer is a
/// 5xx and that every answer's status, type and body are as documented. Skipped when it is
/// not installed, unless `OPSBOARD_CLIENTS=required` (CI).
pub async fn schemathesis_finds_nothing_undocumented(db: Db) {
    if db == Db::Postgres {
        return; // The document and handlers are the same on both; one run is enough.
    }
    let found = std::process::Command::new("schemathesis")
        .arg("--version")
        .output();
    if found.is_err() {
        let required = std::env::var("OPSBOARD_CLIENTS").as_deref() == Ok("required");
        assert!(
            !required,
            "schemathesis is required: pip install schemathesis"
        );
        eprintln!("schemathesis not installed; skipped");
        return;
    }
    let Some(env) = Env::start(db, "api_schemathesis", |_| {}).await else {
        return;
    };
    let (_, key) = env.key(Some("acme"), "ingest,read,act,admin").await;
    let (_, global) = env.key(None, "admin").await;
    let config = env.dirs.data().join("schemathesis.toml");
    // Path parameters that name things that exist, so the fuzzing gets past the 404s.
    std::fs::write(
        &config,
        "[parameters]\n\"path.tenant\" = \"acme\"\n\"path.table\" = \"metrics\"\n\
         \"path.panel\" = \"cpu\"\n\"path.name\" = \"default\"\n",
    )
    .unwrap();
    let url = env.url("/api/v1/openapi.json");
    // Everything with the tenant key, but remote write: schemathesis cannot make protobuf
    // bodies (the decoder has its own property tests and the Prometheus client test).
    let everything = ["--exclude-path", "/api/v1/tenants/{tenant}/prom/write"];
    schemathesis(&config, &url, &key, &everything).await;
    // The users, which only a global admin reaches.
    schemathesis(&config, &url, &global, &["--include-tag", "users"]).await;
    env.server.stop().await;
}

async fn schemathesis(config: &std::path::Path, url: &str, key: &str, select: &[&str]) {
    let mut command = std::process::Command::new("schemathesis");
    command
        .arg("--config-file")
        .arg(config)
        .args(["run", url, "--header"])
        .arg(format!("Authorization: Bearer {key}"))
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            "12",
            "--seed",
            "1",
            // One worker: CPython 3.11's parser is not safe for hypothesis's threads
            // ("AST constructor recursion depth mismatch").
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--suppress-health-check",
            "all",
            "--no-color",
        ])
        .args(select)
        .current_dir(config.parent().unwrap());
    let output = tokio::task::spawn_blocking(move || command.output().expect("schemathesis runs"))
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "schemathesis {select:?} found problems:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
