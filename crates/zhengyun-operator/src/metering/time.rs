//! The sampler's time: instants ([`Second`]) and lengths ([`Seconds`]) in whole seconds, the
//! resolution of the ledger's windows and checkpoint.

use std::ops::{Add, Sub};

use jiff::Timestamp;

/// An instant, as whole seconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Second(i64);

/// A length of time in whole seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Seconds(i64);

impl Second {
    /// The instant `at` seconds after the epoch.
    pub(crate) const fn at(at: i64) -> Self {
        Self(at)
    }

    /// The second holding `t`.
    pub(crate) fn of(t: Timestamp) -> Self {
        Self(t.as_second())
    }

    /// Seconds since the epoch, for the tracker, the health record and the logs.
    pub(crate) const fn get(self) -> i64 {
        self.0
    }

    /// As a timestamp, if it is within the range timestamps cover.
    pub(crate) fn timestamp(self) -> Option<Timestamp> {
        Timestamp::from_second(self.0).ok()
    }

    /// The first multiple of `period` after this instant: where the window holding it ends.
    pub(crate) fn window_end(self, period: Seconds) -> Second {
        Second(self.0 - self.0.rem_euclid(period.0) + period.0)
    }
}

impl Seconds {
    /// `n` seconds.
    pub(crate) const fn new(n: i64) -> Self {
        Self(n)
    }

    /// The number of seconds.
    pub(crate) const fn get(self) -> i64 {
        self.0
    }
}

impl From<u32> for Seconds {
    fn from(n: u32) -> Self {
        Self(i64::from(n))
    }
}

impl Add<Seconds> for Second {
    type Output = Second;
    fn add(self, rhs: Seconds) -> Second {
        Second(self.0.saturating_add(rhs.0))
    }
}

impl Sub<Seconds> for Second {
    type Output = Second;
    fn sub(self, rhs: Seconds) -> Second {
        Second(self.0.saturating_sub(rhs.0))
    }
}

impl Sub<Second> for Second {
    type Output = Seconds;
    fn sub(self, rhs: Second) -> Seconds {
        Seconds(self.0.saturating_sub(rhs.0))
    }
}

impl std::fmt::Display for Second {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.timestamp() {
            Some(t) => t.fmt(f),
            None => write!(f, "{}s", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_and_lengths_add_up_without_overflowing() {
        let t = Second::at(100);
        assert_eq!(t + Seconds::new(20), Second::at(120));
        assert_eq!(Second::at(120) - t, Seconds::new(20));
        assert_eq!(Second::at(i64::MAX) + Seconds::new(1), Second::at(i64::MAX));
    }
}
