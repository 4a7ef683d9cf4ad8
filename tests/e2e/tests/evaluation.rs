//! Performance evaluation through the API on the devcluster: efficiency and idle cost ranked by
//! bureau, and right-sizing from a consumed history written into the API's own ledger, turned
//! into a resize of the real Environment in one call.
//!
//! The figures are computed by hand from the sample rate card (gold: CPU listed at 0.12 a
//! core-hour, 0.06 to reserve; memory at 0.015 a GiB-hour, 0.0075 to reserve).

use axum::http::{Method, StatusCode};
use jiff::{SignedDuration, Timestamp};
use kube::Api as KubeApi;
use rust_decimal::Decimal;
use serde_json::json;
use zhengyun_contract::{
    DailyCostsView, EfficiencyReport, RightSizingView, evaluation::DayCostView,
};
use zhengyun_e2e::api::Api;
use zhengyun_e2e::tenants::{
    apply_sample_rate_card, bureau_code, create_bureau, create_ready_environment,
};
use zhengyun_e2e::{client, clock};
use zhengyun_metering::{Meter, UsageInterval, UsageKind};
use zhengyun_model::{
    crd::{Bureau, Environment},
    names::Tier,
    quantity::{Quantity, Resource},
};
use zhengyun_store::Role;

const HOUR: SignedDuration = SignedDuration::from_hours(1);
const GIB: u64 = 1 << 30;

/// `hours` hourly intervals of `meter` ending at `end`, the amount of each hour given by
/// `amount(hours before end)`.
fn hourly(
    meter: &Meter,
    end: Timestamp,
    hours: i64,
    uid: &str,
    amount: impl Fn(i64) -> u64,
) -> anyhow::Result<Vec<UsageInterval>> {
    (1..=hours)
        .map(|back| {
            let from = end - HOUR * i32::try_from(back)?;
            Ok(
                UsageInterval::new(meter.clone(), from, from + HOUR, amount(back))?
                    .with_environment_uid(uid),
            )
        })
        .collect()
}

fn meter(bureau: &str, env: &str, resource: Resource, kind: UsageKind) -> anyhow::Result<Meter> {
    Ok(Meter::new(bureau, env, resource, kind, Tier::Gold)?)
}

fn base_units(quantity: &str, resource: Resource) -> anyhow::Result<u64> {
    Ok(Quantity::new(quantity).parse(resource.unit())?)
}

/// Two bureaus of the test's own on an API with a ledger of its own.
struct Two {
    api: Api,
    /// Reserved 4 gold cores and used 1.
    busy: String,
    /// Reserved 2 gold cores and used none.
    idle: String,
    start: Timestamp,
    end: Timestamp,
}

/// Two new bureaus (with `budget` a month, if given), and their usage over ten hours ending
/// two days ago: the busy bureau owes 2.40 to hold 4 gold cores (0.06 a core-hour) and 0.60 to
/// use one, the idle one 1.20 to hold 2 and uses none.
async fn two_bureaus(kube: &kube::Client, budget: Option<&str>) -> anyhow::Result<Two> {
    apply_sample_rate_card(kube).await?;
    let busy = bureau_code("czj");
    let idle = bureau_code("jyj");
    for (code, name) in [(&busy, "区财政局"), (&idle, "区教育局")] {
        let mut spec = json!({"displayName": name, "kind": "bureau", "quota": {"cpu": "8"}});
        if let Some(budget) = budget {
            spec["monthlyBudget"] = json!(budget);
        }
        create_bureau(kube, code, spec).await?;
    }
    let api = Api::start().await?;
    let end = clock().now_second() - HOUR * 48;
    let start = end - HOUR * 10;
    let mut usage = Vec::new();
    for (code, reserved, consumed) in [(&busy, 4000, 1000), (&idle, 2000, 0)] {
        let env = format!("{code}-prod");
        usage.extend(hourly(
            &meter(code, &env, Resource::Cpu, UsageKind::Reserved)?,
            end,
            10,
            "uid",
            |_| reserved,
        )?);
        if consumed > 0 {
            usage.extend(hourly(
                &meter(code, &env, Resource::Cpu, UsageKind::Consumed)?,
                end,
                10,
                "uid",
                |_| consumed,
            )?);
        }
    }
    api.store.record_intervals(&usage).await?;
    Ok(Two {
        api,
        busy,
        idle,
        start,
        end,
    })
}

