use std::collections::BTreeMap;

use rstest::rstest;
use zhengyun_model::{names::Tier, quantity::Resource};

use super::*;
use crate::{
    budget::BudgetLevel,
    test_support::{d, date, interval, meter, schedule, ts},
    usage::UsageKind::{Consumed, Reserved},
};

const GIB: u64 = 1 << 30;

fn month(text: &str) -> Month {
    text.parse().expect("test month")
}

fn build(zone: &str, month_text: &str, intervals: &[UsageInterval]) -> Statement {
    let calendar = Calendar::new(zone).expect("zone");
    Statement::build(month(month_text), &calendar, &schedule(), intervals).expect("statement")
}

/// (rate card, unit-seconds, quantity, amount) of each line, in order.
fn line_summary(statement: &Statement) -> Vec<(Date, u128, Decimal, Decimal)> {
    statement
        .lines
        .iter()
        .map(|l| (l.key.rate_card, l.unit_seconds, l.quantity, l.amount))
        .collect()
}

// October 2026 in Shanghai: 31 days, one rate card (2026-01-01).
const OCTOBER_START: &str = "2026-09-30T16:00:00Z";
const OCTOBER_END: &str = "2026-10-31T16:00:00Z";

#[rstest]
#[case::gold_cpu(Tier::Gold, Resource::Cpu, 1_000, "744", "59.52", "core-hour")]
#[case::silver_cpu(Tier::Silver, Resource::Cpu, 1_000, "744", "37.20", "core-hour")]
#[case::bronze_cpu(Tier::Bronze, Resource::Cpu, 1_000, "744", "22.32", "core-hour")]
#[case::gold_memory(Tier::Gold, Resource::Memory, 4 * GIB, "2976", "29.76", "GiB-hour")]
#[case::silver_memory_rounds_down(Tier::Silver, Resource::Memory, 4 * GIB, "2976", "20.53", "GiB-hour")]
#[case::bronze_memory_rounds_down(Tier::Bronze, Resource::Memory, 4 * GIB, "2976", "11.90", "GiB-hour")]
#[case::silver_storage(Tier::Silver, Resource::Storage, 100 * GIB, "74400", "74.40", "GiB-hour")]
#[case::gold_gpu(Tier::Gold, Resource::Gpu, 1, "744", "11160.00", "GPU-hour")]
#[case::bronze_gpu(Tier::Bronze, Resource::Gpu, 1, "744", "5952.00", "GPU-hour")]
#[case::pods_are_counted_but_free(Tier::Gold, Resource::Pods, 10, "7440", "0.00", "pod-hour")]
fn a_month_of_constant_usage_is_priced_at_its_tier(
    #[case] tier: Tier,
    #[case] resource: Resource,
    #[case] amount: u64,
    #[case] quantity: &str,
    #[case] expected: &str,
    #[case] unit: &str,
) {
    let m = meter("wjw-prod", resource, Reserved, tier);
    let statement = build(
        "Asia/Shanghai",
        "2026-10",
        &[interval(&m, OCTOBER_START, OCTOBER_END, amount)],
    );
    let [line] = statement.lines.as_slice() else {
        panic!("one line expected: {:?}", statement.lines);
    };
    assert_eq!(line.unit_seconds, u128::from(amount) * 744 * 3600);
    assert_eq!(line.quantity, d(quantity));
    assert_eq!(line.unit, unit);
    assert_eq!(line.amount, d(expected));
    assert_eq!(statement.platform.amount, d(expected));
}

#[test]
fn a_rate_change_mid_month_gives_one_line_per_rate_card_period() {
    let m = meter("wjw-prod", Resource::Cpu, Reserved, Tier::Silver);
    // All of November 2026 in Shanghai; the November card takes effect on the 15th.
    let statement = build(
        "Asia/Shanghai",
        "2026-11",
        &[interval(
            &m,
            "2026-10-31T16:00:00Z",
            "2026-11-30T16:00:00Z",
            1_000,
        )],
    );
    assert_eq!(
        line_summary(&statement),
        vec![
            (date("2026-01-01"), 1_000 * 336 * 3600, d("336"), d("16.80")),
            (date("2026-11-15"), 1_000 * 384 * 3600, d("384"), d("23.04")),
        ]
    );
    let periods: Vec<_> = statement
        .lines
        .iter()
        .map(|l| (l.period.start(), l.period.end()))
        .collect();
    assert_eq!(
        periods,
        vec![
            (ts("2026-10-31T16:00:00Z"), ts("2026-11-14T16:00:00Z")),
            (ts("2026-11-14T16:00:00Z"), ts("2026-11-30T16:00:00Z")),
        ]
    );
    assert_eq!(statement.platform.amount, d("39.84"));
    statement.check_conservation().expect("conserved");
}

