//! The `opsboard` command line: parse arguments, set up logging, call into the library.

mod cli_auth;
mod cli_generate;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use opsboard::config::ServerConfig;
use opsboard::ingest::{self, Format, Precision};
use opsboard::query::QueryEngine;
use opsboard::render::ExportFormat;
use opsboard::server::{ServeOptions, serve};
use opsboard::storage::{OpenMode, Store};

#[derive(Parser)]
#[command(
    name = "opsboard",
    version,
    about = "Multi-tenant, time-series-first observability server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where config and data live; shared by every subcommand that touches the store.
#[derive(Args, Clone)]
struct Common {
    /// Server config file (default config/opsboard.yaml; missing = embedded defaults).
    #[arg(long, env = "OPSBOARD_CONFIG")]
    config: Option<PathBuf>,
    /// Data dir: WAL, Parquet objects, catalog (overrides the config file).
    #[arg(long, env = "OPSBOARD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Tenants dir: one folder per tenant (overrides the config file).
    #[arg(long, env = "OPSBOARD_TENANTS_DIR")]
    tenants_dir: Option<PathBuf>,
    /// Central database: sqlite://… or postgres://… (overrides the config file).
    #[arg(long, env = "OPSBOARD_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Where Parquet files and catalogs live: file, file:///abs/dir or s3://bucket/prefix
    /// (overrides the config file; S3 settings from the standard AWS_* variables).
    #[arg(long, env = "OPSBOARD_OBJECT_STORE")]
    object_store: Option<String>,
}

impl Common {
    fn load(&self) -> Result<ServerConfig> {
        let (path, explicit) = match &self.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from("config/opsboard.yaml"), false),
        };
        let mut config = ServerConfig::load(&path, explicit)?;
        if let Some(d) = &self.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(d) = &self.tenants_dir {
            config.tenants_dir = d.clone();
        }
        if let Some(url) = &self.database_url {
            config.database_url = Some(url.clone());
        }
        if let Some(url) = &self.object_store {
            config.storage.object_store = url.clone();
        }
        Ok(config)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve {
        #[command(flatten)]
        common: Common,
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, env = "OPSBOARD_LISTEN")]
        listen: Option<String>,
        /// Create the `demo` tenant, backfill a week of data and keep writing live rows.
        #[arg(long, env = "OPSBOARD_DEMO")]
        demo: bool,
        /// This node's name among several sharing one database (`cluster.node_id`).
        #[arg(long, env = "OPSBOARD_NODE_ID")]
        node_id: Option<String>,
    },
    /// Check configuration; prints `path:line:col: message` per problem, exits 1 if any.
    Validate {
        /// Repository roots, tenants folders, tenant folders or files (default: `.`).
        dirs: Vec<PathBuf>,
    },
    /// Load an NDJSON, CSV or Parquet file into a table (the server must not be running).
    Ingest {
        #[command(flatten)]
        common: Common,
        #[arg(long, env = "OPSBOARD_TENANT")]
        tenant: String,
        #[arg(long, env = "OPSBOARD_TABLE")]
        table: String,
        /// Unit of integer `time` values in NDJSON/CSV: s, ms, us or ns.
        #[arg(long, env = "OPSBOARD_PRECISION", default_value = "ms")]
        precision: String,
        file: PathBuf,
    },
    /// Run read-only SQL against a tenant's tables in the data dir.
    Query {
        #[command(flatten)]
        common: Common,
        #[arg(long, env = "OPSBOARD_TENANT")]
        tenant: String,
        /// table (pretty), csv, json, ndjson, parquet or arrow.
        #[arg(long, env = "OPSBOARD_FORMAT", default_value = "table")]
        format: String,
        sql: String,
    },
    /// Manage users: create, grant a tenant role, list.
    User {
        #[command(subcommand)]
        command: cli_auth::UserCommand,
    },
    /// Manage API keys: create (prints the key once), revoke, list.
    Apikey {
        #[command(subcommand)]
        command: cli_auth::KeyCommand,
    },
    /// Generate synthetic data.
    Generate {
        #[command(subcommand)]
        dataset: cli_generate::Dataset,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OPSBOARD_LOG")
                .unwrap_or_else(|_| "opsboard=info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve {
                common,
                listen,
                demo,
                node_id,
            } => run_serve(common, listen, demo, node_id).await,
            Command::Validate { dirs } => run_validate(dirs),
            Command::User { command } => cli_auth::run_user(command).await,
            Command::Apikey { command } => cli_auth::run_key(command).await,
            Command::Ingest {
                common,
                tenant,
                table,
                precision,
                file,
            } => run_ingest(common, &tenant, &table, &precision, &file).await,
            Command::Query {
                common,
                tenant,
                format,
                sql,
            } => run_query(common, &tenant, &format, &sql).await,
            Command::Generate { dataset } => cli_generate::run(dataset).await,
        }
    })
}

async fn run_serve(
    common: Common,
    listen: Option<String>,
    demo: bool,
    node_id: Option<String>,
) -> Result<()> {
    let mut config = common.load()?;
    if let Some(l) = listen {
        config.listen = l;
    }
    if node_id.is_some() {
        config.cluster.node_id = node_id;
    }
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    // Scripts (and the crash tests) read this line to find a port chosen with :0.
    println!("opsboard listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let options = ServeOptions {
        demo,
        ..Default::default()
    };
    serve(config, listener, options, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested");
}

fn run_validate(paths: Vec<PathBuf>) -> Result<()> {
    let paths = if paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        paths
    };
    let registry = opsboard::panels::Registry::builtin();
    let functions = opsboard::config::Functions {
        image: &registry.image_names(),
        data: &registry.data_names(),
    };
    let (tenants, problems) = opsboard::check::validate_paths(&paths, functions);
    for p in &problems {
        println!("{p}");
    }
    if !problems.is_empty() {
        eprintln!("{} problem(s)", problems.len());
        std::process::exit(1);
    }
    eprintln!("{tenants} tenant(s) checked, no problems");
    Ok(())
}

