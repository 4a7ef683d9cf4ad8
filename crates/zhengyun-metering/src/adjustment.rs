//! Corrections to closed months. A closed statement never changes
//! (docs/architecture.md, invariant 5): when late usage arrives or an error is found, the month is
//! recomputed and the difference is issued as signed adjustment lines, each naming the statement
//! line it corrects.
//!
//! For every line key, `closed + Σ adjustments = recomputed`, exactly: unit-seconds as signed
//! integers, amounts as differences of fen amounts (no new rounding). Adjustments already issued
//! are taken into account, so correcting a month twice never double-corrects.
//!
//! A rate card never changes what a closed month says: the recomputed month is first put back
//! at the prices the month was closed with ([`at_closed_prices`]), line by line (same meter, same
//! part of the month), so only changed *usage* gives adjustments — at the closed price. Usage on
//! a line the closed month does not have is priced by the rate card in force.
//!
//! Adjustments are part of what a bureau owes: [`payable`] adds them to the lines' totals.

use std::collections::BTreeMap;

use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{
    calendar::{Month, TimeRange},
    error::{Error, Result},
    rates::MONEY_SCALE,
    statement::{LineKey, Statement, StatementLine, price_line},
    usage::Meter,
};

/// How an adjustment relates to the closed statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdjustmentReason {
    /// The line is on the closed statement and its quantity or amount changed.
    Correction,
    /// The line is not on the closed statement: usage discovered after closing.
    Addition,
    /// The line is on the closed statement but should not be: it is cancelled in full.
    Reversal,
}

/// A signed correction to one line of a closed month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdjustmentLine {
    /// The closed month being corrected.
    pub month: Month,
    /// The line corrected (or added); see [`AdjustmentLine::reference`].
    #[serde(flatten)]
    pub key: LineKey,
    /// Correction, addition or reversal.
    pub reason: AdjustmentReason,
    /// Signed change in unit-seconds.
    #[serde(with = "crate::serde_as::i128_string")]
    pub unit_seconds: i128,
    /// Signed change in money, whole fen.
    pub amount: Decimal,
    /// The unit price of the line: the closed line's own price where the closed month has the
    /// line (a later rate card never reprices a closed month).
    pub unit_price: Decimal,
    /// Why the adjustment was issued, in words (given by whoever issued it).
    #[serde(default)]
    pub note: String,
    /// Who issued it: the token that asked for it (empty on adjustments issued before this was
    /// recorded).
    #[serde(default)]
    pub issued_by: String,
    /// When it was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<Timestamp>,
}

impl AdjustmentLine {
    /// The reference of the statement line this adjusts, as in [`LineKey::reference`].
    pub fn reference(&self) -> String {
        self.key.reference(self.month)
    }
}

/// The adjustment lines that bring `closed` (plus the adjustments already `issued` for it) to
/// `recomputed`. Lines whose quantity and amount already agree get none. Both statements must
/// be of the same month, time zone and currency.
pub fn adjustments(
    closed: &Statement,
    issued: &[AdjustmentLine],
    recomputed: &Statement,
) -> Result<Vec<AdjustmentLine>> {
    check_comparable(closed, issued, recomputed)?;
    let before = adjusted_lines(closed, issued)?;
    let repriced = at_closed_prices(closed, recomputed)?;
    let after = line_values(&repriced)?;
    let mut keys: Vec<&LineKey> = before.keys().chain(after.keys()).copied().collect();
    keys.sort();
    keys.dedup();
    let mut lines = Vec::new();
    for key in keys {
        let old = before.get(key).copied().unwrap_or_default();
        let new = after.get(key).copied().unwrap_or_default();
        if old.unit_seconds == new.unit_seconds && old.amount == new.amount {
            continue;
        }
        let in_closed = closed.lines.iter().any(|l| &l.key == key);
        let reason = match (in_closed, after.contains_key(key)) {
            (false, _) => AdjustmentReason::Addition,
            (true, true) => AdjustmentReason::Correction,
            (true, false) => AdjustmentReason::Reversal,
        };
        lines.push(AdjustmentLine {
            month: closed.month,
            key: key.clone(),
            reason,
            unit_seconds: new
                .unit_seconds
                .checked_sub(old.unit_seconds)
                .ok_or_else(overflow)?,
            amount: new.amount.checked_sub(old.amount).ok_or_else(overflow)?,
            unit_price: new.unit_price.or(old.unit_price).unwrap_or(Decimal::ZERO),
            note: String::new(),
            issued_by: String::new(),
            issued_at: None,
        });
    }
    Ok(lines)
}

