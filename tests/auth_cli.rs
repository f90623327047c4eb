//! `opsboard user …` / `opsboard apikey …` on the real binary, and a server run at debug log
//! level: no password, key or session token may show up in its logs or in the audit log.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::TestDirs;
use common::session::Browser;

fn opsboard(dirs: &TestDirs, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_opsboard"))
        .args(args)
        .arg("--data-dir")
        .arg(dirs.data())
        .arg("--tenants-dir")
        .arg(dirs.tenants())
        .current_dir(dirs.root.path())
        .env("OPSBOARD_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn users_and_keys_from_the_command_line_and_no_secret_in_logs() {
    let dirs = TestDirs::new(&["acme"]);
    let mut logs = String::new();
    let password = "s3cret-password-for-root";

    let (code, out, err) = opsboard(
        &dirs,
        &[
            "user",
            "create",
            "--email",
            "Root@Ops.test",
            "--admin",
            "--password-stdin",
        ],
        Some(&format!("{password}\n")),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out, "",
        "nothing on stdout when the password came from stdin"
    );
    logs += &err;
    let (code, out, err) = opsboard(&dirs, &["user", "create", "--email", "gen@acme.test"], None);
    assert_eq!(code, 0, "{err}");
    let generated = out.trim().to_string();
    assert_eq!(generated.len(), 16, "{out}");
    logs += &err;
    let (code, _, err) = opsboard(&dirs, &["user", "create", "--email", "gen@acme.test"], None);
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = opsboard(
        &dirs,
        &[
            "user",
            "grant",
            "--email",
            "gen@acme.test",
            "--tenant",
            "acme",
            "--role",
            "editor",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = opsboard(
        &dirs,
        &[
            "user",
            "grant",
            "--email",
            "gen@acme.test",
            "--tenant",
            "nope",
            "--role",
            "editor",
        ],
        None,
    );
    assert_eq!(code, 1);
    assert!(err.contains("no tenant nope"), "{err}");
    let (code, _, err) = opsboard(
        &dirs,
        &[
            "user",
            "grant",
            "--email",
            "gen@acme.test",
            "--tenant",
            "acme",
            "--role",
            "owner",
        ],
        None,
    );
    assert_eq!(code, 1);
    assert!(err.contains("unknown role"), "{err}");
    let (_, out, _) = opsboard(&dirs, &["user", "list"], None);
    assert!(
        out.contains("root@ops.test") && out.contains("acme:editor"),
        "{out}"
    );

    // The key alone on stdout, once.
    let (code, out, err) = opsboard(
        &dirs,
        &[
            "apikey",
            "create",
            "--tenant",
            "acme",
            "--scope",
            "ingest,read",
            "--expires",
            "90d",
            "--name",
            "agent",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1);
    let key = out.trim().to_string();
    assert!(key.starts_with("opsb_") && key.len() == 74, "{key}");
    let id = key[5..17].to_string();
    logs += &err;
    let (code, _, err) = opsboard(
        &dirs,
        &[
            "apikey",
            "create",
            "--tenant",
            "acme",
            "--scope",
            "read,write",
        ],
        None,
    );
    assert_eq!(code, 1);
    assert!(err.contains("unknown scope \"write\""), "{err}");
    let (_, list, _) = opsboard(&dirs, &["apikey", "list"], None);
    assert!(
        list.contains(&id) && list.contains("ingest,read") && !list.contains(&key[17..]),
        "{list}"
    );

    // A server at debug level, used with the password, the key and a session.
    let mut server = Command::new(env!("CARGO_BIN_EXE_opsboard"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dirs.data())
        .arg("--tenants-dir")
        .arg(dirs.tenants())
        .current_dir(dirs.root.path())
        .env("OPSBOARD_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    let browser = Browser::new(&url);
    assert_eq!(
        browser
            .login("root@ops.test", "wrong-password-xyz")
            .await
            .status(),
        401
    );
    assert_eq!(browser.login("root@ops.test", password).await.status(), 303);
    assert_eq!(browser.get("/t/acme").await.status(), 200);
    let client = reqwest::Client::new();
    let write = || {
        client
            .post(format!("{url}/api/v1/tenants/acme/write/metrics"))
            .bearer_auth(&key)
            .header("content-type", "application/x-ndjson")
            .body("{\"time\":\"2024-01-01T00:00:00Z\",\"host\":\"a\",\"cpu\":1}\n")
            .send()
    };
    assert_eq!(write().await.unwrap().status(), 200);
    // Revoked from the command line while the server runs: refused at once.
    let (code, _, err) = opsboard(&dirs, &["apikey", "revoke", &id], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(write().await.unwrap().status(), 401);
    let audit = browser
        .get("/admin/audit?format=csv")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        audit.contains("apikey.revoke") && audit.contains("login"),
        "{audit}"
    );
    let _ = Command::new("kill").arg(server.id().to_string()).status();
    let out = server.wait_with_output().unwrap();
    logs += &String::from_utf8_lossy(&out.stderr);
    assert!(
        logs.contains("DEBUG") || logs.contains("INFO"),
        "the logs were captured"
    );

    let session = browser.session_token().expect("signed in");
    assert_eq!(session.len(), 64);
    for (name, secret) in [
        ("password", password),
        ("generated password", generated.as_str()),
        ("key secret", &key[17..]),
        ("session token", session.as_str()),
    ] {
        assert!(!secret.is_empty());
        assert!(!logs.contains(secret), "{name} in the logs");
        assert!(!audit.contains(secret), "{name} in the audit log");
    }
    let db = std::fs::read(dirs.data().join("opsboard.db")).unwrap();
    let db = String::from_utf8_lossy(&db);
    assert!(
        !db.contains(password) && !db.contains(&key[17..]),
        "secrets are stored hashed"
    );
}
