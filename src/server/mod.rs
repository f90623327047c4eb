//! Wires the server from its configuration: opens the store (replaying the WAL), starts the
//! background flush and maintenance loops, serves HTTP until the shutdown future resolves, then
//! flushes every buffer to Parquet. Takes a bound listener so tests can use port 0.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::alerts::{AlertEngine, AlertStore, Notifier, NotifySettings};
use crate::auth::{Actor, AuditEvent, Auth, AuthError, Role};
use crate::clock::SharedClock;
use crate::cluster::Leases;
use crate::config::{ConfigDirs, ServerConfig, fingerprint};
use crate::http::{AppState, router};
use crate::live::{LiveConfigs, ReloadOutcome};
use crate::panels::{PanelEngine, Registry};
use crate::query::QueryEngine;
use crate::storage::{OpenMode, StorageError, Store};

mod loops;
use loops::{
    adoption_loop, auth_upkeep_loop, every, flush_loop, follow_loop, lease_loop, metering_loop,
    renew_leases, until_fenced,
};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("HTTP server failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(
        "fenced: another node took over this node's WAL stream (its rows are safe there); \
         restart this node"
    )]
    Fenced,
}

/// Options beyond the config file.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Fill the `demo` tenant with history and keep writing live rows.
    pub demo: bool,
    /// Persist every buffer at shutdown (off only in tests that exercise WAL replay).
    pub flush_on_shutdown: bool,
    /// The time sessions, lockouts and key limits are measured against (manual in tests).
    pub clock: SharedClock,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            demo: false,
            flush_on_shutdown: true,
            clock: crate::clock::system(),
        }
    }
}

