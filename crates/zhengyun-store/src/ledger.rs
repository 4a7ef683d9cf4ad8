//! The metering ledger: usage intervals, each stored once under its idempotency key
//! (docs/architecture.md, invariant 4), the sampler's checkpoints, and usage totals over a time
//! range.
//!
//! Writing an interval that is already stored is a no-op, so the sampler may replay after a
//! restart or relist. Writing a key that is stored with another amount or tier is a
//! [`Error::Conflict`] and the whole batch is rolled back: the same interval measured twice
//! differently is a bug to surface, not a choice to make silently.
//!
//! Amounts are `u64` in the metering crate and `BIGINT` here; amounts above `i64::MAX` (8 EiB of
//! memory, 9.2 × 10^15 cores) are refused rather than wrapped.
//!
//! Batches go in as `INSERT … ON CONFLICT DO NOTHING` statements of [`ROWS_PER_STATEMENT`] rows
//! ([`ROWS_PER_ARRAY_STATEMENT`] on PostgreSQL)
//! inside one transaction (a multi-row `VALUES` list on SQLite, one array per column unnested
//! on PostgreSQL); only when a statement inserts fewer rows than it carried are the stored
//! amounts read back and compared.

use std::collections::{HashMap, HashSet, hash_map::Entry};

use futures::{StreamExt, stream::BoxStream};
use jiff::Timestamp;
use serde::Serialize;
use zhengyun_metering::{Gap, Meter, TimeRange, UsageInterval, UsageKind, usage::parse_resource};
use zhengyun_model::names::Tier;

use crate::{
    PoolExt, Settle, Store,
    error::{Error, Result, db},
    rollup::{self, DailySums},
    time::{from_micros, now_micros, to_micros},
    with_pool,
};

/// Rows per `INSERT` statement: 11 parameters each stays well inside SQLite's 32,766 and
/// PostgreSQL's 65,535 bind parameters.
pub const ROWS_PER_STATEMENT: usize = 1000;

/// What [`Store::record_intervals`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recorded {
    /// Intervals stored by this call.
    pub new: u64,
    /// Intervals that were already stored, identically (or given twice in the batch).
    pub duplicates: u64,
}

/// The unit-seconds one meter accumulated within a range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeterUsage {
    /// Bureau, environment, resource, kind and tier.
    #[serde(flatten)]
    pub meter: Meter,
    /// Σ amount × seconds of overlap with the range, exactly.
    #[serde(serialize_with = "u128_as_string")]
    pub unit_seconds: u128,
}

