//! `/api/v1/statements` and `/api/v1/bureaus/{bureau}/usage`: what finance, auditors and each
//! bureau see of the metering ledger. JSON by default; `Accept: text/csv` gives CSV (see
//! [`crate::statement_csv`]).
//!
//! An open month's statement is **provisional**: priced by the `RateCard`s in the cluster (each
//! from when it took effect), flagged against each bureau's `spec.monthlyBudget`, and marked with
//! how far the ledger covers it. A **closed** month is read from its stored, sealed lines — never
//! recomputed, so no rate card added later can change or break it — with when and by whom it
//! was closed, its seal, and its signed adjustment lines, which count in the amount payable.

use std::collections::BTreeMap;

use axum::{
    Json as JsonBody,
    extract::State,
    http::{HeaderMap, StatusCode, header},
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use zhengyun_contract::statements::{
    Adjustments, BureauTotalView, ClosedMonth, MonthVerification, PlatformTotalView,
    SealVerificationView, StatementView, Usage, UsageRow, WaiveGaps, Waived,
};
use zhengyun_metering::{
    AdjustmentLine, Month, Payable, RateSchedule, Statement, StatementStatus, TimeRange,
};
use zhengyun_model::crd::{Bureau, RateCard};
use zhengyun_store::Role;

use crate::{
    context::{Audit, Caller},
    extract::{Json, Path, Query},
    problem::{ApiResult, Problem},
    reply::JsonOrCsv,
    state::AppState,
    statement_csv::{Charset, CsvOptions, csv_table, download, statement_csv},
};

/// Who reads statements, usage, availability, reclaims and evaluations: every role, bureau
/// roles only their own bureau's.
pub(crate) const READERS: [Role; 5] = Role::ALL;

/// Who verifies the seals of closed statements.
const VERIFIERS: [Role; 3] = [Role::PlatformAdmin, Role::Finance, Role::Auditor];

/// The statement and usage routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_statement))
        .routes(routes!(close_month))
        .routes(routes!(adjust_month))
        .routes(routes!(verify_month))
        .routes(routes!(verify_all))
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
    /// CSV character set: `utf-8` (with a byte order mark, the default) or `gb18030`.
    #[param(example = "gb18030")]
    pub charset: Option<String>,
    /// CSV column names: `en` (the default) or `zh` (Chinese).
    #[param(example = "zh")]
    pub headers: Option<String>,
}

impl StatementQuery {
    fn csv_options(&self) -> ApiResult<CsvOptions> {
        let charset = match self.charset.as_deref() {
            None => Charset::default(),
            Some(text) => Charset::parse(text).ok_or_else(|| {
                Problem::invalid_field("charset", "must be utf-8 or gb18030".to_owned())
            })?,
        };
        let chinese_headers = match self.headers.as_deref() {
            None | Some("en") => false,
            Some("zh") => true,
            Some(_) => {
                return Err(Problem::invalid_field(
                    "headers",
                    "must be en or zh".to_owned(),
                ));
            }
        };
        Ok(CsvOptions {
            charset,
            chinese_headers,
        })
    }
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

pub(crate) fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/csv"))
}

/// The rate cards in the cluster as a schedule, for a report: from the watch cache once it has
/// listed them (a card applied a moment ago may price the next report), else from the API
/// server.
pub(crate) async fn schedule(state: &AppState) -> ApiResult<RateSchedule> {
    // A cache that cannot make a schedule (no card seen yet, say) defers to the API server,
    // whose answer, error or not, stands.
    let cached = state
        .cached_rate_cards()
        .and_then(|cards| RateSchedule::from_objects(cards.iter().map(|card| &**card)).ok());
    match cached {
        Some(schedule) => Ok(schedule),
        None => schedule_of(state, |_| true).await,
    }
}

/// The rate cards as the API server has them now, for what is sealed (closing a month).
async fn current_schedule(state: &AppState) -> ApiResult<RateSchedule> {
    schedule_of(state, |_| true).await
}

