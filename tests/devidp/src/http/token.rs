//! The token endpoint (RFC 6749 3.2) for the one public client: the authorization code, device
//! code, password and refresh token grants, each ending in the same answer.

use std::time::Instant;

use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::oauth_error::OAuthError;
use crate::flows::{self, Session};

/// The grant type of the device flow (RFC 8628 3.4).
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Every parameter any grant takes; which are required depends on `grant_type`.
#[derive(Debug, Default, Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    device_code: Option<String>,
    username: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
}

/// A successful answer (RFC 6749 5.1, OpenID Connect Core 3.1.3.3).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    access_token: String,
    id_token: String,
    token_type: &'static str,
    expires_in: i64,
    refresh_token: String,
    scope: String,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/token", post(token))
}

async fn token(
    State(state): State<AppState>,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Result<Response, OAuthError> {
    let Form(request) =
        form.map_err(|rejection| OAuthError::invalid_request(rejection.body_text()))?;
    let client_id = required(&request.client_id, "client_id")?;
    if client_id != state.issuer.client_id {
        return Err(OAuthError::invalid_client(client_id));
    }
    let grant_type = required(&request.grant_type, "grant_type")?;
    let now = Instant::now();
    let session = match grant_type {
        "authorization_code" => state.grants.redeem_code(
            required(&request.code, "code")?,
            client_id,
            required(&request.redirect_uri, "redirect_uri")?,
            required(&request.code_verifier, "code_verifier")?,
            now,
        )?,
        DEVICE_CODE_GRANT => {
            let device_code = required(&request.device_code, "device_code")?;
            state.grants.poll_device(device_code, client_id, now)?
        }
        "password" => {
            let username = required(&request.username, "username")?;
            let password = required(&request.password, "password")?;
            let user = state
                .users
                .authenticate(username, password)
                .ok_or_else(|| OAuthError::invalid_grant("wrong username or password"))?;
            Session::new(
                user.username,
                flows::grant_scope(request.scope.as_deref()),
                None,
            )
        }
        "refresh_token" => {
            let refresh_token = required(&request.refresh_token, "refresh_token")?;
            state
                .grants
                .redeem_refresh(refresh_token, client_id, request.scope.as_deref(), now)?
        }
        other => return Err(OAuthError::unsupported_grant_type(other)),
    };
    let answer = issue(&state, session, now)?;
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(answer),
    )
        .into_response())
}

/// Tokens for `session`: a JWT serving as access and ID token, and a refresh token. The user is
/// read again, so a refreshed token carries their groups as they are now.
fn issue(state: &AppState, session: Session, now: Instant) -> Result<TokenResponse, OAuthError> {
    let user = state
        .users
        .get(&session.username)
        .ok_or_else(|| OAuthError::invalid_grant("the user no longer exists"))?;
    let claims = state
        .issuer
        .claims_for(&user, jiff::Timestamp::now(), session.nonce.clone());
    let jwt = state
        .keys
        .sign(&claims)
        .map_err(|error| OAuthError::server_error(&error))?;
    let scope = session.scope.clone();
    let refresh_token = state
        .grants
        .issue_refresh(&state.issuer.client_id, session, now);
    Ok(TokenResponse {
        access_token: jwt.clone(),
        id_token: jwt,
        token_type: "Bearer",
        expires_in: claims.exp - claims.iat,
        refresh_token,
        scope,
    })
}

fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, OAuthError> {
    value
        .as_deref()
        .filter(|value| !value.is_empty())
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
}
