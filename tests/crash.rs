//! Durability with a real server process: SIGKILL during concurrent writes loses no row that
//! got a 2xx, and a torn WAL tail is cut at start without losing earlier records.

mod common;

use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use common::TestDirs;
use parking_lot::Mutex;

struct Process {
    child: Child,
    url: String,
}

fn spawn_server(dirs: &TestDirs) -> Process {
    let (child, url) = common::spawn_opsboard(dirs, &[]);
    Process { child, url }
}

async fn count(client: &reqwest::Client, url: &str, sql: &str) -> i64 {
    let resp = client
        .post(format!("{url}/api/v1/tenants/acme/query"))
        .json(&serde_json::json!({ "sql": sql }))
        .send()
        .await
        .expect("query");
    assert_eq!(resp.status().as_u16(), 200);
    let rows: serde_json::Value = resp.json().await.expect("json");
    rows[0]["n"].as_i64().expect("n")
}

async fn write_torn(client: &reqwest::Client, url: &str, body: String) -> u16 {
    let resp = client
        .post(format!("{url}/api/v1/tenants/acme/write/torn"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("write");
    resp.status().as_u16()
}

const WRITERS: usize = 4;
const ROWS_PER_BATCH: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_writes_loses_no_acknowledged_row() {
    let dirs = TestDirs::new(&["acme"]);
    let client = common::client_with_key(&common::admin_key(&dirs.config()).await);
    // (writer, batch) pairs that got a 200, across all runs.
    let acked: Arc<Mutex<Vec<(usize, u64)>>> = Arc::default();
    let mut next_batch = [0u64; WRITERS];
    for round in 0..5 {
        let mut server = spawn_server(&dirs);
        let mut tasks = vec![];
        for (w, first) in next_batch.iter().copied().enumerate() {
            let (client, url, acked) = (client.clone(), server.url.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                let mut b = first;
                // Bounded: stops by itself when the server dies or after 10,000 batches.
                while b < first + 10_000 {
                    let body: String = (0..ROWS_PER_BATCH)
                        .map(|i| {
                            format!(
                                "{{\"time\":{},\"writer\":\"w{w}\",\"batch\":{b},\"i\":{i}}}\n",
                                b * 1000 + i as u64
                            )
                        })
                        .collect();
                    let resp = client
                        .post(format!("{url}/api/v1/tenants/acme/write/crash"))
                        .header("content-type", "application/x-ndjson")
                        .body(body)
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status().is_success() => acked.lock().push((w, b)),
                        _ => break,
                    }
                    b += 1;
                }
                b
            }));
        }
        tokio::time::sleep(Duration::from_millis(400 + round * 150)).await;
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reap");
        for (w, t) in tasks.into_iter().enumerate() {
            // Batch numbers are never reused, even for writes whose answer was lost.
            next_batch[w] = t.await.expect("writer") + 1;
        }

        let server = spawn_server(&dirs);
        let acked_now = acked.lock().clone();
        assert!(
            !acked_now.is_empty(),
            "round {round}: no write was acknowledged"
        );
        let total = count(&client, &server.url, "SELECT count(*) AS n FROM crash").await;
        assert!(
            total >= (acked_now.len() * ROWS_PER_BATCH) as i64,
            "round {round}: {total} rows < acknowledged"
        );
        for w in 0..WRITERS {
            let mine: Vec<u64> = acked_now
                .iter()
                .filter(|(x, _)| *x == w)
                .map(|(_, b)| *b)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let list = mine
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let sql = format!(
                "SELECT count(*) AS n FROM crash WHERE writer = 'w{w}' AND batch IN ({list})"
            );
            let found = count(&client, &server.url, &sql).await;
            assert_eq!(
                found,
                (mine.len() * ROWS_PER_BATCH) as i64,
                "round {round}, writer {w}: acknowledged rows missing"
            );
        }
        let mut server = server;
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reap");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_wal_tail_is_cut_and_earlier_records_survive() {
    let dirs = TestDirs::new(&["acme"]);
    let client = common::client_with_key(&common::admin_key(&dirs.config()).await);
    let mut server = spawn_server(&dirs);
    for b in 0..10 {
        let body: String = (0..10)
            .map(|i| format!("{{\"time\":{},\"batch\":{b}}}\n", b * 100 + i))
            .collect();
        assert_eq!(write_torn(&client, &server.url, body).await, 200);
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let segments = dirs.wal_segments("acme", "torn");
    let newest = segments.last().expect("a WAL segment");
    let len = std::fs::metadata(newest).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(newest)
        .unwrap();
    f.set_len(len - 7).unwrap();
    drop(f);

    let mut server = spawn_server(&dirs);
    let n = count(&client, &server.url, "SELECT count(*) AS n FROM torn").await;
    assert_eq!(n, 90, "the last record is cut, the nine before it stay");
    let n = count(
        &client,
        &server.url,
        "SELECT count(*) AS n FROM torn WHERE batch = 9",
    )
    .await;
    assert_eq!(n, 0);
    // The server keeps working after the cut, and a restart replays cleanly.
    let body = "{\"time\":5000,\"batch\":10}\n".to_string();
    assert_eq!(write_torn(&client, &server.url, body).await, 200);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let mut server = spawn_server(&dirs);
    assert_eq!(
        count(&client, &server.url, "SELECT count(*) AS n FROM torn").await,
        91
    );
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_buffers_to_parquet_before_exit() {
    let dirs = TestDirs::new(&["acme"]);
    let client = common::client_with_key(&common::admin_key(&dirs.config()).await);
    let mut server = spawn_server(&dirs);
    let body: String = (0..100)
        .map(|i| format!("{{\"time\":{i},\"v\":{i}}}\n"))
        .collect();
    assert_eq!(write_torn(&client, &server.url, body).await, 200);
    assert!(dirs.parquet_files("acme", "torn").is_empty());
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = server.child.wait().expect("wait");
    assert!(exit.success(), "{exit:?}");
    assert_eq!(dirs.parquet_files("acme", "torn").len(), 1);
    assert!(dirs.wal_segments("acme", "torn").is_empty());
    let mut server = spawn_server(&dirs);
    assert_eq!(
        count(&client, &server.url, "SELECT count(*) AS n FROM torn").await,
        100
    );
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}
