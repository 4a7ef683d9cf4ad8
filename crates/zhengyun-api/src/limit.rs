//! Rate limit of failed authentication, per client address.
//!
//! Each unknown token costs database queries, and guessing tokens is the one thing an
//! anonymous caller can try. After [`AuthLimit::max_failures`] failed authentications from one
//! address within a fixed [`AuthLimit::window`], that address is answered 429 with
//! `Retry-After` until its window ends, before anything is looked up. Successful calls never
//! count. Memory is bounded: at most [`AuthLimit::max_clients`] addresses are remembered; when
//! full, windows that have ended are dropped first, then the oldest.
//!
//! So that one guesser does not lock out everyone behind the same address (a bureau's NAT), an
//! `Authorization` header that authenticated recently — within [`GOOD_FOR`], remembered as a
//! keyed 64-bit fingerprint, never the token, at most [`AuthLimit::max_clients`] of them — is
//! still looked up from a refused address; if that lookup fails, it is forgotten. A token
//! never seen before is refused from such an address until its window ends.
//!
//! The client address is the TCP peer. `X-Forwarded-For` is believed only when the peer is one
//! of the configured trusted proxies, and then only its last entry that is not itself a trusted
//! proxy (entries further left are whatever the client wrote). IPv6 addresses are counted by
//! their /64, the block one host or site usually holds.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    net::{IpAddr, Ipv6Addr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{extract::ConnectInfo, http::HeaderMap};

/// The limit's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthLimit {
    /// Failures allowed per address and window; the next call is refused.
    pub max_failures: u32,
    /// The length of a window, counted from an address's first failure in it.
    pub window: Duration,
    /// Addresses remembered at most.
    pub max_clients: usize,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for AuthLimit {
    fn default() -> Self {
        Self {
            max_failures: 20,
            window: Duration::from_secs(60),
            max_clients: 100_000,
            trusted_proxies: Vec::new(),
        }
    }
}

/// How long an `Authorization` header that authenticated is let through a refused address.
pub const GOOD_FOR: Duration = Duration::from_secs(3600);

/// Where the limiter reads the time; tests move it by hand.
pub type Now = Arc<dyn Fn() -> Instant + Send + Sync>;

#[derive(Clone, Copy, Debug)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Counts failed authentications per client address.
pub struct FailedAuthLimiter {
    limit: AuthLimit,
    now: Now,
    clients: Mutex<HashMap<IpAddr, Window>>,
    /// Fingerprints of headers that authenticated, and when they last did.
    good: Mutex<HashMap<u64, Instant>>,
    /// The key of the fingerprints, random per process.
    keys: RandomState,
}

impl std::fmt::Debug for FailedAuthLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailedAuthLimiter")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl Default for FailedAuthLimiter {
    fn default() -> Self {
        Self::new(AuthLimit::default())
    }
}

impl FailedAuthLimiter {
    /// A limiter on the monotonic system clock.
    pub fn new(limit: AuthLimit) -> Self {
        Self::with_clock(limit, Arc::new(Instant::now))
    }

    /// A limiter reading the time from `now`.
    pub fn with_clock(limit: AuthLimit, now: Now) -> Self {
        Self {
            limit,
            now,
            clients: Mutex::new(HashMap::new()),
            good: Mutex::new(HashMap::new()),
            keys: RandomState::new(),
        }
    }

    /// Whether `authorization` authenticated within [`GOOD_FOR`].
    pub fn recently_good(&self, authorization: &[u8]) -> bool {
        let now = (self.now)();
        let print = self.keys.hash_one(authorization);
        self.good
            .lock()
            .ok()
            .and_then(|good| good.get(&print).copied())
            .is_some_and(|at| now < at + GOOD_FOR)
    }

    /// Remembers that `authorization` authenticated.
    pub fn succeed(&self, authorization: &[u8]) {
        let now = (self.now)();
        let print = self.keys.hash_one(authorization);
        let Ok(mut good) = self.good.lock() else {
            return;
        };
        if !good.contains_key(&print) && good.len() >= self.limit.max_clients {
            good.retain(|_, at| now < *at + GOOD_FOR);
            if good.len() >= self.limit.max_clients
                && let Some(oldest) = good.iter().min_by_key(|(_, at)| **at).map(|(p, _)| *p)
            {
                good.remove(&oldest);
            }
        }
        good.insert(print, now);
    }

    /// Forgets `authorization` as good (it failed).
    pub fn forget(&self, authorization: &[u8]) {
        let print = self.keys.hash_one(authorization);
        if let Ok(mut good) = self.good.lock() {
            good.remove(&print);
        }
    }

