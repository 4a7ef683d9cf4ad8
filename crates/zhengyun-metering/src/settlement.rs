//! Settlement of borrowed capacity: per metering window and resource when the window is
//! written, in whole fen per month on the statement.
//!
//! # Per window ([`WindowSettler`])
//!
//! - Each **borrowing environment** is charged its burst unit-seconds at the burst price (a
//!   percentage of its tier's consumption price on the rate card in force when the window
//!   starts), computed exactly and kept in millionths of a fen ([`MICRO_PER_FEN`]): a window
//!   is short, and rounding each one to the fen would lose or invent up to half a fen per
//!   window and environment.
//! - The **lenders' share** of that revenue (`lender_share_percent` %, rounded down) is shared
//!   among the bureaus in proportion to the reserved-but-unconsumed unit-seconds each had in the
//!   same window, by the **largest remainder** rule ([`largest_remainder`]): each gets the floor
//!   of its exact share and the units left over go one each to the largest fractional
//!   remainders (ties to the bureau whose code sorts first). A bureau that lent nothing gets
//!   nothing.
//! - The **platform** keeps the rest. So, per window, to the millionth of a fen: Σ charges =
//!   Σ credits + the platform's share.
//!
//! # Per month ([`month_lines`])
//!
//! A statement sums each party's windows and rounds once per line: a borrower's charge half up
//! to the fen; the lenders' credits to whole fen by the largest remainder rule again, their
//! total being the month's exact credits rounded down (never more than the charges); the
//! platform's share is charges − credits. So, to the fen: Σ `burst` lines = Σ `lent` credits
//! + the `platform` line.

use std::collections::BTreeMap;
use std::{fmt, str::FromStr};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use zhengyun_model::{names::Tier, quantity::Resource};

use crate::calendar::{Calendar, Month};
use crate::error::{Error, Result};
use crate::rates::{MONEY_SCALE, RateCard, Rounding, cost_in_units};
use crate::usage::{UsageInterval, UsageKind};

/// What one window of one resource settles to, in whole units (millionths of a fen per window).
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

/// Shares the revenue of `charges` (already priced, in any whole unit): `lender_share_percent`
/// % of it, rounded down, to the bureaus with `idle` unit-seconds by the largest remainder
/// rule, the rest to the platform.
pub fn share_revenue(
    charges: BTreeMap<String, u64>,
    idle: &BTreeMap<String, u128>,
    lender_share_percent: u32,
) -> Result<Settlement> {
    let revenue: u64 = charges.values().sum();
    let lent: BTreeMap<&String, u128> = idle
        .iter()
        .filter(|(_, w)| **w > 0)
        .map(|(b, w)| (b, *w))
        .collect();
    let share = if lent.is_empty() {
        0
    } else {
        revenue * u64::from(lender_share_percent.min(100)) / 100
    };
    let credits: BTreeMap<String, u64> = largest_remainder(share, &lent)?
        .into_iter()
        .map(|(b, c)| ((*b).clone(), c))
        .collect();
    let paid: u64 = credits.values().sum();
    Ok(Settlement {
        charges,
        credits,
        platform: revenue - paid,
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

/// Which side of a settlement a settled amount is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A borrower's charge for its burst usage.
    Burst,
    /// A lender's credit for the idle reserved capacity it had.
    Lent,
    /// What the platform keeps.
    Platform,
}

impl Role {
    /// Every role, in statement order.
    pub const ALL: [Role; 3] = [Role::Burst, Role::Lent, Role::Platform];

    /// `burst`, `lent` or `platform`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Burst => "burst",
            Role::Lent => "lent",
            Role::Platform => "platform",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| {
                format!("unknown settlement role {text:?}, expected burst, lent or platform")
            })
    }
}

/// One amount settled for one metering window (its part in one month) and resource: what the
/// ledger stores in the window's transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    /// The month of the window's part.
    pub month: Month,
    /// Who, what and how much.
    pub share: Share,
}

