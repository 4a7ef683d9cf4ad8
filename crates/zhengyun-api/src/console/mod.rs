//! The web console at `/console`: pages in Chinese (English as an option) for bureau staff,
//! finance, auditors and platform admins, rendered on the server.
//!
//! # The same rules as the API, by the same code
//!
//! A page does not read the store or the cluster itself: it calls the API's own routes in the
//! process ([`Visitor::api`]), as the signed-in person, through the same authentication
//! layer, role checks, validation and audit log as a call from the CLI. The person is the
//! [`Principal`] their API token or identity provider named when they signed in, kept in the
//! database with the session ([`zhengyun_store::ConsoleSession`]); no token is kept. Every
//! request checks that sign-in again (`middleware::still_signed_in`): a revoked or expired token,
//! an identity provider's token past its `exp`, or a deleted bureau ends the session.
//!
//! # What a browser is held to
//!
//! The session cookie is `HttpOnly`, `SameSite=Lax`, `Secure` when served over TLS, and lives
//! no longer than the sign-in behind it. Every form carries the session's CSRF token (htmx
//! requests send it as `X-CSRF-Token`), checked before anything is done. The
//! Content-Security-Policy allows scripts, styles and images from the console itself only, with
//! no inline script; every asset is embedded in the binary. Pages read without JavaScript;
//! htmx only spares reloads.

// A refusal here is the page the browser gets: a `Response`, built once per request on the way
// out; boxing it would only add an allocation.
#![allow(
    clippy::result_large_err,
    reason = "a refusal is the response itself, returned once per request"
)]

pub mod i18n;
mod layout;
mod pages;
pub mod svg;

use axum::{
    Extension, Router,
    body::{Body, Bytes},
    extract::{FromRequestParts, Path, State},
    http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use jiff::Timestamp;
use serde_json::Value;
use tower::ServiceExt;
use zhengyun_store::{ConsoleSession, Principal, Role};

use self::i18n::{LANG_COOKIE, Lang};
use crate::{context::Caller, state::AppState};

/// The session cookie.
pub const SESSION_COOKIE: &str = "zy_session";

/// The longest a console session lives (never past the sign-in behind it).
pub const MAX_SESSION: jiff::SignedDuration = jiff::SignedDuration::from_hours(8);

/// How long a browser keeps the language cookie: a year (until sign-out for a person signed in).
pub const LANG_SECONDS: i64 = 365 * 24 * 3600;

/// The largest answer of an in-process call read.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// The API's routes, called in the process by the console on behalf of the signed-in person.
#[derive(Clone)]
pub struct InternalApi(pub Router);

/// Set by the console on its in-process calls: the caller, already authenticated by its
/// session. Requests from the network never carry it (extensions are not sent over HTTP).
#[derive(Clone, Debug)]
pub struct SignedIn(pub Caller);

/// The console's routes; `internal` is the API it calls.
pub fn router(internal: Router) -> Router<AppState> {
    use pages::{admin, audit, bureau, evaluation, finance, sign_in};
    Router::new()
        .route("/console", get(home))
        .route("/console/", get(home))
        .route("/console/assets/{name}", get(layout::asset))
        .route("/console/lang/{lang}", get(set_language))
        .route(
            "/console/sign-in",
            get(sign_in::page).post(sign_in::with_token),
        )
        .route("/console/sign-in/oidc", get(sign_in::start_oidc))
        .route("/console/callback", get(sign_in::callback))
        .route("/console/sign-out", post(sign_in::sign_out))
        .route("/console/bureaus/{bureau}", get(bureau::page))
        .route(
            "/console/bureaus/{bureau}/environments",
            post(bureau::request),
        )
        .route(
            "/console/bureaus/{bureau}/environments/{environment}/delete",
            post(bureau::delete),
        )
        .route(
            "/console/bureaus/{bureau}/environments/{environment}/resize",
            post(bureau::resize),
        )
        .route(
            "/console/bureaus/{bureau}/environments/{environment}/kubeconfig",
            post(bureau::kubeconfig),
        )
        .route("/console/finance", get(finance::page))
        .route("/console/finance/statement.csv", get(finance::csv))
        .route("/console/finance/close", post(finance::close))
        .route("/console/finance/adjust", post(finance::adjust))
        .route("/console/finance/waive", post(finance::waive))
        .route("/console/evaluation", get(evaluation::page))
        .route("/console/evaluation.csv", get(evaluation::csv))
        .route("/console/audit", get(audit::page))
        .route("/console/audit/verify", post(audit::verify))
        .route("/console/admin/requests", get(admin::requests))
        .route(
            "/console/admin/requests/{id}/{decision}",
            post(admin::decide),
        )
        .route(
            "/console/admin/bureaus",
            get(admin::bureaus).post(admin::create_bureau),
        )
        .route("/console/admin/bureaus/{bureau}", post(admin::edit_bureau))
        .layer(Extension(InternalApi(internal)))
        .layer(axum::middleware::map_response(security_headers))
}

/// The headers of every console answer.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: &'static str, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
         object-src 'none'",
    );
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "x-frame-options", "DENY");
    set(headers, "referrer-policy", "same-origin");
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, "cache-control", "no-store");
    }
    response
}

