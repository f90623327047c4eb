//! The central database (users, sessions, keys, audit log, alert state): one sqlx `Any` pool over SQLite (default, a file in the data dir) or
//! PostgreSQL, and the migrations in `migrations/<backend>/`, applied in order at start.
//!
//! Queries are written once for both backends: `$n` placeholders in order, 0/1 integers for
//! flags, epoch milliseconds for times, `ON CONFLICT` upserts and `RETURNING`.

use std::path::Path;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Open(String),
    #[error("migration {version:04}_{name}: {source}")]
    Migration {
        version: i64,
        name: &'static str,
        source: sqlx::Error,
    },
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "auth",
        sqlite: include_str!("../migrations/sqlite/0001_auth.sql"),
        postgres: include_str!("../migrations/postgres/0001_auth.sql"),
    },
    Migration {
        version: 2,
        name: "alerts",
        sqlite: include_str!("../migrations/sqlite/0002_alerts.sql"),
        postgres: include_str!("../migrations/postgres/0002_alerts.sql"),
    },
    Migration {
        version: 3,
        name: "totp_last_step",
        sqlite: include_str!("../migrations/sqlite/0003_totp_last_step.sql"),
        postgres: include_str!("../migrations/postgres/0003_totp_last_step.sql"),
    },
    Migration {
        version: 4,
        name: "events",
        sqlite: include_str!("../migrations/sqlite/0004_events.sql"),
        postgres: include_str!("../migrations/postgres/0004_events.sql"),
    },
    Migration {
        version: 5,
        name: "leases",
        sqlite: include_str!("../migrations/sqlite/0005_leases.sql"),
        postgres: include_str!("../migrations/postgres/0005_leases.sql"),
    },
    Migration {
        version: 6,
        name: "oidc",
        sqlite: include_str!("../migrations/sqlite/0006_oidc.sql"),
        postgres: include_str!("../migrations/postgres/0006_oidc.sql"),
    },
];

/// Held by a transaction that creates or migrates the schema on PostgreSQL.
const MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(7242019)";

#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

/// `database_url` as configured, or the SQLite file in the data dir.
pub fn resolve_url(database_url: Option<&str>, data_dir: &Path) -> String {
    match database_url {
        Some(url) if !url.trim().is_empty() => url.trim().to_string(),
        _ => format!(
            "sqlite://{}?mode=rwc",
            data_dir.join("opsboard.db").display()
        ),
    }
}

/// The URL with any password replaced, for messages and logs.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Creates `path` if missing and makes it readable and writable by its owner only.
fn owner_only(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?;
    #[cfg(unix)]
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(())
}

impl Db {
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(DbError::Invalid(format!(
                "database_url must start with sqlite:// or postgres:// (got {})",
                redacted(url)
            )));
        };
        if backend == Backend::Sqlite
            && let Some(path) = url
                .strip_prefix("sqlite://")
                .and_then(|p| p.split('?').next())
            && let Some(dir) = Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| DbError::Open(format!("cannot create {}: {e}", dir.display())))?;
            // Password hashes and sealed secrets live here: readable by the server's user only
            // (SQLite gives its WAL and shared-memory files the same mode).
            owner_only(Path::new(path))
                .map_err(|e| DbError::Open(format!("cannot create {path}: {e}")))?;
        }
        let options: AnyConnectOptions = url
            .parse()
            .map_err(|e| DbError::Invalid(format!("database_url {}: {e}", redacted(url))))?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 10 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets the CLI and the server use the file at once; writers wait
                        // for each other instead of failing.
                        conn.execute(
                            "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000; \
                             PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| DbError::Open(format!("cannot open database {}: {e}", redacted(url))))?;
        let db = Self { pool, backend };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<(), DbError> {
        const CREATE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations \
             (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";
        match self.backend {
            Backend::Sqlite => {
                self.pool.execute(CREATE).await?;
            }
            // Two nodes starting at once on a new database: PostgreSQL's `IF NOT EXISTS` does
            // not keep concurrent creations apart (one fails on a catalog key), the lock does.
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query(MIGRATION_LOCK).execute(&mut *tx).await?;
                sqlx::query(CREATE).execute(&mut *tx).await?;
                tx.commit().await?;
            }
        }
        for m in MIGRATIONS {
            // Another process (the CLI beside a starting server, a second node) may migrate at
            // the same moment: take the write lock before reading what is done, so one waits
            // for the other instead of failing when its read cannot be upgraded to a write.
            let mut tx = match self.backend {
                Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
                Backend::Postgres => {
                    let mut tx = self.pool.begin().await?;
                    sqlx::query(MIGRATION_LOCK).execute(&mut *tx).await?;
                    tx
                }
            };
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(m.version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some() {
                continue;
            }
            let sql = match self.backend {
                Backend::Sqlite => m.sqlite,
                Backend::Postgres => m.postgres,
            };
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .map_err(|source| DbError::Migration {
                    version: m.version,
                    name: m.name,
                    source,
                })?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(chrono::Utc::now().timestamp_millis())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!(
                version = m.version,
                name = m.name,
                "database migration applied"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn processes_opening_a_new_database_at_once_all_migrate_it() {
        // The CLI beside a starting server: each opens (and migrates) the same new file.
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("opsboard.db").display()
            );
            let opened = futures::future::join_all((0..6).map(|_| {
                let url = url.clone();
                tokio::spawn(async move { Db::connect(&url).await.map(|_| ()) })
            }))
            .await;
            for result in opened {
                result.unwrap().unwrap();
            }
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_sqlite_file_is_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opsboard.db");
        // An existing file made world-readable by some other tool is tightened too.
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Db::connect(&resolve_url(None, dir.path())).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
