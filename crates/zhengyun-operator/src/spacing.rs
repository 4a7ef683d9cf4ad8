//! At most one write per key in a given interval: [`Spacing`].
//!
//! A bureau's rollup (allocation, usage, the number of environments) changes with every
//! environment admitted or counted. When hundreds arrive at once, writing the rollup after each
//! would cost the API server one status write of the Bureau per change; spacing the writes keeps
//! the first one immediate and folds the rest of a burst into one write per interval, which
//! always carries the latest figures. An environment's usage, which changes with every pod its
//! namespace starts or stops, is reported the same way.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When each key was last written, and how far apart writes of one key must be.
#[derive(Debug)]
pub(crate) struct Spacing {
    interval: Duration,
    last: Mutex<HashMap<String, Instant>>,
}

impl Spacing {
    /// Writes of one key at least `interval` apart.
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: Mutex::default(),
        }
    }

    /// How long a write of `key` must still wait at `now`: `None` if it may go now.
    pub(crate) fn wait(&self, key: &str, now: Instant) -> Option<Duration> {
        let last = self.lock();
        let since = now.saturating_duration_since(*last.get(key)?);
        (since < self.interval).then(|| self.interval - since)
    }

    /// Records a write of `key` made at `now`, and forgets keys written long enough ago that
    /// they no longer hold anything back.
    pub(crate) fn wrote(&self, key: &str, now: Instant) {
        let mut last = self.lock();
        last.retain(|_, at| now.saturating_duration_since(*at) < self.interval);
        last.insert(key.to_owned(), now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_write_goes_at_once_and_the_next_waits_out_the_rest_of_the_interval() {
        let spacing = Spacing::new(Duration::from_secs(2));
        let t0 = Instant::now();
        assert_eq!(spacing.wait("wjw", t0), None);
        spacing.wrote("wjw", t0);
        let half = t0 + Duration::from_millis(500);
        assert_eq!(spacing.wait("wjw", half), Some(Duration::from_millis(1500)));
        assert_eq!(spacing.wait("wjw", t0 + Duration::from_secs(2)), None);
    }

    #[test]
    fn keys_are_spaced_independently() {
        let spacing = Spacing::new(Duration::from_secs(2));
        let t0 = Instant::now();
        spacing.wrote("wjw", t0);
        assert_eq!(spacing.wait("jw", t0), None);
        assert!(spacing.wait("wjw", t0).is_some());
    }

    #[test]
    fn keys_written_longer_ago_than_the_interval_are_forgotten() {
        let spacing = Spacing::new(Duration::from_secs(2));
        let t0 = Instant::now();
        spacing.wrote("wjw", t0);
        spacing.wrote("jw", t0 + Duration::from_secs(3));
        assert_eq!(spacing.lock().len(), 1);
        assert_eq!(spacing.wait("wjw", t0 + Duration::from_secs(3)), None);
    }
}
