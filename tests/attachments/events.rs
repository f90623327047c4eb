//! Event rules end to end on the manual clock: one notice per new matching row (not per
//! evaluation, not for rows that do not match, not twice for a row written twice), with the
//! event's thumbnail inline in the email, in the in-app list and linked in the webhook; the
//! throttle per camera counting what it held back; the daily cap; a restart that neither
//! repeats nor forgets; subscribers who get what their subscription covers and nothing once
//! they lose access.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::alerting::{SmtpSink, webhook};
use crate::common::session::{Browser, Db, Env};
use crate::{png_sized, upload};
use opsboard::auth::Role;

const DAY_MS: i64 = 86_400_000;

fn rules(hook: &str, smtp: &str) -> String {
    format!(
        r#"rules:
  - name: person_back
    event:
      table: events
      where: "kind = 'person' AND zone = 'back'"
      panel: events
    every: 1m
    throttle: 5m
    daily_cap: 3
    severity: high
    message: "Person at {{{{ camera }}}} (score {{{{ score }}}})"
channels:
  - {{name: hook, type: webhook, url: "{hook}", format: alertmanager}}
  - {{name: mail, type: email, to: [guard@acme.test], from: alerts@acme.test, smtp: "{smtp}"}}
  - {{name: inbox, type: in_app}}
routes:
  - {{channels: [hook, mail, inbox, subscribers]}}
"#
    )
}

type Row<'a> = (&'a str, &'a str, &'a str, f64, &'a str);

