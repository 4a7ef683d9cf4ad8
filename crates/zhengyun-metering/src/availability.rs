//! Service levels on the bill: a month's measured availability per environment, and the credit
//! it earns when it falls below its tier's objective.
//!
//! Availability is measured in one-minute slices (see the operator's availability monitor): a
//! slice is *measured* unless it falls in an announced maintenance window, and *bad* when the
//! platform made a workload of the environment unavailable during it. A month's availability
//! is `(measured − bad) ÷ measured`, shown in percent truncated to three decimals, so that it
//! never shows an objective the month did not reach.
//!
//! The credit is the largest step of the tier's credit table whose level the month is below,
//! compared exactly in integers: `(measured − bad) × 100 000 < below × measured`, levels being
//! thousandths of a percent. Its amount is that percentage of the environment's charges on the
//! month's statement (its reserved and consumed lines; burst capacity is preemptible and has no
//! objective), rounded half up to the fen, and shown as a negative line.

use std::collections::BTreeMap;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use zhengyun_model::{
    crd::{HUNDRED_PERCENT, ServiceLevels, TierServiceLevel},
    names::Tier,
};

use crate::{
    error::{Error, Result},
    rates::MONEY_SCALE,
};

/// Decimal places of an availability percentage.
pub const AVAILABILITY_SCALE: u32 = 3;

/// One environment's slices over a month.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonthMeasure {
    /// The bureau.
    pub bureau: String,
    /// The environment.
    pub environment: String,
    /// Its tier at the end of the measured time.
    pub tier: Tier,
    /// Minutes measured (outside maintenance windows).
    pub measured_minutes: u64,
    /// Measured minutes the platform made it unavailable.
    pub bad_minutes: u64,
}

/// A credit for a month below the objective.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceCreditLine {
    /// The bureau credited.
    pub bureau: String,
    /// The environment that missed its objective.
    pub environment: String,
    /// Its tier.
    pub tier: Tier,
    /// The tier's objective, in percent as the pool states it.
    pub objective: String,
    /// The month's measured availability in percent, truncated to three decimals.
    pub availability: Decimal,
    /// Minutes measured.
    pub measured_minutes: u64,
    /// Minutes the platform made it unavailable.
    pub bad_minutes: u64,
    /// The credit, in percent of the charges.
    pub credit_percent: u32,
    /// The environment's charges on the statement.
    pub charges: Decimal,
    /// The credit, negative, to the fen.
    pub amount: Decimal,
}

/// `(measured − bad) ÷ measured` in percent, truncated to three decimals; `None` when nothing
/// was measured.
pub fn availability_percent(measured: u64, bad: u64) -> Option<Decimal> {
    let good = u128::from(measured.checked_sub(bad)?);
    let measured = u128::from(measured);
    if measured == 0 {
        return None;
    }
    let thousandths = good * u128::from(HUNDRED_PERCENT) / measured;
    Decimal::try_from_i128_with_scale(i128::try_from(thousandths).ok()?, AVAILABILITY_SCALE).ok()
}

/// The credit percentage `level` grants a month with `bad` of `measured` minutes bad: the
/// largest step the month is below, 0 when it met every level (or measured nothing).
pub fn credit_percent(level: &TierServiceLevel, measured: u64, bad: u64) -> u32 {
    let Some(good) = measured.checked_sub(bad) else {
        return 0;
    };
    if measured == 0 {
        return 0;
    }
    let good = u128::from(good) * u128::from(HUNDRED_PERCENT);
    level
        .steps()
        .into_iter()
        .filter(|(below, _)| good < u128::from(*below) * u128::from(measured))
        .map(|(_, percent)| percent)
        .max()
        .unwrap_or(0)
}

/// The credit lines of a month: one per environment below its tier's objective (whose credit
/// is more than nothing), priced against `charges` (each environment's amount on the
/// statement), ordered by bureau then environment.
pub fn credit_lines(
    measures: &[MonthMeasure],
    levels: &ServiceLevels,
    charges: &BTreeMap<String, Decimal>,
) -> Result<Vec<ServiceCreditLine>> {
    let mut lines = Vec::new();
    for measure in measures {
        let level = levels.of(measure.tier);
        let percent = credit_percent(level, measure.measured_minutes, measure.bad_minutes);
        if percent == 0 {
            continue;
        }
        let Some(availability) =
            availability_percent(measure.measured_minutes, measure.bad_minutes)
        else {
            continue;
        };
        let charged = charges
            .get(&measure.environment)
            .copied()
            .unwrap_or(Decimal::ZERO);
        lines.push(ServiceCreditLine {
            bureau: measure.bureau.clone(),
            environment: measure.environment.clone(),
            tier: measure.tier,
            objective: level.objective.clone(),
            availability,
            measured_minutes: measure.measured_minutes,
            bad_minutes: measure.bad_minutes,
            credit_percent: percent,
            charges: charged,
            amount: credit_amount(charged, percent)?,
        });
    }
    lines.sort_by(|a, b| (&a.bureau, &a.environment).cmp(&(&b.bureau, &b.environment)));
    Ok(lines)
}