/// One party's settled amount of one resource: a window's, or a month's sum of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Share {
    /// Charge, credit or the platform's share.
    pub role: Role,
    /// The borrowing or lending bureau; empty for the platform.
    pub bureau: String,
    /// The borrowing environment; empty for a credit or the platform's share.
    pub environment: String,
    /// The borrowing environment's tier, whose consumption price the burst price is a share of.
    pub tier: Option<Tier>,
    /// The resource.
    pub resource: Resource,
    /// Burst unit-seconds for a charge and the platform's share (all burst), idle reserved
    /// unit-seconds for a credit.
    pub unit_seconds: u128,
    /// The exact amount charged, credited or kept, in millionths of a fen.
    pub micro_fen: u128,
}

/// Millionths of a fen in a fen: the unit of a window's settled amounts.
pub const MICRO_PER_FEN: u64 = 1_000_000;

/// The prices and shares a window is settled at: the rate card in force when the window
/// starts, and the pool's borrowing policy.
#[derive(Clone, Copy, Debug)]
pub struct WindowTerms<'a> {
    /// The rate card: its consumption prices and rounding.
    pub card: &'a RateCard,
    /// The burst price in percent of the consumption price (0–100).
    pub burst_price_percent: u32,
    /// The lenders' share of burst revenue in percent (0–100).
    pub lender_share_percent: u32,
}

/// Collects one metering window's intervals for its settlement, per month and resource: each
/// borrowing environment's burst unit-seconds, and each bureau's reserved and consumed
/// unit-seconds, whose difference is what it lent.
///
/// A bureau's idle capacity is Σ reserved − Σ consumed over its environments (none below
/// zero): consumed capacity cannot exceed reserved in an environment, whose quota holds it.
#[derive(Debug, Default)]
pub struct WindowSettler {
    parts: BTreeMap<(Month, Resource), Part>,
}

#[derive(Debug, Default)]
struct Part {
    /// Burst unit-seconds per borrowing environment, with its bureau and tier.
    burst: BTreeMap<String, (String, Tier, u128)>,
    /// Reserved and consumed unit-seconds per bureau.
    held: BTreeMap<String, (u128, u128)>,
}

impl WindowSettler {
    /// Counts one interval of the window, in the month `calendar` places it in (intervals
    /// never straddle a month).
    pub fn add(&mut self, interval: &UsageInterval, calendar: &Calendar) -> Result<()> {
        let month = calendar.month_of(interval.start());
        let part = self.parts.entry((month, interval.resource())).or_default();
        let unit_seconds = interval.unit_seconds();
        let overflow = || Error::Overflow {
            what: "the unit-seconds of a settlement",
        };
        match interval.kind() {
            UsageKind::Burst => {
                let slot = part
                    .burst
                    .entry(interval.environment().to_owned())
                    .or_insert_with(|| (interval.bureau().to_owned(), interval.tier(), 0));
                slot.2 = slot.2.checked_add(unit_seconds).ok_or_else(overflow)?;
            }
            kind => {
                let slot = match part.held.get_mut(interval.bureau()) {
                    Some(slot) => slot,
                    None => part.held.entry(interval.bureau().to_owned()).or_default(),
                };
                let sum = if kind == UsageKind::Reserved {
                    &mut slot.0
                } else {
                    &mut slot.1
                };
                *sum = sum.checked_add(unit_seconds).ok_or_else(overflow)?;
            }
        }
        Ok(())
    }

    /// Whether the window held any burst usage (nothing to settle otherwise).
    pub fn has_burst(&self) -> bool {
        self.parts.values().any(|p| !p.burst.is_empty())
    }

