//! The auditors' page: the audit log with filters and paging, the verification of its hash
//! chain, and of the sealed statements.

use axum::{
    Form,
    extract::{Query, State},
    http::StatusCode,
    response::Response,
};
use maud::html;
use serde::Deserialize;
use zhengyun_metering::Calendar;

use crate::{
    console::{
        Visitor,
        layout::{csrf_field, frame, notice, respond},
        pages::segment,
    },
    state::AppState,
};

/// Entries on a page.
const PAGE: u32 = 50;

/// Filters and the page asked for.
#[derive(Deserialize, Default)]
pub struct AuditFilter {
    action: Option<String>,
    bureau: Option<String>,
    principal: Option<String>,
    /// The first day shown (`YYYY-MM-DD`, in the platform's time zone).
    from: Option<String>,
    /// The last day shown, whole.
    to: Option<String>,
    after: Option<String>,
}

impl AuditFilter {
    /// The filters that are set, as `(name, value)`, paging left out.
    fn set(&self) -> Vec<(&'static str, &str)> {
        [
            ("action", &self.action),
            ("bureau", &self.bureau),
            ("principal", &self.principal),
            ("from", &self.from),
            ("to", &self.to),
        ]
        .into_iter()
        .filter_map(|(key, value)| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| (key, v))
        })
        .collect()
    }

    /// This console page with the same filters, starting after `after` (the first page when
    /// `None`).
    fn link(&self, after: Option<&str>) -> String {
        let mut query: Vec<String> = self
            .set()
            .into_iter()
            .map(|(key, value)| format!("{key}={}", segment(value)))
            .collect();
        if let Some(after) = after {
            query.push(format!("after={}", segment(after)));
        }
        if query.is_empty() {
            "/console/audit".to_owned()
        } else {
            format!("/console/audit?{}", query.join("&"))
        }
    }

    /// The API's query for this page: the days made instants in `calendar`'s zone (`to`
    /// included whole), or the name of the field that is no date.
    fn api_query(&self, calendar: &Calendar) -> Result<String, &'static str> {
        let mut query = vec![format!("limit={PAGE}")];
        for (key, value) in self.set() {
            let value = match key {
                "from" | "to" => {
                    let day: jiff::civil::Date = value.parse().map_err(|_| key)?;
                    let day = if key == "to" {
                        day.tomorrow().map_err(|_| key)?
                    } else {
                        day
                    };
                    day.to_zoned(calendar.time_zone().clone())
                        .map_err(|_| key)?
                        .timestamp()
                        .to_string()
                }
                _ => value.to_owned(),
            };
            query.push(format!("{key}={}", segment(&value)));
        }
        if let Some(after) = self.after.as_deref().filter(|a| !a.is_empty()) {
            query.push(format!("after={}", segment(after)));
        }
        Ok(query.join("&"))
    }
}

/// `GET /console/audit`.
pub async fn page(
    visitor: Visitor,
    State(state): State<AppState>,
    Query(filter): Query<AuditFilter>,
) -> Response {
    render(&visitor, &state, &filter, None).await
}