/// Writes event rows (camera, zone, kind, score, snapshot) stamped `at`.
async fn write_at(env: &Env, at: i64, rows: &[Row<'_>]) {
    let body: String = rows
        .iter()
        .map(|(camera, zone, kind, score, snapshot)| {
            format!(
                "{}\n",
                json!({"time": at, "camera": camera, "zone": zone, "kind": kind,
                       "score": score, "snapshot": snapshot})
            )
        })
        .collect();
    let (status, text) = env
        .server
        .write("acme", "events", "application/x-ndjson", body)
        .await;
    assert_eq!(status, 200, "{text}");
}

/// Rows a second before the clock's next minute, then the clock moves there; their time.
async fn minute(env: &Env, rows: &[Row<'_>]) -> i64 {
    let at = env.clock_ms() + 60_000 - 1_000;
    write_at(env, at, rows).await;
    env.clock.advance(Duration::from_secs(60));
    at
}

/// `state → rows` of the rule in the tenant's `alerts` table, once it has `total` rows.
async fn history(env: &Env, total: usize) -> Vec<(String, String)> {
    let sql = "SELECT state, labels, message FROM alerts WHERE rule = 'person_back' ORDER BY time, message";
    for _ in 0..100 {
        let (_, rows) = env.server.query("acme", sql).await;
        let rows = rows.as_array().cloned().unwrap_or_default();
        if rows.len() >= total {
            return rows
                .iter()
                .map(|r| {
                    let state = r["state"].as_str().unwrap_or_default().to_string();
                    (state, r["message"].as_str().unwrap_or_default().to_string())
                })
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the alerts table never reached {total} rows: {:?}",
        env.server.rows("acme", sql).await
    );
}

async fn subscribe(browser: &Browser, body: Value) -> (u16, Value) {
    let csrf = browser.csrf().await;
    let r = browser
        .client
        .post(format!("{}/api/v1/account/subscriptions", browser.base))
        .header("x-csrf-token", csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

async fn my_notices(browser: &Browser) -> Vec<Value> {
    let r = browser.get("/api/v1/account/subscriptions").await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["tenants"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["tenant"] == "acme")
        .flat_map(|t| t["notices"].as_array().cloned().unwrap_or_default())
        .collect()
}

on_both_databases!(event_rules_notify_each_new_row_once_with_its_picture_throttled_and_capped);

async fn event_rules_notify_each_new_row_once_with_its_picture_throttled_and_capped(db: Db) {
    let hook = webhook(0).await;
    let smtp = SmtpSink::start();
    let smtp_address = smtp
        .as_ref()
        .map_or("127.0.0.1:9".into(), |s| s.address.clone());
    let yaml = rules(&hook.url, &smtp_address);
    let Some(env) = Env::start(db, "event rules", move |c| {
        c.alerts.tick = "100ms".parse().unwrap();
        c.alerts.retry_backoff = "50ms".parse().unwrap();
        c.alerts.allowed_targets = vec!["127.0.0.1".parse().unwrap()];
        let dir = c.tenants_dir.join("acme");
        let mut tenant = std::fs::read_to_string(dir.join("tenant.yaml")).unwrap();
        tenant.push_str("  events:\n    tags: [camera]\n    fields:\n      snapshot: attachment\n      kind: string\n      zone: string\n      score: float\n");
        std::fs::write(dir.join("tenant.yaml"), tenant).unwrap();
        std::fs::write(
            dir.join("panels/events.yaml"),
            "panel:\n  type: table\n  title: Events\n  data_source:\n    table: events\n    columns:\n      - {name: time}\n      - {name: camera}\n      - {name: snapshot}\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("alerts")).unwrap();
        std::fs::write(dir.join("alerts/events.yaml"), &yaml).unwrap();
    })
    .await
    else {
        return;
    };
    // Start the day's count at a known place: 01:00 UTC of the next day.
    let now = env.clock_ms();
    env.clock.advance(Duration::from_millis(
        (DAY_MS - now.rem_euclid(DAY_MS) + 3_600_000) as u64,
    ));
    let guard_id = env
        .user("guard@acme.test", false, &[("acme", Role::Viewer)])
        .await;
    env.user("boss@acme.test", false, &[("acme", Role::Editor)])
        .await;
    env.user("outsider@globex.test", false, &[("globex", Role::Admin)])
        .await;
    let guard = env.signed_in("guard@acme.test").await;
    let boss = env.signed_in("boss@acme.test").await;
    let outsider = env.signed_in("outsider@globex.test").await;
    let (status, _) = subscribe(
        &guard,
        json!({"tenant": "acme", "in_app": true, "rules": ["person_back"]}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = subscribe(
        &boss,
        json!({"tenant": "acme", "in_app": true, "severities": ["critical"]}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = subscribe(&outsider, json!({"tenant": "acme", "in_app": true})).await;
    assert_eq!(
        status, 400,
        "another tenant's user cannot subscribe: {body}"
    );
    let (status, body) = subscribe(
        &guard,
        json!({"tenant": "acme", "in_app": true, "rules": ["nope"]}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("no alert rule `nope`"), "{body}");

    let (_, ingest) = env.key(Some("acme"), "ingest,read").await;
    let (_, picture) = upload(
        &env,
        &ingest,
        "acme",
        "image/png",
        png_sized(90, 640, 480),
        "",
    )
    .await;
    let id = picture["id"].as_str().unwrap().to_string();
    let id = id.as_str();

    // One matching row among three: one notice to every channel.
    let first = minute(
        &env,
        &[
            ("cam1", "back", "person", 0.9, id),
            ("cam1", "front", "person", 0.8, id),
            ("cam2", "back", "vehicle", 0.7, id),
        ],
    )
    .await;
    let h = history(&env, 1).await;
    assert_eq!(
        h,
        [(
            "event".to_string(),
            "Person at cam1 (score 0.9)".to_string()
        )]
    );
    for _ in 0..50 {
        if !hook.bodies.lock().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    {
        let bodies = hook.bodies.lock();
        assert_eq!(bodies.len(), 1, "{bodies:?}");
        let a = &bodies[0]["alerts"][0];
        assert_eq!(a["labels"]["camera"], "cam1");
        assert_eq!(a["labels"]["alertname"], "person_back");
        let link = a["annotations"]["link"].as_str().unwrap();
        assert!(link.contains("/t/acme/p/events?from="), "{link}");
        let thumb = a["annotations"]["thumbnail_url"].as_str().unwrap();
        assert!(
            thumb.ends_with(&format!(
                "/api/v1/tenants/acme/attachments/{id}?thumbnail=1"
            )),
            "{thumb}"
        );
    }
    if let Some(smtp) = &smtp {
        let mut mail = vec![];
        for _ in 0..50 {
            mail = smtp.messages();
            if !mail.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(mail.len(), 1);
        let m = &mail[0];
        assert!(
            m.contains("multipart/related") && m.contains("cid:event0"),
            "{m}"
        );
        assert!(
            m.contains("Content-Type: image/jpeg"),
            "the thumbnail is inline: {m}"
        );
        assert!(m.contains("/t/acme/p/events?from="), "{m}");
    }
    let (_, summary) = env.server.get("/api/v1/tenants/acme/alerts").await;
    let notice = &summary["notifications"][0];
    assert_eq!(
        notice["thumbnail"],
        format!("/api/v1/tenants/acme/attachments/{id}?thumbnail=1")
    );
    let mine = my_notices(&guard).await;
    assert_eq!(
        mine.len(),
        1,
        "the guard's subscription covers the rule: {mine:?}"
    );
    assert!(mine[0]["thumbnail"].is_string());
    assert!(
        my_notices(&boss).await.is_empty(),
        "critical only: a high event is not for the boss"
    );
    let (status, page) = guard.text("/account/notifications").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("class=\"event-thumb\"") && page.contains("Person at cam1"),
        "{page}"
    );

    // The first row written again (a retried write), two more from cam1 within the throttle,
    // one from cam2: cam2 is told, cam1's two are held back, the repeat is nothing.
    write_at(&env, first, &[("cam1", "back", "person", 0.9, id)]).await;
    minute(
        &env,
        &[
            ("cam1", "back", "person", 0.91, id),
            ("cam1", "back", "person", 0.92, id),
            ("cam2", "back", "person", 0.5, id),
        ],
    )
    .await;
    let h = history(&env, 4).await;
    let counts = |state: &str| h.iter().filter(|(s, _)| s == state).count();
    assert_eq!((counts("event"), counts("throttled")), (2, 2), "{h:?}");
    assert_eq!(h.len(), 4, "the rewritten row is not a new event: {h:?}");

    // Past cam1's throttle: its next row is told with the two held back, and is the day's
    // third — the cap. A fourth row (cam3) that day is capped; a restart changes nothing.
    env.clock.advance(Duration::from_secs(300));
    minute(&env, &[("cam1", "back", "person", 0.95, id)]).await;
    let h = history(&env, 5).await;
    let last = &h[4].1;
    assert!(
        last.contains("(+2 more events held back by the 5m throttle)"),
        "{last}"
    );
    assert!(last.contains("daily cap of 3 reached"), "{last}");
    let env = env.restart().await;
    minute(&env, &[("cam3", "back", "person", 0.99, id)]).await;
    let h = history(&env, 6).await;
    assert_eq!(h.len(), 6, "nothing judged twice after the restart: {h:?}");
    assert_eq!(h[5].0, "capped");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hook.bodies.lock().len(), 3, "three notices in all");

    // The next day counts again; a subscriber who lost access hears nothing.
    env.clock.advance(Duration::from_millis(DAY_MS as u64));
    let actor = opsboard::auth::Actor::new("tests", None);
    env.auth
        .revoke_membership(&actor, guard_id, "acme")
        .await
        .unwrap();
    minute(&env, &[("cam3", "back", "person", 0.6, id)]).await;
    let h = history(&env, 7).await;
    assert_eq!(h[6].0, "event");
    for _ in 0..50 {
        if hook.bodies.lock().len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(hook.bodies.lock().len(), 4);
    let guard = env.signed_in("guard@acme.test").await;
    let r = guard.get("/api/v1/account/subscriptions").await;
    let body: Value = r.json().await.unwrap();
    assert!(
        !body.to_string().contains("\"acme\""),
        "a user without access neither sees the tenant nor gets its notices: {body}"
    );
    env.server.stop().await;
}