fn u128_as_string<S: serde::Serializer>(value: &u128, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// The columns an interval is stored in, in the order both backends' inserts bind them.
macro_rules! insert_columns {
    () => {
        "INSERT INTO usage_intervals (idempotency_key, bureau, environment, resource, kind, \
         tier, start_s, end_s, amount, recorded_at_us, environment_uid) "
    };
}

/// What follows the rows: a stored key stays as it is.
macro_rules! on_conflict_keep {
    () => {
        " ON CONFLICT (idempotency_key) DO NOTHING"
    };
}

/// Which rows of a chunk were new.
enum Inserted {
    /// Every row: the common case, an hour's intervals seen for the first time.
    All,
    /// Only the rows with these keys; the others were stored already.
    Only(Vec<String>),
}

impl Inserted {
    fn from_keys(keys: Vec<String>, chunk: &[Row<'_>]) -> Self {
        if keys.len() == chunk.len() {
            Self::All
        } else {
            Self::Only(keys)
        }
    }
}

/// Inserting one chunk of rows, the way each backend does it fastest; tells which rows were
/// new.
trait InsertIntervals {
    /// Rows per statement.
    const ROWS: usize;
    /// Whether a statement's text depends on its number of rows (see
    /// [`crate::statement_chunks`]).
    const TEXT_PER_LENGTH: bool;

    async fn insert_intervals(
        &mut self,
        chunk: &[Row<'_>],
        recorded_at: i64,
    ) -> sqlx::Result<Inserted>;
}

impl InsertIntervals for sqlx::SqliteConnection {
    const ROWS: usize = ROWS_PER_STATEMENT;
    const TEXT_PER_LENGTH: bool = true;

    /// One multi-row `VALUES` list, returning the keys it inserted.
    async fn insert_intervals(
        &mut self,
        chunk: &[Row<'_>],
        recorded_at: i64,
    ) -> sqlx::Result<Inserted> {
        let mut insert = sqlx::QueryBuilder::new(insert_columns!());
        insert.push_values(chunk, |mut values, row| {
            let interval = row.interval;
            values
                .push_bind(interval.key().as_str().to_owned())
                .push_bind(interval.bureau().to_owned())
                .push_bind(interval.environment().to_owned())
                .push_bind(interval.resource().as_str())
                .push_bind(interval.kind().as_str())
                .push_bind(interval.tier().as_str())
                .push_bind(interval.start().as_second())
                .push_bind(interval.end().as_second())
                .push_bind(row.amount)
                .push_bind(recorded_at)
                .push_bind(interval.environment_uid().map(str::to_owned));
        });
        insert.push(concat!(on_conflict_keep!(), " RETURNING idempotency_key"));
        let keys = insert.build_query_scalar().fetch_all(self).await?;
        Ok(Inserted::from_keys(keys, chunk))
    }
}

/// The rows of a chunk bound as one array per column, unnested.
macro_rules! unnested_rows {
    () => {
        "SELECT k, b, e, r, ki, t, s, en, a, $10, u FROM UNNEST($1::text[], $2::text[], \
         $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::int8[], \
         $9::int8[], $11::text[]) AS x(k, b, e, r, ki, t, s, en, a, u)"
    };
}

/// One array per column, unnested: a single statement text whatever the chunk's size, so the
/// server parses and plans it once per connection, and one round trip per chunk.
const INSERT_ARRAYS: &str = concat!(insert_columns!(), unnested_rows!(), on_conflict_keep!());

/// [`INSERT_ARRAYS`], returning the keys it inserted.
const INSERT_ARRAYS_RETURNING: &str = concat!(
    insert_columns!(),
    unnested_rows!(),
    on_conflict_keep!(),
    " RETURNING idempotency_key"
);

/// `query` with a chunk's columns bound as arrays, in [`INSERT_ARRAYS`]' order.
fn bind_arrays<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    chunk: &'q [Row<'q>],
    recorded_at: i64,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let text = |f: fn(&UsageInterval) -> &str| -> Vec<&str> {
        chunk.iter().map(|row| f(row.interval)).collect()
    };
    let seconds = |f: fn(&UsageInterval) -> i64| -> Vec<i64> {
        chunk.iter().map(|row| f(row.interval)).collect()
    };
    query
        .bind(text(|i| i.key().as_str()))
        .bind(text(UsageInterval::bureau))
        .bind(text(UsageInterval::environment))
        .bind(text(|i| i.resource().as_str()))
        .bind(text(|i| i.kind().as_str()))
        .bind(text(|i| i.tier().as_str()))
        .bind(seconds(|i| i.start().as_second()))
        .bind(seconds(|i| i.end().as_second()))
        .bind(chunk.iter().map(|row| row.amount).collect::<Vec<i64>>())
        .bind(recorded_at)
        .bind(
            chunk
                .iter()
                .map(|row| row.interval.environment_uid())
                .collect::<Vec<Option<&str>>>(),
        )
}

impl InsertIntervals for sqlx::PgConnection {
    /// Arrays have no parameter limit, and each statement is a round trip: a whole batch of the
    /// sampler's (or the bench's) goes in at once.
    const ROWS: usize = ROWS_PER_ARRAY_STATEMENT;
    const TEXT_PER_LENGTH: bool = false;

    /// The chunk as arrays, first without returning anything: when every row is new, as an
    /// hour's intervals are, the count says so, and sending back every key would cost about a
    /// tenth of the statement. When some rows were stored already, the insert is undone to a
    /// savepoint and made again returning the keys it inserted.
    async fn insert_intervals(
        &mut self,
        chunk: &[Row<'_>],
        recorded_at: i64,
    ) -> sqlx::Result<Inserted> {
        sqlx::query("SAVEPOINT ledger_chunk")
            .execute(&mut *self)
            .await?;
        let inserted = bind_arrays(sqlx::query(INSERT_ARRAYS), chunk, recorded_at)
            .execute(&mut *self)
            .await?
            .rows_affected();
        if usize::try_from(inserted).is_ok_and(|n| n == chunk.len()) {
            return Ok(Inserted::All);
        }
        sqlx::query("ROLLBACK TO SAVEPOINT ledger_chunk")
            .execute(&mut *self)
            .await?;
        let keys = bind_arrays(sqlx::query(INSERT_ARRAYS_RETURNING), chunk, recorded_at)
            .fetch_all(&mut *self)
            .await?
            .iter()
            .map(|row| sqlx::Row::try_get::<String, _>(row, 0))
            .collect::<sqlx::Result<Vec<String>>>()?;
        Ok(Inserted::from_keys(keys, chunk))
    }
}

/// Rows per statement where rows go in as arrays (PostgreSQL).
pub const ROWS_PER_ARRAY_STATEMENT: usize = 50_000;

/// The rows per statement of the connection `_connection` is, and whether its statement's text
/// depends on their number.
fn rows_per_statement<C: InsertIntervals>(_connection: &C) -> (usize, bool) {
    (C::ROWS, C::TEXT_PER_LENGTH)
}

/// An interval as bound: `amount` already checked to fit a `BIGINT`.
struct Row<'a> {
    interval: &'a UsageInterval,
    amount: i64,
}

pub(crate) type IntervalRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    Option<String>,
);

const SELECT_INTERVALS: &str = "SELECT bureau, environment, resource, kind, tier, start_s, end_s, amount, \
     environment_uid FROM usage_intervals WHERE end_s > $1 AND start_s < $2";

impl Store {
    /// Stores `intervals` that are not stored yet, in one transaction. Returns how many were
    /// new. Fails with [`Error::Conflict`], storing nothing, if a key is already stored (or
    /// given twice) with another amount or tier.
    pub async fn record_intervals(&self, intervals: &[UsageInterval]) -> Result<Recorded> {
        self.record(intervals, None).await
    }

    /// [`Store::record_intervals`] and [`Store::save_checkpoint`] in one transaction: the
    /// checkpoint moves if and only if the intervals are stored.
    pub async fn record_intervals_with_checkpoint(
        &self,
        intervals: &[UsageInterval],
        stream: &str,
        at: Timestamp,
    ) -> Result<Recorded> {
        check_stream(stream)?;
        let checkpoint = Move {
            stream,
            expected: None,
            at,
            gaps: &[],
            settle: None,
        };
        self.record(intervals, Some(checkpoint)).await
    }

    /// [`Store::record_intervals_with_checkpoint`], only if the checkpoint of `stream` is still
    /// `expected` (`None`: the stream never saved one). Otherwise nothing is stored and the
    /// result is [`Error::Conflict`]: another writer moved the checkpoint meanwhile — a second
    /// sampler during a leader handover — and the caller must re-read it rather than write a
    /// window that overlaps the other writer's.
    pub async fn record_window(
        &self,
        intervals: &[UsageInterval],
        stream: &str,
        expected: Option<Timestamp>,
        at: Timestamp,
    ) -> Result<Recorded> {
        self.record_window_with_gaps(intervals, &[], stream, expected, at)
            .await
    }

    /// [`Store::record_window`], also recording `gaps` (spans not measured as they happened,
    /// see [`zhengyun_metering::gaps`]) in the same transaction: the checkpoint never moves past
    /// a gap without it.
    pub async fn record_window_with_gaps(
        &self,
        intervals: &[UsageInterval],
        gaps: &[Gap],
        stream: &str,
        expected: Option<Timestamp>,
        at: Timestamp,
    ) -> Result<Recorded> {
        self.record_window_in_batches(std::iter::once(intervals), gaps, stream, expected, at)
            .await
    }

    /// [`Store::record_window_with_gaps`] for a window given in batches, each stored as it is
    /// taken from `batches`, all in one transaction: a window's close need not hold every
    /// interval of the window at once. A conflict in any batch stores nothing of any.
    pub async fn record_window_in_batches<I, B>(
        &self,
        batches: I,
        gaps: &[Gap],
        stream: &str,
        expected: Option<Timestamp>,
        at: Timestamp,
    ) -> Result<Recorded>
    where
        I: Iterator<Item = B> + Send,
        B: AsRef<[UsageInterval]> + Send,
    {
        self.record_window_batches(batches, gaps, stream, expected, at, None)
            .await
    }

    /// [`Store::record_window_in_batches`] for a window that may hold burst usage: each batch
    /// is shown to `settle`, burst intervals are not stored as usage, and what `settle` then
    /// gives is stored in the same transaction (see [`crate::settlements`]). A window written
    /// again stores no settlement twice.
    pub async fn record_settled_window_in_batches<I, B>(
        &self,
        batches: I,
        gaps: &[Gap],
        stream: &str,
        expected: Option<Timestamp>,
        at: Timestamp,
        settle: &mut dyn Settle,
    ) -> Result<Recorded>
    where
        I: Iterator<Item = B> + Send,
        B: AsRef<[UsageInterval]> + Send,
    {
        self.record_window_batches(batches, gaps, stream, expected, at, Some(settle))
            .await
    }

    async fn record_window_batches<'a, I, B>(
        &self,
        batches: I,
        gaps: &'a [Gap],
        stream: &'a str,
        expected: Option<Timestamp>,
        at: Timestamp,
        settle: Option<&'a mut (dyn Settle + 'a)>,
    ) -> Result<Recorded>
    where
        I: Iterator<Item = B> + Send,
        B: AsRef<[UsageInterval]> + Send,
    {
        check_stream(stream)?;
        check_gaps(gaps, at)?;
        let checkpoint = Move {
            stream,
            expected: Some(expected),
            at,
            gaps,
            settle,
        };
        self.record_batches(batches, Some(checkpoint)).await
    }

    async fn record(
        &self,
        intervals: &[UsageInterval],
        checkpoint: Option<Move<'_>>,
    ) -> Result<Recorded> {
        if intervals.is_empty() && checkpoint.is_none() {
            return Ok(Recorded::default());
        }
        self.record_batches(std::iter::once(intervals), checkpoint)
            .await
    }

    async fn record_batches<I, B>(
        &self,
        batches: I,
        mut checkpoint: Option<Move<'_>>,
    ) -> Result<Recorded>
    where
        I: Iterator<Item = B> + Send,
        B: AsRef<[UsageInterval]> + Send,
    {
        const DOING: &str = "recording usage intervals";
        let recorded_at = now_micros();
        let mut given = 0u64;
        let mut duplicates_in_batch = 0u64;
        let mut settle = checkpoint.as_mut().and_then(|m| m.settle.take());
        let new = with_pool!(self, pool => {
            let mut tx = pool.begin_write().await.map_err(db(DOING))?;
            if let Some(Move { stream, expected: Some(expected), .. }) = &checkpoint {
                let stored: Option<i64> = sqlx::query_scalar(pool.dialect(
                    "SELECT at_us FROM sampler_checkpoints WHERE name = $1",
                    "SELECT at_us FROM sampler_checkpoints WHERE name = $1 FOR UPDATE",
                ))
                .bind(*stream)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db("reading a sampler checkpoint"))?;
                if stored != expected.map(to_micros) {
                    return Err(Error::Conflict(format!(
                        "the checkpoint of {stream} moved: expected {expected:?}, found {stored:?} µs"
                    )));
                }
            }
            let mut new = 0;
            let mut earliest: Option<i64> = None;
            let (per_statement, text_per_length) = rows_per_statement(&*tx);
            for batch in batches {
                let batch = batch.as_ref();
                if let Some(settle) = settle.as_deref_mut() {
                    settle.observe(batch);
                }
                let mut rows = unique_rows(batch, settle.is_some())?;
                // In key order, consecutive rows land on neighbouring index pages: faster on
                // SQLite than the sampler's (hour, meter) order.
                rows.sort_unstable_by(|a, b| a.interval.key().cmp(b.interval.key()));
                count_into(&mut duplicates_in_batch, batch.len() - rows.len());
                count_into(&mut given, rows.len());
                earliest = rows
                    .iter()
                    .map(|r| r.interval.start().as_second())
                    .chain(earliest)
                    .min();
                let mut daily = DailySums::default();
                for chunk in crate::statement_chunks(&rows, per_statement, text_per_length) {
                    let inserted = InsertIntervals::insert_intervals(&mut *tx, chunk, recorded_at)
                        .await
                        .map_err(db(DOING))?;
                    if let Inserted::Only(keys) = inserted {
                        new += u64::try_from(keys.len()).unwrap_or(u64::MAX);
                        let inserted: HashSet<&str> = keys.iter().map(String::as_str).collect();
                        for row in chunk.iter().filter(|r| inserted.contains(r.interval.key().as_str())) {
                            daily.add(row.interval);
                        }
                        let mut select = sqlx::QueryBuilder::new(
                            "SELECT idempotency_key, amount, tier FROM usage_intervals \
                             WHERE idempotency_key IN (",
                        );
                        let mut keys = select.separated(", ");
                        for row in chunk {
                            keys.push_bind(row.interval.key().as_str().to_owned());
                        }
                        select.push(")");
                        let stored: Vec<(String, i64, String)> = select
                            .build_query_as()
                            .fetch_all(&mut *tx)
                            .await
                            .map_err(db(DOING))?;
                        // Dropping `tx` on the error path rolls the whole batch back.
                        check_stored(chunk, &stored)?;
                    } else {
                        new += u64::try_from(chunk.len()).unwrap_or(u64::MAX);
                        for row in chunk {
                            daily.add(row.interval);
                        }
                    }
                }
                rollup::write(&mut tx, daily).await?;
            }
            if let (Some(settle), Some(Move { at, .. })) = (settle, &checkpoint) {
                let settled = settle
                    .settled()
                    .map_err(|reason| Error::invalid("settlement", reason))?;
                crate::settlements::insert(&mut tx, at.as_second(), &settled, recorded_at).await?;
            }
            if let Some(Move { stream, at, gaps, .. }) = checkpoint {
                let earliest = earliest.unwrap_or(at.as_second()).min(at.as_second());
                sqlx::query(
                    "INSERT INTO metering_origins (stream, since_s) VALUES ($1, $2) \
                     ON CONFLICT (stream) DO NOTHING",
                )
                .bind(stream)
                .bind(earliest)
                .execute(&mut *tx)
                .await
                .map_err(db("recording where the ledger begins"))?;
                for gap in gaps {
                    sqlx::query(
                        "INSERT INTO metering_gaps (stream, start_s, end_s, kind, reason, \
                         recorded_at_us) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(stream)
                    .bind(gap.from.as_second())
                    .bind(gap.to.as_second())
                    .bind(gap.kind.as_str())
                    .bind(gap.reason.as_str())
                    .bind(recorded_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("recording a metering gap"))?;
                }
                sqlx::query(UPSERT_CHECKPOINT)
                    .bind(stream)
                    .bind(to_micros(at))
                    .bind(recorded_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("saving a sampler checkpoint"))?;
            }
            tx.commit().await.map_err(db(DOING))?;
            new
        });
        Ok(Recorded {
            new,
            duplicates: given
                .saturating_sub(new)
                .saturating_add(duplicates_in_batch),
        })
    }

    /// Records that sampler stream `stream` has written everything before `at` (kept to the
    /// microsecond). Overwrites the previous checkpoint, even with an earlier instant: the
    /// sampler owns its checkpoints.
    pub async fn save_checkpoint(&self, stream: &str, at: Timestamp) -> Result<()> {
        check_stream(stream)?;
        with_pool!(self, pool => sqlx::query(UPSERT_CHECKPOINT)
            .bind(stream)
            .bind(to_micros(at))
            .bind(now_micros())
            .execute(pool)
            .await
            .map(drop))
        .map_err(db("saving a sampler checkpoint"))?;
        Ok(())
    }

    /// The last checkpoint of sampler stream `stream`, if it ever saved one.
    pub async fn checkpoint(&self, stream: &str) -> Result<Option<Timestamp>> {
        let at: Option<i64> = with_pool!(self, pool =>
            sqlx::query_scalar("SELECT at_us FROM sampler_checkpoints WHERE name = $1")
                .bind(stream)
                .fetch_optional(pool)
                .await)
        .map_err(db("reading a sampler checkpoint"))?;
        at.map(|at| from_micros(at, "a sampler checkpoint"))
            .transpose()
    }

    /// Every stored interval that overlaps `range`, whole (not clipped), streamed in no
    /// particular order: feed them to a `StatementBuilder`, which counts only the part inside
    /// its month. The stream holds one pooled connection until it is dropped.
    pub fn intervals_between(&self, range: TimeRange) -> BoxStream<'_, Result<UsageInterval>> {
        let (from, to) = (range.start().as_second(), range.end().as_second());
        let rows = with_pool!(self, pool => sqlx::query_as::<_, IntervalRow>(SELECT_INTERVALS)
            .bind(from)
            .bind(to)
            .fetch(pool));
        rows.map(|row| {
            row.map_err(db("reading usage intervals"))
                .and_then(interval_of)
        })
        .boxed()
    }

    /// Unit-seconds per meter (bureau, environment, resource, kind, tier) within `range`,
    /// counting only the overlap of each interval with it, optionally for one bureau. Sorted by
    /// meter (resources in quota order), the same on both backends whatever their collation.
    /// A tier change gives an environment two rows for one resource and kind; add them up for
    /// tier-independent totals. Reads the daily rollup for whole days and the raw intervals
    /// only at the edges.
    pub async fn usage_totals(
        &self,
        range: TimeRange,
        bureau: Option<&str>,
    ) -> Result<Vec<MeterUsage>> {
        let rows = self
            .sums_over(&[range], bureau)
            .await?
            .into_iter()
            .flatten();
        let mut totals = rows
            .map(
                |((bureau, environment, resource, kind, tier), unit_seconds)| {
                    Ok(MeterUsage {
                        meter: meter_of(bureau, environment, &resource, &kind, &tier)?,
                        unit_seconds,
                    })
                },
            )
            .collect::<Result<Vec<_>>>()?;
        totals.sort_unstable_by(|a, b| a.meter.cmp(&b.meter));
        Ok(totals)
    }
}

