//! The platform's clock: what "now" is for metering and billing.
//!
//! Everything that depends on today's date (the running month, closing a month that has ended,
//! the lateness window of metering, the default range of usage) asks a [`Clock`] instead of the
//! system, so that the same code can be run with "now" at any chosen instant: the last second of
//! a month, the first second of the next, a leap day. Three kinds:
//!
//! - [`Clock::system`]: the system clock, as in production;
//! - [`Clock::offset_by`]: the system clock moved by a fixed offset, so that it runs at real
//!   speed from a chosen instant; processes given the same offset share one clock, which lets a
//!   check run the real operator and API at another date while the cluster keeps its own time;
//! - [`Clock::fixed`]: stopped at one instant, for unit tests of date logic.
//!
//! Reading the system clock is the one thing in this crate that looks outside it.

use jiff::{SignedDuration, Timestamp};

/// Where "now" comes from. Cheap to copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock(Source);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Source {
    #[default]
    System,
    Offset(SignedDuration),
    Fixed(Timestamp),
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Source::System)
    }

    /// The system clock moved by `offset` (negative: into the past). An offset of zero is the
    /// system clock.
    pub fn offset_by(offset: SignedDuration) -> Self {
        if offset.is_zero() {
            Self::system()
        } else {
            Self(Source::Offset(offset))
        }
    }

    /// The system clock moved by `seconds`.
    pub fn offset_by_seconds(seconds: i64) -> Self {
        Self::offset_by(SignedDuration::from_secs(seconds))
    }

    /// A clock that always reads `at`.
    pub fn fixed(at: Timestamp) -> Self {
        Self(Source::Fixed(at))
    }

    /// The offset from the system clock that makes this clock read `at` now.
    pub fn offset_to(at: Timestamp) -> SignedDuration {
        at.duration_since(Timestamp::now())
    }

    /// Whether this is the system clock, unmoved.
    pub fn is_system(&self) -> bool {
        self.0 == Source::System
    }

    /// Now. A moved clock saturates at the ends of what a timestamp can hold.
    pub fn now(&self) -> Timestamp {
        match self.0 {
            Source::System => Timestamp::now(),
            Source::Offset(offset) => {
                Timestamp::now().saturating_add(offset).unwrap_or_else(|_| {
                    if offset.is_negative() {
                        Timestamp::MIN
                    } else {
                        Timestamp::MAX
                    }
                })
            }
            Source::Fixed(at) => at,
        }
    }

    /// Now, cut to the whole second (the ledger's resolution).
    pub fn now_second(&self) -> Timestamp {
        let now = self.now();
        Timestamp::from_second(now.as_second()).unwrap_or(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_reads_its_instant_every_time() {
        let at: Timestamp = "2028-02-29T04:00:00Z".parse().expect("ts");
        let clock = Clock::fixed(at);
        assert_eq!(clock.now(), at);
        assert_eq!(clock.now(), at);
    }

    #[test]
    fn a_moved_clock_runs_at_real_speed_from_its_offset() {
        let target: Timestamp = "2028-02-29T04:00:00Z".parse().expect("ts");
        let clock = Clock::offset_by(Clock::offset_to(target));
        let read = clock.now();
        let drift = read.duration_since(target).abs();
        assert!(drift < SignedDuration::from_secs(60), "{read} vs {target}");
        assert!(clock.now() >= read);
    }

    #[test]
    fn a_zero_offset_is_the_system_clock() {
        assert!(Clock::offset_by_seconds(0).is_system());
        assert!(!Clock::offset_by_seconds(1).is_system());
    }

    #[test]
    fn an_absurd_offset_saturates_instead_of_failing() {
        let late = Clock::offset_by(SignedDuration::MAX);
        assert_eq!(late.now(), Timestamp::MAX);
        let early = Clock::offset_by(SignedDuration::MIN);
        assert_eq!(early.now(), Timestamp::MIN);
    }

    #[test]
    fn now_second_drops_the_fraction() {
        let clock = Clock::fixed("2026-12-31T15:59:59.75Z".parse().expect("ts"));
        assert_eq!(clock.now_second().to_string(), "2026-12-31T15:59:59Z");
    }
}
