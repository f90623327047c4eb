//! opsboard on an S3-compatible object store (moto, started by the tests), as real processes
//! configured by the standard AWS variables: the catalog's create-only commits hold between
//! nodes sharing a bucket, and a node's rows live in the bucket, not in its data dir.

#[path = "../common/mod.rs"]
mod common;
mod wal;

use std::process::Child;
use std::sync::Arc;

use common::{TestDirs, s3};
use opsboard::config::StorageConfig;
use opsboard::storage::{OpenMode, StorageError, Store};
use serde_json::{Value, json};

/// A node: its own data dir (and tenant folder), the shared bucket and central database.
struct Node {
    dirs: Arc<TestDirs>,
    child: Child,
    url: String,
}

/// A node a failing test leaves behind is killed with it.
impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Small flushes, so concurrent writes become many concurrent catalog commits.
const NODE_CONFIG: &str = "storage:\n  flush_max_rows: 40\n  flush_check_interval: 50ms\n";

fn start_node(dirs: Arc<TestDirs>, bucket_url: &str, database: &str) -> Node {
    start_node_with(dirs, bucket_url, database, NODE_CONFIG, &s3::env())
}

/// A node with its own configuration file and environment.
fn start_node_with(
    dirs: Arc<TestDirs>,
    bucket_url: &str,
    database: &str,
    node_config: &str,
    env: &[(&str, String)],
) -> Node {
    let config = dirs.root.path().join("node.yaml");
    std::fs::write(&config, node_config).unwrap();
    let config = config.display().to_string();
    let args = [
        "--config",
        &config,
        "--object-store",
        bucket_url,
        "--database-url",
        database,
    ];
    let (child, url) = common::spawn_opsboard_with(&dirs, &args, env);
    Node { dirs, child, url }
}

/// SIGTERM, then waits: a graceful stop persists every buffer.
fn stop(node: &mut Node) {
    std::process::Command::new("kill")
        .args(["-TERM", &node.child.id().to_string()])
        .status()
        .unwrap();
    assert!(node.child.wait().unwrap().success());
}

