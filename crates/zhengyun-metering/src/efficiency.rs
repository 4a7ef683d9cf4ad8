//! Efficiency and idle cost: how much of what each environment and bureau reserved it used, and
//! what the unused part cost under the two-part tariff.
//!
//! For each environment, resource, tier and rate period the idle unit-seconds are
//! `reserved − consumed` (never below zero), and their cost is the idle unit-seconds at the
//! tier's **reservation price** of the card in force: the part of the reservation charge that
//! bought nothing. A line (environment and resource) adds its periods and tiers exactly, in
//! millionths of a fen, and rounds once, half to even, to the fen; environments and bureaus add
//! up their lines' rounded amounts, so every total is the sum of what it shows.
//!
//! **Efficiency** of a line is consumed ÷ reserved unit-seconds. Resources cannot be added, so
//! an environment's or a bureau's efficiency is weighted by money: the share of its reservation
//! charges that was used, `1 − idle cost ÷ reservation cost`. Both are truncated toward zero to
//! four decimals (as a budget ratio is), and absent when nothing was reserved (or nothing
//! priced). Time before the first rate card has no price: it counts in unit-seconds, not in
//! money.

use std::collections::BTreeMap;

use rust_decimal::{Decimal, RoundingStrategy};
use zhengyun_model::{names::Tier, quantity::Resource};

use crate::{
    budget::RATIO_SCALE,
    error::{Error, Result},
    rates::{MONEY_SCALE, RateCard, Rounding, cost_in_units},
    settlement::MICRO_PER_FEN,
    usage::UsageKind,
};

/// Decimal places of the exact amounts a line adds up: millionths of a fen.
pub(crate) const EXACT_SCALE: u32 = MONEY_SCALE + 6;

/// One environment's use of one resource over the evaluated period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EfficiencyLine {
    /// The bureau.
    pub bureau: String,
    /// The environment.
    pub environment: String,
    /// The resource.
    pub resource: Resource,
    /// Unit-seconds reserved (the admitted quota × time).
    pub reserved_unit_seconds: u128,
    /// Unit-seconds consumed (requests of running pods, bound storage).
    pub consumed_unit_seconds: u128,
    /// Unit-seconds reserved and not consumed.
    pub idle_unit_seconds: u128,
    /// What the reservation cost, to the fen.
    pub reservation_cost: Decimal,
    /// What the idle part of the reservation cost, to the fen.
    pub idle_cost: Decimal,
    /// Consumed ÷ reserved, four decimals truncated; `None` when nothing was reserved.
    pub efficiency: Option<Decimal>,
}

/// The totals of an environment or a bureau.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EfficiencyTotal {
    /// What the reservations cost, to the fen (the sum of the lines).
    pub reservation_cost: Decimal,
    /// What the idle part cost, to the fen (the sum of the lines).
    pub idle_cost: Decimal,
    /// `1 − idle cost ÷ reservation cost`, four decimals truncated; `None` when nothing priced
    /// was reserved.
    pub efficiency: Option<Decimal>,
}

impl EfficiencyTotal {
    fn add(&mut self, line: &EfficiencyLine) {
        self.reservation_cost += line.reservation_cost;
        self.idle_cost += line.idle_cost;
    }

    fn finish(mut self) -> Self {
        self.efficiency = ratio(
            self.reservation_cost - self.idle_cost,
            self.reservation_cost,
        );
        self
    }
}

/// Efficiency over a period: lines per environment and resource, totals per environment and
/// per bureau, and the bureaus ranked by idle cost.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Efficiency {
    /// Per environment and resource, sorted by bureau, environment, then resource in quota
    /// order.
    pub lines: Vec<EfficiencyLine>,
    /// Per environment (bureau, environment), sorted by name.
    pub environments: BTreeMap<(String, String), EfficiencyTotal>,
    /// Per bureau, by code.
    pub bureaus: BTreeMap<String, EfficiencyTotal>,
}

impl Efficiency {
    /// The bureaus from the largest idle cost to the smallest (ties by code), with their rank
    /// from 1.
    pub fn ranking(&self) -> Vec<(usize, &str, &EfficiencyTotal)> {
        let mut bureaus: Vec<(&str, &EfficiencyTotal)> = self
            .bureaus
            .iter()
            .map(|(code, total)| (code.as_str(), total))
            .collect();
        bureaus.sort_by(|a, b| b.1.idle_cost.cmp(&a.1.idle_cost).then(a.0.cmp(b.0)));
        bureaus
            .into_iter()
            .enumerate()
            .map(|(i, (code, total))| (i + 1, code, total))
            .collect()
    }
}

