//! `/api/v1/statements` and `/api/v1/bureaus/{bureau}/usage`: what finance and each bureau see
//! of the metering ledger. JSON by default; `Accept: text/csv` gives CSV in UTF-8 with a byte
//! order mark, so spreadsheet programs show the Chinese names.
//!
//! A month's statement is priced by the `RateCard`s in the cluster (by effective date and
//! tier) and flagged against each bureau's `spec.monthlyBudget`. A closed month is returned as
//! it was closed, with its signed adjustment lines.

use std::collections::BTreeMap;

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use zhengyun_metering::{Month, RateSchedule, Statement, TimeRange};
use zhengyun_model::crd::{Bureau, RateCard};
use zhengyun_store::Role;

use crate::{
    context::{Audit, Caller},
    extract::{Json, Path, Query},
    problem::{ApiResult, Problem},
    state::AppState,
};

const READERS: [Role; 4] = [
    Role::PlatformAdmin,
    Role::Finance,
    Role::BureauAdmin,
    Role::BureauViewer,
];

/// The statement and usage routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_statement))
        .routes(routes!(close_month))
        .routes(routes!(adjust_month))
        .routes(routes!(waive_gaps))
        .routes(routes!(get_usage))
}

/// Which statement.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatementQuery {
    /// `YYYY-MM`; this month (in the platform's time zone) if absent.
    #[param(example = "2026-11", pattern = r"^[0-9]{4}-[0-9]{2}$")]
    pub month: Option<String>,
    /// Only this bureau (bureau roles always get only their own).
    pub bureau: Option<String>,
}

/// Which usage.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// From this instant (RFC 3339); the start of this month if absent.
    pub from: Option<String>,
    /// To this instant (RFC 3339), exclusive; now if absent.
    pub to: Option<String>,
}

fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/csv"))
}

