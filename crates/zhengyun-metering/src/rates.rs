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
//! # Two-part tariff
//!
//! Each tier and resource has two prices: a **reservation price** per unit-hour held (the
//! environment's admitted quota × time) and a **consumption price** per unit-hour used (requests
//! of running pods, bound storage). Their sum is the **list price**, so a unit-hour that is
//! reserved and used pays the list price once, and a unit-hour held idle pays only the
//! reservation price. A card gives the list price and either explicit reservation prices or a
//! reservation share (default [`DEFAULT_RESERVATION_SHARE`]); see [`RateCard::try_from`].
//!
//! # When a card applies
//!
//! A card is in force from the later of local midnight of its `effectiveFrom` day and the
//! instant it appeared in the cluster (its `creationTimestamp`, when known): a card dated before
//! it was created never reprices time already shown. See [`RateCard::in_force_from`]. The one
//! exception reprices nothing: a card that, when it appeared, was dated before every other card
//! (the first card at go-live) applies as dated, because no statement could price the time
//! before it.
//!
//! [`cost`] is exact: see the crate documentation for the guarantee and the rounding rule.

use std::collections::BTreeMap;

use jiff::{Timestamp, civil::Date};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use zhengyun_model::{
    crd::{PRICE_MAX_SCALE, RateCardSpec, ResourcePrices},
    names::Tier,
    quantity::Resource,
};

use crate::{
    calendar::{Calendar, TimeRange},
    error::{Error, Result},
    usage::UsageKind,
    wide::mul_div_rounded,
};

/// The share of the list price that is the reservation price when a card names neither
/// reservation prices nor a share (every card written before the two-part tariff): one half.
pub const DEFAULT_RESERVATION_SHARE: Decimal = Decimal::from_parts(5, 0, 0, false, 1);

/// How a line's exact amount is rounded to the fen.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Rounding {
    /// 四舍五入: half a fen or more rounds up (away from zero). The default, as on Chinese
    /// invoices and in Chinese finance systems.
    #[default]
    HalfUp,
    /// Banker's rounding: exactly half a fen rounds to the even fen.
    HalfEven,
}

impl Rounding {
    /// The rule of statement lines stored before lines named their rounding: half to even,
    /// the only rule there was.
    pub fn before_it_was_recorded() -> Self {
        Self::HalfEven
    }

    /// The name used in rate cards and statements: `half-up` or `half-even`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HalfUp => "half-up",
            Self::HalfEven => "half-even",
        }
    }

    /// Reads `half-up` or `half-even`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "half-up" => Some(Self::HalfUp),
            "half-even" => Some(Self::HalfEven),
            _ => None,
        }
    }
}

impl std::fmt::Display for Rounding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
/// `unit_seconds × price / (base units × 3600)`, rounded once, half to even, to the fen. The
/// rule of statement lines from before rounding was a setting; see [`cost_rounded`].
pub fn cost(unit_seconds: u128, resource: Resource, price: Decimal) -> Result<Decimal> {
    cost_rounded(unit_seconds, resource, price, Rounding::HalfEven)
}

/// The money for `unit_seconds` of `resource` at `price` per unit-hour: the exact value of
/// `unit_seconds × price / (base units × 3600)`, rounded once by `rounding` to the fen.
///
/// Fails only if the rounded amount exceeds what a `Decimal` holds (about 7.9 × 10^26) or the
/// price has more than [`PRICE_SCALE`] decimals or is negative.
pub fn cost_rounded(
    unit_seconds: u128,
    resource: Resource,
    price: Decimal,
    rounding: Rounding,
) -> Result<Decimal> {
    cost_at_percent(unit_seconds, resource, price, 100, rounding)
}

/// The money for `unit_seconds` of `resource` at `percent` % of `price` per unit-hour (the
/// burst price, a share of the consumption price): the exact value, rounded once by `rounding`
/// to the fen, like [`cost_rounded`], which is this at 100 %.
pub fn cost_at_percent(
    unit_seconds: u128,
    resource: Resource,
    price: Decimal,
    percent: u32,
    rounding: Rounding,
) -> Result<Decimal> {
    let fen = cost_in_units(
        unit_seconds,
        resource,
        price,
        percent,
        MONEY_SCALE,
        rounding,
    )?;
    decimal(fen, MONEY_SCALE, "the cost of a line")
}

