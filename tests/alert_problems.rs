//! Rules without an answer, end to end on a manual clock: an empty answer or a failing query is
//! reported to the rule's routes as Grafana does (`DatasourceNoData` / `DatasourceError`, after
//! `for`, once, then resolved), or counts as alerting / fine, as each rule's
//! `no_data_state` / `exec_err_state` says. Rules on panels over the same rows share a scan.

#[macro_use]
mod common;

use std::time::Duration;

use common::alerting::{Hook, problems, webhook};
use common::session::{Db, Env};
use serde_json::Value;

fn rules(hook: &str) -> String {
    let series = |host: &str| {
        format!(
            "SELECT host, max(cpu) AS value FROM metrics WHERE host = '{host}' AND time >= $from AND time < $to GROUP BY host"
        )
    };
    let broken = "SELECT host, 1 / (count(*) - count(*)) AS value FROM metrics WHERE time >= $from AND time < $to GROUP BY host";
    format!(
        r#"rules:
  - name: sensor_silent
    sql: "{silent}"
    condition: "> 1000"
    for: 2m
    severity: critical
  - name: sensor_alerting
    sql: "{alerting}"
    condition: "> 1000"
    no_data_state: alerting
    severity: critical
  - name: sensor_ok
    sql: "{ok}"
    condition: "> 1000"
    no_data_state: ok
    severity: critical
  - name: broken_reported
    sql: "{broken}"
    condition: "> 1"
    no_data_state: ok
    severity: critical
  - name: broken_ok
    sql: "{broken}"
    condition: "> 1"
    no_data_state: ok
    exec_err_state: ok
    severity: critical
channels:
  - {{name: hook, type: webhook, url: "{hook}", format: alertmanager}}
routes:
  - {{channels: [hook], group_by: [alertname, rulename]}}
"#,
        silent = series("sensor"),
        alerting = series("sensor2"),
        ok = series("sensor3"),
    )
}

