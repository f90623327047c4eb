//! Panel actions end to end against a local receiver: who may run them (role × key scope,
//! CSRF; a refused caller sends nothing), the row looked up among those the panel shows (the
//! client's copy never used), hostile row values escaped for the URL and the JSON body,
//! headers from the server's environment never shown, retries and timeouts, one run per
//! target at a time, the `actions` table and the audit log (read back after a restart), and
//! the pages: buttons per row for editors only, the confirmation, the run page, the panel's
//! list of runs.

#[path = "../common/mod.rs"]
mod common;
mod pages;
mod receiver;
mod seeds;

use std::time::Duration;

use common::session::{Db, Env};
use opsboard::auth::Role;
use receiver::Receiver;
use serde_json::{Value, json};

pub const RANGE: (&str, &str) = ("2024-01-01T00:00:00Z", "2024-01-03T00:00:00Z");
/// Its value is the receiver's `X-Token`; cargo sets it for the test process.
pub const SECRET_VAR: &str = "CARGO_MANIFEST_DIR";

fn hosts_panel(receiver: &str) -> String {
    format!(
        r#"panel:
  type: table
  title: Hosts
  sql: "SELECT host, max(cpu) AS cpu, count(*) AS n FROM metrics WHERE time >= $from AND time < $to GROUP BY host ORDER BY host"
  actions:
    - id: restart
      label: Restart
      url: "{receiver}/hosts/{{{{ row.host }}}}/restart"
      body: '{{"host": {{{{ row.host }}}}, "cpu": {{{{ row.cpu }}}}, "by": {{{{ user }}}}}}'
      headers: {{X-Token: "${{{SECRET_VAR}}}"}}
      confirm: "Restart {{{{ row.host }}}}?"
    - id: wipe
      label: Wipe
      role: admin
      url: "{receiver}/hosts/{{{{ row.host }}}}/wipe"
    - id: slow
      label: Slow
      url: "{receiver}/slow/{{{{ row.host }}}}"
      timeout: 1s
    - id: flaky
      label: Flaky
      url: "{receiver}/flaky/{{{{ row.host }}}}"
      retries: 2
    - id: missing
      label: Missing
      url: "{receiver}/nowhere/{{{{ row.host }}}}"
      retries: 2
    - id: hold
      label: Hold
      url: "{receiver}/hold/{{{{ row.host }}}}"
"#
    )
}

fn kpi_panel(receiver: &str) -> String {
    let kpi = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/acme/panels/mem_kpi.yaml"
    ))
    .unwrap();
    format!(
        "{kpi}  actions:\n    - {{id: refresh, label: Refresh inventory, method: PUT, url: \"{receiver}/panel/{{{{ panel }}}}\"}}\n"
    )
}

/// Acme with the two panels and a dashboard placing them; users of each role and keys.
pub struct Setup {
    pub env: Env,
    pub receiver: Receiver,
}

