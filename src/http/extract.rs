//! What handlers take out of a request besides axum's own extractors: a urlencoded form, a
//! gzip body, a cookie, the client's address (behind trusted proxies), and what templates show of the
//! signed-in user. Shared by the access guard and the page handlers, so neither imports the
//! other.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, header};
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::auth::{Principal, PrincipalKind};

/// The fields of a urlencoded form body.
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(body: &Bytes) -> Self {
        Self(url::form_urlencoded::parse(body).into_owned().collect())
    }

    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// What page templates show of the signed-in user (the header's menu, forms' CSRF tokens).
pub fn user_json(principal: &Principal, tenant: Option<&str>) -> Value {
    match &principal.kind {
        PrincipalKind::User {
            email,
            is_admin,
            session,
            ..
        } => json!({
            "email": email,
            "is_admin": is_admin,
            "csrf": session.csrf,
            "manages": tenant.is_some_and(|t| principal.allows(t, crate::auth::Need::Manage)),
        }),
        PrincipalKind::Key { .. } => Value::Null,
    }
}

/// The client's address for lockouts and the audit log: the TCP peer, unless the peer is a
/// trusted proxy — then `X-Forwarded-For` is read from the right, skipping trusted proxies, and the
/// first other address is the client. Addresses left of it could be forged by the client itself.
pub fn client_ip(state: &AppState, request: &Request) -> String {
    let Some(peer) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return "unknown".into();
    };
    let trusted = &state.config.auth.trusted_proxies;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        if request.headers().contains_key("x-forwarded-for") && UNTRUSTED_FORWARDING.first() {
            tracing::warn!(
                %peer,
                "X-Forwarded-For from a peer not in auth.trusted_proxies is ignored (the peer is \
                 taken as the client); list the reverse proxy there if this server sits behind one"
            );
        }
        return peer.to_string();
    }
    let mut client = peer;
    let hops = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client.to_string()
}

/// Says once per process that forwarded headers arrive from an untrusted peer: worth knowing
/// (a proxy not listed means every user shares the proxy's lockouts), not worth a line per request.
static UNTRUSTED_FORWARDING: Once = Once::new();

struct Once(std::sync::atomic::AtomicBool);

impl Once {
    const fn new() -> Self {
        Self(std::sync::atomic::AtomicBool::new(false))
    }

    /// True the first time only.
    fn first(&self) -> bool {
        !self.0.swap(true, std::sync::atomic::Ordering::Relaxed)
    }
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the body is gzip-compressed (`Content-Encoding: gzip`).
pub fn is_gzip(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"))
}

/// A gzip body, refused once it inflates past `limit` (a small bomb must not fill memory).
pub fn gunzip(body: &[u8], limit: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::with_capacity(body.len() * 4);
    flate2::read::GzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::BadRequest(format!("the gzip body does not decompress: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::BodyTooLarge { limit });
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_untrusted_forwarding_warning_is_given_once() {
        let once = Once::new();
        assert!(once.first());
        assert!(!once.first());
        assert!(!once.first());
    }

    #[test]
    fn gzip_bodies_inflate_within_the_limit() {
        use flate2::write::GzEncoder;
        use std::io::Write;
        let mut encoder = GzEncoder::new(vec![], flate2::Compression::default());
        encoder.write_all(&vec![b'a'; 10_000]).unwrap();
        let packed = encoder.finish().unwrap();
        assert_eq!(gunzip(&packed, 10_000).unwrap().len(), 10_000);
        assert!(matches!(
            gunzip(&packed, 9_999),
            Err(ApiError::BodyTooLarge { limit: 9_999 })
        ));
        assert!(matches!(
            gunzip(b"not gzip", 100),
            Err(ApiError::BadRequest(_))
        ));
    }
}
