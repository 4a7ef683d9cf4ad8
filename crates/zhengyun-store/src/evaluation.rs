//! What performance evaluation reads from the ledger: efficiency and idle cost over any range,
//! and one environment's intervals for right-sizing.

use futures::TryStreamExt as _;
use zhengyun_metering::{
    Calendar, RateSchedule, TimeRange, UsageInterval,
    efficiency::{Efficiency, EfficiencyBuilder, MeterSum},
};
use zhengyun_model::names::check_bureau_code;

use crate::{
    Store,
    error::{Error, Result, db},
    ledger::{IntervalRow, interval_of, meter_of},
    with_pool,
};

const ENVIRONMENT_INTERVALS: &str = "SELECT bureau, environment, resource, kind, tier, start_s, \
     end_s, amount, environment_uid FROM usage_intervals \
     WHERE environment = $1 AND end_s > $2 AND start_s < $3";

impl Store {
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
            let meters = rows
                .into_iter()
                .map(|(columns, unit_seconds)| {
                    let (bureau, environment, resource, kind, tier) = columns;
                    Ok((
                        meter_of(bureau, environment, &resource, &kind, &tier)?,
                        unit_seconds,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            builder
                .add_period(
                    period.card,
                    meters.iter().map(|(meter, unit_seconds)| MeterSum {
                        bureau: meter.bureau(),
                        environment: meter.environment(),
                        resource: meter.resource(),
                        kind: meter.kind(),
                        tier: meter.tier(),
                        unit_seconds: *unit_seconds,
                    }),
                )
                .map_err(metering)?;
        }
        builder.finish().map_err(metering)
    }

    /// Every interval of `environment` (by name) overlapping `range`, whole, oldest first:
    /// what right-sizing reads.
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
