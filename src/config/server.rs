//! `config/opsboard.yaml`: the server's defaults. Every field has a default, so the server runs
//! with no file at all ("embedded defaults"); unknown keys are errors so typos fail loudly.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{AggregationRules, ConfigError, HumanDuration, parse_yaml, read_file};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP server binds; loopback by default.
    pub listen: String,
    pub data_dir: PathBuf,
    pub tenants_dir: PathBuf,
    pub panels_dir: PathBuf,
    pub storage: StorageConfig,
    pub memory: MemoryConfig,
    pub query: QueryConfig,
    pub ingest: IngestConfig,
    pub http: HttpConfig,
    /// Default time-bucket rules for panels; tenants and panels may override.
    pub aggregation: AggregationRules,
    pub panels: PanelsConfig,
    /// Central database (users, sessions, keys, audit, alert state): `sqlite://…` or
    /// `postgres://…`; unset = `sqlite://<data_dir>/opsboard.db`.
    pub database_url: Option<String>,
    pub auth: AuthConfig,
    pub alerts: AlertsConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: "./data".into(),
            tenants_dir: "./tenants".into(),
            panels_dir: "./panels".into(),
            storage: StorageConfig::default(),
            memory: MemoryConfig::default(),
            query: QueryConfig::default(),
            ingest: IngestConfig::default(),
            http: HttpConfig::default(),
            aggregation: AggregationRules::default(),
            panels: PanelsConfig::default(),
            database_url: None,
            auth: AuthConfig::default(),
            alerts: AlertsConfig::default(),
        }
    }
}

/// Connections: how long a client may take to send a request's headers (also how long an idle
/// keep-alive connection stays open), and how many connections are served at once.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub header_read_timeout: HumanDuration,
    pub max_connections: usize,
    /// Largest body of any request but writes (queries, forms, JSON APIs); writes have
    /// `ingest.max_body_bytes`.
    pub max_request_bytes: usize,
    /// Event streams one user (or key) may hold open at once; more get 429.
    pub max_streams_per_user: usize,
    /// How often an open event stream asks again whether its caller may still read (a logout,
    /// a revoked key or a removed role ends it within this time).
    pub stream_recheck: HumanDuration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: HumanDuration::from_secs(10),
            max_connections: 4096,
            max_request_bytes: 1024 * 1024,
            max_streams_per_user: 16,
            stream_recheck: HumanDuration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PanelsConfig {
    /// Memory the panel answer cache may hold, in bytes.
    pub cache_max_bytes: u64,
    /// Most rows a raw (unaggregated) panel returns; more sets `truncated`.
    pub raw_limit: usize,
    /// Most series (lines) one timeseries answer may hold; more is a 422 naming this limit.
    pub max_series: usize,
    /// How often `tenants/` and `panels/` are checked for changes.
    pub reload_interval: HumanDuration,
}