/// `percent` % of `charges`, rounded half up to the fen, negative (zero stays zero).
pub fn credit_amount(charges: Decimal, percent: u32) -> Result<Decimal> {
    let credit = charges
        .checked_mul(Decimal::from(percent))
        .and_then(|c| c.checked_div(Decimal::ONE_HUNDRED))
        .ok_or(Error::Overflow {
            what: "a service credit",
        })?
        .round_dp_with_strategy(MONEY_SCALE, RoundingStrategy::MidpointAwayFromZero);
    let mut amount = -credit;
    amount.rescale(MONEY_SCALE);
    if amount.is_zero() {
        amount.set_sign_positive(true);
    }
    Ok(amount)
}

/// Each bureau's credits added up.
pub fn bureau_credits(lines: &[ServiceCreditLine]) -> Result<BTreeMap<String, Decimal>> {
    let mut out: BTreeMap<String, Decimal> = BTreeMap::new();
    for line in lines {
        let slot = out.entry(line.bureau.clone()).or_default();
        *slot = slot.checked_add(line.amount).ok_or(Error::Overflow {
            what: "a bureau's service credits",
        })?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::from_str_exact(text).expect("decimal")
    }

    const MONTH: u64 = 30 * 24 * 60;

    #[test]
    fn availability_is_truncated_so_it_never_shows_an_objective_it_missed() {
        // 22 bad minutes of 43,200: 99.94907… → 99.949, below gold's 99.95.
        assert_eq!(availability_percent(MONTH, 22), Some(d("99.949")));
        assert_eq!(availability_percent(MONTH, 0), Some(d("100.000")));
        assert_eq!(availability_percent(0, 0), None);
    }

    #[test]
    fn the_credit_is_the_largest_step_the_month_is_below() {
        let gold = ServiceLevels::default().gold;
        // 99.95 % of 43,200 minutes allows 21.6 bad minutes.
        assert_eq!(credit_percent(&gold, MONTH, 21), 0);
        assert_eq!(credit_percent(&gold, MONTH, 22), 10);
        // Below 99 %: more than 432 bad minutes.
        assert_eq!(credit_percent(&gold, MONTH, 432), 10);
        assert_eq!(credit_percent(&gold, MONTH, 433), 25);
        // Below 95 %: more than 2,160.
        assert_eq!(credit_percent(&gold, MONTH, 2_161), 100);
        assert_eq!(credit_percent(&gold, 0, 0), 0);
    }

    #[test]
    fn an_environment_below_its_objective_is_credited_its_share_of_its_charges() {
        let measures = [
            MonthMeasure {
                bureau: "wjw".into(),
                environment: "wjw-prod".into(),
                tier: Tier::Gold,
                measured_minutes: MONTH,
                bad_minutes: 30,
            },
            MonthMeasure {
                bureau: "wjw".into(),
                environment: "wjw-dev".into(),
                tier: Tier::Bronze,
                measured_minutes: MONTH,
                bad_minutes: 30,
            },
        ];
        let charges = BTreeMap::from([
            ("wjw-prod".to_owned(), d("1234.55")),
            ("wjw-dev".to_owned(), d("10.00")),
        ]);
        let lines = credit_lines(&measures, &ServiceLevels::default(), &charges).expect("lines");
        // Bronze's 99.5 % allows 216 minutes: only gold is credited, 10 % of 1,234.55 =
        // 123.455, half up 123.46.
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].environment, "wjw-prod");
        assert_eq!(lines[0].availability, d("99.930"));
        assert_eq!(lines[0].credit_percent, 10);
        assert_eq!(lines[0].amount, d("-123.46"));
        assert_eq!(bureau_credits(&lines).expect("sum")["wjw"], d("-123.46"));
    }
}
