//! The seed tenants running: the real binary with `--demo` over the shipped `tenants/pimeet`,
//! `tenants/kraliki`, `tenants/pfcam` and `tenants/omendb`; a VM restarted from its page's
//! action goes offline (the demo agents obey), a device's screenshot lands in its log, refused
//! callers change nothing, the seed's alert rules fire on the drifting units, pfcam's gallery
//! shows each event's own snapshot, and omendb's invoice prices usage by its price table.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{self, TestDirs, copy_dir};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const SEEDS: [&str; 4] = ["pimeet", "kraliki", "pfcam", "omendb"];

struct Running {
    url: String,
    admin: reqwest::Client,
    child: std::process::Child,
    _dirs: TestDirs,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Keys made before the server starts: (tenant, scopes) → key.
async fn start(keys: &[(&str, &str)]) -> (Running, Vec<String>) {
    let dirs = TestDirs::new(&[]);
    for tenant in SEEDS {
        copy_dir(
            &Path::new(REPO).join("tenants").join(tenant),
            &dirs.tenants().join(tenant),
        );
    }
    let config = dirs.config();
    let auth = opsboard::auth::Auth::open(&config, opsboard::clock::system())
        .await
        .unwrap();
    auth.sync_tenants(&SEEDS.map(String::from)).await.unwrap();
    let actor = opsboard::auth::Actor::new("tests", None);
    let mut made = vec![];
    for (tenant, scopes) in keys {
        let request = opsboard::auth::NewKeyRequest {
            name: "seed test".into(),
            tenant: Some(tenant.to_string()),
            scopes: opsboard::auth::Scope::parse_list(scopes).unwrap(),
            expires_at: None,
        };
        made.push(auth.create_key(&actor, request).await.unwrap().1);
    }
    let admin = common::client_with_key(&common::admin_key(&config).await);
    let (child, url) = common::spawn_opsboard(&dirs, &["--demo"]);
    let running = Running {
        url,
        admin,
        child,
        _dirs: dirs,
    };
    for (tenant, table) in [("kraliki", "vms"), ("pimeet", "devices")] {
        wait_for(
            &running,
            &format!("SELECT count(*) AS n FROM {table}"),
            tenant,
            |rows| rows[0]["n"].as_f64().unwrap_or(0.0) > 1_000.0,
        )
        .await;
    }
    (running, made)
}

async fn sql(running: &Running, tenant: &str, sql: &str) -> Vec<Value> {
    let response = running
        .admin
        .post(format!(
            "{}/api/v1/tenants/{tenant}/query?format=json",
            running.url
        ))
        .json(&json!({"sql": sql}))
        .send()
        .await
        .unwrap();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    body.as_array().cloned().unwrap_or_default()
}

/// Polls `query` until `done` holds (at most 60 s).
async fn wait_for(
    running: &Running,
    query: &str,
    tenant: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    for _ in 0..300 {
        let rows = sql(running, tenant, query).await;
        if !rows.is_empty() && done(&rows) {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "{tenant}: `{query}` never came true; last: {:?}",
        sql(running, tenant, query).await
    );
}

async fn act(
    running: &Running,
    key: &str,
    tenant: &str,
    action: &str,
    body: Value,
) -> (u16, Value) {
    super::start_run(key, &running.url, tenant, action, body).await
}

#[tokio::test]
async fn seed_tenants_obey_their_actions_and_alert_on_their_own() {
    let (running, keys) =
        start(&[("kraliki", "act"), ("kraliki", "read"), ("pimeet", "act")]).await;
    let (kraliki_act, kraliki_read, pimeet_act) = (&keys[0], &keys[1], &keys[2]);
    let on_vm = |vm: &str| json!({"panel": "vm_status", "row": {"vm": vm}, "dashboard": "vm", "vars": {"vm": vm}, "from": "now-1h"});

    let (status, _) = act(&running, kraliki_read, "kraliki", "restart", on_vm("vm-01")).await;
    assert_eq!(status, 403, "a read key restarts nothing");
    let (status, body) = act(&running, kraliki_act, "kraliki", "rebuild", on_vm("vm-01")).await;
    assert_eq!(status, 403, "rebuild is for the tenant's admins: {body}");
    let newest = "SELECT status FROM last_rows('vms') WHERE vm = 'vm-01'";
    assert_eq!(
        sql(&running, "kraliki", newest).await[0]["status"],
        "online"
    );

    let (status, run) = act(&running, kraliki_act, "kraliki", "restart", on_vm("vm-01")).await;
    assert_eq!(status, 202, "{run}");
    let run = run["run"].as_str().unwrap();
    let done = super::run_outcome(&running.admin, &running.url, "kraliki", run).await;
    assert_eq!(
        (done["status"].as_str(), done["http_status"].as_u64()),
        (Some("succeeded"), Some(202)),
        "{done}"
    );
    wait_for(&running, newest, "kraliki", |rows| {
        rows[0]["status"] == "offline"
    })
    .await;
    let (status, body) = act(&running, kraliki_act, "kraliki", "restart", on_vm("vm-01")).await;
    assert_eq!(status, 202, "{body}");
    let run = body["run"].as_str().unwrap();
    let failed = super::run_outcome(&running.admin, &running.url, "kraliki", run).await;
    assert_eq!(
        failed["http_status"], 503,
        "the agent of a VM still away does not answer: {failed}"
    );

    // A device's screenshot is written to its log.
    let on_device = json!({"panel": "device_status", "row": {"device": "room-02"}, "dashboard": "device", "vars": {"device": "room-02"}, "from": "now-1h"});
    let (status, body) = act(&running, pimeet_act, "pimeet", "screenshot", on_device).await;
    assert_eq!(status, 202, "{body}");
    wait_for(
        &running,
        "SELECT count(*) AS n FROM device_logs WHERE device = 'room-02' AND message LIKE 'screenshot saved%'",
        "pimeet",
        |rows| rows[0]["n"].as_f64() == Some(1.0),
    )
    .await;

    // The seed's rules on units that drift there by themselves.
    for (tenant, rule) in [
        ("kraliki", "disk_space_critical"),
        ("pimeet", "device_offline"),
        ("pfcam", "camera_offline"),
        ("pfcam", "storage_full"),
    ] {
        let mut firing = vec![];
        for _ in 0..120 {
            let alerts = json_at(&running, &format!("/api/v1/tenants/{tenant}/alerts")).await;
            firing = alerts["firing"].as_array().cloned().unwrap_or_default();
            if firing.iter().any(|a| a["rule"] == rule) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(
            firing.iter().any(|a| a["rule"] == rule),
            "{tenant}: {rule} not firing: {firing:?}"
        );
    }
}

/// A JSON answer as the admin key reads it.
async fn json_at(running: &Running, path: &str) -> Value {
    let response = running.admin.get(format!("{}{path}", running.url)).send();
    response.await.unwrap().json().await.unwrap()
}

/// A page or fragment as the admin key reads it.
async fn text(running: &Running, path: &str) -> (u16, String, String) {
    let r = running
        .admin
        .get(format!("{}{path}", running.url))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let kind = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, kind, r.text().await.unwrap_or_default())
}

#[tokio::test]
async fn camera_events_show_their_snapshots_and_usage_is_priced() {
    let (running, _) = start(&[]).await;
    // A week of events, each with its own picture, in the gallery.
    let events = wait_for(
        &running,
        "SELECT count(*) AS n, count(DISTINCT snapshot) AS pictures FROM events",
        "pfcam",
        |rows| rows[0]["n"].as_f64().unwrap_or(0.0) > 100.0,
    )
    .await;
    assert_eq!(
        events[0]["n"], events[0]["pictures"],
        "no two events share a snapshot"
    );
    let (status, _, gallery) = text(
        &running,
        "/t/pfcam/p/event_gallery/fragment?from=now-7d&to=now",
    )
    .await;
    assert_eq!(status, 200, "{gallery}");
    assert!(gallery.contains("class=\"gallery\""), "{gallery}");
    let thumb = gallery
        .split("src=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .find(|s| s.contains("thumbnail=1"))
        .expect("a thumbnail in the gallery")
        .replace("&amp;", "&")
        .replace("&#x2f;", "/");
    let (status, kind, _) = text(&running, &thumb).await;
    assert_eq!((status, kind.as_str()), (200, "image/jpeg"), "{thumb}");
    // Some people and vehicles come with a clip: an animated GIF.
    let clips = sql(
        &running,
        "pfcam",
        "SELECT clip FROM events WHERE clip IS NOT NULL LIMIT 1",
    )
    .await;
    let clip = clips[0]["clip"].as_str().expect("a clip");
    let (status, kind, body) = text(
        &running,
        &format!("/api/v1/tenants/pfcam/attachments/{clip}"),
    )
    .await;
    assert_eq!((status, kind.as_str()), (200, "image/gif"));
    assert!(body.starts_with("GIF89a"), "a GIF");

    // The invoice: every customer on a priced plan owes something, the free plan nothing.
    let (status, _, _) = text(&running, "/t/omendb/d/billing").await;
    assert_eq!(status, 200);
    // The history is written at start (a week, oldest first, ending at the start): the invoice
    // is asked for once the live rows come (answers are cached for the panel's refresh).
    let live = "SELECT count(*) AS n FROM usage WHERE time >= now() - INTERVAL '1 minute'";
    wait_for(&running, live, "omendb", |rows| {
        rows[0]["n"].as_f64().unwrap_or(0.0) > 0.0
    })
    .await;
    let mut invoice = Value::Null;
    let mut rows = vec![];
    for _ in 0..120 {
        let invoice_path = "/api/v1/tenants/omendb/panels/invoice/data?from=now-1d&to=now";
        invoice = json_at(&running, invoice_path).await;
        rows = invoice["rows"].as_array().cloned().unwrap_or_default();
        if rows.len() == 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(rows.len(), 8, "{invoice}");
    let columns: Vec<&str> = (invoice["columns"].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str())
        .collect();
    let at = |name: &str| columns.iter().position(|c| *c == name).unwrap();
    for row in &rows {
        let amount = row[at("amount_usd")].as_f64().unwrap_or(-1.0);
        if row[at("plan")] == "free" {
            assert_eq!(amount, 0.0, "{row}");
        } else {
            assert!(amount > 0.0, "{row}");
        }
    }
    let (status, _, page) = text(&running, "/t/omendb/alerts").await;
    assert_eq!(status, 200, "{page}");
}
