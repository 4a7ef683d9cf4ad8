//! Rate cards: prices per resource-hour per tier from a date on, the choice of the card in force
//! at an instant, and the exact conversion from unit-seconds to money.
//!
//! A card takes effect at local midnight (platform time zone) of its `effectiveFrom` day and
//! stays in force until the next card's day; the card for an instant is the one with the latest
//! `effectiveFrom` on or before the instant's local date. Cards never change; a new price is a
//! new card.
//!
//! Prices are per *unit*-hour: CPU per core-hour (1 core = 1000 millicores), memory and storage
//! per GiB-hour (2^30 bytes), GPUs per GPU-hour. Pods, services, load balancers and volume
//! claims are free unless a card prices them ([`RateCard::with_price`]); `RateCard` CRDs price
//! only the first four.
//!
//! [`cost`] is exact: see the crate documentation for the guarantee and the rounding rule.

use std::collections::BTreeMap;

use jiff::{Timestamp, civil::Date};
use rust_decimal::Decimal;
use zhengyun_model::{
    crd::{PRICE_MAX_SCALE, RateCardSpec, ResourcePrices},
    names::Tier,
    quantity::Resource,
};

use crate::{
    calendar::{Calendar, TimeRange},
    error::{Error, Result},
    wide::mul_div_half_even,
};

/// Decimal places of money: the fen, 0.01 CNY.
pub const MONEY_SCALE: u32 = 2;

/// Decimal places of rendered quantities (core-hours, GiB-hours…): display only, never billed.
pub const QUANTITY_SCALE: u32 = 6;

/// Most decimal places a price may have (as in the `RateCard` CRD).
pub const PRICE_SCALE: u32 = PRICE_MAX_SCALE as u32;

const SECONDS_PER_HOUR: u64 = 3600;

/// The unit a resource is priced and displayed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PriceUnit {
    /// How the unit-hour is written on a statement: `core-hour`, `GiB-hour`, `GPU-hour`…
    pub name: &'static str,
    /// Base units in one unit: 1000 millicores per core, 2^30 bytes per GiB, 1 otherwise.
    pub base_units: u64,
}

impl PriceUnit {
    /// The unit `resource` is priced in.
    pub fn of(resource: Resource) -> Self {
        let (name, base_units) = match resource {
            Resource::Cpu => ("core-hour", 1_000),
            Resource::Memory | Resource::Storage => ("GiB-hour", 1 << 30),
            Resource::Gpu => ("GPU-hour", 1),
            Resource::Pods => ("pod-hour", 1),
            Resource::LoadBalancers => ("load-balancer-hour", 1),
            Resource::PersistentVolumeClaims => ("volume-claim-hour", 1),
            Resource::Services => ("service-hour", 1),
        };
        Self { name, base_units }
    }

    /// Unit-seconds in one unit-hour: `base_units × 3600`.
    fn unit_seconds_per_unit_hour(self) -> u64 {
        self.base_units * SECONDS_PER_HOUR
    }
}

/// The money for `unit_seconds` of `resource` at `price` per unit-hour: the exact value of
/// `unit_seconds × price / (base units × 3600)`, rounded once, half to even, to the fen.
///
/// Fails only if the rounded amount exceeds what a `Decimal` holds (about 7.9 × 10^26) or the
/// price has more than [`PRICE_SCALE`] decimals or is negative.
pub fn cost(unit_seconds: u128, resource: Resource, price: Decimal) -> Result<Decimal> {
    let (mantissa, scale) = price_parts(price).ok_or(Error::UnsupportedPrice { price })?;
    let per_unit_hour = PriceUnit::of(resource).unit_seconds_per_unit_hour();
    // fen = unit_seconds × mantissa × 10^2 / (10^scale × per_unit_hour); keep the divisor small.
    let (multiplier, divisor) = if scale <= MONEY_SCALE {
        let up = 10u128.pow(MONEY_SCALE - scale);
        (mantissa * up, per_unit_hour)
    } else {
        let down = 10u64.pow(scale - MONEY_SCALE);
        (mantissa, per_unit_hour * down)
    };
    let fen = mul_div_half_even(unit_seconds, multiplier, divisor).ok_or(Error::Overflow {
        what: "the cost of a line",
    })?;
    decimal(fen, MONEY_SCALE, "the cost of a line")
}