#[tokio::test]
async fn right_sizing_recommends_the_hand_computed_quota_and_a_bureau_applies_it_in_one_call()
-> anyhow::Result<()> {
    let kube = client().await?;
    apply_sample_rate_card(&kube).await?;
    let code = bureau_code("wjw");
    create_bureau(
        &kube,
        &code,
        json!({"displayName": "区卫生健康委员会", "kind": "bureau",
               "quota": {"cpu": "16", "memory": "32Gi"}}),
    )
    .await?;
    let name = format!("{code}-prod");
    create_ready_environment(
        &kube,
        &name,
        json!({"bureau": code, "purpose": "prod", "tier": "gold",
               "quota": {"cpu": "8", "memory": "16Gi"}}),
    )
    .await?;
    let envs: KubeApi<Environment> = KubeApi::all(kube.clone());
    let uid = envs.get(&name).await?.metadata.uid.unwrap_or_default();

    // Twenty days of history up to now. CPU: 8 cores reserved; 3 cores used for the first 36
    // hours, 6 for the next 12, then 1 core for the last 18 days. 95 % of 480 hours is 456:
    // 432 hours at 1 core are not enough, 468 at or below 3 cores are, so the 95th percentile
    // is 3 cores; + 20 % = 3.6 cores. Memory: 16 GiB reserved, 2 GiB used throughout:
    // 2.4 GiB, rounded up to 256 MiB steps = 2560 MiB. No storage or GPUs reserved: no
    // recommendation for them.
    let api = Api::start().await?;
    let now = clock().now_second();
    let mut history = hourly(
        &meter(&code, &name, Resource::Cpu, UsageKind::Reserved)?,
        now,
        480,
        &uid,
        |_| 8000,
    )?;
    history.extend(hourly(
        &meter(&code, &name, Resource::Cpu, UsageKind::Consumed)?,
        now,
        480,
        &uid,
        |back| match back {
            445..=480 => 3000,
            433..=444 => 6000,
            _ => 1000,
        },
    )?);
    history.extend(hourly(
        &meter(&code, &name, Resource::Memory, UsageKind::Reserved)?,
        now,
        480,
        &uid,
        |_| 16 * GIB,
    )?);
    history.extend(hourly(
        &meter(&code, &name, Resource::Memory, UsageKind::Consumed)?,
        now,
        480,
        &uid,
        |_| 2 * GIB,
    )?);
    // An earlier environment of the same name, busy at 8 cores: not this one's history.
    history.extend(hourly(
        &meter(&code, &name, Resource::Cpu, UsageKind::Consumed)?,
        now - HOUR * 24 * 25,
        100,
        "an-earlier-uid",
        |_| 8000,
    )?);
    api.store.record_intervals(&history).await?;

    let viewer = api.token(Role::BureauViewer, Some(&code)).await?;
    let admin = api.token(Role::BureauAdmin, Some(&code)).await?;
    let path = format!("/api/v1/bureaus/{code}/environments/{name}/rightsizing");
    let answer = api.call(Method::GET, &path, Some(&viewer), None).await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let view: RightSizingView = answer.decode()?;
    let row = |resource: &str| {
        view.resources
            .iter()
            .find(|r| r.resource == resource)
            .cloned()
            .expect("a row per right-sized resource")
    };
    let cpu = row("cpu");
    assert_eq!(cpu.history_days, "20", "{cpu:?}");
    assert_eq!(
        base_units(cpu.percentile_used.as_deref().unwrap_or("?"), Resource::Cpu)?,
        3000
    );
    assert_eq!(
        base_units(cpu.peak.as_deref().unwrap_or("?"), Resource::Cpu)?,
        6000
    );
    assert_eq!(
        base_units(cpu.recommended.as_deref().unwrap_or("?"), Resource::Cpu)?,
        3600
    );
    // 4.4 cores × 730 hours × 0.06.
    assert_eq!(cpu.monthly_saving.as_deref(), Some("192.72"));
    let memory = row("memory");
    assert_eq!(
        base_units(
            memory.recommended.as_deref().unwrap_or("?"),
            Resource::Memory
        )?,
        2560 << 20
    );
    // 13.5 GiB × 730 hours × 0.0075 = 73.9125.
    assert_eq!(memory.monthly_saving.as_deref(), Some("73.91"));
    let storage = row("storage");
    assert_eq!(storage.recommended, None);
    assert!(
        storage
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("7 needed")),
        "{storage:?}"
    );
    assert_eq!(view.monthly_saving, "266.63");
    assert_eq!(view.currency, "CNY");

    // A viewer may look, not resize.
    let refused = api.call(Method::POST, &path, Some(&viewer), None).await?;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    // The admin resizes in one call; the Environment now asks for the recommendation.
    let applied = api.call(Method::POST, &path, Some(&admin), None).await?;
    assert_eq!(applied.status, StatusCode::OK, "{}", applied.body);
    let quota = envs.get(&name).await?.spec.quota;
    let amount = |resource: Resource| -> anyhow::Result<u64> {
        Ok(quota
            .get(resource)
            .map(|q| q.parse(resource.unit()))
            .transpose()?
            .unwrap_or(0))
    };
    assert_eq!(amount(Resource::Cpu)?, 3600);
    assert_eq!(amount(Resource::Memory)?, 2560 << 20);
    let audited = api.audit_results("environment.rightsize").await?;
    assert_eq!(
        audited,
        vec![
            "403 Forbidden".to_owned(),
            "200 OK: recommended quota, saving 266.63 CNY a month".to_owned()
        ]
    );

    // An environment with two days of history has no recommendation to apply.
    let young = format!("{code}-test");
    create_ready_environment(
        &kube,
        &young,
        json!({"bureau": code, "purpose": "test", "tier": "gold",
               "quota": {"cpu": "2", "memory": "4Gi"}}),
    )
    .await?;
    let young_uid = envs.get(&young).await?.metadata.uid.unwrap_or_default();
    api.store
        .record_intervals(&hourly(
            &meter(&code, &young, Resource::Cpu, UsageKind::Reserved)?,
            now,
            48,
            &young_uid,
            |_| 2000,
        )?)
        .await?;
    let young_path = format!("/api/v1/bureaus/{code}/environments/{young}/rightsizing");
    let refused = api
        .call(Method::POST, &young_path, Some(&admin), None)
        .await?;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(
        refused.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("2 days of history")),
        "{}",
        refused.body
    );

    for env in [&name, &young] {
        envs.delete(env, &Default::default()).await?;
    }
    Ok(())
}