async fn write(client: &reqwest::Client, node: &Node, body: String) {
    let resp = client
        .post(format!("{}/api/v1/tenants/acme/write/events", node.url))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

async fn query(client: &reqwest::Client, node: &Node, sql: &str) -> Value {
    let resp = client
        .post(format!("{}/api/v1/tenants/acme/query", node.url))
        .json(&json!({ "sql": sql }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// A central database outside every node's data dir, and a key in it.
async fn central() -> (tempfile::TempDir, String, reqwest::Client) {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/central.db", dir.path().display());
    let mut config = TestDirs::new(&[]).config();
    config.database_url = Some(database.clone());
    let client = common::client_with_key(&common::admin_key(&config).await);
    (dir, database, client)
}

fn rows(node: usize, batch: usize) -> String {
    (0..20)
        .map(|i| {
            let time = 1_000_000 + (node * 1_000 + batch) * 100 + i;
            format!("{{\"time\":{time},\"node\":{node},\"batch\":{batch}}}\n")
        })
        .collect()
}

/// Two nodes on one bucket prefix flush the same tenant's table every 40 rows while both are
/// written to: their commits race for catalog versions, and each is a create-only put, so the
/// loser reloads and takes the next version. A node that overwrote the other's version would
/// lose its files; a third node on an empty data dir finds every row of both, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_sharing_a_bucket_never_overwrite_each_others_commits() {
    if s3::skip_unless_available("nodes_sharing_a_bucket") {
        return;
    }
    let bucket = s3::fresh_bucket().await;
    let url = s3::url(&bucket, "shared");
    let (_central, database, client) = central().await;
    let mut one = start_node(Arc::new(TestDirs::new(&["acme"])), &url, &database);
    let mut two = start_node(Arc::new(TestDirs::new(&["acme"])), &url, &database);
    for batch in 0..30 {
        tokio::join!(
            write(&client, &one, rows(1, batch)),
            write(&client, &two, rows(2, batch))
        );
    }
    stop(&mut one);
    stop(&mut two);
    let mut third = start_node(Arc::new(TestDirs::new(&["acme"])), &url, &database);
    let answer = query(
        &client,
        &third,
        "SELECT count(*) AS n, count(DISTINCT time) AS t FROM events",
    )
    .await;
    stop(&mut third);
    assert_eq!(
        (&answer[0]["n"], &answer[0]["t"]),
        (&1200.into(), &1200.into()),
        "{answer}"
    );
    let keys = s3::keys(&bucket, "shared/acme/").await;
    let files = keys.iter().filter(|k| k.ends_with(".parquet")).count();
    assert!(files >= 10, "{files} Parquet files: {keys:?}");
}

/// A node on S3 stopped, its data dir deleted, started again on an empty one: every row is
/// still there, read from the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_keeps_its_rows_in_the_bucket_not_its_data_dir() {
    if s3::skip_unless_available("a_node_keeps_its_rows") {
        return;
    }
    let bucket = s3::fresh_bucket().await;
    let url = s3::url(&bucket, "node");
    let (_central, database, client) = central().await;
    let mut node = start_node(Arc::new(TestDirs::new(&["acme"])), &url, &database);
    for batch in 0..5 {
        write(&client, &node, rows(0, batch)).await;
    }
    stop(&mut node);
    std::fs::remove_dir_all(node.dirs.data()).unwrap();
    let mut node = start_node(node.dirs.clone(), &url, &database);
    let answer = query(
        &client,
        &node,
        "SELECT count(*) AS n, count(DISTINCT batch) AS b FROM events",
    )
    .await;
    stop(&mut node);
    assert_eq!(
        (&answer[0]["n"], &answer[0]["b"]),
        (&100.into(), &5.into()),
        "{answer}"
    );
}

/// The alert rules of a tenant held by one node of three (sharing PostgreSQL and a bucket): its
/// alert goes out once, not once per node; the holder SIGKILLed, the other node takes the
/// tenant within the lease (3 s) and carries on from the shared alert state — no second
/// notification for the alert already sent, and never two holders at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_per_tenant_evaluates_its_rules_and_another_takes_over_when_it_dies() {
    if s3::skip_unless_available("one_node_per_tenant")
        || common::pg::skip_unless_available("one_node_per_tenant")
    {
        return;
    }
    let hook = common::alerting::webhook(0).await;
    let bucket = s3::fresh_bucket().await;
    let url = s3::url(&bucket, "alerts");
    let database = common::pg::fresh_database().await;
    let mut admin = TestDirs::new(&[]).config();
    admin.database_url = Some(database.clone());
    let client = common::client_with_key(&common::admin_key(&admin).await);
    let rules = format!(
        "rules:\n  - {{name: always, sql: \"SELECT 1.0 AS value\", condition: \"> 0\", severity: high}}\nchannels:\n  - {{name: hook, type: webhook, url: \"{}\", format: alertmanager}}\nroutes:\n  - {{channels: [hook]}}\n",
        hook.url
    );
    let config =
        "alerts:\n  tick: 100ms\n  allowed_targets: [\"127.0.0.1\"]\ncluster:\n  lease: 3s\n";
    let node = |id: &str| {
        // The fixture tenant (dashboards and panels): rules run for tenants with a configuration.
        let dirs = TestDirs::new(&[]);
        common::copy_dir(
            std::path::Path::new(common::fixture::FIXTURE),
            &dirs.tenants().join("acme"),
        );
        let alerts = dirs.tenants().join("acme/alerts");
        std::fs::create_dir_all(&alerts).unwrap();
        std::fs::write(alerts.join("rules.yaml"), &rules).unwrap();
        let path = dirs.root.path().join("node.yaml");
        std::fs::write(&path, config).unwrap();
        let path = path.display().to_string();
        let args = [
            "--config",
            &path,
            "--object-store",
            &url,
            "--database-url",
            &database,
            "--node-id",
            id,
        ];
        let (child, url) = common::spawn_opsboard_with(&dirs, &args, &s3::env());
        Node {
            dirs: Arc::new(dirs),
            child,
            url,
        }
    };
    let mut nodes = [node("one"), node("two"), node("three")];
    let sent = || {
        hook.bodies
            .lock()
            .iter()
            .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
            .filter(|a| a["status"] == "firing")
            .count()
    };
    for _ in 0..100 {
        if sent() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Many ticks of both nodes later: still one.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(sent(), 1, "{:#?}", hook.bodies.lock());
    let before = holders(&client, &nodes).await;
    assert_eq!(before.len(), 1, "{before:?}");
    let dead = ["one", "two", "three"]
        .iter()
        .position(|id| before[0] == *id)
        .unwrap();
    nodes[dead].child.kill().unwrap();
    nodes[dead].child.wait().unwrap();
    let killed = std::time::Instant::now();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != dead).collect();
    let [a, b] = survivors[..] else {
        unreachable!()
    };
    let survivors = [&nodes[a], &nodes[b]];
    loop {
        let mut taken = vec![];
        for node in survivors {
            taken.extend(holders(&client, std::slice::from_ref(node)).await);
        }
        assert!(taken.len() <= 1, "two holders: {taken:?}");
        if !taken.is_empty() {
            break;
        }
        assert!(killed.elapsed().as_secs() < 10, "no takeover in 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let took = killed.elapsed();
    assert!(
        took.as_secs_f64() >= 1.0,
        "taken over after {took:?}, before the lease ran out"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert_eq!(
        sent(),
        1,
        "the new holder re-sent: {:#?}",
        hook.bodies.lock()
    );
    stop(&mut nodes[a]);
    stop(&mut nodes[b]);
}

/// The ids of the nodes whose `/metrics` say they hold acme's lease; each node's `/healthz`
/// says how many leases it holds (never which: it is public).
async fn holders(client: &reqwest::Client, nodes: &[Node]) -> Vec<String> {
    let mut holders = vec![];
    for node in nodes {
        let health: Value = reqwest::get(format!("{}/healthz", node.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = health["node"]["id"].as_str().unwrap().to_string();
        let metrics = client
            .get(format!("{}/metrics", node.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let holds = metrics.contains(&format!(
            "opsboard_tenant_lease_epoch{{node=\"{id}\",tenant=\"acme\"}}"
        ));
        assert_eq!(health["node"]["leases"], usize::from(holds), "{health}");
        if holds {
            holders.push(id);
        }
    }
    holders
}

/// Two nodes' WALs (local ones, beside a shared folder) both number their segments from 1. One node's flush records how far *its*
/// WAL is persisted; the other node, restarted before it flushed, must still replay its own
/// segment 1 (the single mark per table used to skip — and delete — it).
#[tokio::test]
async fn one_nodes_flush_never_marks_anothers_wal_as_persisted() {
    let shared = tempfile::tempdir().unwrap();
    let url = format!("file://{}", shared.path().display());
    let config = || StorageConfig {
        object_store: url.clone(),
        wal: opsboard::config::WalPlacement::Local,
        ..Default::default()
    };
    let (one, two) = (TestDirs::new(&["acme"]), TestDirs::new(&["acme"]));
    let batch = |hosts: usize| {
        opsboard::generate::CpuGenerator::new(hosts, 3).batch(&[1_704_067_200_000_000_000])
    };
    let a = Store::open(config(), &one.data(), &one.tenants(), OpenMode::ReadWrite)
        .await
        .unwrap();
    let b = Store::open(config(), &two.data(), &two.tenants(), OpenMode::ReadWrite)
        .await
        .unwrap();
    b.tenant("acme")
        .await
        .unwrap()
        .write("cpu", batch(5))
        .await
        .unwrap();
    let a_acme = a.tenant("acme").await.unwrap();
    a_acme.write("cpu", batch(3)).await.unwrap();
    a_acme.persist_all().await.unwrap();
    // Node two stops without flushing (as after a crash) and starts again.
    drop(b);
    let b = Store::open(config(), &two.data(), &two.tenants(), OpenMode::ReadWrite)
        .await
        .unwrap();
    let engine = opsboard::query::QueryEngine::new(Default::default());
    let batches = engine
        .collect(
            &b.tenant("acme").await.unwrap(),
            "SELECT count(*) AS n FROM cpu",
        )
        .await
        .unwrap();
    let n =
        arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(batches[0].column(0))
            .value(0);
    assert_eq!(n, 3 + 5, "node two's unflushed rows and node one's file");
    drop(a_acme);
}

/// A bad `s3://` URL is refused at open, naming the URL and what is wrong; a secret in the URL
/// is refused (it belongs in the environment).
#[tokio::test]
async fn bad_s3_urls_are_refused_with_the_reason() {
    let dirs = TestDirs::new(&["acme"]);
    for (url, expected) in [
        ("s3://", "no bucket"),
        (
            "s3://bucket/p?no_such_option=1",
            "unknown option `no_such_option`",
        ),
        ("s3://bucket/p?secret_access_key=x", "is a secret"),
        ("s3://bucket/p?token=x", "is a secret"),
    ] {
        let config = StorageConfig {
            object_store: url.to_string(),
            ..Default::default()
        };
        let error = Store::open(config, &dirs.data(), &dirs.tenants(), OpenMode::ReadOnly)
            .await
            .err()
            .unwrap_or_else(|| panic!("{url} opened"));
        assert!(
            matches!(error, StorageError::ObjectStoreSetup { .. }),
            "{url}: {error}"
        );
        let text = error.to_string();
        assert!(
            text.contains(expected) && text.contains(url),
            "{url}: {text}"
        );
    }
}