/// Gaps must be non-empty spans that end by the checkpoint `at` they are recorded with.
fn check_gaps(gaps: &[Gap], at: Timestamp) -> Result<()> {
    match gaps.iter().find(|gap| gap.from >= gap.to || gap.to > at) {
        Some(gap) => Err(Error::invalid(
            "gap",
            format!(
                "{}..{} must be a non-empty span ending by the checkpoint {at}",
                gap.from, gap.to
            ),
        )),
        None => Ok(()),
    }
}

/// Adds `n` to a count, saturating.
fn count_into(count: &mut u64, n: usize) {
    *count = count.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
}

/// The batch without repeated keys; a key repeated with another amount or tier is a conflict.
fn unique_rows(intervals: &[UsageInterval], settled: bool) -> Result<Vec<Row<'_>>> {
    let mut seen: HashMap<&str, &UsageInterval> = HashMap::with_capacity(intervals.len());
    let mut rows = Vec::with_capacity(intervals.len());
    for interval in intervals {
        if interval.kind() == UsageKind::Burst {
            if settled {
                // Recorded by its window's settlement, never as usage.
                continue;
            }
            return Err(Error::invalid(
                "kind",
                format!(
                    "interval {} is burst usage, which is recorded only with its window's settlement",
                    interval.key()
                ),
            ));
        }
        let amount = i64::try_from(interval.amount()).map_err(|_| {
            Error::invalid(
                "amount",
                format!(
                    "{} of interval {} exceeds the ledger's 64-bit signed range",
                    interval.amount(),
                    interval.key()
                ),
            )
        })?;
        match seen.entry(interval.key().as_str()) {
            Entry::Vacant(slot) => {
                slot.insert(interval);
                rows.push(Row { interval, amount });
            }
            Entry::Occupied(first) => {
                let first = *first.get();
                if (first.amount(), first.tier()) != (interval.amount(), interval.tier()) {
                    return Err(conflict(
                        interval,
                        first.amount(),
                        first.tier().as_str(),
                        "given earlier in the same batch",
                    ));
                }
            }
        }
    }
    Ok(rows)
}

