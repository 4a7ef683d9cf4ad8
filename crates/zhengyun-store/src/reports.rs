//! What the API and the operator read from the ledger: a month's statement, a bureau's usage
//! over a range, and all-time totals per bureau for the operator's counters. Each reads the
//! daily rollup plus the raw intervals at the edges (see [`crate::rollup`]), in one snapshot,
//! so it costs thousands of rows whatever the ledger's size.

use std::collections::BTreeMap;

use futures::TryStreamExt as _;
use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::Serialize;
use zhengyun_metering::{
    Calendar, Month, RateSchedule, Statement, StatementBuilder, TimeRange, UsageKind, month_budget,
    usage::parse_resource,
};
use zhengyun_model::{names::check_bureau_code, quantity::Resource};

use crate::{
    PoolExt, Store,
    error::{Error, Result, db},
    ledger::meter_of,
    rollup::{self, DAY, MeterColumns, Plan, SumRow},
    sums_cache::Sums,
    with_pool,
};

/// Unit-seconds of one resource, reserved or consumed, by one environment over a range (all
/// tiers together).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceUsage {
    /// The environment (`<bureau>-<purpose>`).
    pub environment: String,
    /// The resource.
    #[serde(serialize_with = "resource_name")]
    pub resource: Resource,
    /// Reserved or consumed.
    pub kind: UsageKind,
    /// Σ amount × seconds within the range, exactly (a string in JSON: it can exceed 2^53).
    #[serde(serialize_with = "u128_as_string")]
    pub unit_seconds: u128,
}

/// All the unit-seconds the ledger holds for one bureau, resource and kind: what the operator's
/// resource-seconds counters restart from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageCounter {
    /// The bureau.
    pub bureau: String,
    /// The resource.
    #[serde(serialize_with = "resource_name")]
    pub resource: Resource,
    /// Reserved or consumed.
    pub kind: UsageKind,
    /// Σ amount × seconds of every interval, exactly.
    #[serde(serialize_with = "u128_as_string")]
    pub unit_seconds: u128,
}

fn resource_name<S: serde::Serializer>(value: &Resource, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(value.as_str())
}