pub async fn serve(
    config: ServerConfig,
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let mut storage = config.storage.clone();
    storage.buffer_limit_bytes = config.ingest_buffer_bytes();
    storage.attachment_grace = config.attachments.unreferenced_grace;
    storage.attachment_collect_interval = config.attachments.collect_interval;
    let store = Store::open(
        storage,
        &config.data_dir,
        &config.tenants_dir,
        OpenMode::ReadWrite,
    )
    .await?;
    let engine = Arc::new(QueryEngine::with_spill_dir(
        config.query.clone(),
        config.data_dir.join("spill"),
    ));
    let (db, auth) = open_auth(&config, &options).await?;
    let cancel = CancellationToken::new();
    let mut background = JoinSet::new();
    let leases = Arc::new(Leases::new(db.clone(), &config.cluster, &config.data_dir));
    // Held before upkeep and alert rules first run, so a lone node's first pass is not skipped
    // (and, with the WAL in the object store, before the first write is acknowledged).
    renew_leases(&leases, &store, &config.tenants_dir).await;
    background.spawn(lease_loop(
        leases.clone(),
        store.clone(),
        config.tenants_dir.clone(),
        cancel.clone(),
    ));
    if store.wal_stream().is_some() {
        background.spawn(follow_loop(store.clone(), cancel.clone()));
        background.spawn(adoption_loop(leases.clone(), store.clone(), cancel.clone()));
    }
    background.spawn(flush_loop(store.clone(), cancel.clone()));
    background.spawn(maintenance_loop(
        store.clone(),
        leases.clone(),
        options.clock.clone(),
        cancel.clone(),
    ));
    background.spawn(auth_upkeep_loop(auth.clone(), cancel.clone()));
    // Rules are first evaluated once the demo and seed histories are in: before them, every
    // rule would see no data and say so.
    let data_ready = CancellationToken::new();
    let seeds = options
        .demo
        .then(|| Arc::new(crate::demo::seeds::Seeds::default()));
    if let Some(seeds) = &seeds {
        let (demo_written, seeds_written) = (CancellationToken::new(), CancellationToken::new());
        background.spawn(crate::demo::run(
            store.clone(),
            cancel.clone(),
            demo_written.clone(),
        ));
        background.spawn(crate::demo::seeds::run(
            store.clone(),
            seeds.clone(),
            cancel.clone(),
            seeds_written.clone(),
        ));
        let ready = data_ready.clone();
        background.spawn(async move {
            demo_written.cancelled().await;
            seeds_written.cancelled().await;
            ready.cancel();
        });
    } else {
        data_ready.cancel();
    }
    let (configs, panels) = build_panels(&config, &store, &engine, &auth).await;
    background.spawn(config_watch_loop(
        configs.clone(),
        panels.clone(),
        store.clone(),
        auth.clone(),
        config.panels.reload_interval.0,
        cancel.clone(),
    ));
    let alerts = Arc::new(
        alert_engine(&config, db, &store, &engine, &configs, &panels, &options)
            .with_leases(leases.clone()),
    );
    background.spawn(alert_loop(
        alerts.clone(),
        config.alerts.tick.0,
        data_ready,
        cancel.clone(),
    ));
    let recorder = Arc::new(crate::metering::Recorder::new(
        store.clone(),
        engine.clone(),
        alerts.clone(),
        leases.clone(),
    ));
    recorder
        .learn_rows_today(chrono::Utc::now().timestamp_millis())
        .await;
    background.spawn(metering_loop(
        recorder.clone(),
        config.metering.interval.0,
        cancel.clone(),
    ));
    let state_closing = alerts.closing();
    let mut actions = crate::actions::Actions::new(
        panels.clone(),
        engine.clone(),
        store.clone(),
        auth.clone(),
        Arc::new(config.alerts.allowed_targets.clone()),
    );
    if let Some(seeds) = seeds {
        let agents = crate::demo::agents::start(seeds, cancel.clone()).await?;
        tracing::info!(%agents, "demo agents answer the seed tenants' actions");
        // The agents listen on loopback, which actions may otherwise not reach.
        let loopback = "127.0.0.1/32".parse().ok();
        actions = actions.with_variable(crate::demo::agents::VARIABLE, agents, loopback);
    }
    let actions = Arc::new(actions);
    let config_behind_tls = config.auth.behind_tls;
    let state = AppState {
        store: store.clone(),
        engine,
        config: Arc::new(config),
        configs,
        panels,
        pages: Arc::new(crate::render::Pages::new()),
        auth,
        alerts,
        actions,
        leases: leases.clone(),
        secure_cookies: crate::http::cookies_must_be_secure(
            config_behind_tls,
            listener.local_addr()?.ip(),
        ),
        streams: Arc::default(),
    };
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening");
    let limits = crate::http::ConnectionLimits {
        header_read_timeout: state.config.http.header_read_timeout.0,
        max_connections: state.config.http.max_connections,
    };
    // The peer address (which feeds login lockouts per IP and the audit log) reaches handlers
    // as ConnectInfo.
    let app = router(state);
    // Event streams never end by themselves; they are told to when shutdown starts.
    let closing = state_closing;
    let fenced = store.wal_stream().map(|(_, lease)| lease.clone());
    let shutdown = async move {
        tokio::select! {
            _ = shutdown => {}
            _ = until_fenced(fenced.clone()) => {
                tracing::error!("this node's WAL stream was taken over; stopping");
            }
        }
        closing.cancel();
    };
    crate::http::serve(listener, app, limits, shutdown).await;
    cancel.cancel();
    while background.join_next().await.is_some() {}
    let fenced = store.wal_stream().is_some_and(|(_, lease)| lease.fenced());
    if !fenced {
        // The usage since the last recording, before the buffers are persisted.
        let now = chrono::Utc::now().timestamp_millis();
        recorder.record(now, now).await;
    }
    // Persisted before the leases go, so no other node adopts rows this one is flushing.
    if options.flush_on_shutdown && !fenced {
        tracing::info!("flushing buffers before exit");
        store.persist_all().await?;
    }
    if let Err(e) = leases.release_all().await {
        tracing::warn!(error = %e, "cannot give the tenant leases back; they expire by themselves");
    }
    if fenced {
        return Err(ServerError::Fenced);
    }
    Ok(())
}

