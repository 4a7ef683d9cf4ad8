//! Error answers as RFC 6749 5.2 writes them: `{"error", "error_description"}`, 400, or 401 for
//! a client this provider does not know.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::flows::Refusal;

/// An error answer of the token, device authorization and admin endpoints.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
        }
    }

    /// A parameter is missing, repeated or malformed.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// The client is not this provider's client.
    pub fn invalid_client(client_id: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            format!("unknown client_id {client_id:?}"),
        )
    }

    /// The grant (code, credentials, refresh token) is not good.
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    /// The grant type is not one this provider knows.
    pub fn unsupported_grant_type(grant_type: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("grant_type {grant_type:?} is not supported"),
        )
    }

    /// The caller may not use this endpoint.
    pub fn forbidden(description: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "access_denied", description)
    }

    /// Something failed on this side; the cause is logged, not shown.
    pub fn server_error(cause: &dyn std::error::Error) -> Self {
        tracing::error!("request failed: {}", crate::server::chain(cause));
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "see the provider's log",
        )
    }
}

impl From<Refusal> for OAuthError {
    fn from(refusal: Refusal) -> Self {
        let (error, description) = match refusal {
            Refusal::InvalidGrant(why) => ("invalid_grant", why),
            Refusal::InvalidScope => ("invalid_scope", "the scope exceeds what was granted"),
            Refusal::AuthorizationPending => {
                ("authorization_pending", "the user has not decided yet")
            }
            Refusal::SlowDown => (
                "slow_down",
                "poll less often: the interval grew by 5 seconds",
            ),
            Refusal::AccessDenied => ("access_denied", "the user refused"),
            Refusal::ExpiredToken => ("expired_token", "the device code expired; start again"),
        };
        Self::new(StatusCode::BAD_REQUEST, error, description)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = Body {
            error: self.error,
            error_description: &self.description,
        };
        (
            self.status,
            [(header::CACHE_CONTROL, "no-store")],
            Json(body),
        )
            .into_response()
    }
}
