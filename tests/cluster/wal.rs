//! The WAL in the bucket (`storage.wal` is `auto`, so `s3://` puts it there): a write is
//! acknowledged once its rows are stored in the bucket, every node sees every node's rows, a
//! node killed mid-write loses no acknowledged row (another node adopts its stream), a paused
//! node that lost its stream cannot write or flush again, and a bucket that stops answering
//! gets writes a 503 with Retry-After, never a false acknowledgement.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Value;

use super::common::{self, TestDirs, s3};
use super::{Node, start_node_with, stop};

/// Frequent flushes (so flushes race adoption), a short lease, a quick follow.
const WAL_CONFIG: &str = "storage:\n  flush_max_rows: 300\n  flush_check_interval: 50ms\n  \
     wal_follow_interval: 200ms\n  wal_put_timeout: 2s\ncluster:\n  lease: 3s\n";

/// 20 rows, unique to (writer, batch).
fn rows(writer: usize, batch: usize) -> String {
    (0..20)
        .map(|i| {
            let time = 1_000_000_000 + writer * 100_000_000 + batch * 100 + i;
            format!("{{\"time\":{time},\"writer\":{writer},\"batch\":{batch}}}\n")
        })
        .collect()
}

/// The answer to one write: its status, and Retry-After when there is one.
async fn try_write(client: &reqwest::Client, url: &str, body: String) -> Option<(u16, bool)> {
    let resp = client
        .post(format!("{url}/api/v1/tenants/acme/write/events"))
        .header("content-type", "application/x-ndjson")
        .timeout(Duration::from_secs(15))
        .body(body)
        .send()
        .await
        .ok()?;
    let retry_after = resp.headers().contains_key("retry-after");
    Some((resp.status().as_u16(), retry_after))
}

/// Rows per (writer, batch) as `node` answers (none while it knows no `events` table).
async fn batches_on(client: &reqwest::Client, node: &Node) -> BTreeMap<(u64, u64), u64> {
    let resp = client
        .post(format!("{}/api/v1/tenants/acme/query", node.url))
        .json(&serde_json::json!({
            "sql": "SELECT writer, batch, count(*) AS n FROM events GROUP BY writer, batch"
        }))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap();
    if status == 400 && answer.to_string().contains("events") {
        return BTreeMap::new();
    }
    assert_eq!(status, 200, "{answer}");
    answer
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            // NDJSON numbers are stored as floats.
            let n = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{r}")) as u64;
            ((n("writer"), n("batch")), n("n"))
        })
        .collect()
}

/// Every acknowledged batch is there with its 20 rows, and no batch has more (none twice).
fn check_exactly_once(seen: &BTreeMap<(u64, u64), u64>, acked: &[(usize, usize)], on: &str) {
    for (key, n) in seen {
        assert_eq!(*n, 20, "{on}: batch {key:?} has {n} rows");
    }
    let missing: Vec<_> = acked
        .iter()
        .filter(|(w, b)| !seen.contains_key(&(*w as u64, *b as u64)))
        .collect();
    assert!(
        missing.is_empty(),
        "{on}: acknowledged, not there: {missing:?}"
    );
}