#[tokio::test]
async fn efficiency_ranks_bureaus_by_idle_cost_and_a_bureau_sees_only_its_own() -> anyhow::Result<()>
{
    let kube = client().await?;
    let Two {
        api,
        busy,
        idle,
        start,
        end,
    } = two_bureaus(&kube, None).await?;
    let finance = api.token(Role::Finance, None).await?;
    let query = format!("from={start}&to={end}");
    let answer = api
        .call(
            Method::GET,
            &format!("/api/v1/efficiency?{query}"),
            Some(&finance),
            None,
        )
        .await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let report: EfficiencyReport = answer.decode()?;
    let ranked: Vec<(usize, &str, &str, &str, Option<&str>)> = report
        .bureaus
        .iter()
        .map(|b| {
            (
                b.rank,
                b.bureau.as_str(),
                b.reservation_cost.as_str(),
                b.idle_cost.as_str(),
                b.efficiency.as_deref(),
            )
        })
        .collect();
    // Busy: 40 core-hours reserved at 0.06 = 2.40, 30 idle = 1.80, a quarter used.
    // Idle: 20 core-hours = 1.20, all idle.
    assert_eq!(
        ranked,
        vec![
            (1, busy.as_str(), "2.40", "1.80", Some("0.25")),
            (2, idle.as_str(), "1.20", "1.20", Some("0")),
        ]
    );
    let env = &report.environments[0];
    assert_eq!(env.resources[0].reserved_unit_hours, "40.000000");
    assert_eq!(env.resources[0].idle_unit_hours, "30.000000");

    // A bureau sees itself only, and is refused another.
    let own = api.token(Role::BureauViewer, Some(&idle)).await?;
    let mine = api
        .call(
            Method::GET,
            &format!("/api/v1/efficiency?{query}"),
            Some(&own),
            None,
        )
        .await?;
    let mine: EfficiencyReport = mine.decode()?;
    assert_eq!(mine.bureaus.len(), 1);
    assert_eq!(mine.bureaus[0].bureau, idle);
    let other = api
        .call(
            Method::GET,
            &format!("/api/v1/efficiency?{query}&bureau={busy}"),
            Some(&own),
            None,
        )
        .await?;
    assert_eq!(other.status, StatusCode::FORBIDDEN, "{}", other.body);

    // CSV: one row per environment and resource, with the rank.
    let (status, csv) = api
        .raw(
            Method::GET,
            &format!("/api/v1/efficiency?{query}"),
            &finance,
            &[("accept", "text/csv")],
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{csv}");
    let lines: Vec<&str> = csv.trim_start_matches('\u{feff}').lines().collect();
    assert!(
        lines[0].starts_with("rank,bureau,environment,resource"),
        "{csv}"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[1].starts_with(&format!("1,{busy},{busy}-prod,cpu")),
        "{csv}"
    );

    // A month and a range together are refused.
    let both = api
        .call(
            Method::GET,
            &format!("/api/v1/efficiency?{query}&month=2026-11"),
            Some(&finance),
            None,
        )
        .await?;
    assert_eq!(
        both.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        both.body
    );

    let bureaus: KubeApi<Bureau> = KubeApi::all(kube);
    for code in [&busy, &idle] {
        bureaus.delete(code, &Default::default()).await?;
    }
    Ok(())
}

#[tokio::test]
async fn costs_by_day_price_each_day_as_the_statement_does_and_a_bureau_sees_only_its_own()
-> anyhow::Result<()> {
    let kube = client().await?;
    let Two {
        api,
        busy,
        idle,
        start,
        end,
    } = two_bureaus(&kube, None).await?;
    let finance = api.token(Role::Finance, None).await?;
    let query = format!("from={start}&to={end}");
    let answer = api
        .call(
            Method::GET,
            &format!("/api/v1/bureaus/{busy}/costs?{query}"),
            Some(&finance),
            None,
        )
        .await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let costs: DailyCostsView = answer.decode()?;
    // Ten hours may straddle midnight: one or two days, in order, adding up to the hand
    // figures (4 cores held at 0.06 = 0.24 an hour, 1 used at 0.06 = 0.06 an hour).
    assert!(matches!(costs.days.len(), 1 | 2), "{costs:?}");
    assert!(costs.days.windows(2).all(|w| w[0].date < w[1].date));
    let sum = |part: fn(&DayCostView) -> &str| -> anyhow::Result<Decimal> {
        costs
            .days
            .iter()
            .map(|d| Ok(part(d).parse::<Decimal>()?))
            .sum()
    };
    // Each kind of a day is rounded to the fen on its own, half to even. Two days whose whole
    // is an even number of fen still add up to it exactly: their fractions of a fen add up to
    // one, so one rounds up and the other down, and two exact halves then lie on either side
    // of an even fen.
    assert_eq!(sum(|d| &d.reserved)?, Decimal::new(240, 2));
    assert_eq!(sum(|d| &d.consumed)?, Decimal::new(60, 2));
    assert_eq!(sum(|d| &d.amount)?, Decimal::new(300, 2));
    // Every hour of a day costs four times as much to hold as to use, to within the rounding
    // of each to the fen where midnight splits the hours (1.79 held against 0.45 used).
    let fen = Decimal::new(1, 2);
    for day in &costs.days {
        let reserved: Decimal = day.reserved.parse()?;
        let consumed: Decimal = day.consumed.parse()?;
        let amount: Decimal = day.amount.parse()?;
        assert!(
            (reserved - consumed * Decimal::from(4)).abs() <= fen * Decimal::from(2),
            "{day:?}"
        );
        assert_eq!(amount, reserved + consumed, "{day:?}");
    }

    // A bureau sees its own days and is refused another's; a range over a year is refused.
    let own = api.token(Role::BureauViewer, Some(&idle)).await?;
    let mine = api
        .call(
            Method::GET,
            &format!("/api/v1/bureaus/{idle}/costs?{query}"),
            Some(&own),
            None,
        )
        .await?;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.body);
    let other = api
        .call(
            Method::GET,
            &format!("/api/v1/bureaus/{busy}/costs?{query}"),
            Some(&own),
            None,
        )
        .await?;
    other.assert_problem(StatusCode::FORBIDDEN, "another bureau's days");
    let long = api
        .call(
            Method::GET,
            &format!(
                "/api/v1/bureaus/{busy}/costs?from={}&to={end}",
                end - SignedDuration::from_hours(24 * 400)
            ),
            Some(&finance),
            None,
        )
        .await?;
    long.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "400 days");

    // CSV: a header and a row per day.
    let (status, csv) = api
        .raw(
            Method::GET,
            &format!("/api/v1/bureaus/{busy}/costs?{query}"),
            &finance,
            &[("accept", "text/csv")],
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{csv}");
    let lines: Vec<&str> = csv.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(lines[0], "bureau,date,reserved,consumed,amount,currency");
    assert_eq!(lines.len(), costs.days.len() + 1, "{csv}");

    let bureaus: KubeApi<Bureau> = KubeApi::all(kube);
    for code in [&busy, &idle] {
        bureaus.delete(code, &Default::default()).await?;
    }
    Ok(())
}

