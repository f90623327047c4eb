//! The OpenAPI 3.1 document of every `/api/v1` route: operations and schemas from the handlers'
//! `#[utoipa::path]` annotations and types; security, the access each route needs and the
//! errors every route may answer from the route declarations ([`super::super::routes`]), so
//! the document cannot claim another access than the guard enforces. Served as JSON at
//! `/api/v1/openapi.json` and as a page at `/api/docs`, both public.

use std::sync::LazyLock;

use axum::Json;
use axum::extract::State;
use axum::response::Html;
use serde_json::{Map, Value, json};
use utoipa::{OpenApi, ToSchema};

use super::super::access::{Access, Route};
use super::super::error::PageError;
use super::super::{ApiError, AppState};
use crate::auth::Need;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/api/v1/openapi.json", Access::Public, openapi_json),
        Route::get("/api/docs", Access::Public, docs_page),
    ]
}

/// Raw bytes (a file, protobuf, Arrow, Parquet, a picture).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(#[allow(dead_code)] Vec<u8>);

/// OTLP/HTTP's error answer, `google.rpc.Status` (as JSON here; protobuf when the request was).
#[derive(ToSchema)]
#[allow(dead_code)] // Written by `ingest::otlp::status_body`; this type only describes it.
pub struct OtlpStatus {
    /// A gRPC status code (3: invalid argument, 8: resource exhausted, 14: unavailable).
    code: i32,
    message: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "opsboard API",
        description = "Writes, queries, dashboards and management of a \
        multi-tenant opsboard server. Callers send an API key (`Authorization: Bearer opsb_…`) or \
        a session cookie; changes made with a cookie also need the session's `X-CSRF-Token`."
    ),
    paths(
        super::me::me,
        super::users::list,
        super::users::create,
        super::users::one,
        super::users::disable,
        super::users::enable,
        super::users::new_password,
        super::users::remove_mfa,
        super::users::set_admin,
        super::tenants::list,
        super::tenants::usage,
        super::members::list,
        super::members::grant,
        super::members::remove,
        super::keys::list,
        super::keys::create,
        super::keys::rotate,
        super::keys::revoke,
        super::global_keys::list,
        super::global_keys::create,
        super::global_keys::rotate,
        super::global_keys::revoke,
        super::alerts::state_of_alerts,
        super::alerts::acknowledge,
        super::alerts::silences,
        super::alerts::silence,
        super::alerts::unsilence,
        super::super::write::write,
        super::super::influx::write_own,
        super::super::prom::remote_write,
        super::super::otlp::export_metrics,
        super::super::otlp::export_logs,
        super::super::query::query,
        super::super::tables::list_tables,
        super::super::dashboards::list,
        super::super::dashboards::resolved,
        super::super::dashboards::config_errors,
        super::super::panels::data,
        super::super::panels::image,
        super::super::panels::export,
        super::super::actions::api_start,
        super::super::actions::api_run,
        super::super::attachments::upload,
        super::super::attachments::download,
        super::super::subscriptions::list,
        super::super::subscriptions::save_json,
        openapi_json,
    ),
    components(schemas(super::Error, Binary))
)]
pub struct ApiDoc;

/// The finished document (built once: it depends on nothing but the code).
static DOCUMENT: LazyLock<Value> =
    LazyLock::new(|| finish(&ApiDoc::openapi(), &super::super::routes()));

/// The document as served: the generated one, completed from the route declarations.
pub fn document() -> &'static Value {
    &DOCUMENT
}

