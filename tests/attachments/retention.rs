//! Unreferenced attachments go, on the manual clock: one never named is deleted after the
//! grace; uploading the same bytes again starts its grace anew; one named only by rows past
//! the table's retention goes too (with its thumbnail), one still named stays, and a row
//! naming a deleted attachment is then refused.

use std::time::Duration;

use serde_json::json;

use crate::common::session::{Db, Env};
use crate::{png_bytes, upload};

const MINUTE: u64 = 60;

/// The status of a read of attachment `id`.
async fn status_of(env: &Env, key: &str, id: &str) -> u16 {
    crate::common::client_with_key(key)
        .get(env.url(&format!("/api/v1/tenants/acme/attachments/{id}")))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits for maintenance to leave `gone` missing, and checks `kept` are still there.
async fn settled(env: &Env, key: &str, gone: &[&str], kept: &[&str]) {
    for _ in 0..100 {
        let mut missing = 0;
        for id in gone {
            missing += (status_of(env, key, id).await == 404) as usize;
        }
        if missing == gone.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in gone {
        assert_eq!(status_of(env, key, id).await, 404, "{id} should be gone");
    }
    for id in kept {
        assert_eq!(
            status_of(env, key, id).await,
            200,
            "{id} should be kept (of {kept:?})"
        );
    }
}

async fn name(env: &Env, at_ms: i64, id: &str) -> (u16, serde_json::Value) {
    let row = json!({"time": at_ms, "camera": "c1", "snapshot": id});
    env.server
        .write("acme", "events", "application/x-ndjson", format!("{row}\n"))
        .await
}

#[tokio::test]
async fn unreferenced_attachments_are_deleted_after_the_grace_and_retention() {
    let env = Env::start(Db::Sqlite, "attachment retention", |c| {
        c.attachments.unreferenced_grace = "1h".parse().unwrap();
        c.attachments.collect_interval = "1m".parse().unwrap();
        c.storage.maintenance_interval = "100ms".parse().unwrap();
        // Every row goes to a Parquet file at the next pass: the scan reads files too.
        c.storage.flush_max_rows = 1;
        let dir = c.tenants_dir.join("acme");
        let mut yaml = std::fs::read_to_string(dir.join("tenant.yaml")).unwrap();
        yaml.push_str("  events:\n    tags: [camera]\n    retention: 2h\n    fields:\n      snapshot: attachment\n");
        std::fs::write(dir.join("tenant.yaml"), yaml).unwrap();
    })
    .await
    .expect("sqlite");
    let (_, key) = env.key(Some("acme"), "ingest,read").await;
    let mut ids = vec![];
    for shade in [10, 20, 30, 40] {
        let (status, body) = upload(&env, &key, "acme", "image/png", png_bytes(shade), "").await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    let [a, b, c, d] = [&ids[0], &ids[1], &ids[2], &ids[3]].map(String::as_str);
    let t0 = env.clock_ms();
    for id in [a, b] {
        let (status, body) = name(&env, t0, id).await;
        assert_eq!(status, 200, "{body}");
    }
    // The rows are in a Parquet file before the first collection reads them.
    for _ in 0..100 {
        if !env.dirs.parquet_files("acme", "events").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!env.dirs.parquet_files("acme", "events").is_empty());
    // A thumbnail, to see it go with its picture.
    let thumb = crate::common::client_with_key(&key)
        .get(env.url(&format!("/api/v1/tenants/acme/attachments/{a}?thumbnail=1")))
        .send()
        .await
        .unwrap();
    assert_eq!(thumb.status(), 200);
    let objects_with_thumbnail = crate::stored_objects(&env, "acme");

    env.clock.advance(Duration::from_secs(50 * MINUTE));
    let (status, _) = upload(&env, &key, "acme", "image/png", png_bytes(40), "").await;
    assert_eq!(
        status, 201,
        "the same bytes again: deduplicated, and d's grace starts anew"
    );
    env.clock.advance(Duration::from_secs(40 * MINUTE));
    // 90 minutes on: c was never named; d was uploaded again 40 minutes ago.
    settled(&env, &key, &[c], &[a, b, d]).await;

    // b is named again; 60 minutes on, a's only row is past the 2h retention, and d's grace
    // is over without a row.
    let (status, body) = name(&env, env.clock_ms(), b).await;
    assert_eq!(status, 200, "{body}");
    env.clock.advance(Duration::from_secs(60 * MINUTE));
    settled(&env, &key, &[a, d], &[b]).await;
    assert!(
        crate::stored_objects(&env, "acme") < objects_with_thumbnail,
        "the thumbnail and info went with the pictures"
    );
    let (status, body) = name(&env, env.clock_ms(), a).await;
    assert_eq!(status, 400, "a deleted attachment cannot be named: {body}");
    env.server.stop().await;
}