async fn open_store(common: &Common, mode: OpenMode) -> Result<(ServerConfig, Arc<Store>)> {
    let config = common.load()?;
    let mut storage = config.storage.clone();
    if mode == OpenMode::ReadWrite {
        // A command that writes persists everything before it returns: a local WAL in its own
        // (locked) data dir covers it, and no other node has to adopt its rows.
        storage.wal = opsboard::config::WalPlacement::Local;
    }
    let store = Store::open(storage, &config.data_dir, &config.tenants_dir, mode).await?;
    opsboard::live::apply_tenant_settings(&store).await?;
    Ok((config, store))
}

async fn run_ingest(
    common: Common,
    tenant: &str,
    table: &str,
    precision: &str,
    file: &Path,
) -> Result<()> {
    let (config, store) = open_store(&common, OpenMode::ReadWrite).await?;
    let tenant = store.tenant(tenant).await?;
    let precision: Precision = precision.parse()?;
    let bytes = std::fs::metadata(file)
        .with_context(|| format!("{}", file.display()))?
        .len();
    let bar =
        indicatif::ProgressBar::new(bytes).with_style(indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
        )?);
    // Decode everything first: a bad line anywhere means nothing is written.
    let mut write = ingest::Write::to(tenant.clone(), table, (&config.ingest).into())?;
    let is_parquet = file.extension().is_some_and(|e| e == "parquet");
    if is_parquet {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(file)?,
        )?
        .build()?;
        for batch in reader {
            write.arrow(&batch?)?;
        }
        bar.set_position(bytes);
    } else {
        let format = Format::from_extension(file)
            .filter(|f| *f != Format::Json)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: use a .ndjson, .jsonl, .csv or .parquet file",
                    file.display()
                )
            })?;
        let text = std::fs::read(file)?;
        let chunks = split_lines(&text, format, 50_000);
        for (first_line, chunk) in chunks {
            write
                .decode(format, &chunk.body, precision)
                .map_err(|e| relocate(e, file, first_line))?;
            bar.inc(chunk.source_len as u64);
        }
    }
    bar.set_message("writing");
    let rows = write.validated().append().await?;
    tenant.persist_all().await?;
    bar.finish_with_message(format!("{rows} rows written to {}/{table}", tenant.name));
    Ok(())
}

struct Chunk {
    body: Vec<u8>,
    source_len: usize,
}

/// Splits a body into chunks of whole lines (CSV chunks each get the header), remembering the
/// file line each chunk starts at.
fn split_lines(text: &[u8], format: Format, lines_per_chunk: usize) -> Vec<(usize, Chunk)> {
    let mut lines = text.split_inclusive(|b| *b == b'\n');
    let header: Vec<u8> = match format {
        Format::Csv => lines.next().map(<[u8]>::to_vec).unwrap_or_default(),
        _ => vec![],
    };
    let mut chunks = vec![];
    let mut line_no = if header.is_empty() { 1 } else { 2 };
    loop {
        let part: Vec<&[u8]> = lines.by_ref().take(lines_per_chunk).collect();
        if part.is_empty() {
            break;
        }
        let source_len: usize = part.iter().map(|l| l.len()).sum();
        let mut body = header.clone();
        part.iter().for_each(|l| body.extend_from_slice(l));
        chunks.push((line_no, Chunk { body, source_len }));
        line_no += part.len();
    }
    chunks
}

/// Rewrites chunk-relative line numbers into `file:line` of the whole file.
fn relocate(e: ingest::IngestError, file: &Path, first_line: usize) -> anyhow::Error {
    match e {
        ingest::IngestError::InvalidLines { details, total } => {
            let header_lines =
                usize::from(first_line > 1 && file.extension().is_some_and(|e| e == "csv"));
            let mut msg = format!("{total} invalid line(s); nothing was written\n");
            for d in details {
                let line = d.line + first_line - 1 - header_lines;
                msg.push_str(&format!("{}:{line}: {}\n", file.display(), d.message));
            }
            anyhow::anyhow!(msg)
        }
        other => other.into(),
    }
}

async fn run_query(common: Common, tenant: &str, format: &str, sql: &str) -> Result<()> {
    let (config, store) = open_store(&common, OpenMode::ReadOnly).await?;
    let tenant = store.tenant(tenant).await?;
    let engine = QueryEngine::new(config.query.clone());
    let output = engine.execute(&tenant, sql).await?;
    let mut stream = output.stream;
    let mut stdout = std::io::stdout().lock();
    if format == "table" {
        // A pretty table needs every row to size its columns.
        let mut batches = vec![];
        while let Some(batch) = futures::StreamExt::next(&mut stream).await {
            batches.push(batch?);
        }
        writeln!(
            stdout,
            "{}",
            arrow::util::pretty::pretty_format_batches(&batches)?
        )?;
        return Ok(());
    }
    // Machine formats stream batch by batch, so exports of any size run in flat memory.
    let format: ExportFormat = format.parse()?;
    let mut encoder = format.encoder(&output.schema)?;
    while let Some(batch) = futures::StreamExt::next(&mut stream).await {
        stdout.write_all(&encoder.batch(&batch?)?)?;
    }
    stdout.write_all(&encoder.finish()?)?;
    Ok(())
}
