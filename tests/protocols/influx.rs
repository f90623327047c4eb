//! InfluxDB line protocol on every InfluxDB version's write path.

use super::*;

#[tokio::test]
async fn line_protocol_is_taken_on_every_influxdb_write_path() {
    let dirs = TestDirs::new(&["acme", "globex"]);
    let server = TestServer::start(dirs.config()).await;
    let key = tenant_key(&dirs, "acme", vec![Scope::Ingest]).await;
    let url = &server.url;
    // InfluxDB 2.x: Token header, gzip body, seconds.
    let (s, b) = post(
        format!("{url}/api/v2/write?org=any&bucket=acme&precision=s"),
        Some(("authorization", format!("Token {key}"))),
        gzip("cpu,host=a usage=1.5 1700000000\ncpu,host=b usage=2.5 1700000000\n"),
        true,
    )
    .await;
    assert_eq!((s, b.as_str()), (204, ""));
    // InfluxDB 1.x: the key as `p`, and as the basic-auth password; `n` precision.
    let (s, b) = post(
        format!("{url}/write?db=acme&u=agent&p={key}&precision=n"),
        None,
        "cpu,host=c usage=3 1700000000000000000",
        false,
    )
    .await;
    assert_eq!(s, 204, "{b}");
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("agent:{key}"));
    let (s, b) = post(
        format!("{url}/write?db=acme&precision=ms"),
        Some(("authorization", format!("Basic {basic}"))),
        "cpu,host=d usage=4 1700000000000",
        false,
    )
    .await;
    assert_eq!(s, 204, "{b}");
    // InfluxDB 3 and opsboard's own path: a bearer key, nanoseconds by default.
    for path in ["/api/v3/write_lp?db=acme", "/api/v1/tenants/acme/write_lp"] {
        let (s, b) = post(
            format!("{url}{path}"),
            Some(("authorization", format!("Bearer {key}"))),
            "cpu,host=e usage=5 1700000000000000000",
            false,
        )
        .await;
        assert_eq!(s, 204, "{path}: {b}");
    }
    let rows = server
        .rows(
            "acme",
            "SELECT host, usage, CAST(time AS VARCHAR) AS t FROM cpu ORDER BY host, usage",
        )
        .await;
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r["t"].as_str().unwrap().starts_with("2023-11-14T22:13:20")),
        "every precision lands on the same instant: {rows:?}"
    );
}

