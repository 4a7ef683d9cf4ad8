//! The frame of every console page (language, navigation by role, sign-out), its embedded
//! assets, and the pages that only say something (an error, a refusal).

use std::sync::LazyLock;

use axum::{
    body::Bytes,
    extract::Path,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use maud::{DOCTYPE, Markup, html};
use zhengyun_store::Role;

use super::{Reply, Visitor};

const CSS: &str = include_str!("assets/console.css");
const HTMX: &str = include_str!("assets/htmx-2.0.11.min.js");
const HTMX_LICENSE: &str = include_str!("assets/htmx-LICENSE.txt");

/// The stylesheet and htmx compressed once, on first use: about a third of their size on the
/// wire. Only these fixed files are compressed, never a page: a page carries the session's form
/// token next to what a visitor can put in its address, which compression would let an
/// observer of the traffic's length guess at.
static GZIPPED: LazyLock<[(&str, Bytes); 2]> = LazyLock::new(|| {
    [
        ("console.css", gzip(CSS)),
        ("htmx-2.0.11.min.js", gzip(HTMX)),
    ]
});

fn gzip(text: &str) -> Bytes {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(text.as_bytes());
    encoder.finish().unwrap_or_default().into()
}

/// Whether the request's `Accept-Encoding` takes gzip (and does not refuse it with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// `/console/assets/{name}`: the embedded stylesheet, htmx and its licence, cached for a day;
/// the stylesheet and htmx gzipped for a browser that takes it.
pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let (content_type, body) = match name.as_str() {
        "console.css" => ("text/css; charset=utf-8", CSS),
        "htmx-2.0.11.min.js" => ("text/javascript; charset=utf-8", HTMX),
        "htmx-LICENSE.txt" => ("text/plain; charset=utf-8", HTMX_LICENSE),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let cached = [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, "public, max-age=86400"),
        (header::VARY, "accept-encoding"),
    ];
    let gzipped = GZIPPED
        .iter()
        .find(|(file, gz)| *file == name && !gz.is_empty());
    match gzipped {
        Some((_, gz)) if accepts_gzip(&headers) => {
            (cached, [(header::CONTENT_ENCODING, "gzip")], gz.clone()).into_response()
        }
        _ => (cached, body).into_response(),
    }
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
                                li { a href="/console/evaluation" { (lang.t("nav.evaluation")) } }
                            }
                        }
                    }
                    div.account {
                        a href={ "/console/lang/" (lang.other().code()) } hreflang=(lang.other().code()) { (lang.t("nav.language")) }
                        @if let Some(principal) = principal {
                            span.who { (lang.t("nav.signed_in_as")) " " (principal.description) " (" (lang.word("role", principal.role.as_str())) ")" }
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
    message_page(visitor, reply.status, &reply.detail(visitor.lang))
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

#[cfg(test)]
mod tests {
    use super::CSS;

    async fn fetch_asset(name: &str, accept: Option<&str>) -> axum::response::Response {
        let mut headers = axum::http::HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(
                axum::http::header::ACCEPT_ENCODING,
                accept.parse().expect("a header value"),
            );
        }
        super::asset(axum::extract::Path(name.to_owned()), headers).await
    }

    async fn body_of(response: axum::response::Response) -> Vec<u8> {
        use http_body_util::BodyExt as _;
        response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes()
            .to_vec()
    }

    #[tokio::test]
    async fn the_stylesheet_and_htmx_travel_gzipped_to_a_browser_that_takes_gzip_and_whole_otherwise()
     {
        use std::io::Read as _;
        for (name, original) in [
            ("console.css", super::CSS),
            ("htmx-2.0.11.min.js", super::HTMX),
        ] {
            let gzipped = fetch_asset(name, Some("gzip, deflate, br, zstd")).await;
            assert_eq!(gzipped.headers()["content-encoding"], "gzip");
            assert_eq!(gzipped.headers()["vary"], "accept-encoding");
            let compressed = body_of(gzipped).await;
            assert!(compressed.len() * 2 < original.len(), "{name} shrinks");
            let mut text = String::new();
            flate2::read::GzDecoder::new(compressed.as_slice())
                .read_to_string(&mut text)
                .expect("gzip");
            assert_eq!(text, original);
            for accept in [None, Some("br"), Some("gzip;q=0, br")] {
                let whole = fetch_asset(name, accept).await;
                assert!(whole.headers().get("content-encoding").is_none());
                assert_eq!(body_of(whole).await, original.as_bytes());
            }
        }
        let licence = fetch_asset("htmx-LICENSE.txt", Some("gzip")).await;
        assert!(licence.headers().get("content-encoding").is_none());
        let missing = fetch_asset("other.js", Some("gzip")).await;
        assert_eq!(missing.status(), axum::http::StatusCode::NOT_FOUND);
    }

    /// The colour the stylesheet names `name` (`--ink`) or writes (`#fff`), as sRGB.
    fn colour(name: &str) -> [f64; 3] {
        let hex = if let Some(var) = name.strip_prefix("--") {
            let at = CSS.find(&format!("--{var}:")).expect("a declared colour");
            CSS[at..]
                .split(':')
                .nth(1)
                .and_then(|v| v.split(';').next())
                .expect("a value")
                .trim()
                .to_owned()
        } else {
            name.to_owned()
        };
        let hex = hex.trim_start_matches('#');
        let hex: String = if hex.len() == 3 {
            hex.chars().flat_map(|c| [c, c]).collect()
        } else {
            hex.to_owned()
        };
        let channel =
            |i: usize| f64::from(u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")) / 255.0;
        [channel(0), channel(2), channel(4)]
    }

    /// WCAG 2 relative luminance.
    fn luminance([r, g, b]: [f64; 3]) -> f64 {
        let linear = |c: f64| {
            if c <= 0.03928 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
    }

    fn contrast(a: &str, b: &str) -> f64 {
        let (la, lb) = (luminance(colour(a)), luminance(colour(b)));
        (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
    }

    #[test]
    fn every_text_colour_meets_wcag_aa_on_its_background() {
        // (text, background) as the stylesheet pairs them.
        let pairs = [
            ("--ink", "#fff"),
            ("--ink", "--bg"),
            ("--muted", "#fff"),
            ("--muted", "--bg"),
            ("--accent", "#fff"),
            ("#fff", "--accent"),
            ("#fff", "--bad"),
            ("--warn", "#fff"),
            ("--bad", "#fff"),
            ("--ink", "#eef8f0"),
            ("--ink", "#fdecea"),
        ];
        let poor: Vec<String> = pairs
            .iter()
            .map(|(text, background)| (text, background, contrast(text, background)))
            .filter(|(_, _, ratio)| *ratio < 4.5)
            .map(|(t, b, ratio)| format!("{t} on {b}: {ratio:.2}"))
            .collect();
        assert!(poor.is_empty(), "below 4.5:1: {poor:?}");
        // The arithmetic itself: black on white is 21:1.
        assert!((contrast("#000", "#fff") - 21.0).abs() < 1e-9);
    }

    #[test]
    fn focus_rings_and_chart_and_gauge_bars_stand_out_at_least_three_to_one() {
        // (graphic, what it sits on or touches), as the stylesheet and the charts pair them.
        let pairs = [
            // The focus ring, on the page and on the header.
            ("--focus", "#fff"),
            ("--focus", "--bg"),
            ("--focus", "#eef8f0"),
            ("--focus", "#fdecea"),
            ("--focus-on-accent", "--accent"),
            // A gauge: its edge on the page, the allocated bar on the track, the used bar on
            // the allocated one and on the track.
            ("--gauge-edge", "#fff"),
            ("--gauge-edge", "--bg"),
            ("--gauge-allocated", "--gauge-track"),
            ("--gauge-used", "--gauge-allocated"),
            ("--gauge-used", "--gauge-track"),
            // A chart's bars on the page.
            ("--accent", "#fff"),
            ("--chart-upper", "#fff"),
        ];
        let poor: Vec<String> = pairs
            .iter()
            .map(|(graphic, background)| (graphic, background, contrast(graphic, background)))
            .filter(|(_, _, ratio)| *ratio < 3.0)
            .map(|(g, b, ratio)| format!("{g} on {b}: {ratio:.2}"))
            .collect();
        assert!(poor.is_empty(), "below 3:1: {poor:?}");
        // The ring and the bars use these colours, not others written in place.
        for rule in [
            "outline: 3px solid var(--focus)",
            "outline-color: var(--focus-on-accent)",
            ".allocated { fill: var(--gauge-allocated)",
            ".used { fill: var(--gauge-used)",
            "rect.upper { fill: var(--chart-upper)",
        ] {
            assert!(CSS.contains(rule), "the stylesheet lacks {rule}");
        }
    }

    /// maud's header cells (`th … {` on one line) in `source` that have no `scope`.
    fn cells_without_scope(source: &str) -> Vec<String> {
        source
            .match_indices("th")
            .filter(|(at, _)| {
                source[..*at]
                    .chars()
                    .next_back()
                    .is_some_and(char::is_whitespace)
                    && matches!(source[at + 2..].chars().next(), Some(' ' | '.'))
            })
            .filter_map(|(at, _)| source[at..].split_once('{').map(|(head, _)| head))
            .filter(|head| !head.contains('\n') && !head.contains("scope="))
            .map(|head| head.trim().to_owned())
            .collect()
    }

    #[test]
    fn every_table_header_cell_says_what_it_heads() {
        assert_eq!(
            cells_without_scope("tr { th { \"a\" } th.num scope=\"col\" { \"b\" } }"),
            ["th"]
        );
        let sources = [
            include_str!("layout.rs"),
            include_str!("pages/admin.rs"),
            include_str!("pages/audit.rs"),
            include_str!("pages/bureau.rs"),
            include_str!("pages/evaluation.rs"),
            include_str!("pages/finance.rs"),
            include_str!("pages/sign_in.rs"),
        ];
        // Each file's own code, not its tests.
        let without: Vec<String> = sources
            .iter()
            .filter_map(|s| s.split("#[cfg(test)]").next())
            .flat_map(cells_without_scope)
            .collect();
        assert!(
            without.is_empty(),
            "header cells without scope: {without:?}"
        );
    }
}
