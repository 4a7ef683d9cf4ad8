//! Rollups of the ledger, so that a month's statement reads thousands of rows instead of
//! millions of intervals.
//!
//! `usage_daily` holds unit-seconds per meter (bureau, environment, resource, kind, tier) and
//! day, days starting at midnight UTC+08:00 (China Standard Time, the default billing zone). [`Store::record_intervals`](crate::Store::record_intervals) adds every interval it
//! stores to it in the same transaction, and only the intervals it stores (a replayed
//! duplicate adds nothing), so a rollup always equals the sum of the ledger it covers.
//!
//! A sum over any whole-second range `[a, b)` reads the rollup for the days wholly inside the
//! range, and the raw intervals for the parts before the first and after the last whole day
//! (less than a day each). The raw scan is bounded by `ledger_bounds.longest_s`, the longest
//! interval ever stored, so it only visits intervals that can overlap the edge. A month or a
//! rate period in Asia/Shanghai is whole rollup days and reads only the rollup; in another zone
//! it reads up to a day of raw intervals at each edge. The result is exact either way, whatever
//! the intervals' shape.
//!
//! Unit-seconds are `u128`; SQL integers are 64-bit. Sums are kept split at bit 32
//! (`us_high × 2^32 + us_low`, the low part carried on every addition), the same way on both
//! backends, which holds up to 2^95 unit-seconds per row; beyond that the database refuses the
//! write (integer overflow) rather than wrap.

use std::collections::HashMap;

use zhengyun_metering::{TimeRange, UsageInterval};

use crate::error::{Error, Result};

/// Seconds in a day, the rollup's bucket.
pub(crate) const DAY: i64 = 86_400;

/// Days of the rollup start at midnight China Standard Time (UTC+08:00, no daylight saving
/// since 1991): the platform's default billing zone, so that its months and rate-card dates fall
/// on bucket boundaries and a month's statement reads no raw interval at all.
pub(crate) const DAY_OFFSET: i64 = 8 * 3_600;

const LOW_BITS: u32 = 32;
const LOW_MASK: u128 = (1 << LOW_BITS) - 1;

/// Rows per rollup upsert: 8 parameters each.
const ROWS_PER_UPSERT: usize = 1000;

/// The start of the rollup day holding `at` (Unix seconds): midnight UTC+08:00.
pub(crate) fn day_floor(at: i64) -> i64 {
    at - (at + DAY_OFFSET).rem_euclid(DAY)
}

/// The first rollup day start at or after `at`.
pub(crate) fn day_ceil(at: i64) -> i64 {
    let floor = day_floor(at);
    if floor == at { at } else { floor + DAY }
}

/// A meter as its five text columns.
pub(crate) type MeterColumns = (String, String, String, String, String);

/// The rollup rows a batch of newly stored intervals adds to, and the longest of them.
#[derive(Debug, Default)]
pub(crate) struct DailySums {
    sums: HashMap<(i64, MeterColumns), u128>,
    longest: i64,
}

impl DailySums {
    /// Adds `interval` to every rollup day it overlaps.
    pub(crate) fn add(&mut self, interval: &UsageInterval) {
        let (start, end) = (interval.start().as_second(), interval.end().as_second());
        self.longest = self.longest.max(end - start);
        let meter: MeterColumns = (
            interval.bureau().to_owned(),
            interval.environment().to_owned(),
            interval.resource().as_str().to_owned(),
            interval.kind().as_str().to_owned(),
            interval.tier().as_str().to_owned(),
        );
        let mut day = day_floor(start);
        while day < end {
            let seconds = end.min(day + DAY) - start.max(day);
            let unit_seconds = u128::from(interval.amount()) * u128::try_from(seconds).unwrap_or(0);
            let slot = self.sums.entry((day, meter.clone())).or_default();
            // Per row at most 2^64 × 86,400 × batch size: far below u128::MAX.
            *slot = slot.saturating_add(unit_seconds);
            day += DAY;
        }
    }

