//! Finance's page: a month's cost by bureau (sortable, the largest charted), reserved against
//! consumed, budgets with their 80 % and 100 % flags, whether the month is provisional or
//! closed, the CSV, the month's metering gaps and their waiver, and closing an ended month.

use std::collections::HashMap;

use axum::{
    Form,
    extract::{Query, State},
    http::{Method, StatusCode},
    response::Response,
};
use jiff::Timestamp;
use maud::{Markup, html};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    console::{
        Visitor,
        layout::{csrf_field, frame, notice, respond},
        pages::{csv_download, segment},
        svg,
    },
    state::AppState,
};

/// The most bureaus the chart shows: the largest payable amounts.
const CHART_BARS: usize = 15;

/// The month (and order) asked for.
#[derive(Deserialize, Default)]
pub struct MonthQuery {
    month: Option<String>,
    sort: Option<String>,
}

fn amount(value: &Value) -> f64 {
    value.as_str().and_then(|a| a.parse().ok()).unwrap_or(0.0)
}

/// Each bureau's reserved and consumed amounts in `statement`'s lines, summed exactly, in one
/// pass over the lines.
fn by_kind(statement: &Value) -> HashMap<&str, (Decimal, Decimal)> {
    let mut sums: HashMap<&str, (Decimal, Decimal)> = HashMap::new();
    for line in statement["lines"].as_array().into_iter().flatten() {
        let (Some(bureau), Some(amount)) = (
            line["bureau"].as_str(),
            line["amount"]
                .as_str()
                .and_then(|a| a.parse::<Decimal>().ok()),
        ) else {
            continue;
        };
        let slot = sums.entry(bureau).or_default();
        match line["kind"].as_str() {
            Some("reserved") => slot.0 += amount,
            Some("consumed") => slot.1 += amount,
            _ => {}
        }
    }
    sums
}

/// What `bureau` was charged for borrowing (`burst`) and credited for lending (`lent`) in
/// `statement`'s settlement, and what the platform kept.
fn settled(statement: &Value, bureau: Option<&str>, role: &str) -> f64 {
    statement["settlement"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|line| line["role"] == role && bureau.is_none_or(|b| line["bureau"] == b))
        .map(|line| amount(&line["amount"]))
        .sum()
}