fn csv_response(filename: &str, rows: Vec<Vec<String>>) -> Response {
    let mut text = String::from("\u{feff}");
    for row in rows {
        let cells: Vec<String> = row.iter().map(|cell| csv_cell(cell)).collect();
        text.push_str(&cells.join(","));
        text.push_str("\r\n");
    }
    let mut response = text.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// A CSV field, quoted when needed, and defused when a spreadsheet would read it as a formula.
fn csv_cell(cell: &str) -> String {
    let defused = if cell.starts_with(['=', '+', '@'])
        || (cell.starts_with('-') && cell.parse::<Decimal>().is_err())
    {
        format!("'{cell}")
    } else {
        cell.to_owned()
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

/// The rate cards in the cluster as a schedule.
async fn schedule(state: &AppState) -> ApiResult<RateSchedule> {
    let cards = kube::Api::<RateCard>::all(state.client())
        .list(&Default::default())
        .await?;
    RateSchedule::from_specs(cards.items.iter().map(|c| &c.spec)).map_err(|e| {
        Problem::conflict(format!(
            "the rate cards in the cluster do not make a schedule: {e}"
        ))
    })
}

/// Bureau display names and budgets.
async fn bureaus(
    state: &AppState,
) -> ApiResult<(BTreeMap<String, String>, BTreeMap<String, Decimal>)> {
    let list = state.bureaus().list(&Default::default()).await?;
    let mut names = BTreeMap::new();
    let mut budgets = BTreeMap::new();
    for bureau in &list.items {
        let code = bureau.metadata.name.clone().unwrap_or_default();
        if let Some(budget) = bureau_budget(bureau) {
            budgets.insert(code.clone(), budget);
        }
        names.insert(code, bureau.spec.display_name.clone());
    }
    Ok((names, budgets))
}

fn bureau_budget(bureau: &Bureau) -> Option<Decimal> {
    bureau.spec.monthly_budget.as_deref()?.parse().ok()
}

/// Keeps only `bureau`'s part of a statement; its totals become the statement's total.
fn only_bureau(statement: &mut Statement, bureau: &str) {
    statement.lines.retain(|l| l.key.meter.bureau() == bureau);
    statement.environments.retain(|e| e.bureau == bureau);
    statement.bureaus.retain(|b| b.bureau == bureau);
    statement.platform = statement
        .bureaus
        .first()
        .map(|b| b.totals.clone())
        .unwrap_or_else(|| zhengyun_metering::Totals {
            amount: Decimal::ZERO,
            usage: Vec::new(),
        });
}

/// A month's statement: every bureau for platform admins and finance, the bureau's own for a
/// bureau role. Lines per bureau, environment, resource and reserved/consumed, each rounded
/// once to the fen (half-even); totals; budget flags.
#[utoipa::path(get, path = "/api/v1/statements", tag = "statements", params(StatementQuery),
    responses(
        (status = 200, description = "The statement (JSON), or CSV with `Accept: text/csv`",
            body = serde_json::Value),
        (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn get_statement(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(query): Query<StatementQuery>,
) -> ApiResult<Response> {
    caller.require(&READERS)?;
    if let Some(bureau) = &query.bureau {
        caller.require_bureau(bureau)?;
    }
    let bureau = caller.bureau().map(str::to_owned).or(query.bureau);
    let month: Month = match &query.month {
        Some(text) => text.parse().map_err(|e: zhengyun_metering::Error| {
            Problem::invalid_field("month", e.to_string())
        })?,
        None => state.calendar().month_of(state.clock().now()),
    };
    let schedule = schedule(&state).await?;
    let (names, budgets) = bureaus(&state).await?;
    let mut statement = state
        .store()
        .month_statement(month, state.calendar(), &schedule, &budgets)
        .await?;
    let adjustments = state.store().adjustments(month).await?;
    if let Some(bureau) = &bureau {
        only_bureau(&mut statement, bureau);
    }
    let adjustments: Vec<_> = adjustments
        .into_iter()
        .filter(|a| bureau.as_deref().is_none_or(|b| a.key.meter.bureau() == b))
        .collect();
    if wants_csv(&headers) {
        return Ok(statement_csv(&statement, &adjustments, &names));
    }
    let mut body = serde_json::to_value(&statement).unwrap_or_default();
    if let Some(list) = body["bureaus"].as_array_mut() {
        for entry in list {
            let code = entry["bureau"].as_str().unwrap_or_default().to_owned();
            entry["displayName"] = json!(names.get(&code));
        }
    }
    body["adjustments"] = serde_json::to_value(&adjustments).unwrap_or_default();
    // Always present, so that a reader can tell "no gaps" from an older answer without them.
    body["gaps"] = serde_json::to_value(&statement.gaps).unwrap_or_default();
    Ok(axum::Json(body).into_response())
}

fn statement_csv(
    statement: &Statement,
    adjustments: &[zhengyun_metering::AdjustmentLine],
    names: &BTreeMap<String, String>,
) -> Response {
    let mut rows = vec![
        [
            "month",
            "bureau",
            "bureau_name",
            "environment",
            "resource",
            "kind",
            "tier",
            "rate_card",
            "quantity",
            "unit",
            "unit_price",
            "amount",
            "currency",
            "reference",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    let month = statement.month.to_string();
    for line in &statement.lines {
        let m = &line.key.meter;
        rows.push(vec![
            month.clone(),
            m.bureau().to_owned(),
            names.get(m.bureau()).cloned().unwrap_or_default(),
            m.environment().to_owned(),
            m.resource().to_string(),
            m.kind().to_string(),
            m.tier().to_string(),
            line.key.rate_card.to_string(),
            line.quantity.to_string(),
            line.unit.clone(),
            line.unit_price.to_string(),
            line.amount.to_string(),
            statement.currency.clone(),
            line.key.reference(statement.month),
        ]);
    }
    for adjustment in adjustments {
        let m = &adjustment.key.meter;
        rows.push(vec![
            month.clone(),
            m.bureau().to_owned(),
            names.get(m.bureau()).cloned().unwrap_or_default(),
            m.environment().to_owned(),
            m.resource().to_string(),
            format!("adjustment ({})", m.kind()),
            m.tier().to_string(),
            adjustment.key.rate_card.to_string(),
            String::new(),
            String::new(),
            adjustment.unit_price.to_string(),
            adjustment.amount.to_string(),
            statement.currency.clone(),
            adjustment.reference(),
        ]);
    }
    for bureau in &statement.bureaus {
        rows.push(vec![
            month.clone(),
            bureau.bureau.clone(),
            names.get(&bureau.bureau).cloned().unwrap_or_default(),
            String::new(),
            String::new(),
            "total".to_owned(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            bureau.totals.amount.to_string(),
            statement.currency.clone(),
            format!("{month}/{}", bureau.bureau),
        ]);
    }
    csv_response(&format!("zhengyun-statement-{month}.csv"), rows)
}

/// The checkpoint stream of the metering sampler: how far the ledger is complete.
const LEDGER_STREAM: &str = "usage";

const CLOSERS: [Role; 2] = [Role::PlatformAdmin, Role::Finance];

fn month_param(text: &str) -> ApiResult<Month> {
    text.parse()
        .map_err(|e: zhengyun_metering::Error| Problem::invalid_field("month", e.to_string()))
}

/// A short account of a statement, for the answers of close and adjust.
fn summary(statement: &Statement) -> Value {
    json!({
        "month": statement.month.to_string(),
        "currency": statement.currency,
        "amount": statement.platform.amount.to_string(),
        "bureaus": statement.bureaus.len(),
        "lines": statement.lines.len(),
    })
}

/// Closes a month: its statement, as the ledger gives it now, is stored and never changes
/// again (finance, platform admin). Only a month that has ended by the platform's clock, that
/// the ledger covers to its end, and whose metering gaps are all waived can be closed.
#[utoipa::path(post, path = "/api/v1/statements/{month}/close", tag = "statements",
    params(("month" = String, Path, description = "YYYY-MM")),
    responses((status = 201, description = "The month is closed", body = serde_json::Value),
        (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn close_month(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path(month): Path<String>,
) -> ApiResult<Response> {
    audit.about("statement.close", format!("statements/{month}"), None);
    caller.require(&CLOSERS)?;
    let month = month_param(&month)?;
    let range = state
        .calendar()
        .month_range(month)
        .map_err(|e| Problem::invalid_field("month", e.to_string()))?;
    let covered = state.store().checkpoint(LEDGER_STREAM).await?;
    zhengyun_metering::closable(month, &range, state.clock().now(), covered)
        .map_err(|e| Problem::conflict(e.to_string()))?;
    let gaps = state
        .store()
        .month_gaps(LEDGER_STREAM, month, range)
        .await?;
    zhengyun_metering::check_gaps(month, &gaps).map_err(|e| Problem::conflict(e.to_string()))?;
    let schedule = schedule(&state).await?;
    let (_, budgets) = bureaus(&state).await?;
    let statement = state
        .store()
        .computed_statement(month, state.calendar(), &schedule, &budgets)
        .await?;
    state.store().close_statement(month, &statement).await?;
    audit.outcome(format!(
        "closed at {} {}",
        statement.platform.amount, statement.currency
    ));
    Ok((
        axum::http::StatusCode::CREATED,
        axum::Json(summary(&statement)),
    )
        .into_response())
}

/// Why finance accepts a month's metering gaps.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WaiveGaps {
    /// Why the gaps are accepted (1 to 1000 bytes), e.g. how the missing usage was settled.
    #[schema(example = "运维停机，按合同估算另行结算")]
    pub reason: String,
}

/// Waives the metering gaps of a month recorded so far, and the part of it before the ledger
/// began, so that the month can be closed (finance, platform admin). The waiver, its author
/// and reason show on each gap of the statement; gaps recorded later need another waiver. A
/// closed month cannot be waived any more.
#[utoipa::path(post, path = "/api/v1/statements/{month}/gaps/waive", tag = "statements",
    params(("month" = String, Path, description = "YYYY-MM")),
    request_body = WaiveGaps,
    responses((status = 200, description = "The gaps this waiver covers", body = serde_json::Value),
        (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn waive_gaps(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path(month): Path<String>,
    Json(body): Json<WaiveGaps>,
) -> ApiResult<Response> {
    audit.about("statement.waive-gaps", format!("statements/{month}"), None);
    caller.require(&CLOSERS)?;
    let month = month_param(&month)?;
    let range = state
        .calendar()
        .month_range(month)
        .map_err(|e| Problem::invalid_field("month", e.to_string()))?;
    if state.store().closed_statement(month).await?.is_some() {
        return Err(Problem::conflict(format!(
            "{month} is closed: its gaps were settled when it was closed"
        )));
    }
    let waived = state
        .store()
        .waive_gaps(LEDGER_STREAM, month, range, caller.name(), &body.reason)
        .await?;
    audit.outcome(format!(
        "waived {} gap(s): {}",
        waived.gaps.len(),
        body.reason.trim()
    ));
    Ok(axum::Json(waived).into_response())
}

/// Issues signed adjustment lines for a closed month: the differences between the statement it
/// was closed with (plus earlier adjustments) and what the ledger gives now, e.g. after late
/// usage arrived (finance, platform admin). The closed lines themselves never change.
#[utoipa::path(post, path = "/api/v1/statements/{month}/adjustments", tag = "statements",
    params(("month" = String, Path, description = "YYYY-MM")),
    responses(
        (status = 200, description = "Nothing to adjust", body = serde_json::Value),
        (status = 201, description = "Adjustment lines issued", body = serde_json::Value),
        (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn adjust_month(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path(month): Path<String>,
) -> ApiResult<Response> {
    audit.about("statement.adjust", format!("statements/{month}"), None);
    caller.require(&CLOSERS)?;
    let month = month_param(&month)?;
    let Some(closed) = state.store().closed_statement(month).await? else {
        return Err(Problem::conflict(format!(
            "{month} is not closed; an open month is corrected by the ledger itself"
        )));
    };
    let issued = state.store().adjustments(month).await?;
    let schedule = schedule(&state).await?;
    let (_, budgets) = bureaus(&state).await?;
    let now = state
        .store()
        .computed_statement(month, state.calendar(), &schedule, &budgets)
        .await?;
    let lines = zhengyun_metering::adjustments(&closed, &issued, &now).map_err(|e| {
        Problem::conflict(format!(
            "unable to compare {month} with its closed statement: {e}"
        ))
    })?;
    if lines.is_empty() {
        return Ok(
            axum::Json(json!({"month": month.to_string(), "adjustments": []})).into_response(),
        );
    }
    state
        .store()
        .add_adjustments(month, issued.len(), &lines)
        .await?;
    audit.outcome(format!("{} adjustment lines", lines.len()));
    Ok((
        axum::http::StatusCode::CREATED,
        axum::Json(json!({"month": month.to_string(), "adjustments": lines})),
    )
        .into_response())
}

/// An instant given as RFC 3339, to the second (the ledger's resolution; fractions are cut).
fn instant(field: &str, text: Option<&str>) -> ApiResult<Option<jiff::Timestamp>> {
    Ok(crate::extract::instant(field, text)?.map(whole_second))
}

fn whole_second(at: jiff::Timestamp) -> jiff::Timestamp {
    jiff::Timestamp::from_second(at.as_second()).unwrap_or(at)
}

/// A bureau's metered usage over a time range, per environment, resource and kind, in exact
/// unit-seconds (millicore-seconds, byte-seconds, count-seconds) and unit-hours.
#[utoipa::path(get, path = "/api/v1/bureaus/{bureau}/usage", tag = "statements",
    params(("bureau" = String, Path, description = "Bureau code"), UsageQuery),
    responses(
        (status = 200, description = "Usage rows (JSON), or CSV with `Accept: text/csv`",
            body = serde_json::Value),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn get_usage(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(bureau): Path<String>,
    Query(query): Query<UsageQuery>,
) -> ApiResult<Response> {
    caller.require(&READERS)?;
    caller.require_bureau(&bureau)?;
    state.bureau(&bureau).await?;
    let now = state.clock().now_second();
    let from = match instant("from", query.from.as_deref())? {
        Some(from) => from,
        None => state
            .calendar()
            .month_range(state.calendar().month_of(now))
            .map_err(|e| Problem::invalid_field("from", e.to_string()))?
            .start(),
    };
    let to = instant("to", query.to.as_deref())?.unwrap_or(now);
    let range = TimeRange::new(from, to)
        .map_err(|e| Problem::invalid_field("to", format!("must be after from: {e}")))?;
    let usage = state.store().bureau_usage(&bureau, range).await?;
    let rows: Vec<Value> = usage
        .iter()
        .map(|u| {
            let hours = zhengyun_metering::unit_hours(u.unit_seconds, u.resource)
                .map(|h| h.to_string())
                .unwrap_or_default();
            json!({
                "environment": u.environment,
                "resource": u.resource.as_str(),
                "kind": u.kind.as_str(),
                "unitSeconds": u.unit_seconds.to_string(),
                "unitHours": hours,
                "unit": zhengyun_metering::PriceUnit::of(u.resource).name,
            })
        })
        .collect();
    if wants_csv(&headers) {
        let mut table = vec![
            [
                "bureau",
                "environment",
                "resource",
                "kind",
                "unit_seconds",
                "unit_hours",
                "unit",
                "from",
                "to",
            ]
            .map(str::to_owned)
            .to_vec(),
        ];
        for row in &rows {
            let cell = |k: &str| row[k].as_str().unwrap_or_default().to_owned();
            table.push(vec![
                bureau.clone(),
                cell("environment"),
                cell("resource"),
                cell("kind"),
                cell("unitSeconds"),
                cell("unitHours"),
                cell("unit"),
                from.to_string(),
                to.to_string(),
            ]);
        }
        return Ok(csv_response(&format!("zhengyun-usage-{bureau}.csv"), table));
    }
    Ok(axum::Json(json!({
        "bureau": bureau,
        "from": from.to_string(),
        "to": to.to_string(),
        "usage": rows,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("区卫生健康委员会"), "区卫生健康委员会");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=cmd()"), "'=cmd()");
        assert_eq!(csv_cell("-12.50"), "-12.50");
        assert_eq!(csv_cell("-x"), "'-x");
    }
}