#[rstest]
// 2 cores from 2026-11-30T12:00Z to 2026-12-01T12:00Z, priced at 0.06 per core-hour (silver).
#[case::shanghai_november_gets_four_hours("Asia/Shanghai", "2026-11", 4, "0.48")]
#[case::shanghai_december_gets_twenty_hours("Asia/Shanghai", "2026-12", 20, "2.40")]
#[case::utc_november_gets_twelve_hours("UTC", "2026-11", 12, "1.44")]
#[case::utc_december_gets_twelve_hours("UTC", "2026-12", 12, "1.44")]
fn an_interval_crossing_midnight_at_month_end_is_split_at_local_midnight(
    #[case] zone: &str,
    #[case] month_text: &str,
    #[case] hours: u128,
    #[case] expected: &str,
) {
    let m = meter("jtj-prod", Resource::Cpu, Consumed, Tier::Silver);
    let whole = interval(&m, "2026-11-30T12:00:00Z", "2026-12-01T12:00:00Z", 2_000);
    let statement = build(zone, month_text, std::slice::from_ref(&whole));
    assert_eq!(
        line_summary(&statement),
        vec![(
            date("2026-11-15"),
            2_000 * hours * 3600,
            d(&(2 * hours).to_string()),
            d(expected)
        )]
    );
    statement
        .check_against_usage([&whole])
        .expect("recount matches");
}

#[rstest]
#[case::shanghai("Asia/Shanghai")]
#[case::utc("UTC")]
fn the_two_months_around_an_interval_add_up_to_it_exactly(#[case] zone: &str) {
    let m = meter("jtj-prod", Resource::Memory, Reserved, Tier::Gold);
    let whole = interval(
        &m,
        "2026-11-30T12:00:01Z",
        "2026-12-01T11:59:59Z",
        3 * GIB + 7,
    );
    let november = build(zone, "2026-11", std::slice::from_ref(&whole));
    let december = build(zone, "2026-12", std::slice::from_ref(&whole));
    let billed: u128 = november
        .lines
        .iter()
        .chain(&december.lines)
        .map(|l| l.unit_seconds)
        .sum();
    assert_eq!(billed, whole.unit_seconds());
}

#[rstest]
// Silver CPU at 0.05 per core-hour, for one hour: 100 millicores cost exactly half a fen.
#[case::half_a_fen_rounds_to_even_zero(100, "0.00")]
#[case::a_hair_above_half_a_fen_rounds_up(101, "0.01")]
#[case::one_and_a_half_fen_rounds_up_to_two(300, "0.02")]
#[case::two_and_a_half_fen_rounds_down_to_two(500, "0.02")]
#[case::three_and_a_half_fen_rounds_up_to_four(700, "0.04")]
fn each_line_is_rounded_half_to_even_at_the_fen(#[case] millicores: u64, #[case] expected: &str) {
    let m = meter("wjw-dev", Resource::Cpu, Consumed, Tier::Silver);
    let statement = build(
        "Asia/Shanghai",
        "2026-10",
        &[interval(
            &m,
            "2026-10-10T00:00:00Z",
            "2026-10-10T01:00:00Z",
            millicores,
        )],
    );
    assert_eq!(statement.lines[0].amount, d(expected));
}

#[test]
fn lines_are_rounded_once_and_totals_add_the_rounded_lines() {
    // Two environments each use half a fen's worth: each line rounds to 0.00, and the bureau
    // total is the sum of its lines (0.00), not the rounded sum of the usage (0.01).
    let intervals: Vec<_> = ["wjw-dev", "wjw-test"]
        .into_iter()
        .map(|env| {
            let m = meter(env, Resource::Cpu, Consumed, Tier::Silver);
            interval(&m, "2026-10-10T00:00:00Z", "2026-10-10T01:00:00Z", 100)
        })
        .collect();
    let statement = build("Asia/Shanghai", "2026-10", &intervals);
    assert_eq!(statement.lines.len(), 2);
    assert!(statement.lines.iter().all(|l| l.amount == d("0.00")));
    assert_eq!(
        statement.bureau("wjw").map(|b| b.totals.amount),
        Some(d("0.00"))
    );
    statement.check_conservation().expect("conserved");
}

