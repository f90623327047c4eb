//! Tenant leases in the central database: which node runs each tenant's alert rules and upkeep
//! (compaction, retention, rollups), so that several nodes sharing one PostgreSQL and one
//! bucket notify once and compact once. A node holds a tenant while it renews the lease within
//! `cluster.lease`; a lease left to expire (its node died or lost the database) is taken by the
//! next node that asks, with the epoch one higher — the fencing token of the current owner.
//!
//! Times are wall-clock epoch milliseconds of each node (not the server's test clock): nodes'
//! clocks must agree to within a quarter of the lease, the margin a holder keeps before its
//! lease's end.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use serde::Serialize;

use crate::config::ClusterConfig;
use crate::db::{Db, DbError};

/// Takes a free or expired lease, or renews this node's own; returns the epoch when held.
const TAKE_OR_RENEW: &str = "INSERT INTO tenant_leases (tenant, node, epoch, expires_at) \
     VALUES ($1, $2, 1, $3) \
     ON CONFLICT (tenant) DO UPDATE SET \
       epoch = CASE WHEN tenant_leases.node = excluded.node THEN tenant_leases.epoch \
                    ELSE tenant_leases.epoch + 1 END, \
       node = excluded.node, \
       expires_at = excluded.expires_at \
     WHERE tenant_leases.node = excluded.node OR tenant_leases.expires_at < $4 \
     RETURNING epoch";

/// A tenant this node holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Held {
    pub epoch: i64,
    /// Until when (epoch ms) this node counts the lease as its own: the lease's end less the
    /// clock-skew margin, from before the renewal was sent.
    pub until_ms: i64,
}

