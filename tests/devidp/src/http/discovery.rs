//! What a relying party reads first: the discovery document (OpenID Connect Discovery 1.0) and
//! the keys that verify tokens (RFC 7517).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::AppState;
use crate::flows::SUPPORTED_SCOPES;
use crate::keys::JwkSet;

/// The body of `/.well-known/openid-configuration`.
#[derive(Debug, Serialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    device_authorization_endpoint: String,
    response_types_supported: [&'static str; 1],
    response_modes_supported: [&'static str; 1],
    grant_types_supported: [&'static str; 4],
    subject_types_supported: [&'static str; 1],
    id_token_signing_alg_values_supported: [&'static str; 1],
    token_endpoint_auth_methods_supported: [&'static str; 1],
    code_challenge_methods_supported: [&'static str; 1],
    scopes_supported: [&'static str; 4],
    claims_supported: [&'static str; 11],
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
}

async fn discovery(State(state): State<AppState>) -> Json<Discovery> {
    let issuer = state.issuer.url.clone();
    let endpoint = |path: &str| format!("{issuer}{path}");
    Json(Discovery {
        authorization_endpoint: endpoint("/authorize"),
        token_endpoint: endpoint("/token"),
        jwks_uri: endpoint("/jwks"),
        device_authorization_endpoint: endpoint("/device/code"),
        response_types_supported: ["code"],
        response_modes_supported: ["query"],
        grant_types_supported: [
            "authorization_code",
            "refresh_token",
            "password",
            "urn:ietf:params:oauth:grant-type:device_code",
        ],
        subject_types_supported: ["public"],
        id_token_signing_alg_values_supported: ["ES256"],
        // One public client, which proves itself with PKCE rather than a secret.
        token_endpoint_auth_methods_supported: ["none"],
        code_challenge_methods_supported: ["S256"],
        scopes_supported: SUPPORTED_SCOPES,
        claims_supported: [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "nbf",
            "name",
            "preferred_username",
            "email",
            "groups",
            "nonce",
        ],
        issuer,
    })
}

async fn jwks(State(state): State<AppState>) -> Json<JwkSet> {
    Json(state.keys.jwks())
}