/// Writes one row for `host` a second before the clock's next minute, then moves the clock there.
async fn minute(env: &Env, hosts: &[&str]) {
    let at = env.clock_ms() + 60_000;
    let body: String = hosts
        .iter()
        .map(|h| {
            format!(
                "{{\"time\":{},\"host\":\"{h}\",\"cpu\":5,\"mem\":1}}\n",
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

/// `(status, alertname, rulename)` of every alert the receiver got, in order.
fn received(hook: &Hook) -> Vec<(String, String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    hook.bodies
        .lock()
        .iter()
        .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
        .map(|a| {
            (
                text(&a["status"]),
                text(&a["labels"]["alertname"]),
                text(&a["labels"]["rulename"]),
            )
        })
        .collect()
}

async fn wait_until(hook: &Hook, what: &str, check: impl Fn(&[(String, String, String)]) -> bool) {
    for _ in 0..100 {
        if check(&received(hook)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} never happened: {:#?}", received(hook));
}

fn got(list: &[(String, String, String)], status: &str, alertname: &str, rule: &str) -> usize {
    list.iter()
        .filter(|(s, a, r)| s == status && a == alertname && (r == rule || rule.is_empty()))
        .count()
}

on_both_databases!(nodata_and_error_follow_each_rules_policy);

async fn nodata_and_error_follow_each_rules_policy(db: Db) {
    let hook = webhook(0).await;
    let yaml = rules(&hook.url);
    let Some(env) = Env::start(db, "alert_problems", move |c| {
        c.alerts.tick = "100ms".parse().unwrap();
        c.alerts.retry_backoff = "50ms".parse().unwrap();
        c.alerts.allowed_targets = vec!["127.0.0.1".parse().unwrap()];
        let dir = c.tenants_dir.join("acme/alerts");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("rules.yaml"), &yaml).unwrap();
    })
    .await
    else {
        return;
    };
    // Before any data, rules without data or failing leave changes without a value: the
    // history still reads back (its `value` column exists, empty).
    let mut history = vec![];
    for _ in 0..100 {
        let (_, summary) = env.server.get("/api/v1/tenants/acme/alerts").await;
        history = summary["history"].as_array().cloned().unwrap_or_default();
        if !history.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!history.is_empty(), "the first changes read back");
    assert!(history.iter().all(|h| h["value"].is_null()), "{history:?}");
    // Minute 1: host `a` answers, so the broken rules fail; the sensors stay silent.
    minute(&env, &["a"]).await;
    wait_until(&hook, "the error and the alerting sensor", |l| {
        got(l, "firing", "DatasourceError", "broken_reported") == 1
            && got(l, "firing", "sensor_alerting", "") == 1
    })
    .await;
    let first = received(&hook);
    assert_eq!(
        got(&first, "firing", "DatasourceNoData", ""),
        0,
        "for: 2m not yet over: {first:#?}"
    );
    assert_eq!(
        got(&first, "firing", "DatasourceError", "broken_ok"),
        0,
        "{first:#?}"
    );
    assert_eq!(got(&first, "firing", "sensor_ok", ""), 0, "{first:#?}");
    let error_alert = hook
        .bodies
        .lock()
        .iter()
        .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
        .find(|a| a["labels"]["alertname"] == "DatasourceError")
        .unwrap();
    assert_eq!(error_alert["labels"]["severity"], "critical");
    assert!(
        error_alert["annotations"]["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("divide by zero"),
        "{error_alert:#}"
    );

    // Minutes 2 and 3: the silent sensor has had no data for 2 minutes: reported, once.
    minute(&env, &["a"]).await;
    minute(&env, &["a"]).await;
    wait_until(&hook, "the nodata report", |l| {
        got(l, "firing", "DatasourceNoData", "sensor_silent") == 1
    })
    .await;
    minute(&env, &["a"]).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let now = received(&hook);
    assert_eq!(
        got(&now, "firing", "DatasourceNoData", "sensor_silent"),
        1,
        "{now:#?}"
    );
    assert_eq!(
        got(&now, "firing", "DatasourceError", "broken_reported"),
        1,
        "{now:#?}"
    );
    assert_eq!(
        got(&now, "firing", "DatasourceNoData", ""),
        1,
        "the other rules' empty answers count as alerting or fine: {now:#?}"
    );

    // Data for every sensor: what was reported about them is resolved, once each.
    minute(&env, &["sensor", "sensor2", "sensor3"]).await;
    wait_until(&hook, "the resolutions", |l| {
        got(l, "resolved", "DatasourceNoData", "sensor_silent") == 1
            && got(l, "resolved", "sensor_alerting", "") == 1
    })
    .await;
    // The resolution says when the problem began, as its firing did.
    let starts_at = |status: &str| {
        hook.bodies
            .lock()
            .iter()
            .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
            .find(|a| {
                a["status"] == status
                    && a["labels"]["alertname"] == "DatasourceNoData"
                    && a["labels"]["rulename"] == "sensor_silent"
            })
            .map(|a| a["startsAt"].clone())
    };
    assert!(starts_at("firing").is_some());
    assert_eq!(starts_at("resolved"), starts_at("firing"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let end = received(&hook);
    // The broken rules still fail while rows exist: their error stays, unrepeated.
    assert_eq!(
        got(&end, "firing", "DatasourceError", "broken_reported"),
        1,
        "{end:#?}"
    );
    assert_eq!(got(&end, "resolved", "DatasourceError", ""), 0, "{end:#?}");
    assert!(
        end.iter()
            .all(|(_, a, _)| a != "broken_ok" && a != "sensor_ok"),
        "{end:#?}"
    );

    // The page and the API show each rule's problem with its state.
    let (_, summary) = env.server.get("/api/v1/tenants/acme/alerts").await;
    let problems = problems(&summary);
    assert!(
        problems.contains(&("broken_ok".into(), "error".into())),
        "{problems:?}"
    );
    assert!(
        !problems.iter().any(|(r, _)| r == "sensor_silent"),
        "{problems:?}"
    );
    env.server.stop().await;
}

/// Rules on panels over the same rows (the max of cpu and of mem, one KPI each) are observed
/// together in a cycle, so their panels read the rows in one shared scan — and each rule still
/// fires on its own panel's value.
#[tokio::test]
async fn rules_on_panels_over_the_same_rows_share_one_scan() {
    let hook = webhook(0).await;
    let kpi = |field: &str| {
        format!(
            "panel:\n  type: kpi\n  title: {field}\n  data_source:\n    table: metrics\n    columns: {{value: {field}}}\n  aggregation: {{function: max}}\n"
        )
    };
    let rule = |name: &str, panel: &str, condition: &str| {
        format!(
            "  - {{name: {name}, panel: {panel}, condition: \"{condition}\", severity: high}}\n"
        )
    };
    let yaml = format!(
        "rules:\n{}{}{}channels:\n  - {{name: hook, type: webhook, url: \"{}\", format: alertmanager}}\nroutes:\n  - {{channels: [hook], group_by: [alertname]}}\n",
        rule("cpu_high", "max_cpu", "> 4"),
        rule("mem_high", "max_mem", "> 4"),
        rule("cpu_huge", "max_cpu", "> 1000"),
        hook.url
    );
    let Some(env) = Env::start(Db::Sqlite, "alert_shared_scans", move |c| {
        c.alerts.tick = "100ms".parse().unwrap();
        c.alerts.allowed_targets = vec!["127.0.0.1".parse().unwrap()];
        // Long enough that a busy test machine cannot split the cycle's queries.
        c.panels.shared_scan_wait = "200ms".parse().unwrap();
        let acme = c.tenants_dir.join("acme");
        std::fs::write(acme.join("panels/max_cpu.yaml"), kpi("cpu")).unwrap();
        std::fs::write(acme.join("panels/max_mem.yaml"), kpi("mem")).unwrap();
        std::fs::create_dir_all(acme.join("alerts")).unwrap();
        std::fs::write(acme.join("alerts/rules.yaml"), &yaml).unwrap();
    })
    .await
    else {
        return;
    };
    // cpu 5 and mem 1 in the newest minute: only the cpu rule's panel passes 4.
    minute(&env, &["a"]).await;
    wait_until(&hook, "cpu_high firing", |l| {
        got(l, "firing", "cpu_high", "") == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let now = received(&hook);
    assert_eq!(got(&now, "firing", "mem_high", ""), 0, "{now:#?}");
    assert_eq!(got(&now, "firing", "cpu_huge", ""), 0, "{now:#?}");
    let shared = env
        .server
        .client
        .get(env.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("opsboard_panel_scans_shared_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap();
    // cpu_high and cpu_huge read one panel (one query); max_mem joined max_cpu's scan.
    assert!(shared >= 1, "the rules' panels shared no scan");
    env.server.stop().await;
}