    /// The rows, sorted (so that concurrent writers lock them in one order) and split for
    /// binding.
    fn rows(self) -> Result<Vec<(i64, MeterColumns, i64, i64)>> {
        let mut rows = self
            .sums
            .into_iter()
            .map(|((day, meter), unit_seconds)| {
                let (high, low) = split(unit_seconds)?;
                Ok((day, meter, high, low))
            })
            .collect::<Result<Vec<_>>>()?;
        rows.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        Ok(rows)
    }
}

/// `unit_seconds` as (high, low) at bit 32, both fitting a `BIGINT`.
fn split(unit_seconds: u128) -> Result<(i64, i64)> {
    let high = i64::try_from(unit_seconds >> LOW_BITS).map_err(|_| {
        Error::invalid(
            "usage",
            format!("{unit_seconds} unit-seconds in one day exceed the ledger's range"),
        )
    })?;
    // The mask keeps 32 bits, which always fit.
    let low = i64::try_from(unit_seconds & LOW_MASK).unwrap_or(0);
    Ok((high, low))
}

/// `high × 2^32 + low` from two SQL sums, or [`Error::Corrupt`] if either is negative.
pub(crate) fn join(high: i64, low: i64, what: &str) -> Result<u128> {
    let (Ok(high), Ok(low)) = (u128::try_from(high), u128::try_from(low)) else {
        return Err(Error::Corrupt(format!(
            "{what} sums to a negative quantity"
        )));
    };
    (high << LOW_BITS)
        .checked_add(low)
        .ok_or_else(|| Error::Corrupt(format!("{what} sums beyond 2^128")))
}

const UPSERT_DAILY: &str = "INSERT INTO usage_daily \
     (day_s, bureau, environment, resource, kind, tier, us_high, us_low) ";
const ON_CONFLICT_ADD: &str = " ON CONFLICT (day_s, bureau, environment, resource, kind, tier) \
     DO UPDATE SET \
     us_high = usage_daily.us_high + excluded.us_high \
       + ((usage_daily.us_low + excluded.us_low) >> 32), \
     us_low = (usage_daily.us_low + excluded.us_low) & 4294967295";
const RAISE_LONGEST: &str =
    "UPDATE ledger_bounds SET longest_s = $1 WHERE id = 1 AND longest_s < $1";
/// `$1` is now in microseconds: see [`crate::sums_cache`] for why the revision follows the clock.
const NEXT_REVISION: &str = "UPDATE ledger_bounds \
     SET revision = CASE WHEN revision >= $1 THEN revision + 1 ELSE $1 END WHERE id = 1";

/// Adds `sums` to the rollup inside `tx`, raises the longest-interval bound if needed, and
/// moves the ledger's revision when anything was added (see [`crate::sums_cache`]).
pub(crate) async fn write<DB>(tx: &mut crate::WriteTx<DB>, sums: DailySums) -> Result<()>
where
    DB: sqlx::Database,
    DB::Connection: UpsertDaily,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> DB::Arguments: sqlx::IntoArguments<DB>,
{
    const DOING: &str = "rolling up usage";
    let longest = sums.longest;
    let rows = sums.rows()?;
    let connection: &mut DB::Connection = tx;
    connection
        .upsert_daily(&rows)
        .await
        .map_err(crate::error::db(DOING))?;
    // Every interval is at least a second long, so `longest > 0` exactly when one was added.
    if longest > 0 {
        sqlx::query::<DB>(RAISE_LONGEST)
            .bind(longest)
            .execute(&mut **tx)
            .await
            .map_err(crate::error::db(DOING))?;
        sqlx::query::<DB>(NEXT_REVISION)
            .bind(crate::time::now_micros())
            .execute(&mut **tx)
            .await
            .map_err(crate::error::db(DOING))?;
    }
    Ok(())
}

/// Adding rollup rows `(day, meter, high, low)`, the way each backend does it fastest.
pub(crate) trait UpsertDaily {
    async fn upsert_daily(&mut self, rows: &[(i64, MeterColumns, i64, i64)]) -> sqlx::Result<()>;
}

