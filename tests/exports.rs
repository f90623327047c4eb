//! Panel exports: the rows behind a panel streamed as CSV, JSON and Parquet, honouring the
//! range, the aggregation toggle and a table's filter, with `{tenant}-{panel}-{from}-{to}` names.

mod common;

use common::TestServer;
use common::fixture::{DAY, start};
use serde_json::Value;

async fn export(server: &TestServer, panel: &str, query: &str) -> (u16, String, bytes::Bytes) {
    let resp = server
        .client
        .get(format!(
            "{}/api/v1/tenants/acme/panels/{panel}/export?{query}",
            server.url
        ))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let disposition = resp
        .headers()
        .get("content-disposition")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, disposition, resp.bytes().await.unwrap())
}

#[tokio::test]
async fn exports_stream_the_rows_behind_a_panel() {
    let (_dirs, server) = start(|c| c.panels.raw_limit = 10).await;
    // Raw export is not capped at raw_limit: 12 h of 30-minute rows for 2 hosts.
    let (status, disposition, body) = export(
        &server,
        "cpu",
        &format!("{DAY}&disable_aggregation=true&format=csv"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        disposition,
        "attachment; filename=\"acme-cpu-20240101T000000Z-20240101T120000Z.csv\""
    );
    let text = String::from_utf8(body.to_vec()).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("time,value,series"));
    assert_eq!(lines.count(), 48);
    // Aggregated: one row per bucket and host, as the panel shows.
    let (_, _, body) = export(&server, "cpu", &format!("{DAY}&format=json")).await;
    let rows: Vec<Value> = serde_json::from_slice(&body).unwrap();
    assert_eq!(rows.len(), 48);
    // A table: every filtered row in display order, no paging.
    let (_, _, body) = export(
        &server,
        "errors",
        &format!("{DAY}&format=json&filter=ERROR"),
    )
    .await;
    let rows: Vec<Value> = serde_json::from_slice(&body).unwrap();
    let messages: Vec<&str> = rows
        .iter()
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["m5", "m3", "m1"]);
    // Parquet readers see the same rows.
    let (status, disposition, body) =
        export(&server, "errors", &format!("{DAY}&format=parquet")).await;
    assert_eq!(status, 200);
    assert!(disposition.ends_with(".parquet\""), "{disposition}");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(body)
        .unwrap()
        .build()
        .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 5);
    // Images have no rows; bad formats are named.
    let (status, _, body) = export(&server, "heatmap", &format!("{DAY}&format=csv")).await;
    assert_eq!(status, 400, "{body:?}");
    let (status, _, _) = export(&server, "cpu", &format!("{DAY}&format=xlsx")).await;
    assert_eq!(status, 400);
    server.stop().await;
}

#[tokio::test]
async fn export_file_names_are_safe_whatever_the_panel_file_is_called() {
    let (dirs, server) = start(|_| {}).await;
    std::fs::copy(
        dirs.tenants().join("acme/panels/cpu.yaml"),
        dirs.tenants().join("acme/panels/cpu \"now\".yaml"),
    )
    .unwrap();
    server.stop().await;
    let server = TestServer::start(dirs.config()).await;
    let (status, disposition, _) =
        export(&server, "cpu%20%22now%22", &format!("{DAY}&format=csv")).await;
    assert_eq!(status, 200);
    assert_eq!(
        disposition,
        "attachment; filename=\"acme-cpu__now_-20240101T000000Z-20240101T120000Z.csv\""
    );
    server.stop().await;
}

/// Text that a spreadsheet would run as a formula is quoted in CSV from queries and panel
/// exports, unless `csv_formulas=keep` asks for the cells as written.
#[tokio::test]
async fn csv_downloads_quote_formulas_unless_asked_not_to() {
    let (_dirs, server) = start(|_| {}).await;
    let body = "{\"time\":1704067200000,\"note\":\"=HYPERLINK(\\\"http://evil.example\\\")\",\"who\":\"@admin\",\"n\":-3}\n";
    let (status, answer) = server
        .write("acme", "notes", "application/x-ndjson", body)
        .await;
    assert_eq!(status, 200, "{answer}");
    let sql = "SELECT note, who, n FROM notes";
    let (status, csv) = server.query_raw("acme", sql, "csv").await;
    assert_eq!(status, 200);
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.contains("\"'=HYPERLINK("), "{csv}");
    assert!(csv.contains(",'@admin,-3"), "numbers stay numbers: {csv}");
    let (status, raw) = server.query_raw("acme", sql, "csv&csv_formulas=keep").await;
    assert_eq!(status, 200);
    let raw = String::from_utf8(raw).unwrap();
    assert!(
        raw.contains("\"=HYPERLINK(") && raw.contains(",@admin,"),
        "{raw}"
    );
    let (status, _) = server
        .query_raw("acme", sql, "csv&csv_formulas=maybe")
        .await;
    assert_eq!(status, 400);
    // The panel export of the fixture's errors table goes through the same encoder.
    let (status, _, body) = export(&server, "errors", &format!("{DAY}&format=csv")).await;
    assert_eq!(status, 200);
    assert!(
        !String::from_utf8_lossy(&body).contains("\n="),
        "no bare formula cell"
    );
}
