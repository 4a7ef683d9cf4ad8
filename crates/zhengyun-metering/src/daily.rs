//! Cost by day: what a bureau's reservations and consumption cost on each day of a range, for
//! the chart on its page.
//!
//! A day is priced as a statement prices its month: each meter's unit-seconds within the day at
//! the price of the card in force for its tier, resource and kind. The exact amounts of a day add
//! up in millionths of a fen and are rounded once per day and kind, half to even, to the fen.
//! The statement rounds once per line and month instead, so the days of a month may differ from
//! the statement's total by a few fen; the statement is what is owed. Borrowed capacity (burst)
//! is settled per month with its lenders and is not spread over days.

use std::collections::BTreeMap;

use jiff::civil::Date;
use rust_decimal::Decimal;

use crate::{
    efficiency::{EXACT_SCALE, MeterSum, micro_to_fen},
    error::{Error, Result},
    rates::{RateCard, Rounding, cost_in_units},
    usage::UsageKind,
};

/// What one day cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayCost {
    /// The day, in the platform's time zone.
    pub date: Date,
    /// The reservation charge of the day, to the fen.
    pub reserved: Decimal,
    /// The consumption charge of the day, to the fen.
    pub consumed: Decimal,
}

impl DayCost {
    /// Reservation and consumption together.
    pub fn amount(&self) -> Decimal {
        self.reserved + self.consumed
    }
}

/// Adds up usage, day by day and rate period by rate period, into [`DayCost`]s.
#[derive(Debug, Default)]
pub struct DailyCosts {
    days: BTreeMap<Date, (u128, u128)>,
}

impl DailyCosts {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the sums of one rate period within `date`, priced by `card` (`None` before the
    /// first card: free). A day split by a new card is added once per part. A day added with
    /// no sums is shown at zero.
    pub fn add<'a>(
        &mut self,
        date: Date,
        card: Option<&RateCard>,
        sums: impl IntoIterator<Item = MeterSum<'a>>,
    ) -> Result<()> {
        let day = self.days.entry(date).or_default();
        let Some(card) = card else {
            return Ok(());
        };
        for sum in sums {
            let slot = match sum.kind {
                UsageKind::Reserved => &mut day.0,
                UsageKind::Consumed => &mut day.1,
                UsageKind::Burst => continue,
            };
            let exact = cost_in_units(
                sum.unit_seconds,
                sum.resource,
                card.price(sum.tier, sum.resource, sum.kind),
                100,
                EXACT_SCALE,
                Rounding::HalfEven,
            )?;
            *slot = slot.checked_add(exact).ok_or(Error::Overflow {
                what: "the cost of a day",
            })?;
        }
        Ok(())
    }

    /// The days in order, each kind rounded to the fen.
    pub fn finish(self) -> Result<Vec<DayCost>> {
        self.days
            .into_iter()
            .map(|(date, (reserved, consumed))| {
                Ok(DayCost {
                    date,
                    reserved: micro_to_fen(reserved, "the cost of a day")?,
                    consumed: micro_to_fen(consumed, "the cost of a day")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;
    use zhengyun_model::{names::Tier, quantity::Resource};

    use super::*;

    const HOUR: u128 = 3600;

    fn card() -> RateCard {
        // Silver CPU: 0.30 per core-hour reserved, 0.20 consumed.
        RateCard::new(date(2026, 1, 1), "CNY")
            .with_prices(
                Tier::Silver,
                Resource::Cpu,
                Decimal::new(30, 2),
                Decimal::new(20, 2),
            )
            .expect("prices")
    }

    fn cpu(kind: UsageKind, unit_seconds: u128) -> MeterSum<'static> {
        MeterSum {
            bureau: "wjw",
            environment: "wjw-dev",
            resource: Resource::Cpu,
            kind,
            tier: Tier::Silver,
            unit_seconds,
        }
    }

    #[test]
    fn each_day_prices_its_reservation_and_consumption_at_the_card_in_force() {
        let card = card();
        let mut days = DailyCosts::new();
        // Two cores reserved all day, one consumed for 12 hours: 14.40 and 2.40.
        days.add(
            date(2026, 11, 1),
            Some(&card),
            [
                cpu(UsageKind::Reserved, 2_000 * 24 * HOUR),
                cpu(UsageKind::Consumed, 1_000 * 12 * HOUR),
                cpu(UsageKind::Burst, 5_000 * HOUR),
            ],
        )
        .expect("add");
        days.add(date(2026, 11, 2), Some(&card), []).expect("add");
        let costs = days.finish().expect("finish");
        assert_eq!(costs.len(), 2);
        assert_eq!(costs[0].reserved, Decimal::new(1440, 2));
        assert_eq!(costs[0].consumed, Decimal::new(240, 2));
        assert_eq!(costs[0].amount(), Decimal::new(1680, 2));
        assert_eq!(costs[1].amount(), Decimal::ZERO);
    }

    #[test]
    fn a_day_is_rounded_once_after_its_parts_add_up() {
        let card = card();
        let mut days = DailyCosts::new();
        // Each part is 0.3 fen (36 core-seconds at 0.30 per core-hour); three of them make
        // 0.9 fen, one fen once rounded, where rounding each would make nothing.
        let day = date(2026, 11, 3);
        for _ in 0..3 {
            days.add(day, Some(&card), [cpu(UsageKind::Reserved, 36_000)])
                .expect("add");
        }
        assert_eq!(
            days.finish().expect("finish")[0].reserved,
            Decimal::new(1, 2)
        );
    }

    #[test]
    fn time_before_the_first_card_costs_nothing() {
        let mut days = DailyCosts::new();
        days.add(
            date(2025, 12, 31),
            None,
            [cpu(UsageKind::Reserved, 1_000 * HOUR)],
        )
        .expect("add");
        assert_eq!(days.finish().expect("finish")[0].amount(), Decimal::ZERO);
    }
}