fn finish(generated: &utoipa::openapi::OpenApi, routes: &[Route]) -> Value {
    let mut doc = serde_json::to_value(generated).unwrap_or_default();
    doc["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
    doc["components"]["securitySchemes"] = json!({
        "bearer": {"type": "http", "scheme": "bearer",
            "description": "An API key, `opsb_<id>_<secret>`; its tenant and scopes decide what it may do."},
        "session": {"type": "apiKey", "in": "cookie", "name": "opsboard_session",
            "description": "A browser session (`__Host-opsboard_session` behind TLS). Changes also need `X-CSRF-Token`."},
    });
    for route in routes {
        let method = route.method.as_str().to_ascii_lowercase();
        // `get_mut`, not indexing: an index would add the pages' routes as empty entries.
        let operation = doc
            .get_mut("paths")
            .and_then(|paths| paths.get_mut(route.path))
            .and_then(|item| item.get_mut(&method))
            .and_then(Value::as_object_mut);
        let Some(operation) = operation else {
            continue;
        };
        describe_access(operation, route.access);
    }
    doc
}

/// Who may call: the operation's security, the words in its description, and the error
/// answers the guard itself gives.
fn describe_access(operation: &mut Map<String, Value>, access: Access) {
    let (security, who) = match access {
        Access::Public => (json!([]), "Anyone, signed in or not."),
        _ => (
            json!([{"bearer": []}, {"session": []}]),
            access_words(access),
        ),
    };
    operation.insert("security".into(), security);
    let described = operation
        .get("description")
        .and_then(Value::as_str)
        .map(|d| format!("{d}\n\n"))
        .unwrap_or_default();
    operation.insert(
        "description".into(),
        json!(format!("{described}Access: {who}")),
    );
    let error = |what: &str| {
        json!({"description": what,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
    };
    let responses = operation
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(responses) = responses else { return };
    // An operation that answers its own errors in another form (OTLP's status) declares them
    // as ranges; only the guard's refusals are added to it.
    let mut common = match responses.contains_key("4XX") {
        true => vec![],
        false => vec![
            ("400", "The request is malformed"),
            ("413", "The body is larger than the route's limit"),
            (
                "429",
                "Too many requests or a quota reached; see `Retry-After`",
            ),
            (
                "500",
                "A server fault; the answer carries a request id to quote",
            ),
            (
                "503",
                "The server is starting, stopping or cannot store now; see `Retry-After`",
            ),
        ],
    };
    if access != Access::Public {
        common.push(("401", "No valid API key or session"));
        common.push(("403", "The caller may not do this (or not in this tenant)"));
    }
    for (status, what) in common {
        responses.entry(status).or_insert_with(|| error(what));
    }
    // A response the annotation left undescribed says at least its status's name.
    for (status, response) in responses.iter_mut() {
        let reason = status
            .parse()
            .ok()
            .and_then(|code| axum::http::StatusCode::from_u16(code).ok())
            .and_then(|code| code.canonical_reason());
        if response["description"] == ""
            && let Some(reason) = reason
        {
            response["description"] = json!(reason);
        }
    }
}

fn access_words(access: Access) -> &'static str {
    match access {
        Access::Public => "anyone.",
        Access::PartlySignedIn | Access::SignedIn => "any signed-in user or API key.",
        Access::GlobalAdmin => "global admins (or a global key with the `admin` scope).",
        Access::Tenant(need) | Access::TenantFrom(need, _) => match need {
            Need::Read => "any member of the tenant; keys with `read`.",
            Need::Ingest => "the tenant's editors and admins; keys with `ingest`.",
            Need::Act => "the tenant's editors and admins; keys with `act`.",
            Need::Run => "the tenant's editors and admins; keys with `act` or `admin`.",
            Need::Manage => "the tenant's admins; keys with `admin`.",
        },
    }
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, body = Object, description = "The OpenAPI 3.1 document")))]
async fn openapi_json() -> Json<&'static Value> {
    Json(document())
}

/// The document as a page: operations by tag, then the schemas (rendered here, no CDN).
async fn docs_page(State(state): State<AppState>) -> Result<Html<String>, PageError> {
    let page = state
        .pages
        .page(
            "api_docs.html",
            minijinja::context! {
                title => "API reference", bare => false, api => docs_view(document()),
            },
        )
        .map_err(ApiError::from)?;
    Ok(Html(page))
}

/// What the docs page shows, taken from the document.
fn docs_view(doc: &Value) -> Value {
    let mut tags: Vec<(String, Vec<Value>)> = vec![];
    let empty = Map::new();
    for (path, item) in doc["paths"].as_object().unwrap_or(&empty) {
        for (method, op) in item.as_object().unwrap_or(&empty) {
            let tag = op["tags"][0].as_str().unwrap_or("other").to_string();
            let entry = json!({
                "method": method.to_uppercase(), "path": path, "summary": op["summary"],
                "paragraphs": op["description"].as_str().unwrap_or("").split("\n\n").collect::<Vec<_>>(),
                "id": op["operationId"],
                "params": op["parameters"], "request": content_view(&op["requestBody"]),
                "responses": op["responses"].as_object().map(|r| r.iter().map(|(status, resp)| json!({
                    "status": status, "description": resp["description"], "content": content_view(resp),
                })).collect::<Vec<_>>()),
            });
            match tags.iter_mut().find(|(t, _)| *t == tag) {
                Some((_, ops)) => ops.push(entry),
                None => tags.push((tag, vec![entry])),
            }
        }
    }
    let schemas: Vec<Value> = doc["components"]["schemas"]
        .as_object()
        .unwrap_or(&empty)
        .iter()
        .map(|(name, schema)| {
            json!({"name": name, "text": serde_json::to_string_pretty(schema).unwrap_or_default()})
        })
        .collect();
    json!({
        "title": doc["info"]["title"], "version": doc["info"]["version"],
        "description": doc["info"]["description"],
        "tags": tags.into_iter().map(|(name, ops)| json!({"name": name, "operations": ops})).collect::<Vec<_>>(),
        "schemas": schemas,
    })
}