async fn render(
    visitor: &Visitor,
    state: &AppState,
    filter: &AuditFilter,
    outcome: Option<Result<String, String>>,
) -> Response {
    let lang = visitor.lang;
    let mut status = match &outcome {
        Some(Err(_)) => StatusCode::CONFLICT,
        _ => StatusCode::OK,
    };
    let (entries, next, outcome) = match filter.api_query(state.calendar()) {
        Ok(query) => {
            let reply = match visitor
                .api(
                    axum::http::Method::GET,
                    &format!("/api/v1/audit?{query}"),
                    None,
                )
                .await
            {
                Ok(reply) => reply,
                Err(response) => return response,
            };
            if !reply.status.is_success() {
                return crate::console::layout::problem_page(visitor, &reply);
            }
            let next = reply
                .headers
                .get(zhengyun_contract::NEXT_AFTER_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (
                reply.body.as_array().cloned().unwrap_or_default(),
                next,
                outcome,
            )
        }
        Err(field) => {
            status = StatusCode::UNPROCESSABLE_ENTITY;
            let field = lang.t(&format!("audit.{field}"));
            (
                Vec::new(),
                None,
                Some(Err(lang.tf("audit.bad_date", &[("field", &field)]))),
            )
        }
    };
    // The sealed months, each with its seal (their verification is the button's).
    let sealed = visitor
        .api(axum::http::Method::GET, "/api/v1/statements/verify", None)
        .await
        .ok()
        .filter(|reply| reply.status.is_success())
        .and_then(|reply| reply.body["sealed"].as_array().cloned())
        .unwrap_or_default();
    let next_link = next.map(|after| filter.link(Some(&after)));
    let first_link = filter
        .after
        .as_deref()
        .filter(|a| !a.is_empty())
        .map(|_| filter.link(None));

    respond(
        status,
        frame(
            visitor,
            &lang.t("audit.title"),
            html! {
                @if let Some(outcome) = &outcome { (notice(outcome)) }
                form method="post" action="/console/audit/verify" {
                    (csrf_field(visitor))
                    button type="submit" { (lang.t("audit.verify")) }
                }
                form method="get" action="/console/audit" {
                    fieldset {
                        legend { (lang.t("audit.filter")) }
                        label { (lang.t("audit.action")) " " input type="text" name="action" value=(filter.action.clone().unwrap_or_default()) placeholder="environment.create"; }
                        label { (lang.t("requests.bureau")) " " input type="text" name="bureau" value=(filter.bureau.clone().unwrap_or_default()) placeholder="wjw"; }
                        label { (lang.t("audit.principal")) " " input type="text" name="principal" value=(filter.principal.clone().unwrap_or_default()) placeholder="0123456789abcdef"; }
                        label { (lang.t("audit.from")) " " input type="date" name="from" value=(filter.from.clone().unwrap_or_default()); }
                        label { (lang.t("audit.to")) " " input type="date" name="to" value=(filter.to.clone().unwrap_or_default()); }
                        button type="submit" { (lang.t("audit.filter")) }
                    }
                }
                div.table-wrap { table {
                    thead { tr {
                        th scope="col" { "#" } th scope="col" { (lang.t("audit.at")) } th scope="col" { (lang.t("audit.principal")) }
                        th scope="col" { (lang.t("audit.action")) } th scope="col" { (lang.t("audit.object")) } th scope="col" { (lang.t("audit.result")) }
                    } }
                    tbody { @for entry in &entries { tr {
                        td.num { (entry["seq"]) }
                        td { (entry["at"].as_str().unwrap_or_default()) }
                        td { (entry["principalLabel"].as_str().or(entry["principal"].as_str()).unwrap_or_default()) }
                        td { (entry["action"].as_str().unwrap_or_default()) }
                        td { (entry["object"].as_str().unwrap_or_default()) }
                        td { (entry["result"].as_str().unwrap_or_default()) }
                    } } }
                } }
                @if first_link.is_some() || next_link.is_some() {
                    nav.paging aria-label=(lang.t("audit.paging")) { ul {
                        @if let Some(link) = &first_link { li { a href=(link) { (lang.t("audit.first")) } } }
                        @if let Some(link) = &next_link { li { a href=(link) rel="next" { (lang.t("audit.next")) } } }
                    } }
                }
                h2 { (lang.t("audit.sealed")) }
                div.table-wrap { table {
                    thead { tr { th scope="col" { (lang.t("audit.month")) } th scope="col" { (lang.t("audit.seal")) } } }
                    tbody { @for month in &sealed { tr {
                        td { (month["month"].as_str().unwrap_or_default()) }
                        td { code { (month["seal"].as_str().unwrap_or_default()) } }
                    } } }
                } }
            },
        ),
    )
}

/// The verification form.
#[derive(Deserialize)]
pub struct VerifyForm {
    csrf: Option<String>,
}

/// `POST /console/audit/verify`: recomputes the chain and checks the seals, and says so.
pub async fn verify(
    visitor: Visitor,
    State(state): State<AppState>,
    Form(form): Form<VerifyForm>,
) -> Response {
    if let Err(refused) = visitor.check_csrf(form.csrf.as_deref()) {
        return refused;
    }
    let lang = visitor.lang;
    let chain = match visitor
        .api(axum::http::Method::GET, "/api/v1/audit/verify", None)
        .await
    {
        Ok(reply) => reply,
        Err(response) => return response,
    };
    if !chain.status.is_success() {
        return crate::console::layout::problem_page(&visitor, &chain);
    }
    let seals = visitor
        .api(axum::http::Method::GET, "/api/v1/statements/verify", None)
        .await
        .ok()
        .filter(|reply| reply.status.is_success());
    let seal_words = match seals {
        Some(reply) if reply.body["intact"] == true => {
            format!(" {}: {}.", lang.t("audit.sealed"), lang.t("audit.seal_ok"))
        }
        Some(reply) => format!(
            " {}: {}",
            lang.t("audit.sealed"),
            lang.tf(
                "audit.seal_broken",
                &[("detail", reply.body["reason"].as_str().unwrap_or_default())]
            )
        ),
        None => String::new(),
    };
    let outcome = if chain.body["intact"] == true {
        Ok(lang.tf(
            "audit.intact",
            &[("count", &chain.body["entries"].to_string())],
        ) + &seal_words)
    } else {
        Err(lang.tf(
            "audit.broken",
            &[("detail", chain.body["reason"].as_str().unwrap_or_default())],
        ) + &seal_words)
    };
    render(&visitor, &state, &AuditFilter::default(), Some(outcome)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(pairs: &[(&str, &str)]) -> AuditFilter {
        let value = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        };
        AuditFilter {
            action: value("action"),
            bureau: value("bureau"),
            principal: value("principal"),
            from: value("from"),
            to: value("to"),
            after: value("after"),
        }
    }

    #[test]
    fn days_become_instants_of_the_platform_zone_and_the_last_day_counts_whole() {
        let calendar = Calendar::new("Asia/Shanghai").expect("zone");
        let query = filter(&[
            ("principal", "0123456789abcdef"),
            ("from", "2026-11-01"),
            ("to", "2026-11-30"),
            ("bureau", ""),
        ])
        .api_query(&calendar)
        .expect("query");
        assert_eq!(
            query,
            "limit=50&principal=0123456789abcdef&from=2026-10-31T16%3A00%3A00Z\
             &to=2026-11-30T16%3A00%3A00Z"
        );
        assert_eq!(
            filter(&[("to", "2026-13-01")]).api_query(&calendar),
            Err("to")
        );
        assert_eq!(
            filter(&[("from", "yesterday")]).api_query(&calendar),
            Err("from")
        );
    }

    #[test]
    fn the_next_and_first_page_keep_every_filter() {
        let shown = filter(&[
            ("action", "environment.create"),
            ("bureau", "wjw"),
            ("principal", "abc"),
            ("from", "2026-11-01"),
            ("to", "2026-11-02"),
            ("after", "50"),
        ]);
        assert_eq!(
            shown.link(Some("100")),
            "/console/audit?action=environment.create&bureau=wjw&principal=abc\
             &from=2026-11-01&to=2026-11-02&after=100"
        );
        assert_eq!(
            shown.link(None),
            "/console/audit?action=environment.create&bureau=wjw&principal=abc\
             &from=2026-11-01&to=2026-11-02"
        );
        assert_eq!(AuditFilter::default().link(None), "/console/audit");
    }
}
