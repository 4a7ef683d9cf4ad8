//! Right-sizing: the quota an environment's consumed history says it needs, and what the
//! change would save in a month.
//!
//! For each priced resource (CPU, memory, storage, GPUs) the recommendation is the
//! [`PERCENTILE`]th percentile of the environment's consumed amount over the last
//! [`WINDOW_DAYS`] days, weighted by time, plus [`MARGIN_PERCENT`] %, rounded up to the
//! resource's step, and never below the resource's floor nor below what the environment
//! consumes now (a quota below current use is refused by the operator). The percentile counts
//! only the time the environment held a reservation of that resource, so the days before it
//! existed are not read as idle; a resource needs [`MIN_HISTORY_DAYS`] days of such history for
//! a recommendation.
//!
//! The monthly saving is the change in reserved units × the tier's reservation price over an
//! average month of [`MONTH_HOURS`] hours (365 days ÷ 12), rounded half to even to the fen;
//! negative when the recommendation is larger than the quota.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use zhengyun_model::quantity::Resource;

use crate::{
    error::Result,
    rates::{Rounding, cost_rounded},
};

/// Days of consumed history a recommendation reads.
pub const WINDOW_DAYS: i64 = 30;
/// Days of history a resource needs within the window before it is given a recommendation.
pub const MIN_HISTORY_DAYS: i64 = 7;
/// The percentile of consumption a recommendation covers.
pub const PERCENTILE: u32 = 95;
/// Headroom added on top of the percentile, in percent.
pub const MARGIN_PERCENT: u64 = 20;
/// Hours in an average month, for the monthly saving: 365 × 24 ÷ 12.
pub const MONTH_HOURS: u64 = 730;

/// The resources right-sizing recommends a quota for: the ones reserved at a price.
pub const RIGHT_SIZED: [Resource; 4] = [
    Resource::Cpu,
    Resource::Memory,
    Resource::Storage,
    Resource::Gpu,
];

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The smallest quota recommended for `resource`, in base units: half a core, 512 MiB of
/// memory, no storage and no GPUs (an environment that uses none needs none).
pub fn floor(resource: Resource) -> u64 {
    match resource {
        Resource::Cpu => 500,
        Resource::Memory => 512 * MIB,
        _ => 0,
    }
}

/// What recommendations of `resource` are rounded up to, in base units: a tenth of a core,
/// 256 MiB of memory, 1 GiB of storage, one GPU.
pub fn step(resource: Resource) -> u64 {
    match resource {
        Resource::Cpu => 100,
        Resource::Memory => 256 * MIB,
        Resource::Storage => GIB,
        _ => 1,
    }
}

/// A span of time, in seconds since the epoch, `[start, end)`, with an amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// First second.
    pub start: i64,
    /// Second after the last.
    pub end: i64,
    /// The amount over the span, in base units.
    pub amount: u64,
}

/// A resource's consumed history, summarised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct History {
    /// Seconds with a reservation of the resource within the window.
    pub covered_seconds: u64,
    /// The time-weighted [`PERCENTILE`]th percentile of consumption over those seconds.
    pub percentile: u64,
    /// Consumption at the last covered second.
    pub latest: u64,
    /// The largest consumption seen.
    pub peak: u64,
}

/// Summarises consumption over the time `reserved` covers (overlaps count once), clipped to
/// `[from, to)`; `consumed` spans that overlap add up. `None` when nothing is covered.
pub fn history(reserved: &[Span], consumed: &[Span], from: i64, to: i64) -> Option<History> {
    // Events at each instant: (coverage change, consumption change).
    let mut events: BTreeMap<i64, (i64, i128)> = BTreeMap::new();
    let clip = |span: &Span| {
        let (start, end) = (span.start.max(from), span.end.min(to));
        (start < end).then_some((start, end))
    };
    for span in reserved {
        if let Some((start, end)) = clip(span) {
            events.entry(start).or_default().0 += 1;
            events.entry(end).or_default().0 -= 1;
        }
    }
    for span in consumed {
        if let Some((start, end)) = clip(span) {
            events.entry(start).or_default().1 += i128::from(span.amount);
            events.entry(end).or_default().1 -= i128::from(span.amount);
        }
    }
    let mut durations: BTreeMap<u64, u64> = BTreeMap::new();
    let (mut coverage, mut level) = (0i64, 0i128);
    let (mut latest, mut peak) = (0u64, 0u64);
    let mut previous: Option<i64> = None;
    for (&at, &(cover, change)) in &events {
        if let Some(since) = previous
            && coverage > 0
            && at > since
        {
            let amount = u64::try_from(level.max(0)).unwrap_or(u64::MAX);
            *durations.entry(amount).or_default() += u64::try_from(at - since).unwrap_or(0);
            latest = amount;
            peak = peak.max(amount);
        }
        coverage += cover;
        level += change;
        previous = Some(at);
    }
    let covered: u64 = durations.values().sum();
    if covered == 0 {
        return None;
    }
    // The smallest amount with at least PERCENTILE % of the covered time at or below it.
    let needed = u128::from(covered) * u128::from(PERCENTILE);
    let mut at_or_below = 0u128;
    let percentile = durations
        .iter()
        .find(|&(_, &seconds)| {
            at_or_below += u128::from(seconds);
            at_or_below * 100 >= needed
        })
        .map(|(&amount, _)| amount)
        .unwrap_or(peak);
    Some(History {
        covered_seconds: covered,
        percentile,
        latest,
        peak,
    })
}

