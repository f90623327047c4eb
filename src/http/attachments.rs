//! `POST /api/v1/tenants/{t}/attachments` (the raw body, its `Content-Type`, `?filename=`) →
//! 201 and how the file is known; `GET …/attachments/{id}` → the same bytes with their type,
//! a safe `Content-Disposition`, and single byte ranges (video players seek with them).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::access::{Access, BodyLimit, Route};
use super::{ApiError, AppState};
use crate::auth::Need;
use crate::ingest::check_attachment;
use crate::storage::{AttachmentInfo, TenantStore};

pub fn routes() -> Vec<Route> {
    vec![
        Route::post(
            "/api/v1/tenants/{tenant}/attachments",
            Access::Tenant(Need::Ingest),
            upload,
        )
        .with_body(BodyLimit::Attachment),
        Route::get(
            "/api/v1/tenants/{tenant}/attachments/{attachment}",
            Access::Tenant(Need::Read),
            download,
        ),
    ]
}

#[derive(Deserialize)]
struct UploadParams {
    filename: Option<String>,
}

/// A file name as a header may carry it: its last path part, printable ASCII without quotes
/// or backslashes, at most 100 characters.
fn safe_filename(name: &str) -> Option<String> {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let kept: String = last
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .filter(|c| !matches!(c, '"' | '\\' | ';'))
        .take(100)
        .collect();
    let kept = kept.trim().to_string();
    (!kept.is_empty() && kept != "." && kept != "..").then_some(kept)
}

fn info_json(tenant: &str, info: &AttachmentInfo) -> serde_json::Value {
    json!({
        "id": info.id, "url": format!("/api/v1/tenants/{tenant}/attachments/{}", info.id),
        "content_type": info.content_type, "bytes": info.bytes, "sha256": info.id,
        "filename": info.filename,
    })
}

/// Stores a file (a picture, a video, a document) for events to refer to.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/attachments", tag = "attachments",
    params(("tenant" = String, Path), ("filename" = Option<String>, Query)),
    request_body(content = crate::http::api::Binary, content_type = "application/octet-stream", description = "The file; its `Content-Type` must agree with its bytes"),
    responses((status = 201, body = Object), (status = 400, body = crate::http::api::Error), (status = 413, body = crate::http::api::Error), (status = 415, body = crate::http::api::Error)))]
async fn upload(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(params): Query<UploadParams>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let settings = &state.config.attachments;
    let body = body.map_err(|rejection| ApiError::body(rejection, settings.max_bytes))?;
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let content_type =
        check_attachment(declared, &body, &settings.allowed_types, settings.max_bytes)?;
    let store = state.tenant(&tenant).await?;
    let filename = params.filename.as_deref().and_then(safe_filename);
    let now = state.auth.now_ms();
    let info = store
        .put_attachment(body, &content_type, filename, now)
        .await?;
    let location = format!("/api/v1/tenants/{tenant}/attachments/{}", info.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(info_json(&tenant, &info)),
    )
        .into_response())
}

/// A single `bytes=a-b`, `bytes=a-` or `bytes=-n` range within `size`; Err when it cannot be
/// served (416), None when there is no (usable) range header.
fn byte_range(headers: &HeaderMap, size: u64) -> Result<Option<std::ops::Range<u64>>, ()> {
    let Some(spec) = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
    else {
        return Ok(None);
    };
    // Several ranges at once are answered whole, as RFC 9110 allows.
    if spec.contains(',') {
        return Ok(None);
    }
    let (start, end) = spec.split_once('-').ok_or(())?;
    let parse = |t: &str| t.trim().parse::<u64>().map_err(|_| ());
    let range = match (start.trim().is_empty(), end.trim().is_empty()) {
        (true, false) => {
            let n = parse(end)?.min(size);
            size - n..size
        }
        (false, true) => parse(start)?..size,
        (false, false) => parse(start)?..parse(end)?.saturating_add(1).min(size),
        (true, true) => return Err(()),
    };
    if range.start >= range.end || range.start >= size {
        return Err(());
    }
    Ok(Some(range))
}