async fn health(node_url: &str) -> Value {
    reqwest::get(format!("{node_url}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until `bucket` holds no WAL object of `stream` (it was adopted), at most `limit`.
async fn until_adopted(bucket: &str, prefix: &str, stream: &str, limit: Duration) {
    let start = Instant::now();
    let wal = format!("{prefix}/acme/_wal/{stream}/");
    while !s3::keys(bucket, &wal).await.is_empty() {
        assert!(
            start.elapsed() < limit,
            "stream {stream} not adopted in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn cluster_database() -> Option<(String, reqwest::Client)> {
    if s3::skip_unless_available("wal_in_the_bucket")
        || common::pg::skip_unless_available("wal_in_the_bucket")
    {
        return None;
    }
    let database = common::pg::fresh_database().await;
    let mut admin = TestDirs::new(&[]).config();
    admin.database_url = Some(database.clone());
    let client = common::client_with_key(&common::admin_key(&admin).await);
    Some((database, client))
}

/// Three nodes, writers on each. A row written through one is read through the others within
/// 2 s. One node is SIGKILLed during writes and restarted on an emptied data dir: every
/// acknowledged row is still there on every node, none twice, and the dead process's stream
/// is adopted (written to Parquet by another node) within 30 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_rows_survive_a_killed_node_and_show_on_every_node() {
    let Some((database, client)) = cluster_database().await else {
        return;
    };
    let bucket = s3::fresh_bucket().await;
    let url = s3::url(&bucket, "three");
    let start =
        |dirs: Arc<TestDirs>| start_node_with(dirs, &url, &database, WAL_CONFIG, &s3::env());
    let mut nodes: Vec<Node> = (0..3)
        .map(|_| start(Arc::new(TestDirs::new(&["acme"]))))
        .collect();

    assert_eq!(
        try_write(&client, &nodes[0].url, rows(9, 0)).await,
        Some((200, false))
    );
    let written = Instant::now();
    for reader in &nodes[1..] {
        while batches_on(&client, reader).await.get(&(9, 0)) != Some(&20) {
            assert!(
                written.elapsed() < Duration::from_secs(2),
                "not visible on {} within 2 s",
                reader.url
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let urls: Arc<Vec<Mutex<String>>> =
        Arc::new(nodes.iter().map(|n| Mutex::new(n.url.clone())).collect());
    let acked = Arc::new(Mutex::new(vec![(9, 0)]));
    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (client, urls, acked, done) =
                (client.clone(), urls.clone(), acked.clone(), done.clone());
            tokio::spawn(async move {
                let mut batch = 0;
                while !done.load(Ordering::SeqCst) {
                    let url = urls[w].lock().clone();
                    match try_write(&client, &url, rows(w, batch)).await {
                        Some((200, _)) => acked.lock().push((w, batch)),
                        _ => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                    batch += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stream = health(&nodes[0].url).await["node"]["wal"]["stream"]
        .as_str()
        .unwrap()
        .to_string();
    nodes[0].child.kill().unwrap();
    nodes[0].child.wait().unwrap();
    let killed = Instant::now();
    std::fs::remove_dir_all(nodes[0].dirs.data()).unwrap();
    nodes[0] = start(nodes[0].dirs.clone());
    *urls[0].lock() = nodes[0].url.clone();
    // The handover happens under the writers.
    until_adopted(&bucket, "three", &stream, Duration::from_secs(30)).await;
    let adopted = killed.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    done.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await.unwrap();
    }
    let acked = acked.lock().clone();
    assert!(acked.len() > 30, "only {} writes acknowledged", acked.len());
    // The last acknowledgements reach every node once it has read the others' newest objects
    // (under this load — every write its own object, one Python S3 server for all — that can
    // take longer than on a quiet cluster).
    let stopped = Instant::now();
    for node in &nodes {
        loop {
            let seen = batches_on(&client, node).await;
            let all = acked
                .iter()
                .all(|(w, b)| seen.contains_key(&(*w as u64, *b as u64)));
            if all || stopped.elapsed() > Duration::from_secs(10) {
                check_exactly_once(&seen, &acked, &node.url);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let caught_up = stopped.elapsed();
    eprintln!(
        "{} writes acknowledged; the killed node's stream adopted {adopted:?} after the kill; \
         every node had every row {caught_up:?} after the writers stopped",
        acked.len(),
    );
    for node in &mut nodes {
        stop(node);
    }
}

/// A node paused (SIGSTOP) past its lease: another node adopts its stream. Resumed, the old
/// node acknowledges nothing more, does not flush the rows it still buffers (they would be
/// there twice) and stops itself; the rows it acknowledged are there once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_that_lost_its_stream_is_fenced() {
    let Some((database, client)) = cluster_database().await else {
        return;
    };
    let bucket = s3::fresh_bucket().await;
    let url = s3::url(&bucket, "fenced");
    let start = || {
        let dirs = Arc::new(TestDirs::new(&["acme"]));
        start_node_with(dirs, &url, &database, WAL_CONFIG, &s3::env())
    };
    let (mut paused, mut other) = (start(), start());
    for batch in 0..5 {
        assert_eq!(
            try_write(&client, &paused.url, rows(0, batch)).await,
            Some((200, false))
        );
    }
    let stream = health(&paused.url).await["node"]["wal"]["stream"]
        .as_str()
        .unwrap()
        .to_string();
    let pid = paused.child.id().to_string();
    let signal = |name: &str| {
        std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .unwrap()
    };
    signal("-STOP");
    until_adopted(&bucket, "fenced", &stream, Duration::from_secs(30)).await;
    signal("-CONT");
    // Resumed: whatever it answers, it is not an acknowledgement.
    let answer = try_write(&client, &paused.url, rows(0, 99)).await;
    assert!(
        !matches!(answer, Some((200, _))),
        "a fenced node acknowledged a write: {answer:?}"
    );
    let resumed = Instant::now();
    let status = loop {
        if let Some(status) = paused.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(20),
            "the fenced node kept running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "a fenced node exits with an error");
    let acked: Vec<_> = (0..5).map(|b| (0, b)).collect();
    let seen = batches_on(&client, &other).await;
    check_exactly_once(&seen, &acked, "the adopting node");
    assert_eq!(seen.len(), 5, "{seen:?}");
    stop(&mut other);
}

/// The bucket stops answering (its server paused for 10 s) during writes: every write in that
/// time is answered 503 with Retry-After, none 200; once it answers again, writes are
/// acknowledged again, and exactly the acknowledged rows are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_get_503_while_the_bucket_is_down_and_resume_after() {
    if s3::skip_unless_available("bucket_down") {
        return;
    }
    let (mut server, endpoint) = s3::own_server();
    let bucket = s3::fresh_bucket_on(&endpoint).await;
    let url = s3::url(&bucket, "down");
    let central = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/central.db", central.path().display());
    let mut admin = TestDirs::new(&[]).config();
    admin.database_url = Some(database.clone());
    let client = common::client_with_key(&common::admin_key(&admin).await);
    let dirs = Arc::new(TestDirs::new(&["acme"]));
    let mut node = start_node_with(dirs, &url, &database, WAL_CONFIG, &s3::env_for(&endpoint));
    let mut acked = vec![];
    for batch in 0..3 {
        assert_eq!(
            try_write(&client, &node.url, rows(0, batch)).await,
            Some((200, false))
        );
        acked.push((0, batch));
    }
    let pid = server.id().to_string();
    let signal = |name: &str| {
        std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .unwrap()
    };
    signal("-STOP");
    let stopped = Instant::now();
    let mut batch = 3;
    let mut refused = 0;
    while stopped.elapsed() < Duration::from_secs(10) {
        let answer = try_write(&client, &node.url, rows(0, batch)).await;
        assert_eq!(
            answer,
            Some((503, true)),
            "write {batch} while the bucket is down"
        );
        refused += 1;
        batch += 1;
    }
    signal("-CONT");
    let resumed = Instant::now();
    loop {
        batch += 1;
        match try_write(&client, &node.url, rows(0, batch)).await {
            Some((200, _)) => {
                acked.push((0, batch));
                break;
            }
            answer => assert!(
                resumed.elapsed() < Duration::from_secs(30),
                "writes did not resume: {answer:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "{refused} writes refused while the bucket was down; acknowledged again {:?} after",
        resumed.elapsed()
    );
    let seen = batches_on(&client, &node).await;
    check_exactly_once(&seen, &acked, "the node");
    assert_eq!(
        seen.len(),
        acked.len(),
        "unacknowledged rows stored: {seen:?}"
    );
    stop(&mut node);
    let _ = server.kill();
    let _ = server.wait();
}

/// Two stores on one shared folder with the WAL in it, step by step: rows acknowledged by one
/// are read by the other's follow pass; a flush swaps them for a file without showing them
/// twice or not at all; a store that stops without flushing is adopted by the other, whose
/// answer stays the same; a second adoption of the same stream changes nothing.
#[tokio::test]
async fn following_and_adopting_a_stream_keep_every_row_once() {
    use opsboard::config::{StorageConfig, WalPlacement};
    use opsboard::storage::{OpenMode, Store};
    let shared = tempfile::tempdir().unwrap();
    let config = || StorageConfig {
        object_store: format!("file://{}", shared.path().display()),
        wal: WalPlacement::ObjectStore,
        ..Default::default()
    };
    let open = |dirs: &TestDirs| {
        let (data, tenants, config) = (dirs.data(), dirs.tenants(), config());
        async move { Store::open(config, &data, &tenants, OpenMode::ReadWrite).await }
    };
    let (one, two) = (TestDirs::new(&["acme"]), TestDirs::new(&["acme"]));
    let (a, b) = (open(&one).await.unwrap(), open(&two).await.unwrap());
    let far = chrono::Utc::now().timestamp_millis() + 3_600_000;
    // Before its lease, a store acknowledges nothing.
    let batch = |t: i64| opsboard::generate::CpuGenerator::new(4, 1).batch(&[t]);
    let a_acme = a.tenant("acme").await.unwrap();
    let refused = a_acme.write("cpu", batch(1_000)).await;
    assert!(
        matches!(refused, Err(opsboard::storage::StorageError::WalLeaseLost)),
        "{refused:?}"
    );
    a.wal_stream().unwrap().1.renewed(1, far);
    for t in 0..3 {
        a_acme.write("cpu", batch(t * 1_000_000_000)).await.unwrap();
    }
    let engine = opsboard::query::QueryEngine::new(Default::default());
    let count = |store: std::sync::Arc<Store>| {
        let engine = &engine;
        async move {
            let tenant = store.tenant("acme").await.unwrap();
            let batches = engine
                .collect(&tenant, "SELECT count(*) AS n FROM cpu")
                .await
                .unwrap();
            arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(batches[0].column(0))
                .value(0)
        }
    };
    b.follow_all().await;
    assert_eq!(
        count(b.clone()).await,
        12,
        "rows another store acknowledged"
    );
    a_acme.persist_all().await.unwrap();
    assert_eq!(count(b.clone()).await, 12, "before b sees the flush");
    b.follow_all().await;
    assert_eq!(
        count(b.clone()).await,
        12,
        "after: from the file, not twice"
    );
    // More rows, then a stops without flushing (as if killed).
    for t in 3..5 {
        a_acme.write("cpu", batch(t * 1_000_000_000)).await.unwrap();
    }
    let stream = a.wal_stream().unwrap().0.to_string();
    drop(a_acme);
    drop(a);
    b.follow_all().await;
    assert_eq!(b.other_streams(), std::slice::from_ref(&stream));
    assert_eq!(count(b.clone()).await, 20);
    assert_eq!(b.adopt(&stream).await.unwrap(), 8, "the unflushed rows");
    assert_eq!(count(b.clone()).await, 20, "adopted: in a file now, once");
    assert_eq!(b.adopt(&stream).await.unwrap(), 0, "nothing left to adopt");
    b.follow_all().await;
    assert!(b.other_streams().is_empty(), "{:?}", b.other_streams());
    // A third store on an empty data dir reads the same.
    let three = TestDirs::new(&["acme"]);
    assert_eq!(count(open(&three).await.unwrap()).await, 20);
}
