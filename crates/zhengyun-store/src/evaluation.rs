//! What performance evaluation reads from the ledger: a year's statements and adjustments read
//! together, efficiency and idle cost over any range, and one environment's intervals for
//! right-sizing.

use std::collections::{BTreeMap, BTreeSet};

use futures::TryStreamExt as _;
use zhengyun_metering::{
    AdjustmentLine, Calendar, Meter, Month, RateSchedule, Statement, TimeRange, UsageInterval,
    daily::{DailyCosts, DayCost},
    efficiency::{Efficiency, EfficiencyBuilder, MeterSum},
};
use zhengyun_model::names::check_bureau_code;

use crate::{
    Store,
    error::{Error, Result, db},
    ledger::{IntervalRow, interval_of, meter_of},
    rollup::MeterColumns,
    with_pool,
};

/// One environment's intervals overlapping `[$2, $3)`, found on the index by the hour an
/// interval ends in first (migration 0020): one look per hour from the range's start to the
/// last hour in which an interval that starts before the range's end may end
/// (`ledger_bounds.longest_s` after it), 720 looks for 30 days. The hour must be written as the
/// index writes it, `end_s / 3600`.
const ENVIRONMENT_INTERVALS: &str = "WITH RECURSIVE hours(hour) AS ( \
       SELECT CAST($2 AS BIGINT) / 3600 \
       UNION ALL SELECT hour + 1 FROM hours \
       WHERE hour < (CAST($3 AS BIGINT) + (SELECT longest_s FROM ledger_bounds WHERE id = 1)) / 3600) \
     SELECT i.bureau, i.environment, i.resource, i.kind, i.tier, i.start_s, i.end_s, i.amount, \
       i.environment_uid FROM hours CROSS JOIN usage_intervals AS i \
     WHERE i.end_s / 3600 = hours.hour AND i.environment = $1 AND i.end_s > $2 AND i.start_s < $3";

/// One month as the annual evaluation adds it up: its statement and its adjustments.
#[derive(Clone, Debug, PartialEq)]
pub struct MonthAccount {
    /// The month's statement: the closed one once the month is closed, else as the ledger
    /// gives it now.
    pub statement: Statement,
    /// The adjustments issued for the month, in the order they were issued.
    pub adjustments: Vec<AdjustmentLine>,
}

impl Store {
    /// Each month from `first` through `last` (none if `last` is earlier), oldest first: its statement as
    /// [`Store::month_statement`] gives it without budgets (with `bureau`, only that bureau's
    /// part, as [`Statement::keep_bureau`] cuts it) and its [`Store::adjustments`].
    ///
    /// The months are read together: the usage of the open ones in one snapshot, and the
    /// closed months, gaps, settlements, service credits and adjustments of all of them in a
    /// query or three each, where reading them month by month takes a dozen queries a month.
    pub async fn month_accounts(
        &self,
        first: Month,
        last: Month,
        calendar: &Calendar,
        schedule: &RateSchedule,
        bureau: Option<&str>,
    ) -> Result<Vec<MonthAccount>> {
        if first > last {
            return Ok(Vec::new());
        }
        let mut months = vec![first];
        let mut month = first;
        while month < last {
            month = month.next().map_err(|e| Error::Metering {
                what: "months",
                source: Box::new(e),
            })?;
            months.push(month);
        }
        let closed: BTreeSet<Month> = self
            .closed_months_between(first, last)
            .await?
            .into_iter()
            .collect();
        let open: Vec<Month> = months
            .iter()
            .copied()
            .filter(|m| !closed.contains(m))
            .collect();
        let mut computed = self
            .computed_statements(&open, calendar, schedule, &BTreeMap::new(), bureau)
            .await?
            .into_iter();
        let mut adjustments = self.months_adjustments(first, last).await?;
        let mut accounts = Vec::with_capacity(months.len());
        for month in months {
            let statement = if closed.contains(&month) {
                let mut statement = self.closed_statement(month).await?.ok_or_else(|| {
                    Error::Corrupt(format!("the closed statement of {month} went missing"))
                })?;
                if let Some(bureau) = bureau {
                    statement.keep_bureau(bureau);
                }
                statement
            } else {
                computed.next().ok_or_else(|| {
                    Error::Corrupt(format!("no statement was computed for {month}"))
                })?
            };
            accounts.push(MonthAccount {
                statement,
                adjustments: adjustments.remove(&month).unwrap_or_default(),
            });
        }
        Ok(accounts)
    }

