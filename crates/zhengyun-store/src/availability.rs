//! Measured availability: the minutes the operator measured, when each environment existed to
//! be measured, the unavailable slices with their cause, and the service-level terms in force;
//! and from them a month's measures and credits.
//!
//! The operator writes each minute (or, after a restart, the minutes it reconstructs) with its
//! stream's checkpoint in one transaction ([`Store::record_availability`]): a minute is
//! recorded exactly once, whatever restarts happen. Only what changes is written per minute
//! (unavailable slices, environments appearing or leaving), so a minute costs the same at ten
//! or ten thousand environments.

use std::collections::BTreeMap;

use jiff::Timestamp;
use rust_decimal::Decimal;
use zhengyun_metering::{
    TimeRange,
    availability::{MonthMeasure, ServiceCreditLine, credit_lines},
};
use zhengyun_model::{crd::ServiceLevels, names::Tier};

use crate::{
    PoolExt, Store,
    error::{Error, Result, db},
    time::{from_micros, now_micros, to_micros},
    with_pool,
};

/// The checkpoint stream of the availability monitor.
pub const AVAILABILITY_STREAM: &str = "availability";

/// An environment as measured: who owns it and at which tier.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Presence {
    /// The environment.
    pub environment: String,
    /// Its bureau.
    pub bureau: String,
    /// Its tier.
    pub tier: Tier,
}

/// One minute an environment's workloads were unavailable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    /// The environment, its bureau and tier.
    pub of: Presence,
    /// The minute's first second.
    pub minute: Timestamp,
    /// Whether the platform caused it (and it counts against the objective).
    pub counted: bool,
    /// Why, as a short code: `node-not-ready`, `evicted`, `preempted`, `unschedulable`,
    /// `control-plane-unreachable` (the platform's); `rollout`, `crash`, `burst-reclaimed`,
    /// `other` (the tenant's).
    pub cause: String,
    /// What was seen, for a person: the workload and pod.
    pub detail: String,
}

/// One measured minute and what it found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeasuredMinute {
    /// The minute's first second (on a whole minute).
    pub minute: Timestamp,
    /// Whether it fell in an announced maintenance window.
    pub maintenance: bool,
    /// Environments appearing to be measured from this minute on.
    pub opened: Vec<Presence>,
    /// Environments gone (or changing tier) from this minute on.
    pub closed: Vec<String>,
    /// The unavailable slices of this minute.
    pub slices: Vec<Slice>,
}

