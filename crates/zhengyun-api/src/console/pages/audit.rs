//! The auditors' page: the audit log with filters and paging, the verification of its hash
//! chain, and of the sealed statements.

use axum::{Form, extract::Query, http::StatusCode, response::Response};
use maud::html;
use serde::Deserialize;

use crate::console::{
    Visitor,
    layout::{csrf_field, frame, notice, respond},
    pages::segment,
};

/// Filters and the page asked for.
#[derive(Deserialize, Default)]
pub struct AuditFilter {
    action: Option<String>,
    bureau: Option<String>,
    after: Option<String>,
}

/// `GET /console/audit`.
pub async fn page(visitor: Visitor, Query(filter): Query<AuditFilter>) -> Response {
    render(&visitor, &filter, None).await
}

async fn render(
    visitor: &Visitor,
    filter: &AuditFilter,
    outcome: Option<Result<String, String>>,
) -> Response {
    let lang = visitor.lang;
    let mut query = vec!["limit=50".to_owned()];
    for (key, value) in [
        ("action", &filter.action),
        ("bureau", &filter.bureau),
        ("after", &filter.after),
    ] {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            query.push(format!("{key}={}", segment(value)));
        }
    }
    let reply = match visitor
        .api(
            axum::http::Method::GET,
            &format!("/api/v1/audit?{}", query.join("&")),
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
    let entries = reply.body.as_array().cloned().unwrap_or_default();
    // The sealed months, each with its seal (their verification is the button's).
    let sealed = visitor
        .api(axum::http::Method::GET, "/api/v1/statements/verify", None)
        .await
        .ok()
        .filter(|reply| reply.status.is_success())
        .and_then(|reply| reply.body["sealed"].as_array().cloned())
        .unwrap_or_default();
    let next_link = next.map(|after| {
        let mut link = format!("/console/audit?after={}", segment(&after));
        for (key, value) in [("action", &filter.action), ("bureau", &filter.bureau)] {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                link.push_str(&format!("&{key}={}", segment(value)));
            }
        }
        link
    });
    let status = match &outcome {
        Some(Err(_)) => StatusCode::CONFLICT,
        _ => StatusCode::OK,
    };
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
                @if let Some(link) = next_link { p { a href=(link) { (lang.t("audit.next")) } } }
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
pub async fn verify(visitor: Visitor, Form(form): Form<VerifyForm>) -> Response {
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
    render(&visitor, &AuditFilter::default(), Some(outcome)).await
}
