//! `opsboard generate`: synthetic data — TSBS cpu-only rows (to a file or into a tenant), the
//! demo tenant's history, and each seed tenant's (pimeet, kraliki, pfcam, omendb) — written
//! with the server stopped.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use opsboard::config::HumanDuration;
use opsboard::generate::CpuGenerator;
use opsboard::storage::OpenMode;

use crate::{Common, open_store};

#[derive(Subcommand)]
pub enum Dataset {
    /// The TSBS cpu-only data set: 10 tags and 10 usage_* fields per host and interval.
    TsbsCpu {
        #[command(flatten)]
        common: Common,
        #[arg(long, env = "OPSBOARD_HOSTS", default_value_t = 10)]
        hosts: usize,
        /// First timestamp, RFC 3339.
        #[arg(long, env = "OPSBOARD_START", default_value = "2024-01-01T00:00:00Z")]
        start: String,
        #[arg(long, env = "OPSBOARD_DURATION", default_value = "1d")]
        duration: HumanDuration,
        #[arg(long, env = "OPSBOARD_INTERVAL", default_value = "10s")]
        interval: HumanDuration,
        #[arg(long, env = "OPSBOARD_SEED", default_value_t = 1)]
        seed: u64,
        /// Write NDJSON here (`-` for stdout)...
        #[arg(long, env = "OPSBOARD_OUT", conflicts_with = "tenant")]
        out: Option<PathBuf>,
        /// ...or straight into this tenant's `cpu` table.
        #[arg(long, env = "OPSBOARD_TENANT")]
        tenant: Option<String>,
    },
    /// The demo tables (cpu, metrics, service_health, error_logs) ending now, into a tenant.
    Demo {
        #[command(flatten)]
        common: Common,
        #[arg(long, env = "OPSBOARD_TENANT", default_value = "demo")]
        tenant: String,
        #[arg(long, env = "OPSBOARD_DURATION", default_value = "7d")]
        duration: HumanDuration,
        #[arg(long, env = "OPSBOARD_SEED", default_value_t = 42)]
        seed: u64,
    },
    /// Seed 000's device fleet (tables devices, device_logs) ending now, into a tenant.
    Pimeet {
        #[command(flatten)]
        common: Common,
        #[arg(long, env = "OPSBOARD_TENANT", default_value = "pimeet")]
        tenant: String,
        #[arg(long, default_value_t = opsboard::demo::pimeet::DEVICES)]
        devices: usize,
        #[arg(long, env = "OPSBOARD_DURATION", default_value = "7d")]
        duration: HumanDuration,
        #[arg(long, env = "OPSBOARD_SEED", default_value_t = 7)]
        seed: u64,
    },
    /// Seed 004's VM fleet and billing (tables vms, billing) ending now, into a tenant.
    Kraliki {
        #[command(flatten)]
        common: Common,
        #[arg(long, env = "OPSBOARD_TENANT", default_value = "kraliki")]
        tenant: String,
        #[arg(long, default_value_t = opsboard::demo::kraliki::VMS)]
        vms: usize,
        #[arg(long, default_value_t = opsboard::demo::kraliki::CUSTOMERS)]
        customers: usize,
        #[arg(long, env = "OPSBOARD_DURATION", default_value = "7d")]
        duration: HumanDuration,
        #[arg(long, env = "OPSBOARD_SEED", default_value_t = 11)]
        seed: u64,
    },
    /// Seed 001's cameras and their events with snapshots (tables cameras, events) ending
    /// now, into a tenant.
    Pfcam {
        #[command(flatten)]
        common: Common,
        #[arg(long, env = "OPSBOARD_TENANT", default_value = "pfcam")]
        tenant: String,
        #[arg(long, default_value_t = opsboard::demo::pfcam::CAMERAS)]
        cameras: usize,
        #[arg(long, env = "OPSBOARD_DURATION", default_value = "7d")]
        duration: HumanDuration,
        #[arg(long, env = "OPSBOARD_SEED", default_value_t = 5)]
        seed: u64,
    },
    /// Seed 002's per-customer usage, services, sign-ins and price table (tables usage,
    /// services, logins, prices) ending now, into a tenant.
    Omendb {
        #[command(flatten)]
        common: Common,
        #[arg(long, env = "OPSBOARD_TENANT", default_value = "omendb")]
        tenant: String,
        #[arg(long, default_value_t = opsboard::demo::omendb::CUSTOMERS)]
        customers: usize,
        #[arg(long, env = "OPSBOARD_DURATION", default_value = "7d")]
        duration: HumanDuration,
        #[arg(long, env = "OPSBOARD_SEED", default_value_t = 13)]
        seed: u64,
    },
}