    /// `Err(retry_after)` when `client` has used up its failures in the current window.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        let now = (self.now)();
        let Ok(clients) = self.clients.lock() else {
            return Ok(());
        };
        match clients.get(&client) {
            Some(w)
                if w.failures >= self.limit.max_failures && now < w.started + self.limit.window =>
            {
                Err(w.started + self.limit.window - now)
            }
            _ => Ok(()),
        }
    }

    /// Counts one failed authentication from `client`.
    pub fn fail(&self, client: IpAddr) {
        let now = (self.now)();
        let window = self.limit.window;
        let Ok(mut clients) = self.clients.lock() else {
            return;
        };
        if !clients.contains_key(&client) && clients.len() >= self.limit.max_clients {
            clients.retain(|_, w| now < w.started + window);
            if clients.len() >= self.limit.max_clients
                && let Some(oldest) = clients
                    .iter()
                    .min_by_key(|(_, w)| w.started)
                    .map(|(a, _)| *a)
            {
                clients.remove(&oldest);
            }
        }
        let entry = clients.entry(client).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now >= entry.started + window {
            *entry = Window {
                started: now,
                failures: 0,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
    }

    /// The number of addresses remembered.
    pub fn remembered(&self) -> usize {
        self.clients.lock().map(|c| c.len()).unwrap_or_default()
    }

    /// The address a request is counted under: see the module documentation. Without a peer
    /// address (a request built in a test) it is the unspecified address.
    pub fn client(&self, peer: Option<&ConnectInfo<SocketAddr>>, headers: &HeaderMap) -> IpAddr {
        let Some(ConnectInfo(peer)) = peer else {
            return IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        };
        let mut client = peer.ip().to_canonical();
        if self.limit.trusted_proxies.contains(&client) {
            let forwarded = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|a| a.trim().parse::<IpAddr>().ok())
                .map(|a| a.to_canonical())
                .collect::<Vec<_>>();
            if let Some(first_untrusted) = forwarded
                .iter()
                .rev()
                .find(|a| !self.limit.trusted_proxies.contains(a))
            {
                client = *first_untrusted;
            }
        }
        match client {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            v4 => v4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> (Arc<Mutex<Instant>>, Now) {
        let at = Arc::new(Mutex::new(Instant::now()));
        let read = at.clone();
        (at, Arc::new(move || *read.lock().expect("clock")))
    }

    fn limit(max_failures: u32, max_clients: usize) -> AuthLimit {
        AuthLimit {
            max_failures,
            window: Duration::from_secs(60),
            max_clients,
            trusted_proxies: vec!["10.0.0.1".parse().expect("ip")],
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn an_address_is_refused_after_its_failures_until_its_window_ends() {
        let (at, now) = clock();
        let limiter = FailedAuthLimiter::with_clock(limit(3, 10), now);
        for _ in 0..3 {
            assert_eq!(limiter.check(ip("192.0.2.1")), Ok(()));
            limiter.fail(ip("192.0.2.1"));
        }
        assert_eq!(limiter.check(ip("192.0.2.1")), Err(Duration::from_secs(60)));
        assert_eq!(limiter.check(ip("192.0.2.2")), Ok(()));
        *at.lock().expect("clock") += Duration::from_secs(45);
        assert_eq!(limiter.check(ip("192.0.2.1")), Err(Duration::from_secs(15)));
        *at.lock().expect("clock") += Duration::from_secs(15);
        assert_eq!(limiter.check(ip("192.0.2.1")), Ok(()));
        limiter.fail(ip("192.0.2.1"));
        assert_eq!(limiter.check(ip("192.0.2.1")), Ok(()));
    }

    #[test]
    fn a_good_token_is_remembered_for_an_hour_and_forgotten_when_it_fails() {
        let (at, now) = clock();
        let limiter = FailedAuthLimiter::with_clock(limit(1, 2), now);
        assert!(!limiter.recently_good(b"Bearer a"));
        limiter.succeed(b"Bearer a");
        assert!(limiter.recently_good(b"Bearer a"));
        assert!(!limiter.recently_good(b"Bearer b"));
        *at.lock().expect("clock") += GOOD_FOR;
        assert!(!limiter.recently_good(b"Bearer a"));
        limiter.succeed(b"Bearer a");
        limiter.forget(b"Bearer a");
        assert!(!limiter.recently_good(b"Bearer a"));
        for token in [&b"Bearer c"[..], b"Bearer d", b"Bearer e"] {
            limiter.succeed(token);
            *at.lock().expect("clock") += Duration::from_secs(1);
        }
        assert!(!limiter.recently_good(b"Bearer c"), "at most two are kept");
        assert!(limiter.recently_good(b"Bearer e"));
    }

    #[test]
    fn memory_is_bounded_dropping_ended_windows_then_the_oldest() {
        let (at, now) = clock();
        let limiter = FailedAuthLimiter::with_clock(limit(1, 3), now);
        for a in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
            limiter.fail(ip(a));
            *at.lock().expect("clock") += Duration::from_secs(1);
        }
        limiter.fail(ip("192.0.2.4"));
        assert_eq!(limiter.remembered(), 3);
        assert_eq!(
            limiter.check(ip("192.0.2.1")),
            Ok(()),
            "the oldest is dropped"
        );
        assert!(limiter.check(ip("192.0.2.4")).is_err());
        *at.lock().expect("clock") += Duration::from_secs(120);
        limiter.fail(ip("192.0.2.5"));
        assert_eq!(limiter.remembered(), 1, "ended windows are dropped first");
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let limiter = FailedAuthLimiter::new(limit(1, 10));
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "198.51.100.7, 203.0.113.9, 10.0.0.1"
                .parse()
                .expect("header"),
        );
        let proxy = ConnectInfo("10.0.0.1:4000".parse().expect("addr"));
        let stranger = ConnectInfo("192.0.2.1:4000".parse().expect("addr"));
        assert_eq!(limiter.client(Some(&proxy), &headers), ip("203.0.113.9"));
        assert_eq!(limiter.client(Some(&stranger), &headers), ip("192.0.2.1"));
        assert_eq!(
            limiter.client(Some(&proxy), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_bit_prefix() {
        let limiter = FailedAuthLimiter::new(limit(1, 10));
        let a = ConnectInfo("[2001:db8:1:2:aaaa::1]:4000".parse().expect("addr"));
        let b = ConnectInfo("[2001:db8:1:2:bbbb::9]:4000".parse().expect("addr"));
        let mapped = ConnectInfo("[::ffff:192.0.2.1]:4000".parse().expect("addr"));
        let none = HeaderMap::new();
        assert_eq!(
            limiter.client(Some(&a), &none),
            limiter.client(Some(&b), &none)
        );
        assert_eq!(limiter.client(Some(&mapped), &none), ip("192.0.2.1"));
    }
}