#[test]
fn an_hour_of_usage_split_over_many_intervals_is_priced_on_the_sum_not_per_interval() {
    // 3600 one-second intervals of 300 millicores at 0.05 per core-hour: 0.015 CNY in all,
    // rounded once → 0.02. Rounding each interval (0.0000041667) to the fen would bill 0.00.
    let m = meter("wjw-dev", Resource::Cpu, Consumed, Tier::Silver);
    let start = ts("2026-10-10T00:00:00Z");
    let pieces: Vec<_> = (0..3600)
        .map(|s| {
            let from = start + jiff::SignedDuration::from_secs(s);
            let to = from + jiff::SignedDuration::from_secs(1);
            UsageInterval::new(m.clone(), from, to, 300).expect("interval")
        })
        .collect();
    let whole = [interval(
        &m,
        "2026-10-10T00:00:00Z",
        "2026-10-10T01:00:00Z",
        300,
    )];
    let split = build("Asia/Shanghai", "2026-10", &pieces);
    let joined = build("Asia/Shanghai", "2026-10", &whole);
    assert_eq!(split, joined);
    assert_eq!(
        split.lines[0].amount,
        d("0.02"),
        "1.5 fen rounds to even once"
    );
}

#[test]
fn zero_usage_still_shows_a_line_and_costs_nothing() {
    let reserved = meter("wjw-prod", Resource::Gpu, Reserved, Tier::Gold);
    let consumed = meter("wjw-prod", Resource::Gpu, Consumed, Tier::Gold);
    let statement = build(
        "Asia/Shanghai",
        "2026-10",
        &[
            interval(&reserved, OCTOBER_START, OCTOBER_END, 2),
            interval(&consumed, OCTOBER_START, OCTOBER_END, 0),
        ],
    );
    let consumed_line = statement
        .lines
        .iter()
        .find(|l| l.key.meter.kind() == Consumed)
        .expect("a consumed line");
    assert_eq!(
        (consumed_line.unit_seconds, consumed_line.amount),
        (0, d("0.00"))
    );
    assert_eq!(
        statement.platform.amount,
        d("22320.00"),
        "2 GPUs × 744 h × 15"
    );
    statement.check_conservation().expect("conserved");
}

#[test]
fn a_month_without_usage_is_an_empty_balanced_statement() {
    let statement = build("Asia/Shanghai", "2026-10", &[]);
    assert!(statement.lines.is_empty() && statement.bureaus.is_empty());
    assert_eq!(statement.platform.amount.to_string(), "0.00");
    assert_eq!(statement.currency, "CNY");
    statement.check_conservation().expect("conserved");
}

#[test]
fn a_million_cores_and_an_exbibyte_for_a_month_are_billed_without_overflow() {
    let cpu = meter("wjw-prod", Resource::Cpu, Reserved, Tier::Gold);
    let memory = meter("wjw-prod", Resource::Memory, Reserved, Tier::Gold);
    let largest = meter("wjw-prod", Resource::Storage, Reserved, Tier::Bronze);
    let (start, end) = ("2026-10-31T16:00:00Z", "2026-11-30T16:00:00Z");
    let statement = build(
        "Asia/Shanghai",
        "2026-11",
        &[
            interval(&cpu, start, end, 1_000_000_000),
            interval(&memory, start, end, 1 << 60),
            interval(&largest, start, end, u64::MAX),
        ],
    );
    let amounts: Vec<_> = statement
        .lines
        .iter()
        .map(|l| (l.key.meter.resource(), l.amount))
        .collect();
    assert_eq!(
        amounts,
        vec![
            (Resource::Cpu, d("26880000.00")),
            (Resource::Cpu, d("38400000.00")),
            (Resource::Memory, d("3607772528.64")),
            (Resource::Memory, d("4947802324.99")),
            (Resource::Storage, d("4617948836.66")),
            (Resource::Storage, d("5277655813.32")),
        ]
    );
    let storage_unit_seconds: u128 = statement.lines[4..].iter().map(|l| l.unit_seconds).sum();
    assert_eq!(storage_unit_seconds, u128::from(u64::MAX) * 720 * 3600);
    statement.check_conservation().expect("conserved");
}

