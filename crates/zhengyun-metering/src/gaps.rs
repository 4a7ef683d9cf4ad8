//! Gaps: spans of time the ledger does not measure as they happened. The sampler records each
//! one with the window that moves the checkpoint past it, so the ledger says what it does not
//! know instead of staying silent:
//!
//! - **unmetered**: nothing was written for the span (an outage longer than the backfill limit,
//!   a watch that stayed broken longer than the stale limit);
//! - **reconstructed**: the span was filled from the state found afterwards (an operator outage
//!   or a relist after a watch failure); objects that ended or changed within it are missing or
//!   counted at their later amount.
//!
//! A month whose time is not all measured cannot be closed until finance waives its gaps
//! ([`crate::closing::check_gaps`]); the part of a month before the ledger began counts as an
//! unmetered gap too.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::calendar::TimeRange;

/// How a span was (not) measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GapKind {
    /// Nothing was written for the span.
    Unmetered,
    /// The span was counted from the state found after it.
    Reconstructed,
}

impl GapKind {
    /// `unmetered` or `reconstructed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unmetered => "unmetered",
            Self::Reconstructed => "reconstructed",
        }
    }
}

impl fmt::Display for GapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for GapKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "unmetered" => Ok(Self::Unmetered),
            "reconstructed" => Ok(Self::Reconstructed),
            _ => Err(format!(
                "unknown gap kind {text:?}, expected unmetered or reconstructed"
            )),
        }
    }
}

/// Finance's acceptance of a month's gaps as they stood when it was given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Waiver {
    /// Who waived (the API principal).
    pub by: String,
    /// When.
    pub at: Timestamp,
    /// Why, in finance's words.
    pub reason: String,
}

/// One span the ledger does not measure as it happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gap {
    /// First second of the span.
    pub from: Timestamp,
    /// First second after it.
    pub to: Timestamp,
    /// Unmetered or reconstructed.
    pub kind: GapKind,
    /// What caused it.
    pub reason: String,
    /// Set once finance has waived it for a month it touches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waived: Option<Waiver>,
}

impl Gap {
    /// A gap over `[from, to)`, not waived.
    pub fn new(from: Timestamp, to: Timestamp, kind: GapKind, reason: impl Into<String>) -> Self {
        Self {
            from,
            to,
            kind,
            reason: reason.into(),
            waived: None,
        }
    }

    /// Whether the gap shares a second with `range`.
    pub fn overlaps(&self, range: &TimeRange) -> bool {
        self.from < range.end() && range.start() < self.to
    }
}

/// Why the part of a month before the ledger began is a gap.
pub const BEFORE_METERING: &str = "before metering began: the ledger starts later";

/// The gaps of the month spanning `range`: the recorded ones that overlap it, and, if the
/// ledger began (`origin`) after the month started or has never begun, the part before it.
/// `waived` is the month's waiver, which covers that part; recorded gaps carry their own.
/// Consecutive gaps alike in all but their bounds (one span recorded window by window) are
/// shown as one.
pub fn month_gaps(
    range: &TimeRange,
    origin: Option<Timestamp>,
    recorded: &[Gap],
    waived: Option<&Waiver>,
) -> Vec<Gap> {
    let mut gaps = Vec::new();
    let began = origin.unwrap_or(range.end());
    if began > range.start() {
        let mut head = Gap::new(
            range.start(),
            began.min(range.end()),
            GapKind::Unmetered,
            BEFORE_METERING,
        );
        head.waived = waived.cloned();
        gaps.push(head);
    }
    gaps.extend(recorded.iter().filter(|g| g.overlaps(range)).cloned());
    gaps.sort_by_key(|g| (g.from, g.to));
    let mut merged: Vec<Gap> = Vec::with_capacity(gaps.len());
    for gap in gaps {
        match merged.last_mut() {
            Some(last)
                if last.to == gap.from
                    && (last.kind, &last.reason, &last.waived)
                        == (gap.kind, &gap.reason, &gap.waived) =>
            {
                last.to = gap.to;
            }
            _ => merged.push(gap),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Calendar;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    #[test]
    fn a_month_before_the_ledger_began_is_one_unmetered_gap_and_a_month_after_has_none() {
        let calendar = Calendar::default();
        let november = calendar
            .month_range("2026-11".parse().expect("month"))
            .expect("range");
        let origin = Some(at("2026-11-10T00:00:00+08:00"));
        let gaps = month_gaps(&november, origin, &[], None);
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0].from, november.start());
        assert_eq!(gaps[0].to, at("2026-11-10T00:00:00+08:00"));
        assert_eq!(gaps[0].kind, GapKind::Unmetered);
        let october = calendar
            .month_range("2026-10".parse().expect("month"))
            .expect("range");
        let whole = month_gaps(&october, origin, &[], None);
        assert_eq!(
            (whole[0].from, whole[0].to),
            (october.start(), october.end())
        );
        let december = calendar
            .month_range("2026-12".parse().expect("month"))
            .expect("range");
        assert!(month_gaps(&december, origin, &[], None).is_empty());
        assert_eq!(month_gaps(&december, None, &[], None).len(), 1);
    }

    #[test]
    fn one_span_recorded_window_by_window_shows_as_one_gap() {
        let calendar = Calendar::default();
        let november = calendar
            .month_range("2026-11".parse().expect("month"))
            .expect("range");
        let piece =
            |from: &str, to: &str| Gap::new(at(from), at(to), GapKind::Reconstructed, "outage");
        let recorded = [
            piece("2026-11-02T10:00:00Z", "2026-11-02T11:00:00Z"),
            piece("2026-11-02T11:00:00Z", "2026-11-02T11:30:00Z"),
            piece("2026-11-03T11:00:00Z", "2026-11-03T11:30:00Z"),
        ];
        let gaps = month_gaps(&november, Some(november.start()), &recorded, None);
        assert_eq!(gaps.len(), 2);
        assert_eq!(
            (gaps[0].from, gaps[0].to),
            (at("2026-11-02T10:00:00Z"), at("2026-11-02T11:30:00Z"))
        );
    }

    #[test]
    fn recorded_gaps_belong_to_each_month_they_touch() {
        let calendar = Calendar::default();
        let across = Gap::new(
            at("2026-11-30T20:00:00+08:00"),
            at("2026-12-01T04:00:00+08:00"),
            GapKind::Reconstructed,
            "outage",
        );
        let origin = Some(at("2026-01-01T00:00:00+08:00"));
        for month in ["2026-11", "2026-12"] {
            let range = calendar
                .month_range(month.parse().expect("month"))
                .expect("range");
            let found = month_gaps(&range, origin, std::slice::from_ref(&across), None);
            assert_eq!(found, std::slice::from_ref(&across));
        }
        let october = calendar
            .month_range("2026-10".parse().expect("month"))
            .expect("range");
        assert!(month_gaps(&october, origin, &[across], None).is_empty());
    }
}