/// Retention, compaction and the rest of upkeep, on the server's clock (tests move it), for
/// the tenants whose lease this node holds.
async fn maintenance_loop(
    store: Arc<Store>,
    leases: Arc<Leases>,
    clock: SharedClock,
    cancel: CancellationToken,
) {
    let period = store.config().maintenance_interval.0;
    every(period, cancel, || async {
        let now_ms = clock.now_ms();
        for tenant in store.opened_tenants() {
            if !leases.owns(&tenant.name) {
                continue;
            }
            match tenant.maintain(now_ms).await {
                Ok(report) => tracing::debug!(tenant = %tenant.name, ?report, "maintenance pass"),
                Err(e) => tracing::error!(tenant = %tenant.name, error = %e, "maintenance failed"),
            }
        }
    })
    .await;
}

/// Runs the alert rules that are due, every `tick`.
/// The alert evaluator with its notifier, on the shared store, engines and configuration.
fn alert_engine(
    config: &ServerConfig,
    db: crate::db::Db,
    store: &Arc<Store>,
    engine: &Arc<QueryEngine>,
    configs: &Arc<LiveConfigs>,
    panels: &Arc<PanelEngine>,
    options: &ServeOptions,
) -> AlertEngine {
    let alert_store = AlertStore::new(db);
    let notifier = Notifier::new(
        alert_store.clone(),
        NotifySettings {
            smtp: config.alerts.smtp.clone(),
            from: config.alerts.from.clone(),
            attempts: config.alerts.delivery_attempts,
            backoff: config.alerts.retry_backoff.0,
            allowed_targets: config.alerts.allowed_targets.clone(),
            external_url: config
                .alerts
                .external_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", config.listen))
                .trim_end_matches('/')
                .to_string(),
        },
    );
    AlertEngine::new(
        alert_store,
        store.clone(),
        engine.clone(),
        configs.clone(),
        panels.clone(),
        options.clock.clone(),
        notifier,
    )
}

/// The central database and the auth service on it, brought up to date: tenants synced, TOTP
/// secrets resealed with the current key, demo users made (or a hint when there are no users).
async fn open_auth(
    config: &ServerConfig,
    options: &ServeOptions,
) -> Result<(crate::db::Db, Arc<Auth>), ServerError> {
    let db = crate::db::Db::connect(&crate::db::resolve_url(
        config.database_url.as_deref(),
        &config.data_dir,
    ))
    .await
    .map_err(AuthError::from)?;
    let auth = Auth::with_db(db.clone(), config, options.clock.clone())?;
    auth.sync_tenants(&crate::config::tenant_folders(&config.tenants_dir))
        .await?;
    let resealed = auth.reseal_mfa_secrets().await?;
    if resealed > 0 {
        tracing::info!(
            resealed,
            "TOTP secrets resealed with the current auth.secret_key"
        );
    }
    if options.demo {
        demo_users(&auth).await?;
    } else if auth.user_count().await? == 0 {
        tracing::warn!(
            "no users yet: create the first admin with `opsboard user create --email you@example.com --admin --password-stdin`"
        );
    }
    Ok((db, auth))
}

async fn alert_loop(
    alerts: Arc<AlertEngine>,
    tick: Duration,
    data_ready: CancellationToken,
    cancel: CancellationToken,
) {
    tokio::select! {
        _ = cancel.cancelled() => return,
        _ = data_ready.cancelled() => {}
    }
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
        alerts.tick().await;
    }
}

/// Loads every tenant's dashboards and panels (problems are logged and kept for the API).
async fn build_panels(
    config: &ServerConfig,
    store: &Arc<Store>,
    engine: &Arc<QueryEngine>,
    auth: &Auth,
) -> (Arc<LiveConfigs>, Arc<PanelEngine>) {
    let dirs = ConfigDirs {
        tenants_dir: config.tenants_dir.clone(),
        panels_dir: config.panels_dir.clone(),
    };
    let registry = Registry::builtin();
    let configs = Arc::new(LiveConfigs::new(
        dirs,
        config.aggregation.clone(),
        registry.image_names(),
        registry.data_names(),
    ));
    let panels = Arc::new(PanelEngine::new(
        store.clone(),
        engine.clone(),
        configs.clone(),
        &config.panels,
    ));
    reload_panels(&configs, &panels, store, auth).await;
    (configs, panels)
}

