//! Usage sums kept between reads, for as long as the ledger does not change.
//!
//! Statements, costs by day and the annual evaluation each sum the ledger over their ranges
//! ([`Store::sums_over`](crate::Store)), and a console page asks for the same sums on every
//! load. The ledger changes only when the sampler closes a metering window (hourly by default),
//! so between two closes every such sum is the same.
//!
//! Every transaction that adds usage also moves `ledger_bounds.revision`, in that transaction
//! (`rollup::write`). A sum is read in one snapshot together with the revision it was read at,
//! so the pair is consistent on both backends, and across processes: the operator that writes
//! the ledger and an API that reads it need not talk to each other. A reader keeps its sums
//! under their revision and uses them while the snapshot it is in shows the same revision.
//!
//! The revision moves to `max(revision + 1, now in microseconds)`, never only by one: a
//! database restored from a backup while an API runs may be written to again and reach a
//! revision the API has already seen, with other usage behind it. A revision taken from the
//! clock is not reached again on another timeline unless the clock runs back. The cache also
//! holds one revision only: any other revision read, higher or lower, empties it.

use std::collections::HashMap;
use std::sync::Mutex;

use zhengyun_metering::TimeRange;

use crate::rollup::MeterColumns;

/// Sums per meter, one list per range asked for.
pub(crate) type Sums = Vec<Vec<(MeterColumns, u128)>>;

/// What a sum is asked for: its ranges (in nanoseconds) and its bureau, if one.
type Key = (Vec<(i128, i128)>, Option<String>);

/// At most this many sums are kept; past it the cache starts again. A district's pages ask for
/// a few per bureau (the month, its days, the year), so this covers 71 bureaus' pages.
const CAPACITY: usize = 512;

/// Sums read at the ledger's current revision (see the module's documentation).
#[derive(Debug, Default)]
pub(crate) struct SumsCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    revision: Option<i64>,
    entries: HashMap<Key, Sums>,
}

impl SumsCache {
    /// The sums of `ranges` (of `bureau`) if they were read at `revision`.
    pub(crate) fn get(
        &self,
        revision: i64,
        ranges: &[TimeRange],
        bureau: Option<&str>,
    ) -> Option<Sums> {
        let mut inner = self.lock();
        inner.adopt(revision);
        inner.entries.get(&key(ranges, bureau)).cloned()
    }

    /// Keeps `sums` of `ranges` (of `bureau`), read at `revision`.
    pub(crate) fn put(
        &self,
        revision: i64,
        ranges: &[TimeRange],
        bureau: Option<&str>,
        sums: &Sums,
    ) {
        let mut inner = self.lock();
        inner.adopt(revision);
        if inner.entries.len() >= CAPACITY {
            inner.entries.clear();
        }
        inner.entries.insert(key(ranges, bureau), sums.clone());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map is replaced whole or not at all; a panic elsewhere cannot leave it half-written.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    /// Forgets every sum if `revision` is not the one they were read at.
    fn adopt(&mut self, revision: i64) {
        if self.revision != Some(revision) {
            self.entries.clear();
            self.revision = Some(revision);
        }
    }
}

fn key(ranges: &[TimeRange], bureau: Option<&str>) -> Key {
    (
        ranges
            .iter()
            .map(|r| (r.start().as_nanosecond(), r.end().as_nanosecond()))
            .collect(),
        bureau.map(str::to_owned),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    fn range(a: i64, b: i64) -> TimeRange {
        TimeRange::new(
            Timestamp::from_second(a).expect("a"),
            Timestamp::from_second(b).expect("b"),
        )
        .expect("range")
    }

    fn sums(unit_seconds: u128) -> Sums {
        let meter: MeterColumns = (
            "wjw".into(),
            "wjw-dev".into(),
            "cpu".into(),
            "reserved".into(),
            "bronze".into(),
        );
        vec![vec![(meter, unit_seconds)]]
    }

    #[test]
    fn sums_are_given_back_only_at_the_revision_they_were_read_at() {
        let cache = SumsCache::default();
        let month = [range(0, 86_400)];
        cache.put(7, &month, Some("wjw"), &sums(5));
        assert_eq!(cache.get(7, &month, Some("wjw")), Some(sums(5)));
        assert_eq!(cache.get(7, &month, None), None, "another bureau filter");
        assert_eq!(cache.get(7, &[range(0, 3_600)], Some("wjw")), None);
        assert_eq!(cache.get(8, &month, Some("wjw")), None, "a later revision");
        assert_eq!(
            cache.get(7, &month, Some("wjw")),
            None,
            "a revision read once forgets the sums of every other"
        );
    }

    #[test]
    fn a_lower_revision_read_after_a_restore_forgets_the_higher_ones_sums() {
        let cache = SumsCache::default();
        let month = [range(0, 86_400)];
        cache.put(9, &month, None, &sums(5));
        assert_eq!(cache.get(3, &month, None), None);
        cache.put(3, &month, None, &sums(1));
        assert_eq!(cache.get(9, &month, None), None);
    }

    #[test]
    fn the_cache_starts_again_past_its_capacity() {
        let cache = SumsCache::default();
        for i in 0..CAPACITY as i64 {
            cache.put(1, &[range(i, i + 1)], None, &sums(1));
        }
        assert_eq!(cache.get(1, &[range(0, 1)], None), Some(sums(1)));
        cache.put(1, &[range(-5, 1)], None, &sums(2));
        assert_eq!(cache.get(1, &[range(0, 1)], None), None);
        assert_eq!(cache.get(1, &[range(-5, 1)], None), Some(sums(2)));
    }
}
