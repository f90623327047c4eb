//! One's own account: change the password, enrol or remove a TOTP authenticator. Admins who
//! must use MFA land here after their password until they have enrolled.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::context;
use serde_json::{Value, json};

use super::AppState;
use super::access::{Access, Caller, Route};
use super::error::PageError;
use super::extract::{Form, user_json};
use super::login::session_cookie;
use crate::auth::{AuthError, MIN_PASSWORD_LEN, Principal};

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/account", Access::PartlySignedIn, account),
        Route::post("/account/password", Access::SignedIn, change_password),
        Route::post("/account/mfa/start", Access::PartlySignedIn, mfa_start),
        Route::post("/account/mfa/confirm", Access::PartlySignedIn, mfa_confirm),
        Route::post("/account/mfa/disable", Access::SignedIn, mfa_disable),
    ]
}

#[derive(Default)]
struct View {
    message: Option<String>,
    error: Option<String>,
    enrollment: Value,
    recovery_codes: Vec<String>,
}

async fn render(
    state: &AppState,
    principal: &Principal,
    view: View,
) -> Result<Response, PageError> {
    let user = state
        .auth
        .user(principal.user_id().unwrap_or_default())
        .await?;
    let pending = principal.session().is_some_and(|s| s.mfa_pending);
    if pending && user.mfa_enabled && view.recovery_codes.is_empty() {
        // The second factor exists but was not given yet: that is the login's MFA step.
        return Ok(Redirect::to("/login/mfa").into_response());
    }
    let status = if view.error.is_some() {
        axum::http::StatusCode::BAD_REQUEST
    } else {
        axum::http::StatusCode::OK
    };
    let html = state.pages.page(
        "account.html",
        context! {
            title => "Account",
            user => user_json(principal, None),
            must_enroll => pending && !user.mfa_enabled,
            mfa_enabled => user.mfa_enabled,
            message => view.message,
            error => view.error,
            enrollment => view.enrollment,
            recovery_codes => view.recovery_codes,
            min_password => MIN_PASSWORD_LEN,
        },
    )?;
    Ok((status, Html(html)).into_response())
}

async fn account(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, PageError> {
    render(&state, caller.principal()?, View::default()).await
}

async fn change_password(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, PageError> {
    let principal = caller.principal()?;
    let id = principal
        .user_id()
        .ok_or(AuthError::Forbidden("API keys have no password".into()))?;
    let form = Form::parse(&body);
    if !state.auth.check_password(id, form.get("current")).await? {
        let view = View {
            error: Some("The current password is wrong.".into()),
            ..View::default()
        };
        return render(&state, principal, view).await;
    }
    match state
        .auth
        .set_password(&caller.actor(), id, form.get("password"))
        .await
    {
        // Every session ended, this one included: sign in again with the new password.
        Ok(()) => Ok(Redirect::to("/login").into_response()),
        Err(AuthError::Invalid(message)) => {
            render(
                &state,
                principal,
                View {
                    error: Some(message),
                    ..View::default()
                },
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

async fn mfa_start(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, PageError> {
    let principal = caller.principal()?;
    let id = principal.user_id().ok_or(AuthError::Forbidden(
        "API keys have no authenticator".into(),
    ))?;
    let enrollment = state.auth.start_mfa_enrollment(id).await?;
    let qr = format!(
        "data:image/svg+xml;base64,{}",
        data_encoding::BASE64.encode(enrollment.qr_svg.as_bytes())
    );
    let view = View {
        enrollment: json!({"secret": enrollment.secret, "uri": enrollment.uri, "qr": qr}),
        ..View::default()
    };
    render(&state, principal, view).await
}

async fn mfa_confirm(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, PageError> {
    let principal = caller.principal()?;
    let form = Form::parse(&body);
    match state
        .auth
        .confirm_mfa_enrollment(&caller.actor(), principal, form.get("code"))
        .await
    {
        Ok((codes, new_token)) => {
            let view = View {
                recovery_codes: codes,
                ..View::default()
            };
            let mut response = render(&state, principal, view).await?;
            if let Some(token) = new_token {
                response
                    .headers_mut()
                    .append(header::SET_COOKIE, session_cookie(&state, &token));
            }
            Ok(response)
        }
        Err(e @ AuthError::BadMfaCode) => {
            let view = View {
                error: Some(format!("{e}; start again and use a fresh code")),
                ..View::default()
            };
            render(&state, principal, view).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn mfa_disable(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, PageError> {
    let principal = caller.principal()?;
    let id = principal.user_id().ok_or(AuthError::Forbidden(
        "API keys have no authenticator".into(),
    ))?;
    let form = Form::parse(&body);
    if !state.auth.check_password(id, form.get("current")).await? {
        return render(
            &state,
            principal,
            View {
                error: Some("The current password is wrong.".into()),
                ..View::default()
            },
        )
        .await;
    }
    state.auth.reset_mfa(&caller.actor(), id).await?;
    render(
        &state,
        principal,
        View {
            message: Some("Authenticator removed.".into()),
            ..View::default()
        },
    )
    .await
}
