//! Sign in, the second factor, sign out. The login form is protected against cross-site posts
//! by a double-submit token (a cookie and a form field that must match), since there is no
//! session yet to hold one.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::context;

use super::AppState;
use super::access::{Access, Caller, Route};
use super::error::PageError;
use super::extract::{Form, client_ip, cookie, user_json};
use crate::auth::{AuthError, LoginOutcome, Principal, random_token, same_secret};

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/login", Access::Public, login_page),
        Route::post("/login", Access::Public, login),
        Route::get("/login/mfa", Access::PartlySignedIn, mfa_page),
        Route::post("/login/mfa", Access::PartlySignedIn, mfa),
        Route::post("/logout", Access::PartlySignedIn, logout),
    ]
}

fn cookie_attributes(state: &AppState, max_age_secs: u64) -> String {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    format!("Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}")
}

pub(super) fn session_cookie(state: &AppState, token: &str) -> HeaderValue {
    let max_age = state.auth.config().session_absolute_timeout.0.as_secs();
    let value = format!(
        "{}={token}; {}",
        state.auth.cookie_name(),
        cookie_attributes(state, max_age)
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn cleared_cookie(state: &AppState, name: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("{name}=; {}", cookie_attributes(state, 0)))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn login_csrf_name(state: &AppState) -> &'static str {
    if state.auth.config().behind_tls {
        "__Host-opsboard_login"
    } else {
        "opsboard_login"
    }
}

/// Seconds a locked-out caller should wait, for `Retry-After`.
fn retry_after(e: &AuthError) -> Option<u64> {
    match e {
        AuthError::LockedOut { retry_after_secs } | AuthError::RateLimited { retry_after_secs } => {
            Some(*retry_after_secs)
        }
        _ => None,
    }
}

/// Only a path on this server, so the login form cannot be used to bounce users elsewhere. The
/// path is judged as a browser will read it — tabs, CR and LF removed, `\` taken as `/` — so
/// `/\t/evil.example` (which a browser follows as `//evil.example`) becomes `/`.
pub(super) fn safe_next(next: &str) -> String {
    let as_browser_reads: String = next
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .map(|c| if c == '\\' { '/' } else { c })
        .collect();
    let same_origin = as_browser_reads.starts_with('/')
        && !as_browser_reads.starts_with("//")
        && !as_browser_reads.chars().any(char::is_control);
    if same_origin {
        as_browser_reads
    } else {
        "/".into()
    }
}

#[derive(serde::Deserialize)]
struct NextParam {
    next: Option<String>,
}

async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NextParam>,
) -> Result<Response, PageError> {
    render_login(
        &state,
        &headers,
        q.next.as_deref().unwrap_or("/"),
        "",
        None,
        axum::http::StatusCode::OK,
    )
    .await
}

pub(super) async fn render_login(
    state: &AppState,
    headers: &HeaderMap,
    next: &str,
    email: &str,
    error: Option<String>,
    status: axum::http::StatusCode,
) -> Result<Response, PageError> {
    let name = login_csrf_name(state);
    let csrf = cookie(headers, name)
        .map(String::from)
        .unwrap_or_else(random_token);
    let first_run = state.auth.user_count().await? == 0;
    let providers: Vec<_> = state
        .auth
        .oidc_providers()
        .iter()
        .map(|p| context! { name => p.name, label => p.label() })
        .collect();
    let local_passwords = state.auth.config().local_passwords;
    let html = state.pages.page(
        "login.html",
        context! { title => "Sign in", csrf => csrf, next => safe_next(next), email => email, error => error, first_run => first_run, providers => providers, local_passwords => local_passwords },
    )?;
    let mut response = (status, Html(html)).into_response();
    let value = format!("{name}={csrf}; {}", cookie_attributes(state, 3600));
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}

