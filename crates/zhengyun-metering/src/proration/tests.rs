use jiff::Timestamp;
use rstest::rstest;

use super::*;

fn d(text: &str) -> Decimal {
    Decimal::from_str_exact(text).expect("test decimal")
}

fn shanghai() -> Calendar {
    Calendar::new("Asia/Shanghai").expect("calendar")
}

fn month(y: i16, m: i8) -> Month {
    Month::new(y, m).expect("month")
}

/// 2,600.00 a month is 31,200.00 a year; a month gets its length's share of it.
#[rstest]
#[case::february_of_a_common_year_28_days(2027, 2, "2600.00", "2393.43")]
#[case::february_of_a_leap_year_29_days(2028, 2, "2600.00", "2472.13")]
#[case::april_30_days(2027, 4, "2600.00", "2564.38")]
#[case::january_31_days(2027, 1, "2600.00", "2649.86")]
#[case::january_of_a_leap_year_31_days(2028, 1, "2600.00", "2642.62")]
#[case::december_31_days(2027, 12, "2600.00", "2649.86")]
#[case::ten_thousand_in_february(2027, 2, "10000", "9205.48")]
#[case::ten_thousand_in_a_leap_february(2028, 2, "10000.00", "9508.20")]
#[case::ten_thousand_in_april(2027, 4, "10000.00", "9863.01")]
#[case::ten_thousand_in_january(2027, 1, "10000.00", "10191.78")]
#[case::zero(2027, 1, "0", "0.00")]
fn a_months_budget_is_its_share_by_length_of_twelve_monthly_budgets(
    #[case] year: i16,
    #[case] m: i8,
    #[case] monthly: &str,
    #[case] expected: &str,
) {
    let budget = month_budget(d(monthly), month(year, m), &shanghai()).expect("budget");
    assert_eq!(budget, d(expected));
    assert_eq!(budget.scale(), MONEY_SCALE);
}

#[rstest]
#[case::common_year(2027, "2600.00")]
#[case::leap_year(2028, "2600.00")]
#[case::one_fen(2027, "0.01")]
#[case::odd_amount(2028, "12345.67")]
fn the_twelve_months_of_a_year_add_up_to_twelve_monthly_budgets_to_the_fen(
    #[case] year: i16,
    #[case] monthly: &str,
) {
    let calendar = shanghai();
    let total: Decimal = (1..=12)
        .map(|m| month_budget(d(monthly), month(year, m), &calendar).expect("budget"))
        .sum();
    assert_eq!(total, d(monthly) * Decimal::from(12));
}

#[rstest]
#[case::negative("-1")]
#[case::below_the_fen("100.001")]
fn a_budget_must_be_whole_non_negative_fen_to_be_prorated(#[case] monthly: &str) {
    let error = month_budget(d(monthly), month(2027, 1), &shanghai()).expect_err("refused");
    assert_eq!(error.metric_label(), "invalid_budget");
}

/// 1,234.56 charged over the first ten days, extrapolated to the whole month.
#[rstest]
#[case::twenty_eight_days(2027, 2, "2027-02-11T00:00:00+08:00", "3456.77")]
#[case::twenty_nine_days(2028, 2, "2028-02-11T00:00:00+08:00", "3580.22")]
#[case::thirty_days(2027, 4, "2027-04-11T00:00:00+08:00", "3703.68")]
#[case::thirty_one_days(2027, 1, "2027-01-11T00:00:00+08:00", "3827.14")]
fn the_forecast_is_linear_on_the_seconds_the_ledger_covers(
    #[case] year: i16,
    #[case] m: i8,
    #[case] covered_until: &str,
    #[case] expected: &str,
) {
    let at: Timestamp = covered_until.parse().expect("instant");
    let forecast = forecast_month_end(d("1234.56"), month(year, m), at, &shanghai());
    assert_eq!(forecast.expect("forecast"), Some(d(expected)));
}

#[test]
fn a_forecast_exactly_half_way_between_two_fen_rounds_to_the_even_one() {
    // 0.01 over 2 days of 31: 0.155 → 0.16; 0.03 over 2 days of 31: 0.465 → 0.46.
    let at: Timestamp = "2027-01-03T00:00:00+08:00".parse().expect("instant");
    let calendar = shanghai();
    let forecast = |spent| forecast_month_end(d(spent), month(2027, 1), at, &calendar);
    assert_eq!(forecast("0.01").expect("forecast"), Some(d("0.16")));
    assert_eq!(forecast("0.03").expect("forecast"), Some(d("0.46")));
    assert_eq!(forecast("-0.03").expect("forecast"), Some(d("-0.46")));
}

#[rstest]
#[case::at_the_start("2027-01-01T00:00:00+08:00", None)]
#[case::before_the_month("2026-12-31T12:00:00+08:00", None)]
#[case::at_the_end("2027-02-01T00:00:00+08:00", Some("1234.56"))]
#[case::after_the_end("2027-03-01T00:00:00+08:00", Some("1234.56"))]
fn there_is_no_forecast_before_the_month_and_the_charges_after_it(
    #[case] covered_until: &str,
    #[case] expected: Option<&str>,
) {
    let at: Timestamp = covered_until.parse().expect("instant");
    let forecast = forecast_month_end(d("1234.56"), month(2027, 1), at, &shanghai());
    assert_eq!(forecast.expect("forecast"), expected.map(d));
}