impl UpsertDaily for sqlx::SqliteConnection {
    /// Multi-row `VALUES` lists of [`ROWS_PER_UPSERT`] rows.
    async fn upsert_daily(&mut self, rows: &[(i64, MeterColumns, i64, i64)]) -> sqlx::Result<()> {
        for chunk in crate::statement_chunks(rows, ROWS_PER_UPSERT, true) {
            let mut upsert = sqlx::QueryBuilder::new(UPSERT_DAILY);
            upsert.push_values(chunk, |mut values, (day, meter, high, low)| {
                values
                    .push_bind(*day)
                    .push_bind(meter.0.clone())
                    .push_bind(meter.1.clone())
                    .push_bind(meter.2.clone())
                    .push_bind(meter.3.clone())
                    .push_bind(meter.4.clone())
                    .push_bind(*high)
                    .push_bind(*low);
            });
            upsert.push(ON_CONFLICT_ADD);
            upsert.build().execute(&mut *self).await?;
        }
        Ok(())
    }
}

impl UpsertDaily for sqlx::PgConnection {
    /// Every row in one statement, one array per column: a statement is a round trip.
    async fn upsert_daily(&mut self, rows: &[(i64, MeterColumns, i64, i64)]) -> sqlx::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let column = |f: fn(&MeterColumns) -> &str| -> Vec<&str> {
            rows.iter().map(|(_, meter, _, _)| f(meter)).collect()
        };
        let upsert = format!(
            "{UPSERT_DAILY} SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], \
             $4::text[], $5::text[], $6::text[], $7::int8[], $8::int8[]) {ON_CONFLICT_ADD}"
        );
        sqlx::query(sqlx::AssertSqlSafe(upsert))
            .bind(rows.iter().map(|r| r.0).collect::<Vec<i64>>())
            .bind(column(|m| &m.0))
            .bind(column(|m| &m.1))
            .bind(column(|m| &m.2))
            .bind(column(|m| &m.3))
            .bind(column(|m| &m.4))
            .bind(rows.iter().map(|r| r.2).collect::<Vec<i64>>())
            .bind(rows.iter().map(|r| r.3).collect::<Vec<i64>>())
            .execute(self)
            .await?;
        Ok(())
    }
}

/// Sums of unit-seconds per meter, from the rollup over whole days.
const DAILY_SUMS: &str = "SELECT bureau, environment, resource, kind, tier, \
       CAST(SUM(us_high) AS BIGINT), CAST(SUM(us_low) AS BIGINT) \
     FROM usage_daily WHERE day_s >= $1 AND day_s < $2 AND ($3 IS NULL OR bureau = $3) \
     GROUP BY bureau, environment, resource, kind, tier";

/// Sums of unit-seconds per meter from the raw intervals over `[$1, $2)`, clipped to it, for
/// ranges shorter than two days (so that `(amount >> 32) × overlap` stays below 2^49). `$3` is
/// the longest interval stored: no interval ending after `$2 + $3` can start before `$2`.
const RAW_SUMS: &str = "SELECT bureau, environment, resource, kind, tier, \
       CAST(SUM((amount >> 32) * (CASE WHEN end_s < $2 THEN end_s ELSE $2 END \
                                  - CASE WHEN start_s > $1 THEN start_s ELSE $1 END)) AS BIGINT), \
       CAST(SUM((amount & 4294967295) * (CASE WHEN end_s < $2 THEN end_s ELSE $2 END \
                                  - CASE WHEN start_s > $1 THEN start_s ELSE $1 END)) AS BIGINT) \
     FROM usage_intervals \
     WHERE end_s > $1 AND end_s <= $2 + $3 AND start_s < $2 AND ($4 IS NULL OR bureau = $4) \
     GROUP BY bureau, environment, resource, kind, tier";

const POSTGRES_DAILY_SUMS: &str = "SELECT bureau, environment, resource, kind, tier, \
       CAST(SUM(us_high) AS BIGINT), CAST(SUM(us_low) AS BIGINT) \
     FROM usage_daily \
     WHERE day_s >= $1 AND day_s < $2 AND ($3::text IS NULL OR bureau = $3) \
     GROUP BY bureau, environment, resource, kind, tier";