impl Default for PanelsConfig {
    fn default() -> Self {
        Self {
            cache_max_bytes: 64 * 1024 * 1024,
            raw_limit: 10_000,
            max_series: 1_000,
            reload_interval: HumanDuration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// How often the evaluator looks for rules that are due (each rule runs at its `every`).
    pub tick: HumanDuration,
    /// SMTP relay `host:port` for email channels that name none.
    pub smtp: String,
    pub from: String,
    /// Tries per delivery, waiting `retry_backoff`, then twice that, ... between them.
    pub delivery_attempts: u32,
    pub retry_backoff: HumanDuration,
    /// Loopback, private and link-local addresses webhooks may reach (none by default: a
    /// webhook URL from a tenant's YAML must not probe the server's own network).
    pub allowed_targets: Vec<super::IpNetwork>,
    /// Where people reach this server (`https://opsboard.example`), for links in notifications
    /// (Alertmanager's `generatorURL`); unset = `http://<listen>`.
    pub external_url: Option<String>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            tick: HumanDuration::from_secs(1),
            smtp: "127.0.0.1:25".into(),
            from: "opsboard@localhost".into(),
            delivery_attempts: 4,
            retry_backoff: HumanDuration::from_secs(2),
            allowed_targets: vec![],
            external_url: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The server is reached over TLS (directly or through a proxy): cookies get `Secure` and the
    /// `__Host-` prefix.
    pub behind_tls: bool,
    /// A session unused this long ends...
    pub session_idle_timeout: HumanDuration,
    /// ...and every session ends this long after login, used or not.
    pub session_absolute_timeout: HumanDuration,
    /// Global admins must use TOTP; they are sent to enrolment at their next login.
    pub require_mfa_for_admins: bool,
    /// Failed logins for one account (or one IP, below) within `failure_window` before a lockout.
    pub max_failures_per_account: u32,
    pub max_failures_per_ip: u32,
    pub failure_window: HumanDuration,
    /// The first lockout lasts this long; each further lockout doubles it, up to `max_lockout`.
    pub lockout: HumanDuration,
    pub max_lockout: HumanDuration,
    /// Requests per second one API key may make on average, and the burst it may use at once.
    pub api_rate_per_second: f64,
    pub api_burst: u32,
    /// Sign-ins per second the whole server checks (each costs an argon2 hash), and the burst.
    pub logins_per_second: f64,
    pub login_burst: u32,
    /// Key for the TOTP secrets at rest (64 hex characters). Unset: a key generated into
    /// `<data_dir>/secret.key` at first start. Several servers sharing one database need the same.
    pub secret_key: Option<String>,
    /// Keys `secret_key` replaced: still used to open TOTP secrets and check recovery codes they
    /// made. TOTP secrets are resealed with the current key at start; recovery codes hashed by
    /// an old key work while it stays listed here.
    pub previous_secret_keys: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (addresses or networks such as
    /// `10.0.0.0/8`). Empty: the client is the TCP peer, whatever the header says.
    pub trusted_proxies: Vec<super::IpNetwork>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            behind_tls: false,
            session_idle_timeout: HumanDuration::from_secs(8 * 3600),
            session_absolute_timeout: HumanDuration::from_secs(7 * 86400),
            require_mfa_for_admins: false,
            max_failures_per_account: 5,
            max_failures_per_ip: 20,
            failure_window: HumanDuration::from_secs(15 * 60),
            lockout: HumanDuration::from_secs(60),
            max_lockout: HumanDuration::from_secs(3600),
            api_rate_per_second: 200.0,
            api_burst: 1000,
            logins_per_second: 20.0,
            login_burst: 100,
            secret_key: None,
            previous_secret_keys: Vec::new(),
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Where Parquet files and catalogs live: `file` (= `<data_dir>/objects`), `file:///abs/dir`
    /// or `memory://` (tests).
    pub object_store: String,
    /// Persist a table's buffer once it holds this many rows...
    pub flush_max_rows: usize,
    /// ...or this many bytes of Arrow memory...
    pub flush_max_bytes: usize,
    /// ...or once its oldest unpersisted row is this old.
    pub flush_max_age: HumanDuration,
    /// How often the background task looks at buffer sizes and ages.
    pub flush_check_interval: HumanDuration,
    /// Default retention for tables that do not set their own; `null` keeps data forever.
    pub retention: Option<HumanDuration>,
    /// How often retention, compaction and deferred deletes run.
    pub maintenance_interval: HumanDuration,
    /// A day with at least this many small files is compacted.
    pub compaction_min_files: usize,
    /// Files with fewer rows than this count as small; compaction output stops growing here.
    pub compaction_target_rows: usize,
    /// How long a write waits for flushes to make room when all buffers together are at
    /// their share of `memory.budget`; then it is answered 503 with Retry-After.
    pub buffer_wait: HumanDuration,
    /// The buffers' share of `memory.budget`, worked out by the server (not a setting).
    #[serde(skip)]
    pub buffer_limit_bytes: usize,
    /// Files dropped from the catalog are deleted only after this grace period, so queries
    /// already planned against them finish.
    pub delete_grace: HumanDuration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            object_store: "file".into(),
            flush_max_rows: 1_000_000,
            flush_max_bytes: 256 * 1024 * 1024,
            flush_max_age: HumanDuration::from_secs(300),
            flush_check_interval: HumanDuration::from_secs(1),
            retention: None,
            maintenance_interval: HumanDuration::from_secs(60),
            compaction_min_files: 4,
            compaction_target_rows: 2_000_000,
            buffer_wait: HumanDuration::from_secs(5),
            buffer_limit_bytes: MemoryConfig::default().budget
                - QueryConfig::default().memory_budget_bytes
                - QueryConfig::default().metadata_cache_bytes
                - PanelsConfig::default().cache_max_bytes as usize,
            delete_grace: HumanDuration::from_secs(60),
        }
    }
}

/// The memory the whole server keeps to.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// Bytes for query execution (`query.memory_budget_bytes`, default half the budget), the
    /// panel cache (`panels.cache_max_bytes`, default a sixteenth) and the write buffers of all
    /// tables with the flush and compaction working memory (the rest) together. Resident
    /// memory runs above it by the program itself and allocator slack.
    pub budget: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            budget: 1024 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// Memory all running queries share for sorts, joins and aggregations.
    pub memory_budget_bytes: usize,
    /// Memory one query may use of that budget before it spills or fails.
    pub memory_limit_bytes: usize,
    /// Disk the queries may spill to, together, under `<data_dir>/spill`; 0: no spilling.
    pub spill_bytes: u64,
    /// Wall-clock limit for one query, planning and streaming included — also when the client
    /// stops reading the answer.
    pub timeout: HumanDuration,
    /// Queries running at once, in all and per tenant; more wait up to `queue_timeout`, then
    /// get 429.
    pub max_concurrent: usize,
    pub max_concurrent_per_tenant: usize,
    pub queue_timeout: HumanDuration,
    /// Threads that run queries, apart from the ones that serve HTTP (0: one per core).
    pub threads: usize,
    /// Largest value one function call may make (`repeat`, `lpad`, `array_repeat`, `range`, …).
    pub max_value_bytes: usize,
    /// Most rows `generate_series`/`range` may make as a table.
    pub max_generated_rows: u64,
    /// Parquet footers and page indexes kept across queries, all tenants together (default a
    /// thirty-second of `memory.budget`).
    pub metadata_cache_bytes: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            memory_budget_bytes: 512 * 1024 * 1024,
            memory_limit_bytes: 256 * 1024 * 1024,
            spill_bytes: 1024 * 1024 * 1024,
            timeout: HumanDuration::from_secs(30),
            max_concurrent: 8,
            max_concurrent_per_tenant: 4,
            queue_timeout: HumanDuration::from_secs(10),
            threads: 0,
            max_value_bytes: 1024 * 1024,
            max_generated_rows: 10_000_000,
            metadata_cache_bytes: 32 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest accepted write body; bigger bodies get 413.
    pub max_body_bytes: usize,
    /// Most columns one write may carry (time included).
    pub max_columns_per_write: usize,
    /// Most columns a table may grow to (time included).
    pub max_columns_per_table: usize,
    /// Most tables a tenant may have.
    pub max_tables_per_tenant: usize,
    /// Longest tag value, in bytes (InfluxDB's limit); long text belongs in a string field.
    pub max_tag_bytes: usize,
    /// Most distinct series (tag combinations) one table may get from one metrics write (line
    /// protocol, remote write, OTLP metrics): a runaway label is refused before it floods the
    /// tenant with series.
    pub max_series_per_write: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024 * 1024,
            max_columns_per_write: 500,
            max_columns_per_table: 500,
            max_tables_per_tenant: 2_000,
            max_tag_bytes: 64 * 1024,
            max_series_per_write: 50_000,
        }
    }
}

