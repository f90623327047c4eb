//! Sign-in through an OpenID provider. `/login/oidc/{provider}` sends the browser to the
//! provider with a fresh state, also kept in a cookie so the callback is accepted only in the
//! browser that started it (`SameSite=Lax`: the provider's redirect back is a cross-site
//! navigation, which `Strict` cookies do not ride). `/login/oidc/{provider}/callback` hands
//! what came back to `auth`, then lands on a small page that moves on by itself: the session
//! cookie is `Strict`, and a redirect still inside the provider's cross-site chain would not
//! carry it, so the next request must start on this site.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::context;

use super::AppState;
use super::access::{Access, Route};
use super::error::PageError;
use super::extract::{client_ip, cookie};
use super::login::{public_base, render_login, safe_next, session_cookie};
use crate::auth::{AuthError, OidcCallback};

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/login/oidc/{provider}", Access::Public, start),
        Route::get("/login/oidc/{provider}/callback", Access::Public, callback),
    ]
}

/// How long the browser holds the state: as long as the server keeps the pending sign-in.
const STATE_COOKIE_SECS: u64 = 600;

fn state_cookie_name(state: &AppState) -> &'static str {
    if state.auth.config().behind_tls {
        "__Host-opsboard_oidc"
    } else {
        "opsboard_oidc"
    }
}

fn state_cookie(state: &AppState, value: &str, max_age: u64) -> HeaderValue {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let text = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        state_cookie_name(state)
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The callback URL registered at the provider: as configured, else on this server's
/// public address.
fn redirect_url(state: &AppState, headers: &HeaderMap, provider: &str) -> String {
    let configured = state
        .auth
        .oidc_provider(provider)
        .ok()
        .and_then(|p| p.redirect_url.clone());
    configured.unwrap_or_else(|| {
        format!(
            "{}/login/oidc/{provider}/callback",
            public_base(state, headers)
        )
    })
}

#[derive(serde::Deserialize)]
struct StartParams {
    next: Option<String>,
}

async fn start(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    request: Request,
) -> Result<Response, PageError> {
    let headers = request.headers().clone();
    let params: StartParams = serde_urlencoded::from_str(request.uri().query().unwrap_or(""))
        .unwrap_or(StartParams { next: None });
    let next = safe_next(params.next.as_deref().unwrap_or("/"));
    let redirect = redirect_url(&state, &headers, &provider);
    match state.auth.oidc_start(&provider, &redirect, &next).await {
        Ok(started) => {
            let mut response = Redirect::to(&started.url).into_response();
            response.headers_mut().append(
                header::SET_COOKIE,
                state_cookie(&state, &started.state, STATE_COOKIE_SECS),
            );
            Ok(response)
        }
        Err(AuthError::SignInRefused(message)) => {
            render_login(
                &state,
                &headers,
                &next,
                "",
                Some(message),
                StatusCode::BAD_GATEWAY,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(serde::Deserialize, Default)]
struct CallbackParams {
    #[serde(default)]
    state: String,
    #[serde(default)]
    code: String,
    error: Option<String>,
}

async fn callback(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    request: Request,
) -> Result<Response, PageError> {
    let ip = client_ip(&state, &request);
    let headers = request.headers().clone();
    let params: CallbackParams =
        serde_urlencoded::from_str(request.uri().query().unwrap_or("")).unwrap_or_default();
    let redirect = redirect_url(&state, &headers, &provider);
    let callback = OidcCallback {
        state: &params.state,
        code: &params.code,
        error: params.error.as_deref(),
        browser_state: cookie(&headers, state_cookie_name(&state)),
    };
    let outcome = state
        .auth
        .oidc_finish(&provider, &redirect, &callback, &ip)
        .await;
    let mut response = match outcome {
        Ok((token, next)) => {
            let label = state
                .auth
                .oidc_provider(&provider)
                .map_or(provider.clone(), |p| p.label().to_string());
            let html = state.pages.page(
                "signed_in.html",
                context! { title => "Signed in", provider => label, next => next, refresh_to => next },
            )?;
            let mut response = Html(html).into_response();
            response
                .headers_mut()
                .append(header::SET_COOKIE, session_cookie(&state, &token));
            response
        }
        Err(AuthError::SignInRefused(message)) => {
            render_login(
                &state,
                &headers,
                "/",
                "",
                Some(message),
                StatusCode::FORBIDDEN,
            )
            .await?
        }
        Err(e) => return Err(e.into()),
    };
    response
        .headers_mut()
        .append(header::SET_COOKIE, state_cookie(&state, "", 0));
    Ok(response)
}