/// Three bureaus × two environments × CPU and memory, reserved and consumed, as hourly intervals
/// with awkward amounts across the mid-November rate change.
fn busy_ledger(calendar: &Calendar) -> Vec<UsageInterval> {
    let mut ledger = Vec::new();
    let environments = [
        "wjw-dev",
        "wjw-prod",
        "jtj-prod",
        "jtj-test",
        "zgc-keyu-staging",
        "zgc-keyu-prod",
    ];
    let tiers = [Tier::Gold, Tier::Silver, Tier::Bronze];
    for (e, env) in environments.into_iter().enumerate() {
        for (resource, base) in [(Resource::Cpu, 1_000u64), (Resource::Memory, GIB)] {
            for kind in UsageKind::ALL {
                let m = meter(env, resource, kind, tiers[e % 3]);
                let whole = interval(&m, "2026-11-12T07:13:11Z", "2026-11-17T21:45:03Z", 1);
                for (h, piece) in whole
                    .split_hourly(calendar)
                    .expect("split")
                    .into_iter()
                    .enumerate()
                {
                    let amount = base * (1 + e as u64) + (h as u64 * 7_919) % 4_999;
                    let reading = UsageInterval::new(m.clone(), piece.start(), piece.end(), amount);
                    ledger.push(reading.expect("interval"));
                }
            }
        }
    }
    ledger
}

#[test]
fn environments_sum_to_bureaus_and_bureaus_to_the_platform_to_the_unit_and_the_fen() {
    let calendar = Calendar::default();
    let ledger = busy_ledger(&calendar);
    let statement =
        Statement::build(month("2026-11"), &calendar, &schedule(), &ledger).expect("statement");
    statement.check_conservation().expect("conserved");
    statement
        .check_against_usage(&ledger)
        .expect("recount matches");
    assert_eq!(statement.bureaus.len(), 3);
    assert_eq!(statement.environments.len(), 6);
    // Independently of the statement's own totals: the platform's unit-seconds are the ledger's.
    let mut ledger_totals: BTreeMap<(Resource, UsageKind), u128> = BTreeMap::new();
    for i in &ledger {
        *ledger_totals.entry((i.resource(), i.kind())).or_default() += i.unit_seconds();
    }
    let platform: BTreeMap<_, _> = statement
        .platform
        .usage
        .iter()
        .map(|u| ((u.resource, u.kind), u.unit_seconds))
        .collect();
    assert_eq!(platform, ledger_totals);
    let line_money: Decimal = statement.lines.iter().map(|l| l.amount).sum();
    assert_eq!(statement.platform.amount, line_money);
}

#[rstest]
#[case::a_line_amount_off_by_a_fen(|s: &mut Statement| s.lines[0].amount += d("0.01"), "line ")]
#[case::a_line_quantity_changed(|s: &mut Statement| s.lines[0].unit_seconds += 1, "line ")]
#[case::a_line_listed_twice(|s: &mut Statement| {
    let again = s.lines[3].clone();
    s.lines.insert(3, again);
}, "line ")]
#[case::an_environment_total_off_by_a_fen(|s: &mut Statement| s.environments[0].totals.amount -= d("0.01"), "environments: ")]
#[case::an_environment_missing(|s: &mut Statement| { s.environments.remove(0); }, "environments: ")]
#[case::a_bureau_one_unit_second_short(|s: &mut Statement| s.bureaus[1].totals.usage[0].unit_seconds -= 1, "bureaus: ")]
#[case::an_extra_bureau(|s: &mut Statement| {
    let mut extra = s.bureaus[0].clone();
    extra.bureau = "ghost".to_owned();
    s.bureaus.push(extra);
}, "bureaus: ghost")]
#[case::a_bureau_listed_twice(|s: &mut Statement| {
    let again = s.bureaus[0].clone();
    s.bureaus.push(again);
}, "bureaus: ")]
#[case::the_platform_off_by_a_fen(|s: &mut Statement| s.platform.amount += d("0.01"), "platform")]
#[case::the_platform_one_unit_second_over(|s: &mut Statement| s.platform.usage[2].unit_seconds += 1, "platform")]
fn a_total_that_is_not_the_sum_of_its_parts_is_reported(
    #[case] tamper: fn(&mut Statement),
    #[case] scope: &str,
) {
    let calendar = Calendar::default();
    let ledger = busy_ledger(&calendar);
    let mut statement =
        Statement::build(month("2026-11"), &calendar, &schedule(), &ledger).expect("statement");
    tamper(&mut statement);
    let error = statement.check_conservation().expect_err("unbalanced");
    assert_eq!(error.metric_label(), "unbalanced");
    assert!(
        error.to_string().contains(&format!("for {scope}")),
        "{error}"
    );
}

