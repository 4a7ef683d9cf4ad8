//! Settlement of borrowed capacity, per metering window and resource.
//!
//! - Each **borrower** pays its burst unit-seconds at the burst price (a percentage of the
//!   consumption price), priced and rounded once per borrower like any statement line
//!   ([`crate::rates::cost_at_percent`]).
//! - The **lenders' share** of that revenue (`lender_share_percent` %, rounded down to the fen,
//!   so that the platform never pays out more than the share) is credited to the bureaus in
//!   proportion to the reserved-but-unconsumed unit-seconds each had in the same window.
//!   Credits are whole fen, shared by the **largest remainder** rule: each lender gets the
//!   floor of its exact share, and the fen left over go one each to the largest fractional
//!   remainders (ties to the bureau whose code sorts first), so that the credits add up to the
//!   share exactly and none is more than a fen from its exact value. A bureau that lent nothing
//!   gets nothing.
//! - The **platform** keeps the rest: revenue − credits. When nobody had idle reserved capacity
//!   (burst ran on capacity no bureau reserved), the platform keeps it all.
//!
//! So, to the fen: Σ borrower charges = Σ lender credits + the platform's share.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive as _;
use zhengyun_model::quantity::Resource;

use crate::error::{Error, Result};
use crate::rates::{Rounding, cost_at_percent};

/// What one window of one resource settles to, in fen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settlement {
    /// Each borrowing bureau's charge.
    pub charges: BTreeMap<String, u64>,
    /// Each lending bureau's credit (only bureaus that lent something).
    pub credits: BTreeMap<String, u64>,
    /// What the platform keeps.
    pub platform: u64,
}

impl Settlement {
    /// Σ charges.
    pub fn revenue(&self) -> u64 {
        self.charges.values().sum()
    }

    /// Whether charges = credits + the platform's share, to the fen.
    pub fn balances(&self) -> bool {
        self.revenue() == self.credits.values().sum::<u64>() + self.platform
    }
}

/// The terms of a settlement: the price and the shares.
#[derive(Clone, Copy, Debug)]
pub struct Terms {
    /// The resource settled.
    pub resource: Resource,
    /// Its consumption price per unit-hour.
    pub price: Decimal,
    /// The burst price in percent of `price` (0–100).
    pub burst_price_percent: u32,
    /// The lenders' share of burst revenue in percent (0–100).
    pub lender_share_percent: u32,
    /// How a charge is rounded to the fen.
    pub rounding: Rounding,
}

/// Settles one window: `burst` is each borrowing bureau's burst unit-seconds, `idle` each
/// bureau's reserved-but-unconsumed unit-seconds.
pub fn settle(
    burst: &BTreeMap<String, u128>,
    idle: &BTreeMap<String, u128>,
    terms: &Terms,
) -> Result<Settlement> {
    let mut charges = BTreeMap::new();
    for (bureau, &unit_seconds) in burst {
        let amount = cost_at_percent(
            unit_seconds,
            terms.resource,
            terms.price,
            terms.burst_price_percent.min(100),
            terms.rounding,
        )?;
        charges.insert(bureau.clone(), fen(amount)?);
    }
    let revenue: u64 = charges.values().sum();
    let lent: BTreeMap<&String, u128> = idle
        .iter()
        .filter(|(_, w)| **w > 0)
        .map(|(b, w)| (b, *w))
        .collect();
    let share = if lent.is_empty() {
        0
    } else {
        revenue * u64::from(terms.lender_share_percent.min(100)) / 100
    };
    let credits = largest_remainder(share, &lent)?
        .into_iter()
        .map(|(b, c)| ((*b).clone(), c))
        .collect();
    let settlement = Settlement {
        charges,
        credits,
        platform: 0,
    };
    let paid: u64 = settlement.credits.values().sum();
    Ok(Settlement {
        platform: revenue - paid,
        ..settlement
    })
}

/// `total` fen shared in proportion to `weights` (all above zero) by the largest remainder
/// rule; ties go to the key that sorts first.
pub fn largest_remainder<'a, K: Ord + 'a>(
    total: u64,
    weights: &BTreeMap<K, u128>,
) -> Result<BTreeMap<&K, u64>> {
    let sum: u128 = weights.values().sum();
    let mut out = BTreeMap::new();
    if sum == 0 {
        return Ok(out);
    }
    let overflow = || Error::Overflow {
        what: "a share of burst revenue",
    };
    let mut remainders = Vec::with_capacity(weights.len());
    let mut given = 0u64;
    for (key, &weight) in weights {
        let exact = u128::from(total).checked_mul(weight).ok_or_else(overflow)?;
        let floor = u64::try_from(exact / sum).map_err(|_| overflow())?;
        given += floor;
        out.insert(key, floor);
        remainders.push((exact % sum, key));
    }
    // Largest remainder first; among equals, the key that sorts first (the list is in key
    // order and the sort is stable).
    remainders.sort_by_key(|r| std::cmp::Reverse(r.0));
    for (_, key) in remainders.into_iter().take((total - given) as usize) {
        if let Some(credit) = out.get_mut(key) {
            *credit += 1;
        }
    }
    Ok(out)
}

