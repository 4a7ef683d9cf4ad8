//! The grants in flight, kept in memory: authorization codes (`code`), device authorizations
//! (`device`) and refresh tokens (`refresh`). Each answers what a grant yields or why it yields
//! nothing; turning that into HTTP is the handlers' business.
//!
//! Every sign-in starts a *grant family*: the code or device authorization and every refresh
//! token that descends from it. A code presented a second time revokes its family's refresh
//! tokens (RFC 6749 4.1.2: the code may have been stolen).

mod code;
mod device;
mod refresh;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub use code::{CODE_LIFETIME, CodeRequest, is_pkce_string, loopback_redirect, s256};
pub use device::{DEVICE_INTERVAL, DEVICE_LIFETIME, DeviceStart, normalize_user_code};
pub use refresh::REFRESH_LIFETIME;

/// The scopes a client may ask for.
pub const SUPPORTED_SCOPES: [&str; 4] = ["openid", "profile", "email", "groups"];

/// What a completed sign-in established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Who signed in.
    pub username: String,
    /// The scope granted, space-separated.
    pub scope: String,
    /// The authorization request's nonce, echoed in the ID token.
    pub nonce: Option<String>,
    /// The grant family this session belongs to.
    family: String,
}

impl Session {
    /// A session of a new grant family.
    pub fn new(username: String, scope: String, nonce: Option<String>) -> Self {
        Self {
            username,
            scope,
            nonce,
            family: random_token(),
        }
    }
}

/// Why a grant yields no tokens, in the words of RFC 6749 5.2 and RFC 8628 3.5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The code, device code or refresh token is unknown, used, expired, or not this client's.
    InvalidGrant(&'static str),
    /// The scope asked for exceeds what was granted.
    InvalidScope,
    /// The user has not decided yet.
    AuthorizationPending,
    /// The device polls faster than it was told to.
    SlowDown,
    /// The user refused.
    AccessDenied,
    /// The device authorization expired before the user decided.
    ExpiredToken,
}

/// Every grant in flight, each kind keyed by the secret that redeems it.
#[derive(Debug, Default)]
pub struct Grants {
    codes: Mutex<HashMap<String, code::PendingCode>>,
    devices: Mutex<HashMap<String, device::DeviceAuthorization>>,
    refresh: Mutex<HashMap<String, refresh::RefreshGrant>>,
}

/// The scope granted for a request: `openid` and whatever else asked for is supported; all of
/// them when nothing is asked for.
pub fn grant_scope(asked: Option<&str>) -> String {
    let asked: Vec<&str> = asked.unwrap_or_default().split_whitespace().collect();
    SUPPORTED_SCOPES
        .iter()
        .filter(|scope| asked.is_empty() || **scope == "openid" || asked.contains(scope))
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// 256 random bits, base64url: codes and tokens nobody can guess.
fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

fn random_bytes<const N: usize>() -> [u8; N] {
    ring::rand::generate(&ring::rand::SystemRandom::new())
        .expect("the system's random source works")
        .expose()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_granted_scope_always_has_openid_and_only_supported_scopes() {
        assert_eq!(grant_scope(None), "openid profile email groups");
        assert_eq!(grant_scope(Some("groups admin")), "openid groups");
        assert_eq!(grant_scope(Some("openid email")), "openid email");
    }
}
