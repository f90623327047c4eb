mod common;
use std::collections::HashMap;
use common::TestDirs;
use datafusion::common::ScalarValue;
use opsboard::config::StorageConfig;
use opsboard::generate::CpuGenerator;
use opsboard::query::QueryEngine;
use opsboard::config::QueryConfig;
use opsboard::storage::{OpenMode, Store};

#[tokio::test]
async fn probe() {
    let dirs = TestDirs::new(&["acme"]);
    let store = Store::open(StorageConfig::default(), &dirs.data(), &dirs.tenants(), OpenMode::ReadWrite).await.unwrap();
    let t = store.tenant("acme").await.unwrap();
    let start = 1_704_067_200i64 * 1_000_000_000;
    let times: Vec<i64> = (0..48).map(|m| start + m * 600_000_000_000).collect();
    t.write("cpu", CpuGenerator::new(2, 1).batch(&times)).await.unwrap();
    let engine = QueryEngine::new(QueryConfig::default());
    let mut p = HashMap::new();
    p.insert("from".to_string(), ScalarValue::TimestampNanosecond(Some(start), None));
    p.insert("to".to_string(), ScalarValue::TimestampNanosecond(Some(start + 8 * 3_600_000_000_000), None));
    p.insert("origin".to_string(), ScalarValue::TimestampNanosecond(Some(start - 1_800_000_000_000), None));
    p.insert("bucket".to_string(), ScalarValue::new_interval_mdn(0, 0, 3_600_000_000_000));
    p.insert("series".to_string(), ScalarValue::Utf8(Some("host_0".into())));
    for sql in [
        "SELECT date_bin($bucket, time, $origin) AS b, hostname, avg(usage_user) AS v, approx_percentile_cont(usage_user, 0.95) AS p95, last_value(usage_user ORDER BY time) AS l FROM cpu WHERE time >= $from AND time < $to AND hostname = $series GROUP BY 1, 2 ORDER BY 2, 1 LIMIT 3",
        "SELECT date_bin($bucket, time) AS b, count(*) FROM cpu WHERE time >= $from GROUP BY 1 ORDER BY 1 LIMIT 2",
        "SELECT approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY usage_user) FROM cpu",
    ] {
        match engine.collect_with_params(&t, sql, &p).await {
            Ok(b) => println!("{}", arrow::util::pretty::pretty_format_batches(&b).unwrap()),
            Err(e) => println!("ERR {sql}: {e}"),
        }
    }
}
