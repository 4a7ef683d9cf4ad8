//! The HTTP face of the provider: one module per endpoint family, merged here, with a log line
//! for every request.

mod admin;
mod authorize;
mod device;
mod discovery;
mod oauth_error;
mod pages;
mod token;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::middleware::{self, Next};
use axum::response::Response;

use crate::flows::Grants;
use crate::keys::KeyRing;
use crate::tls::Peer;
use crate::tokens::Issuer;
use crate::users::Directory;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Who issues tokens, for whom, for how long.
    pub issuer: Arc<Issuer>,
    /// The signing keys.
    pub keys: Arc<KeyRing>,
    /// The people who can sign in.
    pub users: Arc<Directory>,
    /// The grants in flight.
    pub grants: Arc<Grants>,
}

/// Every endpoint of the provider.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(discovery::router())
        .merge(authorize::router())
        .merge(token::router())
        .merge(device::router())
        .merge(admin::router())
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// One line per request: who, what, the outcome and how long it took. The query string is left
/// out (it may carry codes), and bodies are never looked at, so no password or token is logged.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let peer = request
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|ConnectInfo(Peer(address))| address.to_string())
        .unwrap_or_default();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    tracing::info!(
        %peer,
        %method,
        path,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis(),
        "request"
    );
    response
}