/// Writes the chosen dataset.
pub async fn run(dataset: Dataset) -> Result<()> {
    match dataset {
        Dataset::TsbsCpu {
            common,
            hosts,
            start,
            duration,
            interval,
            seed,
            out,
            tenant,
        } => run_generate(common, hosts, &start, duration, interval, seed, out, tenant).await,
        Dataset::Demo {
            common,
            tenant,
            duration,
            seed,
        } => {
            let (tenant, now) = generation_target(&common, &tenant).await?;
            let rows = opsboard::demo::fill_history(&tenant, now, duration.0, seed).await?;
            written(rows, &tenant)
        }
        Dataset::Pimeet {
            common,
            tenant,
            devices,
            duration,
            seed,
        } => {
            let (tenant, now) = generation_target(&common, &tenant).await?;
            let rows =
                opsboard::demo::seeds::fill_pimeet(&tenant, now, duration.0, devices, seed).await?;
            written(rows, &tenant)
        }
        Dataset::Kraliki {
            common,
            tenant,
            vms,
            customers,
            duration,
            seed,
        } => {
            if customers == 0 {
                anyhow::bail!("--customers must be at least 1");
            }
            let (tenant, now) = generation_target(&common, &tenant).await?;
            let rows =
                opsboard::demo::seeds::fill_kraliki(&tenant, now, duration.0, vms, customers, seed)
                    .await?;
            written(rows, &tenant)
        }
        Dataset::Pfcam {
            common,
            tenant,
            cameras,
            duration,
            seed,
        } => {
            let (tenant, now) = generation_target(&common, &tenant).await?;
            let rows =
                opsboard::demo::seeds::fill_pfcam(&tenant, now, duration.0, cameras, seed).await?;
            written(rows, &tenant)
        }
        Dataset::Omendb {
            common,
            tenant,
            customers,
            duration,
            seed,
        } => {
            let (tenant, now) = generation_target(&common, &tenant).await?;
            let rows =
                opsboard::demo::seeds::fill_omendb(&tenant, now, duration.0, customers, seed)
                    .await?;
            written(rows, &tenant)
        }
    }
}

/// The tenant generated data goes into (the server stopped), and now in epoch ns.
async fn generation_target(
    common: &Common,
    tenant: &str,
) -> Result<(std::sync::Arc<opsboard::storage::TenantStore>, i64)> {
    let (_, store) = open_store(common, OpenMode::ReadWrite).await?;
    let tenant = store.tenant(tenant).await?;
    Ok((
        tenant,
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
    ))
}

fn written(rows: u64, tenant: &opsboard::storage::TenantStore) -> Result<()> {
    eprintln!("{rows} rows written to tenant {}", tenant.name);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn run_generate(
    common: Common,
    hosts: usize,
    start: &str,
    duration: HumanDuration,
    interval: HumanDuration,
    seed: u64,
    out: Option<PathBuf>,
    tenant: Option<String>,
) -> Result<()> {
    let start = chrono::DateTime::parse_from_rfc3339(start)
        .with_context(|| format!("--start {start:?} is not RFC 3339"))?
        .timestamp_nanos_opt()
        .context("--start out of range")?;
    let step = interval.0.as_nanos() as i64;
    if step <= 0 {
        bail!("--interval must be positive");
    }
    let end = start + duration.0.as_nanos() as i64;
    let times: Vec<i64> = (start..end).step_by(step as usize).collect();
    let mut generator = CpuGenerator::new(hosts, seed);
    // About 100k rows per batch whatever the host count.
    let per_batch = (100_000 / hosts.max(1)).max(1);
    match (out, tenant) {
        (_, Some(tenant)) => {
            let (_, store) = open_store(&common, OpenMode::ReadWrite).await?;
            let tenant = store.tenant(&tenant).await?;
            let bar = indicatif::ProgressBar::new(times.len() as u64);
            for chunk in times.chunks(per_batch) {
                tenant.write("cpu", generator.batch(chunk)).await?;
                bar.inc(chunk.len() as u64);
            }
            tenant.persist_all().await?;
            bar.finish_with_message("done");
            eprintln!(
                "{} rows written to {}/cpu",
                times.len() * hosts,
                tenant.name
            );
        }
        (out, None) => {
            let mut sink: Box<dyn Write> = match out.as_deref() {
                None => Box::new(std::io::stdout().lock()),
                Some(p) if p == Path::new("-") => Box::new(std::io::stdout().lock()),
                Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p)?)),
            };
            let mut buf = vec![];
            for chunk in times.chunks(per_batch) {
                buf.clear();
                generator.ndjson(chunk, &mut buf);
                sink.write_all(&buf)?;
            }
            sink.flush()?;
        }
    }
    Ok(())
}
