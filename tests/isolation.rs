//! Tenant `a` cannot reach tenant `b`'s tables by any name.

mod common;

use common::{TestDirs, TestServer};

#[tokio::test]
async fn no_name_reaches_another_tenant() {
    let dirs = TestDirs::new(&["a", "b"]);
    let server = TestServer::start(dirs.config()).await;
    server
        .write(
            "a",
            "mine",
            "application/x-ndjson",
            "{\"time\":1,\"v\":1}\n",
        )
        .await;
    server
        .write(
            "b",
            "secret",
            "application/x-ndjson",
            "{\"time\":1,\"v\":42}\n",
        )
        .await;
    assert_eq!(server.count("b", "secret").await, 1);

    for sql in [
        "SELECT * FROM secret",
        "SELECT * FROM b.secret",
        "SELECT * FROM public.secret",
        "SELECT * FROM datafusion.public.secret",
        "SELECT * FROM datafusion.b.secret",
        "SELECT * FROM b.public.secret",
        "SELECT * FROM \"b\".\"public\".\"secret\"",
    ] {
        let (s, body) = server.query("a", sql).await;
        assert_eq!(s, 400, "{sql}: {body}");
        assert!(!body.to_string().contains("42"), "{sql}: {body}");
    }
    let tables = server
        .rows(
            "a",
            "SELECT table_catalog, table_schema, table_name FROM information_schema.tables",
        )
        .await;
    let names: Vec<_> = tables
        .iter()
        .map(|t| t["table_name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"mine".to_string()), "{names:?}");
    assert!(!names.contains(&"secret".to_string()), "{names:?}");
    let columns = server
        .rows("a", "SELECT table_name FROM information_schema.columns")
        .await;
    assert!(!columns.iter().any(|c| c["table_name"] == "secret"));
    let schemata = server
        .rows(
            "a",
            "SELECT catalog_name, schema_name FROM information_schema.schemata",
        )
        .await;
    assert!(
        !serde_json::to_string(&schemata).unwrap().contains("\"b\""),
        "{schemata:?}"
    );
    let (_, tables) = server.get("/api/v1/tenants/a/tables").await;
    assert!(!tables.to_string().contains("secret"));
    server.stop().await;
}