fn u128_as_string<S: serde::Serializer>(value: &u128, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

const ALL_TIME_TOTALS: &str = "SELECT bureau, resource, kind, \
       CAST(SUM(us_high) AS BIGINT), CAST(SUM(us_low) AS BIGINT) \
     FROM usage_daily GROUP BY bureau, resource, kind";

impl Store {
    /// The statement of `month` read in `calendar` and priced by `schedule`, with each bureau
    /// that has a budget in `budgets` flagged (ok below 80 %, warning from 80 %, exceeded from
    /// 100 %).
    ///
    /// A closed month's statement is returned exactly as it was closed (budgets included):
    /// a closed month never changes, and corrections are its [`Store::adjustments`]. An open
    /// month is computed from the ledger's rollups, exactly as
    /// [`Statement::build`] would from the raw intervals.
    ///
    /// Fails with [`Error::Metering`] if usage falls before the first rate card (it is never
    /// silently free), or a budget is not whole fen.
    pub async fn month_statement(
        &self,
        month: Month,
        calendar: &Calendar,
        schedule: &RateSchedule,
        budgets: &BTreeMap<String, Decimal>,
    ) -> Result<Statement> {
        if let Some(closed) = self.closed_statement(month).await? {
            return Ok(closed);
        }
        self.computed_statement(month, calendar, schedule, budgets, None)
            .await
    }

    /// Each bureau's amount for `month` as [`Store::month_statement`]'s statement totals it
    /// (the closed statement's once the month is closed), with its settled borrowing (burst
    /// charges less lent credits) and its service credits added, without building the statement's
    /// lines: the usage is read row by row into a `StatementBuilder`, which prices each line
    /// and keeps only the sums. What the operator's cost metrics and budget figures need after
    /// every metering window, at a fraction of a statement's memory.
    pub async fn month_amounts(
        &self,
        month: Month,
        calendar: &Calendar,
        schedule: &RateSchedule,
    ) -> Result<BTreeMap<String, Decimal>> {
        if let Some(closed) = self.closed_statement(month).await? {
            return with_settled_and_credited(
                closed.bureau_amounts(),
                &closed.settlement,
                &closed.service_credits,
            );
        }
        let mut builder = StatementBuilder::new(month, calendar, schedule).map_err(metering)?;
        let periods: Vec<TimeRange> = builder.periods().collect();
        let range = calendar.month_range(month).map_err(metering)?;
        self.feed_sums(&periods, &mut builder).await?;
        let (amounts, environments) = builder.amounts().map_err(metering)?;
        let settlement = self.month_settlement(month).await?;
        let credits = self.month_service_credits(range, &environments).await?;
        with_settled_and_credited(amounts, &settlement, &credits)
    }

    /// The usage of every meter within each of `ranges` (rate periods of `builder`'s month),
    /// added to `builder` row by row as the database returns them; the rows are those of
    /// [`Store::sums_over`], before they are merged by meter (the builder adds them up).
    async fn feed_sums(
        &self,
        ranges: &[TimeRange],
        builder: &mut StatementBuilder<'_>,
    ) -> Result<()> {
        const DOING: &str = "summing usage";
        let (daily, raw) = rollup::queries(self.backend() == crate::Backend::Postgres);
        let no_bureau: Option<&str> = None;
        with_pool!(self, pool => {
            let mut tx = pool.begin_snapshot().await.map_err(db(DOING))?;
            let longest: i64 =
                sqlx::query_scalar("SELECT longest_s FROM ledger_bounds WHERE id = 1")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db(DOING))?;
            for range in ranges {
                let plan = Plan::of(*range);
                if let Some((first, end)) = plan.days {
                    let mut rows = sqlx::query_as::<_, SumRow>(daily)
                        .bind(first)
                        .bind(end)
                        .bind(no_bureau)
                        .fetch(&mut *tx);
                    while let Some(row) = rows.try_next().await.map_err(db(DOING))? {
                        add_row(builder, *range, row)?;
                    }
                }
                for (from, to) in plan.raw.into_iter().flatten() {
                    let mut rows = sqlx::query_as::<_, SumRow>(raw)
                        .bind(from)
                        .bind(to)
                        .bind(longest)
                        .bind(no_bureau)
                        .fetch(&mut *tx);
                    while let Some(row) = rows.try_next().await.map_err(db(DOING))? {
                        add_row(builder, *range, row)?;
                    }
                }
            }
            tx.commit().await.map_err(db(DOING))?;
        });
        Ok(())
    }

    /// The statement of `month` as the ledger gives it now, closed or not, with its gaps (see
    /// [`Store::month_gaps`]): what a month is closed with, and what a closed month is compared
    /// with to issue adjustments.
    ///
    /// With `bureau`, only that bureau's part: its lines, environments and totals (which are
    /// the statement's total), its settlement and its service credits, line for line what the
    /// whole district's statement has for it. Only its usage is read and priced; the
    /// settlement is checked to balance over every party before it is cut to the bureau.
    pub async fn computed_statement(
        &self,
        month: Month,
        calendar: &Calendar,
        schedule: &RateSchedule,
        budgets: &BTreeMap<String, Decimal>,
        bureau: Option<&str>,
    ) -> Result<Statement> {
        self.computed_statements(&[month], calendar, schedule, budgets, bureau)
            .await?
            .pop()
            .ok_or_else(|| Error::Corrupt(format!("no statement was computed for {month}")))
    }

    /// [`Store::computed_statement`] of each of `months` (oldest first), read together: the
    /// usage of every month in one snapshot, and the gaps, settlements and service credits of
    /// all of them in a query or three each, however many months there are.
    pub(crate) async fn computed_statements(
        &self,
        months: &[Month],
        calendar: &Calendar,
        schedule: &RateSchedule,
        budgets: &BTreeMap<String, Decimal>,
        bureau: Option<&str>,
    ) -> Result<Vec<Statement>> {
        if let Some(bureau) = bureau {
            check_bureau_code(bureau).map_err(|reason| Error::invalid("bureau", reason))?;
        }
        let (Some(&first), Some(&last)) = (months.first(), months.last()) else {
            return Ok(Vec::new());
        };
        let mut builders = Vec::with_capacity(months.len());
        let mut periods: Vec<TimeRange> = Vec::new();
        for &month in months {
            let builder = StatementBuilder::new(month, calendar, schedule).map_err(metering)?;
            let own: Vec<TimeRange> = builder.periods().collect();
            builders.push((builder, own.len()));
            periods.extend(own);
        }
        let mut sums = periods.iter().zip(self.sums_over(&periods, bureau).await?);
        let mut statements = Vec::with_capacity(months.len());
        for (mut builder, count) in builders {
            for (period, rows) in sums.by_ref().take(count) {
                for (columns, unit_seconds) in rows {
                    let (bureau, environment, resource, kind, tier) = columns;
                    let meter = meter_of(bureau, environment, &resource, &kind, &tier)?;
                    builder
                        .add_usage(&meter, *period, unit_seconds)
                        .map_err(metering)?;
                }
            }
            let mut statement = builder.finish().map_err(metering)?;
            // Monthly budgets are for an average month; each month is flagged against its share.
            let budgets = budgets
                .iter()
                .map(|(bureau, &monthly)| {
                    let budget =
                        month_budget(monthly, statement.month, calendar).map_err(metering)?;
                    Ok((bureau.clone(), budget))
                })
                .collect::<Result<BTreeMap<_, _>>>()?;
            statement.flag_budgets(&budgets).map_err(metering)?;
            statements.push(statement);
        }
        let ranges: Vec<(Month, TimeRange)> =
            statements.iter().map(|s| (s.month, s.period)).collect();
        let gaps = self.months_gaps(crate::gaps::USAGE_STREAM, &ranges).await?;
        let mut settlements = self.months_settlements(first, last).await?;
        let charges: Vec<(TimeRange, BTreeMap<String, Decimal>)> = statements
            .iter()
            .map(|s| (s.period, s.environment_amounts()))
            .collect();
        let credits = self.months_service_credits(&charges).await?;
        for ((statement, gaps), credits) in statements.iter_mut().zip(gaps).zip(credits) {
            statement.gaps = gaps;
            statement
                .set_settlement(settlements.remove(&statement.month).unwrap_or_default())
                .map_err(metering)?;
            statement.set_service_credits(credits).map_err(metering)?;
            if let Some(bureau) = bureau {
                statement.keep_bureau(bureau);
            }
        }
        Ok(statements)
    }

    /// The unit-seconds of `bureau` within `range`, per environment, resource and kind (tiers
    /// added up), sorted by environment, then resource in quota order, then kind.
    pub async fn bureau_usage(&self, bureau: &str, range: TimeRange) -> Result<Vec<ResourceUsage>> {
        check_bureau_code(bureau).map_err(|reason| Error::invalid("bureau", reason))?;
        let rows = self
            .sums_over(&[range], Some(bureau))
            .await?
            .into_iter()
            .flatten();
        let mut usage: BTreeMap<(String, Resource, UsageKind), u128> = BTreeMap::new();
        for ((_, environment, resource, kind, tier), unit_seconds) in rows {
            let meter = meter_of(bureau.to_owned(), environment, &resource, &kind, &tier)?;
            let slot = usage
                .entry((
                    meter.environment().to_owned(),
                    meter.resource(),
                    meter.kind(),
                ))
                .or_default();
            *slot = slot
                .checked_add(unit_seconds)
                .ok_or_else(|| Error::Corrupt(format!("usage of {bureau} sums beyond 2^128")))?;
        }
        Ok(usage
            .into_iter()
            .map(
                |((environment, resource, kind), unit_seconds)| ResourceUsage {
                    environment,
                    resource,
                    kind,
                    unit_seconds,
                },
            )
            .collect())
    }

    /// Every bureau's unit-seconds since the ledger began, per resource and kind: what the
    /// operator's `…_resource_seconds_total` counters are restored from at start-up.
    pub async fn usage_counters(&self) -> Result<Vec<UsageCounter>> {
        const DOING: &str = "summing all usage";
        let rows: Vec<(String, String, String, i64, i64)> = with_pool!(self, pool =>
            sqlx::query_as(ALL_TIME_TOTALS).fetch_all(pool).await)
        .map_err(db(DOING))?;
        let mut counters = rows
            .into_iter()
            .map(|(bureau, resource, kind, high, low)| {
                let what = format!("the usage of {bureau}");
                let corrupt = |field: &str, value: &str| {
                    Error::Corrupt(format!("{what} has the unknown {field} {value:?}"))
                };
                Ok(UsageCounter {
                    resource: parse_resource(&resource)
                        .ok_or_else(|| corrupt("resource", &resource))?,
                    kind: kind.parse().map_err(|_| corrupt("kind", &kind))?,
                    unit_seconds: rollup::join(high, low, &what)?,
                    bureau,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        counters.sort_unstable_by(|a, b| {
            (&a.bureau, a.resource, a.kind).cmp(&(&b.bureau, b.resource, b.kind))
        });
        Ok(counters)
    }

    /// The rollup days (from midnight UTC+08:00) the ledger has usage in, as
    /// `[first day, last day + 1)`, or `None` when it is empty: which months have statements.
    pub async fn usage_span(&self) -> Result<Option<TimeRange>> {
        let span: (Option<i64>, Option<i64>) = with_pool!(self, pool =>
            sqlx::query_as("SELECT MIN(day_s), MAX(day_s) FROM usage_daily")
                .fetch_one(pool)
                .await)
        .map_err(db("finding the span of the ledger"))?;
        let (Some(first), Some(last)) = span else {
            return Ok(None);
        };
        let instant = |s: i64| {
            Timestamp::from_second(s)
                .map_err(|_| Error::Corrupt(format!("the ledger has usage on day {s}")))
        };
        let range = TimeRange::new(instant(first)?, instant(last + DAY)?)
            .map_err(|e| Error::Corrupt(format!("the ledger's span: {e}")))?;
        Ok(Some(range))
    }

    /// Unit-seconds per meter within each of `ranges` (optionally of one bureau), read in one
    /// snapshot: the rollup for whole days, the raw intervals for the edges; or, when the same
    /// sums were read at the ledger's revision in that snapshot, kept from then
    /// ([`crate::sums_cache`]).
    pub(crate) async fn sums_over(
        &self,
        ranges: &[TimeRange],
        bureau: Option<&str>,
    ) -> Result<Sums> {
        const DOING: &str = "summing usage";
        let (daily, raw) = rollup::queries(self.backend() == crate::Backend::Postgres);
        let (revision, parts): (i64, Vec<Vec<SumRow>>) = with_pool!(self, pool => {
            let mut tx = pool.begin_snapshot().await.map_err(db(DOING))?;
            let (longest, revision): (i64, i64) = sqlx::query_as(
                "SELECT longest_s, revision FROM ledger_bounds WHERE id = 1",
            )
            .fetch_one(&mut *tx)
            .await
            .map_err(db(DOING))?;
            if let Some(kept) = self.sums.get(revision, ranges, bureau) {
                tx.commit().await.map_err(db(DOING))?;
                return Ok(kept);
            }
            let mut parts = Vec::with_capacity(ranges.len());
            for range in ranges {
                let plan = Plan::of(*range);
                let mut rows: Vec<SumRow> = Vec::new();
                if let Some((first, end)) = plan.days {
                    rows.extend(
                        sqlx::query_as::<_, SumRow>(daily)
                            .bind(first)
                            .bind(end)
                            .bind(bureau)
                            .fetch_all(&mut *tx)
                            .await
                            .map_err(db(DOING))?,
                    );
                }
                for (from, to) in plan.raw.into_iter().flatten() {
                    rows.extend(
                        sqlx::query_as::<_, SumRow>(raw)
                            .bind(from)
                            .bind(to)
                            .bind(longest)
                            .bind(bureau)
                            .fetch_all(&mut *tx)
                            .await
                            .map_err(db(DOING))?,
                    );
                }
                parts.push(rows);
            }
            tx.commit().await.map_err(db(DOING))?;
            (revision, parts)
        });
        let sums = parts.into_iter().map(merge).collect::<Result<Sums>>()?;
        self.sums.put(revision, ranges, bureau, &sums);
        Ok(sums)
    }
}

/// A statement's error as the store's.
fn metering(source: zhengyun_metering::Error) -> Error {
    Error::Metering {
        what: "statement",
        source: Box::new(source),
    }
}

/// Adds one summed row of `range` to `builder`.
fn add_row(builder: &mut StatementBuilder<'_>, range: TimeRange, row: SumRow) -> Result<()> {
    let (bureau, environment, resource, kind, tier, high, low) = row;
    let unit_seconds = rollup::join(high, low, &format!("the usage of {environment}"))?;
    let meter = meter_of(bureau, environment, &resource, &kind, &tier)?;
    builder
        .add_usage(&meter, range, unit_seconds)
        .map_err(metering)?;
    Ok(())
}

/// Adds up the rows of one range by meter (a meter can come from the rollup and both edges).
fn merge(rows: Vec<SumRow>) -> Result<Vec<(MeterColumns, u128)>> {
    let mut sums: BTreeMap<MeterColumns, u128> = BTreeMap::new();
    for (bureau, environment, resource, kind, tier, high, low) in rows {
        let what = format!("the usage of {environment}");
        let unit_seconds = rollup::join(high, low, &what)?;
        let slot = sums
            .entry((bureau, environment, resource, kind, tier))
            .or_default();
        *slot = slot
            .checked_add(unit_seconds)
            .ok_or_else(|| Error::Corrupt(format!("{what} sums beyond 2^128")))?;
    }
    Ok(sums.into_iter().collect())
}

/// `amounts` with each bureau's `added` amount (its settled borrowing, its service credits)
/// added.
fn plus(
    mut amounts: BTreeMap<String, Decimal>,
    added: BTreeMap<String, Decimal>,
    what: &str,
) -> Result<BTreeMap<String, Decimal>> {
    for (bureau, amount) in added {
        let slot = amounts.entry(bureau).or_default();
        *slot = slot.checked_add(amount).ok_or_else(|| {
            Error::Corrupt(format!("a bureau's amount with its {what} overflows"))
        })?;
    }
    Ok(amounts)
}

/// `amounts` with each bureau's settled borrowing and service credits added.
fn with_settled_and_credited(
    amounts: BTreeMap<String, Decimal>,
    settlement: &[zhengyun_metering::settlement::SettlementLine],
    credits: &[zhengyun_metering::availability::ServiceCreditLine],
) -> Result<BTreeMap<String, Decimal>> {
    let settled = zhengyun_metering::settlement::bureau_amounts(settlement).map_err(metering)?;
    let credited = zhengyun_metering::availability::bureau_credits(credits).map_err(metering)?;
    plus(
        plus(amounts, settled, "settlement")?,
        credited,
        "service credits",
    )
}