/// The value of cookie `name` in `headers`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Whether the browser reached the console over TLS (here or at a proxy that says so).
fn over_tls(state: &AppState, headers: &HeaderMap) -> bool {
    state.serves_tls()
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// A `Set-Cookie` value for the console: `HttpOnly`, `SameSite=Lax`, `Secure` over TLS.
fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/console; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Who is looking: their language, their session (if signed in), and the API to call.
#[derive(Clone)]
pub struct Visitor {
    /// Their language.
    pub lang: Lang,
    /// Their session, if signed in.
    pub session: Option<ConsoleSession>,
    /// Whether they came over TLS.
    pub secure: bool,
    /// Whether htmx sent the request (a fragment may be answered).
    pub htmx: bool,
    internal: Router,
}

impl std::fmt::Debug for Visitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Visitor")
            .field("lang", &self.lang)
            .field("signed_in", &self.session.is_some())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for InternalApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalApi")
    }
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let lang = cookie(&parts.headers, LANG_COOKIE)
            .map(Lang::parse)
            .unwrap_or_default();
        let internal = parts
            .extensions
            .get::<InternalApi>()
            .map(|i| i.0.clone())
            .ok_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())?;
        let mut session = match cookie(&parts.headers, SESSION_COOKIE) {
            Some(value) => state
                .store()
                .console_session(value, Timestamp::now())
                .await
                .map_err(|e| crate::problem::Problem::from(e).into_response())?,
            None => None,
        };
        // A session ends with the sign-in behind it: a revoked or expired token, a deleted
        // bureau. Anything else (the database or cluster away) is the page's answer.
        if let (Some(open), Some(value)) = (&session, cookie(&parts.headers, SESSION_COOKIE)) {
            match crate::middleware::still_signed_in(state, &open.principal).await {
                Ok(()) => {}
                Err(problem) if problem.status() == StatusCode::UNAUTHORIZED => {
                    state
                        .store()
                        .close_console_session(value, Timestamp::now())
                        .await
                        .map_err(|e| crate::problem::Problem::from(e).into_response())?;
                    session = None;
                }
                Err(problem) => return Err(problem.into_response()),
            }
        }
        Ok(Self {
            lang,
            session,
            secure: over_tls(state, &parts.headers),
            htmx: parts.headers.contains_key("hx-request"),
            internal,
        })
    }
}

/// The statuses of a refusal that have words of their own (`problem.{code}`); the others are
/// `problem.other`.
pub const WORDED_STATUSES: [u16; 10] = [400, 401, 403, 404, 409, 412, 413, 422, 429, 503];

/// The answer of an in-process call.
#[derive(Debug)]
pub struct Reply {
    /// Its status.
    pub status: StatusCode,
    /// Its JSON body (`Null` when not JSON).
    pub body: Value,
    /// Its raw body.
    pub raw: Bytes,
    /// Its headers.
    pub headers: HeaderMap,
}

impl Reply {
    /// The refusal in `lang`: what the status means, in words, then the API's detail (which
    /// names the values concerned, in English) and the fields it found wrong.
    pub fn detail(&self, lang: Lang) -> String {
        let code = self.status.as_u16();
        let headline = if WORDED_STATUSES.contains(&code) {
            lang.t(&format!("problem.{code}"))
        } else {
            lang.t("problem.other")
        };
        let mut detail = self.body["detail"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| self.status.to_string());
        let fields: Vec<&str> = self.body["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["field"].as_str())
            .collect();
        if !fields.is_empty() && !fields.iter().all(|f| detail.contains(f)) {
            detail = format!("{detail} ({})", fields.join(", "));
        }
        format!("{headline}{}{detail}", lang.t("problem.separator"))
    }
}

impl Visitor {
    /// The signed-in principal, or a redirect to the sign-in page.
    pub fn principal(&self) -> Result<&Principal, Response> {
        match &self.session {
            Some(session) => Ok(&session.principal),
            None => Err(self.to_sign_in()),
        }
    }

    fn to_sign_in(&self) -> Response {
        if self.htmx {
            let mut response = StatusCode::UNAUTHORIZED.into_response();
            response
                .headers_mut()
                .insert("hx-redirect", HeaderValue::from_static("/console/sign-in"));
            return response;
        }
        Redirect::to("/console/sign-in").into_response()
    }