/// Checks `closed + adjustments = recomputed` for every line, to the unit-second and the fen.
pub fn check_adjusted(
    closed: &Statement,
    adjustments: &[AdjustmentLine],
    recomputed: &Statement,
) -> Result<()> {
    check_comparable(closed, adjustments, recomputed)?;
    let adjusted = adjusted_lines(closed, adjustments)?;
    let repriced = at_closed_prices(closed, recomputed)?;
    let expected = line_values(&repriced)?;
    for key in adjusted.keys().chain(expected.keys()) {
        let found = adjusted.get(key).copied().unwrap_or_default();
        let wanted = expected.get(key).copied().unwrap_or_default();
        if (found.unit_seconds, found.amount) != (wanted.unit_seconds, wanted.amount) {
            return Err(Error::Unbalanced {
                scope: format!("adjusted line {}", key.reference(closed.month)),
                expected: format!("{} unit-seconds, {}", wanted.unit_seconds, wanted.amount),
                found: format!("{} unit-seconds, {}", found.unit_seconds, found.amount),
            });
        }
    }
    Ok(())
}

/// `recomputed`'s lines at the prices `closed` was closed with: a recomputed line for the same
/// meter and the same part of the month as a closed line takes that line's key (its rate card),
/// unit price and rounding, and its amount is its unit-seconds priced by them. Other lines are
/// left as recomputed. So a rate card added, back-dated or deleted after closing changes nothing.
pub fn at_closed_prices(closed: &Statement, recomputed: &Statement) -> Result<Vec<StatementLine>> {
    let by_place: BTreeMap<(&Meter, TimeRange), &StatementLine> = closed
        .lines
        .iter()
        .map(|line| ((&line.key.meter, line.period), line))
        .collect();
    let mut lines = recomputed
        .lines
        .iter()
        .map(|line| match by_place.get(&(&line.key.meter, line.period)) {
            Some(old) => price_line(
                old.key.clone(),
                old.period,
                line.unit_seconds,
                old.unit_price,
                old.rounding,
            ),
            None => Ok(line.clone()),
        })
        .collect::<Result<Vec<_>>>()?;
    lines.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(lines)
}

/// What one bureau (or the platform) owes for a month: its lines, its settled borrowing, its
/// adjustments, and the three together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payable {
    /// Σ line amounts (the statement's total).
    pub lines: Decimal,
    /// Σ settled amounts: burst charges less lent credits (for the platform, its share).
    #[serde(default)]
    pub settlement: Decimal,
    /// Σ service credits (negative).
    #[serde(default)]
    pub service_credits: Decimal,
    /// Σ adjustment amounts (signed).
    pub adjustments: Decimal,
    /// `lines + settlement + adjustments`: the amount payable.
    pub payable: Decimal,
}

impl Payable {
    fn new(
        lines: Decimal,
        settlement: Decimal,
        service_credits: Decimal,
        adjustments: Decimal,
    ) -> Result<Self> {
        let mut payable = lines
            .checked_add(settlement)
            .and_then(|sum| sum.checked_add(service_credits))
            .and_then(|sum| sum.checked_add(adjustments))
            .ok_or_else(overflow)?;
        let mut service_credits = service_credits;
        service_credits.rescale(MONEY_SCALE);
        payable.rescale(MONEY_SCALE);
        let mut adjustments = adjustments;
        adjustments.rescale(MONEY_SCALE);
        let mut settlement = settlement;
        settlement.rescale(MONEY_SCALE);
        Ok(Self {
            lines,
            settlement,
            service_credits,
            adjustments,
            payable,
        })
    }
}

