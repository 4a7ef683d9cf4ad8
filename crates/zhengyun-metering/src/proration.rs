//! A month's share of a bureau's budget, and the month-end forecast.
//!
//! **Proration.** `Bureau.spec.monthlyBudget` is the budget of an average month: a year's
//! budget is twelve times it, and each month gets the share of that year's budget its length
//! bears to the year's, measured in seconds of the platform calendar. So a 31-day month's budget
//! is larger than a 28-day one's, and the twelve months of a year add up to exactly twelve
//! monthly budgets, to the fen. Shares are rounded without drift: month *k* gets
//! `round(annual × seconds(Jan..=k) / seconds(year)) − round(annual × seconds(Jan..k) / seconds(year))`,
//! each rounding half to even to the fen.
//!
//! **Forecast.** The month-end amount is extrapolated linearly on elapsed seconds: what the ledger
//! covers so far is `elapsed` seconds of the month, its charges are `spent`, and the forecast is
//! `spent × seconds(month) / elapsed`, rounded half to even to the fen. Adjustments booked to the
//! month are not usage: they are added as they are, not extrapolated.

use jiff::Timestamp;
use rust_decimal::Decimal;

use crate::{
    calendar::{Calendar, Month},
    error::{Error, Result},
    rates::MONEY_SCALE,
    rates::Rounding,
    wide::mul_div_rounded,
};

/// The budget of `month`: its share, by length, of twelve times `monthly` (see the module
/// documentation). `monthly` must be whole, non-negative fen.
pub fn month_budget(monthly: Decimal, month: Month, calendar: &Calendar) -> Result<Decimal> {
    let invalid = |reason: &str| Error::InvalidBudget {
        value: monthly,
        reason: reason.to_owned(),
    };
    if monthly < Decimal::ZERO {
        return Err(invalid("must not be negative"));
    }
    let fen = to_fen(monthly).ok_or_else(|| invalid("must be whole fen (0.01)"))?;
    let overflow = || Error::Overflow {
        what: "a month's budget",
    };
    let annual = fen.unsigned_abs().checked_mul(12).ok_or_else(overflow)?;
    let mut through = [0u64; 12];
    let mut seconds = 0u64;
    for (i, slot) in through.iter_mut().enumerate() {
        // i < 12, so the month number fits.
        let m = Month::new(month.year(), i as i8 + 1)?;
        seconds += calendar.month_range(m)?.seconds();
        *slot = seconds;
    }
    let k = usize::try_from(month.month() - 1).unwrap_or(0);
    let share = |upto: u64| {
        mul_div_rounded(annual, u128::from(upto), seconds, Rounding::HalfEven).ok_or_else(overflow)
    };
    let before = if k == 0 { 0 } else { share(through[k - 1])? };
    let amount = share(through[k])? - before;
    let amount = i128::try_from(amount).map_err(|_| overflow())?;
    Decimal::try_from_i128_with_scale(amount, MONEY_SCALE).map_err(|_| overflow())
}

/// The month-end forecast of `month` from `spent` (usage charges, whole fen) covering the
/// month up to `covered_until`: linear on elapsed seconds, half to even to the fen. `None`
/// before the month has begun; `spent` itself once the month is over.
pub fn forecast_month_end(
    spent: Decimal,
    month: Month,
    covered_until: Timestamp,
    calendar: &Calendar,
) -> Result<Option<Decimal>> {
    let range = calendar.month_range(month)?;
    let elapsed = covered_until.as_second() - range.start().as_second();
    let Ok(elapsed) = u64::try_from(elapsed) else {
        return Ok(None);
    };
    if elapsed == 0 {
        return Ok(None);
    }
    if elapsed >= range.seconds() {
        return Ok(Some(spent));
    }
    let fen = to_fen(spent).ok_or_else(|| Error::InvalidBudget {
        value: spent,
        reason: "month-to-date spending must be whole fen (0.01)".to_owned(),
    })?;
    let overflow = || Error::Overflow {
        what: "a month-end forecast",
    };
    let magnitude = mul_div_rounded(
        fen.unsigned_abs(),
        u128::from(range.seconds()),
        elapsed,
        Rounding::HalfEven,
    )
    .and_then(|m| i128::try_from(m).ok())
    .ok_or_else(overflow)?;
    let signed = if fen < 0 { -magnitude } else { magnitude };
    Decimal::try_from_i128_with_scale(signed, MONEY_SCALE)
        .map(Some)
        .map_err(|_| overflow())
}

/// `amount` in fen, if it has no digits below the fen.
fn to_fen(amount: Decimal) -> Option<i128> {
    let amount = amount.normalize();
    let scale = amount.scale();
    (scale <= MONEY_SCALE).then(|| amount.mantissa() * 10i128.pow(MONEY_SCALE - scale))
}

#[cfg(test)]
mod tests;
