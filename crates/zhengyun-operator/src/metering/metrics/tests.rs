use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jiff::Timestamp;
use kube::runtime::reflector;
use kube::runtime::watcher::Event;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use serde_json::json;
use zhengyun_metering::{Calendar, Meter, Month, RateCard, RateSchedule, Statement};
use zhengyun_model::names::Tier;

use super::*;

fn d(text: &str) -> Decimal {
    Decimal::from_str_exact(text).expect("decimal")
}

fn render(metrics: &Arc<MeteringMetrics>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(metrics.clone()));
    let mut out = String::new();
    encode(&mut out, &registry).expect("encode");
    out
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// A populated metrics object: caches with one bureau and environment, a window of usage and
/// a month of costs.
pub(crate) fn sample() -> Arc<MeteringMetrics> {
    let metrics = Arc::new(MeteringMetrics::default());
    let (bureaus, mut bureau_writer) = reflector::store::<Bureau>();
    let (envs, mut env_writer) = reflector::store::<Environment>();
    let bureau: Bureau = serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "Bureau",
        "metadata": {"name": "wjw"},
        "spec": {"displayName": "区卫生健康委员会", "kind": "bureau",
                 "quota": {"cpu": "24", "memory": "96Gi"}, "monthlyBudget": "10.00"},
    }))
    .expect("bureau");
    let env: Environment = serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "Environment",
        "metadata": {"name": "wjw-prod"},
        "spec": {"bureau": "wjw", "purpose": "prod", "quota": {"cpu": "4"}},
        "status": {"admittedQuota": {"cpu": "4", "memory": "8Gi"},
                   "usage": {"cpu": "1500m", "memory": "2Gi"}},
    }))
    .expect("environment");
    bureau_writer.apply_watcher_event(&Event::Apply(bureau));
    env_writer.apply_watcher_event(&Event::Apply(env));
    metrics.watch(bureaus, envs);

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
    metrics.restore_usage(Vec::new());
    let mut sums = UsageSums::default();
    sums.add(&intervals);
    metrics.add_usage(sums, 2);
    metrics.set_checkpoint(end.as_second());
    let card = RateCard::new("2026-01-01".parse().expect("date"), "CNY")
        .with_prices(Tier::Gold, Resource::Cpu, d("2"), d("2"))
        .expect("price");
    let schedule = RateSchedule::new([card]).expect("schedule");
    let month = Month::new(2026, 11).expect("month");
    let statement =
        Statement::build(month, &Calendar::default(), &schedule, &intervals).expect("statement");
    let budgets = BTreeMap::from([("wjw".to_owned(), d("10.00"))]);
    let figures = crate::metering::budgets::month_figures(
        statement.month,
        &statement.bureau_amounts(),
        &[],
        &BTreeSet::from(["wjw".to_owned()]),
        &budgets,
        &Calendar::default(),
        Some(end),
    )
    .expect("figures");
    metrics.set_month_figures(figures, &budgets);
    let amounts = statement.bureau_amounts().into_iter().collect();
    let october = Month::new(2026, 10).expect("month");
    let by_month = BTreeMap::from([
        (october, BTreeMap::from([("wjw".to_owned(), d("100.25"))])),
        (month, amounts),
    ]);
    metrics.set_costs("CNY", &by_month, month);
    metrics.set_settled(&settlement());
    metrics
}

/// wjw borrowed (1.20 charged), jtj lent (0.84 credited), the platform kept 0.36.
fn settlement() -> Vec<zhengyun_metering::settlement::SettlementLine> {
    use zhengyun_metering::settlement::{Role, SettlementLine};
    let line = |role, bureau: Option<&str>, fen| {
        SettlementLine::new(
            role,
            bureau.map(str::to_owned),
            None,
            None,
            Resource::Cpu,
            3_600_000,
            fen,
        )
        .expect("line")
    };
    vec![
        line(Role::Burst, Some("wjw"), 120),
        line(Role::Lent, Some("jtj"), 84),
        line(Role::Platform, None, 36),
    ]
}