/// `unit_seconds` of `resource` in unit-hours (core-hours, GiB-hours…), rounded half to even to
/// [`QUANTITY_SCALE`] decimals. For display: money is always computed from unit-seconds.
pub fn unit_hours(unit_seconds: u128, resource: Resource) -> Result<Decimal> {
    let per_unit_hour = PriceUnit::of(resource).unit_seconds_per_unit_hour();
    let scaled = mul_div_half_even(unit_seconds, 10u128.pow(QUANTITY_SCALE), per_unit_hour).ok_or(
        Error::Overflow {
            what: "a quantity in unit-hours",
        },
    )?;
    decimal(scaled, QUANTITY_SCALE, "a quantity in unit-hours")
}

/// A non-negative price with at most [`PRICE_SCALE`] decimals, as (mantissa, scale).
fn price_parts(price: Decimal) -> Option<(u128, u32)> {
    let price = price.normalize();
    let mantissa = u128::try_from(price.mantissa()).ok()?;
    (price.scale() <= PRICE_SCALE).then_some((mantissa, price.scale()))
}

fn decimal(mantissa: u128, scale: u32, what: &'static str) -> Result<Decimal> {
    i128::try_from(mantissa)
        .ok()
        .and_then(|m| Decimal::try_from_i128_with_scale(m, scale).ok())
        .ok_or(Error::Overflow { what })
}

/// One rate card: a currency, the day it takes effect and a price per unit-hour for each tier
/// and resource (zero where not priced).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateCard {
    effective_from: Date,
    currency: String,
    prices: BTreeMap<(Tier, Resource), Decimal>,
}

impl RateCard {
    /// A card in `currency` effective from `effective_from` on which everything is free; add
    /// prices with [`RateCard::with_price`].
    pub fn new(effective_from: Date, currency: impl Into<String>) -> Self {
        Self {
            effective_from,
            currency: currency.into(),
            prices: BTreeMap::new(),
        }
    }

    /// This card with `price` per unit-hour of `resource` at `tier`. The price must be
    /// non-negative with at most [`PRICE_SCALE`] decimals.
    pub fn with_price(mut self, tier: Tier, resource: Resource, price: Decimal) -> Result<Self> {
        if price_parts(price).is_none() {
            return Err(Error::InvalidPrice {
                effective_from: self.effective_from.to_string(),
                tier: tier.to_string(),
                resource: resource.to_string(),
                value: price.to_string(),
                reason: format!("must be non-negative with at most {PRICE_SCALE} decimals"),
            });
        }
        self.prices.insert((tier, resource), price.normalize());
        Ok(self)
    }

    /// The first day (platform time zone) the card applies.
    pub fn effective_from(&self) -> Date {
        self.effective_from
    }

    /// ISO 4217 currency of the prices.
    pub fn currency(&self) -> &str {
        &self.currency
    }

    /// The price per unit-hour of `resource` at `tier`; zero if the card does not price it.
    pub fn price(&self, tier: Tier, resource: Resource) -> Decimal {
        self.prices
            .get(&(tier, resource))
            .copied()
            .unwrap_or(Decimal::ZERO)
    }
}

impl TryFrom<&RateCardSpec> for RateCard {
    type Error = Error;

    /// Reads a `RateCard` custom resource. Prices are parsed exactly from their decimal
    /// strings; anything the CRD schema should have refused is refused here too.
    fn try_from(spec: &RateCardSpec) -> Result<Self> {
        let effective_from = spec
            .effective_date()
            .ok_or_else(|| Error::InvalidEffectiveFrom {
                value: spec.effective_from.clone(),
            })?;
        let mut card = RateCard::new(effective_from, spec.currency.clone());
        for &tier in Tier::ALL {
            for (resource, text) in priced_fields(spec.prices.for_tier(tier)) {
                let price = Decimal::from_str_exact(text).map_err(|e| Error::InvalidPrice {
                    effective_from: spec.effective_from.clone(),
                    tier: tier.to_string(),
                    resource: resource.to_string(),
                    value: text.to_owned(),
                    reason: e.to_string(),
                })?;
                card = card.with_price(tier, resource, price)?;
            }
        }
        Ok(card)
    }
}

