//! OTLP/HTTP metrics and logs: the OpenTelemetry Python SDK's own exporters, the JSON encoding
//! by hand, and bad requests that must write nothing.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use prost::Message;
use serde_json::{Value, json};

use super::*;

/// The SDK's counter, gauge, histogram and log records land as the README's mapping says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_opentelemetry_sdk_exports_metrics_and_logs() {
    if !python_has(
        "opentelemetry.exporter.otlp.proto.http",
        "pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http",
    ) {
        return;
    }
    let dirs = TestDirs::new(&["acme"]);
    let server = TestServer::start(dirs.config()).await;
    let key = tenant_key(&dirs, "acme", vec![Scope::Ingest]).await;
    let endpoint = format!("{}/api/v1/tenants/acme/otlp", server.url);
    run_client("otel_export.py", vec![endpoint, key]).await;

    let rows = server
        .rows(
            "acme",
            "SELECT service_name, host_name, http_route, http_response_status_code AS code, \
             value, temporality, monotonic, start_time IS NOT NULL AS started \
             FROM http_server_requests ORDER BY http_route",
        )
        .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let cart = &rows[0];
    assert_eq!(
        (
            &cart["service_name"],
            &cart["host_name"],
            &cart["http_route"],
            &cart["code"]
        ),
        (
            &json!("shop"),
            &json!("web-1"),
            &json!("/cart"),
            &json!("200")
        )
    );
    assert_eq!(
        (&cart["value"], &cart["temporality"]),
        (&json!(5.0), &json!("cumulative"))
    );
    assert_eq!(
        (&cart["monotonic"], &cart["started"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(rows[1]["value"], 1.0);

    let gauge = server
        .rows("acme", "SELECT queue, value FROM queue_depth")
        .await;
    assert_eq!(gauge, vec![json!({"queue": "orders", "value": 7.5})]);

    let histogram = server
        .rows(
            "acme",
            "SELECT count, sum, min, max FROM http_server_duration",
        )
        .await;
    assert_eq!(
        histogram,
        vec![json!({"count": 4, "sum": 268.0, "min": 4.0, "max": 240.0})]
    );
    // The SDK's default bounds 0, 5, 10, 25, 50, 75, 100, 250, …: cumulative counts per `le`.
    let buckets = server
        .rows(
            "acme",
            "SELECT CAST(le AS VARCHAR) AS bound, count FROM http_server_duration_bucket \
             WHERE le IN (0, 5, 10, 25, 250, 'Infinity') ORDER BY le",
        )
        .await;
    let got: Vec<(String, i64)> = buckets
        .iter()
        .map(|r| {
            (
                r["bound"].as_str().unwrap().to_string(),
                r["count"].as_i64().unwrap(),
            )
        })
        .collect();
    let want = [
        ("0.0", 0),
        ("5.0", 1),
        ("10.0", 1),
        ("25.0", 3),
        ("250.0", 4),
        ("inf", 4),
    ];
    let want: Vec<(String, i64)> = want.iter().map(|(l, c)| (l.to_string(), *c)).collect();
    assert_eq!(got, want);

    let logs = server
        .rows(
            "acme",
            "SELECT severity_number, body, scope_name, service_name, order_id, amount \
             FROM logs ORDER BY severity_number",
        )
        .await;
    assert_eq!(logs.len(), 2, "{logs:?}");
    assert_eq!(
        (
            &logs[0]["severity_number"],
            &logs[0]["body"],
            &logs[0]["scope_name"]
        ),
        (&json!(13), &json!("card declined"), &json!("payments"))
    );
    assert_eq!(
        (&logs[0]["order_id"], &logs[0]["amount"]),
        (&json!("o-17"), &json!("12.5"))
    );
    assert_eq!(
        (&logs[1]["severity_number"], &logs[1]["body"]),
        (&json!(17), &json!("gateway timeout"))
    );
    assert_eq!(logs[1]["order_id"], Value::Null);
}

/// The JSON encoding (string int64s, `asInt`, every metric kind) and OTLP's partial success.
#[tokio::test]
async fn json_exports_map_every_metric_kind_and_name_what_was_left_out() {
    let dirs = TestDirs::new(&["acme"]);
    let server = TestServer::start(dirs.config()).await;
    let key = tenant_key(&dirs, "acme", vec![Scope::Ingest]).await;
    let url = format!("{}/api/v1/tenants/acme/otlp/v1/metrics", server.url);
    let t = "1700000000000000000";
    let body = json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
        "scopeMetrics": [{"scope": {"name": "x"}, "metrics": [
            {"name": "jobs.running", "gauge": {"dataPoints": [
                {"asInt": "3", "timeUnixNano": t,
                 "attributes": [{"key": "value", "value": {"intValue": "9"}}]},
                {"timeUnixNano": t}
            ]}},
            {"name": "bytes.sent", "sum": {"aggregationTemporality": 1, "isMonotonic": true,
              "dataPoints": [{"asDouble": 512.5, "timeUnixNano": t, "startTimeUnixNano": "1699999990000000000"}]}},
            {"name": "rtt", "exponentialHistogram": {"aggregationTemporality": 2, "dataPoints": [{
                "timeUnixNano": t, "count": "6", "sum": 9.0, "scale": 0, "zeroCount": "1",
                "positive": {"offset": 0, "bucketCounts": ["2", "3"]}}]}},
            {"name": "req.size", "summary": {"dataPoints": [{"timeUnixNano": t, "count": "10",
                "sum": 100.0, "quantileValues": [{"quantile": 0.5, "value": 8.0}, {"quantile": 0.99, "value": 40.0}]}]}}
        ]}]
    }]});
    let (status, answer) = post_bytes(
        &url,
        &key,
        "application/json",
        serde_json::to_vec(&body).unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(
        answer["partialSuccess"]["rejectedDataPoints"], 1,
        "{answer}"
    );
    assert!(
        answer["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("no value")
    );

    let jobs = server
        .rows(
            "acme",
            "SELECT service_name, attr_value, value, CAST(time AS VARCHAR) AS t FROM jobs_running",
        )
        .await;
    assert_eq!(
        jobs,
        vec![
            json!({"service_name": "api", "attr_value": "9", "value": 3.0, "t": "2023-11-14T22:13:20Z"})
        ]
    );
    let sent = server
        .rows(
            "acme",
            "SELECT value, temporality, monotonic, start_time FROM bytes_sent",
        )
        .await;
    assert_eq!(
        sent,
        vec![
            json!({"value": 512.5, "temporality": "delta", "monotonic": true, "start_time": 1_699_999_990_000_000_000i64})
        ]
    );
    let rtt = server
        .rows("acme", "SELECT count, sum, scale, zero_count FROM rtt")
        .await;
    assert_eq!(
        rtt,
        vec![json!({"count": 6, "sum": 9.0, "scale": 0, "zero_count": 1})]
    );
    let rtt_buckets = server
        .rows("acme", "SELECT le, count FROM rtt_bucket ORDER BY le")
        .await;
    assert_eq!(
        rtt_buckets,
        vec![
            json!({"le": 0.0, "count": 1}),
            json!({"le": 2.0, "count": 3}),
            json!({"le": 4.0, "count": 6})
        ]
    );
    let quantiles = server
        .rows(
            "acme",
            "SELECT quantile, value FROM req_size_quantile ORDER BY quantile",
        )
        .await;
    assert_eq!(
        quantiles,
        vec![
            json!({"quantile": 0.5, "value": 8.0}),
            json!({"quantile": 0.99, "value": 40.0})
        ]
    );
    assert_eq!(
        server.rows("acme", "SELECT count, sum FROM req_size").await,
        vec![json!({"count": 10, "sum": 100.0})]
    );

    // Logs in JSON, into a table the request names.
    let logs_url = format!(
        "{}/api/v1/tenants/acme/otlp/v1/logs?table=audit_events",
        server.url
    );
    let logs = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{
        "timeUnixNano": t, "severityNumber": 17, "body": {"kvlistValue": {"values": [
            {"key": "user", "value": {"stringValue": "ann"}}]}},
        "traceId": "5b8efff798038103d269b633813fc60c", "attributes": [{"key": "severity", "value": {"stringValue": "x"}}]
    }]}]}]});
    let (status, answer) = post_bytes(
        &logs_url,
        &key,
        "application/json",
        serde_json::to_vec(&logs).unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let rows = server
        .rows(
            "acme",
            "SELECT severity, attr_severity, body, trace_id FROM audit_events",
        )
        .await;
    assert_eq!(
        rows,
        vec![
            json!({"severity": "ERROR", "attr_severity": "x", "body": "{\"user\":\"ann\"}",
                    "trace_id": "5b8efff798038103d269b633813fc60c"})
        ]
    );
}