/// A bureau's name as the table and chart show it: its official name, else its code.
fn name_of(bureau: &Value) -> &str {
    bureau["displayName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .or(bureau["bureau"].as_str())
        .unwrap_or_default()
}

/// What a bureau owes for the month: its payable amount (the lines' amount when the API
/// gives none).
fn payable(bureau: &Value) -> f64 {
    amount(if bureau["payable"].is_string() {
        &bureau["payable"]
    } else {
        &bureau["amount"]
    })
}

/// `bureaus` in the order the table is asked for: by name (the official name) or, by
/// default, by amount, the largest first.
fn sorted(mut bureaus: Vec<Value>, sort: Option<&str>) -> Vec<Value> {
    match sort {
        Some("name") => bureaus.sort_by(|a, b| {
            name_of(a)
                .cmp(name_of(b))
                .then_with(|| a["bureau"].as_str().cmp(&b["bureau"].as_str()))
        }),
        _ => bureaus.sort_by(|a, b| amount(&b["amount"]).total_cmp(&amount(&a["amount"]))),
    }
    bureaus
}

/// The chart's bars: the [`CHART_BARS`] largest payable amounts, largest first, whatever the
/// table's order.
fn chart_bars(bureaus: &[Value]) -> Vec<(String, f64)> {
    let mut bars: Vec<(String, f64)> = bureaus
        .iter()
        .map(|b| (name_of(b).to_owned(), payable(b)))
        .collect();
    bars.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    bars.truncate(CHART_BARS);
    bars
}

/// Whether the month of `statement` has ended at `now` (only then may it be closed).
fn ended(statement: &Value, now: Timestamp) -> bool {
    statement["period"]["end"]
        .as_str()
        .and_then(|end| end.parse::<Timestamp>().ok())
        .is_some_and(|end| now >= end)
}

/// `GET /console/finance?month=YYYY-MM&sort=amount|name`.
pub async fn page(
    visitor: Visitor,
    State(state): State<AppState>,
    Query(query): Query<MonthQuery>,
) -> Response {
    render(&visitor, &state, &query, None).await
}

async fn render(
    visitor: &Visitor,
    state: &AppState,
    query: &MonthQuery,
    outcome: Option<(StatusCode, Result<String, String>)>,
) -> Response {
    match content(visitor, state, query, outcome.as_ref().map(|(_, o)| o)).await {
        Ok((status, markup)) => respond(outcome.map_or(status, |(s, _)| s), markup),
        Err(response) => response,
    }
}

/// The page, and its status: the statement's refusal when it cannot be read (shown in the
/// page, under the month's selector).
async fn content(
    visitor: &Visitor,
    state: &AppState,
    query: &MonthQuery,
    outcome: Option<&Result<String, String>>,
) -> Result<(StatusCode, Markup), Response> {
    let lang = visitor.lang;
    let asked = query.month.as_deref().filter(|m| !m.is_empty());
    let path = match asked {
        Some(month) => format!("/api/v1/statements?month={}", segment(month)),
        None => "/api/v1/statements".to_owned(),
    };
    let reply = visitor.api(Method::GET, &path, None).await?;
    let selector = |month: &str| {
        html! {
            form method="get" action="/console/finance" {
                label { (lang.t("finance.month")) " " input type="month" name="month" value=(month); }
                button type="submit" { (lang.t("finance.show")) }
            }
        }
    };
    if !reply.status.is_success() {
        let month = asked.unwrap_or_default();
        let markup = frame(
            visitor,
            &lang.t("finance.title"),
            html! {
                @if let Some(outcome) = outcome { (notice(outcome)) }
                (selector(month))
                (notice(&Err(reply.detail(lang))))
            },
        );
        return Ok((reply.status, markup));
    }
    let statement = reply.body;
    let month = statement["month"].as_str().unwrap_or_default().to_owned();
    let all = statement["bureaus"].as_array().cloned().unwrap_or_default();
    let count = all.len();
    let chart = chart_bars(&all);
    let bureaus = sorted(all, query.sort.as_deref());
    let closed = statement["status"] == "closed";
    let may_close = !closed && ended(&statement, state.clock().now());
    let seal = statement["seal"].as_str().unwrap_or_default();
    let currency = lang.t("finance.currency");
    let gaps = statement["gaps"].as_array().cloned().unwrap_or_default();
    let open_gaps = gaps.iter().filter(|g| g["waived"].is_null()).count();
    let chart_title = if count > chart.len() {
        lang.tf(
            "finance.chart_top",
            &[
                ("shown", &chart.len().to_string()),
                ("count", &count.to_string()),
            ],
        )
    } else {
        lang.t("finance.chart")
    };
    let csv = format!("/console/finance/statement.csv?month={}", segment(&month));
    let kinds = by_kind(&statement);
    let markup = frame(
        visitor,
        &format!("{} · {month}", lang.t("finance.title")),
        html! {
            @if let Some(outcome) = outcome { (notice(outcome)) }
            (selector(&month))
            p {
                (lang.t("finance.state")) ": "
                @if closed { (lang.tf("finance.closed", &[("seal", &seal.chars().take(12).collect::<String>())])) }
                @else { (lang.t("finance.provisional")) }
                " · " a href=(csv) download { (lang.t("finance.csv")) }
            }
            @if bureaus.is_empty() { p.muted { (lang.t("finance.empty")) } }
            @if !chart.is_empty() { (svg::bars(&chart_title, &chart, &currency)) }
            @if !bureaus.is_empty() { div.table-wrap { table {
                thead { tr {
                    th scope="col" { a href={ "/console/finance?month=" (month) "&sort=name" } { (lang.t("finance.bureau")) } }
                    th.num scope="col" { a href={ "/console/finance?month=" (month) "&sort=amount" } { (lang.t("finance.amount")) } }
                    th.num scope="col" { (lang.t("finance.reserved")) }
                    th.num scope="col" { (lang.t("finance.consumed")) }
                    th.num scope="col" { (lang.t("finance.burst")) }
                    th.num scope="col" { (lang.t("finance.lent")) }
                    th.num scope="col" { (lang.t("finance.credits")) }
                    th.num scope="col" { (lang.t("finance.adjustments")) }
                    th.num scope="col" { (lang.t("finance.payable")) }
                    th scope="col" { (lang.t("finance.budget")) }
                } }
                tbody { @for bureau in &bureaus {
                    @let code = bureau["bureau"].as_str().unwrap_or_default();
                    @let (reserved, consumed) = kinds.get(code).copied().unwrap_or_default();
                    tr {
                        th scope="row" { (name_of(bureau)) " " span.muted { (code) } }
                        td.num { (bureau["amount"].as_str().unwrap_or_default()) }
                        td.num { (format!("{reserved:.2}")) }
                        td.num { (format!("{consumed:.2}")) }
                        td.num { (format!("{:.2}", settled(&statement, Some(code), "burst"))) }
                        td.num { (format!("{:.2}", settled(&statement, Some(code), "lent"))) }
                        td.num { (bureau["serviceCreditsAmount"].as_str().unwrap_or("0.00")) }
                        td.num { (bureau["adjustmentsAmount"].as_str().unwrap_or("0.00")) }
                        td.num { (bureau["payable"].as_str().or(bureau["amount"].as_str()).unwrap_or_default()) }
                        td {
                            @if let Some(budget) = bureau["budget"].as_object() {
                                (budget.get("spent").and_then(Value::as_str).unwrap_or_default()) " / "
                                (budget.get("budget").and_then(Value::as_str).unwrap_or_default())
                                @match budget.get("level").and_then(Value::as_str) {
                                    Some("warning") => { " " span.flag-warning { (lang.t("finance.budget_warn")) } }
                                    Some("exceeded") => { " " span.flag-exceeded { (lang.t("finance.budget_over")) } }
                                    _ => {}
                                }
                            }
                        }
                    }
                } }
            } } }
            @let platform_share = settled(&statement, None, "platform");
            @if platform_share != 0.0 {
                p.muted { (lang.tf("finance.platform_share", &[("amount", &format!("{platform_share:.2}"))])) }
            }
            @if closed {
                h2 { (lang.t("finance.adjust")) }
                p.muted { (lang.t("finance.adjust_help")) }
                form method="post" action="/console/finance/adjust" {
                    (csrf_field(visitor))
                    input type="hidden" name="month" value=(month);
                    label { (lang.t("finance.adjust_note")) " " input type="text" name="note" size="30" required; }
                    label { input type="checkbox" name="confirm" value="yes" required; " " (lang.t("finance.adjust_confirm")) }
                    button type="submit" { (lang.t("finance.adjust")) }
                }
            }
            @if !gaps.is_empty() {
                h2 { (lang.t("finance.gaps")) }
                div.table-wrap { table {
                    thead { tr {
                        th scope="col" { (lang.t("finance.gap_from")) } th scope="col" { (lang.t("finance.gap_to")) }
                        th scope="col" { (lang.t("finance.gap_kind")) } th scope="col" { (lang.t("finance.gap_reason")) }
                        th scope="col" { (lang.t("finance.gap_waived")) }
                    } }
                    tbody { @for gap in &gaps { tr {
                        td { (gap["from"].as_str().unwrap_or_default()) }
                        td { (gap["to"].as_str().unwrap_or_default()) }
                        td { (lang.word("gap_kind", gap["kind"].as_str().unwrap_or_default())) }
                        td { (gap["reason"].as_str().unwrap_or_default()) }
                        td {
                            @if let Some(waiver) = gap["waived"].as_object() {
                                (waiver.get("reason").and_then(Value::as_str).unwrap_or_default())
                                " " span.muted { (waiver.get("by").and_then(Value::as_str).unwrap_or_default()) }
                            } @else { (lang.t("finance.gap_open")) }
                        }
                    } } }
                } }
                @if !closed && open_gaps > 0 {
                    form method="post" action="/console/finance/waive" {
                        (csrf_field(visitor))
                        input type="hidden" name="month" value=(month);
                        label { (lang.t("finance.waive_reason")) " " input type="text" name="reason" size="40" required; }
                        label { input type="checkbox" name="confirm" value="yes" required; " " (lang.t("finance.waive_confirm")) }
                        button type="submit" { (lang.t("finance.waive")) }
                    }
                }
            }
            @if may_close {
                h2 { (lang.t("finance.close")) }
                form method="post" action="/console/finance/close" {
                    (csrf_field(visitor))
                    input type="hidden" name="month" value=(month);
                    label { input type="checkbox" name="confirm" value="yes" required; " " (lang.t("finance.close_confirm")) }
                    button.danger type="submit" { (lang.t("finance.close")) }
                }
            } @else if !closed {
                p.muted { (lang.t("finance.not_ended")) }
            }
        },
    );
    Ok((StatusCode::OK, markup))
}

/// `GET /console/finance/statement.csv?month=`: the API's CSV, as a download.
pub async fn csv(visitor: Visitor, Query(query): Query<MonthQuery>) -> Response {
    let month = query.month.unwrap_or_default();
    let path = format!("/api/v1/statements?month={}", segment(&month));
    csv_download(&visitor, &path, &format!("zhengyun-{month}.csv")).await
}

/// The closing form.
#[derive(Deserialize)]
pub struct CloseForm {
    csrf: Option<String>,
    month: String,
    confirm: Option<String>,
}

/// `POST /console/finance/close`: closes an ended month once confirmed.
pub async fn close(
    visitor: Visitor,
    State(state): State<AppState>,
    Form(form): Form<CloseForm>,
) -> Response {
    let path = format!("/api/v1/statements/{}/close", segment(&form.month));
    let action = MonthAction {
        csrf: form.csrf.as_deref(),
        month: &form.month,
        confirmed: form.confirm.as_deref() == Some("yes"),
        unconfirmed: "finance.close_confirm",
        path,
        body: None,
    };
    act(&visitor, &state, action, |_| {
        ("finance.closed_now", String::new())
    })
    .await
}

/// The waiver form.
#[derive(Deserialize)]
pub struct WaiveForm {
    csrf: Option<String>,
    month: String,
    #[serde(default)]
    reason: String,
    confirm: Option<String>,
}

/// `POST /console/finance/waive`: waives the month's metering gaps recorded so far, once
/// confirmed, with the reason given, through the API's own route.
pub async fn waive(
    visitor: Visitor,
    State(state): State<AppState>,
    Form(form): Form<WaiveForm>,
) -> Response {
    let reason = form.reason.trim();
    let path = format!("/api/v1/statements/{}/gaps/waive", segment(&form.month));
    let action = MonthAction {
        csrf: form.csrf.as_deref(),
        month: &form.month,
        confirmed: form.confirm.as_deref() == Some("yes") && !reason.is_empty(),
        unconfirmed: "finance.waive_confirm",
        path,
        body: Some(json!({ "reason": reason })),
    };
    act(&visitor, &state, action, |body| {
        let count = body["gaps"].as_array().map_or(0, Vec::len);
        ("finance.waived", count.to_string())
    })
    .await
}

/// The adjustments form.
#[derive(Deserialize)]
pub struct AdjustForm {
    csrf: Option<String>,
    month: String,
    #[serde(default)]
    note: String,
    confirm: Option<String>,
}

/// `POST /console/finance/adjust`: issues the signed adjustment lines of a closed month, once
/// confirmed, with the reason given.
pub async fn adjust(
    visitor: Visitor,
    State(state): State<AppState>,
    Form(form): Form<AdjustForm>,
) -> Response {
    let note = form.note.trim();
    let path = format!(
        "/api/v1/statements/{}/adjustments?note={}",
        segment(&form.month),
        segment(note)
    );
    let action = MonthAction {
        csrf: form.csrf.as_deref(),
        month: &form.month,
        confirmed: form.confirm.as_deref() == Some("yes") && !note.is_empty(),
        unconfirmed: "finance.adjust_confirm",
        path,
        body: None,
    };
    act(&visitor, &state, action, |body| {
        let count = body["adjustments"].as_array().map_or(0, Vec::len);
        let key = if count == 0 {
            "finance.nothing_to_adjust"
        } else {
            "finance.adjusted"
        };
        (key, count.to_string())
    })
    .await
}

/// A confirmed `POST` on a month, from a form.
struct MonthAction<'a> {
    csrf: Option<&'a str>,
    month: &'a str,
    /// Whether the form was confirmed (and complete).
    confirmed: bool,
    /// The words asking for confirmation, shown when it was not.
    unconfirmed: &'static str,
    /// The API's route.
    path: String,
    /// The JSON body sent, if any.
    body: Option<Value>,
}