#[tokio::test]
async fn the_annual_evaluation_adds_up_spending_credits_and_idle_cost_and_ranks_the_bureaus()
-> anyhow::Result<()> {
    use zhengyun_contract::AnnualEvaluation;
    use zhengyun_store::availability::{MeasuredMinute, Presence, Slice};
    let kube = client().await?;
    let Two {
        api,
        busy,
        idle,
        start,
        end,
    } = two_bureaus(&kube, Some("100.00")).await?;
    let year = zhengyun_metering::Calendar::default()
        .month_of(end - SignedDuration::from_secs(1))
        .year();
    // Ten measured minutes of the busy bureau's environment, one lost to a node: 90 %, below
    // gold's 95 % step, so its month is credited 100 % of its 3.00.
    let busy_env = format!("{busy}-prod");
    let presence = Presence {
        environment: busy_env.clone(),
        bureau: busy.clone(),
        tier: Tier::Gold,
    };
    let first = Timestamp::from_second(start.as_second().div_euclid(60) * 60)?;
    let minutes: Vec<MeasuredMinute> = (0..10)
        .map(|i| {
            let minute = first + SignedDuration::from_mins(i);
            MeasuredMinute {
                minute,
                maintenance: false,
                opened: if i == 0 {
                    vec![presence.clone()]
                } else {
                    Vec::new()
                },
                closed: Vec::new(),
                slices: if i == 4 {
                    vec![Slice {
                        of: presence.clone(),
                        minute,
                        counted: true,
                        cause: "node-not-ready".to_owned(),
                        detail: "deployment web: 0 of 2 available".to_owned(),
                    }]
                } else {
                    Vec::new()
                },
            }
        })
        .collect();
    api.store
        .record_service_levels(first, &zhengyun_model::crd::ServiceLevels::default())
        .await?;
    api.store
        .record_availability(None, &minutes, first + SignedDuration::from_mins(10))
        .await?;

    let finance = api.token(Role::Finance, None).await?;
    let path = format!("/api/v1/evaluation?year={year}");
    let answer = api.call(Method::GET, &path, Some(&finance), None).await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let report: AnnualEvaluation = answer.decode()?;
    let of = |code: &str| {
        report
            .bureaus
            .iter()
            .find(|b| b.bureau == code)
            .cloned()
            .expect("the bureau in the report")
    };
    let (b, i) = (of(&busy), of(&idle));
    assert_eq!((b.idle_rank, i.idle_rank), (1, 2));
    assert_eq!(b.display_name.as_deref(), Some("区财政局"));
    // 3.00 of charges credited in full; the other owes its 1.20.
    assert_eq!(
        (b.spent.as_str(), b.service_credits.as_str()),
        ("0.00", "-3.00")
    );
    assert_eq!(i.spent, "1.20");
    assert_eq!(
        (b.idle_cost.as_str(), b.efficiency.as_deref()),
        ("1.80", Some("0.25"))
    );
    let month = zhengyun_metering::Calendar::default()
        .month_of(end - SignedDuration::from_secs(1))
        .to_string();
    let spent_in = |e: &zhengyun_contract::evaluation::BureauEvaluation| {
        e.months
            .iter()
            .find(|m| m.month == month)
            .map(|m| (m.spent.clone(), m.level.clone()))
    };
    assert_eq!(
        spent_in(&i),
        Some(("1.20".to_owned(), Some("ok".to_owned())))
    );
    let availability = &b.environments[0];
    assert_eq!(availability.environment, busy_env);
    assert_eq!(availability.availability.as_deref(), Some("90.000"));
    assert!(!availability.met);

    // A bureau sees itself only; CSV has its months, its year and the district.
    let own = api.token(Role::BureauViewer, Some(&idle)).await?;
    let mine: AnnualEvaluation = api
        .call(Method::GET, &path, Some(&own), None)
        .await?
        .decode()?;
    assert_eq!(mine.bureaus.len(), 1);
    assert_eq!(mine.bureaus[0].bureau, idle);
    assert_eq!(mine.district.spent, "1.20");
    let (status, csv) = api
        .raw(Method::GET, &path, &own, &[("accept", "text/csv")])
        .await?;
    assert_eq!(status, StatusCode::OK, "{csv}");
    let lines: Vec<&str> = csv.trim_start_matches('\u{feff}').lines().collect();
    assert!(lines[0].starts_with("year,period,bureau"), "{csv}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{year},{year},{idle},区教育局,"))),
        "{csv}"
    );
    assert!(
        lines.last().is_some_and(|l| l.contains(",district,全区,")),
        "{csv}"
    );

    // A year that has not begun is refused.
    let ahead = api
        .call(
            Method::GET,
            &format!("/api/v1/evaluation?year={}", year + 2),
            Some(&finance),
            None,
        )
        .await?;
    assert_eq!(
        ahead.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        ahead.body
    );

    let bureaus: KubeApi<Bureau> = KubeApi::all(kube);
    for code in [&busy, &idle] {
        bureaus.delete(code, &Default::default()).await?;
    }
    Ok(())
}
