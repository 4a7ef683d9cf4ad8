use std::str::FromStr;

use zhengyun_metering::{
    AdjustmentReason, BudgetLevel, LineKey, Meter, RateCard, RateSchedule, Statement,
    UsageInterval, UsageKind,
};
use zhengyun_model::names::Tier;
use zhengyun_model::quantity::Resource;

use super::*;

fn d(text: &str) -> Decimal {
    Decimal::from_str_exact(text).expect("decimal")
}

/// November 2026 in Shanghai: wjw holds 4 gold cores reserved and 1.5 consumed for one hour at
/// 2.00 a core-hour reserved and 2.00 consumed (11.00), the ledger covering up to 2026-11-05T11:00Z.
fn november() -> (Statement, Timestamp) {
    let start: Timestamp = "2026-11-05T10:00:00Z".parse().expect("ts");
    let end: Timestamp = "2026-11-05T11:00:00Z".parse().expect("ts");
    let intervals: Vec<UsageInterval> =
        [(UsageKind::Reserved, 4_000), (UsageKind::Consumed, 1_500)]
            .into_iter()
            .map(|(kind, amount)| {
                let meter =
                    Meter::new("wjw", "wjw-prod", Resource::Cpu, kind, Tier::Gold).expect("meter");
                UsageInterval::new(meter, start, end, amount).expect("interval")
            })
            .collect();
    let card = RateCard::new("2026-01-01".parse().expect("date"), "CNY")
        .with_prices(Tier::Gold, Resource::Cpu, d("2"), d("2"))
        .expect("price");
    let schedule = RateSchedule::new([card]).expect("schedule");
    let month = Month::new(2026, 11).expect("month");
    let statement =
        Statement::build(month, &Calendar::default(), &schedule, &intervals).expect("statement");
    (statement, end)
}

fn credit(month: Month, amount: &str) -> AdjustmentLine {
    let meter = Meter::new(
        "wjw",
        "wjw-prod",
        Resource::Cpu,
        UsageKind::Reserved,
        Tier::Gold,
    )
    .expect("meter");
    AdjustmentLine {
        month,
        key: LineKey {
            meter,
            rate_card: jiff::civil::Date::from_str("2026-01-01").expect("date"),
        },
        reason: AdjustmentReason::Correction,
        unit_seconds: -3_600_000,
        amount: d(amount),
        unit_price: d("2"),
        note: "metered twice".to_owned(),
        issued_by: "finance".to_owned(),
        issued_at: None,
    }
}

#[test]
fn cost_to_date_and_the_level_include_the_months_adjustments_against_its_share_of_the_budget() {
    let (statement, covered) = november();
    let bureaus = BTreeSet::from(["wjw".to_owned(), "jtj".to_owned()]);
    let budgets = BTreeMap::from([("wjw".to_owned(), d("10.00"))]);
    let calendar = Calendar::default();
    let without = month_figures(
        statement.month,
        &statement.bureau_amounts(),
        &[],
        &bureaus,
        &budgets,
        &calendar,
        Some(covered),
    )
    .expect("figures");
    let wjw = &without.bureaus["wjw"];
    assert_eq!(wjw.cost_to_date, d("11.00"));
    // November's share of twelve budgets of 10.00: 9.86 (30 of 365 days, rounded without drift).
    let budget = wjw.budget.as_ref().expect("budget");
    assert_eq!(
        (budget.budget, budget.level),
        (d("9.86"), BudgetLevel::Exceeded)
    );
    // 11.00 over 4 days 19 hours of a 30-day month: 11.00 × 2,592,000 / 414,000 = 68.87.
    assert_eq!(wjw.forecast, Some(d("68.87")));

    let adjustments = [
        credit(statement.month, "-2.00"),
        credit(Month::new(2026, 10).expect("m"), "-5.00"),
    ];
    let with = month_figures(
        statement.month,
        &statement.bureau_amounts(),
        &adjustments,
        &bureaus,
        &budgets,
        &calendar,
        Some(covered),
    )
    .expect("figures");
    let wjw = &with.bureaus["wjw"];
    assert_eq!(wjw.cost_to_date, d("9.00"));
    assert_eq!(wjw.forecast, Some(d("66.87")));
    assert_eq!(
        wjw.budget.as_ref().map(|b| b.level),
        Some(BudgetLevel::Warning)
    );
    // A bureau without usage or budget still has a cost: zero.
    let jtj = &with.bureaus["jtj"];
    assert_eq!((jtj.cost_to_date, jtj.budget.clone()), (d("0.00"), None));
}

#[test]
fn there_is_no_forecast_before_the_ledger_covers_the_month() {
    let (statement, _) = november();
    let bureaus = BTreeSet::from(["wjw".to_owned()]);
    let start: Timestamp = "2026-10-31T16:00:00Z".parse().expect("ts");
    let calendar = Calendar::default();
    for covered in [None, Some(start)] {
        let figures = month_figures(
            statement.month,
            &statement.bureau_amounts(),
            &[],
            &bureaus,
            &BTreeMap::new(),
            &calendar,
            covered,
        )
        .expect("figures");
        assert_eq!(figures.bureaus["wjw"].forecast, None);
    }
}

#[test]
fn the_status_carries_the_month_the_cost_the_forecast_and_the_settled_borrowing() {
    let figures = BureauFigures {
        cost_to_date: d("9.00"),
        forecast: Some(d("66.87")),
        budget: None,
    };
    let month = Month::new(2026, 11).expect("month");
    assert_eq!(
        serde_json::to_value(status_of(month, &figures, (None, None))).expect("serializes"),
        serde_json::json!({"costMonth": "2026-11", "costToDate": "9.00", "costForecast": "66.87",
                           "burstChargesThisMonth": null, "lentCreditsThisMonth": null})
    );
    let lent = status_of(month, &figures, (None, Some(d("0.84"))));
    assert_eq!(lent.lent_credits_this_month.as_deref(), Some("0.84"));
}