/// Unit-seconds of one meter within one rate period, as the ledger sums them.
#[derive(Clone, Copy, Debug)]
pub struct MeterSum<'a> {
    /// The bureau.
    pub bureau: &'a str,
    /// The environment.
    pub environment: &'a str,
    /// The resource.
    pub resource: Resource,
    /// Reserved or consumed (burst is not part of a reservation and is skipped).
    pub kind: UsageKind,
    /// The tier the usage was metered at.
    pub tier: Tier,
    /// Σ amount × seconds within the period.
    pub unit_seconds: u128,
}

type PieceKey = (String, String, Resource, Tier);

/// Adds up reserved and consumed usage, period by period, into an [`Efficiency`].
#[derive(Debug, Default)]
pub struct EfficiencyBuilder {
    lines: BTreeMap<(String, String, Resource), Exact>,
}

#[derive(Debug, Default)]
struct Exact {
    reserved: u128,
    consumed: u128,
    idle: u128,
    reservation_cost: u128,
    idle_cost: u128,
}

impl EfficiencyBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the sums of one rate period, priced by `card` (`None` before the first card:
    /// counted, not priced). Reserved and consumed of the same environment, resource and tier
    /// must come in the same call, since idle time is their difference within the period.
    pub fn add_period<'a>(
        &mut self,
        card: Option<&RateCard>,
        sums: impl IntoIterator<Item = MeterSum<'a>>,
    ) -> Result<()> {
        let mut pieces: BTreeMap<PieceKey, (u128, u128)> = BTreeMap::new();
        for sum in sums {
            let key = (
                sum.bureau.to_owned(),
                sum.environment.to_owned(),
                sum.resource,
                sum.tier,
            );
            let slot = pieces.entry(key).or_default();
            match sum.kind {
                UsageKind::Reserved => slot.0 = checked(slot.0, sum.unit_seconds)?,
                UsageKind::Consumed => slot.1 = checked(slot.1, sum.unit_seconds)?,
                UsageKind::Burst => {}
            }
        }
        for ((bureau, environment, resource, tier), (reserved, consumed)) in pieces {
            let idle = reserved.saturating_sub(consumed);
            let price = card
                .map(|card| card.price(tier, resource, UsageKind::Reserved))
                .unwrap_or(Decimal::ZERO);
            let exact = |unit_seconds| {
                cost_in_units(
                    unit_seconds,
                    resource,
                    price,
                    100,
                    EXACT_SCALE,
                    Rounding::HalfEven,
                )
            };
            let line = self
                .lines
                .entry((bureau, environment, resource))
                .or_default();
            line.reserved = checked(line.reserved, reserved)?;
            line.consumed = checked(line.consumed, consumed)?;
            line.idle = checked(line.idle, idle)?;
            line.reservation_cost = checked(line.reservation_cost, exact(reserved)?)?;
            line.idle_cost = checked(line.idle_cost, exact(idle)?)?;
        }
        Ok(())
    }

    /// The lines, rounded to the fen, with their totals.
    pub fn finish(self) -> Result<Efficiency> {
        let mut efficiency = Efficiency::default();
        for ((bureau, environment, resource), exact) in self.lines {
            let line = EfficiencyLine {
                reservation_cost: micro_to_fen(exact.reservation_cost, "a reservation cost")?,
                idle_cost: micro_to_fen(exact.idle_cost, "an idle cost")?,
                efficiency: ratio_of(exact.consumed.min(exact.reserved), exact.reserved),
                reserved_unit_seconds: exact.reserved,
                consumed_unit_seconds: exact.consumed,
                idle_unit_seconds: exact.idle,
                bureau,
                environment,
                resource,
            };
            efficiency
                .environments
                .entry((line.bureau.clone(), line.environment.clone()))
                .or_default()
                .add(&line);
            efficiency
                .bureaus
                .entry(line.bureau.clone())
                .or_default()
                .add(&line);
            efficiency.lines.push(line);
        }
        for total in efficiency
            .environments
            .values_mut()
            .chain(efficiency.bureaus.values_mut())
        {
            *total = std::mem::take(total).finish();
        }
        Ok(efficiency)
    }
}

fn checked(a: u128, b: u128) -> Result<u128> {
    a.checked_add(b).ok_or(Error::Overflow {
        what: "efficiency sums",
    })
}

