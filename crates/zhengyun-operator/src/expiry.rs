//! When a dev or test environment expires. The rule: an environment whose purpose allows an
//! expiry and which has `spec.expiresAt` is deleted at that moment (or as soon as the operator
//! sees it, if the moment is already past: an expiry is a promise that the environment is gone
//! by then, whoever wrote it). Once, about `notice` before, its owners are told (`ExpiresSoon`).
//! The decision is a pure function of the current time, so it is tested at its boundaries.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// What the operator does about an environment's expiry now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// It does not expire.
    Never,
    /// It expires later: look again after `recheck`.
    Later {
        /// Until the notice is due, or, once given, until the expiry.
        recheck: Duration,
    },
    /// It expires within the notice period and no notice was given for this expiry: give it,
    /// then look again after `remaining`.
    Notify {
        /// Until the expiry.
        remaining: Duration,
    },
    /// Its moment has come: delete it.
    Expired,
}

/// Decides about an environment that expires at `expires_at` (`None`: never, or a purpose that
/// does not expire), at `now`, with notice given `notice` ahead, `notified` saying whether the
/// notice for this very `expires_at` was already given.
pub fn decide(
    expires_at: Option<Timestamp>,
    now: Timestamp,
    notice: Duration,
    notified: bool,
) -> Expiry {
    let Some(at) = expires_at else {
        return Expiry::Never;
    };
    let remaining = now.duration_until(at);
    if remaining <= SignedDuration::ZERO {
        return Expiry::Expired;
    }
    let notice = SignedDuration::try_from(notice).unwrap_or(SignedDuration::MAX);
    let until_notice = remaining.saturating_sub(notice);
    let positive = |d: SignedDuration| Duration::try_from(d).unwrap_or(Duration::ZERO);
    match (notified, until_notice > SignedDuration::ZERO) {
        (false, true) => Expiry::Later {
            recheck: positive(until_notice),
        },
        (false, false) => Expiry::Notify {
            remaining: positive(remaining),
        },
        (true, _) => Expiry::Later {
            recheck: positive(remaining),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    #[test]
    fn an_environment_without_expiry_never_expires() {
        assert_eq!(
            decide(None, at("2026-03-01T00:00:00Z"), DAY, false),
            Expiry::Never
        );
    }

    #[test]
    fn before_the_notice_is_due_the_operator_looks_again_when_it_is() {
        let expiry = at("2026-03-10T12:00:00Z");
        assert_eq!(
            decide(Some(expiry), at("2026-03-09T11:59:59Z"), DAY, false),
            Expiry::Later {
                recheck: Duration::from_secs(1)
            }
        );
    }

    #[test]
    fn notice_is_given_from_exactly_one_lead_time_before_and_only_once() {
        let expiry = at("2026-03-10T12:00:00Z");
        assert_eq!(
            decide(Some(expiry), at("2026-03-09T12:00:00Z"), DAY, false),
            Expiry::Notify { remaining: DAY }
        );
        assert_eq!(
            decide(Some(expiry), at("2026-03-09T12:00:00Z"), DAY, true),
            Expiry::Later { recheck: DAY },
            "already notified: wait for the expiry itself"
        );
    }

    #[test]
    fn the_last_second_before_expiry_still_notifies_and_the_moment_itself_expires() {
        let expiry = at("2026-03-10T12:00:00Z");
        assert_eq!(
            decide(Some(expiry), at("2026-03-10T11:59:59Z"), DAY, false),
            Expiry::Notify {
                remaining: Duration::from_secs(1)
            }
        );
        assert_eq!(decide(Some(expiry), expiry, DAY, true), Expiry::Expired);
        assert_eq!(
            decide(Some(expiry), at("2026-03-10T12:00:00.001Z"), DAY, false),
            Expiry::Expired
        );
    }

    #[test]
    fn an_expiry_already_past_when_first_seen_expires_at_once_without_notice() {
        assert_eq!(
            decide(
                Some(at("2020-01-01T00:00:00Z")),
                at("2026-03-01T00:00:00Z"),
                DAY,
                false
            ),
            Expiry::Expired
        );
    }

    #[test]
    fn a_notice_longer_than_what_remains_is_given_at_once() {
        let expiry = at("2026-03-10T12:00:00Z");
        assert_eq!(
            decide(
                Some(expiry),
                at("2026-03-10T11:00:00Z"),
                Duration::MAX,
                false
            ),
            Expiry::Notify {
                remaining: Duration::from_secs(3600)
            }
        );
    }
}
