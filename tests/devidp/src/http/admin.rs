//! Test hooks, answered only to clients on this machine: rotate the signing key, add or replace
//! a user, and mint a token with exactly the properties a test needs, defects included.

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::oauth_error::OAuthError;
use crate::tls::Peer;
use crate::tokens::Claims;
use crate::users::User;

/// Proof that the request came from a loopback address.
#[derive(Debug)]
struct Loopback;

impl<S: Send + Sync> FromRequestParts<S> for Loopback {
    type Rejection = OAuthError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<ConnectInfo<Peer>>() {
            Some(ConnectInfo(peer)) if peer.is_loopback() => Ok(Loopback),
            _ => Err(OAuthError::forbidden(
                "test hooks answer loopback clients only",
            )),
        }
    }
}

/// Which key signs a minted token.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Signer {
    /// The key that signs every token now.
    #[default]
    Current,
    /// A throwaway key outside the JWKS, under the current key's kid.
    Foreign,
}

/// The body of `/admin/mint`. Times are seconds from now.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MintRequest {
    sub: String,
    name: String,
    #[serde(default)]
    groups: Vec<String>,
    aud: Option<String>,
    issuer: Option<String>,
    expires_in: Option<i64>,
    not_before_in: Option<i64>,
    #[serde(default)]
    signer: Signer,
}

#[derive(Debug, Serialize)]
struct Minted {
    token: String,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/rotate", post(rotate))
        .route("/admin/users", post(upsert_user))
        .route("/admin/mint", post(mint))
}

async fn rotate(_: Loopback, State(state): State<AppState>) -> Result<Json<Value>, OAuthError> {
    let kid = state
        .keys
        .rotate()
        .map_err(|error| OAuthError::server_error(&error))?;
    tracing::info!(kid, "rotated the signing key");
    Ok(Json(json!({ "kid": kid })))
}

async fn upsert_user(
    _: Loopback,
    State(state): State<AppState>,
    body: Result<Json<User>, JsonRejection>,
) -> Result<StatusCode, OAuthError> {
    let Json(user) =
        body.map_err(|rejection| OAuthError::invalid_request(rejection.body_text()))?;
    if user.username.is_empty() {
        return Err(OAuthError::invalid_request("username is required"));
    }
    state.users.upsert(user);
    Ok(StatusCode::NO_CONTENT)
}

async fn mint(
    _: Loopback,
    State(state): State<AppState>,
    body: Result<Json<MintRequest>, JsonRejection>,
) -> Result<Json<Minted>, OAuthError> {
    let Json(request) =
        body.map_err(|rejection| OAuthError::invalid_request(rejection.body_text()))?;
    let now = jiff::Timestamp::now().as_second();
    let issuer = &state.issuer;
    let claims = Claims {
        iss: request.issuer.unwrap_or_else(|| issuer.url.clone()),
        aud: request.aud.unwrap_or_else(|| issuer.client_id.clone()),
        exp: now + request.expires_in.unwrap_or(issuer.lifetime.as_secs()),
        iat: now,
        nbf: now + request.not_before_in.unwrap_or(0),
        preferred_username: request.sub.clone(),
        sub: request.sub,
        name: request.name,
        email: None,
        groups: request.groups,
        nonce: None,
    };
    let token = match request.signer {
        Signer::Current => state.keys.sign(&claims),
        Signer::Foreign => state.keys.sign_foreign(&claims),
    }
    .map_err(|error| OAuthError::server_error(&error))?;
    Ok(Json(Minted { token }))
}