/// The amount payable per bureau (every bureau with lines, settled borrowing or adjustments)
/// and for the platform: the statement's totals plus each bureau's settled amount (burst
/// charges less lent credits; the platform keeps its share) plus the signed `adjustments`
/// issued for the month.
pub fn payable(
    statement: &Statement,
    adjustments: &[AdjustmentLine],
) -> Result<(BTreeMap<String, Payable>, Payable)> {
    let mut sums: BTreeMap<String, (Decimal, Decimal, Decimal, Decimal)> = statement
        .bureaus
        .iter()
        .map(|b| {
            (
                b.bureau.clone(),
                (b.totals.amount, Decimal::ZERO, Decimal::ZERO, Decimal::ZERO),
            )
        })
        .collect();
    let mut total_settled = Decimal::ZERO;
    for (bureau, settled) in crate::settlement::bureau_amounts(&statement.settlement)? {
        sums.entry(bureau).or_default().1 = settled;
        total_settled = total_settled.checked_add(settled).ok_or_else(overflow)?;
    }
    let mut total_credits = Decimal::ZERO;
    for (bureau, credits) in crate::availability::bureau_credits(&statement.service_credits)? {
        sums.entry(bureau).or_default().3 = credits;
        total_credits = total_credits.checked_add(credits).ok_or_else(overflow)?;
    }
    let mut total_adjustments = Decimal::ZERO;
    for adjustment in adjustments {
        let entry = sums
            .entry(adjustment.key.meter.bureau().to_owned())
            .or_default();
        entry.2 = entry
            .2
            .checked_add(adjustment.amount)
            .ok_or_else(overflow)?;
        total_adjustments = total_adjustments
            .checked_add(adjustment.amount)
            .ok_or_else(overflow)?;
    }
    let mut zero = Decimal::ZERO;
    zero.rescale(MONEY_SCALE);
    let bureaus = sums
        .into_iter()
        .map(|(bureau, (lines, settled, adjustments, credits))| {
            let lines = if lines.is_zero() { zero } else { lines };
            Ok((bureau, Payable::new(lines, settled, credits, adjustments)?))
        })
        .collect::<Result<_>>()?;
    let platform = Payable::new(
        statement.platform.amount,
        total_settled,
        total_credits,
        total_adjustments,
    )?;
    Ok((bureaus, platform))
}

fn overflow() -> Error {
    Error::Overflow {
        what: "an adjustment",
    }
}

/// Signed quantity and amount of one line.
#[derive(Clone, Copy, Debug, Default)]
struct LineValue {
    unit_seconds: i128,
    amount: Decimal,
    unit_price: Option<Decimal>,
}

fn line_values(lines: &[StatementLine]) -> Result<BTreeMap<&LineKey, LineValue>> {
    lines
        .iter()
        .map(|line| {
            let unit_seconds = i128::try_from(line.unit_seconds).map_err(|_| overflow())?;
            let value = LineValue {
                unit_seconds,
                amount: line.amount,
                unit_price: Some(line.unit_price),
            };
            Ok((&line.key, value))
        })
        .collect()
}

/// The closed statement's lines with `adjustments` applied.
fn adjusted_lines<'a>(
    closed: &'a Statement,
    adjustments: &'a [AdjustmentLine],
) -> Result<BTreeMap<&'a LineKey, LineValue>> {
    let mut values = line_values(&closed.lines)?;
    for adjustment in adjustments {
        let value = values.entry(&adjustment.key).or_default();
        value.unit_seconds = value
            .unit_seconds
            .checked_add(adjustment.unit_seconds)
            .ok_or_else(overflow)?;
        value.amount = value
            .amount
            .checked_add(adjustment.amount)
            .ok_or_else(overflow)?;
        value.unit_price = value.unit_price.or(Some(adjustment.unit_price));
    }
    Ok(values)
}

