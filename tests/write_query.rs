//! Write → query round trips over HTTP, every body and result format, restarts and flushes.

mod common;
#[path = "usage/mod.rs"]
mod usage;

use common::{TestDirs, TestServer};
use opsboard::server::ServeOptions;
use serde_json::json;

const NDJSON: &str = "{\"time\":\"2024-05-01T00:00:00Z\",\"host\":\"a\",\"usage\":1.5}\n{\"time\":\"2024-05-01T00:00:10Z\",\"host\":\"b\",\"usage\":2.5}\n";

#[tokio::test]
async fn each_body_format_round_trips() {
    let dirs = TestDirs::new(&["acme"]);
    let server = TestServer::start(dirs.config()).await;
    let (s, b) = server
        .write("acme", "ndjson_t", "application/x-ndjson", NDJSON)
        .await;
    assert_eq!((s, b), (200, json!({"rows_written": 2})));
    let array = r#"[{"time": 1714521600000, "host": "a", "usage": 1.5}, {"time": 1714521610000, "host": "b", "usage": 2.5}]"#;
    assert_eq!(
        server
            .write("acme", "json_t", "application/json", array)
            .await
            .0,
        200
    );
    let csv = "time,host,usage\n2024-05-01T00:00:00Z,a,1.5\n1714521610,b,2.5\n";
    assert_eq!(
        server
            .write_with("acme", "csv_t", "text/csv", "?precision=s", csv)
            .await
            .0,
        200
    );
    let expected = json!([
        {"time": "2024-05-01T00:00:00Z", "host": "a", "usage": 1.5},
        {"time": "2024-05-01T00:00:10Z", "host": "b", "usage": 2.5},
    ]);
    for table in ["ndjson_t", "json_t", "csv_t"] {
        let rows = server
            .rows(
                "acme",
                &format!("SELECT time, host, usage FROM {table} ORDER BY time"),
            )
            .await;
        assert_eq!(json!(rows), expected, "{table}");
    }
    server.stop().await;
}

