//! Whether the sampler's view of the cluster is current, and what the ledger must say about
//! the time it was not. Pure: the sampler reports watch failures and lists with the second they
//! happened.
//!
//! Each of the three metering watches (Environments, Pods, PersistentVolumeClaims) is *broken*
//! from the second it fails or starts a list until that list is complete. A window may close only
//! up to the second the first current break began: the tracker's state after it is the last
//! known, not the current one, and a written window is final.
//!
//! When every watch is current again, the span `[first break, now)` was not watched:
//!
//! - up to `--metering-lateness` long, it is ordinary watch delay and nothing is recorded;
//! - at start-up (from the checkpoint to the first complete lists), or after a watch failure up
//!   to `--metering-max-stale` long, it is counted from the state found at its end (the outage
//!   rule) and recorded as a **reconstructed** gap;
//! - after a longer watch failure, nothing is counted for it and it is recorded as an
//!   **unmetered** gap: a guess over a long span is worse than a stated hole.

use std::collections::HashSet;

use jiff::Timestamp;
use zhengyun_metering::{Gap, GapKind};

use super::tracker::{Source, SourceClass};

/// Why a start-up is a reconstructed gap.
pub const RESTARTED: &str = "metering was not running (operator start, restart or outage): \
     counted from the state found when it started";
/// Why a healed watch failure is a reconstructed gap.
pub const WATCH_HEALED: &str = "a metering watch failed or relisted: counted from the state \
     found when it recovered";
/// Why a long watch failure is an unmetered gap.
pub const WATCH_STALE: &str = "a metering watch failed for longer than --metering-max-stale: \
     not metered";
/// Why time beyond the backfill limit is an unmetered gap.
pub const BEYOND_BACKFILL: &str = "the operator was down longer than --metering-max-backfill: \
     not metered";

/// A span during which the sampler's view was not current.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outage {
    /// When the first break began (the checkpoint, at start-up).
    pub from: i64,
    /// When every watch was current again.
    pub to: i64,
    /// Whether it is the sampler's start-up.
    pub starting: bool,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Health {
    seen: [HashSet<Source>; 3],
    broken: [Option<i64>; 3],
    starting: bool,
}

fn slot(class: SourceClass) -> usize {
    match class {
        SourceClass::Quotas => 0,
        SourceClass::Pods => 1,
        SourceClass::Claims => 2,
    }
}

impl Health {
    /// A sampler that has seen nothing yet: its view is not current since `since`, the
    /// checkpoint it resumes from.
    pub fn new(since: i64) -> Self {
        Self {
            seen: Default::default(),
            broken: [Some(since); 3],
            starting: true,
        }
    }

    /// Whether every watch is current.
    pub fn ready(&self) -> bool {
        self.broken.iter().all(Option::is_none)
    }

    /// The second up to which the view is known current at `now`: windows may close up to it.
    pub fn current_until(&self, now: i64) -> i64 {
        self.broken.iter().flatten().fold(now, |a, b| a.min(*b))
    }

    /// The watch of `class` failed at `now` (it will list again).
    pub fn failed(&mut self, class: SourceClass, now: i64) {
        self.broken[slot(class)].get_or_insert(now);
    }

    /// The watch of `class` starts a list at `now`.
    pub fn relisting(&mut self, class: SourceClass, now: i64) {
        let i = slot(class);
        self.seen[i].clear();
        self.broken[i].get_or_insert(now);
    }

    /// `source` is in the list of `class` being received.
    pub fn seen(&mut self, class: SourceClass, source: Source) {
        self.seen[slot(class)].insert(source);
    }

    /// The sources listed for `class`, forgotten here.
    pub fn take_seen(&mut self, class: SourceClass) -> HashSet<Source> {
        std::mem::take(&mut self.seen[slot(class)])
    }

    /// The list of `class` is complete at `now`. If that makes every watch current, returns the
    /// span the view was not.
    pub fn listed(&mut self, class: SourceClass, now: i64) -> Option<Outage> {
        let from = self.current_until(now);
        self.broken[slot(class)] = None;
        if !self.ready() {
            return None;
        }
        let starting = std::mem::replace(&mut self.starting, false);
        Some(Outage {
            from,
            to: now.max(from),
            starting,
        })
    }
}

/// What the ledger records for `outage` (see the module documentation), if anything.
pub fn gap_of(outage: Outage, lateness: i64, max_stale: i64) -> Option<Gap> {
    let length = outage.to - outage.from;
    if length <= lateness {
        return None;
    }
    let (kind, reason) = if outage.starting {
        (GapKind::Reconstructed, RESTARTED)
    } else if length > max_stale {
        (GapKind::Unmetered, WATCH_STALE)
    } else {
        (GapKind::Reconstructed, WATCH_HEALED)
    };
    let from = Timestamp::from_second(outage.from).ok()?;
    let to = Timestamp::from_second(outage.to).ok()?;
    Some(Gap::new(from, to, kind, reason))
}