#[derive(Deserialize)]
struct DownloadParams {
    /// `1`: a picture at most 320 px on its long side (made once, then kept).
    thumbnail: Option<String>,
}

/// The attachment's thumbnail (made once, then kept), or its type's icon.
async fn thumbnail(store: &TenantStore, info: &AttachmentInfo) -> Result<Response, ApiError> {
    let Some(jpeg) = crate::panels::thumbnail(store, info).await? else {
        let icon = crate::render::type_icon(&info.content_type);
        return Ok(([(header::CONTENT_TYPE, "image/svg+xml")], icon).into_response());
    };
    let mut response = jpeg.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    Ok(response)
}

/// An attachment's bytes with their type (byte ranges served), or its thumbnail.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/attachments/{attachment}", tag = "attachments",
    params(("tenant" = String, Path), ("attachment" = String, Path), ("thumbnail" = Option<String>, Query)),
    responses((status = 200, body = crate::http::api::Binary, content_type = "application/octet-stream"),
        (status = 206, body = crate::http::api::Binary, content_type = "application/octet-stream"),
        (status = 404, body = crate::http::api::Error), (status = 416, body = crate::http::api::Error)))]
async fn download(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    Query(params): Query<DownloadParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let store = state.tenant(&tenant).await?;
    let missing = || ApiError::NotFound(format!("attachment {id}"));
    let info = store.attachment(&id).await?.ok_or_else(missing)?;
    if params
        .thumbnail
        .as_deref()
        .is_some_and(|t| t == "1" || t == "true")
    {
        return thumbnail(&store, &info).await;
    }
    let range = match byte_range(&headers, info.bytes) {
        Ok(range) => range,
        Err(()) => {
            let unsatisfied = [(header::CONTENT_RANGE, format!("bytes */{}", info.bytes))];
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, unsatisfied).into_response());
        }
    };
    let body = store.attachment_bytes(&info.id, range.clone()).await?;
    // Pictures and video show in the page; anything else downloads.
    let inline = info.content_type.starts_with("image/") || info.content_type.starts_with("video/");
    let name = info
        .filename
        .clone()
        .unwrap_or_else(|| info.id[..16].to_string());
    let disposition = format!(
        "{}; filename=\"{name}\"",
        if inline { "inline" } else { "attachment" }
    );
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&info.content_type).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // Content-addressed: the bytes behind an id never change.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    if let Some(range) = range {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let value = format!("bytes {}-{}/{}", range.start, range.end - 1, info.bytes);
        response.headers_mut().insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&value).map_err(|e| ApiError::Internal(e.to_string()))?,
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str, size: u64) -> Result<Option<std::ops::Range<u64>>, ()> {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, value.parse().unwrap());
        byte_range(&headers, size)
    }

    #[test]
    fn single_byte_ranges_within_the_size() {
        assert_eq!(range("bytes=0-9", 100), Ok(Some(0..10)));
        assert_eq!(range("bytes=90-", 100), Ok(Some(90..100)));
        assert_eq!(range("bytes=-10", 100), Ok(Some(90..100)));
        assert_eq!(range("bytes=95-200", 100), Ok(Some(95..100)));
        assert_eq!(range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(range("bytes=100-", 100), Err(()));
        assert_eq!(range("bytes=5-2", 100), Err(()));
        assert_eq!(range("bytes=x-2", 100), Err(()));
        assert_eq!(range("bytes=-", 100), Err(()));
        assert_eq!(range("items=0-1", 100), Ok(None));
    }

    #[test]
    fn file_names_are_made_safe_for_a_header() {
        assert_eq!(
            safe_filename("../../etc/pass\"wd;.jpg").as_deref(),
            Some("passwd.jpg")
        );
        assert_eq!(
            safe_filename("C:\\cam\\snap 1.jpg").as_deref(),
            Some("snap 1.jpg")
        );
        assert_eq!(safe_filename("..").as_deref(), None);
        assert_eq!(safe_filename("\r\n").as_deref(), None);
    }
}