fn priced_fields(prices: &ResourcePrices) -> [(Resource, &str); 4] {
    [
        (Resource::Cpu, &prices.cpu_core_hour),
        (Resource::Memory, &prices.memory_gib_hour),
        (Resource::Storage, &prices.storage_gib_hour),
        (Resource::Gpu, &prices.gpu_hour),
    ]
}

/// All rate cards of the platform, in one currency, ordered by `effectiveFrom`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateSchedule {
    cards: Vec<RateCard>,
}

/// A stretch of time priced by one rate card (or by none, before the first card).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RatePeriod<'a> {
    /// The instants priced by `card`.
    pub range: TimeRange,
    /// The card in force, `None` before the first card takes effect.
    pub card: Option<&'a RateCard>,
}

impl RateSchedule {
    /// A schedule of `cards`: at least one, one currency, no two on the same day.
    pub fn new(cards: impl IntoIterator<Item = RateCard>) -> Result<Self> {
        let mut cards: Vec<RateCard> = cards.into_iter().collect();
        cards.sort_by_key(RateCard::effective_from);
        let first = cards.first().ok_or(Error::NoRateCards)?;
        if let Some(other) = cards.iter().find(|c| c.currency != first.currency) {
            return Err(Error::MixedCurrencies {
                expected: first.currency.clone(),
                found: other.currency.clone(),
            });
        }
        if let Some(pair) = cards
            .windows(2)
            .find(|w| w[0].effective_from == w[1].effective_from)
        {
            return Err(Error::DuplicateEffectiveFrom {
                date: pair[0].effective_from,
            });
        }
        Ok(Self { cards })
    }