/// The parts of `pending` gaps before `end` (to record with a window ending there), and the
/// parts after it (to record later).
pub fn split_gaps(pending: &[Gap], end: i64) -> (Vec<Gap>, Vec<Gap>) {
    let Ok(cut) = Timestamp::from_second(end) else {
        return (Vec::new(), pending.to_vec());
    };
    let (mut now, mut later) = (Vec::new(), Vec::new());
    for gap in pending {
        if gap.to <= cut {
            now.push(gap.clone());
        } else if gap.from >= cut {
            later.push(gap.clone());
        } else {
            now.push(Gap {
                to: cut,
                ..gap.clone()
            });
            later.push(Gap {
                from: cut,
                ..gap.clone()
            });
        }
    }
    (now, later)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_793_872_800;

    fn listed_all(health: &mut Health, now: i64) -> Option<Outage> {
        let mut healed = None;
        for class in [SourceClass::Quotas, SourceClass::Pods, SourceClass::Claims] {
            healed = health.listed(class, now);
        }
        healed
    }

    #[test]
    fn nothing_closes_before_the_first_complete_lists_and_the_start_up_is_one_outage() {
        let mut health = Health::new(T0);
        assert!(!health.ready());
        assert_eq!(health.current_until(T0 + 500), T0);
        assert_eq!(health.listed(SourceClass::Quotas, T0 + 400), None);
        assert_eq!(
            listed_all(&mut health, T0 + 500),
            Some(Outage {
                from: T0,
                to: T0 + 500,
                starting: true
            })
        );
        assert!(health.ready());
        assert_eq!(health.current_until(T0 + 600), T0 + 600);
    }

    #[test]
    fn a_relist_stops_windows_at_its_start_until_it_completes() {
        let mut health = Health::new(T0);
        listed_all(&mut health, T0 + 1);
        health.relisting(SourceClass::Pods, T0 + 100);
        assert!(!health.ready());
        assert_eq!(health.current_until(T0 + 4_000), T0 + 100);
        let healed = health.listed(SourceClass::Pods, T0 + 130).expect("healed");
        assert_eq!(
            (healed.from, healed.to, healed.starting),
            (T0 + 100, T0 + 130, false)
        );
    }

    #[test]
    fn a_failed_watch_stops_windows_at_the_failure_until_it_has_listed_again() {
        let mut health = Health::new(T0);
        listed_all(&mut health, T0 + 1);
        health.failed(SourceClass::Claims, T0 + 1_800);
        health.failed(SourceClass::Claims, T0 + 1_900);
        health.failed(SourceClass::Pods, T0 + 2_000);
        assert_eq!(health.current_until(T0 + 9_000), T0 + 1_800);
        health.relisting(SourceClass::Claims, T0 + 2_100);
        assert_eq!(health.listed(SourceClass::Claims, T0 + 2_200), None);
        assert_eq!(health.current_until(T0 + 9_000), T0 + 2_000);
        let healed = health
            .listed(SourceClass::Pods, T0 + 2_300)
            .expect("healed");
        assert_eq!((healed.from, healed.to), (T0 + 2_000, T0 + 2_300));
    }

    #[test]
    fn short_outages_are_delay_longer_ones_reconstructed_and_long_watch_failures_unmetered() {
        let (lateness, max_stale) = (120, 600);
        let outage = |length, starting| Outage {
            from: T0,
            to: T0 + length,
            starting,
        };
        assert_eq!(gap_of(outage(120, false), lateness, max_stale), None);
        let kind = |length, starting| {
            gap_of(outage(length, starting), lateness, max_stale).map(|g| g.kind)
        };
        assert_eq!(kind(121, false), Some(GapKind::Reconstructed));
        assert_eq!(kind(600, false), Some(GapKind::Reconstructed));
        assert_eq!(kind(601, false), Some(GapKind::Unmetered));
        assert_eq!(kind(86_400, true), Some(GapKind::Reconstructed));
        assert_eq!(kind(60, true), None);
    }

    #[test]
    fn a_pending_gap_is_cut_at_the_window_that_records_its_first_part() {
        let ts = |s: i64| Timestamp::from_second(s).expect("ts");
        let gap = Gap::new(ts(T0), ts(T0 + 5_400), GapKind::Reconstructed, RESTARTED);
        let (now, later) = split_gaps(std::slice::from_ref(&gap), T0 + 3_600);
        assert_eq!((now[0].from, now[0].to), (ts(T0), ts(T0 + 3_600)));
        assert_eq!(
            (later[0].from, later[0].to),
            (ts(T0 + 3_600), ts(T0 + 5_400))
        );
        let (now, later) = split_gaps(&later, T0 + 7_200);
        assert_eq!((now.len(), later.len()), (1, 0));
    }
}
