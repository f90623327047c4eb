//! The sections of `config/opsboard.yaml` (`http`, `panels`, `alerts`, `auth`, `storage`,
//! `memory`, `query`, `ingest`), each with its defaults.

use serde::{Deserialize, Deserializer, Serialize};

use super::HumanDuration;

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
    /// How long an uncached aggregate waits for other panels' aggregates over the same rows,
    /// to read them in one scan; `0s` runs each alone.
    pub shared_scan_wait: HumanDuration,
}

impl Default for PanelsConfig {
    fn default() -> Self {
        Self {
            cache_max_bytes: 64 * 1024 * 1024,
            raw_limit: 10_000,
            max_series: 1_000,
            reload_interval: HumanDuration::from_secs(1),
            shared_scan_wait: HumanDuration(std::time::Duration::from_millis(3)),
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
    /// Loopback, private and link-local addresses webhooks — and panel actions — may reach
    /// (none by default: a URL from a tenant's YAML must not probe the server's own network).
    pub allowed_targets: Vec<super::IpNetwork>,
    /// Where people reach this server (`https://opsboard.example`), for links in notifications
    /// (Alertmanager's `generatorURL`); unset = `http://<listen>`.
    #[serde(deserialize_with = "http_url")]
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
    /// Email + password sign-in. Off: people sign in through `oidc` only (API keys still work).
    pub local_passwords: bool,
    /// OpenID Connect providers, each a button on the login page.
    pub oidc: Vec<super::OidcProvider>,
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
            local_passwords: true,
            oidc: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Where Parquet files and catalogs live: `file` (= `<data_dir>/objects`), `file:///abs/dir`,
    /// `s3://bucket/prefix` (settings from the `AWS_*` variables) or `memory://` (tests).
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
    /// `attachments.unreferenced_grace` and `attachments.collect_interval`, handed over by the
    /// server (not settings of this section).
    #[serde(skip)]
    pub attachment_grace: HumanDuration,
    #[serde(skip)]
    pub attachment_collect_interval: HumanDuration,
    /// Where writes are made durable before they are acknowledged: `local` (segment files
    /// in the data dir, fsynced), `object_store` (objects in the bucket, so a node that
    /// vanishes loses nothing; adds one PUT round trip to each write) or `auto` (the object
    /// store when `object_store` is not the data dir's own folder).
    pub wal: WalPlacement,
    /// With the WAL in the object store: how often a node reads the other nodes' new WAL
    /// objects and catalog versions (rows acknowledged elsewhere show up within this).
    pub wal_follow_interval: HumanDuration,
    /// A WAL object not stored by then fails its writes with 503 and Retry-After.
    pub wal_put_timeout: HumanDuration,
    /// How long a write waits for others to share its WAL object: fewer PUT requests for
    /// this much more latency (0 = a PUT as soon as the previous one is done).
    pub wal_group_wait: HumanDuration,
    /// With an `s3://` store: the bytes of Parquet files kept on local disk
    /// (`<data_dir>/cache`), least recently used out first; 0 reads the bucket every time.
    pub cache_bytes: u64,
    /// Names this process's WAL in the shared catalog (`<data_dir>/WAL_ID` for a local WAL, a
    /// new name at every start for one in the object store; not a setting).
    #[serde(skip)]
    pub wal_id: String,
}

/// `storage.wal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WalPlacement {
    #[default]
    Auto,
    Local,
    ObjectStore,
}

impl StorageConfig {
    /// Whether writes are made durable in the object store (see [`WalPlacement`]).
    pub fn wal_in_object_store(&self) -> bool {
        match self.wal {
            WalPlacement::Local => false,
            WalPlacement::ObjectStore => true,
            WalPlacement::Auto => !matches!(
                self.object_store.as_str(),
                "" | "file" | "memory://" | "memory:///"
            ),
        }
    }
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
            attachment_grace: AttachmentsConfig::default().unreferenced_grace,
            attachment_collect_interval: AttachmentsConfig::default().collect_interval,
            wal: WalPlacement::Auto,
            wal_follow_interval: HumanDuration(std::time::Duration::from_millis(500)),
            wal_put_timeout: HumanDuration::from_secs(5),
            wal_group_wait: HumanDuration(std::time::Duration::ZERO),
            cache_bytes: 4 << 30,
            wal_id: String::new(),
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
    /// Answer aggregates from the tables' declared rollups where they do so exactly (off: always
    /// raw rows — to compare, or to rule the rewrite out).
    pub rollups: bool,
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
            rollups: true,
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

/// Files rows refer to (`attachment` columns): how large one may be and which types are taken.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttachmentsConfig {
    /// Largest upload; bigger ones get 413.
    pub max_bytes: usize,
    /// Content types taken (the body's first bytes must agree); others get 415.
    pub allowed_types: Vec<String>,
    /// An attachment no row (within its table's retention) refers to is deleted once it was
    /// last uploaded this long ago: time for the row that will name it to arrive.
    pub unreferenced_grace: HumanDuration,
    /// How often maintenance looks for unreferenced attachments (it reads every attachment
    /// column of the tenant).
    pub collect_interval: HumanDuration,
}

impl Default for AttachmentsConfig {
    fn default() -> Self {
        Self {
            max_bytes: 25 * 1024 * 1024,
            allowed_types: [
                "image/jpeg",
                "image/png",
                "image/webp",
                "image/gif",
                "video/mp4",
                "application/pdf",
                "text/plain",
            ]
            .map(String::from)
            .to_vec(),
            unreferenced_grace: HumanDuration::from_secs(24 * 3600),
            collect_interval: HumanDuration::from_secs(3600),
        }
    }
}

/// An absolute http(s) URL, refused at its line otherwise.
fn http_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    match url::Url::parse(&text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(Some(text)),
        _ => Err(serde::de::Error::custom(format!(
            "{text:?} is not an http:// or https:// URL"
        ))),
    }
}

/// Several nodes sharing one central database (PostgreSQL) and one bucket: which node runs
/// each tenant's alert rules and upkeep.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name in leases, `/healthz` and `/metrics`; unset = `<hostname>-<hash of
    /// the data dir's path>` (a node restarted on its data dir takes its leases back at once).
    pub node_id: Option<String>,
    /// How long a tenant's lease lasts unless renewed (renewed every third of it): a node that
    /// dies hands its tenants over after at most this long. Node clocks must agree to within a
    /// quarter of it.
    pub lease: HumanDuration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            node_id: None,
            lease: HumanDuration::from_secs(15),
        }
    }
}

/// Usage metering: how often each tenant's usage is written to its `opsboard_usage` table
/// (and today's rows across the nodes read back for `quotas.rows_per_day`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeteringConfig {
    /// Recordings start on multiples of this from midnight UTC, so none spans two days; it
    /// must divide a day evenly.
    pub interval: HumanDuration,
}

impl Default for MeteringConfig {
    fn default() -> Self {
        Self {
            interval: HumanDuration::from_secs(60),
        }
    }
}
