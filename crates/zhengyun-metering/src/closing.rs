//! When a month may be closed: once it has ended by the platform's [`Clock`](crate::Clock) and
//! the ledger is complete to its last second. Before that its statement would still change.
//! And only once every [gap](crate::gaps) of the month is waived: a month the ledger does not
//! measure whole is not complete by itself.

use std::fmt;

use jiff::Timestamp;

use crate::calendar::{Month, TimeRange};
use crate::gaps::Gap;

/// Why a month cannot be closed yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotClosable {
    /// The month has not ended.
    Running {
        /// The month.
        month: Month,
        /// Its end (the first instant of the next month).
        ends: Timestamp,
    },
    /// The month has ended but the ledger does not cover it to its end yet (the metering
    /// lateness window, or an operator outage).
    LedgerBehind {
        /// The month.
        month: Month,
        /// How far the ledger is complete, if it holds anything.
        covered: Option<Timestamp>,
        /// How far it must be complete.
        needed: Timestamp,
    },
    /// Part of the month is not measured (see [`crate::gaps`]) and finance has not waived it.
    UnresolvedGaps {
        /// The month.
        month: Month,
        /// The gaps not waived, oldest first.
        gaps: Vec<Gap>,
    },
}

impl fmt::Display for NotClosable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Running { month, ends } => {
                write!(
                    f,
                    "{month} is still running; it can be closed after it ends at {ends}"
                )
            }
            Self::LedgerBehind {
                month,
                covered,
                needed,
            } => {
                let covered = covered.map_or_else(|| "nothing yet".to_owned(), |at| at.to_string());
                write!(
                    f,
                    "the ledger is complete only until {covered}; {month} can be closed once it reaches {needed}"
                )
            }
            Self::UnresolvedGaps { month, gaps } => {
                write!(f, "{month} has {} metering gap(s) not waived:", gaps.len())?;
                for gap in gaps {
                    write!(
                        f,
                        " {} {}..{} ({});",
                        gap.kind, gap.from, gap.to, gap.reason
                    )?;
                }
                write!(
                    f,
                    " finance may waive them with POST /api/v1/statements/{month}/gaps/waive and a reason"
                )
            }
        }
    }
}

impl std::error::Error for NotClosable {}

/// Whether `month`, which spans `range`, can be closed at `now` with the ledger complete until
/// `covered`.
pub fn closable(
    month: Month,
    range: &TimeRange,
    now: Timestamp,
    covered: Option<Timestamp>,
) -> Result<(), NotClosable> {
    if now < range.end() {
        return Err(NotClosable::Running {
            month,
            ends: range.end(),
        });
    }
    if covered.is_none_or(|at| at < range.end()) {
        return Err(NotClosable::LedgerBehind {
            month,
            covered,
            needed: range.end(),
        });
    }
    Ok(())
}

/// Whether every gap of `month` (from [`crate::gaps::month_gaps`]) is waived.
pub fn check_gaps(month: Month, gaps: &[Gap]) -> Result<(), NotClosable> {
    let open: Vec<Gap> = gaps
        .iter()
        .filter(|g| g.waived.is_none())
        .cloned()
        .collect();
    if open.is_empty() {
        Ok(())
    } else {
        Err(NotClosable::UnresolvedGaps { month, gaps: open })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Calendar;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    #[test]
    fn a_month_is_running_until_its_last_second_has_passed() {
        let calendar = Calendar::default();
        let month: Month = "2026-12".parse().expect("month");
        let range = calendar.month_range(month).expect("range");
        let covered = Some(at("2027-01-01T00:00:00+08:00"));
        let last_second = at("2026-12-31T23:59:59+08:00");
        assert!(matches!(
            closable(month, &range, last_second, covered),
            Err(NotClosable::Running { .. })
        ));
        assert_eq!(
            closable(month, &range, at("2027-01-01T00:00:00+08:00"), covered),
            Ok(())
        );
    }

    #[test]
    fn an_ended_month_waits_for_the_ledger_to_reach_its_end() {
        let calendar = Calendar::default();
        let month: Month = "2026-12".parse().expect("month");
        let range = calendar.month_range(month).expect("range");
        let now = at("2027-01-01T00:01:00+08:00");
        let behind = closable(month, &range, now, Some(at("2026-12-31T23:59:59+08:00")));
        assert_eq!(
            behind.expect_err("behind").to_string(),
            "the ledger is complete only until 2026-12-31T15:59:59Z; 2026-12 can be closed once it reaches 2026-12-31T16:00:00Z"
        );
        assert!(closable(month, &range, now, None).is_err());
    }

    #[test]
    fn a_month_with_a_gap_closes_only_once_the_gap_is_waived() {
        use crate::gaps::{GapKind, Waiver, month_gaps};
        let calendar = Calendar::default();
        let month: Month = "2026-11".parse().expect("month");
        let range = calendar.month_range(month).expect("range");
        let outage = Gap::new(
            at("2026-11-01T00:00:00+08:00"),
            at("2026-11-03T00:00:00+08:00"),
            GapKind::Unmetered,
            "the operator was down longer than --metering-max-backfill",
        );
        let origin = Some(at("2026-10-01T00:00:00+08:00"));
        let gaps = month_gaps(&range, origin, std::slice::from_ref(&outage), None);
        let refused = check_gaps(month, &gaps).expect_err("a gap");
        assert!(
            refused.to_string().starts_with("2026-11 has 1 metering gap(s) not waived: unmetered 2026-10-31T16:00:00Z..2026-11-02T16:00:00Z"),
            "{refused}"
        );
        let mut waived = outage;
        waived.waived = Some(Waiver {
            by: "finance".to_owned(),
            at: at("2026-12-02T09:00:00+08:00"),
            reason: "estimated separately".to_owned(),
        });
        assert_eq!(
            check_gaps(month, &month_gaps(&range, origin, &[waived], None)),
            Ok(())
        );
        // A month the ledger began in has its head as a gap, waived by the month's waiver.
        let late = Some(at("2026-11-15T00:00:00+08:00"));
        assert!(check_gaps(month, &month_gaps(&range, late, &[], None)).is_err());
    }
}