/// Every row of `chunk` is stored exactly as given.
fn check_stored(chunk: &[Row<'_>], stored: &[(String, i64, String)]) -> Result<()> {
    let stored: HashMap<&str, (i64, &str)> = stored
        .iter()
        .map(|(key, amount, tier)| (key.as_str(), (*amount, tier.as_str())))
        .collect();
    for row in chunk {
        let interval = row.interval;
        match stored.get(interval.key().as_str()) {
            Some(&(amount, tier)) if (amount, tier) == (row.amount, interval.tier().as_str()) => {}
            Some(&(amount, tier)) => {
                let amount = u64::try_from(amount).unwrap_or(0);
                return Err(conflict(interval, amount, tier, "already recorded"));
            }
            None => {
                return Err(Error::Conflict(format!(
                    "interval {} was neither stored nor found",
                    interval.key()
                )));
            }
        }
    }
    Ok(())
}

fn conflict(interval: &UsageInterval, amount: u64, tier: &str, how: &str) -> Error {
    Error::Conflict(format!(
        "usage interval {} {how} with amount {amount} at tier {tier}, now given with amount {} \
         at tier {}",
        interval.key(),
        interval.amount(),
        interval.tier()
    ))
}

fn check_stream(stream: &str) -> Result<()> {
    if stream.trim().is_empty() || stream.len() > 200 {
        return Err(Error::invalid(
            "checkpoint stream",
            "must be 1 to 200 bytes and not blank",
        ));
    }
    Ok(())
}

/// A checkpoint to move with a batch: to `at`, optionally only from `expected`.
struct Move<'a> {
    stream: &'a str,
    expected: Option<Option<Timestamp>>,
    at: Timestamp,
    gaps: &'a [Gap],
    /// What settles the window's borrowed capacity, if anything does.
    settle: Option<&'a mut dyn Settle>,
}