impl ServerConfig {
    /// Loads `path`; a missing file at the default location means "embedded defaults", a missing
    /// file the user named explicitly is an error.
    pub fn load(path: &Path, explicit: bool) -> Result<Self, ConfigError> {
        if !path.exists() && !explicit {
            return Ok(Self::default());
        }
        let text = read_file(path)?;
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let mut config: Self = parse_yaml(path, &text)?;
        let raw: serde_yaml::Value = serde_yaml::from_str(&text).unwrap_or_default();
        config.share_out_memory(&raw);
        config.validate(path)?;
        Ok(config)
    }

    /// Shares of `memory.budget` the file leaves unset follow the budget (half for queries,
    /// half of that per query, a sixteenth for the panel cache, a thirty-second for Parquet
    /// metadata), so `memory.budget` alone
    /// sizes the server; shares the file sets are kept as written.
    fn share_out_memory(&mut self, raw: &serde_yaml::Value) {
        let set = |section: &str, key: &str| raw.get(section).and_then(|s| s.get(key)).is_some();
        let budget = self.memory.budget;
        if !set("query", "memory_budget_bytes") {
            self.query.memory_budget_bytes = budget / 2;
        }
        if !set("query", "memory_limit_bytes") {
            self.query.memory_limit_bytes = self.query.memory_budget_bytes / 2;
        }
        if !set("query", "metadata_cache_bytes") {
            self.query.metadata_cache_bytes = budget / 32;
        }
        if !set("panels", "cache_max_bytes") {
            self.panels.cache_max_bytes = (budget / 16) as u64;
        }
    }