#[tokio::test]
async fn each_result_format_streams() {
    let dirs = TestDirs::new(&["acme"]);
    let server = TestServer::start(dirs.config()).await;
    server
        .write("acme", "cpu", "application/x-ndjson", NDJSON)
        .await;
    let sql = "SELECT host, usage FROM cpu ORDER BY host";
    let (s, csv) = server.query_raw("acme", sql, "csv").await;
    assert_eq!(
        (s, String::from_utf8(csv).unwrap()),
        (200, "host,usage\na,1.5\nb,2.5\n".to_string())
    );
    let (_, nd) = server.query_raw("acme", sql, "ndjson").await;
    assert_eq!(
        String::from_utf8(nd).unwrap(),
        "{\"host\":\"a\",\"usage\":1.5}\n{\"host\":\"b\",\"usage\":2.5}\n"
    );
    let (_, pq) = server.query_raw("acme", sql, "parquet").await;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(pq),
    )
    .unwrap()
    .build()
    .unwrap();
    assert_eq!(reader.map(|b| b.unwrap().num_rows()).sum::<usize>(), 2);
    let (_, ipc) = server.query_raw("acme", sql, "arrow").await;
    let reader = arrow::ipc::reader::StreamReader::try_new(&ipc[..], None).unwrap();
    assert_eq!(reader.map(|b| b.unwrap().num_rows()).sum::<usize>(), 2);
    let (s, _) = server.query_raw("acme", sql, "xml").await;
    assert_eq!(s, 400);
    // An empty result is still a well-formed document in every format.
    let none = "SELECT host, usage FROM cpu WHERE usage > 100";
    let (s, body) = server.query_raw("acme", none, "json").await;
    assert_eq!(
        (s, String::from_utf8(body).unwrap()),
        (200, "[]".to_string())
    );
    let (s, body) = server.query_raw("acme", none, "csv").await;
    assert_eq!(
        (s, String::from_utf8(body).unwrap()),
        (200, "host,usage\n".to_string())
    );
    let (_, pq) = server.query_raw("acme", none, "parquet").await;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(pq),
    )
    .unwrap();
    assert_eq!(reader.schema().fields().len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn schema_grows_and_tables_endpoint_reports_it() {
    let dirs = TestDirs::new(&["acme"]);
    let server = TestServer::start(dirs.config()).await;
    server
        .write("acme", "cpu", "application/x-ndjson", NDJSON)
        .await;
    let more = "{\"time\":\"2024-05-02T00:00:00Z\",\"host\":\"c\",\"temp\":40,\"ok\":true}\n";
    assert_eq!(
        server
            .write("acme", "cpu", "application/x-ndjson", more)
            .await
            .0,
        200
    );
    let rows = server
        .rows(
            "acme",
            "SELECT host, usage, temp, ok FROM cpu ORDER BY time",
        )
        .await;
    assert_eq!(
        rows[0],
        json!({"host": "a", "usage": 1.5, "temp": null, "ok": null})
    );
    assert_eq!(
        rows[2],
        json!({"host": "c", "usage": null, "temp": 40.0, "ok": true})
    );
    let (s, tables) = server.get("/api/v1/tenants/acme/tables").await;
    assert_eq!(s, 200);
    let cpu = &tables[0];
    assert_eq!(cpu["name"], "cpu");
    assert_eq!(cpu["rows"], 3);
    assert_eq!(cpu["min_time"], "2024-05-01T00:00:00Z");
    assert_eq!(cpu["max_time"], "2024-05-02T00:00:00Z");
    let kinds: Vec<_> = cpu["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(kinds.contains(&("host".into(), "tag".into())), "{kinds:?}");
    assert!(kinds.contains(&("ok".into(), "field".into())), "{kinds:?}");
    server.stop().await;
}

#[tokio::test]
async fn restart_replays_the_wal_and_flush_moves_rows_to_parquet() {
    let dirs = TestDirs::new(&["acme"]);
    let no_flush = ServeOptions {
        flush_on_shutdown: false,
        ..Default::default()
    };
    let server = TestServer::start_with(dirs.config(), no_flush).await;
    server
        .write("acme", "cpu", "application/x-ndjson", NDJSON)
        .await;
    server.stop().await;
    assert!(dirs.parquet_files("acme", "cpu").is_empty());
    assert!(!dirs.wal_segments("acme", "cpu").is_empty());

    // Restart without a flush: the rows come back from the WAL alone.
    let server = TestServer::start(dirs.config()).await;
    assert_eq!(server.count("acme", "cpu").await, 2);
    server.stop().await; // graceful: flushes

    let files = dirs.parquet_files("acme", "cpu");
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].to_string_lossy().contains("/cpu/2024-05-01/"),
        "{files:?}"
    );
    assert!(
        dirs.wal_segments("acme", "cpu").is_empty(),
        "covered WAL segments are removed"
    );

    let server = TestServer::start(dirs.config()).await;
    let rows = server
        .rows("acme", "SELECT host, usage FROM cpu ORDER BY host")
        .await;
    assert_eq!(
        json!(rows),
        json!([{"host": "a", "usage": 1.5}, {"host": "b", "usage": 2.5}])
    );
    // The file's footer is now cached, within its share of the memory budget.
    let (_, health) = server.get("/healthz").await;
    let metadata = &health["memory"]["consumers"]["parquet_metadata"];
    let (used, limit) = (metadata["used"].as_u64(), metadata["limit"].as_u64());
    assert!(used > Some(0) && used <= limit, "{health}");
    for consumer in ["write_buffers", "queries", "panel_cache"] {
        let c = &health["memory"]["consumers"][consumer];
        assert!(c["used"].as_u64() <= c["limit"].as_u64(), "{health}");
    }
    // New rows land in the buffer and show together with the Parquet ones.
    server
        .write(
            "acme",
            "cpu",
            "application/x-ndjson",
            "{\"time\":\"2024-05-01T00:00:20Z\",\"host\":\"a\",\"usage\":3}\n",
        )
        .await;
    assert_eq!(server.count("acme", "cpu").await, 3);
    let (_, tables) = server.get("/api/v1/tenants/acme/tables").await;
    assert_eq!(
        (
            tables[0]["buffered_rows"].as_u64(),
            tables[0]["parquet_files"].as_u64()
        ),
        (Some(1), Some(1))
    );
    server.stop().await;
}