/// [`cost_at_percent`] as a whole number of `10^-scale` currency units (`scale` 2: fen; 8:
/// millionths of a fen), rounded once by `rounding`.
pub fn cost_in_units(
    unit_seconds: u128,
    resource: Resource,
    price: Decimal,
    percent: u32,
    scale: u32,
    rounding: Rounding,
) -> Result<u128> {
    let (mantissa, price_scale) = price_parts(price).ok_or(Error::UnsupportedPrice { price })?;
    let mantissa = mantissa * u128::from(percent);
    let per_unit_hour = PriceUnit::of(resource).unit_seconds_per_unit_hour() * 100;
    // units = unit_seconds × mantissa × 10^scale / (10^price_scale × per_unit_hour); keep the
    // divisor small.
    let (multiplier, divisor) = if price_scale <= scale {
        let up = 10u128.pow(scale - price_scale);
        (mantissa * up, per_unit_hour)
    } else {
        let down = 10u64.pow(price_scale - scale);
        (mantissa, per_unit_hour * down)
    };
    mul_div_rounded(unit_seconds, multiplier, divisor, rounding).ok_or(Error::Overflow {
        what: "the cost of a line",
    })
}

/// `unit_seconds` of `resource` in unit-hours (core-hours, GiB-hours…), rounded half to even to
/// [`QUANTITY_SCALE`] decimals. For display: money is always computed from unit-seconds.
pub fn unit_hours(unit_seconds: u128, resource: Resource) -> Result<Decimal> {
    let per_unit_hour = PriceUnit::of(resource).unit_seconds_per_unit_hour();
    let scaled = mul_div_rounded(
        unit_seconds,
        10u128.pow(QUANTITY_SCALE),
        per_unit_hour,
        Rounding::HalfEven,
    )
    .ok_or(Error::Overflow {
        what: "a quantity in unit-hours",
    })?;
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

/// One rate card: a currency, the day it takes effect, a reservation and a consumption price
/// per unit-hour for each tier and resource (zero where not priced), and its rounding rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateCard {
    effective_from: Date,
    appeared: Option<Timestamp>,
    currency: String,
    rounding: Rounding,
    reservation_share: Decimal,
    prices: BTreeMap<(Tier, Resource, UsageKind), Decimal>,
}

impl RateCard {
    /// A card in `currency` effective from `effective_from` on which everything is free, rounding
    /// half up, splitting list prices by [`DEFAULT_RESERVATION_SHARE`]; add prices with
    /// [`RateCard::with_price`] or [`RateCard::with_prices`].
    pub fn new(effective_from: Date, currency: impl Into<String>) -> Self {
        Self {
            effective_from,
            appeared: None,
            currency: currency.into(),
            rounding: Rounding::default(),
            reservation_share: DEFAULT_RESERVATION_SHARE,
            prices: BTreeMap::new(),
        }
    }

    /// This card rounding its lines by `rounding`.
    pub fn with_rounding(mut self, rounding: Rounding) -> Self {
        self.rounding = rounding;
        self
    }

    /// This card as having appeared at `at` (its `creationTimestamp`): it applies from then at
    /// the earliest, whatever its `effectiveFrom`.
    pub fn appeared_at(mut self, at: Timestamp) -> Self {
        self.appeared = Some(at);
        self
    }

    /// This card splitting the list prices given afterwards to [`RateCard::with_price`] by
    /// `share` (between 0 and 1) for the reservation price.
    pub fn with_reservation_share(mut self, share: Decimal) -> Result<Self> {
        if share < Decimal::ZERO || share > Decimal::ONE {
            return Err(Error::InvalidPrice {
                effective_from: self.effective_from.to_string(),
                tier: "every tier".to_owned(),
                resource: "reservation share".to_owned(),
                value: share.to_string(),
                reason: "must be between 0 and 1".to_owned(),
            });
        }
        self.reservation_share = share;
        Ok(self)
    }

