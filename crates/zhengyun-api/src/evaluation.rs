//! Performance evaluation (绩效评估): efficiency and idle cost over any range, and right-sizing
//! recommendations that a bureau turns into a resize in one call.

use axum::{extract::State, http::HeaderMap};
use jiff::SignedDuration;
use rust_decimal::Decimal;
use serde::Deserialize;
use std::collections::BTreeMap;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use zhengyun_contract::{
    AnnualEvaluation, DailyCostsView, EnvironmentView, QuotaBody, RightSizingView,
    UpdateEnvironment,
    evaluation::{
        BureauEfficiencyView, DayCostView, EfficiencyReport, EnvironmentEfficiencyView,
        ResourceEfficiencyView, ResourceRecommendation,
    },
};
use zhengyun_metering::{
    Month, PriceUnit, TimeRange, UsageKind,
    efficiency::Efficiency,
    rightsizing::{
        self, MARGIN_PERCENT, MIN_HISTORY_DAYS, PERCENTILE, RIGHT_SIZED, Span, WINDOW_DAYS,
    },
    unit_hours,
};
use zhengyun_model::{crd::Environment, quantity::Quantity};

use crate::{
    context::{Audit, Caller},
    environments::{WRITERS, resize},
    extract::{Path, Query},
    problem::{ApiResult, Problem},
    reply::{JsonOrCsv, OrPending},
    state::AppState,
    statement_csv::{Charset, csv_table, download},
    statements::{READERS, bureaus, range_so_far, schedule, wants_csv},
};

mod annual;

/// The evaluation routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_efficiency))
        .routes(routes!(get_daily_costs))
        .routes(routes!(get_evaluation))
        .routes(routes!(get_rightsizing, apply_rightsizing))
}

/// Which range and bureaus to evaluate.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EfficiencyQuery {
    /// `YYYY-MM`: that whole month (platform time zone); not with `from`/`to`.
    #[param(example = "2026-11", pattern = r"^[0-9]{4}-[0-9]{2}$")]
    pub month: Option<String>,
    /// From this instant (RFC 3339); the start of this month if absent.
    pub from: Option<String>,
    /// To this instant (RFC 3339), exclusive; now if absent.
    pub to: Option<String>,
    /// Only this bureau (bureau roles always get only their own).
    pub bureau: Option<String>,
}

