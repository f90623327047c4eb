//! `GET /api/v1/tenants/{tenant}/tables`: each table's columns, row counts and time bounds.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;

use super::access::{Access, Route};
use super::{ApiError, AppState};
use crate::auth::Need;
use crate::storage::{ColumnKind, TableStats};

pub fn routes() -> Vec<Route> {
    vec![Route::get(
        "/api/v1/tenants/{tenant}/tables",
        Access::Tenant(Need::Read),
        list_tables,
    )]
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct TableView {
    name: String,
    columns: Vec<ColumnView>,
    rows: u64,
    buffered_rows: u64,
    parquet_files: usize,
    min_time: Option<String>,
    max_time: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ColumnView {
    name: String,
    kind: &'static str,
    #[serde(rename = "type")]
    data_type: String,
}

fn rfc3339(ns: Option<i64>) -> Option<String> {
    ns.map(|ns| crate::clock::Timestamp::from_ns(ns).rfc3339())
}

impl From<TableStats> for TableView {
    fn from(s: TableStats) -> Self {
        let columns = s
            .schema
            .columns()
            .iter()
            .map(|c| ColumnView {
                name: c.name.clone(),
                kind: match c.kind {
                    ColumnKind::Time => "time",
                    ColumnKind::Tag => "tag",
                    ColumnKind::Field(_) => "field",
                },
                data_type: c.kind.data_type().to_string(),
            })
            .collect();
        TableView {
            name: s.name,
            columns,
            rows: s.buffered_rows + s.persisted_rows,
            buffered_rows: s.buffered_rows,
            parquet_files: s.files,
            min_time: rfc3339(s.min_time),
            max_time: rfc3339(s.max_time),
        }
    }
}

/// Each table's columns, row counts and time bounds.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/tables", tag = "query",
    params(("tenant" = String, Path)), responses((status = 200, body = Vec<TableView>), (status = 404, body = crate::http::api::Error)))]
async fn list_tables(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<Json<Vec<TableView>>, ApiError> {
    let tenant = state.tenant(&tenant).await?;
    Ok(Json(
        tenant.tables().iter().map(|t| t.stats().into()).collect(),
    ))
}
