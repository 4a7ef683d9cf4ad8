//! The annual performance evaluation (绩效评估) for everyone who may read it: the bureaus ranked
//! by what their idle reservations cost, with spending against budget, efficiency, service
//! credits and borrowed and lent capacity, the district's totals; for one bureau, its months
//! and its environments' availability against their objectives. A bureau's staff see their own.

use axum::{extract::Query, response::Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use crate::console::{
    Visitor,
    i18n::Lang,
    layout::frame,
    pages::{csv_download, segment},
    svg,
};

/// The year and bureau asked for.
#[derive(Deserialize, Default)]
pub struct EvaluationQuery {
    year: Option<String>,
    bureau: Option<String>,
}

impl EvaluationQuery {
    /// The API's query for the same.
    fn api_query(&self) -> String {
        let mut query = Vec::new();
        if let Some(year) = self.year.as_deref().filter(|y| !y.is_empty()) {
            query.push(format!("year={}", segment(year)));
        }
        if let Some(bureau) = self.bureau.as_deref().filter(|b| !b.is_empty()) {
            query.push(format!("bureau={}", segment(bureau)));
        }
        query.join("&")
    }
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

fn number(value: &Value) -> f64 {
    value.as_str().and_then(|a| a.parse().ok()).unwrap_or(0.0)
}

/// An efficiency ratio (`"0.8125"`) as a percentage, or a dash.
fn percent(value: &Value) -> String {
    value
        .as_str()
        .and_then(|r| r.parse::<f64>().ok())
        .map_or_else(|| "–".to_owned(), |r| format!("{:.1} %", r * 100.0))
}

/// `GET /console/evaluation?year=YYYY&bureau=code`.
pub async fn page(visitor: Visitor, Query(query): Query<EvaluationQuery>) -> Response {
    let api_query = query.api_query();
    let report = match visitor
        .read(&format!("/api/v1/evaluation?{api_query}"))
        .await
    {
        Ok(report) => report,
        Err(response) => return response,
    };
    let lang = visitor.lang;
    let year = report["year"].to_string();
    let bureaus = report["bureaus"].as_array().cloned().unwrap_or_default();
    let one = (bureaus.len() == 1).then(|| &bureaus[0]);
    let idle: Vec<(String, f64)> = bureaus
        .iter()
        .take(15)
        .map(|b| {
            (
                b["displayName"]
                    .as_str()
                    .unwrap_or(text(&b["bureau"]))
                    .to_owned(),
                number(&b["idleCost"]),
            )
        })
        .collect();
    let currency = lang.t("finance.currency");
    let csv = format!("/console/evaluation.csv?{api_query}");
    let content = html! {
        form method="get" action="/console/evaluation" {
            label { (lang.t("evaluation.year")) " " input type="number" name="year" min="2000" max="9998" value=(year); }
            @if let Some(bureau) = query.bureau.as_deref().filter(|b| !b.is_empty()) {
                input type="hidden" name="bureau" value=(bureau);
            }
            button type="submit" { (lang.t("finance.show")) }
            " · " a href=(csv) download { (lang.t("finance.csv")) }
        }
        @let district = &report["district"];
        @if district.is_object() && one.is_none() {
            h2 { (lang.t("evaluation.district")) }
            p {
                (lang.t("evaluation.spent")) " " (text(&district["spent"])) " " (currency)
                @if let Some(budget) = district["budget"].as_str() { " / " (lang.t("finance.budget")) " " (budget) }
                " · " (lang.t("evaluation.efficiency")) " " (percent(&district["efficiency"]))
                " · " (lang.t("evaluation.idle")) " " (text(&district["idleCost"])) " " (currency)
            }
        }
        @if idle.iter().any(|(_, cost)| *cost > 0.0) && one.is_none() {
            (svg::bars(&lang.t("evaluation.idle_chart"), &idle, &currency))
        }
        h2 { (lang.t("evaluation.ranking")) }
        div.table-wrap { table {
            thead { tr {
                th.num scope="col" { (lang.t("evaluation.rank")) }
                th scope="col" { (lang.t("finance.bureau")) }
                th.num scope="col" { (lang.t("evaluation.spent")) }
                th.num scope="col" { (lang.t("finance.budget")) }
                th.num scope="col" { (lang.t("evaluation.efficiency")) }
                th.num scope="col" { (lang.t("evaluation.reservation")) }
                th.num scope="col" { (lang.t("evaluation.idle")) }
                th.num scope="col" { (lang.t("finance.credits")) }
                th.num scope="col" { (lang.t("finance.burst")) }
                th.num scope="col" { (lang.t("finance.lent")) }
            } }
            tbody { @for bureau in &bureaus {
                @let code = text(&bureau["bureau"]);
                tr {
                    td.num { (bureau["idleRank"]) }
                    td { a href={ "/console/evaluation?year=" (year) "&bureau=" (segment(code)) } {
                        (bureau["displayName"].as_str().unwrap_or(code)) } " " span.muted { (code) } }
                    td.num { (text(&bureau["spent"])) }
                    td.num { (bureau["budget"].as_str().unwrap_or("–")) }
                    td.num { (percent(&bureau["efficiency"])) }
                    td.num { (text(&bureau["reservationCost"])) }
                    td.num { (text(&bureau["idleCost"])) }
                    td.num { (text(&bureau["serviceCredits"])) }
                    td.num { (text(&bureau["burstCharges"])) }
                    td.num { (text(&bureau["lentCredits"])) }
                }
            } }
        } }
        @if let Some(bureau) = one { (details(lang, bureau)) }
        @else if bureaus.is_empty() { p.muted { (lang.t("evaluation.none")) } }
    };
    crate::console::layout::respond(
        axum::http::StatusCode::OK,
        frame(
            &visitor,
            &format!("{} · {year}", lang.t("nav.evaluation")),
            content,
        ),
    )
}

/// One bureau's months against its budget, and its environments against their objectives.
fn details(lang: Lang, bureau: &Value) -> Markup {
    let months = bureau["months"].as_array().cloned().unwrap_or_default();
    let spent: Vec<(String, f64)> = months
        .iter()
        .map(|m| (text(&m["month"]).to_owned(), number(&m["spent"])))
        .collect();
    html! {
        h2 { (lang.t("evaluation.months")) }
        @if !spent.is_empty() { (svg::bars(&lang.t("evaluation.months"), &spent, &lang.t("finance.currency"))) }
        div.table-wrap { table {
            thead { tr {
                th scope="col" { (lang.t("finance.month")) }
                th.num scope="col" { (lang.t("evaluation.spent")) }
                th.num scope="col" { (lang.t("finance.budget")) }
                th scope="col" { (lang.t("finance.state")) }
            } }
            tbody { @for month in &months { tr {
                td { (text(&month["month"])) }
                td.num { (text(&month["spent"])) }
                td.num { (month["budget"].as_str().unwrap_or("–")) }
                td { @match month["level"].as_str() {
                    Some("warning") => { span.flag-warning { (lang.t("finance.budget_warn")) } }
                    Some("exceeded") => { span.flag-exceeded { (lang.t("finance.budget_over")) } }
                    _ => {}
                } }
            } } }
        } }
        h2 { (lang.t("evaluation.availability")) }
        div.table-wrap { table {
            thead { tr {
                th scope="col" { (lang.t("env.name")) }
                th scope="col" { (lang.t("env.tier")) }
                th.num scope="col" { (lang.t("evaluation.measured")) }
                th.num scope="col" { (lang.t("evaluation.availability_value")) }
                th.num scope="col" { (lang.t("evaluation.objective")) }
                th scope="col" { (lang.t("evaluation.met")) }
            } }
            tbody { @for env in bureau["environments"].as_array().into_iter().flatten() { tr {
                td { (text(&env["environment"])) }
                td { (lang.word("tier", text(&env["tier"]))) }
                td.num { (env["measuredMinutes"]) }
                td.num { (env["availability"].as_str().map_or_else(|| "–".to_owned(), |a| format!("{a} %"))) }
                td.num { (text(&env["objective"])) " %" }
                td { @if env["met"] == true { (lang.t("evaluation.yes")) } @else { span.flag-exceeded { (lang.t("evaluation.no")) } } }
            } } }
        } }
    }
}

/// `GET /console/evaluation.csv?year=&bureau=`: the API's CSV, as a download.
pub async fn csv(visitor: Visitor, Query(query): Query<EvaluationQuery>) -> Response {
    let path = format!("/api/v1/evaluation?{}", query.api_query());
    let year = query.year.unwrap_or_default();
    csv_download(&visitor, &path, &format!("zhengyun-evaluation-{year}.csv")).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_bureau_shows_its_months_against_budget_and_its_environments_against_objectives() {
        let bureau = json!({
            "bureau": "wjw", "displayName": "区卫生健康委员会",
            "months": [
                {"month": "2026-10", "spent": "812.40", "budget": "1000.00", "level": "warning"},
                {"month": "2026-11", "spent": "1050.00", "budget": "1000.00", "level": "exceeded"},
            ],
            "environments": [
                {"environment": "wjw-prod", "tier": "gold", "measuredMinutes": 43200,
                 "badMinutes": 30, "availability": "99.930", "objective": "99.95", "met": false},
            ],
        });
        let html = details(Lang::Zh, &bureau).into_string();
        for expected in [
            "2026-10",
            "812.40",
            "已用 80% 以上",
            "超出预算",
            "wjw-prod",
            "金牌",
            "99.930 %",
            "99.95 %",
        ] {
            assert!(html.contains(expected), "{expected} missing: {html}");
        }
        assert!(
            html.contains("<span class=\"flag-exceeded\">否</span>"),
            "{html}"
        );
    }

    #[test]
    fn the_year_and_bureau_asked_for_reach_the_api_escaped() {
        let query = EvaluationQuery {
            year: Some("2026".into()),
            bureau: Some("wjw&x".into()),
        };
        assert_eq!(query.api_query(), "year=2026&bureau=wjw%26x");
        assert_eq!(EvaluationQuery::default().api_query(), "");
    }
}
