//! opsboard: a multi-tenant, time-series-first observability server.
//!
//! Data flow: `POST write` → [`http`] → [`ingest`] (decode and type-check the body into an
//! Arrow RecordBatch) → [`storage`] (WAL append with fsync, then the in-memory buffer, queryable
//! at once) → later a flush writes sorted Parquet files to the object store and records them in
//! the tenant's versioned catalog, and the covered WAL segments are deleted. `POST query` →
//! [`http`] → [`query`] (a DataFusion context holding only that tenant's tables, reading buffer ∪
//! pruned Parquet) → [`render`] (JSON, NDJSON, CSV, Parquet or Arrow, streamed). `GET panel` →
//! [`http`] → [`panels`] (the cache, else the panel kind's query) → a typed answer → JSON or the
//! kind's HTML fragment.
//!
//! Layers, each using only those before it: `allocator` (the global allocator), [`schema`], [`clock`], [`db`], [`generate`] (the
//! ground floor) → [`config`] → [`usage`] (metering counters and quota windows) → [`cluster`]
//! (tenant leases between nodes) → [`storage`] → [`ingest`] → [`query`] → [`render`] → [`panels`]
//! → [`check`] → [`live`] (the one owner of each tenant's configuration) → [`alerts`] →
//! [`metering`] (usage recorded per hour, quota warnings) → [`auth`] → [`actions`] (panel actions: row lookup, webhook runs, the `actions` table) →
//! [`http`] → [`server`].

pub mod actions;
pub mod alerts;
mod allocator;
pub mod auth;
pub mod check;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod db;
pub mod demo;
pub mod generate;
pub mod http;
pub mod ingest;
pub mod live;
pub mod metering;
pub mod panels;
pub mod query;
pub mod render;
pub mod schema;
pub mod server;
pub mod storage;
pub mod usage;

#[cfg(test)]
mod damage;
#[cfg(test)]
mod layering;