    /// This card with list price `price` per unit-hour of `resource` at `tier`, split into a
    /// reservation price of `price × share` (rounded half up to [`PRICE_SCALE`] decimals) and a
    /// consumption price of the rest, so that the two add up to `price` exactly. The price must
    /// be non-negative with at most [`PRICE_SCALE`] decimals.
    pub fn with_price(self, tier: Tier, resource: Resource, price: Decimal) -> Result<Self> {
        let price = self.checked(tier, resource, price)?;
        let reservation = (price * self.reservation_share)
            .round_dp_with_strategy(PRICE_SCALE, RoundingStrategy::MidpointAwayFromZero);
        self.with_prices(tier, resource, reservation, price - reservation)
    }

    /// This card with a reservation price and a consumption price per unit-hour of `resource`
    /// at `tier`; the list price is their sum. Each must be non-negative with at most
    /// [`PRICE_SCALE`] decimals.
    pub fn with_prices(
        mut self,
        tier: Tier,
        resource: Resource,
        reservation: Decimal,
        consumption: Decimal,
    ) -> Result<Self> {
        let reservation = self.checked(tier, resource, reservation)?;
        let consumption = self.checked(tier, resource, consumption)?;
        self.prices
            .insert((tier, resource, UsageKind::Reserved), reservation);
        self.prices
            .insert((tier, resource, UsageKind::Consumed), consumption);
        Ok(self)
    }

    fn checked(&self, tier: Tier, resource: Resource, price: Decimal) -> Result<Decimal> {
        if price_parts(price).is_none() {
            return Err(Error::InvalidPrice {
                effective_from: self.effective_from.to_string(),
                tier: tier.to_string(),
                resource: resource.to_string(),
                value: price.to_string(),
                reason: format!("must be non-negative with at most {PRICE_SCALE} decimals"),
            });
        }
        Ok(price.normalize())
    }

    /// The instant the card appeared in the cluster, if known.
    pub fn appeared(&self) -> Option<Timestamp> {
        self.appeared
    }

    /// How the card's lines are rounded to the fen.
    pub fn rounding(&self) -> Rounding {
        self.rounding
    }

    /// The first instant the card applies: local midnight (in `calendar`) of `effectiveFrom`,
    /// or the instant it appeared if that is later, so that a back-dated card never reprices
    /// what was already shown.
    pub fn in_force_from(&self, calendar: &Calendar) -> Result<Timestamp> {
        let midnight = calendar.start_of_day(self.effective_from)?;
        Ok(self.appeared.map_or(midnight, |at| at.max(midnight)))
    }

    /// Whether the card was created after its `effectiveFrom` began, and so applies only from
    /// when it appeared.
    pub fn is_back_dated(&self, calendar: &Calendar) -> Result<bool> {
        Ok(self.in_force_from(calendar)? != calendar.start_of_day(self.effective_from)?)
    }

    /// The first day (platform time zone) the card applies.
    pub fn effective_from(&self) -> Date {
        self.effective_from
    }

    /// ISO 4217 currency of the prices.
    pub fn currency(&self) -> &str {
        &self.currency
    }

    /// The price per unit-hour of `resource` at `tier` for `kind`: the reservation price for
    /// reserved usage, the consumption price for consumed usage; zero if the card does not
    /// price it.
    pub fn price(&self, tier: Tier, resource: Resource, kind: UsageKind) -> Decimal {
        self.prices
            .get(&(tier, resource, kind))
            .copied()
            .unwrap_or(Decimal::ZERO)
    }

    /// The list price per unit-hour of `resource` at `tier`: reservation plus consumption,
    /// what a unit-hour reserved and fully used costs.
    pub fn list_price(&self, tier: Tier, resource: Resource) -> Decimal {
        self.price(tier, resource, UsageKind::Reserved)
            + self.price(tier, resource, UsageKind::Consumed)
    }
}

impl TryFrom<&RateCardSpec> for RateCard {
    type Error = Error;

