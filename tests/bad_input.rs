//! Every kind of bad request gets the right 4xx with a message naming the place, and the
//! stored data is exactly as before.

mod common;

use common::{TestDirs, TestServer};
use serde_json::Value;

const GOOD: &str =
    "{\"time\":1000,\"host\":\"a\",\"usage\":1.5}\n{\"time\":2000,\"host\":\"b\",\"usage\":2.5}\n";

struct Case {
    name: &'static str,
    table: &'static str,
    content_type: &'static str,
    query: &'static str,
    body: String,
    status: u16,
    /// Substrings the error (and its details) must contain.
    mentions: &'static [&'static str],
    line: Option<u64>,
}

fn case(
    name: &'static str,
    content_type: &'static str,
    body: &str,
    status: u16,
    mentions: &'static [&'static str],
    line: Option<u64>,
) -> Case {
    Case {
        name,
        table: "cpu",
        content_type,
        query: "",
        body: body.to_string(),
        status,
        mentions,
        line,
    }
}

async fn snapshot(server: &TestServer) -> Value {
    let (s, body) = server
        .query("acme", "SELECT * FROM cpu ORDER BY time")
        .await;
    assert_eq!(s, 200);
    body
}

#[tokio::test]
async fn bad_writes_are_rejected_and_change_nothing() {
    let dirs = TestDirs::new(&["acme"]);
    let mut config = dirs.config();
    config.ingest.max_body_bytes = 4096;
    let server = TestServer::start(config).await;
    assert_eq!(
        server
            .write("acme", "cpu", "application/x-ndjson", GOOD)
            .await
            .0,
        200
    );
    let before = snapshot(&server).await;

    let nd = "application/x-ndjson";
    let cases = vec![
        case(
            "malformed NDJSON line",
            nd,
            "{\"time\":3000,\"host\":\"c\",\"usage\":1}\n{\"time\":4000,\"host\":\n",
            400,
            &["invalid JSON"],
            Some(2),
        ),
        case(
            "wrong type in one line",
            nd,
            "{\"time\":3000,\"host\":\"c\",\"usage\":1}\n{\"time\":4000,\"host\":\"d\",\"usage\":\"high\"}\n",
            400,
            &["usage", "expected a float"],
            Some(2),
        ),
        case(
            "type conflict with the stored table",
            nd,
            "{\"time\":3000,\"usage\":true}\n",
            400,
            &["usage", "expected a float", "boolean"],
            Some(1),
        ),
        case(
            "missing time",
            nd,
            "{\"host\":\"c\",\"usage\":1}\n",
            400,
            &["missing `time`"],
            Some(1),
        ),
        case(
            "unparseable time",
            nd,
            "{\"time\":\"last tuesday\",\"usage\":1}\n",
            400,
            &["last tuesday", "RFC 3339"],
            Some(1),
        ),
        case(
            "ragged CSV",
            "text/csv",
            "time,host,usage\n3000,c,1\n4000,d\n",
            400,
            &["2 fields", "header has 3"],
            Some(3),
        ),
        case(
            "nested JSON value",
            nd,
            "{\"time\":3000,\"usage\":{\"a\":1}}\n",
            400,
            &["nested"],
            Some(1),
        ),
        case("empty body", nd, "", 400, &["no rows"], None),
        case(
            "unsupported content type",
            "application/xml",
            "<x/>",
            415,
            &["application/xml"],
            None,
        ),
        case(
            "oversized body",
            nd,
            &"{\"time\":3000,\"usage\":1}\n".repeat(400),
            413,
            &["4096"],
            None,
        ),
        Case {
            table: "Bad-Name",
            ..case("invalid table name", nd, GOOD, 400, &["table name"], None)
        },
        Case {
            query: "?precision=h",
            ..case("invalid precision", nd, GOOD, 400, &["precision"], None)
        },
    ];
    for c in cases {
        let (status, body) = server
            .write_with("acme", c.table, c.content_type, c.query, c.body.clone())
            .await;
        assert_eq!(status, c.status, "{}: {body}", c.name);
        let text = body.to_string();
        for m in c.mentions {
            assert!(text.contains(m), "{}: {m:?} not in {text}", c.name);
        }
        assert!(body["error"].is_string(), "{}: {body}", c.name);
        if let Some(line) = c.line {
            assert_eq!(
                body["details"][0]["line"].as_u64(),
                Some(line),
                "{}: {body}",
                c.name
            );
        }
        assert_eq!(
            snapshot(&server).await,
            before,
            "{} changed stored data",
            c.name
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn bad_queries_and_unknown_names_are_4xx() {
    let dirs = TestDirs::new(&["acme"]);
    let server = TestServer::start(dirs.config()).await;
    server
        .write("acme", "cpu", "application/x-ndjson", GOOD)
        .await;
    let before = snapshot(&server).await;
    let cases: &[(&str, u16, &str)] = &[
        ("CREATE TABLE t (a INT)", 400, "only read queries"),
        (
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
            400,
            "only read queries",
        ),
        (
            "INSERT INTO cpu (time) VALUES (now())",
            400,
            "only read queries",
        ),
        ("DELETE FROM cpu", 400, "only read queries"),
        ("DROP TABLE cpu", 400, "only read queries"),
        ("COPY cpu TO '/tmp/out.csv'", 400, "only read queries"),
        (
            "SET datafusion.execution.batch_size = 1",
            400,
            "only read queries",
        ),
        ("SELECT 1; DELETE FROM cpu", 400, "2 statements"),
        ("SELECT * FROM nope", 400, "nope"),
        ("SELECT nope FROM cpu", 400, "nope"),
        ("SELEC 1", 400, "syntax"),
    ];
    for (sql, status, mention) in cases {
        let (s, body) = server.query("acme", sql).await;
        assert_eq!(s, *status, "{sql}: {body}");
        assert!(
            body["error"].as_str().unwrap_or("").contains(mention),
            "{sql}: {body}"
        );
    }
    assert_eq!(snapshot(&server).await, before);

    let (s, body) = server
        .write("ghost", "cpu", "application/x-ndjson", GOOD)
        .await;
    assert_eq!(s, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("ghost"));
    let (s, _) = server.query("ghost", "SELECT 1").await;
    assert_eq!(s, 404);
    let (s, body) = server.get("/api/v1/nowhere").await;
    assert_eq!(s, 404);
    assert!(body["error"].is_string());
    // Malformed query request body.
    let resp = server
        .client
        .post(format!("{}/api/v1/tenants/acme/query", server.url))
        .header("content-type", "application/json")
        .body("{\"sq\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    server.stop().await;
}

#[tokio::test]
async fn query_limits_give_clear_errors() {
    let dirs = TestDirs::new(&["acme"]);
    let mut config = dirs.config();
    config.query.memory_limit_bytes = 64 * 1024;
    config.query.spill_bytes = 0;
    let server = TestServer::start(config).await;
    // A sort over many distinct strings needs far more than 64 KiB.
    let body: String = (0..20_000)
        .map(|i| format!("{{\"time\":{i},\"s\":\"{i:0>40}\",\"v\":{i}}}\n"))
        .collect();
    assert_eq!(
        server
            .write("acme", "big", "application/x-ndjson", body)
            .await
            .0,
        200
    );
    let (s, body) = server
        .query("acme", "SELECT s, count(*) FROM big GROUP BY s ORDER BY s")
        .await;
    assert_eq!(s, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("memory limit"),
        "{body}"
    );

    // A sort past the limit, with spilling off: refused too (spilling: query::budget's tests).
    let (s, body) = server
        .query("acme", "SELECT v FROM big ORDER BY s DESC")
        .await;
    assert_eq!(s, 400, "{body}");
    server.stop().await;

    let mut config = dirs.config();
    config.query.timeout = "1ms".parse().unwrap();
    let server = TestServer::start(config).await;
    let (s, body) = server
        .query("acme", "SELECT count(*) FROM big a CROSS JOIN big b")
        .await;
    assert_eq!(s, 408, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("time limit"),
        "{body}"
    );
    server.stop().await;
}

/// Hostile but authorised SQL: functions that would allocate outside the memory pool are
/// refused naming the limit; a tenant's queries beyond its concurrency wait, then get 429 with
/// Retry-After; and a query whose client stopped reading ends at its deadline, giving its
/// place back.
#[tokio::test]
async fn hostile_queries_are_capped_queued_and_ended() {
    let dirs = TestDirs::new(&["acme"]);
    let mut config = dirs.config();
    config.query.max_concurrent_per_tenant = 1;
    config.query.queue_timeout = "300ms".parse().unwrap();
    config.query.timeout = "2s".parse().unwrap();
    let server = TestServer::start(config).await;
    for (sql, mentions) in [
        ("SELECT repeat('x', 100000000)", "query.max_value_bytes"),
        (
            "SELECT count(*) FROM range(100000000000)",
            "query.max_generated_rows",
        ),
        (
            "SELECT cardinality(range(1000000000))",
            "query.max_value_bytes",
        ),
    ] {
        let (s, body) = server.query("acme", sql).await;
        assert_eq!(s, 400, "{sql}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(mentions),
            "{sql}: {body}"
        );
    }

    // A big answer nobody reads: the query holds acme's one place...
    let stalled = server
        .client
        .post(format!("{}/api/v1/tenants/acme/query?format=csv", server.url))
        .json(&serde_json::json!({"sql": "SELECT value, repeat('x', 1000) AS pad FROM range(5000000)"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stalled.status(), 200);
    let (s, body) = server.query("acme", "SELECT 1 AS one").await;
    assert_eq!(s, 429, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("too many queries"),
        "{body}"
    );
    let resp = server
        .client
        .post(format!("{}/api/v1/tenants/acme/query", server.url))
        .json(&serde_json::json!({"sql": "SELECT 1 AS one"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    // ...until its deadline, though the client still holds the connection open.
    let mut answered = None;
    for _ in 0..60 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let (s, body) = server.query("acme", "SELECT 1 AS one").await;
        if s == 200 {
            answered = Some(body);
            break;
        }
    }
    assert_eq!(answered.expect("the stalled query ended")[0]["one"], 1);
    drop(stalled);
    server.stop().await;
}

/// Writes the server would have to undo or that reshape what it owns: rows past retention
/// (422 naming the lines, or dropped on request), the alert history (403), shapes past the
/// limits (400 naming the limit). Each leaves the stored data as it was.
#[tokio::test]
async fn writes_past_retention_limits_or_into_system_tables_are_refused() {
    let dirs = TestDirs::new(&["acme"]);
    std::fs::write(
        dirs.tenants().join("acme/tenant.yaml"),
        "tables:\n  cpu:\n    retention: 7d\n",
    )
    .unwrap();
    let mut config = dirs.config();
    config.ingest.max_columns_per_write = 3;
    let server = TestServer::start(config).await;
    let nd = "application/x-ndjson";
    let now = chrono::Utc::now().timestamp_millis();
    let old = now - 8 * 86_400_000;
    let body = format!("{{\"time\":{now},\"v\":1}}\n{{\"time\":{old},\"v\":2}}\n");

    let (status, answer) = server.write("acme", "cpu", nd, body.clone()).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["details"][0]["line"], 2, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("retention of 7days"),
        "{answer}"
    );
    assert_eq!(server.count("acme", "cpu").await, 0, "nothing written");

    let (status, answer) = server
        .write_with("acme", "cpu", nd, "?on_expired=drop", body)
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (
            answer["rows_written"].as_u64(),
            answer["rows_dropped"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let (status, answer) = server
        .write_with("acme", "cpu", nd, "?on_expired=maybe", "{\"time\":1}\n")
        .await;
    assert_eq!(status, 400, "{answer}");

    let history = format!("{{\"time\":{now},\"rule\":\"fake\",\"state\":\"firing\"}}\n");
    let (status, answer) = server.write("acme", "alerts", nd, history).await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("alerts"),
        "{answer}"
    );
    let (status, _) = server.query("acme", "SELECT * FROM alerts").await;
    assert_ne!(status, 200, "no alerts table was made by the write");

    let wide = format!("{{\"time\":{now},\"a\":1,\"b\":2,\"c\":3}}\n");
    let (status, answer) = server.write("acme", "wide", nd, wide).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("columns per write limit of 3"),
        "{answer}"
    );
    let (status, _) = server.query("acme", "SELECT * FROM wide").await;
    assert_ne!(status, 200, "the wide table does not exist");
    server.stop().await;
}

/// A client that sends half a request head is disconnected after `http.header_read_timeout`,
/// and connections past `http.max_connections` are closed as they arrive; the server keeps
/// answering others.
#[tokio::test]
async fn slow_headers_and_too_many_connections_are_cut_off() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dirs = TestDirs::new(&["acme"]);
    let mut config = dirs.config();
    config.http.header_read_timeout = "400ms".parse().unwrap();
    config.http.max_connections = 1;
    let server = TestServer::start(config).await;
    let addr = server.url.trim_start_matches("http://").to_string();
    // The start-up probe's keep-alive connection is idle: the same deadline closes it (waited
    // for generously: CI machines are busy).
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The one connection allowed is taken: another is closed at once, unanswered.
    let mut extra = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = vec![0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(3), extra.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "a connection past the cap is closed: {read:?}"
    );

    let read = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf)).await;
    let waited = started.elapsed();
    assert!(read.is_ok(), "the half-sent request is not left open");
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(8),
        "served, then cut off at the header deadline: {waited:?}"
    );
    drop(slow);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200, "the slot is free again");
    server.stop().await;
}

/// Bodies are bounded per route: writes may be large, queries and forms may not.
#[tokio::test]
async fn request_bodies_are_bounded_per_route() {
    let dirs = TestDirs::new(&["acme"]);
    let mut config = dirs.config();
    config.http.max_request_bytes = 4096;
    let server = TestServer::start(config).await;
    let big_sql = format!("{{\"sql\": \"SELECT 1 -- {}\"}}", "x".repeat(8192));
    let resp = server
        .client
        .post(format!("{}/api/v1/tenants/acme/query", server.url))
        .header("content-type", "application/json")
        .body(big_sql)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let rows = "{\"time\":1000,\"v\":1}\n".repeat(1000);
    let (status, body) = server
        .write("acme", "big_enough", "application/x-ndjson", rows)
        .await;
    assert_eq!(status, 200, "a write larger than that is fine: {body}");
    server.stop().await;
}
