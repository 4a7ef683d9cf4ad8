//! Monthly budgets: where a bureau's month-to-date spending stands against its budget.
//!
//! The level is decided by exact integer comparison in fen: **warning** from 80% of the budget,
//! **exceeded** from 100%. The ratio is for display, truncated toward zero to four decimals
//! (`0.8123` = 81.23%), so that it never shows a threshold (0.8000, 1.0000) the spending has not
//! reached: 9,999.99 of 10,000.00 shows 0.9999, not 1.0000.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    rates::MONEY_SCALE,
};

/// Percentage of the budget from which a bureau is warned.
pub const WARNING_PERCENT: u32 = 80;

/// Decimal places of [`BudgetStatus::ratio`].
pub const RATIO_SCALE: u32 = 4;

/// How close a bureau is to its monthly budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetLevel {
    /// Below [`WARNING_PERCENT`] of the budget.
    Ok,
    /// At or above [`WARNING_PERCENT`], below 100%.
    Warning,
    /// At or above 100% of the budget.
    Exceeded,
}

impl BudgetLevel {
    /// `ok`, `warning` or `exceeded`.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetLevel::Ok => "ok",
            BudgetLevel::Warning => "warning",
            BudgetLevel::Exceeded => "exceeded",
        }
    }
}

/// A bureau's month-to-date spending against its monthly budget.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetStatus {
    /// The monthly budget.
    pub budget: Decimal,
    /// Spent so far this month (may be negative after credits).
    pub spent: Decimal,
    /// `spent / budget`, four decimals, truncated toward zero; `None` when the budget is zero.
    pub ratio: Option<Decimal>,
    /// Ok, warning or exceeded.
    pub level: BudgetLevel,
}

/// Where `month_to_date` stands against `budget`. Both must be whole fen (at most two
/// decimals) and the budget must not be negative. A zero budget is exceeded by any spending.
pub fn budget_status(budget: Decimal, month_to_date: Decimal) -> Result<BudgetStatus> {
    let invalid_budget = |reason: &str| Error::InvalidBudget {
        value: budget,
        reason: reason.to_owned(),
    };
    if budget < Decimal::ZERO {
        return Err(invalid_budget("must not be negative"));
    }
    let budget_fen = to_fen(budget).ok_or_else(|| invalid_budget("must be whole fen (0.01)"))?;
    let spent_fen = to_fen(month_to_date).ok_or_else(|| Error::InvalidBudget {
        value: month_to_date,
        reason: "month-to-date spending must be whole fen (0.01)".to_owned(),
    })?;
    // Mantissas are below 2^96, so these products cannot overflow i128.
    let level = if budget_fen == 0 {
        if spent_fen > 0 {
            BudgetLevel::Exceeded
        } else {
            BudgetLevel::Ok
        }
    } else if spent_fen >= budget_fen {
        BudgetLevel::Exceeded
    } else if spent_fen * 100 >= budget_fen * i128::from(WARNING_PERCENT) {
        BudgetLevel::Warning
    } else {
        BudgetLevel::Ok
    };
    let ratio = month_to_date
        .checked_div(budget)
        .map(|r| r.round_dp_with_strategy(RATIO_SCALE, RoundingStrategy::ToZero));
    Ok(BudgetStatus {
        budget,
        spent: month_to_date,
        ratio,
        level,
    })
}

/// `amount` in fen, if it has no digits below the fen.
fn to_fen(amount: Decimal) -> Option<i128> {
    let amount = amount.normalize();
    let scale = amount.scale();
    (scale <= MONEY_SCALE).then(|| amount.mantissa() * 10i128.pow(MONEY_SCALE - scale))
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::from_str_exact(text).expect("test decimal")
    }

    #[rstest]
    #[case::nothing_spent("10000.00", "0", BudgetLevel::Ok, Some("0"))]
    #[case::a_fen_below_eighty_percent("10000.00", "7999.99", BudgetLevel::Ok, Some("0.7999"))]
    #[case::exactly_eighty_percent("10000.00", "8000.00", BudgetLevel::Warning, Some("0.8000"))]
    #[case::a_fen_below_the_budget("10000.00", "9999.99", BudgetLevel::Warning, Some("0.9999"))]
    #[case::exactly_the_budget("10000.00", "10000.00", BudgetLevel::Exceeded, Some("1.0000"))]
    #[case::over_the_budget("10000", "12345.67", BudgetLevel::Exceeded, Some("1.2345"))]
    #[case::credit_after_adjustments("10000", "-50.00", BudgetLevel::Ok, Some("-0.0050"))]
    #[case::zero_budget_nothing_spent("0", "0", BudgetLevel::Ok, None)]
    #[case::zero_budget_any_spending("0", "0.01", BudgetLevel::Exceeded, None)]
    fn the_level_is_warning_from_eighty_and_exceeded_from_one_hundred_percent(
        #[case] budget: &str,
        #[case] spent: &str,
        #[case] level: BudgetLevel,
        #[case] ratio: Option<&str>,
    ) {
        let status = budget_status(d(budget), d(spent)).expect("status");
        assert_eq!(status.level, level);
        assert_eq!(status.ratio, ratio.map(d));
    }

    #[test]
    fn a_ratio_is_cut_not_rounded_so_it_never_shows_a_level_not_reached() {
        // 1.00 / 800.00 = 0.00125 → 0.0012; 3.00 / 800.00 = 0.00375 → 0.0037.
        let low = budget_status(d("800.00"), d("1.00")).expect("status");
        let high = budget_status(d("800.00"), d("3.00")).expect("status");
        assert_eq!(
            (low.ratio, high.ratio),
            (Some(d("0.0012")), Some(d("0.0037")))
        );
    }

    #[rstest]
    #[case::negative_budget("-1", "0")]
    #[case::sub_fen_budget("100.001", "0")]
    #[case::sub_fen_spending("100", "0.005")]
    fn budgets_and_spending_must_be_whole_non_negative_fen(
        #[case] budget: &str,
        #[case] spent: &str,
    ) {
        let error = budget_status(d(budget), d(spent)).expect_err("refused");
        assert_eq!(error.metric_label(), "invalid_budget");
    }
}