#[test]
fn a_double_counted_interval_is_caught_by_the_recount() {
    let calendar = Calendar::default();
    let ledger = busy_ledger(&calendar);
    let mut doubled = ledger.clone();
    doubled.push(ledger[17].clone());
    let statement =
        Statement::build(month("2026-11"), &calendar, &schedule(), &doubled).expect("statement");
    statement
        .check_conservation()
        .expect("internally consistent");
    let error = statement
        .check_against_usage(&ledger)
        .expect_err("double count");
    assert!(
        error.to_string().contains(ledger[17].environment()),
        "{error}"
    );
}

#[test]
fn a_lost_interval_is_caught_by_the_recount() {
    let calendar = Calendar::default();
    let ledger = busy_ledger(&calendar);
    let statement = Statement::build(month("2026-11"), &calendar, &schedule(), &ledger[1..])
        .expect("statement");
    assert!(statement.check_against_usage(&ledger).is_err());
}

#[test]
fn usage_before_the_first_rate_card_is_an_error_not_free() {
    let m = meter("wjw-prod", Resource::Cpu, Reserved, Tier::Gold);
    let calendar = Calendar::default();
    let early = [interval(
        &m,
        "2025-12-10T00:00:00Z",
        "2025-12-10T01:00:00Z",
        1_000,
    )];
    let error =
        Statement::build(month("2025-12"), &calendar, &schedule(), &early).expect_err("unpriced");
    assert_eq!(error.metric_label(), "no_rate_card_effective");
}

#[test]
fn usage_outside_the_month_is_ignored() {
    let m = meter("wjw-prod", Resource::Cpu, Reserved, Tier::Gold);
    let calendar = Calendar::default();
    let schedule = schedule();
    let mut builder =
        StatementBuilder::new(month("2026-10"), &calendar, &schedule).expect("builder");
    let september = interval(&m, "2026-09-30T15:00:00Z", "2026-09-30T16:00:00Z", 1_000);
    let november = interval(&m, "2026-10-31T16:00:00Z", "2026-10-31T17:00:00Z", 1_000);
    assert!(!builder.add(&september).expect("add"));
    assert!(!builder.add(&november).expect("add"));
    assert!(builder.finish().expect("statement").lines.is_empty());
}

#[test]
fn reserved_and_consumed_are_separate_lines() {
    let reserved = meter("wjw-prod", Resource::Cpu, Reserved, Tier::Gold);
    let consumed = meter("wjw-prod", Resource::Cpu, Consumed, Tier::Gold);
    let statement = build(
        "Asia/Shanghai",
        "2026-10",
        &[
            interval(&reserved, OCTOBER_START, OCTOBER_END, 4_000),
            interval(&consumed, OCTOBER_START, OCTOBER_END, 1_500),
        ],
    );
    let kinds: Vec<_> = statement
        .lines
        .iter()
        .map(|l| (l.key.meter.kind(), l.amount))
        .collect();
    assert_eq!(kinds, vec![(Reserved, d("238.08")), (Consumed, d("89.28"))]);
    assert_eq!(statement.platform.amount, d("327.36"));
}

#[test]
fn budgets_flag_bureaus_at_eighty_and_one_hundred_percent() {
    let cpu = |env| meter(env, Resource::Cpu, Reserved, Tier::Silver);
    let mut statement = build(
        "Asia/Shanghai",
        "2026-10",
        &[
            interval(&cpu("wjw-prod"), OCTOBER_START, OCTOBER_END, 1_000), // 37.20
            interval(&cpu("jtj-prod"), OCTOBER_START, OCTOBER_END, 1_000), // 37.20
            interval(&cpu("zgc-keyu-prod"), OCTOBER_START, OCTOBER_END, 1_000),
        ],
    );
    let budgets = BTreeMap::from([
        ("wjw".to_owned(), d("46.50")),
        ("jtj".to_owned(), d("37.20")),
        ("nobody".to_owned(), d("1.00")),
    ]);
    statement.flag_budgets(&budgets).expect("flags");
    let level = |b: &str| {
        statement
            .bureau(b)
            .and_then(|t| t.budget.as_ref())
            .map(|s| s.level)
    };
    assert_eq!(level("wjw"), Some(BudgetLevel::Warning));
    assert_eq!(level("jtj"), Some(BudgetLevel::Exceeded));
    assert_eq!(level("zgc-keyu"), None);
}