    /// Settles every month and resource with burst usage: a charge per borrowing environment
    /// (its exact burst price, in millionths of a fen, rounded half up), a credit per lending
    /// bureau, and the platform's share. Charges = credits + the platform's share, exactly.
    pub fn settle(self, terms: &WindowTerms<'_>) -> Result<Vec<Settled>> {
        let mut out = Vec::new();
        for ((month, resource), part) in self.parts {
            if part.burst.is_empty() {
                continue;
            }
            let mut charges = BTreeMap::new();
            let mut burst_total = 0u128;
            for (environment, (bureau, tier, unit_seconds)) in &part.burst {
                let price = terms.card.price(*tier, resource, UsageKind::Consumed);
                let micro = cost_in_units(
                    *unit_seconds,
                    resource,
                    price,
                    terms.burst_price_percent.min(100),
                    MONEY_SCALE + 6,
                    Rounding::HalfUp,
                )?;
                let micro_fen = u64::try_from(micro).map_err(|_| Error::Overflow {
                    what: "a burst charge",
                })?;
                charges.insert(environment.clone(), micro_fen);
                burst_total += unit_seconds;
                out.push(Settled {
                    month,
                    share: Share {
                        role: Role::Burst,
                        bureau: bureau.clone(),
                        environment: environment.clone(),
                        tier: Some(*tier),
                        resource,
                        unit_seconds: *unit_seconds,
                        micro_fen: u128::from(micro_fen),
                    },
                });
            }
            let idle: BTreeMap<String, u128> = part
                .held
                .into_iter()
                .map(|(bureau, (reserved, consumed))| (bureau, reserved.saturating_sub(consumed)))
                .collect();
            let settlement = share_revenue(charges, &idle, terms.lender_share_percent)?;
            for (bureau, micro_fen) in settlement.credits {
                out.push(Settled {
                    month,
                    share: Share {
                        role: Role::Lent,
                        unit_seconds: idle[&bureau],
                        bureau,
                        environment: String::new(),
                        tier: None,
                        resource,
                        micro_fen: u128::from(micro_fen),
                    },
                });
            }
            out.push(Settled {
                month,
                share: Share {
                    role: Role::Platform,
                    bureau: String::new(),
                    environment: String::new(),
                    tier: None,
                    resource,
                    unit_seconds: burst_total,
                    micro_fen: u128::from(settlement.platform),
                },
            });
        }
        Ok(out)
    }
}

/// The month's settlement lines from each party's windows summed ([`Share`]s) (see the
/// [module documentation](self)): charges rounded half up to the fen, credits to whole fen by
/// the largest remainder rule (their total the exact credits rounded down, and never more than
/// the charges), the platform's line the difference; per resource, in statement order.
pub fn month_lines(sums: &[Share]) -> Result<Vec<SettlementLine>> {
    let per_fen = u128::from(MICRO_PER_FEN);
    let mut by_resource: BTreeMap<Resource, Vec<&Share>> = BTreeMap::new();
    for sum in sums {
        by_resource.entry(sum.resource).or_default().push(sum);
    }
    let some = |text: &str| (!text.is_empty()).then(|| text.to_owned());
    let mut lines = Vec::new();
    for (resource, sums) in by_resource {
        let mut charged = 0u64;
        let mut burst_unit_seconds = 0u128;
        for sum in sums.iter().filter(|s| s.role == Role::Burst) {
            let fen = to_u64((sum.micro_fen + per_fen / 2) / per_fen)?;
            charged = charged
                .checked_add(fen)
                .ok_or_else(|| overflow("charges"))?;
            burst_unit_seconds += sum.unit_seconds;
            lines.push(SettlementLine::new(
                Role::Burst,
                some(&sum.bureau),
                some(&sum.environment),
                sum.tier,
                resource,
                sum.unit_seconds,
                fen,
            )?);
        }
        let lenders: BTreeMap<(&str, u128), u128> = sums
            .iter()
            .filter(|s| s.role == Role::Lent && s.micro_fen > 0)
            .map(|s| ((s.bureau.as_str(), s.unit_seconds), s.micro_fen))
            .collect();
        let exact: u128 = lenders.values().sum();
        let total = to_u64(exact / per_fen)?.min(charged);
        let mut credited = 0u64;
        for ((bureau, unit_seconds), fen) in largest_remainder(total, &lenders)? {
            credited += fen;
            lines.push(SettlementLine::new(
                Role::Lent,
                Some((*bureau).to_owned()),
                None,
                None,
                resource,
                *unit_seconds,
                fen,
            )?);
        }
        lines.push(SettlementLine::new(
            Role::Platform,
            None,
            None,
            None,
            resource,
            burst_unit_seconds,
            charged - credited,
        )?);
    }
    sort_lines(&mut lines);
    Ok(lines)
}

fn to_u64(value: u128) -> Result<u64> {
    u64::try_from(value).map_err(|_| overflow("a settled amount"))
}

fn overflow(what: &'static str) -> Error {
    Error::Overflow { what }
}