    /// Reads a `RateCard` custom resource. Prices are parsed exactly from their decimal
    /// strings; anything the CRD schema should have refused is refused here too.
    ///
    /// `prices` are list prices. The reservation price of each is `reservationPrices` where the
    /// card gives them (the consumption price is then the list price minus it, and must not be
    /// negative), otherwise the list price × `reservationShare` (default one half) rounded half
    /// up to six decimals. `rounding` defaults to half up.
    fn try_from(spec: &RateCardSpec) -> Result<Self> {
        let effective_from = spec
            .effective_date()
            .ok_or_else(|| Error::InvalidEffectiveFrom {
                value: spec.effective_from.clone(),
            })?;
        let invalid =
            |tier: &str, resource: &str, value: &str, reason: String| Error::InvalidPrice {
                effective_from: spec.effective_from.clone(),
                tier: tier.to_owned(),
                resource: resource.to_owned(),
                value: value.to_owned(),
                reason,
            };
        let rounding = match spec.rounding.as_deref() {
            None => Rounding::default(),
            Some(text) => Rounding::parse(text).ok_or_else(|| {
                invalid(
                    "every tier",
                    "rounding",
                    text,
                    "must be half-up or half-even".to_owned(),
                )
            })?,
        };
        let mut card = RateCard::new(effective_from, spec.currency.clone()).with_rounding(rounding);
        if let Some(text) = &spec.reservation_share {
            let share = Decimal::from_str_exact(text)
                .map_err(|e| invalid("every tier", "reservation share", text, e.to_string()))?;
            card = card.with_reservation_share(share)?;
        }
        let parse = |tier: Tier, resource: Resource, text: &str| {
            Decimal::from_str_exact(text)
                .map_err(|e| invalid(tier.as_str(), resource.as_str(), text, e.to_string()))
        };
        for &tier in Tier::ALL {
            let reservations = spec
                .reservation_prices
                .as_ref()
                .map(|r| priced_fields(r.for_tier(tier)));
            for (i, (resource, text)) in priced_fields(spec.prices.for_tier(tier))
                .into_iter()
                .enumerate()
            {
                let list = parse(tier, resource, text)?;
                let Some(reservations) = &reservations else {
                    card = card.with_price(tier, resource, list)?;
                    continue;
                };
                let reservation = parse(tier, resource, reservations[i].1)?;
                if reservation > list {
                    return Err(invalid(
                        tier.as_str(),
                        resource.as_str(),
                        reservations[i].1,
                        format!("the reservation price exceeds the list price {list}"),
                    ));
                }
                card = card.with_prices(tier, resource, reservation, list - reservation)?;
            }
        }
        Ok(card)
    }
}

impl TryFrom<&zhengyun_model::crd::RateCard> for RateCard {
    type Error = Error;

    /// Reads a `RateCard` object: its spec (see [`RateCard::try_from`] of a spec) and the
    /// instant it appeared (`metadata.creationTimestamp`), from which it applies at the
    /// earliest.
    fn try_from(object: &zhengyun_model::crd::RateCard) -> Result<Self> {
        let card = RateCard::try_from(&object.spec)?;
        Ok(match &object.metadata.creation_timestamp {
            Some(created) => card.appeared_at(created.0),
            None => card,
        })
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

    /// A schedule read from `RateCard` objects, each applying from when it appeared at the
    /// earliest (see [`RateCard::in_force_from`]).
    pub fn from_objects<'a>(
        objects: impl IntoIterator<Item = &'a zhengyun_model::crd::RateCard>,
    ) -> Result<Self> {
        let cards = objects
            .into_iter()
            .map(RateCard::try_from)
            .collect::<Result<Vec<_>>>()?;
        Self::new(cards)
    }

    /// A schedule read from `RateCard` specs alone, each in force from its `effectiveFrom`
    /// (no creation instant is known).
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

    /// The card in force at `at`: the one that took effect last (see
    /// [`RateCard::in_force_from`]) on or before `at`, reading dates in `calendar`'s zone.
    pub fn effective_at(&self, at: Timestamp, calendar: &Calendar) -> Option<&RateCard> {
        self.in_force(calendar)
            .ok()?
            .into_iter()
            .rev()
            .find(|(from, _)| *from <= at)
            .map(|(_, card)| card)
    }

    /// Whether no card that appeared before `card` was dated on or before its `effectiveFrom`:
    /// then nothing before `card`'s date could be priced when it appeared (a statement needs a
    /// card for every second), so dating it back reprices nothing shown, and it applies as dated
    /// — the first card at go-live, or one filling the time before the first.
    fn was_earliest_when_it_appeared(&self, card: &RateCard) -> bool {
        let Some(appeared) = card.appeared else {
            return true;
        };
        !self.cards.iter().any(|other| {
            !std::ptr::eq(other, card)
                && other.appeared.is_none_or(|at| at < appeared)
                && other.effective_from <= card.effective_from
        })
    }

