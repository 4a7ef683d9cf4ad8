//! Authentications remembered for a second, so that a client making many calls costs the
//! database one token lookup a second rather than one per call.
//!
//! Only successful lookups are kept, by the secret's digest (never the secret), for at most
//! [`TOKEN_CACHE_TTL`] and never past the token's expiry. Revoking through this process
//! forgets every entry at once; a token revoked elsewhere (another replica, the database) stops
//! working within [`TOKEN_CACHE_TTL`].

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use zhengyun_store::Principal;

/// The longest an authentication is reused.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(1);

/// Entries kept before the stale ones are swept.
const SWEEP_ABOVE: usize = 4096;

/// Recent successful authentications, by secret digest.
#[derive(Debug, Default)]
pub struct TokenCache(Mutex<HashMap<[u8; 32], (Instant, Principal)>>);

impl TokenCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (Instant, Principal)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The principal `digest` authenticated as less than [`TOKEN_CACHE_TTL`] before `now`, if
    /// its token has not expired at `today`.
    pub fn get(
        &self,
        digest: &[u8; 32],
        now: Instant,
        today: jiff::Timestamp,
    ) -> Option<Principal> {
        let entries = self.entries();
        let (at, principal) = entries.get(digest)?;
        let fresh = now.saturating_duration_since(*at) < TOKEN_CACHE_TTL;
        (fresh && principal.expires_at > today).then(|| principal.clone())
    }

    /// Remembers that `digest` authenticated as `principal` at `now`.
    pub fn put(&self, digest: [u8; 32], principal: Principal, now: Instant) {
        let mut entries = self.entries();
        if entries.len() >= SWEEP_ABOVE {
            entries.retain(|_, (at, _)| now.saturating_duration_since(*at) < TOKEN_CACHE_TTL);
        }
        entries.insert(digest, (now, principal));
    }

    /// Forgets every authentication, as when a token is revoked here.
    pub fn clear(&self) {
        self.entries().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zhengyun_store::{Role, TokenId};

    fn principal(expires_at: jiff::Timestamp) -> Principal {
        Principal {
            token: "0123456789abcdef".parse::<TokenId>().expect("id"),
            role: Role::Finance,
            bureau: None,
            bureau_uid: None,
            description: "test".to_owned(),
            expires_at,
        }
    }

    fn tomorrow() -> jiff::Timestamp {
        jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24)
    }

    #[test]
    fn an_authentication_is_reused_for_less_than_a_second() {
        let cache = TokenCache::default();
        let now = Instant::now();
        let today = jiff::Timestamp::now();
        cache.put([1; 32], principal(tomorrow()), now);
        assert!(cache.get(&[1; 32], now, today).is_some());
        let almost = now + TOKEN_CACHE_TTL - Duration::from_millis(1);
        assert!(cache.get(&[1; 32], almost, today).is_some());
        assert!(cache.get(&[1; 32], now + TOKEN_CACHE_TTL, today).is_none());
        assert!(cache.get(&[2; 32], now, today).is_none());
    }

    #[test]
    fn an_expired_token_is_never_reused() {
        let cache = TokenCache::default();
        let now = Instant::now();
        let expiry = jiff::Timestamp::now();
        cache.put([1; 32], principal(expiry), now);
        assert!(cache.get(&[1; 32], now, expiry).is_none());
    }

    #[test]
    fn clearing_forgets_every_authentication() {
        let cache = TokenCache::default();
        let now = Instant::now();
        cache.put([1; 32], principal(tomorrow()), now);
        cache.clear();
        assert!(cache.get(&[1; 32], now, jiff::Timestamp::now()).is_none());
    }
}