/// One month's settled amounts of one party and resource, as a statement shows them: the sum
/// of its windows' [`Settled`] amounts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettlementLine {
    /// `burst` (a borrower's charge), `lent` (a lender's credit) or `platform` (its share).
    pub role: Role,
    /// The bureau charged or credited; absent for the platform's share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bureau: Option<String>,
    /// The borrowing environment of a `burst` line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The borrowing environment's tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    /// The resource.
    #[serde(with = "crate::serde_as::resource")]
    pub resource: Resource,
    /// Burst unit-seconds (`burst`, `platform`) or idle reserved unit-seconds (`lent`).
    #[serde(with = "crate::serde_as::u128_string")]
    pub unit_seconds: u128,
    /// `unit_seconds` in `unit`s, six decimals, for reading.
    pub quantity: Decimal,
    /// `core-hour`, `GiB-hour`…
    pub unit: String,
    /// Signed: a charge is positive, a credit negative; the platform's share is positive (what
    /// it keeps of the charges).
    pub amount: Decimal,
}

impl SettlementLine {
    /// The line for `unit_seconds` and `amount_fen` summed over a month's windows; a credit's
    /// amount is made negative.
    pub fn new(
        role: Role,
        bureau: Option<String>,
        environment: Option<String>,
        tier: Option<Tier>,
        resource: Resource,
        unit_seconds: u128,
        amount_fen: u64,
    ) -> Result<Self> {
        let mut amount = Decimal::from(amount_fen) / Decimal::ONE_HUNDRED;
        if role == Role::Lent {
            amount = -amount;
        }
        amount.rescale(crate::rates::MONEY_SCALE);
        Ok(Self {
            role,
            bureau,
            environment,
            tier,
            resource,
            unit_seconds,
            quantity: crate::rates::unit_hours(unit_seconds, resource)?,
            unit: crate::rates::PriceUnit::of(resource).name.to_owned(),
            amount,
        })
    }

    /// The line's key, for ordering: role, bureau, environment, resource.
    fn order(&self) -> (Role, Option<&str>, Option<&str>, Resource) {
        (
            self.role,
            self.bureau.as_deref(),
            self.environment.as_deref(),
            self.resource,
        )
    }
}

/// Orders `lines` as a statement lists them: charges, credits, the platform's share; then by
/// bureau, environment and resource.
pub fn sort_lines(lines: &mut [SettlementLine]) {
    lines.sort_by(|a, b| a.order().cmp(&b.order()));
}

/// Each bureau's signed settled amount (charges less credits) in `lines`.
pub fn bureau_amounts(lines: &[SettlementLine]) -> Result<BTreeMap<String, Decimal>> {
    let mut out: BTreeMap<String, Decimal> = BTreeMap::new();
    for line in lines {
        if let Some(bureau) = &line.bureau {
            let slot = out.entry(bureau.clone()).or_default();
            *slot = slot.checked_add(line.amount).ok_or(Error::Overflow {
                what: "a bureau's settled amount",
            })?;
        }
    }
    Ok(out)
}