#[test]
fn counters_gauges_and_budgets_show_up_in_base_units() {
    let text = render(&sample());
    let v = |series: &str| value(&text, series).unwrap_or_else(|| panic!("{series}\n{text}"));
    assert_eq!(
        v(r#"zhengyun_reserved_resource_seconds_total{bureau="wjw",resource="cpu",unit="core"}"#),
        4.0 * 3600.0
    );
    assert_eq!(
        v(r#"zhengyun_consumed_resource_seconds_total{bureau="wjw",resource="cpu",unit="core"}"#),
        1.5 * 3600.0
    );
    // Reserved 4 core-hours and consumed 1.5, each at 2 CNY: 11.00 this month, plus October.
    assert_eq!(
        v(r#"zhengyun_cost_month_to_date{bureau="wjw",currency="CNY"}"#),
        11.0
    );
    assert_eq!(
        v(r#"zhengyun_cost_total{bureau="wjw",currency="CNY"}"#),
        111.25
    );
    // 11.00 of November's share of the budget, 9.86.
    assert_eq!(v(r#"zhengyun_budget_ratio{bureau="wjw"}"#), 1.1156);
    assert_eq!(
        v(r#"zhengyun_budget_status{bureau="wjw",level="exceeded"}"#),
        1.0
    );
    assert_eq!(v(r#"zhengyun_budget_status{bureau="wjw",level="ok"}"#), 0.0);
    assert_eq!(
        v(r#"zhengyun_quota_hard{bureau="wjw",resource="cpu",unit="core"}"#),
        24.0
    );
    assert_eq!(
        v(
            r#"zhengyun_quota_admitted{bureau="wjw",environment="wjw-prod",resource="memory",unit="byte"}"#
        ),
        8.0 * 1024.0 * 1024.0 * 1024.0
    );
    assert_eq!(
        v(r#"zhengyun_quota_used{bureau="wjw",environment="wjw-prod",resource="cpu",unit="core"}"#),
        1.5
    );
    assert_eq!(v("zhengyun_metering_intervals_total"), 2.0);
    // Borrowing settled this month: the borrower's charge, the lender's credit (positive) and
    // the platform's share.
    assert_eq!(
        v(r#"zhengyun_burst_charges_month_to_date{bureau="wjw",currency="CNY"}"#),
        1.2
    );
    assert_eq!(
        v(r#"zhengyun_lent_credits_month_to_date{bureau="jtj",currency="CNY"}"#),
        0.84
    );
    assert_eq!(
        v(r#"zhengyun_burst_platform_share_month_to_date{currency="CNY"}"#),
        0.36
    );
    assert!(!text.contains("pod="), "no pod-level labels: {text}");
}

#[test]
fn restoring_from_the_ledger_replaces_the_counters() {
    let metrics = sample();
    metrics.restore_usage(vec![UsageCounter {
        bureau: "jtj".into(),
        resource: Resource::Memory,
        kind: UsageKind::Reserved,
        unit_seconds: 3 << 30,
    }]);
    let text = render(&metrics);
    assert_eq!(
        value(
            &text,
            r#"zhengyun_reserved_resource_seconds_total{bureau="jtj",resource="memory",unit="byte"}"#
        ),
        Some(f64::from(3u32 << 30))
    );
    assert!(!text.contains(r#"zhengyun_reserved_resource_seconds_total{bureau="wjw""#));
}

/// Metric names (as sampled) and each one's label names, from the classic exposition of `sample`.
/// The operator's own availability metrics as exported, with one minute measured.
fn exported_operator_metrics() -> String {
    let operator = crate::metrics::Metrics::default();
    operator.availability_minute(
        &zhengyun_store::availability::Presence {
            environment: "wjw-prod".to_owned(),
            bureau: "wjw".to_owned(),
            tier: zhengyun_model::names::Tier::Gold,
        },
        true,
    );
    operator.availability_objective(zhengyun_model::names::Tier::Gold, 99_950);
    operator.render_prometheus()
}

fn exported() -> BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(sample()));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).expect("encode");
    text.push_str(&exported_operator_metrics());
    let mut metrics: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = metrics.entry(line[..name_end].to_owned()).or_default();
        if let Some(set) = line[name_end..]
            .strip_prefix('{')
            .and_then(|l| l.split_once('}'))
        {
            for pair in set.0.split(',') {
                if let Some((label, _)) = pair.split_once('=') {
                    labels.insert(label.to_owned());
                }
            }
        }
    }
    metrics
}

fn panels(value: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
    for panel in value["panels"].as_array().into_iter().flatten() {
        out.push(panel.clone());
        panels(panel, out);
    }
}

/// Identifiers of `expr` that name Zhengyun metrics.
fn metric_names(expr: &str) -> Vec<&str> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("zhengyun_"))
        .collect()
}

/// Label names used in `by (…)` clauses and in `{…}` matchers of `expr`.
fn label_names(expr: &str) -> Vec<String> {
    let mut labels = Vec::new();
    for (_, rest) in expr
        .match_indices("by (")
        .map(|(i, _)| ((), &expr[i + 4..]))
    {
        let list = rest.split(')').next().unwrap_or_default();
        labels.extend(list.split(',').map(|l| l.trim().to_owned()));
    }
    for part in expr.split('{').skip(1) {
        let matchers = part.split('}').next().unwrap_or_default();
        for matcher in matchers.split(',') {
            let name = matcher
                .split(['=', '!', '~'])
                .next()
                .unwrap_or_default()
                .trim();
            labels.push(name.to_owned());
        }
    }
    labels.retain(|l| !l.is_empty());
    labels
}

fn balanced(expr: &str) -> bool {
    let mut stack = Vec::new();
    let mut quoted = false;
    for c in expr.chars() {
        match c {
            '"' => quoted = !quoted,
            _ if quoted => {}
            '(' | '{' | '[' => stack.push(c),
            ')' | '}' | ']' => {
                let open = stack.pop();
                let matches = matches!(
                    (open, c),
                    (Some('('), ')') | (Some('{'), '}') | (Some('['), ']')
                );
                if !matches {
                    return false;
                }
            }
            _ => {}
        }
    }
    stack.is_empty() && !quoted
}

#[test]
fn the_finance_dashboard_queries_only_metrics_and_labels_the_operator_exports() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../dashboards/zhengyun-finance.json"
    );
    let text = std::fs::read_to_string(path).expect("dashboards/zhengyun-finance.json");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(dashboard["uid"], "zhengyun-finance");
    let exported = exported();
    let mut all = Vec::new();
    panels(&dashboard, &mut all);
    assert!(all.len() >= 4, "a dashboard with panels");
    let mut queried = std::collections::BTreeSet::new();
    let template = dashboard["templating"]["list"][1]["definition"]
        .as_str()
        .expect("the bureau variable's query");
    let mut exprs: Vec<(String, String)> = vec![("bureau variable".into(), template.to_owned())];
    for panel in &all {
        let title = panel["title"]
            .as_str()
            .expect("every panel has a title")
            .to_owned();
        assert!(panel["datasource"].is_object(), "{title}: a datasource");
        let targets = panel["targets"]
            .as_array()
            .expect("every panel has targets");
        assert!(!targets.is_empty(), "{title}: at least one query");
        for target in targets {
            let expr = target["expr"].as_str().expect("a PromQL expression");
            exprs.push((title.clone(), expr.to_owned()));
        }
    }
    for (title, expr) in &exprs {
        assert!(balanced(expr), "{title}: unbalanced brackets in {expr}");
        let names = metric_names(expr);
        assert!(
            !names.is_empty(),
            "{title}: queries no Zhengyun metric: {expr}"
        );
        let mut labels = std::collections::BTreeSet::new();
        for name in names {
            let known = exported
                .get(name)
                .unwrap_or_else(|| panic!("{title}: {name} is not exported by the operator"));
            labels.extend(known.iter().cloned());
            queried.insert(name.to_owned());
        }
        for label in label_names(expr) {
            assert!(
                labels.contains(&label),
                "{title}: no metric of {expr} has label {label}"
            );
        }
    }
    // Finance's four questions are all on it.
    for needed in [
        "zhengyun_cost_month_to_date",
        "zhengyun_budget_ratio",
        "zhengyun_reserved_resource_seconds_total",
        "zhengyun_consumed_resource_seconds_total",
        "zhengyun_quota_admitted",
        "zhengyun_quota_used",
    ] {
        assert!(
            queried.contains(needed),
            "the dashboard does not show {needed}"
        );
    }
}

#[rstest::rstest]
#[case::by_clause("sum by (bureau, environment) (x)", &["bureau", "environment"])]
#[case::matchers(r#"x{bureau=~"$bureau",resource="cpu",level!="ok"}"#, &["bureau", "resource", "level"])]
fn dashboard_label_extraction(#[case] expr: &str, #[case] expected: &[&str]) {
    assert_eq!(label_names(expr), expected);
}

/// The current month's figures of `sample()` with a credit of 2.00 booked to the month.
fn with_month_figures() -> Arc<MeteringMetrics> {
    use crate::metering::budgets::{BureauFigures, MonthFigures};
    let metrics = sample();
    let budgets = BTreeMap::from([("wjw".to_owned(), d("10.00"))]);
    let status = zhengyun_metering::budget_status(d("9.86"), d("9.00")).expect("status");
    let figures = MonthFigures {
        month: Some(Month::new(2026, 11).expect("month")),
        bureaus: BTreeMap::from([(
            "wjw".to_owned(),
            BureauFigures {
                cost_to_date: d("9.00"),
                forecast: Some(d("66.87")),
                budget: Some(status),
            },
        )]),
    };
    metrics.set_month_figures(figures, &budgets);
    metrics
}

#[test]
fn the_months_budget_cost_to_date_and_forecast_are_exported_and_drive_the_level() {
    let text = render(&with_month_figures());
    let v = |series: &str| value(&text, series).unwrap_or_else(|| panic!("{series}\n{text}"));
    assert_eq!(
        v(r#"zhengyun_budget_monthly{bureau="wjw",currency="CNY"}"#),
        10.0
    );
    assert_eq!(
        v(r#"zhengyun_budget_month{bureau="wjw",currency="CNY"}"#),
        9.86
    );
    assert_eq!(
        v(r#"zhengyun_cost_to_date{bureau="wjw",currency="CNY"}"#),
        9.0
    );
    assert_eq!(
        v(r#"zhengyun_cost_forecast_month_end{bureau="wjw",currency="CNY"}"#),
        66.87
    );
    // 9.00 of 9.86 (the credit included): warning, not the statement's exceeded.
    assert_eq!(v(r#"zhengyun_budget_ratio{bureau="wjw"}"#), 0.9127);
    assert_eq!(
        v(r#"zhengyun_budget_status{bureau="wjw",level="warning"}"#),
        1.0
    );
}

#[test]
fn every_metric_the_budget_and_availability_alerts_use_is_exported() {
    let mut text = render(&with_month_figures());
    text.push_str(&exported_operator_metrics());
    let rules = include_str!("../../../../../helm/zhengyun/files/budget-alerts.yaml");
    let mut used = BTreeSet::new();
    for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("zhengyun_") && !word.starts_with("zhengyun_budgets") {
            used.insert(word);
        }
    }
    assert!(used.len() >= 3, "{used:?}");
    for metric in used {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{metric}{{"))),
            "the alerts use {metric}, which the operator does not export"
        );
    }
}

#[test]
fn a_replica_that_stops_leading_exports_no_finance_figures() {
    let metrics = with_month_figures();
    metrics.stop_leading();
    let text = render(&metrics);
    for family in [
        "zhengyun_cost_month_to_date{",
        "zhengyun_cost_to_date{",
        "zhengyun_cost_forecast_month_end{",
        "zhengyun_budget_month{",
        "zhengyun_budget_monthly{",
        "zhengyun_cost_total{",
        "zhengyun_budget_ratio{",
        "zhengyun_quota_hard{",
        "zhengyun_quota_admitted{",
        "zhengyun_reserved_resource_seconds_total{",
        "\nzhengyun_metering_checkpoint_timestamp_seconds ",
    ] {
        assert!(!text.contains(family), "{family} still exported:\n{text}");
    }
}

#[test]
fn the_cost_counter_never_goes_down() {
    let metrics = sample();
    let series = r#"zhengyun_cost_total{bureau="wjw",currency="CNY"}"#;
    assert_eq!(value(&render(&metrics), series), Some(111.25));
    // November fails to price (or a cheaper card arrives): October alone is less.
    let november = Month::new(2026, 11).expect("month");
    let october = Month::new(2026, 10).expect("month");
    let less = BTreeMap::from([(october, BTreeMap::from([("wjw".to_owned(), d("100.25"))]))]);
    metrics.set_costs("CNY", &less, november);
    assert_eq!(value(&render(&metrics), series), Some(111.25));
    let more = BTreeMap::from([(october, BTreeMap::from([("wjw".to_owned(), d("120.00"))]))]);
    metrics.set_costs("CNY", &more, november);
    assert_eq!(value(&render(&metrics), series), Some(120.0));
}

#[test]
fn an_environment_not_admitted_yet_has_no_quota_samples_even_with_usage() {
    let metrics = Arc::new(MeteringMetrics::default());
    let (bureaus, _) = reflector::store::<Bureau>();
    let (envs, mut env_writer) = reflector::store::<Environment>();
    for (name, status) in [
        (
            "wjw-prod",
            json!({"admittedQuota": {"cpu": "4"}, "usage": {"cpu": "1"}}),
        ),
        ("wjw-dev", json!({"usage": {"cpu": "500m"}})),
    ] {
        let env: Environment = serde_json::from_value(json!({
            "apiVersion": "zhengyun.io/v1alpha1", "kind": "Environment",
            "metadata": {"name": name},
            "spec": {"bureau": "wjw", "purpose": "prod", "quota": {"cpu": "4"}},
            "status": status,
        }))
        .expect("environment");
        env_writer.apply_watcher_event(&Event::Apply(env));
    }
    metrics.watch(bureaus, envs);
    let text = render(&metrics);
    let series = |family: &str, env: &str| {
        format!(r#"{family}{{bureau="wjw",environment="{env}",resource="cpu",unit="core"}}"#)
    };
    assert_eq!(
        value(&text, &series("zhengyun_quota_admitted", "wjw-prod")),
        Some(4.0)
    );
    assert_eq!(
        value(&text, &series("zhengyun_quota_used", "wjw-prod")),
        Some(1.0)
    );
    assert!(!text.contains(r#"environment="wjw-dev""#), "{text}");
}