pub struct Leases {
    db: Db,
    node: String,
    lease: Duration,
    held: RwLock<BTreeMap<String, Held>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `<hostname>-<6 hex digits of the data dir's path>`: a node restarted on its data dir
/// (one process per data dir: it is locked) takes its own leases back at once.
fn default_node_id(data_dir: &Path) -> String {
    use sha2::{Digest, Sha256};
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    let path = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let digest = Sha256::digest(path.as_os_str().as_encoded_bytes());
    format!("{host}-{:02x}{:02x}{:02x}", digest[0], digest[1], digest[2])
}

impl Leases {
    /// `data_dir` names the node when `cluster.node_id` does not.
    pub fn new(db: Db, config: &ClusterConfig, data_dir: &Path) -> Self {
        Self {
            db,
            node: config
                .node_id
                .clone()
                .unwrap_or_else(|| default_node_id(data_dir)),
            lease: config.lease.0,
            held: RwLock::new(BTreeMap::new()),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// How often [`Leases::renew`] should run: a third of the lease, so two renewals can fail
    /// before it runs out.
    pub fn renew_every(&self) -> Duration {
        self.lease / 3
    }

    /// Takes or renews the lease of each of `tenants`; forgets those it no longer holds. A
    /// database error keeps what is held until its `until_ms` (then this node lets go).
    pub async fn renew(&self, tenants: &[String]) -> Result<(), DbError> {
        for tenant in tenants {
            let taken = self.take(tenant).await?;
            let mut held = self.held.write();
            match taken {
                Some(now) => {
                    if held.get(tenant).is_none_or(|h| h.epoch != now.epoch) {
                        tracing::info!(%tenant, node = %self.node, epoch = now.epoch, "tenant lease taken");
                    }
                    held.insert(tenant.clone(), now);
                }
                None => {
                    if held.remove(tenant).is_some() {
                        tracing::warn!(%tenant, node = %self.node, "tenant lease lost to another node");
                    }
                }
            }
        }
        self.held.write().retain(|t, _| tenants.contains(t));
        Ok(())
    }

    /// Takes or renews one lease — a tenant's, or a WAL stream's (see `storage::WalLease`),
    /// which is not remembered among the tenants held. `None` when another node holds it.
    pub async fn take(&self, key: &str) -> Result<Option<Held>, DbError> {
        let lease_ms = self.lease.as_millis() as i64;
        let sent = now_ms();
        let epoch: Option<i64> = sqlx::query_scalar(TAKE_OR_RENEW)
            .bind(key)
            .bind(&self.node)
            .bind(sent + lease_ms)
            .bind(sent)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(epoch.map(|epoch| Held {
            epoch,
            until_ms: sent + lease_ms - lease_ms / 4,
        }))
    }

    /// Lets one lease taken with [`Leases::take`] go at once (its epoch stays, so the next
    /// holder's is higher).
    pub async fn release(&self, key: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE tenant_leases SET expires_at = 0 WHERE tenant = $1 AND node = $2")
            .bind(key)
            .bind(&self.node)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Whether this node runs `tenant`'s alert rules and upkeep now.
    pub fn owns(&self, tenant: &str) -> bool {
        self.held
            .read()
            .get(tenant)
            .is_some_and(|h| now_ms() < h.until_ms)
    }

    /// The tenants held now, with their epochs.
    pub fn owned(&self) -> BTreeMap<String, Held> {
        let now = now_ms();
        let held = self.held.read();
        held.iter()
            .filter(|(_, h)| now < h.until_ms)
            .map(|(t, h)| (t.clone(), *h))
            .collect()
    }

    /// Gives every lease back (a graceful stop): the other nodes take the tenants over at
    /// their next renewal instead of after the lease runs out. The rows stay, expired, so the
    /// next holder's epoch is still one higher.
    pub async fn release_all(&self) -> Result<(), DbError> {
        self.held.write().clear();
        sqlx::query("UPDATE tenant_leases SET expires_at = 0 WHERE node = $1")
            .bind(&self.node)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn db(dir: &tempfile::TempDir) -> Db {
        let url = format!("sqlite://{}/c.db?mode=rwc", dir.path().display());
        Db::connect(&url).await.unwrap()
    }

    fn leases(db: &Db, node: &str, lease_ms: u64) -> Leases {
        let config = ClusterConfig {
            node_id: Some(node.into()),
            lease: crate::config::HumanDuration(Duration::from_millis(lease_ms)),
        };
        Leases::new(db.clone(), &config, Path::new("/data"))
    }

    #[tokio::test]
    async fn one_node_holds_a_tenant_until_its_lease_runs_out() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(&dir).await;
        let (a, b) = (leases(&db, "a", 1000), leases(&db, "b", 1000));
        let tenants = vec!["acme".to_string(), "globex".to_string()];
        a.renew(&tenants).await.unwrap();
        b.renew(&tenants).await.unwrap();
        assert!(a.owns("acme") && a.owns("globex"));
        assert!(!b.owns("acme") && !b.owns("globex"));
        // Renewed: still a's, same epoch.
        a.renew(&tenants).await.unwrap();
        assert_eq!(a.owned()["acme"].epoch, 1);
        // a stops renewing: it lets go before the lease ends; b takes it after, epoch 2.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(!a.owns("acme"), "a holder stops a quarter before the end");
        b.renew(&tenants).await.unwrap();
        assert!(!b.owns("acme"), "not before the lease has run out");
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.renew(&tenants).await.unwrap();
        assert_eq!(b.owned()["acme"].epoch, 2);
        // The old holder's renewal finds b's lease: it holds nothing.
        a.renew(&tenants).await.unwrap();
        assert!(a.owned().is_empty());
        // A graceful stop hands over at once, the epoch still rising.
        b.release_all().await.unwrap();
        a.renew(&tenants).await.unwrap();
        assert_eq!(a.owned()["acme"].epoch, 3);
        // A tenant removed from the list is forgotten.
        a.renew(&tenants[..1]).await.unwrap();
        assert!(!a.owns("globex"));
    }

    #[test]
    fn a_node_is_named_by_its_host_and_data_dir() {
        let one = default_node_id(Path::new("/srv/opsboard/one"));
        assert_eq!(one, default_node_id(Path::new("/srv/opsboard/one")));
        assert_ne!(one, default_node_id(Path::new("/srv/opsboard/two")));
    }
}