    /// Refuses (403, and nothing done) a form whose CSRF token is not the session's.
    pub fn check_csrf(&self, sent: Option<&str>) -> Result<(), Response> {
        let session = self.session.as_ref().ok_or_else(|| self.to_sign_in())?;
        let matches = sent.is_some_and(|sent| {
            use subtle::ConstantTimeEq;
            sent.as_bytes().ct_eq(session.csrf.as_bytes()).into()
        });
        if matches {
            Ok(())
        } else {
            Err(layout::message_page(
                self,
                StatusCode::FORBIDDEN,
                &self.lang.t("error.csrf"),
            ))
        }
    }

    /// The session's CSRF token (empty when signed out).
    pub fn csrf(&self) -> &str {
        self.session.as_ref().map_or("", |s| s.csrf.as_str())
    }

    /// Calls `method path` of the API in the process as the signed-in person, asking for
    /// `accept`, with `body` as JSON.
    pub async fn api_as(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        accept: &str,
    ) -> Result<Reply, Response> {
        let principal = self.principal()?.clone();
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::ACCEPT, accept);
        let payload = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        let mut request = request
            .body(payload)
            .map_err(|_| StatusCode::BAD_REQUEST.into_response())?;
        request.extensions_mut().insert(SignedIn(Caller(principal)));
        let response = self
            .internal
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {});
        let (parts, body) = response.into_parts();
        let raw = axum::body::to_bytes(body, MAX_ANSWER)
            .await
            .map_err(|_| StatusCode::BAD_GATEWAY.into_response())?;
        Ok(Reply {
            status: parts.status,
            body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
            raw,
            headers: parts.headers,
        })
    }

    /// [`Visitor::api_as`] for JSON.
    pub async fn api(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, Response> {
        self.api_as(method, path, body, "application/json").await
    }

    /// A `GET` whose failure is the page's answer: the JSON, or an error page.
    pub async fn read(&self, path: &str) -> Result<Value, Response> {
        let reply = self.api(Method::GET, path, None).await?;
        if reply.status.is_success() {
            Ok(reply.body)
        } else {
            Err(layout::problem_page(self, &reply))
        }
    }
}

/// `/console`: the page of the signed-in person's role.
async fn home(visitor: Visitor) -> Response {
    let principal = match visitor.principal() {
        Ok(p) => p,
        Err(to_sign_in) => return to_sign_in,
    };
    let target = match (principal.role, principal.bureau.as_deref()) {
        (Role::BureauAdmin | Role::BureauViewer, Some(bureau)) => {
            format!("/console/bureaus/{bureau}")
        }
        (Role::Finance, _) => "/console/finance".to_owned(),
        (Role::Auditor, _) => "/console/audit".to_owned(),
        _ => "/console/admin/requests".to_owned(),
    };
    Redirect::to(&target).into_response()
}

/// Where `back` may send the browser: a console path, nothing else (no open redirect).
fn console_path(back: Option<&str>) -> &str {
    back.filter(|b| b.starts_with("/console") && !b.starts_with("//") && !b.contains("\\"))
        .unwrap_or("/console")
}

#[derive(serde::Deserialize)]
struct Back {
    back: Option<String>,
}

/// `/console/lang/{lang}`: remembers the language, in the browser and, for a person signed
/// in, as theirs (applied at their next sign-in, on any browser), and goes back.
async fn set_language(
    visitor: Visitor,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(lang): Path<String>,
    axum::extract::Query(back): axum::extract::Query<Back>,
) -> Response {
    let lang = Lang::parse(&lang);
    if let Some(session) = &visitor.session
        && let Err(error) = state
            .store()
            .set_console_language(
                session.principal.token.as_str(),
                lang.code(),
                Timestamp::now(),
            )
            .await
    {
        // The browser still remembers it; the next sign-in elsewhere will not.
        tracing::warn!(error = %crate::problem::ErrorChain(&error), "unable to remember a console language");
    }
    let mut response = Redirect::to(console_path(back.back.as_deref())).into_response();
    // Not HttpOnly-sensitive, but kept like the others.
    let value = set_cookie(
        LANG_COOKIE,
        lang.code(),
        LANG_SECONDS,
        over_tls(&state, &headers),
    );
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_by_name_and_only_console_paths_are_gone_back_to() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; zy_session=abc; zy_lang=en"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, LANG_COOKIE), Some("en"));
        assert_eq!(cookie(&headers, "missing"), None);
        assert_eq!(console_path(Some("/console/finance")), "/console/finance");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/api/v1/tokens",
            "/console\\@x",
        ] {
            assert_eq!(console_path(Some(bad)), "/console", "{bad}");
        }
        let value = set_cookie(SESSION_COOKIE, "abc", 60, true);
        assert!(
            value.contains("HttpOnly")
                && value.contains("SameSite=Lax")
                && value.contains("Secure")
        );
        assert!(!set_cookie(SESSION_COOKIE, "abc", 60, false).contains("Secure"));
    }
}