/// Reloads all tenants against their live schemas; drops the cache of each that changed.
async fn reload_panels(configs: &LiveConfigs, panels: &PanelEngine, store: &Store, auth: &Auth) {
    if let Err(e) = auth.sync_tenants(&configs.tenants()).await {
        tracing::error!(error = %e, "cannot update the tenants table");
    }
    let outcomes = configs.reload_all(store).await;
    for (tenant, outcome) in outcomes {
        let event = match outcome {
            ReloadOutcome::DataOnly => continue,
            ReloadOutcome::Loaded => {
                panels.invalidate_tenant(&tenant);
                AuditEvent::ok("config.reload", serde_json::json!({}))
            }
            ReloadOutcome::Rejected(problems) => {
                AuditEvent::failed("config.reload", serde_json::json!({"problems": problems}))
            }
        };
        auth.audit(&Actor::system(), event.in_tenant(tenant)).await;
    }
}

/// `serve --demo`: an admin and a viewer of the demo and seed tenants, with fresh passwords printed at
/// each start (the demo is for trying things, not for keeping secrets).
async fn demo_users(auth: &Auth) -> Result<(), AuthError> {
    let actor = Actor::new("demo", None);
    for (email, admin) in [("admin@demo.local", true), ("viewer@demo.local", false)] {
        let password = crate::auth::random_password();
        let user = match auth.user_by_email(email).await {
            Ok(user) => {
                auth.set_password(&actor, user.id, &password).await?;
                user
            }
            Err(AuthError::NotFound(_)) => {
                auth.create_user(&actor, email, "", &password, admin)
                    .await?
            }
            Err(e) => return Err(e),
        };
        if !admin {
            let tenants = auth.tenants(true).await?;
            for demo in ["demo", "pimeet", "kraliki"] {
                if tenants.iter().any(|t| t == demo) {
                    auth.grant(&actor, user.id, demo, Role::Viewer).await?;
                }
            }
        }
        // stderr: stdout's first line is the listening address scripts wait for.
        eprintln!("demo user: {email} / {password}");
    }
    Ok(())
}

/// Hot reload: polls the configuration trees and reloads when anything changed.
async fn config_watch_loop(
    configs: Arc<LiveConfigs>,
    panels: Arc<PanelEngine>,
    store: Arc<Store>,
    auth: Arc<Auth>,
    every: Duration,
    cancel: CancellationToken,
) {
    let mut last = fingerprint(configs.dirs());
    // Tables of tenants whose configuration was rejected: a panel may name a table that only
    // its first write creates, so a new table is a reason to try again.
    let mut tables_seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let dirs = configs.dirs().clone();
        let Ok(now) = tokio::task::spawn_blocking(move || fingerprint(&dirs)).await else {
            continue;
        };
        if now != last {
            last = now;
            tracing::info!("configuration changed on disk; reloading");
            reload_panels(&configs, &panels, &store, &auth).await;
            continue;
        }
        for tenant in store.opened_tenants() {
            let rejected = configs
                .problems(&tenant.name)
                .is_some_and(|(problems, _)| !problems.is_empty());
            if !rejected {
                continue;
            }
            let signature: Vec<String> = tenant
                .tables()
                .iter()
                .map(|table| format!("{}:{}", table.name, table.schema().columns().len()))
                .collect();
            if tables_seen.get(&tenant.name) != Some(&signature) {
                tables_seen.insert(tenant.name.clone(), signature);
                if configs.reload(&tenant) == ReloadOutcome::Loaded {
                    panels.invalidate_tenant(&tenant.name);
                }
            }
        }
    }
}