    /// Efficiency and idle cost within `range` (of one bureau, or of all), each rate period
    /// priced by the card `schedule` has in force in it (read in `calendar`). See
    /// [`zhengyun_metering::efficiency`].
    pub async fn efficiency(
        &self,
        range: TimeRange,
        bureau: Option<&str>,
        schedule: &RateSchedule,
        calendar: &Calendar,
    ) -> Result<Efficiency> {
        if let Some(bureau) = bureau {
            check_bureau_code(bureau).map_err(|reason| Error::invalid("bureau", reason))?;
        }
        let metering = |source| Error::Metering {
            what: "efficiency",
            source: Box::new(source),
        };
        let periods = schedule.periods(range, calendar).map_err(metering)?;
        let ranges: Vec<TimeRange> = periods.iter().map(|p| p.range).collect();
        let sums = self.sums_over(&ranges, bureau).await?;
        let mut builder = EfficiencyBuilder::new();
        for (period, rows) in periods.iter().zip(sums) {
            let meters = meters_of(rows)?;
            builder
                .add_period(period.card, meter_sums(&meters))
                .map_err(metering)?;
        }
        builder.finish().map_err(metering)
    }

    /// What `bureau`'s reservations and consumption cost on each day (in `calendar`) that
    /// `range` touches, each part of a day priced by the card `schedule` has in force in it. See
    /// [`zhengyun_metering::daily`].
    pub async fn daily_costs(
        &self,
        range: TimeRange,
        bureau: &str,
        schedule: &RateSchedule,
        calendar: &Calendar,
    ) -> Result<Vec<DayCost>> {
        check_bureau_code(bureau).map_err(|reason| Error::invalid("bureau", reason))?;
        let metering = |source| Error::Metering {
            what: "costs by day",
            source: Box::new(source),
        };
        let mut pieces = Vec::new();
        let mut date = calendar.date_of(range.start());
        loop {
            let start = calendar.start_of_day(date).map_err(metering)?;
            if start >= range.end() {
                break;
            }
            let next = date
                .tomorrow()
                .map_err(|e| Error::invalid("range", e.to_string()))?;
            let end = calendar.start_of_day(next).map_err(metering)?;
            let day =
                TimeRange::new(start.max(range.start()), end.min(range.end())).map_err(metering)?;
            for period in schedule.periods(day, calendar).map_err(metering)? {
                pieces.push((date, period));
            }
            date = next;
        }
        let ranges: Vec<TimeRange> = pieces.iter().map(|(_, p)| p.range).collect();
        let sums = self.sums_over(&ranges, Some(bureau)).await?;
        let mut days = DailyCosts::new();
        for ((date, period), rows) in pieces.iter().zip(sums) {
            let meters = meters_of(rows)?;
            days.add(*date, period.card, meter_sums(&meters))
                .map_err(metering)?;
        }
        days.finish().map_err(metering)
    }

    /// Every interval of `environment` (by name) overlapping `range`, whole, oldest first:
    /// what right-sizing reads. This costs an index look per hour of the range.
    pub async fn environment_intervals(
        &self,
        environment: &str,
        range: TimeRange,
    ) -> Result<Vec<UsageInterval>> {
        const DOING: &str = "reading an environment's usage";
        let (from, to) = (range.start().as_second(), range.end().as_second());
        let mut intervals = with_pool!(self, pool => {
            let mut rows = sqlx::query_as::<_, IntervalRow>(ENVIRONMENT_INTERVALS)
                .bind(environment)
                .bind(from)
                .bind(to)
                .fetch(pool);
            let mut intervals = Vec::new();
            while let Some(row) = rows.try_next().await.map_err(db(DOING))? {
                intervals.push(interval_of(row)?);
            }
            intervals
        });
        intervals.sort_by_key(|i| (i.start(), i.end()));
        Ok(intervals)
    }
}

/// The ledger's sums of one range as meters.
fn meters_of(rows: Vec<(MeterColumns, u128)>) -> Result<Vec<(Meter, u128)>> {
    rows.into_iter()
        .map(|(columns, unit_seconds)| {
            let (bureau, environment, resource, kind, tier) = columns;
            Ok((
                meter_of(bureau, environment, &resource, &kind, &tier)?,
                unit_seconds,
            ))
        })
        .collect()
}

/// Meters with their sums, as the metering builders take them.
fn meter_sums(meters: &[(Meter, u128)]) -> impl Iterator<Item = MeterSum<'_>> {
    meters.iter().map(|(meter, unit_seconds)| MeterSum {
        bureau: meter.bureau(),
        environment: meter.environment(),
        resource: meter.resource(),
        kind: meter.kind(),
        tier: meter.tier(),
        unit_seconds: *unit_seconds,
    })
}