/// The quota recommended for `resource` from its `history`: the percentile plus the margin,
/// rounded up to the step, at least the floor and the latest consumption.
pub fn recommend(resource: Resource, history: &History) -> u64 {
    let with_margin = u128::from(history.percentile) * u128::from(100 + MARGIN_PERCENT);
    let with_margin = u64::try_from(with_margin.div_ceil(100)).unwrap_or(u64::MAX);
    let step = step(resource);
    let stepped = with_margin.div_ceil(step).saturating_mul(step);
    stepped.max(floor(resource)).max(history.latest)
}

/// What reserving `recommended` instead of `current` units of `resource` saves in an average
/// month at `reservation_price` per unit-hour (negative when it costs more).
pub fn monthly_saving(
    resource: Resource,
    current: u64,
    recommended: u64,
    reservation_price: Decimal,
) -> Result<Decimal> {
    let seconds = u128::from(MONTH_HOURS * 3600);
    let cost = |units: u64| {
        cost_rounded(
            u128::from(units) * seconds,
            resource,
            reservation_price,
            Rounding::HalfEven,
        )
    };
    Ok(cost(current)? - cost(recommended)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn span(start: i64, end: i64, amount: u64) -> Span {
        Span { start, end, amount }
    }

    #[test]
    fn the_percentile_is_weighted_by_time_over_the_reserved_days_only() {
        // Reserved for 20 of the 30 days. Consumption: 1 core for 18 days, 3 cores for 1.5
        // days, 6 cores for half a day. 95 % of 20 days is 19 days: 18 days at 1 core are not
        // enough, 19.5 days at or below 3 cores are, so the percentile is 3 cores.
        let from = 0;
        let to = 30 * DAY;
        let reserved = [span(10 * DAY, 30 * DAY, 4000)];
        let consumed = [
            span(10 * DAY, 28 * DAY, 1000),
            span(28 * DAY, 28 * DAY + 3 * DAY / 2, 3000),
            span(28 * DAY + 3 * DAY / 2, 30 * DAY, 6000),
        ];
        let history = history(&reserved, &consumed, from, to).expect("history");
        assert_eq!(history.covered_seconds, 20 * DAY as u64);
        assert_eq!(history.percentile, 3000);
        assert_eq!(history.peak, 6000);
        assert_eq!(history.latest, 6000);
    }

    #[test]
    fn overlapping_consumption_adds_up_and_uncovered_time_is_not_counted() {
        // Two pods of 500m overlap for the whole day: 1 core. Consumption outside the
        // reservation is ignored.
        let reserved = [span(0, DAY, 2000)];
        let consumed = [
            span(0, DAY, 500),
            span(0, DAY, 500),
            span(DAY, 2 * DAY, 9000),
        ];
        let history = history(&reserved, &consumed, 0, 2 * DAY).expect("history");
        assert_eq!(history.percentile, 1000);
        assert_eq!(history.covered_seconds, DAY as u64);
        assert_eq!(history.peak, 1000);
    }

    #[test]
    fn time_without_consumption_counts_as_zero() {
        // Reserved all day, used for 1 hour: 95 % of the day consumed nothing.
        let reserved = [span(0, DAY, 2000)];
        let consumed = [span(0, 3600, 1500)];
        let history = history(&reserved, &consumed, 0, DAY).expect("history");
        assert_eq!(history.percentile, 0);
        assert_eq!(history.latest, 0);
    }

    #[test]
    fn nothing_reserved_is_no_history() {
        assert_eq!(history(&[], &[span(0, DAY, 1)], 0, DAY), None);
    }

    #[test]
    fn a_recommendation_adds_the_margin_rounds_up_to_the_step_and_keeps_the_floor() {
        let history = |percentile, latest| History {
            covered_seconds: 1,
            percentile,
            latest,
            peak: percentile.max(latest),
        };
        // 3 cores + 20 % = 3.6 cores.
        assert_eq!(recommend(Resource::Cpu, &history(3000, 0)), 3600);
        // 1.05 cores + 20 % = 1.26 → 1.3 cores.
        assert_eq!(recommend(Resource::Cpu, &history(1050, 0)), 1300);
        // Nothing used: the floor.
        assert_eq!(recommend(Resource::Cpu, &history(0, 0)), 500);
        assert_eq!(recommend(Resource::Storage, &history(0, 0)), 0);
        // 1 GiB + 20 % = 1.2 GiB → 1.25 GiB (a step of 256 MiB).
        assert_eq!(recommend(Resource::Memory, &history(GIB, 0)), 1280 * MIB);
        // Never below what is used now.
        assert_eq!(recommend(Resource::Cpu, &history(1000, 4000)), 4000);
        // A GPU used 95 % of the time: 1 + 20 % → 2.
        assert_eq!(recommend(Resource::Gpu, &history(1, 0)), 2);
    }

    #[test]
    fn the_monthly_saving_prices_the_change_at_the_reservation_price_over_730_hours() {
        let price = Decimal::from_str_exact("0.06").expect("price");
        // From 8 cores to 3.6: 4.4 cores × 730 h × 0.06 = 192.72.
        assert_eq!(
            monthly_saving(Resource::Cpu, 8000, 3600, price).expect("saving"),
            Decimal::from_str_exact("192.72").expect("d")
        );
        // Growing costs: negative.
        assert_eq!(
            monthly_saving(Resource::Cpu, 1000, 2000, price).expect("saving"),
            Decimal::from_str_exact("-43.80").expect("d")
        );
    }
}