/// Efficiency and idle cost over a range: per environment and resource the reserved,
/// consumed and idle unit-hours, consumed ÷ reserved, what the reservation cost and what its
/// idle part cost at the reservation price; per environment and bureau the totals and the
/// share of the reservation cost that was used; the bureaus ranked by idle cost. Every bureau
/// for platform admins, finance and auditors; a bureau role sees its own.
#[utoipa::path(get, path = "/api/v1/efficiency", tag = "statements", params(EfficiencyQuery),
    responses(
        (status = 200, description = "The report (JSON), or CSV with `Accept: text/csv`",
            body = EfficiencyReport),
        (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn get_efficiency(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(query): Query<EfficiencyQuery>,
) -> ApiResult<JsonOrCsv<EfficiencyReport>> {
    caller.require(&READERS)?;
    if let Some(bureau) = &query.bureau {
        caller.require_bureau(bureau)?;
        state.read_bureau(bureau).await?;
    }
    let bureau = caller.bureau().map(str::to_owned).or(query.bureau.clone());
    let range = report_range(
        &state,
        query.month.as_deref(),
        query.from.as_deref(),
        query.to.as_deref(),
    )?;
    let schedule = schedule(&state).await?;
    let efficiency = state
        .store()
        .efficiency(range, bureau.as_deref(), &schedule, state.calendar())
        .await?;
    let report = report(&efficiency, range, schedule.currency())?;
    if wants_csv(&headers) {
        let name = bureau.as_deref().unwrap_or("district");
        return Ok(JsonOrCsv::Csv(download(
            &format!("zhengyun-efficiency-{name}.csv"),
            &efficiency_csv(&report),
            Charset::Utf8,
        )));
    }
    Ok(JsonOrCsv::Json(report))
}

/// Which days.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CostsQuery {
    /// `YYYY-MM`: that whole month (platform time zone); not with `from`/`to`.
    #[param(example = "2026-11", pattern = r"^[0-9]{4}-[0-9]{2}$")]
    pub month: Option<String>,
    /// From this instant (RFC 3339); the start of this month if absent.
    pub from: Option<String>,
    /// To this instant (RFC 3339), exclusive; now if absent.
    pub to: Option<String>,
}

/// The longest range priced day by day.
const MAX_COST_DAYS: u64 = 366;

/// What a bureau's reservations and consumption cost on each day of a range (this month so far
/// by default), each day priced as its statement prices it and rounded to the fen on its own.
/// Borrowed capacity is settled per month, on the statement, and is not spread over days.
#[utoipa::path(get, path = "/api/v1/bureaus/{bureau}/costs", tag = "statements",
    params(("bureau" = String, Path, description = "Bureau code"), CostsQuery),
    responses(
        (status = 200, description = "The days (JSON), or CSV with `Accept: text/csv`",
            body = DailyCostsView),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn get_daily_costs(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(bureau): Path<String>,
    Query(query): Query<CostsQuery>,
) -> ApiResult<JsonOrCsv<DailyCostsView>> {
    caller.require(&READERS)?;
    caller.require_bureau(&bureau)?;
    state.read_bureau(&bureau).await?;
    let range = report_range(
        &state,
        query.month.as_deref(),
        query.from.as_deref(),
        query.to.as_deref(),
    )?;
    if range.seconds() > MAX_COST_DAYS * 86_400 {
        return Err(Problem::invalid_field(
            "to",
            format!("a range of at most {MAX_COST_DAYS} days"),
        ));
    }
    let schedule = schedule(&state).await?;
    let days = state
        .store()
        .daily_costs(range, &bureau, &schedule, state.calendar())
        .await?;
    let view = DailyCostsView {
        bureau,
        from: range.start().to_string(),
        to: range.end().to_string(),
        currency: schedule.currency().to_owned(),
        days: days
            .iter()
            .map(|day| DayCostView {
                date: day.date.to_string(),
                reserved: day.reserved.to_string(),
                consumed: day.consumed.to_string(),
                amount: day.amount().to_string(),
            })
            .collect(),
    };
    if wants_csv(&headers) {
        let mut table = vec![
            [
                "bureau", "date", "reserved", "consumed", "amount", "currency",
            ]
            .map(str::to_owned)
            .to_vec(),
        ];
        for day in &view.days {
            table.push(vec![
                view.bureau.clone(),
                day.date.clone(),
                day.reserved.clone(),
                day.consumed.clone(),
                day.amount.clone(),
                view.currency.clone(),
            ]);
        }
        return Ok(JsonOrCsv::Csv(download(
            &format!("zhengyun-costs-{}.csv", view.bureau),
            &csv_table(&table),
            Charset::Utf8,
        )));
    }
    Ok(JsonOrCsv::Json(view))
}

/// The range a query names: a month, or `from`/`to` (this month so far by default).
fn report_range(
    state: &AppState,
    month: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
) -> ApiResult<TimeRange> {
    let calendar = state.calendar();
    if let Some(month) = month {
        if from.is_some() || to.is_some() {
            return Err(Problem::invalid_field(
                "month",
                "give either a month or from/to, not both",
            ));
        }
        let month = month.parse().map_err(|e: zhengyun_metering::Error| {
            Problem::invalid_field("month", e.to_string())
        })?;
        return calendar
            .month_range(month)
            .map_err(|e| Problem::invalid_field("month", e.to_string()));
    }
    range_so_far(state, from, to)
}

fn report(
    efficiency: &Efficiency,
    range: TimeRange,
    currency: &str,
) -> ApiResult<EfficiencyReport> {
    let ratio = |r: Option<Decimal>| r.map(|r| r.to_string());
    let bureaus = efficiency
        .ranking()
        .into_iter()
        .map(|(rank, bureau, total)| BureauEfficiencyView {
            rank,
            bureau: bureau.to_owned(),
            reservation_cost: total.reservation_cost.to_string(),
            idle_cost: total.idle_cost.to_string(),
            efficiency: ratio(total.efficiency),
        })
        .collect();
    // Lines come sorted by bureau and environment, as the environments do: group them once.
    let mut resources: BTreeMap<(&str, &str), Vec<ResourceEfficiencyView>> = BTreeMap::new();
    for line in &efficiency.lines {
        let hours = |unit_seconds| {
            unit_hours(unit_seconds, line.resource)
                .map(|h| h.to_string())
                .map_err(|e| Problem::internal(&e))
        };
        resources
            .entry((line.bureau.as_str(), line.environment.as_str()))
            .or_default()
            .push(ResourceEfficiencyView {
                resource: line.resource.as_str().to_owned(),
                unit: PriceUnit::of(line.resource).name.to_owned(),
                reserved_unit_hours: hours(line.reserved_unit_seconds)?,
                consumed_unit_hours: hours(line.consumed_unit_seconds)?,
                idle_unit_hours: hours(line.idle_unit_seconds)?,
                efficiency: ratio(line.efficiency),
                reservation_cost: line.reservation_cost.to_string(),
                idle_cost: line.idle_cost.to_string(),
            });
    }
    let environments = efficiency
        .environments
        .iter()
        .map(|((bureau, environment), total)| EnvironmentEfficiencyView {
            resources: resources
                .remove(&(bureau.as_str(), environment.as_str()))
                .unwrap_or_default(),
            bureau: bureau.clone(),
            environment: environment.clone(),
            reservation_cost: total.reservation_cost.to_string(),
            idle_cost: total.idle_cost.to_string(),
            efficiency: ratio(total.efficiency),
        })
        .collect();
    Ok(EfficiencyReport {
        from: range.start().to_string(),
        to: range.end().to_string(),
        currency: currency.to_owned(),
        bureaus,
        environments,
    })
}

/// One row per environment and resource, with the bureau's rank by idle cost.
fn efficiency_csv(report: &EfficiencyReport) -> String {
    let header = [
        "rank",
        "bureau",
        "environment",
        "resource",
        "unit",
        "reserved_unit_hours",
        "consumed_unit_hours",
        "idle_unit_hours",
        "efficiency",
        "reservation_cost",
        "idle_cost",
        "currency",
        "from",
        "to",
    ];
    let mut rows = vec![header.map(str::to_owned).to_vec()];
    let ranks: BTreeMap<&str, usize> = report
        .bureaus
        .iter()
        .map(|b| (b.bureau.as_str(), b.rank))
        .collect();
    for env in &report.environments {
        let rank = ranks
            .get(env.bureau.as_str())
            .map(usize::to_string)
            .unwrap_or_default();
        for r in &env.resources {
            rows.push(vec![
                rank.clone(),
                env.bureau.clone(),
                env.environment.clone(),
                r.resource.clone(),
                r.unit.clone(),
                r.reserved_unit_hours.clone(),
                r.consumed_unit_hours.clone(),
                r.idle_unit_hours.clone(),
                r.efficiency.clone().unwrap_or_default(),
                r.reservation_cost.clone(),
                r.idle_cost.clone(),
                report.currency.clone(),
                report.from.clone(),
                report.to.clone(),
            ]);
        }
    }
    csv_table(&rows)
}

/// The quota an environment's last 30 days of consumption call for: per resource (CPU, memory,
/// storage, GPUs) the 95th percentile of consumption over the time it held a reservation of
/// that resource, plus 20 %, rounded up to a step (0.1 core, 256 MiB, 1 GiB, 1 GPU), never
/// below a floor (0.5 core, 512 MiB) nor below what it consumes now, with the monthly saving
/// at the tier's reservation price over 730 hours. A resource with less than 7 days of history
/// gets no recommendation.
#[utoipa::path(get, path = "/api/v1/bureaus/{bureau}/environments/{environment}/rightsizing",
    tag = "environments",
    params(("bureau" = String, Path, description = "Bureau code"),
        ("environment" = String, Path, description = "Environment name")),
    responses((status = 200, body = RightSizingView), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn get_rightsizing(
    State(state): State<AppState>,
    caller: Caller,
    Path((bureau, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<RightSizingView>> {
    caller.require(&READERS)?;
    caller.require_bureau(&bureau)?;
    let env = state.environment(&bureau, &name).await?;
    Ok(axum::Json(recommendation(&state, &env).await?))
}

/// Resizes the environment to its right-sizing recommendation (see `GET …/rightsizing`): the
/// recommended resources change, the others stay. Answered as a resize: 200 when applied,
/// 202 with a change request when it grows beyond what the bureau has left; 409 when no
/// resource has enough history for a recommendation.
#[utoipa::path(post, path = "/api/v1/bureaus/{bureau}/environments/{environment}/rightsizing",
    tag = "environments",
    params(("bureau" = String, Path, description = "Bureau code"),
        ("environment" = String, Path, description = "Environment name")),
    responses((status = 200, body = EnvironmentView), (status = 202, body = crate::views::Pending),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)),
    security(("bearer" = [])))]
async fn apply_rightsizing(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path((bureau, name)): Path<(String, String)>,
) -> ApiResult<OrPending<axum::Json<EnvironmentView>>> {
    audit.about(
        "environment.rightsize",
        format!("environments/{name}"),
        Some(&bureau),
    );
    caller.require(&WRITERS)?;
    caller.require_bureau(&bureau)?;
    let env = state.environment(&bureau, &name).await?;
    let view = recommendation(&state, &env).await?;
    if view.resources.iter().all(|r| r.recommended.is_none()) {
        let reasons: Vec<String> = view
            .resources
            .iter()
            .filter_map(|r| {
                r.reason
                    .as_ref()
                    .map(|why| format!("{}: {why}", r.resource))
            })
            .collect();
        return Err(Problem::conflict(format!(
            "no resource of {name} has a recommendation yet ({})",
            reasons.join("; ")
        )));
    }
    audit.outcome(format!(
        "recommended quota, saving {} {} a month",
        view.monthly_saving, view.currency
    ));
    let body = UpdateEnvironment {
        quota: Some(view.quota),
        services: None,
    };
    // No resourceVersion precondition: the operator's status writes move it all the time,
    // and the recommendation depends on the ledger, not on the version read.
    resize(&state, &caller, &audit, &bureau, &name, &body, None).await
}

/// The right-sizing recommendation for `env` from the last [`WINDOW_DAYS`] days of its ledger.
async fn recommendation(state: &AppState, env: &Environment) -> ApiResult<RightSizingView> {
    let name = env.metadata.name.clone().unwrap_or_default();
    let to = state.clock().now_second();
    let from = to - SignedDuration::from_hours(WINDOW_DAYS * 24);
    let range = TimeRange::new(from, to).map_err(|e| Problem::internal(&e))?;
    let uid = env.metadata.uid.as_deref();
    let intervals: Vec<_> = state
        .store()
        .environment_intervals(&name, range)
        .await?
        .into_iter()
        // An earlier environment of the same name is not this one's history.
        .filter(|i| match (i.environment_uid(), uid) {
            (Some(of), Some(uid)) => of == uid,
            _ => true,
        })
        .collect();
    // Without rate cards there is nothing to price the saving with; the quota still stands.
    let schedule = schedule(state).await.ok();
    let card = schedule
        .as_ref()
        .and_then(|s| s.effective_at(to, state.calendar()));
    let tier = env.spec.tier;
    let mut quota = env.spec.quota.clone();
    let mut resources = Vec::new();
    let mut total = Some(Decimal::ZERO);
    for resource in RIGHT_SIZED {
        let spans = |kind: UsageKind| -> Vec<Span> {
            intervals
                .iter()
                .filter(|i| i.resource() == resource && i.kind() == kind)
                .map(|i| Span {
                    start: i.start().as_second(),
                    end: i.end().as_second(),
                    amount: i.amount(),
                })
                .collect()
        };
        let current = env
            .spec
            .quota
            .get(resource)
            .map(|q| q.parse(resource.unit()))
            .transpose()
            .map_err(|e| Problem::internal(&e))?
            .unwrap_or(0);
        let quantity = |units: u64| Quantity::from_base_units(units, resource.unit()).to_string();
        let history = rightsizing::history(
            &spans(UsageKind::Reserved),
            &spans(UsageKind::Consumed),
            from.as_second(),
            to.as_second(),
        );
        let covered = history.map_or(0, |h| h.covered_seconds);
        let mut row = ResourceRecommendation {
            resource: resource.as_str().to_owned(),
            current: quantity(current),
            history_days: days(covered),
            percentile_used: history.map(|h| quantity(h.percentile)),
            peak: history.map(|h| quantity(h.peak)),
            recommended: None,
            monthly_saving: None,
            reason: None,
        };
        match history {
            Some(history) if covered >= min_history_seconds() => {
                let recommended = rightsizing::recommend(resource, &history);
                row.recommended = Some(quantity(recommended));
                quota.set(
                    resource,
                    Some(Quantity::from_base_units(recommended, resource.unit())),
                );
                let saving = card
                    .map(|card| {
                        let price = card.price(tier, resource, UsageKind::Reserved);
                        rightsizing::monthly_saving(resource, current, recommended, price)
                    })
                    .transpose()
                    .map_err(|e| Problem::internal(&e))?;
                row.monthly_saving = saving.map(|s| s.to_string());
                total = total.zip(saving).map(|(t, s)| t + s);
            }
            _ => {
                row.reason = Some(format!(
                    "{} days of history with a reservation in the last {WINDOW_DAYS}; \
                     {MIN_HISTORY_DAYS} needed",
                    days(covered)
                ));
            }
        }
        resources.push(row);
    }
    Ok(RightSizingView {
        environment: name,
        tier: tier.to_string(),
        from: from.to_string(),
        to: to.to_string(),
        percentile: PERCENTILE,
        margin_percent: MARGIN_PERCENT,
        min_history_days: MIN_HISTORY_DAYS,
        resources,
        quota: QuotaBody::from(&quota),
        monthly_saving: total.map(|t| t.to_string()).unwrap_or_default(),
        currency: schedule
            .as_ref()
            .map(|s| s.currency().to_owned())
            .unwrap_or_default(),
    })
}

fn min_history_seconds() -> u64 {
    u64::try_from(MIN_HISTORY_DAYS * 86_400).unwrap_or(u64::MAX)
}

/// Seconds as days, to at most two decimals (truncated).
fn days(seconds: u64) -> String {
    let hundredths = u64::try_from(u128::from(seconds) * 100 / 86_400).unwrap_or(u64::MAX);
    Decimal::new(i64::try_from(hundredths).unwrap_or(i64::MAX), 2)
        .normalize()
        .to_string()
}

/// Which year and bureaus to evaluate.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EvaluationQuery {
    /// The year (platform time zone); this year if absent.
    #[param(example = 2026, minimum = 2000, maximum = 9998)]
    pub year: Option<i16>,
    /// Only this bureau (bureau roles always get only their own).
    pub bureau: Option<String>,
}

/// The annual performance evaluation (绩效评估), per bureau and for the district: what each
/// bureau owed month by month against its budget, the cost of its reservations and of their
/// idle part with its efficiency, each environment's availability against its tier's
/// objective, the service credits received, what it paid for borrowed capacity and was
/// credited for lending, and the bureaus ranked by idle cost. The running year covers its
/// months so far. JSON, or CSV with `Accept: text/csv`.
#[utoipa::path(get, path = "/api/v1/evaluation", tag = "statements", params(EvaluationQuery),
    responses(
        (status = 200, description = "The evaluation (JSON), or CSV with `Accept: text/csv`",
            body = AnnualEvaluation),
        (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn get_evaluation(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(query): Query<EvaluationQuery>,
) -> ApiResult<JsonOrCsv<AnnualEvaluation>> {
    caller.require(&READERS)?;
    if let Some(bureau) = &query.bureau {
        caller.require_bureau(bureau)?;
        state.read_bureau(bureau).await?;
    }
    let only = caller.bureau().map(str::to_owned).or(query.bureau.clone());
    let calendar = state.calendar();
    let now = state.clock().now_second();
    let this_year = calendar.month_of(now).year();
    let year = query.year.unwrap_or(this_year);
    let invalid = |message: String| Problem::invalid_field("year", message);
    if !(2000..=9998).contains(&year) {
        return Err(invalid("must be between 2000 and 9998".to_owned()));
    }
    if year > this_year {
        return Err(invalid(format!("{year} has not begun (it is {this_year})")));
    }
    let first = Month::new(year, 1).map_err(|e| invalid(e.to_string()))?;
    let next_year = Month::new(year + 1, 1).map_err(|e| invalid(e.to_string()))?;
    let start = calendar
        .month_range(first)
        .map_err(|e| invalid(e.to_string()))?
        .start();
    let end = calendar
        .month_range(next_year)
        .map_err(|e| invalid(e.to_string()))?
        .start()
        .min(now);
    let range = TimeRange::new(start, end).map_err(|e| invalid(e.to_string()))?;
    let schedule = schedule(&state).await?;
    let (names, budgets) = bureaus(&state).await?;
    let mut year_of = annual::Year::new(only.as_deref());
    let last = calendar.month_of(end - SignedDuration::from_secs(1));
    let accounts = state
        .store()
        .month_accounts(first, last, calendar, &schedule, only.as_deref())
        .await?;
    for account in &accounts {
        let (statement, month) = (&account.statement, account.statement.month);
        let (owed, _) = zhengyun_metering::payable(statement, &account.adjustments)
            .map_err(|e| Problem::conflict(format!("unable to add up {month}: {e}")))?;
        let month_budgets = budgets
            .iter()
            .map(|(bureau, &monthly)| {
                zhengyun_metering::month_budget(monthly, month, calendar)
                    .map(|b| (bureau.clone(), b))
                    .map_err(|e| Problem::conflict(format!("the budget of {bureau}: {e}")))
            })
            .collect::<ApiResult<BTreeMap<_, _>>>()?;
        year_of.add_month(month, statement, &owed, &month_budgets)?;
    }
    year_of.add_measures(state.store().month_measures(range, None).await?);
    // Over whole months, as the statements: usage is recorded only for metering windows that
    // have ended, so the rest of the running month adds nothing, and the sums are the same
    // ranges each time, kept between metering closes (a range ending now would be new at every
    // request and read the ledger again).
    let months = TimeRange::new(
        start,
        calendar
            .month_range(last)
            .map_err(|e| invalid(e.to_string()))?
            .end(),
    )
    .map_err(|e| invalid(e.to_string()))?;
    let efficiency = state
        .store()
        .efficiency(months, only.as_deref(), &schedule, calendar)
        .await?;
    let levels = state
        .store()
        .service_levels_at(end - SignedDuration::from_secs(1))
        .await?
        .unwrap_or_default();
    let report = year_of.finish(
        year,
        range,
        schedule.currency(),
        &efficiency,
        &levels,
        &names,
    )?;
    if wants_csv(&headers) {
        let name = only.as_deref().unwrap_or("district");
        return Ok(JsonOrCsv::Csv(download(
            &format!("zhengyun-evaluation-{year}-{name}.csv"),
            &annual::csv(&report),
            Charset::Utf8,
        )));
    }
    Ok(JsonOrCsv::Json(report))
}
