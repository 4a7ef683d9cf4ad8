//! Finance's page: a month's cost by bureau (sortable, charted), reserved against consumed,
//! budgets with their 80 % and 100 % flags, whether the month is provisional or closed, the
//! CSV, and closing an ended month.

use axum::{
    Form,
    extract::Query,
    http::{Method, StatusCode},
    response::Response,
};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use crate::console::{
    Visitor,
    layout::{csrf_field, frame, notice, respond},
    pages::{csv_download, segment},
    svg,
};

/// The month (and order) asked for.
#[derive(Deserialize, Default)]
pub struct MonthQuery {
    month: Option<String>,
    sort: Option<String>,
}

fn amount(value: &Value) -> f64 {
    value.as_str().and_then(|a| a.parse().ok()).unwrap_or(0.0)
}

/// Reserved and consumed amounts of `bureau` in `statement`'s lines.
fn by_kind(statement: &Value, bureau: &str) -> (f64, f64) {
    let mut reserved = 0.0;
    let mut consumed = 0.0;
    for line in statement["lines"].as_array().into_iter().flatten() {
        if line["bureau"] != bureau {
            continue;
        }
        match line["kind"].as_str() {
            Some("reserved") => reserved += amount(&line["amount"]),
            Some("consumed") => consumed += amount(&line["amount"]),
            _ => {}
        }
    }
    (reserved, consumed)
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

/// `GET /console/finance?month=YYYY-MM&sort=amount|name`.
pub async fn page(visitor: Visitor, Query(query): Query<MonthQuery>) -> Response {
    render(&visitor, &query, None).await
}

async fn render(
    visitor: &Visitor,
    query: &MonthQuery,
    outcome: Option<(StatusCode, Result<String, String>)>,
) -> Response {
    match content(visitor, query, outcome.as_ref().map(|(_, o)| o)).await {
        Ok(markup) => respond(outcome.map_or(StatusCode::OK, |(s, _)| s), markup),
        Err(response) => response,
    }
}

async fn content(
    visitor: &Visitor,
    query: &MonthQuery,
    outcome: Option<&Result<String, String>>,
) -> Result<Markup, Response> {
    let lang = visitor.lang;
    let path = match &query.month {
        Some(month) if !month.is_empty() => format!("/api/v1/statements?month={}", segment(month)),
        _ => "/api/v1/statements".to_owned(),
    };
    let statement = visitor.read(&path).await?;
    let month = statement["month"].as_str().unwrap_or_default().to_owned();
    let mut bureaus = statement["bureaus"].as_array().cloned().unwrap_or_default();
    match query.sort.as_deref() {
        Some("name") => bureaus.sort_by(|a, b| a["bureau"].as_str().cmp(&b["bureau"].as_str())),
        _ => bureaus.sort_by(|a, b| amount(&b["amount"]).total_cmp(&amount(&a["amount"]))),
    }
    let closed = statement["status"] == "closed";
    let seal = statement["seal"].as_str().unwrap_or_default();
    let currency = lang.t("finance.currency");
    let chart: Vec<(String, f64)> = bureaus
        .iter()
        .take(15)
        .map(|b| {
            (
                b["displayName"]
                    .as_str()
                    .or(b["bureau"].as_str())
                    .unwrap_or_default()
                    .to_owned(),
                amount(&b["amount"]),
            )
        })
        .collect();
    let csv = format!("/console/finance/statement.csv?month={}", segment(&month));
    Ok(frame(
        visitor,
        &format!("{} · {month}", lang.t("finance.title")),
        html! {
            @if let Some(outcome) = outcome { (notice(outcome)) }
            form method="get" action="/console/finance" {
                label { (lang.t("finance.month")) " " input type="month" name="month" value=(month); }
                button type="submit" { (lang.t("finance.show")) }
            }
            p {
                (lang.t("finance.state")) ": "
                @if closed { (lang.tf("finance.closed", &[("seal", &seal.chars().take(12).collect::<String>())])) }
                @else { (lang.t("finance.provisional")) }
                " · " a href=(csv) download { (lang.t("finance.csv")) }
            }
            @if !chart.is_empty() { (svg::bars(&lang.t("finance.chart"), &chart, &currency)) }
            div.table-wrap { table {
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
                    @let (reserved, consumed) = by_kind(&statement, code);
                    tr {
                        td { (bureau["displayName"].as_str().unwrap_or(code)) " " span.muted { (code) } }
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
            } }
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
            @if !closed {
                h2 { (lang.t("finance.close")) }
                form method="post" action="/console/finance/close" {
                    (csrf_field(visitor))
                    input type="hidden" name="month" value=(month);
                    label { input type="checkbox" name="confirm" value="yes" required; " " (lang.t("finance.close_confirm")) }
                    button.danger type="submit" { (lang.t("finance.close")) }
                }
            }
        },
    ))
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
pub async fn close(visitor: Visitor, Form(form): Form<CloseForm>) -> Response {
    let path = format!("/api/v1/statements/{}/close", segment(&form.month));
    let action = MonthAction {
        csrf: form.csrf.as_deref(),
        month: &form.month,
        confirmed: form.confirm.as_deref() == Some("yes"),
        unconfirmed: "finance.close_confirm",
        path,
    };
    act(&visitor, action, |_| ("finance.closed_now", String::new())).await
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
pub async fn adjust(visitor: Visitor, Form(form): Form<AdjustForm>) -> Response {
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
    };
    act(&visitor, action, |body| {
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
}

/// Does `action` once its CSRF token and confirmation are checked, and shows the month again
/// with the outcome: `news` gives the key of the words for the API's answer, and the `{count}`
/// they may show.
async fn act(
    visitor: &Visitor,
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
            &query,
            Some((StatusCode::UNPROCESSABLE_ENTITY, outcome)),
        )
        .await;
    }
    let reply = match visitor.api(Method::POST, &action.path, None).await {
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
    render(visitor, &query, Some((reply.status, outcome))).await
}