/// Does `action` once its CSRF token and confirmation are checked, and shows the month again
/// with the outcome: `news` gives the key of the words for the API's answer, and the `{count}`
/// they may show.
async fn act(
    visitor: &Visitor,
    state: &AppState,
    action: MonthAction<'_>,
    news: impl FnOnce(&Value) -> (&'static str, String),
) -> Response {
    if let Err(refused) = visitor.check_csrf(action.csrf) {
        return refused;
    }
    let query = MonthQuery {
        month: Some(action.month.to_owned()),
        sort: None,
    };
    if !action.confirmed {
        let outcome = Err(visitor.lang.t(action.unconfirmed));
        return render(
            visitor,
            state,
            &query,
            Some((StatusCode::UNPROCESSABLE_ENTITY, outcome)),
        )
        .await;
    }
    let reply = match visitor
        .api(Method::POST, &action.path, action.body.as_ref())
        .await
    {
        Ok(reply) => reply,
        Err(response) => return response,
    };
    let outcome = if reply.status.is_success() {
        let (key, count) = news(&reply.body);
        Ok(visitor
            .lang
            .tf(key, &[("month", action.month), ("count", &count)]))
    } else {
        Err(reply.detail(visitor.lang))
    };
    render(visitor, state, &query, Some((reply.status, outcome))).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn bureau(code: &str, name: &str, amount: &str, payable: &str) -> Value {
        json!({"bureau": code, "displayName": name, "amount": amount, "payable": payable})
    }

    #[test]
    fn the_chart_shows_the_fifteen_largest_payable_amounts_whatever_the_tables_order() {
        let bureaus: Vec<Value> = (0..20)
            .map(|n| {
                bureau(
                    &format!("b{n:02}"),
                    &format!("局{n:02}"),
                    "1.00",
                    &format!("{n}.00"),
                )
            })
            .collect();
        let by_name = sorted(bureaus.clone(), Some("name"));
        let bars = chart_bars(&by_name);
        assert_eq!(bars.len(), CHART_BARS);
        assert_eq!(bars[0], ("局19".to_owned(), 19.0));
        assert_eq!(bars[14], ("局05".to_owned(), 5.0));
        assert_eq!(chart_bars(&bureaus), bars);
    }

    #[test]
    fn sorting_by_name_follows_the_official_name_and_by_default_the_amount() {
        let bureaus = vec![
            bureau("aaa", "区卫生健康委员会", "5.00", "5.00"),
            bureau("zzz", "区教育委员会", "9.00", "9.00"),
            json!({"bureau": "mmm", "amount": "1.00"}),
        ];
        let codes = |list: Vec<Value>| -> Vec<String> {
            list.iter()
                .map(|b| b["bureau"].as_str().unwrap_or_default().to_owned())
                .collect()
        };
        // By the name shown: the code stands in for a bureau without one.
        assert_eq!(
            codes(sorted(bureaus.clone(), Some("name"))),
            ["mmm", "aaa", "zzz"]
        );
        assert_eq!(codes(sorted(bureaus, None)), ["zzz", "aaa", "mmm"]);
    }

    #[test]
    fn a_month_may_be_closed_only_once_it_has_ended() {
        let statement = json!({"period": {"start": "2026-10-31T16:00:00Z",
            "end": "2026-11-30T16:00:00Z"}});
        let at = |text: &str| text.parse::<Timestamp>().expect("instant");
        assert!(!ended(&statement, at("2026-11-15T00:00:00Z")));
        assert!(!ended(&statement, at("2026-11-30T15:59:59Z")));
        assert!(ended(&statement, at("2026-11-30T16:00:00Z")));
        assert!(!ended(&json!({}), at("2026-12-30T16:00:00Z")));
    }
}