#[tokio::test]
async fn size_threshold_flushes_while_serving() {
    let dirs = TestDirs::new(&["acme"]);
    let mut config = dirs.config();
    config.storage.flush_max_rows = 2;
    let server = TestServer::start(config).await;
    server
        .write("acme", "cpu", "application/x-ndjson", NDJSON)
        .await;
    // The size-triggered flush runs in the background; wait for its file to appear.
    for _ in 0..100 {
        if !dirs.parquet_files("acme", "cpu").is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(dirs.parquet_files("acme", "cpu").len(), 1);
    assert_eq!(server.count("acme", "cpu").await, 2);
    server.stop().await;
}

/// `--demo` fills a week of history, and the demo's alert rules are first evaluated after it:
/// none of them reports "no data" for the moments before the history landed.
#[tokio::test]
async fn demo_mode_fills_the_demo_tenant() {
    let dirs = TestDirs::new(&[]);
    common::copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tenants/demo"),
        &dirs.tenants().join("demo"),
    );
    let options = ServeOptions {
        demo: true,
        ..Default::default()
    };
    let mut config = dirs.config();
    config.alerts.tick = "100ms".parse().unwrap();
    let server = TestServer::start_with(config, options).await;
    let (_, early) = server.get("/api/v1/tenants/demo/alerts").await;
    // The backfill runs in the background; a week of 5-minute steps for 10 hosts.
    let mut rows = 0;
    for _ in 0..200 {
        let (s, body) = server.query("demo", "SELECT count(*) AS n FROM cpu").await;
        if s == 200 {
            rows = body[0]["n"].as_i64().unwrap_or(0);
            if rows >= 20_160 {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(rows >= 20_160, "{rows}");
    assert!(dirs.tenants().join("demo/tenant.yaml").exists());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (status, alerts) = server.get("/api/v1/tenants/demo/alerts").await;
    assert_eq!(status, 200, "{alerts}");
    for answer in [&early, &alerts] {
        let text = answer.to_string();
        assert!(
            !text.contains("nodata") && !text.contains("no data"),
            "{text}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn query_body_is_read_whatever_its_content_type() {
    let dirs = TestDirs::new(&["acme"]);
    let server = TestServer::start(dirs.config()).await;
    server
        .write("acme", "cpu", "application/x-ndjson", NDJSON)
        .await;
    // What `curl -d '{"sql": ...}'` sends.
    let resp = server
        .client
        .post(format!("{}/api/v1/tenants/acme/query", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(r#"{"sql": "SELECT count(*) AS n FROM cpu"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap(),
        json!([{"n": 2}])
    );
    server.stop().await;
}

#[tokio::test]
async fn filters_on_columns_older_files_lack() {
    let dirs = TestDirs::new(&["acme"]);
    let server = TestServer::start(dirs.config()).await;
    server
        .write("acme", "cpu", "application/x-ndjson", NDJSON)
        .await;
    server.stop().await; // flush: the first file has no `temp`
    let server = TestServer::start(dirs.config()).await;
    let more = "{\"time\":\"2024-05-01T00:00:20Z\",\"host\":\"c\",\"temp\":40}\n";
    server
        .write("acme", "cpu", "application/x-ndjson", more)
        .await;
    server.stop().await; // second file has it
    assert_eq!(dirs.parquet_files("acme", "cpu").len(), 2);
    let server = TestServer::start(dirs.config()).await;
    let hot = server
        .rows("acme", "SELECT host FROM cpu WHERE temp > 10")
        .await;
    assert_eq!(json!(hot), json!([{"host": "c"}]));
    let cold = server
        .rows(
            "acme",
            "SELECT host FROM cpu WHERE temp IS NULL ORDER BY host",
        )
        .await;
    assert_eq!(json!(cold), json!([{"host": "a"}, {"host": "b"}]));
    let tagged = server
        .rows(
            "acme",
            "SELECT count(*) AS n FROM cpu WHERE host = 'b' AND usage > 2",
        )
        .await;
    assert_eq!(json!(tagged), json!([{"n": 1}]));
    server.stop().await;
}