    /// A schedule read from `RateCard` custom resources.
    pub fn from_specs<'a>(specs: impl IntoIterator<Item = &'a RateCardSpec>) -> Result<Self> {
        let cards = specs
            .into_iter()
            .map(RateCard::try_from)
            .collect::<Result<Vec<_>>>()?;
        Self::new(cards)
    }

    /// The currency every card uses.
    pub fn currency(&self) -> &str {
        // `new` guarantees at least one card.
        self.cards.first().map_or("", |c| c.currency.as_str())
    }

    /// The cards, oldest first.
    pub fn cards(&self) -> &[RateCard] {
        &self.cards
    }

    /// The card in force on `date`: the latest whose `effectiveFrom` is on or before it.
    pub fn effective_on(&self, date: Date) -> Option<&RateCard> {
        let after = self.cards.partition_point(|c| c.effective_from <= date);
        after.checked_sub(1).map(|i| &self.cards[i])
    }

    /// The card in force at `at`, reading its date in `calendar`'s zone.
    pub fn effective_at(&self, at: Timestamp, calendar: &Calendar) -> Option<&RateCard> {
        self.effective_on(calendar.date_of(at))
    }

    /// `range` cut where a card takes effect (local midnight of its `effectiveFrom`), each
    /// piece with the card in force. The pieces are contiguous and cover `range` exactly.
    pub fn periods(&self, range: TimeRange, calendar: &Calendar) -> Result<Vec<RatePeriod<'_>>> {
        let mut cuts = vec![range.start()];
        for card in &self.cards {
            let starts = calendar.start_of_day(card.effective_from)?;
            if range.start() < starts && starts < range.end() {
                cuts.push(starts);
            }
        }
        cuts.push(range.end());
        cuts.windows(2)
            .map(|w| {
                let range = TimeRange::new(w[0], w[1])?;
                let card = self.effective_at(range.start(), calendar);
                Ok(RatePeriod { range, card })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn d(text: &str) -> Decimal {
        Decimal::from_str_exact(text).expect("test decimal")
    }

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("test timestamp")
    }

    fn date(text: &str) -> Date {
        text.parse().expect("test date")
    }

    const HOUR: u128 = 3600;
    const GIB: u128 = 1 << 30;

    #[rstest]
    #[case::one_core_hour(Resource::Cpu, 1_000 * HOUR, d("0.05"), d("0.05"))]
    #[case::half_a_core_for_two_hours(Resource::Cpu, 500 * 2 * HOUR, d("0.05"), d("0.05"))]
    #[case::one_gib_hour_of_memory(Resource::Memory, GIB * HOUR, d("0.0069"), d("0.01"))]
    #[case::a_thousand_gib_hours_of_storage(Resource::Storage, 1_000 * GIB * HOUR, d("0.0012"), d("1.20"))]
    #[case::one_gpu_hour(Resource::Gpu, HOUR, d("12.5"), d("12.50"))]
    #[case::pods_are_free(Resource::Pods, 1_000_000 * HOUR, d("0"), d("0.00"))]
    #[case::zero_usage_costs_nothing(Resource::Cpu, 0, d("0.05"), d("0.00"))]
    #[case::one_millicore_second_at_a_huge_price_is_still_exact(
        Resource::Cpu,
        1,
        d("999999"),
        d("0.28")
    )]
    fn cost_is_unit_seconds_times_price_per_unit_hour(
        #[case] resource: Resource,
        #[case] unit_seconds: u128,
        #[case] price: Decimal,
        #[case] expected: Decimal,
    ) {
        let amount = cost(unit_seconds, resource, price).expect("cost");
        assert_eq!(amount, expected);
        assert_eq!(
            amount.scale(),
            MONEY_SCALE,
            "amounts always carry two decimals"
        );
    }

    #[rstest]
    #[case::half_a_fen_rounds_down_to_even_zero(1_800_000, d("0.00"))]
    #[case::one_and_a_half_fen_rounds_up_to_even_two(5_400_000, d("0.02"))]
    #[case::two_and_a_half_fen_rounds_down_to_even_two(9_000_000, d("0.02"))]
    #[case::three_and_a_half_fen_rounds_up_to_even_four(12_600_000, d("0.04"))]
    #[case::a_hair_above_half_rounds_up(1_800_001, d("0.01"))]
    #[case::a_hair_below_one_and_a_half_rounds_down(5_399_999, d("0.01"))]
    #[case::large_half_rounds_to_even(3_600_000_000_000_000 + 1_800_000, d("10000000.00"))]
    fn rounding_is_once_half_to_even_at_the_fen(
        #[case] millicore_seconds: u128,
        #[case] expected: Decimal,
    ) {
        // 0.01 CNY per core-hour: 3_600_000 millicore-seconds cost exactly one fen.
        assert_eq!(
            cost(millicore_seconds, Resource::Cpu, d("0.01")).expect("cost"),
            expected
        );
    }

    #[test]
    fn a_million_cores_for_a_31_day_month_is_priced_to_the_fen() {
        // 10^9 millicores × 2,678,400 s = 744 × 10^6 core-hours; at 0.123457 CNY that is
        // 91,852,008 CNY exactly.
        let unit_seconds = 1_000_000_000u128 * 2_678_400;
        assert_eq!(
            cost(unit_seconds, Resource::Cpu, d("0.123457")).expect("cost"),
            d("91852008.00")
        );
        assert_eq!(
            unit_hours(unit_seconds, Resource::Cpu).expect("hours"),
            d("744000000.000000")
        );
    }

    #[rstest]
    // 16 EiB of memory for 31 days: the product needs 160 bits, the result fits.
    #[case::at_a_real_price(d("0.0069"), d("88194576442.98"))]
    #[case::at_a_million_per_gib_hour(d("999999"), d("12781809891073327103.31"))]
    fn the_largest_interval_is_priced_without_overflow(
        #[case] price: Decimal,
        #[case] expected: Decimal,
    ) {
        let unit_seconds = u128::from(u64::MAX) * 2_678_400;
        assert_eq!(
            cost(unit_seconds, Resource::Memory, price).expect("cost"),
            expected
        );
    }

    #[test]
    fn an_amount_beyond_decimal_range_is_refused_not_rounded() {
        // 16 EiB for 31 days at the largest price the CRD allows is about 1.3 × 10^28 CNY.
        let unit_seconds = u128::from(u64::MAX) * 2_678_400;
        let error = cost(unit_seconds, Resource::Memory, d("999999999999999.999999"))
            .expect_err("too large");
        assert_eq!(error.metric_label(), "overflow");
    }

    #[rstest]
    #[case::negative(d("-0.01"))]
    #[case::seven_decimals(d("0.0000001"))]
    fn prices_must_be_non_negative_with_at_most_six_decimals(#[case] price: Decimal) {
        let card = RateCard::new(date("2026-01-01"), "CNY");
        assert!(card.with_price(Tier::Gold, Resource::Cpu, price).is_err());
        let error = cost(1, Resource::Cpu, price).expect_err("refused");
        assert_eq!(error.metric_label(), "unsupported_price");
    }

    #[test]
    fn trailing_zeros_beyond_six_decimals_are_not_extra_precision() {
        let card = RateCard::new(date("2026-01-01"), "CNY")
            .with_price(Tier::Gold, Resource::Cpu, d("0.050000000"))
            .expect("same as 0.05");
        assert_eq!(card.price(Tier::Gold, Resource::Cpu), d("0.05"));
    }

    #[rstest]
    #[case::before_the_first_card("2025-12-31", None)]
    #[case::on_the_first_day("2026-01-01", Some("2026-01-01"))]
    #[case::between_cards("2026-11-14", Some("2026-01-01"))]
    #[case::on_the_change_day("2026-11-15", Some("2026-11-15"))]
    #[case::long_after("2030-06-01", Some("2026-11-15"))]
    fn the_card_in_force_is_the_latest_effective_on_or_before_the_day(
        #[case] day: &str,
        #[case] expected: Option<&str>,
    ) {
        let schedule = schedule();
        let found = schedule.effective_on(date(day)).map(|c| c.effective_from());
        assert_eq!(found, expected.map(date));
    }

    #[rstest]
    #[case::shanghai_midnight_is_already_the_new_card(
        "Asia/Shanghai",
        "2026-11-14T16:00:00Z",
        "2026-11-15"
    )]
    #[case::a_second_before_is_the_old_card("Asia/Shanghai", "2026-11-14T15:59:59Z", "2026-01-01")]
    #[case::in_utc_the_same_instant_is_still_the_old_card(
        "UTC",
        "2026-11-14T16:00:00Z",
        "2026-01-01"
    )]
    fn a_card_takes_effect_at_local_midnight(
        #[case] zone: &str,
        #[case] at: &str,
        #[case] expected: &str,
    ) {
        let calendar = Calendar::new(zone).expect("zone");
        let card = schedule()
            .effective_at(ts(at), &calendar)
            .map(RateCard::effective_from);
        assert_eq!(card, Some(date(expected)));
    }

    #[test]
    fn a_month_with_a_rate_change_has_two_contiguous_periods() {
        let calendar = Calendar::default();
        let schedule = schedule();
        let month = calendar
            .month_range("2026-11".parse().expect("month"))
            .expect("range");
        let periods = schedule.periods(month, &calendar).expect("periods");
        let summary: Vec<_> = periods
            .iter()
            .map(|p| {
                (
                    p.range.start(),
                    p.range.end(),
                    p.card.map(RateCard::effective_from),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    ts("2026-10-31T16:00:00Z"),
                    ts("2026-11-14T16:00:00Z"),
                    Some(date("2026-01-01"))
                ),
                (
                    ts("2026-11-14T16:00:00Z"),
                    ts("2026-11-30T16:00:00Z"),
                    Some(date("2026-11-15"))
                ),
            ]
        );
    }

    #[test]
    fn time_before_the_first_card_is_a_period_without_a_card() {
        let calendar = Calendar::utc();
        let month = calendar
            .month_range("2025-12".parse().expect("month"))
            .expect("range");
        let schedule = schedule();
        let periods = schedule.periods(month, &calendar).expect("periods");
        assert_eq!(periods.len(), 1);
        assert!(periods[0].card.is_none());
    }

    #[rstest]
    #[case::empty(vec![], "no_rate_cards")]
    #[case::same_day(vec![card("2026-01-01", "CNY"), card("2026-01-01", "CNY")], "duplicate_effective_from")]
    #[case::two_currencies(vec![card("2026-01-01", "CNY"), card("2026-02-01", "EUR")], "mixed_currencies")]
    fn a_schedule_refuses_ambiguous_cards(#[case] cards: Vec<RateCard>, #[case] label: &str) {
        assert_eq!(
            RateSchedule::new(cards)
                .expect_err("refused")
                .metric_label(),
            label
        );
    }

    #[test]
    fn a_rate_card_resource_is_read_exactly_per_tier() {
        let spec: RateCardSpec = serde_json::from_value(serde_json::json!({
            "effectiveFrom": "2026-11-15",
            "prices": {
                "gold":   {"cpuCoreHour": "0.08", "memoryGibHour": "0.0100", "storageGibHour": "0.0012", "gpuHour": "15"},
                "silver": {"cpuCoreHour": "0.05", "memoryGibHour": "0.0069", "storageGibHour": "0.0010", "gpuHour": "12.5"},
                "bronze": {"cpuCoreHour": "0.03", "memoryGibHour": "0.004", "storageGibHour": "0.0008", "gpuHour": "8"}
            }
        }))
        .expect("spec");
        let card = RateCard::try_from(&spec).expect("card");
        assert_eq!(card.currency(), "CNY");
        assert_eq!(card.effective_from(), date("2026-11-15"));
        assert_eq!(card.price(Tier::Gold, Resource::Cpu), d("0.08"));
        assert_eq!(card.price(Tier::Silver, Resource::Memory), d("0.0069"));
        assert_eq!(card.price(Tier::Bronze, Resource::Gpu), d("8"));
        assert_eq!(card.price(Tier::Gold, Resource::Pods), Decimal::ZERO);
    }

    #[rstest]
    #[case::not_a_date("2026-02-30", "invalid_effective_from")]
    #[case::short_date("2026-2-01", "invalid_effective_from")]
    fn a_rate_card_resource_with_a_bad_date_is_refused(
        #[case] effective_from: &str,
        #[case] label: &str,
    ) {
        let mut spec = spec_with_cpu_price("0.05");
        spec.effective_from = effective_from.to_owned();
        assert_eq!(
            RateCard::try_from(&spec)
                .expect_err("refused")
                .metric_label(),
            label
        );
    }

    #[rstest]
    #[case::float_notation("5e-2")]
    #[case::negative("-0.05")]
    #[case::too_precise("0.0000001")]
    #[case::empty("")]
    fn a_rate_card_resource_with_a_bad_price_is_refused(#[case] price: &str) {
        let spec = spec_with_cpu_price(price);
        assert_eq!(
            RateCard::try_from(&spec)
                .expect_err("refused")
                .metric_label(),
            "invalid_price"
        );
    }

    fn spec_with_cpu_price(price: &str) -> RateCardSpec {
        let prices = ResourcePrices {
            cpu_core_hour: price.to_owned(),
            memory_gib_hour: "0".to_owned(),
            storage_gib_hour: "0".to_owned(),
            gpu_hour: "0".to_owned(),
        };
        RateCardSpec {
            currency: "CNY".to_owned(),
            effective_from: "2026-01-01".to_owned(),
            prices: zhengyun_model::crd::TierPrices {
                gold: prices.clone(),
                silver: prices.clone(),
                bronze: prices,
            },
        }
    }

    fn card(day: &str, currency: &str) -> RateCard {
        RateCard::new(date(day), currency)
    }

    fn schedule() -> RateSchedule {
        RateSchedule::new([card("2026-11-15", "CNY"), card("2026-01-01", "CNY")]).expect("schedule")
    }
}
