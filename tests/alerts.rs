//! Alerting end to end on a manual clock: demo-like data crosses a threshold, the rule goes
//! pending then firing, a local webhook receiver gets exactly one firing and one resolved
//! message (after a failed first try that is retried), an email reaches a local SMTP sink
//! (Python's aiosmtpd), open pages get the change over server-sent events, an editor's
//! acknowledgement is recorded, a silence suppresses both messages, restarts in the middle of
//! pending and of firing neither forget nor repeat, and nodata / error show on the rule.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::alerting::{SmtpSink, problems, webhook};
use common::session::{Db, Env};
use opsboard::auth::Role;
use parking_lot::Mutex;
use serde_json::{Value, json};

fn rules(hook: &str, smtp: &str) -> String {
    format!(
        r#"rules:
  - name: cpu_high
    sql: SELECT host, max(cpu) AS value FROM metrics WHERE time >= $from AND time < $to GROUP BY host
    condition: "> 90"
    for: 2m
    every: 1m
    range: 1m
    severity: critical
    labels: {{team: ops}}
    message: "CPU on {{{{ host }}}} at {{{{ value }}}}%"
    annotations:
      runbook: "https://runbooks.example/cpu/{{{{ host }}}}"
  - name: broken
    sql: SELECT host, 1 / (count(*) - count(*)) AS value FROM metrics WHERE time >= $from AND time < $to GROUP BY host
    condition: "> 1"
    severity: low
  - name: quiet
    sql: SELECT name, max(status) AS value FROM service_health WHERE time >= $from AND time < $to GROUP BY name
    condition: "> 1"
    severity: low
channels:
  - {{name: hook, type: webhook, url: "{hook}", format: alertmanager}}
  - {{name: mail, type: email, to: [ops@acme.test], from: alerts@acme.test, smtp: "{smtp}"}}
  - {{name: inbox, type: in_app}}
routes:
  - {{channels: [hook, mail, inbox], severity: [critical], group_by: [alertname]}}
"#
    )
}

async fn summary(env: &Env) -> Value {
    env.server.get("/api/v1/tenants/acme/alerts").await.1
}