const POSTGRES_RAW_SUMS: &str = "SELECT bureau, environment, resource, kind, tier, \
       CAST(SUM((amount >> 32) * (LEAST(end_s, $2) - GREATEST(start_s, $1))) AS BIGINT), \
       CAST(SUM((amount & 4294967295) * (LEAST(end_s, $2) - GREATEST(start_s, $1))) AS BIGINT) \
     FROM usage_intervals \
     WHERE end_s > $1 AND end_s <= $2 + $3 AND start_s < $2 AND ($4::text IS NULL OR bureau = $4) \
     GROUP BY bureau, environment, resource, kind, tier";

/// One row of a sum: a meter's columns, and its unit-seconds split at bit 32.
pub(crate) type SumRow = (String, String, String, String, String, i64, i64);

/// How a sum over `range` is read: whole rollup days from the rollup, edges from the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// `[first, end)` of the whole days, if any.
    pub days: Option<(i64, i64)>,
    /// Up to two raw ranges, each shorter than two days.
    pub raw: [Option<(i64, i64)>; 2],
}

impl Plan {
    pub(crate) fn of(range: TimeRange) -> Self {
        let (a, b) = (range.start().as_second(), range.end().as_second());
        let (first, end) = (day_ceil(a), day_floor(b));
        if first >= end {
            return Self {
                days: None,
                raw: [Some((a, b)), None],
            };
        }
        let edge = |from: i64, to: i64| (from < to).then_some((from, to));
        Self {
            days: Some((first, end)),
            raw: [edge(a, first), edge(end, b)],
        }
    }
}

/// The statements for `backend`: (daily sums, raw sums).
pub(crate) fn queries(postgres: bool) -> (&'static str, &'static str) {
    if postgres {
        (POSTGRES_DAILY_SUMS, POSTGRES_RAW_SUMS)
    } else {
        (DAILY_SUMS, RAW_SUMS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(a: i64, b: i64) -> TimeRange {
        TimeRange::new(
            jiff::Timestamp::from_second(a).expect("a"),
            jiff::Timestamp::from_second(b).expect("b"),
        )
        .expect("range")
    }

    #[test]
    fn a_shanghai_month_reads_only_the_rollup() {
        // November 2026 in Shanghai: 2026-10-31T16:00Z to 2026-11-30T16:00Z.
        let plan = Plan::of(range(1_793_462_400, 1_796_054_400));
        assert_eq!(plan.days, Some((1_793_462_400, 1_796_054_400)));
        assert_eq!(plan.raw, [None, None]);
    }

    #[test]
    fn a_utc_month_reads_two_raw_edges_and_a_short_range_no_rollup() {
        // November 2026 in UTC.
        let plan = Plan::of(range(1_793_491_200, 1_796_083_200));
        assert_eq!(plan.days, Some((1_793_548_800, 1_796_054_400)));
        assert_eq!(
            plan.raw,
            [
                Some((1_793_491_200, 1_793_548_800)),
                Some((1_796_054_400, 1_796_083_200))
            ]
        );
        let plan = Plan::of(range(DAY / 2, DAY + DAY / 2));
        assert_eq!(
            (plan.days, plan.raw),
            (None, [Some((DAY / 2, DAY + DAY / 2)), None])
        );
    }

    #[test]
    fn days_start_at_midnight_in_china_before_the_epoch_too() {
        let midnight = -DAY_OFFSET;
        assert_eq!(
            (day_floor(midnight), day_ceil(midnight)),
            (midnight, midnight)
        );
        assert_eq!(
            (day_floor(midnight - 1), day_ceil(midnight - 1)),
            (midnight - DAY, midnight)
        );
        assert_eq!((day_floor(0), day_ceil(0)), (midnight, midnight + DAY));
    }

    #[test]
    fn sums_split_and_join_back_exactly() {
        for value in [
            0u128,
            1,
            LOW_MASK,
            LOW_MASK + 1,
            u128::from(u64::MAX) * 86_400,
        ] {
            let (high, low) = split(value).expect("fits");
            assert_eq!(join(high, low, "test").expect("joins"), value);
        }
        assert!(split(u128::MAX).is_err());
        assert!(join(-1, 0, "test").is_err());
    }
}
