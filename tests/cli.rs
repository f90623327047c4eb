//! The command line end to end: generate → ingest → query, validate, and errors with places.

mod common;

use std::process::{Command, Output};

use common::TestDirs;

fn opsboard(dirs: &TestDirs, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opsboard"))
        .args(args)
        .env("OPSBOARD_DATA_DIR", dirs.data())
        .env("OPSBOARD_TENANTS_DIR", dirs.tenants())
        .current_dir(dirs.root.path())
        .output()
        .expect("run opsboard")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// 3 hosts × 6 ten-minute steps of TSBS cpu rows, seed 4.
fn generate_small(dirs: &TestDirs, out: &str) -> Output {
    let args = "generate tsbs-cpu --hosts 3 --duration 1h --interval 10m --seed 4 --out";
    let mut args: Vec<&str> = args.split(' ').collect();
    args.push(out);
    opsboard(dirs, &args)
}

#[test]
fn generate_ingest_query() {
    let dirs = TestDirs::new(&["acme"]);
    let file = dirs.root.path().join("cpu.ndjson");
    let file = file.to_str().unwrap();
    let out = generate_small(&dirs, file);
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(file).unwrap();
    assert_eq!(text.lines().count(), 18);
    assert!(
        text.contains("\"hostname\":\"host_2\"") && text.contains("usage_guest_nice"),
        "{}",
        &text[..300]
    );

    let out = opsboard(
        &dirs,
        &["ingest", "--tenant", "acme", "--table", "cpu", file],
    );
    assert!(out.status.success(), "{out:?}");
    let out = opsboard(
        &dirs,
        &[
            "query",
            "--tenant",
            "acme",
            "--format",
            "csv",
            "SELECT hostname, count(*) AS n FROM cpu GROUP BY hostname ORDER BY hostname",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "hostname,n\nhost_0,6\nhost_1,6\nhost_2,6\n");
    let out = opsboard(
        &dirs,
        &["query", "--tenant", "acme", "SELECT count(*) AS n FROM cpu"],
    );
    assert!(stdout(&out).contains("| 18 |"), "{}", stdout(&out));
    // Ingest ran to completion, so its rows are in Parquet.
    assert_eq!(dirs.parquet_files("acme", "cpu").len(), 1);

    // The same seed gives the same data.
    let again = dirs.root.path().join("again.ndjson");
    generate_small(&dirs, again.to_str().unwrap());
    assert_eq!(std::fs::read_to_string(&again).unwrap(), text);
}

#[test]
fn ingest_error_names_file_and_line_and_writes_nothing() {
    let dirs = TestDirs::new(&["acme"]);
    let file = dirs.root.path().join("bad.csv");
    std::fs::write(&file, "time,host,v\n1,a,1\n2,b,oops\n").unwrap();
    let out = opsboard(
        &dirs,
        &[
            "ingest",
            "--tenant",
            "acme",
            "--table",
            "t",
            file.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:3:", file.display())), "{err}");
    let out = opsboard(&dirs, &["query", "--tenant", "acme", "SELECT * FROM t"]);
    assert!(
        !out.status.success(),
        "the table must not exist: {}",
        stdout(&out)
    );
}

#[test]
fn validate_reports_path_line_column() {
    let dirs = TestDirs::new(&["acme"]);
    let yaml = dirs.tenants().join("acme/tenant.yaml");
    std::fs::write(&yaml, "tables:\n  cpu:\n    tagz: [host]\n").unwrap();
    let out = opsboard(&dirs, &["validate", dirs.tenants().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with(&format!("{}:3:5: ", yaml.display())),
        "{}",
        stdout(&out)
    );
    std::fs::write(&yaml, "tables:\n  cpu:\n    tags: [host]\n").unwrap();
    // Every tenant needs a default dashboard.
    let out = opsboard(&dirs, &["validate", dirs.tenants().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("dashboards/default.yaml:1:1: missing"),
        "{}",
        stdout(&out)
    );
    let dashboards = dirs.tenants().join("acme/dashboards");
    std::fs::create_dir_all(&dashboards).unwrap();
    std::fs::write(
        dashboards.join("default.yaml"),
        "dashboard:\n  name: Acme\n",
    )
    .unwrap();
    let out = opsboard(&dirs, &["validate", dirs.tenants().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // The shipped configuration is valid.
    let repo = env!("CARGO_MANIFEST_DIR");
    let out = opsboard(&dirs, &["validate", repo]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn generate_demo_fills_the_demo_tables() {
    let dirs = TestDirs::new(&["demo"]);
    let repo = env!("CARGO_MANIFEST_DIR");
    std::fs::copy(
        format!("{repo}/tenants/demo/tenant.yaml"),
        dirs.tenants().join("demo/tenant.yaml"),
    )
    .unwrap();
    let out = opsboard(&dirs, &["generate", "demo", "--duration", "1d"]);
    assert!(out.status.success(), "{out:?}");
    for (table, at_least) in [
        ("cpu", 2_880),
        ("metrics", 1_440),
        ("service_health", 1_000),
        ("error_logs", 10),
    ] {
        let out = opsboard(
            &dirs,
            &[
                "query",
                "--tenant",
                "demo",
                "--format",
                "csv",
                &format!("SELECT count(*) AS n FROM {table}"),
            ],
        );
        assert!(out.status.success(), "{out:?}");
        let n: i64 = stdout(&out).lines().nth(1).unwrap().trim().parse().unwrap();
        assert!(n >= at_least, "{table}: {n} rows");
    }
}

/// The seed generators: sizes from flags, one row per unit per minute, the tenant's declared
/// types kept; `--customers 0` is refused.
#[test]
fn generate_seed_tenants_at_the_sizes_asked() {
    let dirs = TestDirs::new(&["pimeet", "kraliki"]);
    let repo = env!("CARGO_MANIFEST_DIR");
    for tenant in ["pimeet", "kraliki"] {
        std::fs::copy(
            format!("{repo}/tenants/{tenant}/tenant.yaml"),
            dirs.tenants().join(format!("{tenant}/tenant.yaml")),
        )
        .unwrap();
    }
    let count = |tenant: &str, sql: &str| -> i64 {
        let out = opsboard(
            &dirs,
            &["query", "--tenant", tenant, "--format", "csv", sql],
        );
        assert!(out.status.success(), "{out:?}");
        stdout(&out).lines().nth(1).unwrap().trim().parse().unwrap()
    };
    let args = [
        "generate",
        "kraliki",
        "--vms",
        "5",
        "--customers",
        "2",
        "--duration",
        "1h",
    ];
    assert!(opsboard(&dirs, &args).status.success());
    assert_eq!(count("kraliki", "SELECT count(*) FROM vms"), 5 * 60);
    assert_eq!(count("kraliki", "SELECT count(DISTINCT vm) FROM vms"), 5);
    assert_eq!(count("kraliki", "SELECT count(*) FROM billing"), 2 * 60);
    let args = ["generate", "pimeet", "--devices", "4", "--duration", "1h"];
    assert!(opsboard(&dirs, &args).status.success());
    assert_eq!(
        count("pimeet", "SELECT count(DISTINCT device) FROM devices"),
        4
    );
    assert_eq!(count("pimeet", "SELECT count(*) FROM devices"), 4 * 60);
    let refused = opsboard(&dirs, &["generate", "kraliki", "--customers", "0"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--customers"),
        "{refused:?}"
    );
}