async fn wait_for(env: &Env, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let s = summary(env).await;
        if check(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} never happened: {:#}", summary(env).await);
}

fn hosts(s: &Value, list: &str) -> Vec<String> {
    s[list]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["rule"] == "cpu_high")
        .map(|a| a["labels"]["host"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Writes `host`'s cpu a second before the clock's next minute, then moves the clock there, so
/// the next evaluation sees exactly this row in its one-minute range.
async fn minute(env: &Env, rows: &[(&str, f64)]) {
    let at = env.clock_ms() + 60_000;
    let body: String = rows
        .iter()
        .map(|(host, cpu)| {
            format!(
                "{{\"time\":{},\"host\":\"{host}\",\"cpu\":{cpu},\"mem\":1}}\n",
                at - 1_000
            )
        })
        .collect();
    let (status, body) = env
        .server
        .write("acme", "metrics", "application/x-ndjson", body)
        .await;
    assert_eq!(status, 200, "{body}");
    env.clock.advance(Duration::from_secs(60));
}

/// Opens the page's event stream and collects what it pushes in the background.
async fn listen(browser: &common::session::Browser) -> Arc<Mutex<String>> {
    let mut events = browser.get("/t/acme/alerts/events").await;
    assert_eq!(events.status(), 200);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let pushed: Arc<Mutex<String>> = Arc::default();
    let sink = pushed.clone();
    tokio::spawn(async move {
        while let Ok(Some(chunk)) = events.chunk().await {
            sink.lock().push_str(&String::from_utf8_lossy(&chunk));
        }
    });
    pushed
}

/// Lets a few evaluation ticks pass (for checks that nothing more happened).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1_000)).await;
}

#[tokio::test]
async fn threshold_to_webhook_email_ack_silence_and_restarts() {
    let hook = webhook(1).await;
    let smtp = SmtpSink::start();
    let smtp_address = smtp
        .as_ref()
        .map_or("127.0.0.1:9".to_string(), |s| s.address.clone());
    let yaml = rules(&hook.url, &smtp_address);
    let Some(env) = Env::start(Db::Sqlite, "alerts", move |c| {
        c.alerts.tick = "100ms".parse().unwrap();
        c.alerts.retry_backoff = "50ms".parse().unwrap();
        c.alerts.allowed_targets = vec!["127.0.0.1".parse().unwrap()];
        let dir = c.tenants_dir.join("acme/alerts");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("rules.yaml"), &yaml).unwrap();
        let panel = "panel:\n  type: alerts\n  title: Active alerts\n";
        std::fs::write(c.tenants_dir.join("acme/panels/active_alerts.yaml"), panel).unwrap();
    })
    .await
    else {
        return;
    };
    env.user("editor@acme.test", false, &[("acme", Role::Editor)])
        .await;
    env.user("viewer@acme.test", false, &[("acme", Role::Viewer)])
        .await;
    // Over the threshold: pending (for: 2m). The broken rule errors, the quiet one has no data.
    minute(&env, &[("hot", 95.0), ("cool", 20.0)]).await;
    // Rules of one cycle run one after another: wait for the cycle's last rule too.
    let s = wait_for(&env, "pending, error and nodata", |s| {
        let problems = problems(s);
        hosts(s, "pending") == ["hot"]
            && problems.contains(&("broken".into(), "error".into()))
            && problems.contains(&("quiet".into(), "nodata".into()))
    })
    .await;
    assert!(
        s["problems"]
            .to_string()
            .to_lowercase()
            .contains("divide by zero"),
        "the error says why: {}",
        s["problems"]
    );

    // A restart in the middle of pending keeps the pending start.
    let env = env.restart().await;
    let editor = env.signed_in("editor@acme.test").await;
    let pushed_before = listen(&editor).await;
    minute(&env, &[("hot", 96.0)]).await;
    settle().await;
    assert_eq!(
        hosts(&summary(&env).await, "pending"),
        ["hot"],
        "still pending after 1 of 2 minutes"
    );
    minute(&env, &[("hot", 97.0)]).await;
    wait_for(&env, "firing", |s| hosts(s, "firing") == ["hot"]).await;
    for _ in 0..50 {
        if !hook.bodies.lock().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    {
        let bodies = hook.bodies.lock();
        assert_eq!(bodies.len(), 1);
        let b = &bodies[0];
        assert_eq!(b["status"], "firing");
        assert_eq!(b["groupLabels"]["alertname"], "cpu_high");
        let a = &b["alerts"][0];
        assert_eq!(a["labels"]["host"], "hot");
        assert_eq!(a["labels"]["team"], "ops");
        assert_eq!(a["labels"]["severity"], "critical");
        assert_eq!(a["annotations"]["message"], "CPU on hot at 97.0%");
        assert_eq!(
            a["annotations"]["runbook"],
            "https://runbooks.example/cpu/hot"
        );
    }

    // The `alerts` panel lists it, firing first, from the tenant's alerts table.
    let (status, answer) = env
        .server
        .get("/api/v1/tenants/acme/panels/active_alerts/data")
        .await;
    assert_eq!(status, 200, "{answer}");
    let listed: Vec<(String, String)> = answer["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["rule"].as_str().unwrap().to_string(),
                a["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        listed[0],
        ("cpu_high".to_string(), "firing".to_string()),
        "{listed:?}"
    );
    assert!(listed.contains(&("broken".into(), "error".into())));
    assert_eq!(answer["alerts"][0]["labels"]["host"], "hot");
    assert_eq!(answer["counts"]["firing"], 1);
    let fragment = editor
        .text("/t/acme/p/active_alerts/fragment")
        .await
        .1
        .replace("&#x2f;", "/");
    assert!(
        fragment.contains("state-firing")
            && fragment.contains("host=hot")
            && fragment.contains("/t/acme/alerts"),
        "{fragment}"
    );

    // A viewer may not acknowledge; the editor does, and it is recorded with the user.
    let viewer = env.signed_in("viewer@acme.test").await;
    let csrf = viewer.csrf().await;
    let labels = r#"{"host":"hot"}"#;
    let r = viewer
        .post_form(
            "/t/acme/alerts/ack",
            &[("_csrf", &csrf), ("rule", "cpu_high"), ("labels", labels)],
        )
        .await;
    assert_eq!(r.status(), 403);
    let csrf = editor.csrf().await;
    let r = editor
        .post_form(
            "/t/acme/alerts/ack",
            &[("_csrf", &csrf), ("rule", "cpu_high"), ("labels", labels)],
        )
        .await;
    assert_eq!(r.status(), 200);
    let s = summary(&env).await;
    assert_eq!(s["firing"][0]["acked_by"], "user:editor@acme.test");
    let (_, page) = editor.text("/t/acme/alerts").await;
    assert!(
        page.contains("user:editor@acme.test at "),
        "the page shows who acknowledged"
    );

    // Still firing a minute later, and after a restart: nothing is sent twice.
    minute(&env, &[("hot", 98.0)]).await;
    settle().await;
    let env = env.restart().await;
    let editor = env.signed_in("editor@acme.test").await;
    let pushed_after = listen(&editor).await;
    minute(&env, &[("hot", 99.0)]).await;
    settle().await;
    assert_eq!(
        hook.bodies.lock().len(),
        1,
        "no repeat before repeat_interval, none after restart"
    );
    let s = summary(&env).await;
    assert_eq!(hosts(&s, "firing"), ["hot"]);
    assert_eq!(
        s["firing"][0]["acked_by"], "user:editor@acme.test",
        "the acknowledgement outlives evaluations and a restart"
    );

    // Back under the threshold: one resolved message.
    minute(&env, &[("hot", 10.0)]).await;
    wait_for(&env, "resolved", |s| hosts(s, "firing").is_empty()).await;
    for _ in 0..50 {
        if hook.bodies.lock().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    settle().await;
    {
        let bodies = hook.bodies.lock();
        assert_eq!(bodies.len(), 2, "{bodies:#?}");
        assert_eq!(bodies[1]["status"], "resolved");
        assert_eq!(bodies[1]["alerts"][0]["labels"]["host"], "hot");
        assert_ne!(bodies[1]["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    }

    // A silence made by the editor keeps both messages of a matching alert from going out.
    let csrf = editor.csrf().await;
    let r = editor
        .post_form(
            "/t/acme/alerts/silences",
            &[
                ("_csrf", &csrf),
                ("matchers", "alertname=cpu_high, host=~\"mut(e|ed)\""),
                ("duration", "1h"),
                ("comment", "maintenance"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    // Scripts use Alertmanager's matcher shape; a bad regex is refused and says why.
    let api = |body: Value| {
        env.server
            .client
            .post(env.server.url.clone() + "/api/v1/tenants/acme/alerts/silences")
            .json(&body)
            .send()
    };
    let r = api(json!({"matchers": [
        {"name": "alertname", "value": "cpu_high", "isRegex": false, "isEqual": true},
        {"name": "host", "value": "db-.*", "isRegex": true, "isEqual": true}],
        "duration": "30m"}))
    .await
    .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let r = api(json!({"matchers": "host=~(", "duration": "30m"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("regex parse error"));
    // A silence that would also cover alerts without the label (so, everything) is refused.
    let r = api(json!({"matchers": "team!=dev", "duration": "30m"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("needs a value"));
    let listed: Vec<String> = summary(&env).await["silences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["matchers_text"].as_str().unwrap().to_string())
        .collect();
    assert!(
        listed.contains(&"alertname=cpu_high, host=~mut(e|ed)".to_string())
            && listed.contains(&"alertname=cpu_high, host=~db-.*".to_string()),
        "{listed:?}"
    );
    minute(&env, &[("muted", 95.0)]).await;
    wait_for(&env, "muted pending", |s| hosts(s, "pending") == ["muted"]).await;
    // Two more minutes: firing at the latest evaluation, however many ticks ran between.
    minute(&env, &[("muted", 95.0)]).await;
    settle().await;
    minute(&env, &[("muted", 95.0)]).await;
    wait_for(&env, "muted firing", |s| hosts(s, "firing") == ["muted"]).await;
    minute(&env, &[("muted", 5.0)]).await;
    wait_for(&env, "muted resolved", |s| hosts(s, "firing").is_empty()).await;
    settle().await;
    assert_eq!(hook.bodies.lock().len(), 2, "silenced: no webhook");

    // Every change is in the tenant's alerts table, for panels.
    let rows = env
        .server
        .rows("acme", "SELECT state FROM alerts WHERE rule = 'cpu_high' AND labels LIKE '%\"hot\"%' ORDER BY time")
        .await;
    let states: Vec<&str> = rows.iter().map(|r| r["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["pending", "firing", "resolved"]);

    // In-app notifications and the delivery log (the first webhook try failed and was retried).
    let s = summary(&env).await;
    let inbox: Vec<String> = s["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| format!("{} {}", n["state"], n["labels"]["host"]))
        .collect();
    assert_eq!(inbox, ["\"resolved\" \"hot\"", "\"firing\" \"hot\""]);
    let deliveries = s["deliveries"].as_array().unwrap();
    let first_hook = deliveries
        .iter()
        .rev()
        .find(|d| d["channel"] == "hook")
        .unwrap();
    assert_eq!(
        (
            first_hook["outcome"].as_str(),
            first_hook["attempts"].as_i64()
        ),
        (Some("sent"), Some(2))
    );

    // Email: one firing, one resolved, nothing for the silenced alert.
    if let Some(smtp) = &smtp {
        let mails = smtp.messages();
        assert_eq!(mails.len(), 2, "{mails:#?}");
        assert!(
            mails[0].contains("[FIRING] cpu_high (critical): CPU on hot at 97.0%"),
            "{}",
            mails[0]
        );
        assert!(mails[0].contains("To: ops@acme.test"));
        assert!(mails[1].contains("[RESOLVED] cpu_high"), "{}", mails[1]);
        assert!(
            deliveries
                .iter()
                .any(|d| d["channel"] == "mail" && d["outcome"] == "sent")
        );
    }

    // Open pages were told as it happened.
    let (before, after) = (pushed_before.lock().clone(), pushed_after.lock().clone());
    assert!(
        before.contains("event: alert") && before.contains("\"state\":\"firing\""),
        "{before}"
    );
    assert!(after.contains("\"state\":\"resolved\""), "{after}");

    // The acknowledgement and the silence are in the audit log with the user.
    let audit = env
        .auth
        .audit_entries(&opsboard::auth::AuditFilter {
            tenant: Some("acme".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "alert.ack" && e.actor == "user:editor@acme.test")
    );
    assert!(
        audit
            .iter()
            .any(|e| e.action == "alert.silence" && e.actor == "user:editor@acme.test")
    );
    env.server.stop().await;
}

/// An open event stream asks again (here every 200 ms) whether its caller may still read: a
/// removed role ends a user's stream, a revoked key a key's. Each caller holds at most
/// `http.max_streams_per_user` streams (429 beyond).
#[tokio::test]
async fn event_streams_end_when_access_is_withdrawn_and_are_capped() {
    let Some(env) = Env::start(Db::Sqlite, "streams", |c| {
        c.http.stream_recheck = "200ms".parse().unwrap();
        c.http.max_streams_per_user = 2;
    })
    .await
    else {
        return;
    };
    let ana = env
        .user("ana@acme.test", false, &[("acme", Role::Viewer)])
        .await;
    let browser = env.signed_in("ana@acme.test").await;
    let first = browser.get("/t/acme/alerts/events").await;
    let second = browser.get("/t/acme/alerts/events").await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = browser.get("/t/acme/alerts/events").await;
    assert_eq!(third.status(), 429);
    assert!(third.headers().contains_key("retry-after"));
    drop(second);
    // The dropped stream's place comes back once the server notices the closed connection.
    let mut reopened = None;
    for _ in 0..50 {
        let r = browser.get("/t/acme/alerts/events").await;
        if r.status() == 200 {
            reopened = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reopened = reopened.expect("a place freed by the closed stream");

    let (key_id, key) = env.key(Some("acme"), "read").await;
    let by_key = reqwest::Client::new()
        .get(env.url("/t/acme/alerts/events"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(by_key.status(), 200);

    env.auth
        .revoke_membership(&opsboard::auth::Actor::new("tests", None), ana, "acme")
        .await
        .unwrap();
    env.auth
        .revoke_key(&opsboard::auth::Actor::new("tests", None), &key_id)
        .await
        .unwrap();
    // An export running when its key is revoked ends with an error, never as a whole file.
    let (_, export_key) = env.key(Some("acme"), "read").await;
    let export_id = env
        .auth
        .keys(Some("acme"))
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.revoked_at.is_none() && k.id != key_id)
        .map(|k| k.id)
        .unwrap();
    let mut export = reqwest::Client::new()
        .post(env.url("/api/v1/tenants/acme/query?format=csv"))
        .bearer_auth(&export_key)
        .json(&json!({"sql": "SELECT value, repeat('x', 200) AS pad FROM range(9000000)"}))
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    env.auth
        .revoke_key(&opsboard::auth::Actor::new("tests", None), &export_id)
        .await
        .unwrap();
    let cut = tokio::time::timeout(Duration::from_secs(20), async {
        let mut received = 0usize;
        loop {
            match export.chunk().await {
                Ok(Some(chunk)) => received += chunk.len(),
                Ok(None) => return Ok(received),
                Err(_) => return Err(received),
            }
        }
    })
    .await
    .expect("the export ended");
    assert!(
        cut.is_err(),
        "the cut export must fail, not end as a whole file: {cut:?}"
    );
    for (name, mut stream) in [
        ("role removed", first),
        ("role removed", reopened),
        ("key revoked", by_key),
    ] {
        let ended = tokio::time::timeout(Duration::from_secs(10), async {
            while let Ok(Some(_)) = stream.chunk().await {}
        })
        .await;
        assert!(ended.is_ok(), "{name}: the stream stayed open");
    }
    env.server.stop().await;
}
