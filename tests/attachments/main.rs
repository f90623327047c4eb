//! Attachments over HTTP: an upload comes back byte for byte with its type, deduplicated by
//! content; a body whose first bytes contradict its declared type (an HTML page as a PNG) is
//! 415, a type not taken is 415, an oversized one 413 — nothing kept for any of them; only
//! ingest keys upload, another tenant's callers find nothing; byte ranges for players.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;
mod events;
mod retention;

use common::session::{Db, Env};
use serde_json::Value;

/// A real (tiny) PNG, drawn with the `png` crate.
fn png_bytes(shade: u8) -> Vec<u8> {
    png_sized(shade, 4, 4)
}

fn png_sized(shade: u8, width: u32, height: u32) -> Vec<u8> {
    let mut out = vec![];
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        writer
            .write_image_data(&vec![shade; (width * height) as usize])
            .unwrap();
    }
    out
}

/// A valid PNG header that claims `side`×`side` pixels, with almost no data behind it.
fn decompression_bomb(side: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let chunk = |out: &mut Vec<u8>, kind: &[u8], data: &[u8]| {
        out.extend((data.len() as u32).to_be_bytes());
        out.extend(kind);
        out.extend(data);
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend(crc.finalize().to_be_bytes());
    };
    let mut header = side.to_be_bytes().to_vec();
    header.extend(side.to_be_bytes());
    header.extend([8, 0, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &header);
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A page or export as the test server's own key reads it, with `/` unescaped.
async fn text_of(env: &Env, path: &str) -> String {
    let response = env.server.client.get(env.url(path)).send().await.unwrap();
    response.text().await.unwrap().replace("&#x2f;", "/")
}

async fn upload(
    env: &Env,
    key: &str,
    tenant: &str,
    content_type: &str,
    body: Vec<u8>,
    query: &str,
) -> (u16, Value) {
    let response = common::client_with_key(key)
        .post(env.url(&format!("/api/v1/tenants/{tenant}/attachments{query}")))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn stored_objects(env: &Env, tenant: &str) -> usize {
    let dir = env
        .dirs
        .data()
        .join("objects")
        .join(tenant)
        .join("attachments");
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test]
async fn uploads_round_trip_deduplicate_and_refuse_what_they_are_not() {
    let env = Env::start(Db::Sqlite, "attachments", |c| {
        c.attachments.max_bytes = 4_096
    })
    .await
    .expect("sqlite");
    let (_, ingest) = env.key(Some("acme"), "ingest").await;
    let (_, read) = env.key(Some("acme"), "read").await;
    let (_, globex) = env.key(Some("globex"), "ingest,read").await;
    let picture = png_bytes(7);

    let (status, body) = upload(
        &env,
        &ingest,
        "acme",
        "image/png",
        picture.clone(),
        "?filename=../cam%22s/back%20door.png",
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 64);
    assert_eq!(body["sha256"], id.as_str());
    assert_eq!(
        (body["bytes"].as_u64(), body["content_type"].as_str()),
        (Some(picture.len() as u64), Some("image/png"))
    );
    assert_eq!(body["filename"], "back door.png", "a safe name");
    let url = body["url"].as_str().unwrap().to_string();

    // Read back whole and in part; the same bytes again are the same attachment.
    let response = common::client_with_key(&read)
        .get(env.url(&url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(
        headers["content-disposition"],
        "inline; filename=\"back door.png\""
    );
    assert_eq!(response.bytes().await.unwrap().to_vec(), picture);
    let part = common::client_with_key(&read)
        .get(env.url(&url))
        .header("range", "bytes=1-3")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 1-3/{}", picture.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap().to_vec(), picture[1..4].to_vec());
    let beyond = common::client_with_key(&read)
        .get(env.url(&url))
        .header("range", "bytes=9999-")
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);
    let objects = stored_objects(&env, "acme");
    assert_eq!(objects, 2, "the bytes and what is known of them");
    let (status, again) = upload(&env, &ingest, "acme", "image/png", picture.clone(), "").await;
    assert_eq!((status, again["id"].as_str()), (201, Some(id.as_str())));
    // One body still; uploading it again is noted (it restarts the unreferenced grace).
    assert_eq!(stored_objects(&env, "acme"), objects + 1, "deduplicated");
    upload(&env, &ingest, "acme", "image/png", picture.clone(), "").await;
    assert_eq!(stored_objects(&env, "acme"), objects + 1, "deduplicated");

    // Refused uploads keep nothing.
    let html = b"<!doctype html><script>alert(1)</script>".to_vec();
    for (content_type, body, expected) in [
        ("image/png", html.clone(), 415),
        ("text/plain", html.clone(), 415),
        ("text/html", html.clone(), 415),
        ("image/jpeg", png_bytes(9), 415),
        ("image/png", vec![], 400),
        ("image/png", [png_bytes(1), vec![0; 5_000]].concat(), 413),
    ] {
        let (status, body) = upload(&env, &ingest, "acme", content_type, body, "").await;
        assert_eq!(status, expected, "{content_type}: {body}");
    }
    let (status, _) = upload(&env, &read, "acme", "image/png", png_bytes(3), "").await;
    assert_eq!(status, 403, "a read key uploads nothing");
    assert_eq!(
        stored_objects(&env, "acme"),
        objects + 1,
        "nothing kept for refused uploads"
    );

    // Another tenant's key finds nothing, not even that the id exists.
    let response = common::client_with_key(&globex)
        .get(env.url(&url.replace("/acme/", "/globex/")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = common::client_with_key(&globex)
        .get(env.url(&url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    for bad in ["../../catalog", "ABC", &"a".repeat(64)] {
        let response = common::client_with_key(&read)
            .get(env.url(&format!("/api/v1/tenants/acme/attachments/{bad}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{bad}");
    }
    env.server.stop().await;
}

/// An `attachment` column takes only ids of the tenant's own uploads — a row naming another
/// id (or another tenant's file) is refused with its row and column, nothing written — and a
/// table panel links each such cell to its file.
#[tokio::test]
async fn attachment_columns_hold_only_this_tenants_files_and_link_to_them() {
    let env = Env::start(Db::Sqlite, "attachment columns", |_| {})
        .await
        .expect("sqlite");
    let tenant_dir = env.dirs.tenants().join("acme");
    let mut yaml = std::fs::read_to_string(tenant_dir.join("tenant.yaml")).unwrap();
    yaml.push_str("  events:\n    tags: [camera]\n    fields:\n      snapshot: attachment\n      kind: string\n");
    std::fs::write(tenant_dir.join("tenant.yaml"), yaml).unwrap();
    std::fs::write(
        tenant_dir.join("panels/events.yaml"),
        "panel:\n  type: table\n  title: Events\n  data_source:\n    table: events\n    columns:\n      - {name: time}\n      - {name: camera}\n      - {name: snapshot}\n",
    )
    .unwrap();
    std::fs::write(
        tenant_dir.join("panels/gallery.yaml"),
        "panel:\n  type: table\n  title: Gallery\n  data_source:\n    table: events\n    columns:\n      - {name: snapshot}\n      - {name: camera}\n      - {name: kind}\n  display: {gallery: true}\n",
    )
    .unwrap();
    let env = env.restart().await;
    let (_, ingest) = env.key(Some("acme"), "ingest,read").await;
    let (_, globex) = env.key(Some("globex"), "ingest").await;
    let (_, ours) = upload(&env, &ingest, "acme", "image/png", png_bytes(1), "").await;
    let (_, theirs) = upload(&env, &globex, "globex", "image/png", png_bytes(2), "").await;
    let row = |id: &str| {
        format!(
            "{{\"time\": \"2024-01-01T06:00:00Z\", \"camera\": \"back\", \"kind\": \"person\", \"snapshot\": {id:?}}}\n"
        )
    };

    for id in ["nope", theirs["id"].as_str().unwrap()] {
        let body = format!("{}{}", row(ours["id"].as_str().unwrap()), row(id));
        let (status, answer) = env
            .server
            .write("acme", "events", "application/x-ndjson", body)
            .await;
        assert_eq!(status, 400, "{answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(
            message.contains("row 2") && message.contains("\"snapshot\""),
            "{answer}"
        );
    }
    let (_, tables) = env.server.get("/api/v1/tenants/acme/tables").await;
    let events = tables
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "events")
        .cloned();
    assert_eq!(
        events.map(|t| t["rows"].clone()),
        Some(0.into()),
        "nothing written: {tables}"
    );

    let id = ours["id"].as_str().unwrap();
    let (status, answer) = env
        .server
        .write("acme", "events", "application/x-ndjson", row(id))
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, panel) = env
        .server
        .get("/api/v1/tenants/acme/panels/events/data?from=2024-01-01T00:00:00Z&to=2024-01-02T00:00:00Z")
        .await;
    assert_eq!(status, 200, "{panel}");
    assert_eq!(
        panel["links"][0][2],
        format!("/api/v1/tenants/acme/attachments/{id}").as_str(),
        "{panel}"
    );
    assert!(panel["links"][0][1].is_null(), "the camera does not link");
    assert_eq!(panel["columns"][2]["attachment"], true);
    let fragment = text_of(
        &env,
        "/t/acme/p/events/fragment?from=2024-01-01T00:00:00Z&to=2024-01-02T00:00:00Z",
    )
    .await;
    let thumbnail =
        format!("src=\"/api/v1/tenants/acme/attachments/{id}?thumbnail=1\" loading=\"lazy\"");
    assert!(
        fragment.contains(&thumbnail),
        "a lazy thumbnail linking to the file: {fragment}"
    );
    let csv = text_of(&env, "/api/v1/tenants/acme/panels/events/export?format=csv&from=2024-01-01T00:00:00Z&to=2024-01-02T00:00:00Z").await;
    assert!(csv.starts_with("time,camera,snapshot\n"), "{csv}");
    let url = format!(",back,/api/v1/tenants/acme/attachments/{id}");
    assert!(csv.contains(&url), "the export carries the URL: {csv}");
    let day = "from=2024-01-01T00:00:00Z&to=2024-01-02T00:00:00Z";
    let gallery = text_of(&env, &format!("/t/acme/p/gallery/fragment?{day}")).await;
    assert!(
        gallery.contains("<ul class=\"gallery\">") && !gallery.contains("<table>"),
        "{gallery}"
    );
    assert!(
        gallery.contains(&format!(
            "{id}?thumbnail=1\" loading=\"lazy\" alt=\"back · person\""
        )),
        "{gallery}"
    );
    assert!(
        gallery.contains("<span class=\"caption\">back · person</span>"),
        "{gallery}"
    );
    env.server.stop().await;
}

/// `?thumbnail=1`: a JPEG at most 320 px on its long side, made once and kept; a picture that
/// claims to be 100,000 px square is refused (422) without taking the memory; a PDF shows as
/// an icon of its kind.
#[tokio::test]
async fn thumbnails_are_small_kept_and_refuse_decompression_bombs() {
    let env = Env::start(Db::Sqlite, "thumbnails", |_| {})
        .await
        .expect("sqlite");
    let (_, key) = env.key(Some("acme"), "ingest,read").await;
    let client = common::client_with_key(&key);
    let (status, wide) = upload(
        &env,
        &key,
        "acme",
        "image/png",
        png_sized(90, 1000, 500),
        "",
    )
    .await;
    assert_eq!(status, 201, "{wide}");
    let url = env.url(&format!("{}?thumbnail=1", wide["url"].as_str().unwrap()));
    for round in ["made", "kept"] {
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{round}");
        assert_eq!(response.headers()["content-type"], "image/jpeg");
        let small = image::load_from_memory(&response.bytes().await.unwrap()).unwrap();
        assert_eq!((small.width(), small.height()), (320, 160), "{round}");
        assert_eq!(
            stored_objects(&env, "acme"),
            3,
            "bytes, info and one thumbnail"
        );
    }
    let (status, bomb) = upload(
        &env,
        &key,
        "acme",
        "image/png",
        decompression_bomb(100_000),
        "",
    )
    .await;
    assert_eq!(status, 201, "its first bytes are a PNG's: {bomb}");
    let response = client
        .get(env.url(&format!("{}?thumbnail=1", bomb["url"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let (status, pdf) = upload(
        &env,
        &key,
        "acme",
        "application/pdf",
        b"%PDF-1.4\n%%EOF\n".to_vec(),
        "",
    )
    .await;
    assert_eq!(status, 201, "{pdf}");
    let response = client
        .get(env.url(&format!("{}?thumbnail=1", pdf["url"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/svg+xml");
    assert!(
        response.text().await.unwrap().contains(">PDF</text>"),
        "a PDF shows as its kind"
    );
    let (status, health) = env.server.get("/healthz").await;
    assert_eq!(status, 200, "still serving: {health}");
    env.server.stop().await;
}
