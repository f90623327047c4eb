//! A throwaway PostgreSQL cluster from the machine's binaries (`/usr/lib/postgresql/15/bin`, or
//! `PG_BIN`): initdb + pg_ctl in a temp dir, one cluster per test process, one new database per
//! test. initdb refuses to run as root, so as root the cluster runs as the `postgres` user. A
//! watchdog shell stops the cluster and removes its folder when the test process exits,
//! however it exits.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::Connection;

fn bin_dir() -> PathBuf {
    std::env::var("PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

/// Why PostgreSQL tests cannot run here, if they cannot.
pub fn unavailable() -> Option<String> {
    let initdb = bin_dir().join("initdb");
    (!initdb.exists()).then(|| format!("no {} (install postgresql-15)", initdb.display()))
}

/// Skips (or, with `OPSBOARD_PG=required` as in CI, fails) when PostgreSQL is missing.
pub fn skip_unless_available(test: &str) -> bool {
    match unavailable() {
        None => false,
        Some(why) if std::env::var("OPSBOARD_PG").as_deref() == Ok("required") => {
            panic!("{test}: PostgreSQL required but {why}")
        }
        Some(why) => {
            eprintln!("SKIPPED {test} on PostgreSQL: {why}");
            true
        }
    }
}

struct Cluster {
    port: u16,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a PostgreSQL program, as `postgres` when we are root.
fn pg_command(program: &str) -> Command {
    let path = bin_dir().join(program);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

fn start() -> Result<Cluster, String> {
    let dir = tempfile::Builder::new()
        .prefix("opsboard-pg-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    if is_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err("cannot chown the cluster folder to postgres".into());
        }
    }
    let data = dir.join("data");
    let out = pg_command("initdb")
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=200",
        dir.display()
    );
    let out = pg_command("pg_ctl")
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(dir.join("log"))
        .args(["-o", &options, "-w", "start"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("pg_ctl: {e}"))?;
    if !out.status.success() {
        let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
        return Err(format!(
            "pg_ctl start failed: {}{log}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stop = if is_root() {
        "runuser -u postgres -- "
    } else {
        ""
    };
    super::after_exit(&format!(
        "{stop}{pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
        pg_ctl = bin_dir().join("pg_ctl").display(),
        data = data.display(),
        dir = dir.display(),
    ))?;
    Ok(Cluster { port })
}

/// A URL to a new, empty database on the shared cluster.
pub async fn fresh_database() -> String {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let cluster = CLUSTER
        .get_or_init(start)
        .as_ref()
        .unwrap_or_else(|e| panic!("PostgreSQL test cluster: {e}"));
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to the test cluster");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create database");
    format!("postgres://postgres@127.0.0.1:{}/{name}", cluster.port)
}