/// Per resource, Σ charges = Σ credits + the platform's share, to the fen.
pub fn check_balanced(lines: &[SettlementLine]) -> Result<()> {
    let mut sums: BTreeMap<Resource, Decimal> = BTreeMap::new();
    for line in lines {
        let signed = match line.role {
            Role::Burst | Role::Lent => line.amount,
            Role::Platform => -line.amount,
        };
        *sums.entry(line.resource).or_default() += signed;
    }
    match sums.into_iter().find(|(_, rest)| !rest.is_zero()) {
        None => Ok(()),
        Some((resource, rest)) => Err(Error::Unbalanced {
            scope: format!("settlement of {resource}"),
            expected: "charges = credits + the platform's share".to_owned(),
            found: format!("{rest} left over"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{JANUARY_PRICES, card, interval, meter};

    fn map(items: &[(&str, u128)]) -> BTreeMap<String, u128> {
        items.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    fn charges(items: &[(&str, u64)]) -> BTreeMap<String, u64> {
        items.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    /// One core for one hour, in millicore-seconds.
    const CORE_HOUR: u128 = 1000 * 3600;

    #[test]
    fn lenders_get_their_share_of_the_revenue_by_idle_capacity_and_the_platform_the_rest() {
        // 120 units; 70 % to lenders = 84, 3:1 by idle capacity.
        let s = share_revenue(
            charges(&[("wjw", 120)]),
            &map(&[("cgj", 3 * CORE_HOUR), ("jyj", CORE_HOUR)]),
            70,
        )
        .unwrap();
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
            let burst = charges(&[("a", next(50_000_000)), ("b", next(7_000_000))]);
            let idle = map(&[
                ("c", u128::from(next(90_000_000))),
                ("d", u128::from(next(3))),
                ("e", u128::from(next(40_000_000))),
            ]);
            let share = u32::try_from(next(101)).unwrap();
            let s = share_revenue(burst, &idle, share).unwrap();
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
        let s = share_revenue(charges(&[("wjw", 50)]), &map(&[("cgj", 0)]), 70).unwrap();
        assert!(s.credits.is_empty());
        assert_eq!(s.platform, 50);
    }

    #[test]
    fn the_burst_price_is_exact_before_it_is_rounded_once() {
        // 1 millicore-second at 0.000001 × 1 %: far below a fen, rounds to zero; 3600 core-hours
        // at 0.000001 × 50 % = 0.0018 → 0.00 (half up rounds 0.18 fen down).
        use crate::rates::cost_at_percent;
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

    fn cpu(
        environment: &str,
        kind: UsageKind,
        tier: Tier,
        span: (&str, &str),
        millicores: u64,
    ) -> UsageInterval {
        interval(
            &meter(environment, Resource::Cpu, kind, tier),
            span.0,
            span.1,
            millicores,
        )
    }

    const HOUR: (&str, &str) = ("2026-01-10T02:00:00Z", "2026-01-10T03:00:00Z");

    fn settled(intervals: &[UsageInterval], share: u32) -> Vec<Settled> {
        let calendar = Calendar::utc();
        let card = card("2026-01-01", &JANUARY_PRICES);
        let mut settler = WindowSettler::default();
        for i in intervals {
            settler.add(i, &calendar).unwrap();
        }
        settler
            .settle(&WindowTerms {
                card: &card,
                burst_price_percent: 40,
                lender_share_percent: share,
            })
            .unwrap()
    }

    /// The amount of `party`'s row in `rows`, in millionths of a fen.
    fn amount(rows: &[Settled], role: Role, party: &str) -> Option<u128> {
        rows.iter()
            .map(|r| &r.share)
            .find(|r| r.role == role && (r.environment == party || r.bureau == party))
            .map(|r| r.micro_fen)
    }

    const FEN: u128 = MICRO_PER_FEN as u128;

    #[test]
    fn a_window_charges_each_borrowing_environment_at_its_tier_and_credits_the_bureaus_that_left_reserved_capacity_idle()
     {
        use UsageKind::{Burst, Consumed, Reserved};
        let rows = settled(
            &[
                // Borrowers: 10 gold cores for the hour (10 × 0.08 × 40 % = 0.32) and 5 bronze
                // cores for half of it (2.5 × 0.03 × 40 % = 0.03).
                cpu("wjw-prod", Burst, Tier::Gold, HOUR, 10_000),
                cpu(
                    "jyj-test",
                    Burst,
                    Tier::Bronze,
                    ("2026-01-10T02:00:00Z", "2026-01-10T02:30:00Z"),
                    5_000,
                ),
                // wjw used all it reserved: it lent nothing.
                cpu("wjw-prod", Reserved, Tier::Gold, HOUR, 10_000),
                cpu("wjw-prod", Consumed, Tier::Gold, HOUR, 10_000),
                // cgj left 6 core-hours idle, gaj 2 (over two environments).
                cpu("cgj-prod", Reserved, Tier::Silver, HOUR, 8_000),
                cpu("cgj-prod", Consumed, Tier::Silver, HOUR, 2_000),
                cpu("gaj-prod", Reserved, Tier::Gold, HOUR, 3_000),
                cpu("gaj-prod", Consumed, Tier::Gold, HOUR, 2_000),
                cpu("gaj-test", Reserved, Tier::Bronze, HOUR, 1_000),
            ],
            70,
        );
        assert_eq!(amount(&rows, Role::Burst, "wjw-prod"), Some(32 * FEN));
        assert_eq!(amount(&rows, Role::Burst, "jyj-test"), Some(3 * FEN));
        // 70 % of 35 fen = 24.5 fen, shared 6:2.
        assert_eq!(amount(&rows, Role::Lent, "cgj"), Some(18_375_000));
        assert_eq!(amount(&rows, Role::Lent, "gaj"), Some(6_125_000));
        assert_eq!(
            amount(&rows, Role::Lent, "wjw"),
            None,
            "a bureau that lent nothing gets nothing"
        );
        assert_eq!(amount(&rows, Role::Platform, ""), Some(10_500_000));
        let lent = rows
            .iter()
            .map(|r| &r.share)
            .find(|r| r.role == Role::Lent && r.bureau == "cgj")
            .unwrap();
        assert_eq!(lent.unit_seconds, 6 * CORE_HOUR);
        assert!(
            rows.iter().all(|r| r.share.resource == Resource::Cpu),
            "no burst memory, no memory rows"
        );
    }

    #[test]
    fn a_window_without_burst_usage_settles_nothing() {
        use UsageKind::{Consumed, Reserved};
        let rows = settled(
            &[
                cpu("cgj-prod", Reserved, Tier::Silver, HOUR, 8_000),
                cpu("cgj-prod", Consumed, Tier::Silver, HOUR, 2_000),
            ],
            70,
        );
        assert!(rows.is_empty());
    }

    #[test]
    fn a_window_across_a_month_end_is_settled_in_each_month_and_every_part_balances() {
        use UsageKind::{Burst, Reserved};
        let rows = settled(
            &[
                cpu(
                    "wjw-prod",
                    Burst,
                    Tier::Gold,
                    ("2026-01-31T23:00:00Z", "2026-02-01T00:00:00Z"),
                    10_000,
                ),
                cpu(
                    "wjw-prod",
                    Burst,
                    Tier::Gold,
                    ("2026-02-01T00:00:00Z", "2026-02-01T01:00:00Z"),
                    10_000,
                ),
                cpu(
                    "cgj-prod",
                    Reserved,
                    Tier::Gold,
                    ("2026-01-31T23:00:00Z", "2026-02-01T00:00:00Z"),
                    4_000,
                ),
            ],
            50,
        );
        let months: std::collections::BTreeSet<String> =
            rows.iter().map(|r| r.month.to_string()).collect();
        assert_eq!(
            months.into_iter().collect::<Vec<_>>(),
            ["2026-01", "2026-02"]
        );
        for month in ["2026-01", "2026-02"] {
            let of = |role| -> u128 {
                rows.iter()
                    .filter(|r| r.month.to_string() == month && r.share.role == role)
                    .map(|r| r.share.micro_fen)
                    .sum()
            };
            assert_eq!(of(Role::Burst), 32 * FEN, "{month}");
            assert_eq!(
                of(Role::Burst),
                of(Role::Lent) + of(Role::Platform),
                "{month}"
            );
        }
        // In February nobody had idle reserved capacity: the platform keeps it all.
        assert!(
            rows.iter()
                .all(|r| r.share.role != Role::Lent || r.month.to_string() == "2026-01")
        );
    }

    #[test]
    fn settlement_lines_sign_credits_and_an_unbalanced_settlement_is_refused() {
        let line = |role, bureau: Option<&str>, fen| {
            SettlementLine::new(
                role,
                bureau.map(str::to_owned),
                None,
                None,
                Resource::Cpu,
                CORE_HOUR,
                fen,
            )
            .unwrap()
        };
        let lines = vec![
            line(Role::Burst, Some("wjw"), 120),
            line(Role::Lent, Some("cgj"), 84),
            line(Role::Platform, None, 36),
        ];
        assert_eq!(lines[1].amount, "-0.84".parse::<Decimal>().unwrap());
        check_balanced(&lines).unwrap();
        let amounts = bureau_amounts(&lines).unwrap();
        assert_eq!(amounts["wjw"], "1.20".parse::<Decimal>().unwrap());
        assert_eq!(amounts["cgj"], "-0.84".parse::<Decimal>().unwrap());
        let unbalanced = vec![
            lines[0].clone(),
            lines[1].clone(),
            line(Role::Platform, None, 35),
        ];
        let error = check_balanced(&unbalanced).unwrap_err().to_string();
        assert!(error.contains("settlement of cpu"), "{error}");
    }

    fn sum(role: Role, party: &str, micro_fen: u128) -> Share {
        Share {
            role,
            bureau: party.split('-').next().unwrap_or_default().to_owned(),
            environment: if role == Role::Burst {
                party.to_owned()
            } else {
                String::new()
            },
            tier: (role == Role::Burst).then_some(Tier::Gold),
            resource: Resource::Cpu,
            unit_seconds: CORE_HOUR,
            micro_fen,
        }
    }

    #[test]
    fn a_month_rounds_each_charge_once_and_shares_whole_fen_of_credits_so_the_lines_balance() {
        let lines = month_lines(&[
            sum(Role::Burst, "wjw-prod", 1_234_567_890),
            sum(Role::Lent, "cgj", 600_000_000),
            sum(Role::Lent, "gaj", 263_197_523),
            sum(Role::Platform, "", 371_370_367),
        ])
        .unwrap();
        let amounts: Vec<(Role, String)> = lines
            .iter()
            .map(|l| (l.role, l.amount.to_string()))
            .collect();
        // 1234.567890 fen → 12.35; credits 863.197523 fen → 863 fen: 600 and 263; the
        // platform the rest.
        assert_eq!(
            amounts,
            [
                (Role::Burst, "12.35".to_owned()),
                (Role::Lent, "-6.00".to_owned()),
                (Role::Lent, "-2.63".to_owned()),
                (Role::Platform, "3.72".to_owned()),
            ]
        );
        check_balanced(&lines).unwrap();
    }

    #[test]
    fn credits_never_exceed_the_charges_once_both_are_rounded() {
        // Three borrowers of 0.4 fen each are charged nothing; 1.2 fen of credits would be one
        // fen more than was charged.
        let lines = month_lines(&[
            sum(Role::Burst, "wjw-prod", 400_000),
            sum(Role::Burst, "jyj-prod", 400_000),
            sum(Role::Burst, "gaj-prod", 400_000),
            sum(Role::Lent, "cgj", 1_200_000),
        ])
        .unwrap();
        check_balanced(&lines).unwrap();
        assert!(lines.iter().all(|l| l.amount.is_zero()), "{lines:?}");
    }

    #[test]
    fn the_finance_guides_worked_example_settles_as_the_guide_says() {
        use UsageKind::{Burst, Consumed, Reserved};
        // The sample card's gold CPU: list price 0.12, consumption price 0.06.
        let card = RateCard::new("2026-01-01".parse().unwrap(), "CNY")
            .with_prices(
                Tier::Gold,
                Resource::Cpu,
                "0.06".parse().unwrap(),
                "0.06".parse().unwrap(),
            )
            .unwrap();
        let calendar = Calendar::default();
        let mut settler = WindowSettler::default();
        for i in [
            cpu("wjw-prod", Burst, Tier::Gold, HOUR, 10_000),
            cpu("cgj-prod", Reserved, Tier::Silver, HOUR, 8_000),
            cpu("cgj-prod", Consumed, Tier::Silver, HOUR, 2_000),
            cpu("gaj-prod", Reserved, Tier::Gold, HOUR, 2_000),
        ] {
            settler.add(&i, &calendar).unwrap();
        }
        let terms = WindowTerms {
            card: &card,
            burst_price_percent: 40,
            lender_share_percent: 70,
        };
        let sums: Vec<Share> = settler
            .settle(&terms)
            .unwrap()
            .into_iter()
            .map(|s| s.share)
            .collect();
        let lines: Vec<(Role, Option<String>, String)> = month_lines(&sums)
            .unwrap()
            .into_iter()
            .map(|l| (l.role, l.bureau, l.amount.to_string()))
            .collect();
        let some = |b: &str| Some(b.to_owned());
        assert_eq!(
            lines,
            [
                (Role::Burst, some("wjw"), "0.24".to_owned()),
                (Role::Lent, some("cgj"), "-0.12".to_owned()),
                (Role::Lent, some("gaj"), "-0.04".to_owned()),
                (Role::Platform, None, "0.08".to_owned()),
            ]
        );
    }
}