pub(super) fn gauge_request(
    points: Vec<(&str, Vec<(&str, String)>)>,
) -> ExportMetricsServiceRequest {
    let metrics = points
        .into_iter()
        .map(|(name, attributes)| Metric {
            name: name.to_string(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint {
                    attributes: attributes
                        .into_iter()
                        .map(|(k, v)| KeyValue {
                            key: k.into(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::StringValue(v)),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                    time_unix_nano: 1_700_000_000_000_000_000,
                    value: Some(number_data_point::Value::AsDouble(1.0)),
                    ..Default::default()
                }],
            })),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Truncated protobuf, a foreign content type, broken JSON and gzip, a type conflict: each a
/// 4xx whose body OTLP clients can read, and nothing written — not even the request's good
/// metrics.
#[tokio::test]
async fn bad_otlp_requests_write_nothing() {
    let dirs = TestDirs::new(&["acme"]);
    let server = TestServer::start(dirs.config()).await;
    let key = tenant_key(&dirs, "acme", vec![Scope::Ingest]).await;
    let url = format!("{}/api/v1/tenants/acme/otlp/v1/metrics", server.url);
    let (s, b) = post(
        format!("{}/api/v1/tenants/acme/write_lp", server.url),
        Some(("authorization", format!("Bearer {key}"))),
        "clash value=\"text\" 1700000000000000000\nfine value=1 1700000000000000000",
        false,
    )
    .await;
    assert_eq!(s, 204, "{b}");
    let good = gauge_request(vec![("fine", vec![("host", "a".into())])]).encode_to_vec();
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 4);
    let clash = gauge_request(vec![("fine", vec![]), ("clash", vec![])]).encode_to_vec();
    let protobuf = "application/x-protobuf";
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (protobuf, truncated, 400, "not an OTLP protobuf request"),
        ("text/plain", good.clone(), 415, "application/x-protobuf"),
        (
            "application/json",
            b"{\"resourceMetrics\": [{]}".to_vec(),
            400,
            "line 1, column",
        ),
        (
            protobuf,
            clash,
            400,
            "holds strings, this line gives floats",
        ),
    ];
    for (content_type, body, want, says) in cases {
        let (status, body) = post_bytes(&url, &key, content_type, body).await;
        let message = if content_type == protobuf {
            #[derive(Clone, PartialEq, Message)]
            struct Status {
                #[prost(int32, tag = "1")]
                code: i32,
                #[prost(string, tag = "2")]
                message: String,
            }
            let status = Status::decode(body.as_slice()).expect("a google.rpc.Status body");
            assert_eq!(status.code, 3);
            status.message
        } else {
            let v: Value = serde_json::from_slice(&body).unwrap();
            v["message"].as_str().unwrap().to_string()
        };
        assert_eq!(status, want, "{message}");
        assert!(message.contains(says), "{says:?} not in {message:?}");
    }
    let (s, b) = post(
        url.clone(),
        Some(("content-encoding", "gzip".into())),
        b"x".to_vec(),
        false,
    )
    .await;
    assert_eq!(s, 401, "no key: {b}");
    let gz = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&key)
        .header("content-type", protobuf)
        .header("content-encoding", "gzip")
        .body(b"not gzip".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(gz.status().as_u16(), 400);
    assert_eq!(
        server.count("acme", "fine").await,
        1,
        "nothing written by the bad requests"
    );
    assert_eq!(server.count("acme", "clash").await, 1);
    let (status, _) = post_bytes(&url, &key, protobuf, good).await;
    assert_eq!(status, 200, "the server is fine afterwards");
    assert_eq!(server.count("acme", "fine").await, 2);

    // A metric named like the server's own table is left out and named; the others land.
    let mixed = gauge_request(vec![("fine", vec![]), ("alerts", vec![])]).encode_to_vec();
    let (status, body) = post_bytes(&url, &key, "application/x-protobuf", mixed).await;
    assert_eq!(status, 200);
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
    let answer = ExportMetricsServiceResponse::decode(body.as_slice()).unwrap();
    let partial = answer.partial_success.expect("partial success");
    assert_eq!(partial.rejected_data_points, 1);
    assert!(
        partial.error_message.contains("`alerts`"),
        "{}",
        partial.error_message
    );
    assert_eq!(server.count("acme", "fine").await, 3);
    // Logs into a table the request names: the server's own or a bad name is refused whole.
    let logs = |table: &str| {
        format!(
            "{}/api/v1/tenants/acme/otlp/v1/logs?table={table}",
            server.url
        )
    };
    let record =
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"x"}}]}]}]}"#;
    let (status, _) = post_bytes(&logs("alerts"), &key, "application/json", record.to_vec()).await;
    assert_eq!(status, 403);
    let (status, body) =
        post_bytes(&logs("Bad-Name"), &key, "application/json", record.to_vec()).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
}
