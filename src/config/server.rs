//! `config/opsboard.yaml`: the server's defaults. Every field has a default, so the server runs
//! with no file at all ("embedded defaults"); unknown keys are errors so typos fail loudly. The
//! sections themselves are in `sections`; here: loading, memory shares and limit checks.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::sections::{
    AlertsConfig, AttachmentsConfig, AuthConfig, ClusterConfig, HttpConfig, IngestConfig,
    MemoryConfig, MeteringConfig, PanelsConfig, QueryConfig, StorageConfig,
};
use super::{AggregationRules, ConfigError, parse_yaml, read_file};

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
    pub attachments: AttachmentsConfig,
    pub cluster: ClusterConfig,
    pub metering: MeteringConfig,
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
            attachments: AttachmentsConfig::default(),
            cluster: ClusterConfig::default(),
            metering: MeteringConfig::default(),
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
        if let Some((line, column, message)) =
            super::oidc::first_problem(&text, &config.auth.oidc, config.auth.local_passwords)
        {
            return Err(ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message,
            });
        }
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
        let attachments = &self.attachments;
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
                self.cluster.lease.0 < std::time::Duration::from_secs(1)
                    || self
                        .cluster
                        .node_id
                        .as_ref()
                        .is_some_and(|id| id.trim().is_empty()),
                "cluster.lease must be at least 1s and cluster.node_id not empty",
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
                {
                    let interval = self.metering.interval.0.as_millis();
                    interval < 1_000 || 86_400_000 % interval != 0
                },
                "metering.interval must be at least 1s and divide a day evenly (1m, 5m, 1h…)",
            ),
            // No grace would delete an upload before the row naming it can arrive.
            (
                attachments.max_bytes == 0
                    || attachments.unreferenced_grace.0.is_zero()
                    || attachments.collect_interval.0.is_zero(),
                "attachments: max_bytes, unreferenced_grace and collect_interval must be > 0",
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
    fn an_external_url_that_is_not_http_names_its_place() {
        for bad in ["opsboard.example", "ftp://opsboard.example", "http://"] {
            let err = parse_yaml::<ServerConfig>(
                Path::new("opsboard.yaml"),
                &format!("alerts:\n  external_url: {bad}\n"),
            )
            .unwrap_err()
            .to_string();
            assert!(err.starts_with("opsboard.yaml:2:"), "{err}");
            assert!(err.contains("not an http:// or https:// URL"), "{err}");
        }
        let ok: ServerConfig = parse_yaml(
            Path::new("opsboard.yaml"),
            "alerts:\n  external_url: https://ops.example/\n",
        )
        .unwrap();
        assert_eq!(
            ok.alerts.external_url.as_deref(),
            Some("https://ops.example/")
        );
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
                "attachments:\n  unreferenced_grace: 0s\n",
                "unreferenced_grace",
            ),
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
