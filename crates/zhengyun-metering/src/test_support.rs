//! Shared fixtures for the unit tests: parsing helpers and a rate schedule with a price change
//! on 2026-11-15.

use jiff::{Timestamp, civil::Date};
use rust_decimal::Decimal;
use zhengyun_model::{
    names::{Tier, parse_environment_name},
    quantity::Resource,
};

use crate::{
    rates::{RateCard, RateSchedule, Rounding},
    usage::{Meter, UsageInterval, UsageKind},
};

pub(crate) fn ts(text: &str) -> Timestamp {
    text.parse().expect("test timestamp")
}

pub(crate) fn d(text: &str) -> Decimal {
    Decimal::from_str_exact(text).expect("test decimal")
}

pub(crate) fn date(text: &str) -> Date {
    text.parse().expect("test date")
}

/// A meter for `environment`, whose bureau is the part before the purpose.
pub(crate) fn meter(environment: &str, resource: Resource, kind: UsageKind, tier: Tier) -> Meter {
    let (bureau, _) = parse_environment_name(environment).expect("test environment name");
    Meter::new(bureau, environment, resource, kind, tier).expect("test meter")
}

/// `amount` of `meter` from `start` to `end` (RFC 3339).
pub(crate) fn interval(meter: &Meter, start: &str, end: &str, amount: u64) -> UsageInterval {
    UsageInterval::new(meter.clone(), ts(start), ts(end), amount).expect("test interval")
}

/// Gold / silver / bronze prices per resource for one card.
type CardPrices = [(Resource, [&'static str; 3]); 4];

/// In force from 2026-01-01.
pub(crate) const JANUARY_PRICES: CardPrices = [
    (Resource::Cpu, ["0.08", "0.05", "0.03"]),
    (Resource::Memory, ["0.0100", "0.0069", "0.0040"]),
    (Resource::Storage, ["0.0012", "0.0010", "0.0008"]),
    (Resource::Gpu, ["15", "12.5", "8"]),
];

/// In force from 2026-11-15.
pub(crate) const NOVEMBER_PRICES: CardPrices = [
    (Resource::Cpu, ["0.10", "0.06", "0.04"]),
    (Resource::Memory, ["0.0120", "0.0080", "0.0050"]),
    (Resource::Storage, ["0.0012", "0.0010", "0.0008"]),
    (Resource::Gpu, ["16", "13", "9"]),
];

/// A card with `prices` as both its reservation and its consumption prices, rounding half to
/// even: the arithmetic the fixtures' expected amounts are written in.
pub(crate) fn card(effective_from: &str, prices: &CardPrices) -> RateCard {
    let mut card = RateCard::new(date(effective_from), "CNY").with_rounding(Rounding::HalfEven);
    for (resource, by_tier) in prices {
        for (tier, price) in [Tier::Gold, Tier::Silver, Tier::Bronze]
            .into_iter()
            .zip(by_tier)
        {
            card = card
                .with_prices(tier, *resource, d(price), d(price))
                .expect("test price");
        }
    }
    card
}

/// Cards effective 2026-01-01 and 2026-11-15 (a price change in the middle of November).
pub(crate) fn schedule() -> RateSchedule {
    RateSchedule::new([
        card("2026-01-01", &JANUARY_PRICES),
        card("2026-11-15", &NOVEMBER_PRICES),
    ])
    .expect("test schedule")
}