fn check_comparable(
    closed: &Statement,
    adjustments: &[AdjustmentLine],
    recomputed: &Statement,
) -> Result<()> {
    let differs = |what: &str, a: &dyn std::fmt::Display, b: &dyn std::fmt::Display| {
        Err(Error::IncomparableStatements {
            reason: format!("{what} {a} differs from {b}"),
        })
    };
    if closed.month != recomputed.month {
        return differs("month", &closed.month, &recomputed.month);
    }
    if closed.time_zone != recomputed.time_zone {
        return differs("time zone", &closed.time_zone, &recomputed.time_zone);
    }
    if closed.currency != recomputed.currency {
        return differs("currency", &closed.currency, &recomputed.currency);
    }
    if let Some(other) = adjustments.iter().find(|a| a.month != closed.month) {
        return differs("adjustment month", &other.month, &closed.month);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use zhengyun_model::{names::Tier, quantity::Resource};

    use super::*;
    use crate::{
        calendar::Calendar,
        test_support::{d, interval, meter, schedule},
        usage::{UsageInterval, UsageKind::Reserved},
    };

    fn november(intervals: &[UsageInterval]) -> Statement {
        let month = "2026-11".parse().expect("month");
        Statement::build(month, &Calendar::default(), &schedule(), intervals).expect("statement")
    }

    /// One silver core in wjw-prod for 10:00–11:00 UTC on the given November days.
    fn core_hours(days: &[u32], millicores: u64) -> Vec<UsageInterval> {
        let m = meter("wjw-prod", Resource::Cpu, Reserved, Tier::Silver);
        days.iter()
            .map(|day| {
                let start = format!("2026-11-{day:02}T10:00:00Z");
                let end = format!("2026-11-{day:02}T11:00:00Z");
                interval(&m, &start, &end, millicores)
            })
            .collect()
    }

    /// (reason, signed unit-seconds, signed amount) of each adjustment.
    fn summary(lines: &[AdjustmentLine]) -> Vec<(AdjustmentReason, i128, Decimal)> {
        lines
            .iter()
            .map(|a| (a.reason, a.unit_seconds, a.amount))
            .collect()
    }

    const CORE_HOUR: i128 = 3_600_000;

    #[rstest]
    // Silver CPU costs 0.05 per core-hour before the 15th and 0.06 from the 15th.
    #[case::nothing_changed(&[3], &[3], vec![])]
    #[case::late_usage_in_a_billed_period(&[3], &[3, 4], vec![(AdjustmentReason::Correction, CORE_HOUR, "0.05")])]
    #[case::late_usage_in_a_new_period(&[3], &[3, 20], vec![(AdjustmentReason::Addition, CORE_HOUR, "0.06")])]
    #[case::usage_withdrawn_from_a_period(&[3, 20], &[3], vec![(AdjustmentReason::Reversal, -CORE_HOUR, "-0.06")])]
    #[case::usage_moved_across_the_rate_change(
        &[3],
        &[20],
        vec![(AdjustmentReason::Reversal, -CORE_HOUR, "-0.05"), (AdjustmentReason::Addition, CORE_HOUR, "0.06")]
    )]
    fn adjustments_bring_the_closed_statement_to_the_recomputed_one(
        #[case] closed_days: &[u32],
        #[case] recomputed_days: &[u32],
        #[case] expected: Vec<(AdjustmentReason, i128, &str)>,
    ) {
        let closed = november(&core_hours(closed_days, 1_000));
        let recomputed = november(&core_hours(recomputed_days, 1_000));
        let lines = adjustments(&closed, &[], &recomputed).expect("adjustments");
        let expected: Vec<_> = expected.into_iter().map(|(r, u, a)| (r, u, d(a))).collect();
        assert_eq!(summary(&lines), expected);
        check_adjusted(&closed, &lines, &recomputed).expect("closed + adjustments = recomputed");
    }

    #[test]
    fn an_adjustment_references_the_line_it_corrects() {
        let closed = november(&core_hours(&[3], 1_000));
        let recomputed = november(&core_hours(&[3], 1_500));
        let lines = adjustments(&closed, &[], &recomputed).expect("adjustments");
        assert_eq!(lines.len(), 1);
        assert_eq!(
            lines[0].reference(),
            closed.lines[0].key.reference(closed.month)
        );
        assert_eq!(
            lines[0].reference(),
            "2026-11/wjw-prod/cpu/reserved/silver/2026-01-01"
        );
        assert_eq!(lines[0].unit_price, d("0.05"));
    }

    #[test]
    fn money_adjustments_are_differences_of_rounded_lines_not_repriced_deltas() {
        // 0.5 core-hour (0.025 → 0.02) becomes 0.7 core-hour (0.035 → 0.04): the adjustment is
        // 0.02, although the added 0.2 core-hour alone would price at 0.01.
        let closed = november(&core_hours(&[3], 500));
        let recomputed = november(&core_hours(&[3], 700));
        let lines = adjustments(&closed, &[], &recomputed).expect("adjustments");
        assert_eq!(
            summary(&lines),
            vec![(AdjustmentReason::Correction, CORE_HOUR / 5, d("0.02"))]
        );
    }

    #[test]
    fn a_second_correction_only_adds_what_the_first_did_not() {
        let closed = november(&core_hours(&[3], 1_000));
        let first = november(&core_hours(&[3, 4], 1_000));
        let second = november(&core_hours(&[3, 4, 5, 20], 1_000));
        let issued = adjustments(&closed, &[], &first).expect("first correction");
        let more = adjustments(&closed, &issued, &second).expect("second correction");
        assert_eq!(
            summary(&more),
            vec![
                (AdjustmentReason::Correction, CORE_HOUR, d("0.05")),
                (AdjustmentReason::Addition, CORE_HOUR, d("0.06")),
            ]
        );
        let all: Vec<_> = issued.into_iter().chain(more).collect();
        check_adjusted(&closed, &all, &second).expect("closed + all adjustments = latest");
        assert!(
            adjustments(&closed, &all, &second)
                .expect("nothing left")
                .is_empty()
        );
    }

    #[test]
    fn the_closed_statement_is_left_untouched() {
        let closed = november(&core_hours(&[3], 1_000));
        let snapshot = closed.clone();
        let recomputed = november(&core_hours(&[3, 4], 1_000));
        adjustments(&closed, &[], &recomputed).expect("adjustments");
        assert_eq!(closed, snapshot);
    }

    #[rstest]
    #[case::a_fen_too_much(|a: &mut AdjustmentLine| a.amount += d("0.01"))]
    #[case::a_unit_second_too_few(|a: &mut AdjustmentLine| a.unit_seconds -= 1)]
    fn adjustments_that_do_not_reach_the_recomputed_statement_are_reported(
        #[case] tamper: fn(&mut AdjustmentLine),
    ) {
        let closed = november(&core_hours(&[3], 1_000));
        let recomputed = november(&core_hours(&[3, 4], 1_000));
        let mut lines = adjustments(&closed, &[], &recomputed).expect("adjustments");
        tamper(&mut lines[0]);
        let error = check_adjusted(&closed, &lines, &recomputed).expect_err("unbalanced");
        assert_eq!(error.metric_label(), "unbalanced");
    }

    #[test]
    fn statements_of_different_months_cannot_be_adjusted_into_each_other() {
        let closed = november(&core_hours(&[3], 1_000));
        let december = Statement::build(
            "2026-12".parse().expect("month"),
            &Calendar::default(),
            &schedule(),
            &[],
        )
        .expect("statement");
        let error = adjustments(&closed, &[], &december).expect_err("different months");
        assert_eq!(error.metric_label(), "incomparable_statements");
    }

    /// November priced as the fixtures' schedule, but with silver CPU at `price` from 1 January.
    fn november_at(intervals: &[UsageInterval], price: &str) -> Statement {
        use crate::{
            rates::{RateSchedule, Rounding},
            test_support::{JANUARY_PRICES, NOVEMBER_PRICES, card},
        };
        let january = card("2026-01-01", &JANUARY_PRICES)
            .with_prices(Tier::Silver, Resource::Cpu, d(price), d(price))
            .expect("price")
            .with_rounding(Rounding::HalfEven);
        let schedule =
            RateSchedule::new([january, card("2026-11-15", &NOVEMBER_PRICES)]).expect("schedule");
        let month = "2026-11".parse().expect("month");
        Statement::build(month, &Calendar::default(), &schedule, intervals).expect("statement")
    }

    #[test]
    fn a_rate_card_changed_after_closing_gives_no_adjustment() {
        let closed = november(&core_hours(&[3], 1_000));
        let repriced = november_at(&core_hours(&[3], 1_000), "0.09");
        assert_ne!(closed.platform.amount, repriced.platform.amount);
        let lines = adjustments(&closed, &[], &repriced).expect("adjustments");
        assert!(lines.is_empty(), "{lines:?}");
        check_adjusted(&closed, &[], &repriced).expect("closed at its own prices");
    }

    #[test]
    fn late_usage_on_a_closed_line_is_priced_at_the_closed_price() {
        let closed = november(&core_hours(&[3], 1_000));
        let later = november_at(&core_hours(&[3, 4], 1_000), "0.09");
        let lines = adjustments(&closed, &[], &later).expect("adjustments");
        assert_eq!(
            summary(&lines),
            vec![(AdjustmentReason::Correction, CORE_HOUR, d("0.05"))]
        );
        assert_eq!(lines[0].unit_price, d("0.05"));
    }

    #[test]
    fn adjustments_are_added_to_the_amount_payable() {
        let closed = november(&core_hours(&[3, 20], 1_000));
        let recomputed = november(&core_hours(&[3, 4, 20], 1_000));
        let lines = adjustments(&closed, &[], &recomputed).expect("adjustments");
        let (bureaus, platform) = payable(&closed, &lines).expect("payable");
        // 0.05 + 0.06 closed, 0.05 more by adjustment.
        let wjw = &bureaus["wjw"];
        assert_eq!(
            (wjw.lines, wjw.adjustments, wjw.payable),
            (d("0.11"), d("0.05"), d("0.16"))
        );
        assert_eq!(platform.payable, d("0.16"));
        assert_eq!(platform.payable.to_string(), "0.16");
    }

    #[test]
    fn adjustments_serialize_with_signed_exact_integers() {
        let closed = november(&core_hours(&[3, 20], 1_000));
        let recomputed = november(&core_hours(&[3], 1_000));
        let lines = adjustments(&closed, &[], &recomputed).expect("adjustments");
        let json = serde_json::to_string(&lines).expect("serialize");
        assert!(json.contains(r#""unitSeconds":"-3600000""#), "{json}");
        assert!(json.contains(r#""reason":"reversal""#), "{json}");
        let back: Vec<AdjustmentLine> = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, lines);
    }
}