    /// The instant the card dated `effective_from` takes effect in this schedule (see
    /// [`RateCard::in_force_from`] and the first card's exception), or `None` if there is no
    /// such card.
    pub fn in_force_from(
        &self,
        effective_from: Date,
        calendar: &Calendar,
    ) -> Result<Option<Timestamp>> {
        Ok(self
            .in_force(calendar)?
            .into_iter()
            .find(|(_, card)| card.effective_from == effective_from)
            .map(|(from, _)| from))
    }

    /// Each card with the instant it takes effect, earliest first: local midnight of its
    /// `effectiveFrom`, or the instant it appeared if that is later and another card was
    /// already in force on that date (see [`RateCard::in_force_from`]). Fails if two take effect at
    /// the same instant (two back-dated cards created in the same second).
    fn in_force(&self, calendar: &Calendar) -> Result<Vec<(Timestamp, &RateCard)>> {
        let mut cards = self
            .cards
            .iter()
            .map(|card| {
                let from = if self.was_earliest_when_it_appeared(card) {
                    calendar.start_of_day(card.effective_from)?
                } else {
                    card.in_force_from(calendar)?
                };
                Ok((from, card))
            })
            .collect::<Result<Vec<_>>>()?;
        cards.sort_by_key(|(from, _)| *from);
        if let Some(pair) = cards.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(Error::DuplicateEffectiveFrom {
                date: pair[1].1.effective_from,
            });
        }
        Ok(cards)
    }

    /// `range` cut where a card takes effect (see [`RateCard::in_force_from`]), each piece with
    /// the card in force. The pieces are contiguous and cover `range` exactly.
    pub fn periods(&self, range: TimeRange, calendar: &Calendar) -> Result<Vec<RatePeriod<'_>>> {
        let in_force = self.in_force(calendar)?;
        let mut cuts = vec![range.start()];
        for (starts, _) in &in_force {
            if range.start() < *starts && *starts < range.end() {
                cuts.push(*starts);
            }
        }
        cuts.push(range.end());
        cuts.windows(2)
            .map(|w| {
                let range = TimeRange::new(w[0], w[1])?;
                let card = in_force
                    .iter()
                    .rev()
                    .find(|(from, _)| *from <= range.start())
                    .map(|(_, card)| *card);
                Ok(RatePeriod { range, card })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::UsageKind;
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
        assert_eq!(card.list_price(Tier::Gold, Resource::Cpu), d("0.05"));
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
        assert_eq!(card.list_price(Tier::Gold, Resource::Cpu), d("0.08"));
        assert_eq!(card.list_price(Tier::Silver, Resource::Memory), d("0.0069"));
        assert_eq!(card.list_price(Tier::Bronze, Resource::Gpu), d("8"));
        assert_eq!(card.list_price(Tier::Gold, Resource::Pods), Decimal::ZERO);
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

    /// The sample card `manifests/samples/ratecard-2026.yaml`, with `extra` spec fields.
    fn sample_spec(extra: serde_json::Value) -> RateCardSpec {
        let mut spec = serde_json::json!({
            "currency": "CNY",
            "effectiveFrom": "2026-01-01",
            "prices": {
                "gold":   {"cpuCoreHour": "0.12", "memoryGibHour": "0.015", "storageGibHour": "0.0012", "gpuHour": "12.00"},
                "silver": {"cpuCoreHour": "0.08", "memoryGibHour": "0.01", "storageGibHour": "0.0008", "gpuHour": "8.00"},
                "bronze": {"cpuCoreHour": "0.05", "memoryGibHour": "0.006", "storageGibHour": "0.0005", "gpuHour": "5.00"}
            }
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        serde_json::from_value(spec).expect("spec")
    }

    /// 4 gold cores for the 31 days of October 2026 (Asia/Shanghai), reserved, and consumed
    /// when `used`: the statement's amount.
    fn october_of_four_gold_cores(card: RateCard, used: bool) -> Decimal {
        use crate::{
            statement::Statement,
            test_support::{interval, meter},
            usage::UsageKind,
        };
        let calendar = Calendar::default();
        let schedule = RateSchedule::new([card]).expect("schedule");
        let (start, end) = ("2026-09-30T16:00:00Z", "2026-10-31T16:00:00Z");
        let mut usage = vec![interval(
            &meter("wjw-prod", Resource::Cpu, UsageKind::Reserved, Tier::Gold),
            start,
            end,
            4_000,
        )];
        if used {
            usage.push(interval(
                &meter("wjw-prod", Resource::Cpu, UsageKind::Consumed, Tier::Gold),
                start,
                end,
                4_000,
            ));
        }
        let month = "2026-10".parse().expect("month");
        let statement = Statement::build(month, &calendar, &schedule, &usage).expect("statement");
        statement.check_conservation().expect("conserved");
        statement.platform.amount
    }

    #[test]
    fn reserved_and_fully_used_capacity_pays_the_list_price_once() {
        // 4 cores × 744 h × 0.12 = 357.12: 178.56 for holding them, 178.56 for using them.
        let card = RateCard::try_from(&sample_spec(serde_json::json!({}))).expect("card");
        assert_eq!(october_of_four_gold_cores(card, true), d("357.12"));
    }

    #[test]
    fn idle_reserved_capacity_pays_only_the_reservation_price() {
        let card = RateCard::try_from(&sample_spec(serde_json::json!({}))).expect("card");
        assert_eq!(october_of_four_gold_cores(card, false), d("178.56"));
    }

    #[test]
    fn explicit_reservation_prices_split_the_list_price_per_tier_and_resource() {
        let gold = serde_json::json!({"cpuCoreHour": "0.08", "memoryGibHour": "0.01", "storageGibHour": "0.0012", "gpuHour": "8"});
        let none = serde_json::json!({"cpuCoreHour": "0", "memoryGibHour": "0", "storageGibHour": "0", "gpuHour": "0"});
        let spec = sample_spec(serde_json::json!({
            "reservationPrices": {"gold": gold, "silver": none, "bronze": none}
        }));
        let card = RateCard::try_from(&spec).expect("card");
        assert_eq!(
            card.price(Tier::Gold, Resource::Cpu, UsageKind::Reserved),
            d("0.08")
        );
        assert_eq!(
            card.price(Tier::Gold, Resource::Cpu, UsageKind::Consumed),
            d("0.04")
        );
        assert_eq!(
            card.price(Tier::Gold, Resource::Storage, UsageKind::Consumed),
            d("0")
        );
        // 2,976 core-hours reserved at 0.08 = 238.08, used at 0.04 = 119.04.
        assert_eq!(october_of_four_gold_cores(card, true), d("357.12"));
    }

    #[test]
    fn a_reservation_price_above_its_list_price_is_refused() {
        let gold = serde_json::json!({"cpuCoreHour": "0.13", "memoryGibHour": "0", "storageGibHour": "0", "gpuHour": "0"});
        let spec = sample_spec(serde_json::json!({
            "reservationPrices": {"gold": gold, "silver": gold, "bronze": gold}
        }));
        let error = RateCard::try_from(&spec).expect_err("refused");
        assert_eq!(error.metric_label(), "invalid_price");
    }

    #[rstest]
    // A card without a split: half and half, the reservation part rounded half up.
    #[case::old_card_default_share(None, Tier::Gold, Resource::Cpu, "0.06", "0.06")]
    #[case::old_card_odd_price(None, Tier::Silver, Resource::Memory, "0.005", "0.005")]
    #[case::a_stated_share(Some("0.6"), Tier::Gold, Resource::Cpu, "0.072", "0.048")]
    #[case::share_rounded_half_up_to_six_decimals(
        Some("0.3333"),
        Tier::Gold,
        Resource::Storage,
        "0.0004",
        "0.0008"
    )]
    #[case::everything_reserved(Some("1"), Tier::Bronze, Resource::Gpu, "5", "0")]
    fn a_card_without_reservation_prices_splits_its_list_prices_by_the_share(
        #[case] share: Option<&str>,
        #[case] tier: Tier,
        #[case] resource: Resource,
        #[case] reservation: &str,
        #[case] consumption: &str,
    ) {
        let extra = share.map_or(
            serde_json::json!({}),
            |s| serde_json::json!({"reservationShare": s}),
        );
        let card = RateCard::try_from(&sample_spec(extra)).expect("card");
        assert_eq!(
            card.price(tier, resource, UsageKind::Reserved),
            d(reservation)
        );
        assert_eq!(
            card.price(tier, resource, UsageKind::Consumed),
            d(consumption)
        );
        assert_eq!(
            card.list_price(tier, resource),
            card.price(tier, resource, UsageKind::Reserved)
                + card.price(tier, resource, UsageKind::Consumed)
        );
    }

    #[rstest]
    #[case::half_up_rounds_half_a_fen_up(Rounding::HalfUp, 1_800_000, d("0.01"))]
    #[case::half_even_rounds_half_a_fen_to_even(Rounding::HalfEven, 1_800_000, d("0.00"))]
    #[case::half_up_two_and_a_half_fen(Rounding::HalfUp, 9_000_000, d("0.03"))]
    #[case::half_up_below_half(Rounding::HalfUp, 1_799_999, d("0.00"))]
    #[case::half_up_exact(Rounding::HalfUp, 3_600_000, d("0.01"))]
    fn the_rounding_mode_decides_exact_halves(
        #[case] rounding: Rounding,
        #[case] millicore_seconds: u128,
        #[case] expected: Decimal,
    ) {
        assert_eq!(
            cost_rounded(millicore_seconds, Resource::Cpu, d("0.01"), rounding).expect("cost"),
            expected
        );
    }

    #[rstest]
    #[case::default_is_half_up(None, Rounding::HalfUp)]
    #[case::half_even_when_stated(Some("half-even"), Rounding::HalfEven)]
    fn a_card_rounds_half_up_unless_it_says_otherwise(
        #[case] stated: Option<&str>,
        #[case] expected: Rounding,
    ) {
        let extra = stated.map_or(
            serde_json::json!({}),
            |r| serde_json::json!({"rounding": r}),
        );
        let card = RateCard::try_from(&sample_spec(extra)).expect("card");
        assert_eq!(card.rounding(), expected);
    }

    #[test]
    fn the_first_card_at_go_live_applies_as_dated_even_when_created_later() {
        let calendar = Calendar::default();
        let first =
            RateCard::new(date("2026-01-01"), "CNY").appeared_at(ts("2026-11-21T03:00:00Z"));
        let later =
            RateCard::new(date("2027-01-01"), "CNY").appeared_at(ts("2026-11-22T03:00:00Z"));
        let schedule = RateSchedule::new([first, later]).expect("schedule");
        assert_eq!(
            schedule
                .effective_at(ts("2026-03-01T00:00:00Z"), &calendar)
                .map(RateCard::effective_from),
            Some(date("2026-01-01"))
        );
    }

    #[test]
    fn a_back_dated_card_applies_only_from_when_it_appeared() {
        let calendar = Calendar::default();
        let old = RateCard::try_from(&sample_spec(serde_json::json!({})))
            .expect("card")
            .appeared_at(ts("2025-12-01T00:00:00Z"));
        // Dated 1 July but created on 21 November at 11:00 Beijing time.
        let back_dated = RateCard::new(date("2026-07-01"), "CNY")
            .with_price(Tier::Gold, Resource::Cpu, d("0.11"))
            .expect("price")
            .appeared_at(ts("2026-11-21T03:00:00Z"));
        assert!(back_dated.is_back_dated(&calendar).expect("date"));
        assert!(!old.is_back_dated(&calendar).expect("date"));
        let schedule = RateSchedule::new([old, back_dated]).expect("schedule");
        let card_at = |at| {
            schedule
                .effective_at(ts(at), &calendar)
                .map(RateCard::effective_from)
        };
        assert_eq!(card_at("2026-10-15T00:00:00Z"), Some(date("2026-01-01")));
        assert_eq!(card_at("2026-11-21T02:59:59Z"), Some(date("2026-01-01")));
        assert_eq!(card_at("2026-11-21T03:00:00Z"), Some(date("2026-07-01")));
        // October is untouched: one period, the old card.
        let october = calendar
            .month_range("2026-10".parse().expect("month"))
            .expect("range");
        let periods = schedule.periods(october, &calendar).expect("periods");
        assert_eq!(periods.len(), 1);
        assert_eq!(
            periods[0].card.map(RateCard::effective_from),
            Some(date("2026-01-01"))
        );
        // November is cut where the card appeared, not on 1 July.
        let november = calendar
            .month_range("2026-11".parse().expect("month"))
            .expect("range");
        let periods = schedule.periods(november, &calendar).expect("periods");
        let cuts: Vec<_> = periods.iter().map(|p| p.range.start()).collect();
        assert_eq!(
            cuts,
            vec![ts("2026-10-31T16:00:00Z"), ts("2026-11-21T03:00:00Z")]
        );
    }

    /// The worked statement of `docs/finance.md`: bureau wjw (区卫生健康委员会) in November 2026
    /// (30 days, 720 hours) under the sample card, with its default half-and-half split.
    fn worked_statement() -> crate::statement::Statement {
        use crate::{
            statement::Statement,
            test_support::{interval, meter},
            usage::UsageKind::{Consumed, Reserved},
        };
        const GIB: u64 = 1 << 30;
        let card = RateCard::try_from(&sample_spec(serde_json::json!({}))).expect("card");
        let schedule = RateSchedule::new([card]).expect("schedule");
        let (start, end) = ("2026-10-31T16:00:00Z", "2026-11-30T16:00:00Z");
        let usage = [
            ("wjw-prod", Tier::Gold, Resource::Cpu, 16_000, 12_000),
            ("wjw-prod", Tier::Gold, Resource::Memory, 64 * GIB, 48 * GIB),
            (
                "wjw-prod",
                Tier::Gold,
                Resource::Storage,
                512 * GIB,
                400 * GIB,
            ),
            ("wjw-dev", Tier::Bronze, Resource::Cpu, 8_000, 2_000),
            ("wjw-dev", Tier::Bronze, Resource::Memory, 32 * GIB, 4 * GIB),
            (
                "wjw-dev",
                Tier::Bronze,
                Resource::Storage,
                256 * GIB,
                50 * GIB,
            ),
        ]
        .into_iter()
        .flat_map(|(env, tier, resource, reserved, consumed)| {
            [
                interval(&meter(env, resource, Reserved, tier), start, end, reserved),
                interval(&meter(env, resource, Consumed, tier), start, end, consumed),
            ]
        })
        .collect::<Vec<_>>();
        let month = "2026-11".parse().expect("month");
        Statement::build(month, &Calendar::default(), &schedule, &usage).expect("statement")
    }

    #[test]
    fn the_worked_statement_of_the_finance_guide_is_what_the_code_computes() {
        let statement = worked_statement();
        statement.check_conservation().expect("conserved");
        let lines: Vec<String> = statement
            .lines
            .iter()
            .map(|l| {
                let m = &l.key.meter;
                format!(
                    "{} {} {} {} {} × {} = {}",
                    m.environment(),
                    m.resource(),
                    m.kind(),
                    m.tier(),
                    l.quantity.normalize(),
                    l.unit_price,
                    l.amount
                )
            })
            .collect();
        assert_eq!(
            lines,
            [
                "wjw-dev cpu reserved bronze 5760 × 0.025 = 144.00",
                "wjw-dev cpu consumed bronze 1440 × 0.025 = 36.00",
                "wjw-dev memory reserved bronze 23040 × 0.003 = 69.12",
                "wjw-dev memory consumed bronze 2880 × 0.003 = 8.64",
                "wjw-dev storage reserved bronze 184320 × 0.00025 = 46.08",
                "wjw-dev storage consumed bronze 36000 × 0.00025 = 9.00",
                "wjw-prod cpu reserved gold 11520 × 0.06 = 691.20",
                "wjw-prod cpu consumed gold 8640 × 0.06 = 518.40",
                "wjw-prod memory reserved gold 46080 × 0.0075 = 345.60",
                "wjw-prod memory consumed gold 34560 × 0.0075 = 259.20",
                "wjw-prod storage reserved gold 368640 × 0.0006 = 221.18",
                "wjw-prod storage consumed gold 288000 × 0.0006 = 172.80",
            ],
            "{lines:#?}"
        );
        assert_eq!(statement.platform.amount, d("2521.22"));
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
            reservation_prices: None,
            reservation_share: None,
            rounding: None,
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