/// `type → schema name` for each content type of a request body or response.
fn content_view(holder: &Value) -> Vec<Value> {
    let Some(content) = holder["content"].as_object() else {
        return vec![];
    };
    content
        .iter()
        .map(|(media, c)| json!({"type": media, "schema": schema_name(&c["schema"])}))
        .collect()
}

fn schema_name(schema: &Value) -> String {
    if let Some(r) = schema["$ref"].as_str() {
        return r.rsplit('/').next().unwrap_or(r).to_string();
    }
    if schema["type"] == "array" {
        return format!("[{}]", schema_name(&schema["items"]));
    }
    match &schema["type"] {
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "any".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `/api/v1` route is in the document with its method, and every operation in the
    /// document is a route: the two cannot drift apart.
    #[test]
    fn the_document_covers_exactly_the_api_routes() {
        let doc = document();
        let mut routes: Vec<String> = super::super::super::routes()
            .iter()
            .filter(|r| r.path.starts_with("/api/v1/"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        routes.sort();
        let mut documented: Vec<String> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .map(move |m| format!("{} {path}", m.to_uppercase()))
            })
            .collect();
        documented.sort();
        assert_eq!(routes, documented);
    }

    /// The handler's doc comment is the operation's summary: none may be left without.
    #[test]
    fn every_operation_says_what_it_does() {
        let doc = document();
        let mut bare = vec![];
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if op["summary"].as_str().unwrap_or("").is_empty() {
                    bare.push(format!("{method} {path}"));
                }
            }
        }
        assert!(bare.is_empty(), "operations without a summary: {bare:?}");
    }

    #[test]
    fn operations_carry_their_access_and_the_common_errors() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let public = &doc["paths"]["/api/v1/openapi.json"]["get"];
        assert_eq!(public["security"], json!([]));
        assert!(public["responses"].get("401").is_none());
        let keys = &doc["paths"]["/api/v1/tenants/{tenant}/keys"]["post"];
        assert_eq!(keys["security"], json!([{"bearer": []}, {"session": []}]));
        let text = keys["description"].as_str().unwrap();
        assert!(
            text.ends_with("Access: the tenant's admins; keys with `admin`."),
            "{text}"
        );
        for status in ["400", "401", "403", "429", "500"] {
            let schema = &keys["responses"][status]["content"]["application/json"]["schema"];
            assert_eq!(schema["$ref"], "#/components/schemas/Error", "{status}");
        }
        assert!(doc["components"]["schemas"]["Error"].is_object());
        let me = &doc["paths"]["/api/v1/me"]["get"]["responses"];
        assert_eq!(me["200"]["description"], "OK");
        assert!(doc["components"]["schemas"]["CreatedKey"].is_object());
    }

    #[test]
    fn the_page_lists_every_operation() {
        let view = docs_view(document());
        let count: usize = view["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["operations"].as_array().unwrap().len())
            .sum();
        let routes = super::super::super::routes();
        let api = routes
            .iter()
            .filter(|r| r.path.starts_with("/api/v1/"))
            .count();
        assert_eq!(count, api);
        let html = crate::render::Pages::new()
            .page(
                "api_docs.html",
                minijinja::context! { title => "API", api => view },
            )
            .unwrap();
        // minijinja escapes `/` in HTML.
        let path = "PUT /api/v1/users/{id}/admin".replace('/', "&#x2f;");
        assert!(html.contains(&format!("<code>{path}</code>")), "{html}");
        assert!(html.contains("id=\"schema-CreatedKey\""), "{html}");
    }
}