fn not_a_schedule(error: zhengyun_metering::Error) -> Problem {
    Problem::conflict(format!(
        "the rate cards in the cluster do not make a schedule: {error}"
    ))
}

/// The rate schedule as it stood at `at`: cards created later are left out. Creation times
/// are whole seconds, so a card created in the second of `at` counts as later.
async fn schedule_as_of(state: &AppState, at: jiff::Timestamp) -> ApiResult<RateSchedule> {
    let second = at.as_second();
    schedule_of(state, |card| {
        card.metadata
            .creation_timestamp
            .as_ref()
            .is_none_or(|created| created.0.as_second() < second)
    })
    .await
}

async fn schedule_of(
    state: &AppState,
    keep: impl Fn(&RateCard) -> bool,
) -> ApiResult<RateSchedule> {
    let cards = kube::Api::<RateCard>::all(state.client())
        .list(&Default::default())
        .await?;
    RateSchedule::from_objects(cards.items.iter().filter(|card| keep(card))).map_err(not_a_schedule)
}

/// Bureau display names and budgets.
pub(crate) async fn bureaus(
    state: &AppState,
) -> ApiResult<(BTreeMap<String, String>, BTreeMap<String, Decimal>)> {
    // From the watch cache once it is synced: a statement's names and budgets need not cost
    // the API server a list of every bureau.
    let list = state.read_bureaus().await?;
    let mut names = BTreeMap::new();
    let mut budgets = BTreeMap::new();
    for bureau in &list {
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

/// A month's statement: every bureau for platform admins, finance and auditors, the bureau's own
/// for a bureau role. Lines per bureau, environment, resource and reserved/consumed, each
/// priced at the rate card's reservation or consumption price and rounded once to the fen by
/// the card's rule; totals; borrowed capacity settled (`burst` charges, `lent` credits and the
/// platform's share; a bureau sees its own); budget flags; adjustments and the amount payable
/// (lines + settlement + adjustments); and whether the
/// statement is provisional (`coveredUntil`) or closed (`closedAt`, `closedBy`, `seal`).
#[utoipa::path(get, path = "/api/v1/statements", tag = "statements", params(StatementQuery),
    responses(
        (status = 200, description = "The statement (JSON), or CSV with `Accept: text/csv`",
            body = StatementView),
        (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn get_statement(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(query): Query<StatementQuery>,
) -> ApiResult<JsonOrCsv<StatementView>> {
    caller.require(&READERS)?;
    if let Some(bureau) = &query.bureau {
        caller.require_bureau(bureau)?;
    }
    let csv = wants_csv(&headers)
        .then(|| query.csv_options())
        .transpose()?;
    let bureau = caller.bureau().map(str::to_owned).or(query.bureau);
    let month: Month = match &query.month {
        Some(text) => text.parse().map_err(|e: zhengyun_metering::Error| {
            Problem::invalid_field("month", e.to_string())
        })?,
        None => state.calendar().month_of(state.clock().now()),
    };
    let (names, budgets) = bureaus(&state).await?;
    let (mut statement, status, seal) = match state.store().closed_record(month).await? {
        Some(closed) => (
            closed.statement,
            StatementStatus::Closed {
                closed_at: closed.closed_at,
                closed_by: closed.closed_by,
            },
            closed.seal,
        ),
        None => {
            let schedule = schedule(&state).await?;
            let covered_until = state.store().checkpoint(LEDGER_STREAM).await?;
            let statement = state
                .store()
                .computed_statement(
                    month,
                    state.calendar(),
                    &schedule,
                    &budgets,
                    bureau.as_deref(),
                )
                .await?;
            (
                statement,
                StatementStatus::Provisional { covered_until },
                None,
            )
        }
    };
    let adjustments = state.store().adjustments(month).await?;
    if let Some(bureau) = &bureau {
        statement.keep_bureau(bureau);
    }
    let adjustments: Vec<_> = adjustments
        .into_iter()
        .filter(|a| bureau.as_deref().is_none_or(|b| a.key.meter.bureau() == b))
        .collect();
    let payable = zhengyun_metering::payable(&statement, &adjustments)
        .map_err(|e| Problem::conflict(format!("unable to add up {month}: {e}")))?;
    budgets_against_payable(&mut statement, &payable.0)?;
    if let Some(options) = csv {
        return Ok(JsonOrCsv::Csv(statement_csv(
            &statement,
            &status,
            &adjustments,
            &payable,
            &names,
            options,
        )));
    }
    Ok(JsonOrCsv::Json(statement_view(
        &statement,
        &status,
        seal,
        &adjustments,
        &payable,
        &names,
    )?))
}

/// A value of the ledger's types as the contract type that mirrors its JSON. The contract's
/// line types refuse unknown fields, so a field the ledger adds fails here (500, logged) rather
/// than disappearing from the answer.
fn wire<T: Serialize, U: DeserializeOwned>(value: &T) -> ApiResult<U> {
    serde_json::to_value(value)
        .and_then(serde_json::from_value)
        .map_err(|e| Problem::internal(&e))
}

/// The statement as the API answers it: the ledger's statement, each bureau's display name and
/// what it owes with its adjustments, the statement's standing and seal, and the adjustments.
fn statement_view(
    statement: &Statement,
    status: &StatementStatus,
    seal: Option<String>,
    adjustments: &[AdjustmentLine],
    (by_bureau, platform): &(BTreeMap<String, Payable>, Payable),
    names: &BTreeMap<String, String>,
) -> ApiResult<StatementView> {
    let mut bureaus = Vec::with_capacity(statement.bureaus.len());
    for total in &statement.bureaus {
        let mut view: BureauTotalView = wire(total)?;
        view.display_name = names.get(&total.bureau).cloned();
        if let Some(owed) = by_bureau.get(&total.bureau) {
            view.adjustments_amount = Some(wire(&owed.adjustments)?);
            view.settlement_amount = Some(wire(&owed.settlement)?);
            view.service_credits_amount = Some(wire(&owed.service_credits)?);
            view.payable = Some(wire(&owed.payable)?);
        }
        bureaus.push(view);
    }
    Ok(StatementView {
        month: statement.month.to_string(),
        time_zone: statement.time_zone.clone(),
        currency: statement.currency.clone(),
        period: wire(&statement.period)?,
        lines: wire(&statement.lines)?,
        environments: wire(&statement.environments)?,
        bureaus,
        platform: PlatformTotalView {
            amount: wire(&statement.platform.amount)?,
            usage: wire(&statement.platform.usage)?,
            adjustments_amount: wire(&platform.adjustments)?,
            settlement_amount: wire(&platform.settlement)?,
            service_credits_amount: wire(&platform.service_credits)?,
            payable: wire(&platform.payable)?,
        },
        gaps: wire(&statement.gaps)?,
        settlement: wire(&statement.settlement)?,
        service_credits: wire(&statement.service_credits)?,
        standing: wire(status)?,
        seal,
        adjustments: wire(&adjustments)?,
    })
}

/// Each flagged bureau's budget status against what it owes, its adjustments included, as the
/// Bureau's status and the budget metrics count it.
fn budgets_against_payable(
    statement: &mut Statement,
    payable: &BTreeMap<String, zhengyun_metering::Payable>,
) -> ApiResult<()> {
    for bureau in &mut statement.bureaus {
        let (Some(status), Some(owed)) = (&bureau.budget, payable.get(&bureau.bureau)) else {
            continue;
        };
        bureau.budget = Some(
            zhengyun_metering::budget_status(status.budget, owed.payable)
                .map_err(|e| Problem::conflict(e.to_string()))?,
        );
    }
    Ok(())
}

/// The checkpoint stream of the metering sampler: how far the ledger is complete.
const LEDGER_STREAM: &str = "usage";

const CLOSERS: [Role; 2] = [Role::PlatformAdmin, Role::Finance];

/// The instants `month` covers in the platform's calendar.
fn month_range(state: &AppState, month: Month) -> ApiResult<TimeRange> {
    state
        .calendar()
        .month_range(month)
        .map_err(|e| Problem::invalid_field("month", e.to_string()))
}

fn month_param(text: &str) -> ApiResult<Month> {
    text.parse()
        .map_err(|e: zhengyun_metering::Error| Problem::invalid_field("month", e.to_string()))
}

/// Closes a month: its statement, as the ledger gives it now, is stored and never changes
/// again (finance, platform admin). Only a month that has ended by the platform's clock, that
/// the ledger covers to its end, and whose metering gaps are all waived can be closed.
#[utoipa::path(post, path = "/api/v1/statements/{month}/close", tag = "statements",
    params(("month" = String, Path, description = "YYYY-MM")),
    responses((status = 201, description = "The month is closed", body = ClosedMonth),
        (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn close_month(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path(month): Path<String>,
) -> ApiResult<(StatusCode, JsonBody<ClosedMonth>)> {
    audit.about("statement.close", format!("statements/{month}"), None);
    caller.require(&CLOSERS)?;
    let month = month_param(&month)?;
    let range = month_range(&state, month)?;
    let covered = state.store().checkpoint(LEDGER_STREAM).await?;
    zhengyun_metering::closable(month, &range, state.clock().now(), covered)
        .map_err(|e| Problem::conflict(e.to_string()))?;
    let gaps = state
        .store()
        .month_gaps(LEDGER_STREAM, month, range)
        .await?;
    zhengyun_metering::check_gaps(month, &gaps).map_err(|e| Problem::conflict(e.to_string()))?;
    let schedule = current_schedule(&state).await?;
    let (_, budgets) = bureaus(&state).await?;
    let statement = state
        .store()
        .computed_statement(month, state.calendar(), &schedule, &budgets, None)
        .await?;
    let seal = state
        .store()
        .close_statement_as(month, &statement, caller.name())
        .await?;
    audit.outcome(format!(
        "closed at {} {}, seal {seal}",
        statement.platform.amount, statement.currency
    ));
    let answer = ClosedMonth {
        month: statement.month.to_string(),
        currency: statement.currency.clone(),
        amount: statement.platform.amount.to_string(),
        bureaus: statement.bureaus.len(),
        lines: statement.lines.len(),
        seal,
    };
    Ok((StatusCode::CREATED, JsonBody(answer)))
}

/// Why adjustments were issued when the caller does not say.
const DEFAULT_NOTE: &str = "usage recounted from the ledger after closing";

/// Adjustment options.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AdjustQuery {
    /// Why the adjustments are issued, in words; kept on every line issued.
    #[param(example = "operator outage of 2026-11-12 recounted")]
    pub note: Option<String>,
}

/// Whether the seal of a closed month, and every seal before it in closing order, still
/// matches the stored statements (auditor, finance, platform admin). 404 if the month is not
/// closed.
#[utoipa::path(get, path = "/api/v1/statements/{month}/verify", tag = "statements",
    params(("month" = String, Path, description = "YYYY-MM")),
    responses((status = 200, body = MonthVerification),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn verify_month(
    State(state): State<AppState>,
    caller: Caller,
    Path(month): Path<String>,
) -> ApiResult<JsonBody<MonthVerification>> {
    caller.require(&VERIFIERS)?;
    let month = month_param(&month)?;
    if !state.store().closed_months().await?.contains(&month) {
        return Err(Problem::not_found(format!("{month} is not closed")));
    }
    let verification = state.store().verify_statement_seals(Some(month)).await?;
    Ok(JsonBody(MonthVerification::of(
        month.to_string(),
        wire(&verification)?,
    )))
}

/// Walks the whole chain of seals of closed statements, in closing order, and names the first
/// month that does not hold (auditor, finance, platform admin).
#[utoipa::path(get, path = "/api/v1/statements/verify", tag = "statements",
    responses((status = 200, body = SealVerificationView), (status = 403, body = Problem)),
    security(("bearer" = [])))]
async fn verify_all(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<JsonBody<SealVerificationView>> {
    caller.require(&VERIFIERS)?;
    let verification = state.store().verify_statement_seals(None).await?;
    Ok(JsonBody(wire(&verification)?))
}

/// Waives the metering gaps of a month recorded so far, and the part of it before the ledger
/// began, so that the month can be closed (finance, platform admin). The waiver, its author
/// and reason show on each gap of the statement; gaps recorded later need another waiver. A
/// closed month cannot be waived any more.
#[utoipa::path(post, path = "/api/v1/statements/{month}/gaps/waive", tag = "statements",
    params(("month" = String, Path, description = "YYYY-MM")),
    request_body = WaiveGaps,
    responses((status = 200, description = "The gaps this waiver covers", body = Waived),
        (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn waive_gaps(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path(month): Path<String>,
    Json(body): Json<WaiveGaps>,
) -> ApiResult<JsonBody<Waived>> {
    audit.about("statement.waive-gaps", format!("statements/{month}"), None);
    caller.require(&CLOSERS)?;
    let month = month_param(&month)?;
    let range = month_range(&state, month)?;
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
    Ok(JsonBody(wire(&waived)?))
}

/// Issues signed adjustment lines for a closed month: the differences between the statement it
/// was closed with (plus earlier adjustments) and what the ledger gives now, e.g. after late
/// usage arrived (finance, platform admin). The closed lines themselves never change.
#[utoipa::path(post, path = "/api/v1/statements/{month}/adjustments", tag = "statements",
    params(("month" = String, Path, description = "YYYY-MM"), AdjustQuery),
    responses(
        (status = 200, description = "Nothing to adjust", body = Adjustments),
        (status = 201, description = "Adjustment lines issued", body = Adjustments),
        (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn adjust_month(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path(month): Path<String>,
    Query(query): Query<AdjustQuery>,
) -> ApiResult<(StatusCode, JsonBody<Adjustments>)> {
    audit.about("statement.adjust", format!("statements/{month}"), None);
    caller.require(&CLOSERS)?;
    let month = month_param(&month)?;
    let Some(record) = state.store().closed_record(month).await? else {
        return Err(Problem::conflict(format!(
            "{month} is not closed; an open month is corrected by the ledger itself"
        )));
    };
    let closed = record.statement;
    let issued = state.store().adjustments(month).await?;
    // The prices the month was closed with: a card that appeared after closing, back-dated or
    // not, never reprices it; only late usage makes adjustments.
    let schedule = schedule_as_of(&state, record.closed_at).await?;
    let (_, budgets) = bureaus(&state).await?;
    let now = state
        .store()
        .computed_statement(month, state.calendar(), &schedule, &budgets, None)
        .await?;
    let mut lines = zhengyun_metering::adjustments(&closed, &issued, &now).map_err(|e| {
        Problem::conflict(format!(
            "unable to compare {month} with its closed statement: {e}"
        ))
    })?;
    let note = query.note.unwrap_or_else(|| DEFAULT_NOTE.to_owned());
    let issued_at = state.clock().now_second();
    for line in &mut lines {
        line.note = note.clone();
        line.issued_by = caller.name().to_owned();
        line.issued_at = Some(issued_at);
    }
    if lines.is_empty() {
        return Ok((
            StatusCode::OK,
            JsonBody(Adjustments {
                month: month.to_string(),
                adjustments: Vec::new(),
            }),
        ));
    }
    state
        .store()
        .add_adjustments(month, issued.len(), &lines)
        .await?;
    audit.outcome(format!("{} adjustment lines", lines.len()));
    Ok((
        StatusCode::CREATED,
        JsonBody(Adjustments {
            month: month.to_string(),
            adjustments: wire(&lines)?,
        }),
    ))
}

/// The range `[from, to)` given as RFC 3339 instants; `from` is the start of this month and
/// `to` now when absent.
pub(crate) fn range_so_far(
    state: &AppState,
    from: Option<&str>,
    to: Option<&str>,
) -> ApiResult<TimeRange> {
    let now = state.clock().now_second();
    let from = match instant("from", from)? {
        Some(from) => from,
        None => state
            .calendar()
            .month_range(state.calendar().month_of(now))
            .map_err(|e| Problem::invalid_field("from", e.to_string()))?
            .start(),
    };
    let to = instant("to", to)?.unwrap_or(now);
    TimeRange::new(from, to)
        .map_err(|e| Problem::invalid_field("to", format!("must be after from: {e}")))
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
            body = Usage),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn get_usage(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(bureau): Path<String>,
    Query(query): Query<UsageQuery>,
) -> ApiResult<JsonOrCsv<Usage>> {
    caller.require(&READERS)?;
    caller.require_bureau(&bureau)?;
    state.read_bureau(&bureau).await?;
    let range = range_so_far(&state, query.from.as_deref(), query.to.as_deref())?;
    let (from, to) = (range.start(), range.end());
    let usage = state.store().bureau_usage(&bureau, range).await?;
    let rows: Vec<UsageRow> = usage
        .iter()
        .map(|u| UsageRow {
            environment: u.environment.clone(),
            resource: u.resource.as_str().to_owned(),
            kind: u.kind.as_str().to_owned(),
            unit_seconds: u.unit_seconds.to_string(),
            unit_hours: zhengyun_metering::unit_hours(u.unit_seconds, u.resource)
                .map(|h| h.to_string())
                .unwrap_or_default(),
            unit: zhengyun_metering::PriceUnit::of(u.resource).name.to_owned(),
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
            table.push(vec![
                bureau.clone(),
                row.environment.clone(),
                row.resource.clone(),
                row.kind.clone(),
                row.unit_seconds.clone(),
                row.unit_hours.clone(),
                row.unit.clone(),
                from.to_string(),
                to.to_string(),
            ]);
        }
        let text = csv_table(&table);
        return Ok(JsonOrCsv::Csv(download(
            &format!("zhengyun-usage-{bureau}.csv"),
            &text,
            Charset::Utf8,
        )));
    }
    Ok(JsonOrCsv::Json(Usage {
        bureau,
        from: from.to_string(),
        to: to.to_string(),
        usage: rows,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use zhengyun_metering::{
        AdjustmentLine, AdjustmentReason, BudgetLevel, Calendar, LineKey, Meter, RateCard,
        UsageInterval, UsageKind,
    };
    use zhengyun_model::{names::Tier, quantity::Resource};

    fn d(text: &str) -> Decimal {
        Decimal::from_str_exact(text).expect("decimal")
    }

    #[test]
    fn a_credit_brings_a_bureau_back_under_its_budget_on_the_statement() {
        let meter = Meter::new(
            "wjw",
            "wjw-prod",
            Resource::Cpu,
            UsageKind::Reserved,
            Tier::Gold,
        )
        .expect("meter");
        let start: jiff::Timestamp = "2026-11-05T10:00:00Z".parse().expect("ts");
        let end = start + jiff::SignedDuration::from_hours(1);
        // 10 cores for an hour at 1.00 a core-hour reserved: 10.00.
        let interval = UsageInterval::new(meter.clone(), start, end, 10_000).expect("interval");
        let card = RateCard::new("2026-01-01".parse().expect("date"), "CNY")
            .with_prices(Tier::Gold, Resource::Cpu, d("1"), d("1"))
            .expect("price");
        let schedule = RateSchedule::new([card]).expect("schedule");
        let month = Month::new(2026, 11).expect("month");
        let mut statement =
            Statement::build(month, &Calendar::default(), &schedule, &[interval]).expect("build");
        statement
            .flag_budgets(&BTreeMap::from([("wjw".to_owned(), d("9.00"))]))
            .expect("flag");
        assert_eq!(
            statement.bureaus[0].budget.as_ref().map(|b| b.level),
            Some(BudgetLevel::Exceeded)
        );
        let credit = AdjustmentLine {
            month,
            key: LineKey {
                meter,
                rate_card: "2026-01-01".parse().expect("date"),
            },
            reason: AdjustmentReason::Correction,
            unit_seconds: -7_200_000,
            amount: d("-2.00"),
            unit_price: d("1"),
            note: "two core-hours metered twice".to_owned(),
            issued_by: "finance".to_owned(),
            issued_at: None,
        };
        let (payable, _) = zhengyun_metering::payable(&statement, &[credit]).expect("payable");
        budgets_against_payable(&mut statement, &payable).expect("budgets");
        let status = statement.bureaus[0].budget.as_ref().expect("budget");
        assert_eq!(
            (status.spent, status.level),
            (d("8.00"), BudgetLevel::Warning)
        );
    }

    /// The answer as the handler built it before the contract's types: the statement's JSON
    /// with the standing, seal, names, payables and adjustments written into it.
    fn answer_as_json(
        statement: &Statement,
        status: &StatementStatus,
        seal: Option<&str>,
        adjustments: &[AdjustmentLine],
        (by_bureau, platform): &(BTreeMap<String, Payable>, Payable),
        names: &BTreeMap<String, String>,
    ) -> serde_json::Value {
        use serde_json::json;
        let mut body = serde_json::to_value(statement).expect("json");
        let object = body.as_object_mut().expect("object");
        let serde_json::Value::Object(fields) = serde_json::to_value(status).expect("json") else {
            panic!("the status is an object");
        };
        object.extend(fields);
        if let Some(seal) = seal {
            object.insert("seal".to_owned(), json!(seal));
        }
        for entry in body["bureaus"].as_array_mut().expect("bureaus") {
            let code = entry["bureau"].as_str().unwrap_or_default().to_owned();
            entry["displayName"] = json!(names.get(&code));
            if let Some(owed) = by_bureau.get(&code) {
                entry["adjustmentsAmount"] = json!(owed.adjustments);
                entry["settlementAmount"] = json!(owed.settlement);
                entry["serviceCreditsAmount"] = json!(owed.service_credits);
                entry["payable"] = json!(owed.payable);
            }
        }
        body["platform"]["adjustmentsAmount"] = json!(platform.adjustments);
        body["platform"]["settlementAmount"] = json!(platform.settlement);
        body["platform"]["serviceCreditsAmount"] = json!(platform.service_credits);
        body["platform"]["payable"] = json!(platform.payable);
        body["adjustments"] = serde_json::to_value(adjustments).expect("json");
        body["gaps"] = serde_json::to_value(&statement.gaps).expect("json");
        body["settlement"] = serde_json::to_value(&statement.settlement).expect("json");
        body["serviceCredits"] = serde_json::to_value(&statement.service_credits).expect("json");
        body
    }

    #[test]
    fn the_typed_statement_is_the_same_json_as_the_ledger_statement_with_its_additions() {
        use zhengyun_metering::{Gap, GapKind, Waiver};
        let bureau = |code: &str| {
            Meter::new(
                code,
                format!("{code}-prod"),
                Resource::Cpu,
                UsageKind::Reserved,
                Tier::Gold,
            )
            .expect("meter")
        };
        let start: jiff::Timestamp = "2026-11-05T10:00:00Z".parse().expect("ts");
        let end = start + jiff::SignedDuration::from_hours(1);
        let intervals = [
            UsageInterval::new(bureau("wjw"), start, end, 10_000).expect("interval"),
            UsageInterval::new(bureau("jyj"), start, end, 2_000).expect("interval"),
        ];
        let card = RateCard::new("2026-01-01".parse().expect("date"), "CNY")
            .with_prices(Tier::Gold, Resource::Cpu, d("1"), d("1"))
            .expect("price");
        let schedule = RateSchedule::new([card]).expect("schedule");
        let month = Month::new(2026, 11).expect("month");
        let mut statement =
            Statement::build(month, &Calendar::default(), &schedule, &intervals).expect("build");
        statement
            .flag_budgets(&BTreeMap::from([("wjw".to_owned(), d("9.00"))]))
            .expect("flag");
        let mut waived = Gap::new(start, end, GapKind::Unmetered, "operator down");
        waived.waived = Some(Waiver {
            by: "finance".to_owned(),
            at: end,
            reason: "settled".to_owned(),
        });
        statement.gaps = vec![
            waived,
            Gap::new(
                end,
                end + jiff::SignedDuration::from_hours(1),
                GapKind::Reconstructed,
                "watch lost",
            ),
        ];
        {
            use zhengyun_metering::settlement::{Role, SettlementLine};
            let line = |role, bureau: Option<&str>, environment: Option<&str>, fen| {
                SettlementLine::new(
                    role,
                    bureau.map(str::to_owned),
                    environment.map(str::to_owned),
                    environment.map(|_| Tier::Gold),
                    Resource::Cpu,
                    3_600_000,
                    fen,
                )
                .expect("settlement line")
            };
            statement
                .set_settlement(vec![
                    line(Role::Burst, Some("wjw"), Some("wjw-prod"), 120),
                    line(Role::Lent, Some("jyj"), None, 84),
                    line(Role::Platform, None, None, 36),
                ])
                .expect("balanced");
            use zhengyun_metering::availability::{ServiceCreditLine, credit_amount};
            let charges = statement.environment_amounts()["wjw-prod"];
            statement
                .set_service_credits(vec![ServiceCreditLine {
                    bureau: "wjw".to_owned(),
                    environment: "wjw-prod".to_owned(),
                    tier: Tier::Gold,
                    objective: "99.95".to_owned(),
                    availability: d("99.930"),
                    measured_minutes: 43_200,
                    bad_minutes: 30,
                    credit_percent: 10,
                    charges,
                    amount: credit_amount(charges, 10).expect("credit"),
                }])
                .expect("credits");
        }
        let credit = AdjustmentLine {
            month,
            key: LineKey {
                meter: bureau("wjw"),
                rate_card: "2026-01-01".parse().expect("date"),
            },
            reason: AdjustmentReason::Correction,
            unit_seconds: -7_200_000,
            amount: d("-2.00"),
            unit_price: d("1"),
            note: "metered twice".to_owned(),
            issued_by: "finance".to_owned(),
            issued_at: Some(end),
        };
        let adjustments = [credit];
        let payable = zhengyun_metering::payable(&statement, &adjustments).expect("payable");
        let names = BTreeMap::from([("wjw".to_owned(), "卫健委".to_owned())]);
        let standings = [
            (
                StatementStatus::Provisional {
                    covered_until: None,
                },
                None,
            ),
            (
                StatementStatus::Provisional {
                    covered_until: Some(end),
                },
                None,
            ),
            (
                StatementStatus::Closed {
                    closed_at: end,
                    closed_by: "finance".to_owned(),
                },
                Some("ab".repeat(32)),
            ),
        ];
        for (status, seal) in standings {
            let typed = statement_view(
                &statement,
                &status,
                seal.clone(),
                &adjustments,
                &payable,
                &names,
            )
            .expect("a statement view");
            assert_eq!(
                serde_json::to_value(&typed).expect("json"),
                answer_as_json(
                    &statement,
                    &status,
                    seal.as_deref(),
                    &adjustments,
                    &payable,
                    &names
                )
            );
        }
    }
}