#[tokio::test]
async fn escapes_and_types_land_column_by_column() {
    let dirs = TestDirs::new(&["acme"]);
    let server = TestServer::start(dirs.config()).await;
    let key = tenant_key(&dirs, "acme", vec![Scope::Ingest]).await;
    let body = concat!(
        "# a comment, then a point with every escape\n",
        r#"Disk\ IO\,x,mount\ point=/var\,log,dev\=ice=sd\ a f=0.5,i=-7i,u=9u,b=TRUE,s="say \"hi\" \\ o/" 1700000000000000000"#,
        "\n",
        r#"disk_io_x f=1e3,i=1i,u=0u,b=f,s="" 1700000000000000001"#,
        "\n"
    );
    let (s, b) = post(
        format!("{}/api/v1/tenants/acme/write_lp", server.url),
        Some(("authorization", format!("Bearer {key}"))),
        body,
        false,
    )
    .await;
    assert_eq!(s, 204, "{b}");
    let rows = server
        .rows(
            "acme",
            "SELECT \"mount point\" AS m, \"dev=ice\" AS d, f, i, u, b, s, arrow_typeof(i) AS ti, \
             arrow_typeof(u) AS tu, arrow_typeof(b) AS tb, arrow_typeof(s) AS ts, \
             arrow_typeof(\"mount point\") AS tm FROM disk_io_x ORDER BY time",
        )
        .await;
    assert_eq!(rows[0]["m"], "/var,log");
    assert_eq!(rows[0]["d"], "sd a");
    assert_eq!(rows[0]["s"], r#"say "hi" \ o/"#);
    assert_eq!(
        (&rows[0]["f"], &rows[0]["i"], &rows[0]["u"], &rows[0]["b"]),
        (&0.5.into(), &(-7).into(), &9.into(), &true.into())
    );
    assert_eq!(
        (&rows[1]["f"], &rows[1]["b"], &rows[1]["s"]),
        (&1000.0.into(), &false.into(), &"".into())
    );
    assert_eq!(
        (
            &rows[0]["ti"],
            &rows[0]["tu"],
            &rows[0]["tb"],
            &rows[0]["ts"]
        ),
        (
            &"Int64".into(),
            &"UInt64".into(),
            &"Boolean".into(),
            &"Utf8".into()
        )
    );
    assert!(rows[0]["tm"].as_str().unwrap().starts_with("Dictionary"));
}

#[tokio::test]
async fn bad_lines_conflicts_and_strangers_write_nothing() {
    let dirs = TestDirs::new(&["acme", "globex"]);
    let server = TestServer::start(dirs.config()).await;
    let ingest = tenant_key(&dirs, "acme", vec![Scope::Ingest]).await;
    let read_only = tenant_key(&dirs, "acme", vec![Scope::Read]).await;
    let lp = |path: &str| format!("{}{path}", server.url);
    let bearer = |k: &str| Some(("authorization", format!("Bearer {k}")));
    let (s, _) = post(
        lp("/api/v1/tenants/acme/write_lp"),
        bearer(&ingest),
        "m v=1 1",
        false,
    )
    .await;
    assert_eq!(s, 204);
    // One bad line among good ones (and another measurement): nothing written, line named.
    let (s, b) = post(
        lp("/api/v1/tenants/acme/write_lp"),
        bearer(&ingest),
        "m v=2 2\nother x=1 2\nm v=oops 3\n",
        false,
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(b.contains("\"line\":3") && b.contains("oops"), "{b}");
    // An integer into the float column `v`: refused with line and field, nothing written.
    let (s, b) = post(
        lp("/api/v1/tenants/acme/write_lp"),
        bearer(&ingest),
        "other x=1 2\nm v=5i 4\n",
        false,
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b.contains("\"line\":2") && b.contains("holds floats"),
        "{b}"
    );
    // A field may not take the timestamp's name.
    let (s, b) = post(
        lp("/api/v1/tenants/acme/write_lp"),
        bearer(&ingest),
        "m time=1 5",
        false,
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(server.count("acme", "m").await, 1);
    let (_, tables) = server.get("/api/v1/tenants/acme/tables").await;
    assert!(!tables.to_string().contains("\"other\""), "{tables}");
    // Credentials: none, read-only, another tenant's bucket, a wrong basic password.
    let (s, _) = post(lp("/api/v2/write?bucket=acme"), None, "m v=9 9", false).await;
    assert_eq!(s, 401);
    let token = |k: &str| Some(("authorization", format!("Token {k}")));
    let (s, _) = post(
        lp("/api/v2/write?bucket=acme"),
        token(&read_only),
        "m v=9 9",
        false,
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = post(
        lp("/api/v2/write?bucket=globex"),
        token(&ingest),
        "m v=9 9",
        false,
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = post(lp("/write?db=acme&p=opsb_wrong"), None, "m v=9 9", false).await;
    assert_eq!(s, 401);
    // A gzip bomb past the body limit, and a body that is not gzip.
    let bomb = gzip(&"m v=1 1\n".repeat(9_000_000));
    let (s, _) = post(lp("/api/v2/write?bucket=acme"), token(&ingest), bomb, true).await;
    assert_eq!(s, 413);
    let (s, _) = post(
        lp("/api/v2/write?bucket=acme"),
        token(&ingest),
        "m v=1 1",
        true,
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(server.count("acme", "m").await, 1);
}

/// The official InfluxDB 2.x Python client writes as it would to InfluxDB.
#[tokio::test]
async fn the_influxdb_python_client_writes_through_the_v2_api() {
    if !python_has("influxdb_client", "pip install influxdb-client") {
        return;
    }
    let dirs = TestDirs::new(&["acme"]);
    let server = TestServer::start(dirs.config()).await;
    let key = tenant_key(&dirs, "acme", vec![Scope::Ingest]).await;
    let args = vec![server.url.clone(), key, "acme".to_string()];
    run_client("influx_v2.py", args).await;
    let rows = server
        .rows(
            "acme",
            "SELECT \"room name\" AS room, kind, celsius, samples, ok, note, \
             CAST(time AS VARCHAR) AS t FROM sensor_reading ORDER BY time",
        )
        .await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0]["room"], "lab, north=1");
    assert_eq!(rows[0]["celsius"], 21.5);
    assert_eq!(rows[0]["samples"], 12);
    assert_eq!(rows[0]["ok"], true);
    assert_eq!(rows[0]["note"], r#"said "hi" \ bye"#);
    assert_eq!(rows[0]["t"], "2023-11-14T22:13:20.123456789Z");
    assert_eq!(
        (&rows[1]["celsius"], &rows[1]["ok"]),
        (&(-3.25).into(), &false.into())
    );
    assert_eq!(
        (&rows[2]["kind"], &rows[2]["celsius"]),
        (&"hum".into(), &50.0.into())
    );
    assert_eq!(rows[2]["t"], "2023-11-14T22:13:22Z");
}

#[tokio::test]
async fn accept_partial_writes_the_good_lines_and_names_the_others() {
    let dirs = TestDirs::new(&["acme"]);
    let server = TestServer::start(dirs.config()).await;
    let key = tenant_key(&dirs, "acme", vec![Scope::Ingest]).await;
    let auth = || Some(("authorization", format!("Token {key}")));
    let url = |partial: &str| format!("{}/api/v2/write?bucket=acme{partial}", server.url);
    let (s, _) = post(url(""), auth(), "m v=1 1", false).await;
    assert_eq!(s, 204);
    // Line 2 does not parse, line 3 puts an integer into the float column, line 5 contradicts
    // line 4 of the same body (a new column `w`, float then string).
    let body = "m v=2 2\nm v= 3\nm v=3i 4\nn w=1 5\nn w=\"x\" 6\nn w=2 7\n";
    let (s, b) = post(url(""), auth(), body, false).await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(
        server.count("acme", "m").await,
        1,
        "without the flag nothing is written"
    );
    let (s, b) = post(url("&accept_partial=true"), auth(), body, false).await;
    assert_eq!(s, 400, "{b}");
    let answer: serde_json::Value = serde_json::from_str(&b).unwrap();
    let lines: Vec<u64> = answer["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [2, 3, 5], "{b}");
    assert_eq!(answer["rows_written"], 3, "{b}");
    assert!(
        b.contains("holds float field, this line gives integer field"),
        "{b}"
    );
    assert_eq!(server.count("acme", "m").await, 2);
    assert_eq!(server.count("acme", "n").await, 2);
    // Nothing left to write: every line refused, nothing written.
    let (s, _) = post(url("&accept_partial=true"), auth(), "m v=oops 9", false).await;
    assert_eq!(s, 400);
    assert_eq!(server.count("acme", "m").await, 2);
}

/// Debian's InfluxDB 1.6 started on free ports with its data in the test's folder.
fn start_influxd(dir: &std::path::Path) -> Option<(Child, u16)> {
    if !binary_present("influxd", "version", "apt-get install influxdb") {
        return None;
    }
    let (http, rpc) = (free_port(), free_port());
    let d = dir.display();
    let config = dir.join("influxdb.conf");
    std::fs::write(
        &config,
        format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
             [meta]\n  dir = \"{d}/meta\"\n[data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n\
             [http]\n  bind-address = \"127.0.0.1:{http}\"\n  log-enabled = false\n\
             [monitor]\n  store-enabled = false\n[continuous_queries]\n  enabled = false\n"
        ),
    )
    .unwrap();
    let child = std::process::Command::new("influxd")
        .args(["run", "-config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("influxd");
    Some((Child(child), http))
}

/// One value as both sides print it: numbers compared as numbers.
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The same line-protocol corpus (the reference's escapes and worse) goes to InfluxDB 1.6 and
/// to opsboard line by line: both accept or both refuse each line, and every value InfluxDB
/// stored is in opsboard, column by column, with the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_protocol_is_stored_as_influxdb_stores_it() {
    let dirs = TestDirs::new(&["acme"]);
    let Some((_influxd, port)) = start_influxd(dirs.root.path()) else {
        return;
    };
    let server = TestServer::start(dirs.config()).await;
    let key = tenant_key(&dirs, "acme", vec![Scope::Ingest, Scope::Read]).await;
    let influx = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    // influxd takes a while to start when the machine is busy (the whole suite at once).
    for _ in 0..300 {
        let created = client
            .post(format!("{influx}/query"))
            .form(&[("q", "CREATE DATABASE d")])
            .send()
            .await;
        if created.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // influxd may answer the creation before a write finds the database (a 404 seen once).
    for _ in 0..100 {
        let listed = client
            .post(format!("{influx}/query"))
            .form(&[("q", "SHOW DATABASES")])
            .send()
            .await;
        let body = match listed {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if body.contains("[\"d\"]") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let corpus = include_str!("../clients/lp_corpus.txt");
    for (n, line) in corpus.lines().enumerate() {
        let theirs = client
            .post(format!("{influx}/write?db=d"))
            .body(line.to_string())
            .send()
            .await
            .expect("influxd write");
        let (ours, body) = post(
            format!("{}/write?db=acme&p={key}", server.url),
            None,
            line.to_string(),
            false,
        )
        .await;
        let theirs = theirs.status().as_u16();
        assert_eq!(ours, theirs, "line {}: {line}\nopsboard: {body}", n + 1);
    }
    let answer: serde_json::Value = client
        .get(format!("{influx}/query"))
        .query(&[("db", "d"), ("epoch", "ns"), ("q", "SELECT * FROM /.*/")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let series = answer["results"][0]["series"].as_array().expect("series");
    let mut compared = 0;
    for s in series {
        let name = s["name"].as_str().unwrap();
        let table = opsboard::ingest::table_name(name);
        let ours = server
            .rows(
                "acme",
                &format!("SELECT *, CAST(time AS BIGINT) AS ns FROM {table} ORDER BY time"),
            )
            .await;
        let columns = s["columns"].as_array().unwrap();
        let rows = s["values"].as_array().unwrap();
        assert_eq!(ours.len(), rows.len(), "{name}: {ours:?}");
        for (theirs, ours) in rows.iter().zip(&ours) {
            for (i, column) in columns.iter().enumerate() {
                let column = column.as_str().unwrap();
                let (value, mine) = match column {
                    "time" => (&theirs[i], &ours["ns"]),
                    _ => (&theirs[i], &ours[column]),
                };
                if value.is_null() {
                    continue;
                }
                assert!(
                    same(value, mine),
                    "{name}.{column}: InfluxDB {value}, opsboard {mine}"
                );
                compared += 1;
            }
        }
    }
    assert!(compared >= 30, "only {compared} values compared");
}
