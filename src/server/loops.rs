//! The server's periodic background tasks: flushing, following the other nodes' WAL streams,
//! keeping leases, adopting the streams of nodes that are gone, and the fencing watch.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::cluster::Leases;
use crate::metering::Recorder;
use crate::storage::{Store, WalLease};

/// Resolves once this node's WAL lease is fenced (never with a local WAL).
pub(super) async fn until_fenced(lease: Option<Arc<WalLease>>) {
    let Some(lease) = lease else {
        return std::future::pending().await;
    };
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    while !lease.fenced() {
        tick.tick().await;
    }
}

/// Runs `pass` every `period` (a pass that overruns delays the next) until `cancel`.
pub(super) async fn every<F, Fut>(period: Duration, cancel: CancellationToken, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        pass().await;
    }
}

/// With the WAL in the object store: reads the other nodes' new rows and catalog versions.
pub(super) async fn follow_loop(store: Arc<Store>, cancel: CancellationToken) {
    let period = store.config().wal_follow_interval.0;
    every(period, cancel, || store.follow_all()).await;
}

pub(super) async fn flush_loop(store: Arc<Store>, cancel: CancellationToken) {
    let period = store.config().flush_check_interval.0;
    every(period, cancel, || async {
        for tenant in store.opened_tenants() {
            if let Err(e) = tenant.flush_due().await {
                tracing::error!(tenant = %tenant.name, error = %e, "flush failed; rows stay in the WAL and buffer");
            }
        }
    })
    .await;
}

/// Every ten minutes: sessions past their timeouts and stale login counters are deleted.
pub(super) async fn auth_upkeep_loop(auth: Arc<Auth>, cancel: CancellationToken) {
    every(Duration::from_secs(600), cancel, || async {
        match auth.prune_expired().await {
            Ok((sessions, attempts)) if sessions + attempts > 0 => {
                tracing::info!(
                    sessions,
                    attempts,
                    "expired sessions and login counters pruned"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot prune expired sessions"),
        }
    })
    .await;
}

/// Takes or renews the leases of every tenant folder, and of this node's WAL stream.
pub(super) async fn renew_leases(leases: &Leases, store: &Store, tenants_dir: &Path) {
    let tenants = crate::config::tenant_folders(tenants_dir);
    if let Err(e) = leases.renew(&tenants).await {
        tracing::error!(error = %e, "cannot renew tenant leases; held ones run out");
    }
    let Some((stream, lease)) = store.wal_stream() else {
        return;
    };
    match leases.take(&wal_lease_key(stream)).await {
        Ok(Some(held)) => lease.renewed(held.epoch, held.until_ms),
        Ok(None) => {
            tracing::error!(stream, "another node holds this node's WAL lease");
            lease.fence();
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot renew the WAL lease; writes stop when it runs out")
        }
    }
}

/// A WAL stream's lease, beside the tenants' (a tenant name has no `:`).
fn wal_lease_key(stream: &str) -> String {
    format!("wal:{stream}")
}

/// Keeps this node's leases and takes the tenants other nodes let run out.
pub(super) async fn lease_loop(
    leases: Arc<Leases>,
    store: Arc<Store>,
    tenants_dir: PathBuf,
    cancel: CancellationToken,
) {
    let period = leases.renew_every();
    every(period, cancel, || {
        renew_leases(&leases, &store, &tenants_dir)
    })
    .await;
}

/// Adopts the WAL streams of nodes that are gone. Apart from the lease loop: an adoption
/// (reading a stream, writing Parquet) can outlast a lease, and this node's own leases must
/// be renewed meanwhile.
pub(super) async fn adoption_loop(
    leases: Arc<Leases>,
    store: Arc<Store>,
    cancel: CancellationToken,
) {
    let period = leases.renew_every();
    every(period, cancel, || adopt_gone_streams(&leases, &store)).await;
}

/// Each other stream whose lease has run out (its node is gone) is taken, persisted and let
/// go; a live node's stream is not taken (its lease holds).
async fn adopt_gone_streams(leases: &Leases, store: &Store) {
    for stream in store.other_streams() {
        let key = wal_lease_key(&stream);
        match leases.take(&key).await {
            Ok(Some(_)) => {}
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look at other WAL streams' leases");
                return;
            }
        }
        match store.adopt(&stream).await {
            Ok(rows) => tracing::info!(stream, rows, "adopted a gone node's WAL stream"),
            Err(e) => tracing::error!(stream, error = %e, "adopting a WAL stream failed; retried"),
        }
        if let Err(e) = leases.release(&key).await {
            tracing::warn!(stream, error = %e, "cannot let an adopted stream's lease go");
        }
    }
}

/// A usage recording every `interval`, on its multiples from midnight UTC (so none covers two
/// days), each stamped with the start of the interval it covers.
pub(super) async fn metering_loop(
    recorder: Arc<Recorder>,
    interval: Duration,
    cancel: CancellationToken,
) {
    let period = (interval.as_millis() as i64).max(1);
    loop {
        let now = chrono::Utc::now().timestamp_millis();
        let next = now - now.rem_euclid(period) + period;
        let wait = Duration::from_millis((next - now) as u64);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let now = chrono::Utc::now().timestamp_millis();
        recorder.record(next - period, now).await;
    }
}