impl Store {
    /// Records `minutes` (in order, each on a whole minute, none before `expected`) and moves
    /// the availability checkpoint from `expected` to `to`, in one transaction. Fails with
    /// [`Error::Conflict`], recording nothing, if the checkpoint is not `expected` (another
    /// writer moved it). A slice or minute already recorded is kept as it was.
    pub async fn record_availability(
        &self,
        expected: Option<Timestamp>,
        minutes: &[MeasuredMinute],
        to: Timestamp,
    ) -> Result<()> {
        const DOING: &str = "recording availability";
        if let Some(bad) = minutes
            .iter()
            .find(|m| m.minute.as_second() % 60 != 0 || m.minute >= to)
        {
            return Err(Error::invalid(
                "minute",
                format!("{} must be on a whole minute before {to}", bad.minute),
            ));
        }
        let saved_at = now_micros();
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await.map_err(db(DOING))?;
            let stored: Option<i64> = sqlx::query_scalar(pool.dialect(
                "SELECT at_us FROM sampler_checkpoints WHERE name = $1",
                "SELECT at_us FROM sampler_checkpoints WHERE name = $1 FOR UPDATE",
            ))
            .bind(AVAILABILITY_STREAM)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db(DOING))?;
            if stored != expected.map(to_micros) {
                return Err(Error::Conflict(format!(
                    "the availability checkpoint moved: expected {expected:?}, found {stored:?} µs"
                )));
            }
            for minute in minutes {
                let at = minute.minute.as_second();
                sqlx::query(
                    "INSERT INTO availability_minutes (minute_s, maintenance) VALUES ($1, $2) \
                     ON CONFLICT (minute_s) DO NOTHING",
                )
                .bind(at)
                .bind(i64::from(minute.maintenance))
                .execute(&mut *tx)
                .await
                .map_err(db(DOING))?;
                for environment in &minute.closed {
                    sqlx::query(
                        "UPDATE availability_presence SET to_s = $2 \
                         WHERE environment = $1 AND to_s IS NULL",
                    )
                    .bind(environment)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db(DOING))?;
                }
                for opened in &minute.opened {
                    sqlx::query(
                        "INSERT INTO availability_presence (environment, from_s, bureau, tier) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (environment, from_s) DO NOTHING",
                    )
                    .bind(&opened.environment)
                    .bind(at)
                    .bind(&opened.bureau)
                    .bind(opened.tier.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db(DOING))?;
                }
                for slice in &minute.slices {
                    sqlx::query(
                        "INSERT INTO availability_slices \
                         (environment, minute_s, bureau, tier, counted, cause, detail) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (environment, minute_s) DO NOTHING",
                    )
                    .bind(&slice.of.environment)
                    .bind(at)
                    .bind(&slice.of.bureau)
                    .bind(slice.of.tier.as_str())
                    .bind(i64::from(slice.counted))
                    .bind(&slice.cause)
                    .bind(&slice.detail)
                    .execute(&mut *tx)
                    .await
                    .map_err(db(DOING))?;
                }
            }
            sqlx::query(
                "INSERT INTO sampler_checkpoints (name, at_us, saved_at_us) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET at_us = excluded.at_us, \
                 saved_at_us = excluded.saved_at_us",
            )
            .bind(AVAILABILITY_STREAM)
            .bind(to_micros(to))
            .bind(saved_at)
            .execute(&mut *tx)
            .await
            .map_err(db(DOING))?;
            tx.commit().await.map_err(db(DOING))?;
        });
        Ok(())
    }

    /// The environments measured at the last recorded minute (their presence still open).
    pub async fn open_presence(&self) -> Result<Vec<Presence>> {
        let rows: Vec<(String, String, String)> = with_pool!(self, pool =>
            sqlx::query_as(
                "SELECT environment, bureau, tier FROM availability_presence \
                 WHERE to_s IS NULL ORDER BY environment",
            )
            .fetch_all(pool)
            .await)
        .map_err(db("reading who is measured"))?;
        rows.into_iter()
            .map(|(environment, bureau, tier)| {
                Ok(Presence {
                    tier: tier_of(&tier)?,
                    environment,
                    bureau,
                })
            })
            .collect()
    }

    /// The unavailable slices within `range`, of one environment or bureau or all, oldest
    /// first (at most `limit`).
    pub async fn availability_slices(
        &self,
        range: TimeRange,
        environment: Option<&str>,
        bureau: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Slice>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<SliceRow> = with_pool!(self, pool =>
            sqlx::query_as(
                "SELECT environment, minute_s, bureau, tier, counted, cause, detail \
                 FROM availability_slices \
                 WHERE minute_s >= $1 AND minute_s < $2 \
                   AND ($3 IS NULL OR environment = $3) AND ($4 IS NULL OR bureau = $4) \
                 ORDER BY minute_s, environment LIMIT $5",
            )
            .bind(range.start().as_second())
            .bind(range.end().as_second())
            .bind(environment)
            .bind(bureau)
            .bind(limit)
            .fetch_all(pool)
            .await)
        .map_err(db("reading availability slices"))?;
        rows.into_iter().map(slice_of).collect()
    }

    /// Each environment's (or only `environment`'s) measured and bad minutes within `range` (a
    /// month), with its bureau and its tier at the end of its measured time there.
    pub async fn month_measures(
        &self,
        range: TimeRange,
        environment: Option<&str>,
    ) -> Result<Vec<MonthMeasure>> {
        const DOING: &str = "reading a month's availability";
        let (start, end) = (range.start().as_second(), range.end().as_second());
        let (minutes, spans, bad) = with_pool!(self, pool => {
            let mut tx = pool.begin_snapshot().await.map_err(db(DOING))?;
            let minutes: Vec<i64> = sqlx::query_scalar(
                "SELECT minute_s FROM availability_minutes \
                 WHERE minute_s >= $1 AND minute_s < $2 AND maintenance = 0 ORDER BY minute_s",
            )
            .bind(start)
            .bind(end)
            .fetch_all(&mut *tx)
            .await
            .map_err(db(DOING))?;
            let spans: Vec<(String, i64, String, String, Option<i64>)> = sqlx::query_as(
                "SELECT environment, from_s, bureau, tier, to_s FROM availability_presence \
                 WHERE from_s < $2 AND (to_s IS NULL OR to_s > $1) \
                   AND ($3 IS NULL OR environment = $3) ORDER BY environment, from_s",
            )
            .bind(start)
            .bind(end)
            .bind(environment)
            .fetch_all(&mut *tx)
            .await
            .map_err(db(DOING))?;
            let bad: Vec<(String, i64)> = sqlx::query_as(
                "SELECT environment, COUNT(*) FROM availability_slices \
                 WHERE minute_s >= $1 AND minute_s < $2 AND counted = 1 \
                   AND ($3 IS NULL OR environment = $3) GROUP BY environment",
            )
            .bind(start)
            .bind(end)
            .bind(environment)
            .fetch_all(&mut *tx)
            .await
            .map_err(db(DOING))?;
            tx.commit().await.map_err(db(DOING))?;
            (minutes, spans, bad)
        });
        let bad: BTreeMap<String, i64> = bad.into_iter().collect();
        let mut measures: BTreeMap<String, MonthMeasure> = BTreeMap::new();
        for (environment, from, bureau, tier, to) in spans {
            let (from, to) = (from.max(start), to.unwrap_or(end).min(end));
            let count =
                minutes.partition_point(|&m| m < to) - minutes.partition_point(|&m| m < from);
            let measure = measures
                .entry(environment.clone())
                .or_insert_with(|| MonthMeasure {
                    bureau: bureau.clone(),
                    environment: environment.clone(),
                    tier: Tier::default(),
                    measured_minutes: 0,
                    bad_minutes: 0,
                });
            measure.tier = tier_of(&tier)?;
            measure.bureau = bureau;
            measure.measured_minutes += u64::try_from(count).unwrap_or(0);
        }
        for measure in measures.values_mut() {
            let bad = bad.get(&measure.environment).copied().unwrap_or(0);
            measure.bad_minutes = u64::try_from(bad)
                .unwrap_or(0)
                .min(measure.measured_minutes);
        }
        Ok(measures.into_values().collect())
    }

    /// Remembers `levels` as in force from `at`, unless they are what is already in force.
    pub async fn record_service_levels(&self, at: Timestamp, levels: &ServiceLevels) -> Result<()> {
        if self.service_levels_at(at).await?.as_ref() == Some(levels) {
            return Ok(());
        }
        let terms = serde_json::to_string(levels)
            .map_err(|e| Error::Corrupt(format!("service levels as JSON: {e}")))?;
        with_pool!(self, pool =>
            sqlx::query(
                "INSERT INTO service_level_terms (since_s, terms) VALUES ($1, $2) \
                 ON CONFLICT (since_s) DO UPDATE SET terms = excluded.terms",
            )
            .bind(at.as_second())
            .bind(terms)
            .execute(pool)
            .await
            .map(drop))
        .map_err(db("recording service levels"))?;
        Ok(())
    }

    /// The service levels in force at `at`: the last recorded at or before it.
    pub async fn service_levels_at(&self, at: Timestamp) -> Result<Option<ServiceLevels>> {
        let terms: Option<String> = with_pool!(self, pool =>
            sqlx::query_scalar(
                "SELECT terms FROM service_level_terms WHERE since_s <= $1 \
                 ORDER BY since_s DESC LIMIT 1",
            )
            .bind(at.as_second())
            .fetch_optional(pool)
            .await)
        .map_err(db("reading service levels"))?;
        terms
            .map(|t| {
                serde_json::from_str(&t)
                    .map_err(|e| Error::Corrupt(format!("stored service levels: {e}")))
            })
            .transpose()
    }

    /// The service credits of the month `range`, against each environment's `charges`, by the
    /// terms in force at the month's end (or the last recorded before it); none while no terms
    /// were ever recorded.
    pub async fn month_service_credits(
        &self,
        range: TimeRange,
        charges: &BTreeMap<String, Decimal>,
    ) -> Result<Vec<ServiceCreditLine>> {
        // Without a counted slice no month is below any objective: the month's minutes and
        // presences (read after every metering window) need not be read.
        if !self.any_counted(range).await? {
            return Ok(Vec::new());
        }
        let last_second = Timestamp::from_second(range.end().as_second() - 1)
            .map_err(|e| Error::Corrupt(e.to_string()))?;
        let Some(levels) = self.service_levels_at(last_second).await? else {
            return Ok(Vec::new());
        };
        let measures = self.month_measures(range, None).await?;
        credit_lines(&measures, &levels, charges).map_err(|source| Error::Metering {
            what: "service credits",
            source: Box::new(source),
        })
    }

    /// [`Store::month_service_credits`] of each month (its range and charges, oldest first),
    /// with a single query for all of them when none of their minutes was counted unavailable,
    /// as in most months.
    pub(crate) async fn months_service_credits(
        &self,
        months: &[(TimeRange, BTreeMap<String, Decimal>)],
    ) -> Result<Vec<Vec<ServiceCreditLine>>> {
        let (Some((first, _)), Some((last, _))) = (months.first(), months.last()) else {
            return Ok(Vec::new());
        };
        let span = TimeRange::new(first.start(), last.end())
            .map_err(|e| Error::Corrupt(format!("the months' span: {e}")))?;
        let mut credits = Vec::with_capacity(months.len());
        let counted = self.any_counted(span).await?;
        for (range, charges) in months {
            credits.push(if counted {
                self.month_service_credits(*range, charges).await?
            } else {
                Vec::new()
            });
        }
        Ok(credits)
    }

    /// Whether any minute within `range` was counted against an environment's availability.
    async fn any_counted(&self, range: TimeRange) -> Result<bool> {
        let counted: Option<i64> = with_pool!(self, pool =>
            sqlx::query_scalar(
                "SELECT minute_s FROM availability_slices \
                 WHERE minute_s >= $1 AND minute_s < $2 AND counted = 1 LIMIT 1",
            )
            .bind(range.start().as_second())
            .bind(range.end().as_second())
            .fetch_optional(pool)
            .await)
        .map_err(db("looking for unavailable minutes"))?;
        Ok(counted.is_some())
    }
}

type SliceRow = (String, i64, String, String, i64, String, String);

fn slice_of(row: SliceRow) -> Result<Slice> {
    let (environment, minute, bureau, tier, counted, cause, detail) = row;
    Ok(Slice {
        of: Presence {
            tier: tier_of(&tier)?,
            environment,
            bureau,
        },
        minute: from_micros(minute.saturating_mul(1_000_000), "an availability slice")?,
        counted: counted == 1,
        cause,
        detail,
    })
}

fn tier_of(text: &str) -> Result<Tier> {
    text.parse()
        .map_err(|_| Error::Corrupt(format!("availability has the unknown tier {text:?}")))
}