#[test]
fn a_statement_survives_json_with_exact_integers_and_stays_balanced() {
    let calendar = Calendar::default();
    let ledger = busy_ledger(&calendar);
    let statement =
        Statement::build(month("2026-11"), &calendar, &schedule(), &ledger).expect("statement");
    let json = serde_json::to_string(&statement).expect("serialize");
    assert!(json.contains(r#""month":"2026-11""#), "{json}");
    assert!(
        json.contains(r#""unitSeconds":""#),
        "unit-seconds travel as strings"
    );
    assert!(json.contains(r#""rateCard":"2026-11-15""#));
    let back: Statement = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, statement);
    back.check_conservation().expect("conserved");
}

#[test]
fn line_references_name_month_meter_and_rate_card() {
    let m = meter("wjw-prod", Resource::Cpu, Reserved, Tier::Gold);
    let key = LineKey {
        meter: m,
        rate_card: date("2026-11-15"),
    };
    assert_eq!(
        key.reference(month("2026-11")),
        "2026-11/wjw-prod/cpu/reserved/gold/2026-11-15"
    );
}

#[test]
fn pre_summed_usage_per_rate_period_prices_the_same_as_the_raw_intervals() {
    let calendar = Calendar::default();
    let ledger = busy_ledger(&calendar);
    let raw = Statement::build(month("2026-11"), &calendar, &schedule(), &ledger).expect("raw");
    let schedule = schedule();
    let mut builder = StatementBuilder::new(month("2026-11"), &calendar, &schedule).expect("new");
    let periods: Vec<TimeRange> = builder.periods().collect();
    let mut sums: BTreeMap<(Meter, usize), u128> = BTreeMap::new();
    for interval in &ledger {
        for (p, period) in periods.iter().enumerate() {
            *sums.entry((interval.meter().clone(), p)).or_default() +=
                interval.unit_seconds_within(period);
        }
    }
    for ((meter, p), unit_seconds) in sums.into_iter().filter(|(_, us)| *us > 0) {
        assert!(
            builder
                .add_usage(&meter, periods[p], unit_seconds)
                .expect("add")
        );
    }
    assert_eq!(builder.finish().expect("statement"), raw);
}

#[rstest]
#[case::across_the_rate_change("2026-11-14T15:00:00Z", "2026-11-14T17:00:00Z")]
#[case::across_the_month_end("2026-11-30T15:00:00Z", "2026-11-30T17:00:00Z")]
fn pre_summed_usage_must_lie_within_one_rate_period(#[case] start: &str, #[case] end: &str) {
    let calendar = Calendar::default();
    let schedule = schedule();
    let mut builder = StatementBuilder::new(month("2026-11"), &calendar, &schedule).expect("new");
    let m = meter("wjw-prod", Resource::Cpu, Reserved, Tier::Gold);
    let range = TimeRange::new(ts(start), ts(end)).expect("range");
    let error = builder
        .add_usage(&m, range, 7_200_000)
        .expect_err("straddles");
    assert_eq!(error.metric_label(), "unbalanced");
}

#[test]
fn pre_summed_usage_outside_the_month_is_ignored() {
    let calendar = Calendar::default();
    let schedule = schedule();
    let mut builder = StatementBuilder::new(month("2026-11"), &calendar, &schedule).expect("new");
    let m = meter("wjw-prod", Resource::Cpu, Reserved, Tier::Gold);
    let december = TimeRange::new(ts("2026-12-02T00:00:00Z"), ts("2026-12-03T00:00:00Z"));
    assert!(
        !builder
            .add_usage(&m, december.expect("range"), 1)
            .expect("add")
    );
    assert!(builder.finish().expect("statement").lines.is_empty());
}

#[test]
fn bureau_amounts_without_lines_equal_the_statements_bureau_totals_to_the_fen() {
    let calendar = Calendar::default();
    let ledger = busy_ledger(&calendar);
    let schedule = schedule();
    let statement =
        Statement::build(month("2026-11"), &calendar, &schedule, &ledger).expect("statement");
    let mut builder =
        StatementBuilder::new(month("2026-11"), &calendar, &schedule).expect("builder");
    for interval in &ledger {
        builder.add(interval).expect("add");
    }
    let amounts = builder.bureau_amounts().expect("amounts");
    assert_eq!(amounts, statement.bureau_amounts());
    assert_eq!(amounts.len(), 3);
    // Each bureau's lines were rounded one by one: the amounts are not the rounding of a sum.
    for (bureau, amount) in &amounts {
        let lines: Decimal = statement.lines_of(bureau).map(|l| l.amount).sum();
        assert_eq!(*amount, lines, "{bureau}");
        assert!(!amount.is_zero(), "{bureau}");
    }
}