async fn setup() -> Setup {
    let receiver = Receiver::start().await;
    let env = Env::start(Db::Sqlite, "actions", |config| {
        config.alerts.allowed_targets = vec!["127.0.0.1/32".parse().unwrap()];
        config.panels.reload_interval = opsboard::config::HumanDuration(Duration::from_millis(200));
    })
    .await
    .expect("sqlite is always there");
    let tenant = env.dirs.tenants().join("acme");
    std::fs::write(tenant.join("panels/hosts.yaml"), hosts_panel(&receiver.url)).unwrap();
    std::fs::write(
        tenant.join("panels/inventory.yaml"),
        kpi_panel(&receiver.url),
    )
    .unwrap();
    std::fs::write(
        tenant.join("dashboards/fleet.yaml"),
        "dashboard:\n  name: Fleet\n  panels:\n    - id: hosts\n    - id: inventory\n",
    )
    .unwrap();
    // The reload picks the files up.
    for _ in 0..100 {
        let (status, _) = env
            .server
            .get("/api/v1/tenants/acme/panels/inventory/data")
            .await;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    env.user("viewer@acme.test", false, &[("acme", Role::Viewer)])
        .await;
    env.user("editor@acme.test", false, &[("acme", Role::Editor)])
        .await;
    env.user("admin@acme.test", false, &[("acme", Role::Admin)])
        .await;
    Setup { env, receiver }
}

pub async fn post_action(key: &str, env: &Env, action: &str, body: Value) -> (u16, Value) {
    start_run(key, &env.server.url, "acme", action, body).await
}

/// `POST …/actions/{action}` with `key`: (status, body).
pub async fn start_run(
    key: &str,
    base: &str,
    tenant: &str,
    action: &str,
    body: Value,
) -> (u16, Value) {
    let response = common::client_with_key(key)
        .post(format!("{base}/api/v1/tenants/{tenant}/actions/{action}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub fn on(row: Value) -> Value {
    json!({"panel": "hosts", "row": row, "from": RANGE.0, "to": RANGE.1})
}

/// The run once it is no longer running.
pub async fn finished(env: &Env, run: &str) -> Value {
    run_outcome(&env.server.client, &env.server.url, "acme", run).await
}

/// Run `run` of `tenant` once it is no longer running (read with `client`).
pub async fn run_outcome(client: &reqwest::Client, base: &str, tenant: &str, run: &str) -> Value {
    let url = format!("{base}/api/v1/tenants/{tenant}/actions/runs/{run}");
    for _ in 0..200 {
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        if body["status"] != "running" {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {run} still running");
}

#[tokio::test]
async fn actions_run_for_those_allowed_on_rows_the_panel_shows() {
    let Setup { env, receiver } = setup().await;
    let (_, read_key) = env.key(Some("acme"), "read").await;
    let (_, ingest_key) = env.key(Some("acme"), "ingest,read").await;
    let (_, act_key) = env.key(Some("acme"), "act").await;
    let (_, admin_key) = env.key(Some("acme"), "admin").await;
    let (_, other_key) = env.key(Some("globex"), "act,admin").await;

    // Refused callers send nothing.
    for key in [&read_key, &ingest_key, &other_key] {
        let (status, body) = post_action(key, &env, "restart", on(json!({"host": "a"}))).await;
        assert_eq!(status, 403, "{body}");
    }
    assert_eq!(receiver.count(), 0);

    // An act key runs it; the body comes from the server's row, not the client's.
    let (status, run) = post_action(
        &act_key,
        &env,
        "restart",
        on(json!({"host": "a", "cpu": 999})),
    )
    .await;
    assert_eq!(status, 202, "{run}");
    let done = finished(&env, run["run"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        (done["http_status"].as_u64(), done["attempts"].as_u64()),
        (Some(200), Some(1))
    );
    let call = receiver.last();
    assert_eq!(
        (call.method.as_str(), call.path.as_str()),
        ("POST", "/hosts/a/restart")
    );
    let sent: Value = serde_json::from_str(&call.body).unwrap();
    let (_, rows) = env
        .server
        .query(
            "acme",
            "SELECT max(cpu) AS cpu FROM metrics WHERE host = 'a'",
        )
        .await;
    assert_eq!(sent["cpu"], rows[0]["cpu"], "the server's value, not 999");
    assert_eq!(sent["host"], "a");
    assert_eq!(
        sent["by"],
        format!("key:{}", &done["actor"].as_str().unwrap()[4..])
    );
    assert_eq!(call.content_type.as_deref(), Some("application/json"));
    let secret = std::env::var(SECRET_VAR).unwrap();
    assert_eq!(
        call.token.as_deref(),
        Some(secret.as_str()),
        "the header from the environment"
    );
    assert!(!done.to_string().contains(&secret), "never shown: {done}");

    // An admin-scope key may run too; an admin-only action needs the tenant's admin.
    let (status, run) = post_action(&admin_key, &env, "wipe", on(json!({"host": "b"}))).await;
    assert_eq!(status, 202, "{run}");
    finished(&env, run["run"].as_str().unwrap()).await;
    let (status, body) = post_action(&act_key, &env, "wipe", on(json!({"host": "b"}))).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("admins"), "{body}");

    row_lookup_and_hostile_values(&env, &receiver, &act_key).await;
    retries_timeouts_and_one_run_per_target(&env, &receiver, &act_key).await;
    recorded_in_the_table_and_the_audit_log(env, &secret).await;
}

async fn row_lookup_and_hostile_values(env: &Env, receiver: &Receiver, key: &str) {
    let before = receiver.count();
    let (status, body) = post_action(key, env, "restart", on(json!({"host": "zzz"}))).await;
    assert_eq!(status, 404, "a row the panel does not show: {body}");
    let (status, body) = post_action(key, env, "restart", on(json!({"cpu": 1}))).await;
    assert_eq!(status, 400, "no key: {body}");
    assert!(body["error"].as_str().unwrap().contains("`host`"), "{body}");
    // Outside the range the panel is asked for, host a is not shown either.
    let early = json!({"panel": "hosts", "row": {"host": "a"}, "from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00Z"});
    let (status, _) = post_action(key, env, "restart", early).await;
    assert_eq!(status, 404);
    let (status, body) = post_action(key, env, "nope", on(json!({"host": "a"}))).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) =
        post_action(key, env, "restart", json!({"panel": "hosts", "rows": []})).await;
    assert_eq!(status, 400, "unknown body keys are refused: {body}");
    assert_eq!(receiver.count(), before, "nothing sent for any of them");

    // Hostile values: escaped in the URL path and as JSON; `..` refused outright.
    let hostile = "x\"y/../z?q=1#f\n</b>";
    for host in [hostile, ".."] {
        let line =
            json!({"time": "2024-01-01T06:00:00Z", "host": host, "cpu": 1.5, "mem": 2}).to_string();
        let (status, body) = env
            .server
            .write("acme", "metrics", "application/x-ndjson", line)
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, run) = post_action(key, env, "restart", on(json!({"host": hostile}))).await;
    assert_eq!(status, 202, "{run}");
    finished(env, run["run"].as_str().unwrap()).await;
    let call = receiver.last();
    assert_eq!(
        call.path,
        "/hosts/x%22y%2F..%2Fz%3Fq%3D1%23f%0A%3C%2Fb%3E/restart"
    );
    let sent: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(sent["host"], hostile);
    let before = receiver.count();
    let (status, body) = post_action(key, env, "restart", on(json!({"host": ".."}))).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("cannot stand in a URL"),
        "{body}"
    );
    assert_eq!(receiver.count(), before);
}

async fn retries_timeouts_and_one_run_per_target(env: &Env, receiver: &Receiver, key: &str) {
    let (_, run) = post_action(key, env, "flaky", on(json!({"host": "a"}))).await;
    let done = finished(env, run["run"].as_str().unwrap()).await;
    assert_eq!(
        (done["status"].as_str(), done["attempts"].as_u64()),
        (Some("succeeded"), Some(3)),
        "{done}"
    );

    let (_, run) = post_action(key, env, "missing", on(json!({"host": "a"}))).await;
    let done = finished(env, run["run"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(
        (done["http_status"].as_u64(), done["attempts"].as_u64()),
        (Some(404), Some(1)),
        "a 404 is not retried: {done}"
    );
    assert!(
        done["error"].as_str().unwrap().contains("answered 404"),
        "{done}"
    );

    let (_, run) = post_action(key, env, "slow", on(json!({"host": "b"}))).await;
    let done = finished(env, run["run"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed");
    assert!(
        done["error"]
            .as_str()
            .unwrap()
            .contains("no answer within 1s"),
        "{done}"
    );
    assert!(done["http_status"].is_null());

    // One run per action and target at a time: a second click waits its turn.
    let (status, first) = post_action(key, env, "hold", on(json!({"host": "a"}))).await;
    assert_eq!(status, 202);
    let (status, body) = post_action(key, env, "hold", on(json!({"host": "a"}))).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains(first["run"].as_str().unwrap()),
        "{body}"
    );
    let (status, other) = post_action(key, env, "hold", on(json!({"host": "b"}))).await;
    assert_eq!(status, 202, "another target is free");
    finished(env, first["run"].as_str().unwrap()).await;
    finished(env, other["run"].as_str().unwrap()).await;
    let (status, again) = post_action(key, env, "hold", on(json!({"host": "a"}))).await;
    assert_eq!(status, 202, "free again once finished");
    finished(env, again["run"].as_str().unwrap()).await;
    let holds = receiver
        .calls
        .lock()
        .iter()
        .filter(|c| c.path == "/hold/a")
        .count();
    assert_eq!(holds, 2);
}

async fn recorded_in_the_table_and_the_audit_log(env: Env, secret: &str) {
    let rows = env
        .server
        .rows("acme", "SELECT action, target, status, http_status, attempts, actor, error FROM actions ORDER BY time, run")
        .await;
    let failed = rows.iter().filter(|r| r["status"] == "failed").count();
    assert_eq!(failed, 2, "missing and slow: {rows:?}");
    assert!(
        rows.iter()
            .any(|r| r["action"] == "flaky" && r["attempts"] == 3.0 && r["target"] == "host=a"),
        "{rows:?}"
    );
    assert!(!format!("{rows:?}").contains(secret));
    let (status, body) = env
        .server
        .write(
            "acme",
            "actions",
            "application/x-ndjson",
            "{\"time\": 1, \"run\": \"forged\"}\n",
        )
        .await;
    assert_eq!(status, 403, "the server's own table: {body}");

    let audit = env
        .auth
        .audit_entries(&opsboard::auth::AuditFilter {
            tenant: Some("acme".into()),
            action: Some("action.run".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let outcomes = |outcome: &str| audit.iter().filter(|e| e.outcome == outcome).count();
    assert_eq!(
        outcomes("ok") + outcomes("failed"),
        rows.len(),
        "one audit entry per run"
    );
    assert_eq!(outcomes("failed"), 2);
    assert_eq!(
        outcomes("denied"),
        1,
        "the act key's try at the admin-only wipe"
    );

    // After a restart the runs are read back from the table.
    let run = rows.len();
    let id = env
        .server
        .rows("acme", "SELECT run FROM actions WHERE action = 'missing'")
        .await[0]["run"]
        .as_str()
        .unwrap()
        .to_string();
    let env = env.restart().await;
    let (status, body) = env
        .server
        .get(&format!("/api/v1/tenants/acme/actions/runs/{id}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["status"].as_str(), body["http_status"].as_u64()),
        (Some("failed"), Some(404))
    );
    assert_eq!(body["action"], "missing");
    let (status, _) = env
        .server
        .get("/api/v1/tenants/acme/actions/runs/nope")
        .await;
    assert_eq!(status, 404);
    let (status, _) = env
        .server
        .get(&format!("/api/v1/tenants/globex/actions/runs/{id}"))
        .await;
    assert_eq!(status, 404, "another tenant's run");
    assert!(run > 0);
    env.server.stop().await;
}

#[tokio::test]
async fn pages_show_buttons_to_those_allowed_and_confirm_before_running() {
    let setup = setup().await;
    pages::walk(&setup).await;
    setup.env.server.stop().await;
}
