//! `zhengyun-devidp`: a development OpenID Connect provider.
//!
//! It stands in for a district's single sign-on (统一身份认证) in `make run` and the end-to-end
//! tests: it serves discovery, a JWKS, the authorization code flow with PKCE for loopback
//! clients, the device flow, the password and refresh grants, and test hooks that rotate keys,
//! add users and mint tokens with chosen defects. Tokens are ES256 JWTs signed with keys kept in
//! the state directory, served over HTTPS with a certificate from a test authority made there.
//! `scripts/idp.sh` starts and stops it for `make run` and the end-to-end tests.
//!
//! Endpoints (see the `http` modules):
//!
//! | endpoint | what |
//! |---|---|
//! | `GET /.well-known/openid-configuration` | discovery |
//! | `GET /jwks` | every signing key |
//! | `GET, POST /authorize` | sign-in form, code to a loopback redirect URI (PKCE S256) |
//! | `POST /token` | `authorization_code`, device code, `password`, `refresh_token` grants |
//! | `POST /device/code`, `GET, POST /device` | device flow: start, approve or deny |
//! | `POST /admin/rotate`, `/admin/users`, `/admin/mint` | test hooks, loopback clients only |
//!
//! The state directory holds `ca.crt` (the authority clients trust), `tls.crt` and `tls.key`
//! (the serving certificate for 127.0.0.1, localhost and ::1), `keys/NNNN.pem` (signing keys,
//! the highest number signs) and, while serving, `issuer` (the issuer URL).

pub mod cli;
mod files;
pub mod flows;
mod http;
pub mod keys;
mod server;
pub mod tls;
pub mod tokens;
pub mod users;

pub use server::{Config, Running, start};

use std::path::PathBuf;

/// Why the provider could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of the state directory or the users file could not be read or written.
    #[error("unable to {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The users file is not the YAML this provider expects.
    #[error("unable to read the users of {path}")]
    Users {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    /// A signing key file holds no usable P-256 key.
    #[error("unable to load the signing key {path}: {reason}")]
    SigningKey { path: PathBuf, reason: String },
    /// The test authority or the serving certificate could not be made or loaded.
    #[error("unable to {action} the serving certificate: {reason}")]
    Certificate {
        action: &'static str,
        reason: String,
    },
    /// A token could not be signed.
    #[error("unable to sign a token")]
    Sign(#[source] jsonwebtoken::errors::Error),
    /// Serving stopped with an error.
    #[error("unable to go on serving")]
    Serve(#[source] std::io::Error),
    /// The listening socket could not be bound.
    #[error("unable to listen on {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
