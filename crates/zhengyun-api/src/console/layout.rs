//! The frame of every console page (language, navigation by role, sign-out), its embedded
//! assets, and the pages that only say something (an error, a refusal).

use axum::{
    extract::Path,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use maud::{DOCTYPE, Markup, html};
use zhengyun_store::Role;

use super::{Reply, Visitor};

const CSS: &str = include_str!("assets/console.css");
const HTMX: &str = include_str!("assets/htmx-2.0.11.min.js");
const HTMX_LICENSE: &str = include_str!("assets/htmx-LICENSE.txt");

/// `/console/assets/{name}`: the embedded stylesheet, htmx and its licence, cached for a day.
pub async fn asset(Path(name): Path<String>) -> Response {
    let (content_type, body) = match name.as_str() {
        "console.css" => ("text/css; charset=utf-8", CSS),
        "htmx-2.0.11.min.js" => ("text/javascript; charset=utf-8", HTMX),
        "htmx-LICENSE.txt" => ("text/plain; charset=utf-8", HTMX_LICENSE),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

/// A whole page titled `title` with `content`, framed for `visitor`.
pub fn frame(visitor: &Visitor, title: &str, content: Markup) -> Markup {
    let lang = visitor.lang;
    let principal = visitor.session.as_ref().map(|s| &s.principal);
    // htmx sends the form token with every request it makes, so fragments need no form field.
    let headers = format!("{{\"X-CSRF-Token\": \"{}\"}}", visitor.csrf());
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}"#;
                title { (title) " · " (lang.t("app.title")) }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/htmx-2.0.11.min.js" defer {}
            }
            body hx-headers=(headers) {
                a.skip href="#main" { (lang.t("app.skip")) }
                header {
                    a.brand href="/console" { (lang.t("app.title")) }
                    @if let Some(principal) = principal {
                        nav aria-label=(lang.t("app.title")) {
                            ul {
                                @match (principal.role, principal.bureau.as_deref()) {
                                    (Role::BureauAdmin | Role::BureauViewer, Some(bureau)) => {
                                        li { a href={ "/console/bureaus/" (bureau) } { (lang.t("nav.overview")) } }
                                    }
                                    (Role::Finance, _) => {
                                        li { a href="/console/finance" { (lang.t("nav.finance")) } }
                                    }
                                    (Role::Auditor, _) => {
                                        li { a href="/console/audit" { (lang.t("nav.audit")) } }
                                        li { a href="/console/finance" { (lang.t("nav.finance")) } }
                                    }
                                    _ => {
                                        li { a href="/console/admin/requests" { (lang.t("nav.approvals")) } }
                                        li { a href="/console/admin/bureaus" { (lang.t("nav.bureaus")) } }
                                        li { a href="/console/finance" { (lang.t("nav.finance")) } }
                                        li { a href="/console/audit" { (lang.t("nav.audit")) } }
                                    }
                                }
                            }
                        }
                    }
                    div.account {
                        a href={ "/console/lang/" (lang.other().code()) } hreflang=(lang.other().code()) { (lang.t("nav.language")) }
                        @if let Some(principal) = principal {
                            span.who { (lang.t("nav.signed_in_as")) " " (principal.description) " (" (principal.role) ")" }
                            form method="post" action="/console/sign-out" {
                                input type="hidden" name="csrf" value=(visitor.csrf());
                                button type="submit" { (lang.t("nav.sign_out")) }
                            }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// An HTML answer of `status`.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// A page that only says `text`, with a way back.
pub fn message_page(visitor: &Visitor, status: StatusCode, text: &str) -> Response {
    let lang = visitor.lang;
    respond(
        status,
        frame(
            visitor,
            &lang.t("error.title"),
            html! {
                p.notice.error role="alert" { (text) }
                p { a href="/console" { (lang.t("error.back")) } }
            },
        ),
    )
}

/// The page for an API refusal: its status and its detail.
pub fn problem_page(visitor: &Visitor, reply: &Reply) -> Response {
    let text = if reply.status == StatusCode::FORBIDDEN {
        visitor
            .lang
            .tf("error.forbidden", &[("detail", &reply.detail())])
    } else {
        reply.detail()
    };
    message_page(visitor, reply.status, &text)
}

/// A notice above a page's content: `Ok` for news, `Err` for a refusal.
pub fn notice(outcome: &Result<String, String>) -> Markup {
    match outcome {
        Ok(text) => html! { p.notice role="status" { (text) } },
        Err(text) => html! { p.notice.error role="alert" { (text) } },
    }
}

/// The hidden form field of the session's CSRF token.
pub fn csrf_field(visitor: &Visitor) -> Markup {
    html! { input type="hidden" name="csrf" value=(visitor.csrf()); }
}