/// Millionths of a fen to the fen, half to even; `what` names the amount if it overflows.
pub(crate) fn micro_to_fen(exact: u128, what: &'static str) -> Result<Decimal> {
    crate::wide::mul_div_rounded(exact, 1, MICRO_PER_FEN, Rounding::HalfEven)
        .and_then(|fen| i128::try_from(fen).ok())
        .and_then(|fen| Decimal::try_from_i128_with_scale(fen, MONEY_SCALE).ok())
        .ok_or(Error::Overflow { what })
}

/// `part ÷ whole` (`part ≤ whole`) truncated to four decimals, `None` when `whole` is zero;
/// computed digit by digit so that unit-seconds of any size divide exactly.
fn ratio_of(part: u128, whole: u128) -> Option<Decimal> {
    if whole == 0 {
        return None;
    }
    let mut scaled = part / whole;
    let mut rest = part % whole;
    for _ in 0..RATIO_SCALE {
        let shifted = rest.checked_mul(10)?;
        scaled = scaled * 10 + shifted / whole;
        rest = shifted % whole;
    }
    Decimal::try_from_i128_with_scale(i128::try_from(scaled).ok()?, RATIO_SCALE)
        .ok()
        .map(|r| r.normalize())
}

fn ratio(part: Decimal, whole: Decimal) -> Option<Decimal> {
    if whole <= Decimal::ZERO {
        return None;
    }
    part.checked_div(whole)
        .map(|r| r.round_dp_with_strategy(RATIO_SCALE, RoundingStrategy::ToZero))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn d(text: &str) -> Decimal {
        Decimal::from_str_exact(text).expect("decimal")
    }

    const HOUR: u128 = 3600;
    const GIB: u128 = 1 << 30;

    /// Gold CPU listed at 0.12 a core-hour, reserved at one half (0.06); memory at 0.02 a
    /// GiB-hour, reserved at 0.01.
    fn card() -> RateCard {
        RateCard::new(date(2026, 1, 1), "CNY")
            .with_price(Tier::Gold, Resource::Cpu, d("0.12"))
            .expect("cpu")
            .with_price(Tier::Gold, Resource::Memory, d("0.02"))
            .expect("memory")
    }

    fn sum<'a>(
        environment: &'a str,
        resource: Resource,
        kind: UsageKind,
        unit_seconds: u128,
    ) -> MeterSum<'a> {
        MeterSum {
            bureau: "wjw",
            environment,
            resource,
            kind,
            tier: Tier::Gold,
            unit_seconds,
        }
    }

    #[test]
    fn idle_reservation_is_priced_at_the_reservation_price_and_efficiency_is_weighted_by_money() {
        let card = card();
        let mut builder = EfficiencyBuilder::new();
        // 100 hours of 4 cores reserved, 1 core used: 400 core-hours reserved (24.00 at 0.06),
        // 300 idle (18.00). 100 hours of 8 GiB reserved, 2 GiB used: 800 GiB-hours (8.00 at
        // 0.01), 600 idle (6.00).
        builder
            .add_period(
                Some(&card),
                [
                    sum(
                        "wjw-prod",
                        Resource::Cpu,
                        UsageKind::Reserved,
                        4000 * 100 * HOUR,
                    ),
                    sum(
                        "wjw-prod",
                        Resource::Cpu,
                        UsageKind::Consumed,
                        1000 * 100 * HOUR,
                    ),
                    sum(
                        "wjw-prod",
                        Resource::Memory,
                        UsageKind::Reserved,
                        8 * GIB * 100 * HOUR,
                    ),
                    sum(
                        "wjw-prod",
                        Resource::Memory,
                        UsageKind::Consumed,
                        2 * GIB * 100 * HOUR,
                    ),
                ],
            )
            .expect("period");
        let efficiency = builder.finish().expect("finish");
        let cpu = &efficiency.lines[0];
        assert_eq!(cpu.resource, Resource::Cpu);
        assert_eq!(cpu.reservation_cost, d("24.00"));
        assert_eq!(cpu.idle_cost, d("18.00"));
        assert_eq!(cpu.efficiency, Some(d("0.25")));
        assert_eq!(cpu.idle_unit_seconds, 3000 * 100 * HOUR);
        let memory = &efficiency.lines[1];
        assert_eq!(memory.idle_cost, d("6.00"));
        let env = &efficiency.environments[&("wjw".to_owned(), "wjw-prod".to_owned())];
        assert_eq!(env.reservation_cost, d("32.00"));
        assert_eq!(env.idle_cost, d("24.00"));
        // 8.00 of 32.00 was used.
        assert_eq!(env.efficiency, Some(d("0.25")));
        assert_eq!(efficiency.bureaus["wjw"], *env);
    }

    #[test]
    fn consumption_above_the_reservation_leaves_nothing_idle_and_efficiency_stops_at_one() {
        let mut builder = EfficiencyBuilder::new();
        builder
            .add_period(
                Some(&card()),
                [
                    sum("wjw-prod", Resource::Cpu, UsageKind::Reserved, 1000 * HOUR),
                    sum("wjw-prod", Resource::Cpu, UsageKind::Consumed, 2000 * HOUR),
                ],
            )
            .expect("period");
        let efficiency = builder.finish().expect("finish");
        assert_eq!(efficiency.lines[0].idle_unit_seconds, 0);
        assert_eq!(efficiency.lines[0].idle_cost, d("0.00"));
        assert_eq!(efficiency.lines[0].efficiency, Some(d("1")));
    }

    #[test]
    fn idle_time_is_the_difference_within_each_period_not_across_them() {
        // Idle all of the first period, fully used in the second: idle is the first period's
        // reservation, not the difference of the totals (which would be the same here only by
        // chance), priced by each period's own card.
        let cheap = card();
        let dear = RateCard::new(date(2026, 2, 1), "CNY")
            .with_price(Tier::Gold, Resource::Cpu, d("0.24"))
            .expect("cpu");
        let mut builder = EfficiencyBuilder::new();
        builder
            .add_period(
                Some(&cheap),
                [sum(
                    "wjw-prod",
                    Resource::Cpu,
                    UsageKind::Reserved,
                    1000 * 10 * HOUR,
                )],
            )
            .expect("first");
        builder
            .add_period(
                Some(&dear),
                [
                    sum(
                        "wjw-prod",
                        Resource::Cpu,
                        UsageKind::Reserved,
                        1000 * 10 * HOUR,
                    ),
                    sum(
                        "wjw-prod",
                        Resource::Cpu,
                        UsageKind::Consumed,
                        1000 * 10 * HOUR,
                    ),
                ],
            )
            .expect("second");
        let line = &builder.finish().expect("finish").lines[0];
        // 10 core-hours at 0.06 + 10 at 0.12.
        assert_eq!(line.reservation_cost, d("1.80"));
        // Only the first period's 10 idle core-hours, at 0.06.
        assert_eq!(line.idle_cost, d("0.60"));
        assert_eq!(line.efficiency, Some(d("0.5")));
    }

    #[test]
    fn lines_round_once_and_totals_add_the_rounded_lines() {
        // A third of a fen of idle time in each of three environments: each line rounds to
        // 0.00 once, and the bureau's total is the sum of what the lines show.
        let mut builder = EfficiencyBuilder::new();
        // At 0.06 a core-hour a fen buys 600 core-seconds: a third of a fen is 200.
        let third = 200 * 1000;
        for env in ["wjw-a", "wjw-b", "wjw-c"] {
            builder
                .add_period(
                    Some(&card()),
                    [sum(env, Resource::Cpu, UsageKind::Reserved, third)],
                )
                .expect("period");
        }
        let efficiency = builder.finish().expect("finish");
        assert!(efficiency.lines.iter().all(|l| l.idle_cost == d("0.00")));
        assert_eq!(efficiency.bureaus["wjw"].idle_cost, d("0.00"));
        assert_eq!(efficiency.bureaus["wjw"].efficiency, None);
    }

    #[test]
    fn bureaus_rank_by_idle_cost_largest_first() {
        let mut builder = EfficiencyBuilder::new();
        let mut add = |bureau: &'static str, idle_hours: u128| {
            let environment = format!("{bureau}-prod");
            builder
                .add_period(
                    Some(&card()),
                    [MeterSum {
                        bureau,
                        environment: &environment,
                        resource: Resource::Cpu,
                        kind: UsageKind::Reserved,
                        tier: Tier::Gold,
                        unit_seconds: 1000 * idle_hours * HOUR,
                    }],
                )
                .expect("period");
        };
        add("czj", 10);
        add("wjw", 30);
        add("jyj", 20);
        let efficiency = builder.finish().expect("finish");
        let ranking: Vec<(usize, &str)> = efficiency
            .ranking()
            .into_iter()
            .map(|(rank, code, _)| (rank, code))
            .collect();
        assert_eq!(ranking, vec![(1, "wjw"), (2, "jyj"), (3, "czj")]);
    }
}