async fn login(State(state): State<AppState>, request: Request) -> Result<Response, PageError> {
    let ip = client_ip(&state, &request);
    let headers = request.headers().clone();
    let body = axum::body::to_bytes(request.into_body(), 64 * 1024)
        .await
        .map_err(|e| super::ApiError::BadRequest(format!("cannot read the form: {e}")))?;
    let form = Form::parse(&body);
    let next = safe_next(form.get("next"));
    let email = form.get("email");
    let expected = cookie(&headers, login_csrf_name(&state)).unwrap_or("");
    if expected.is_empty() || !same_secret(form.get("_csrf"), expected) {
        let error = "The sign-in form expired; please try again.".to_string();
        return render_login(
            &state,
            &headers,
            &next,
            email,
            Some(error),
            axum::http::StatusCode::FORBIDDEN,
        )
        .await;
    }
    match state.auth.login(email, form.get("password"), &ip).await {
        Ok((token, outcome)) => {
            let target = match outcome {
                LoginOutcome::SignedIn => next,
                LoginOutcome::NeedsCode => "/login/mfa".to_string(),
                LoginOutcome::NeedsEnrollment => "/account".to_string(),
            };
            let mut response = Redirect::to(&target).into_response();
            response
                .headers_mut()
                .append(header::SET_COOKIE, session_cookie(&state, &token));
            response.headers_mut().append(
                header::SET_COOKIE,
                cleared_cookie(&state, login_csrf_name(&state)),
            );
            Ok(response)
        }
        Err(
            e @ (AuthError::BadCredentials
            | AuthError::LockedOut { .. }
            | AuthError::RateLimited { .. }),
        ) => {
            let status = super::ApiError::Auth(AuthError::BadCredentials).status();
            let status = if retry_after(&e).is_some() {
                axum::http::StatusCode::TOO_MANY_REQUESTS
            } else {
                status
            };
            let retry = retry_after(&e);
            let mut response =
                render_login(&state, &headers, &next, email, Some(e.to_string()), status).await?;
            if let Some(secs) = retry {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            Ok(response)
        }
        Err(e) => Err(e.into()),
    }
}

async fn mfa_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, PageError> {
    let principal = caller.principal()?;
    if principal.session().is_some_and(|s| !s.mfa_pending) {
        return Ok(Redirect::to("/").into_response());
    }
    let user = state
        .auth
        .user(principal.user_id().unwrap_or_default())
        .await?;
    if !user.mfa_enabled {
        return Ok(Redirect::to("/account").into_response());
    }
    render_mfa(&state, principal, None, axum::http::StatusCode::OK)
}

fn render_mfa(
    state: &AppState,
    principal: &Principal,
    error: Option<String>,
    status: axum::http::StatusCode,
) -> Result<Response, PageError> {
    let html = state.pages.page("mfa.html", context! { title => "Authentication code", user => user_json(principal, None), error => error })?;
    Ok((status, Html(html)).into_response())
}

async fn mfa(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, PageError> {
    let principal = caller.principal()?;
    let form = Form::parse(&body);
    match state
        .auth
        .verify_mfa(&caller.actor(), principal, form.get("code"))
        .await
    {
        Ok(token) => {
            let mut response = Redirect::to("/").into_response();
            response
                .headers_mut()
                .append(header::SET_COOKIE, session_cookie(&state, &token));
            Ok(response)
        }
        Err(AuthError::MfaSessionEnded) => {
            let mut response = Redirect::to("/login").into_response();
            response.headers_mut().append(
                header::SET_COOKIE,
                cleared_cookie(&state, state.auth.cookie_name()),
            );
            Ok(response)
        }
        Err(e @ (AuthError::BadMfaCode | AuthError::LockedOut { .. })) => {
            let retry = retry_after(&e);
            let status = match retry {
                Some(_) => axum::http::StatusCode::TOO_MANY_REQUESTS,
                None => super::ApiError::Auth(AuthError::BadMfaCode).status(),
            };
            let mut response = render_mfa(&state, principal, Some(e.to_string()), status)?;
            if let Some(secs) = retry {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            Ok(response)
        }
        Err(e) => Err(e.into()),
    }
}

/// Where browsers reach this server: `alerts.external_url`, else the host the request named
/// (links the providers send people back to).
pub(super) fn public_base(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.config.alerts.external_url {
        return url.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if state.auth.config().behind_tls {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

async fn logout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let principal = caller.principal()?;
    let mut target = "/login".to_string();
    if let Some(session) = principal.session() {
        // Signed in through a provider that offers it: end the provider's session too, and
        // come back to the login page.
        let back = format!("{}/login", public_base(&state, &headers));
        if let Some(url) = state.auth.oidc_logout_url(session, &back).await {
            target = url;
        }
        state.auth.logout(&caller.actor(), session).await?;
    }
    let mut response = Redirect::to(&target).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cleared_cookie(&state, state.auth.cookie_name()),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_server_as_a_browser_reads_it() {
        assert_eq!(safe_next("/t/acme?from=now-1h"), "/t/acme?from=now-1h");
        for hostile in [
            "//evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "\\\\evil.example",
            "/\\evil.example",
            "\\/evil.example",
            "https://evil.example",
            " //evil.example",
            "/\u{0}/evil.example",
            "",
        ] {
            assert_eq!(safe_next(hostile), "/", "{hostile:?}");
        }
        assert_eq!(
            safe_next("/t/a\\b"),
            "/t/a/b",
            "as the browser will request it"
        );
    }
}
