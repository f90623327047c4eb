//! Alert evaluation cost: 1,000 rules over a tenant of ~10M rows (TSBS cpu, 170 hosts × 7 days
//! × 10 s), each rule `avg(usage_*) per hostname over the last 5 minutes > threshold`, every
//! minute. One evaluation cycle runs every rule once; its wall time is the cost per minute of
//! evaluation. Reported: the first cycle (every instance is new: pending/firing changes written
//! to the database and the tenant's alerts table), a steady cycle (a minute later, few changes)
//! and the mean of six steady cycles.
//!
//! The rules use ten distinct queries (one per field), so rules with the same query share its
//! answer within a cycle; `OPSBOARD_BENCH_DISTINCT=1` gives every rule its own query instead.
//!
//! `cargo bench --bench alerts` (release). `OPSBOARD_BENCH_HOSTS` and `OPSBOARD_BENCH_RULES`
//! shrink it.

mod common;

use common::env_usize;

use std::sync::Arc;
use std::time::{Duration, Instant};

use opsboard::alerts::{AlertEngine, AlertStore, Notifier, NotifySettings};
use opsboard::clock::ManualClock;
use opsboard::config::{ConfigDirs, ServerConfig};
use opsboard::generate::FIELDS;
use opsboard::live::LiveConfigs;
use opsboard::panels::{PanelEngine, Registry};
use opsboard::query::QueryEngine;
use opsboard::storage::{OpenMode, Store};

const STEP: i64 = 10_000_000_000;
const DAYS: i64 = 7;

fn write_config(dir: &std::path::Path, rules: usize, distinct: bool) {
    std::fs::create_dir_all(dir.join("dashboards")).expect("dirs");
    std::fs::create_dir_all(dir.join("panels")).expect("dirs");
    std::fs::create_dir_all(dir.join("alerts")).expect("dirs");
    let tags = opsboard::generate::TAGS.join(", ");
    std::fs::write(
        dir.join("tenant.yaml"),
        format!("tables:\n  cpu:\n    tags: [{tags}]\n"),
    )
    .expect("tenant");
    std::fs::write(
        dir.join("panels/p.yaml"),
        "panel:\n  type: kpi\n  title: p\n  data_source:\n    table: cpu\n    columns: {value: usage_user}\n",
    )
    .expect("panel");
    std::fs::write(
        dir.join("dashboards/default.yaml"),
        "dashboard:\n  name: d\n  panels:\n    - id: p\n",
    )
    .expect("dashboard");
    let mut yaml = String::from("rules:\n");
    for i in 0..rules {
        let field = FIELDS[i % FIELDS.len()];
        // Thresholds from 0 to 99: some rules fire for most hosts, some for none.
        let threshold = (i / FIELDS.len()) % 100;
        // Distinct: a no-op HAVING per rule, so no two rules share a query (the worst case).
        let having = match distinct {
            true => format!(" HAVING count(*) > -{i}"),
            false => String::new(),
        };
        yaml.push_str(&format!(
            "  - name: r{i}\n    sql: SELECT hostname, avg({field}) AS value FROM cpu WHERE time >= $from AND time < $to GROUP BY hostname{having}\n    condition: \"> {threshold}\"\n    for: 2m\n    range: 5m\n    severity: medium\n    message: \"{field} on {{{{ hostname }}}} at {{{{ value }}}}\"\n"
        ));
    }
    std::fs::write(dir.join("alerts/rules.yaml"), yaml).expect("rules");
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let hosts = env_usize("OPSBOARD_BENCH_HOSTS", 170);
        let rules = env_usize("OPSBOARD_BENCH_RULES", 1_000);
        let distinct = env_usize("OPSBOARD_BENCH_DISTINCT", 0) == 1;
        let dir = tempfile::tempdir().expect("tempdir");
        write_config(&dir.path().join("tenants/bench"), rules, distinct);
        println!(
            "{rules} rules over {} distinct queries",
            if distinct { rules } else { FIELDS.len().min(rules) }
        );
        let mut config = ServerConfig {
            data_dir: dir.path().join("data"),
            tenants_dir: dir.path().join("tenants"),
            panels_dir: dir.path().join("panels"),
            ..Default::default()
        };
        config.storage.flush_max_rows = 20_000_000;
        config.storage.flush_max_bytes = 8 << 30;
        let end = (chrono::Utc::now().timestamp_nanos_opt().expect("now") / STEP) * STEP;
        let start = end - DAYS * 86_400_000_000_000;
        let t = Instant::now();
        let rows = common::fill_tsbs(&config, "bench", hosts, start, DAYS * 8640, STEP).await;
        println!("data: {rows} rows ({hosts} hosts × {DAYS} d × 10 s) in {:.1} s", t.elapsed().as_secs_f64());

        let store = Store::open(config.storage.clone(), &config.data_dir, &config.tenants_dir, OpenMode::ReadWrite)
            .await
            .expect("store");
        let query = Arc::new(QueryEngine::new(config.query.clone()));
        let dirs = ConfigDirs { tenants_dir: config.tenants_dir.clone(), panels_dir: config.panels_dir.clone() };
        let registry = Registry::builtin();
        let configs = Arc::new(LiveConfigs::new(dirs, config.aggregation.clone(), registry.image_names(), registry.data_names()));
        let t = Instant::now();
        configs.reload_all(&store).await;
        let (loaded, _) = configs.current("bench").expect("configuration loads");
        println!("{} rules loaded and checked in {:.2} s", loaded.alerts.rules.len(), t.elapsed().as_secs_f64());
        let panels = Arc::new(PanelEngine::new(store.clone(), query.clone(), configs.clone(), &config.panels));
        let db = opsboard::db::Db::connect(&opsboard::db::resolve_url(None, &config.data_dir)).await.expect("db");
        let alert_store = AlertStore::new(db);
        let settings = NotifySettings { smtp: "127.0.0.1:9".into(), from: "bench@localhost".into(), external_url: "http://bench.invalid".into(), attempts: 1, backoff: Duration::from_millis(1), allowed_targets: vec![] };
        // Five minutes before the data ends, so every cycle's five-minute range holds rows.
        let clock = ManualClock::new(end / 1_000_000 - 6 * 60_000);
        let engine = AlertEngine::new(alert_store.clone(), store.clone(), query, configs.clone(), panels, clock.clone(), Notifier::new(alert_store, settings));

        let t = Instant::now();
        let (ran, _) = engine.tick().await;
        let first = t.elapsed().as_secs_f64();
        let active = engine.store().active("bench").await.expect("active").len();
        println!("first cycle: {ran} rules in {first:.2} s ({active} instances pending)");
        let mut steady = vec![];
        for _ in 0..6 {
            clock.advance(Duration::from_secs(60));
            let t = Instant::now();
            let (ran, _) = engine.tick().await;
            assert_eq!(ran, rules);
            steady.push(t.elapsed().as_secs_f64());
        }
        let active = engine.store().active("bench").await.expect("active");
        let firing = active.iter().filter(|a| a.state == opsboard::alerts::AlertState::Firing).count();
        let mean = steady.iter().sum::<f64>() / steady.len() as f64;
        println!(
            "steady cycles (1 per minute): {:?} s; mean {mean:.2} s = {:.1}% of each minute on this machine; {firing} instances firing",
            steady.iter().map(|s| (s * 100.0).round() / 100.0).collect::<Vec<_>>(),
            mean / 60.0 * 100.0
        );
    });
}