    /// The write buffers' share of `memory.budget`: what query execution and the panel cache
    /// leave (0 when they take it all, which validation refuses).
    pub fn ingest_buffer_bytes(&self) -> usize {
        self.memory
            .budget
            .saturating_sub(self.query.memory_budget_bytes)
            .saturating_sub(self.query.metadata_cache_bytes)
            .saturating_sub(self.panels.cache_max_bytes as usize)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let problem = self
            .limit_problems()
            .into_iter()
            .chain(self.aggregation.problems())
            .next();
        match problem {
            Some(message) => Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message,
            }),
            None => Ok(()),
        }
    }

    /// Limits that would refuse every request or never let one finish, each with its message.
    fn limit_problems(&self) -> Vec<String> {
        let (storage, ingest, http) = (&self.storage, &self.ingest, &self.http);
        let (panels, query, auth) = (&self.panels, &self.query, &self.auth);
        // NaN is not positive either.
        let positive = |x: f64| x > 0.0;
        let checks = [
            (
                self.ingest_buffer_bytes() < 32 * 1024 * 1024,
                "memory.budget must leave at least 32 MiB for write buffers after \
                 query.memory_budget_bytes, query.metadata_cache_bytes and panels.cache_max_bytes",
            ),
            (
                storage.flush_max_rows == 0 || storage.flush_max_bytes == 0,
                "storage.flush_max_rows and flush_max_bytes must be > 0",
            ),
            (
                storage.compaction_min_files < 2,
                "storage.compaction_min_files must be at least 2",
            ),
            // `time` is a column: a column limit under 2 would refuse every write.
            (
                ingest.max_body_bytes == 0
                    || ingest.max_columns_per_write < 2
                    || ingest.max_columns_per_table < 2
                    || ingest.max_tables_per_tenant == 0
                    || ingest.max_tag_bytes == 0
                    || ingest.max_series_per_write == 0,
                "ingest.max_body_bytes, max_tag_bytes and max_series_per_write must be > 0, \
                 max_columns_per_write and max_columns_per_table at least 2, \
                 max_tables_per_tenant at least 1",
            ),
            (
                http.header_read_timeout.0.is_zero()
                    || http.max_connections == 0
                    || http.max_request_bytes == 0
                    || http.max_streams_per_user == 0
                    || http.stream_recheck.0.is_zero(),
                "http.header_read_timeout, max_connections, max_request_bytes, \
                 max_streams_per_user and stream_recheck must be > 0",
            ),
            (
                panels.raw_limit == 0
                    || panels.max_series == 0
                    || panels.reload_interval.0.is_zero(),
                "panels.raw_limit, max_series and reload_interval must be > 0",
            ),
            (
                query.memory_budget_bytes == 0
                    || query.memory_limit_bytes == 0
                    || query.timeout.0.is_zero()
                    || query.max_concurrent == 0
                    || query.max_concurrent_per_tenant == 0
                    || query.max_value_bytes == 0
                    || query.max_generated_rows == 0,
                "query: memory_budget_bytes, memory_limit_bytes, timeout, max_concurrent, \
                 max_concurrent_per_tenant, max_value_bytes and max_generated_rows must be > 0",
            ),
            (
                auth.max_failures_per_account == 0
                    || auth.max_failures_per_ip == 0
                    || auth.api_burst == 0
                    || !positive(auth.api_rate_per_second)
                    || auth.login_burst == 0
                    || !positive(auth.logins_per_second),
                "auth: failure limits, api_burst, api_rate_per_second, login_burst and \
                 logins_per_second must be > 0",
            ),
        ];
        checks
            .into_iter()
            .filter(|(bad, _)| *bad)
            .map(|(_, message)| message.to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_names_line_and_column() {
        let err = parse_yaml::<ServerConfig>(
            Path::new("opsboard.yaml"),
            "listen: 127.0.0.1:9\nstorage:\n  flush_max_rowz: 5\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("opsboard.yaml:3:3: "), "{err}");
        assert!(err.contains("flush_max_rowz"), "{err}");
    }

    #[test]
    fn bad_trusted_proxy_names_its_place() {
        let err = parse_yaml::<ServerConfig>(
            Path::new("opsboard.yaml"),
            "auth:\n  trusted_proxies:\n    - 10.0.0.0/8\n    - proxy.lan\n",
        )
        .unwrap_err()
        .to_string();
        // serde_yaml places errors inside a list at the list; the key path and the value name
        // the entry.
        assert!(err.starts_with("opsboard.yaml:3:"), "{err}");
        assert!(
            err.contains("auth.trusted_proxies: \"proxy.lan\" is not an IP address"),
            "{err}"
        );
    }

    #[test]
    fn limits_that_would_refuse_everything_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (yaml, names) in [
            (
                "ingest:\n  max_columns_per_write: 1\n",
                "max_columns_per_write",
            ),
            (
                "ingest:\n  max_tables_per_tenant: 0\n",
                "max_tables_per_tenant",
            ),
            ("http:\n  max_connections: 0\n", "max_connections"),
            ("http:\n  header_read_timeout: 0s\n", "header_read_timeout"),
            ("http:\n  max_streams_per_user: 0\n", "max_streams_per_user"),
            (
                "query:\n  max_concurrent_per_tenant: 0\n",
                "max_concurrent_per_tenant",
            ),
            ("query:\n  memory_budget_bytes: 0\n", "memory_budget_bytes"),
            ("auth:\n  logins_per_second: .nan\n", "logins_per_second"),
            ("panels:\n  max_series: 0\n", "max_series"),
            (
                "memory:\n  budget: 600000000\nquery:\n  memory_budget_bytes: 580000000\n",
                "memory.budget",
            ),
            (
                "alerts:\n  allowed_targets: [internal.lan]\n",
                "allowed_targets",
            ),
        ] {
            let path = dir.path().join("opsboard.yaml");
            std::fs::write(&path, yaml).unwrap();
            let err = ServerConfig::load(&path, true).unwrap_err().to_string();
            assert!(err.starts_with(&path.display().to_string()), "{err}");
            assert!(err.contains(names), "{yaml}: {err}");
        }
    }
    #[test]
    fn memory_budget_alone_sizes_every_share() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opsboard.yaml");
        std::fs::write(&path, "memory:\n  budget: 268435456\n").unwrap();
        let config = ServerConfig::load(&path, true).unwrap();
        let mib = 1024 * 1024;
        assert_eq!(config.query.memory_budget_bytes, 128 * mib);
        assert_eq!(config.query.memory_limit_bytes, 64 * mib);
        assert_eq!(config.panels.cache_max_bytes, 16 * mib as u64);
        assert_eq!(config.query.metadata_cache_bytes, 8 * mib);
        assert_eq!(config.ingest_buffer_bytes(), 104 * mib);
        std::fs::write(
            &path,
            "memory:\n  budget: 268435456\npanels:\n  cache_max_bytes: 1048576\n",
        )
        .unwrap();
        let config = ServerConfig::load(&path, true).unwrap();
        assert_eq!(
            config.panels.cache_max_bytes, mib as u64,
            "a share set is kept"
        );
        assert_eq!(config.ingest_buffer_bytes(), 119 * mib);
    }

    #[test]
    fn shipped_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/opsboard.yaml");
        let config = ServerConfig::load(&path, true).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080");
        // The file documents the embedded defaults; they must not drift apart.
        assert_eq!(config.aggregation, AggregationRules::default());
        assert_eq!(
            config.storage.compaction_target_rows,
            StorageConfig::default().compaction_target_rows
        );
    }
}