/// Sets a checkpoint; binds: stream name, instant (µs), time saved (µs).
const UPSERT_CHECKPOINT: &str = "INSERT INTO sampler_checkpoints (name, at_us, saved_at_us) \
     VALUES ($1, $2, $3) \
     ON CONFLICT (name) DO UPDATE SET at_us = excluded.at_us, saved_at_us = excluded.saved_at_us";

pub(crate) fn meter_of(
    bureau: String,
    environment: String,
    resource: &str,
    kind: &str,
    tier: &str,
) -> Result<Meter> {
    let corrupt = |what: &str, value: &str| {
        Error::Corrupt(format!(
            "a usage interval of {environment} has the unknown {what} {value:?}"
        ))
    };
    let resource = parse_resource(resource).ok_or_else(|| corrupt("resource", resource))?;
    let kind: UsageKind = kind.parse().map_err(|_| corrupt("kind", kind))?;
    let tier: Tier = tier.parse().map_err(|_| corrupt("tier", tier))?;
    Meter::new(bureau, environment.clone(), resource, kind, tier)
        .map_err(|e| Error::Corrupt(format!("a usage interval of {environment}: {e}")))
}

pub(crate) fn interval_of(row: IntervalRow) -> Result<UsageInterval> {
    let (bureau, environment, resource, kind, tier, start, end, amount, uid) = row;
    let what = format!("a usage interval of {environment}");
    let meter = meter_of(bureau, environment, &resource, &kind, &tier)?;
    let instant = |s: i64| {
        Timestamp::from_second(s)
            .map_err(|_| Error::Corrupt(format!("{what} has an impossible instant {s}")))
    };
    let amount =
        u64::try_from(amount).map_err(|_| Error::Corrupt(format!("{what} has amount {amount}")))?;
    let interval = UsageInterval::new(meter, instant(start)?, instant(end)?, amount)
        .map_err(|e| Error::Corrupt(format!("{what}: {e}")))?;
    Ok(match uid {
        Some(uid) => interval.with_environment_uid(uid),
        None => interval,
    })
}