/// A rounded amount in whole fen.
fn fen(amount: Decimal) -> Result<u64> {
    (amount * Decimal::ONE_HUNDRED)
        .to_u64()
        .ok_or(Error::Overflow {
            what: "a burst charge",
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(items: &[(&str, u128)]) -> BTreeMap<String, u128> {
        items.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    fn terms(price: &str, burst: u32, share: u32) -> Terms {
        Terms {
            resource: Resource::Cpu,
            price: price.parse().unwrap(),
            burst_price_percent: burst,
            lender_share_percent: share,
            rounding: Rounding::HalfUp,
        }
    }

    /// One core for one hour, in millicore-seconds.
    const CORE_HOUR: u128 = 1000 * 3600;

    #[test]
    fn a_borrower_pays_the_burst_price_and_lenders_get_their_share_by_idle_capacity() {
        // 10 core-hours at 0.30 × 40 % = 1.20 CNY; 70 % to lenders = 0.84; 3:1 idle.
        let s = settle(
            &map(&[("wjw", 10 * CORE_HOUR)]),
            &map(&[("cgj", 3 * CORE_HOUR), ("jyj", CORE_HOUR)]),
            &terms("0.30", 40, 70),
        )
        .unwrap();
        assert_eq!(s.charges["wjw"], 120);
        assert_eq!(s.credits["cgj"], 63);
        assert_eq!(s.credits["jyj"], 21);
        assert_eq!(s.platform, 36);
        assert!(s.balances());
    }

    #[test]
    fn credits_add_up_to_the_share_to_the_fen_by_largest_remainder() {
        let shares = |total, items: &[(&str, u128)]| {
            let weights = map(items);
            let credits = largest_remainder(total, &weights).unwrap();
            credits.values().copied().collect::<Vec<u64>>()
        };
        // 100 fen among three equal lenders: 33 each and the extra fen to the first code.
        assert_eq!(shares(100, &[("a", 1), ("b", 1), ("c", 1)]), [34, 33, 33]);
        // 10 fen by 1:2:3:4, exactly.
        assert_eq!(
            shares(10, &[("a", 1), ("b", 2), ("c", 3), ("d", 4)]),
            [1, 2, 3, 4]
        );
        // 5 fen by 1:1:1 (1.67 each): floors of 1, and the two equal largest remainders to the
        // first two codes.
        assert_eq!(shares(5, &[("a", 1), ("b", 1), ("c", 1)]), [2, 2, 1]);
        // 7 fen by 1:2 (2.33 and 4.67): the larger remainder gets the fen.
        assert_eq!(shares(7, &[("a", 1), ("b", 2)]), [2, 5]);
    }

    #[test]
    fn every_settlement_balances_and_no_credit_is_a_fen_away_from_its_exact_share() {
        // A deterministic sweep of awkward figures.
        let mut seed = 0x2026_1205u64;
        let mut next = |m: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % m
        };
        for _ in 0..500 {
            let burst = map(&[
                ("a", u128::from(next(50_000_000))),
                ("b", u128::from(next(7_000_000))),
            ]);
            let idle = map(&[
                ("c", u128::from(next(90_000_000))),
                ("d", u128::from(next(3))),
                ("e", u128::from(next(40_000_000))),
            ]);
            let share = u32::try_from(next(101)).unwrap();
            let s = settle(&burst, &idle, &terms("0.123457", 37, share)).unwrap();
            assert!(s.balances(), "{s:?}");
            let lent: u128 = idle.values().sum();
            let paid: u64 = s.credits.values().sum();
            for (bureau, credit) in &s.credits {
                let exact = u128::from(paid) * idle[bureau] * 1000 / lent;
                let got = u128::from(*credit) * 1000;
                assert!(
                    got.abs_diff(exact) < 1000,
                    "{bureau}: {credit} vs {exact}/1000"
                );
            }
            assert!(
                s.credits.keys().all(|b| idle[b] > 0),
                "only lenders are credited"
            );
        }
    }

    #[test]
    fn with_nobody_idle_the_platform_keeps_the_revenue() {
        let s = settle(
            &map(&[("wjw", CORE_HOUR)]),
            &map(&[("cgj", 0)]),
            &terms("1", 50, 70),
        )
        .unwrap();
        assert_eq!(s.charges["wjw"], 50);
        assert!(s.credits.is_empty());
        assert_eq!(s.platform, 50);
    }

    #[test]
    fn the_burst_price_is_exact_before_it_is_rounded_once() {
        // 1 millicore-second at 0.000001 × 1 %: far below a fen, rounds to zero; 3600 core-hours
        // at 0.000001 × 50 % = 0.0018 → 0.00 (half up rounds 0.18 fen down).
        let tiny = cost_at_percent(
            1,
            Resource::Cpu,
            "0.000001".parse().unwrap(),
            1,
            Rounding::HalfUp,
        )
        .unwrap();
        assert_eq!(tiny, Decimal::ZERO);
        // 1 core-hour at 0.01 × 50 % = 0.005 → 0.01 half up, 0.00 half to even.
        let half =
            |r| cost_at_percent(CORE_HOUR, Resource::Cpu, "0.01".parse().unwrap(), 50, r).unwrap();
        assert_eq!(half(Rounding::HalfUp), "0.01".parse::<Decimal>().unwrap());
        assert_eq!(half(Rounding::HalfEven), Decimal::ZERO);
    }
}
