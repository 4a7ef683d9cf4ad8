//! Signing in and out: with the district's identity provider (authorization code with PKCE,
//! redirected back to `/console/callback`), or with an API token pasted into a form.

use axum::{
    Form,
    extract::{Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jiff::Timestamp;
use maud::html;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{
    console::{
        LANG_SECONDS, MAX_SESSION, SESSION_COOKIE, Visitor, cookie,
        i18n::{LANG_COOKIE, Lang},
        layout::{frame, respond},
        over_tls, set_cookie,
    },
    state::AppState,
};

/// The cookie of a sign-in under way: a nonce for the token form, or the issuer, state and
/// PKCE verifier of a redirect to the identity provider.
const SIGN_IN_COOKIE: &str = "zy_sign_in";

/// How long a sign-in under way may take.
const SIGN_IN_SECONDS: i64 = 600;

fn random() -> String {
    let mut bytes = [0u8; 32];
    // Without randomness no sign-in can be made safe: an empty value matches nothing.
    if getrandom::fill(&mut bytes).is_err() {
        return String::new();
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

fn with_cookie(mut response: Response, value: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `GET /console/sign-in`: the identity providers, and the token form.
pub async fn page(visitor: Visitor, State(state): State<AppState>) -> Response {
    render(&visitor, &state, None, StatusCode::OK)
}

fn render(
    visitor: &Visitor,
    state: &AppState,
    failure: Option<&str>,
    status: StatusCode,
) -> Response {
    let lang = visitor.lang;
    let nonce = random();
    let providers: Vec<(usize, String)> = state
        .oidc()
        .map(|oidc| {
            oidc.issuers()
                .enumerate()
                .map(|(i, issuer)| {
                    (
                        i,
                        issuer
                            .display_name
                            .clone()
                            .unwrap_or_else(|| issuer.issuer.clone()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let markup = frame(
        visitor,
        &lang.t("sign_in.title"),
        html! {
            @if let Some(failure) = failure {
                p.notice.error role="alert" { (lang.tf("sign_in.failed", &[("detail", failure)])) }
            }
            @for (index, name) in &providers {
                p { a.button href={ "/console/sign-in/oidc?issuer=" (index) } { (lang.tf("sign_in.with", &[("name", name)])) } }
            }
            h2 { @if providers.is_empty() { (lang.t("sign_in.token_only")) } @else { (lang.t("sign_in.token")) } }
            form method="post" action="/console/sign-in" {
                input type="hidden" name="nonce" value=(nonce);
                label { (lang.t("sign_in.token_label")) " "
                    input type="password" name="token" autocomplete="off" required;
                }
                button type="submit" { (lang.t("sign_in.submit")) }
            }
        },
    );
    with_cookie(
        respond(status, markup),
        &set_cookie(SIGN_IN_COOKIE, &nonce, SIGN_IN_SECONDS, visitor.secure),
    )
}

/// The token form.
#[derive(Deserialize)]
pub struct TokenForm {
    token: String,
    nonce: String,
}

/// Opens a session for `caller`'s principal and sends the browser to its page.
async fn open(state: &AppState, visitor: &Visitor, caller: crate::context::Caller) -> Response {
    let now = Timestamp::now();
    let until = now
        .checked_add(MAX_SESSION)
        .map(|max| max.min(caller.0.expires_at))
        .unwrap_or(caller.0.expires_at);
    // The language the person chose before, on whatever browser, is theirs again.
    let chosen = match state
        .store()
        .console_language(caller.0.token.as_str())
        .await
    {
        Ok(chosen) => chosen,
        Err(error) => return crate::problem::Problem::from(error).into_response(),
    };
    match state
        .store()
        .open_console_session(&caller.0, now, until)
        .await
    {
        Ok((cookie, _)) => {
            let seconds = until.duration_since(now).as_secs().max(1);
            let mut response = with_cookie(
                Redirect::to("/console").into_response(),
                &set_cookie(SESSION_COOKIE, &cookie, seconds, visitor.secure),
            );
            if let Some(chosen) = chosen {
                let lang = Lang::parse(&chosen);
                response = with_cookie(
                    response,
                    &set_cookie(LANG_COOKIE, lang.code(), LANG_SECONDS, visitor.secure),
                );
            }
            with_cookie(response, &set_cookie(SIGN_IN_COOKIE, "", 0, visitor.secure))
        }
        Err(error) => crate::problem::Problem::from(error).into_response(),
    }
}

/// `POST /console/sign-in`: signs in with an API token (or an identity provider's token), once
/// the form's nonce matches the one this browser was given (no signing in from another site).
pub async fn with_token(
    visitor: Visitor,
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if expected.is_empty() || expected != form.nonce {
        let detail = visitor.lang.t("error.csrf");
        return render(&visitor, &state, Some(&detail), StatusCode::FORBIDDEN);
    }
    with_bearer(&state, &visitor, form.token.trim()).await
}

/// Signs in as whoever `token` (an API token or an identity provider's ID token) names, by the
/// API's own authentication; the sign-in page with the refusal otherwise.
async fn with_bearer(state: &AppState, visitor: &Visitor, token: &str) -> Response {
    let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {token}")) else {
        let detail = visitor.lang.t("sign_in.bad_token");
        return render(visitor, state, Some(&detail), StatusCode::UNAUTHORIZED);
    };
    match crate::middleware::authenticated(state, Some(bearer)).await {
        Ok(caller) => open(state, visitor, caller).await,
        Err(problem) => {
            let detail = problem.detail().to_owned();
            render(visitor, state, Some(&detail), problem.status())
        }
    }
}

#[derive(Deserialize)]
pub struct Provider {
    issuer: usize,
}

/// Where the identity provider sends the browser back: this console's callback.
fn callback_uri(visitor: &Visitor, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let scheme = if visitor.secure { "https" } else { "http" };
    format!("{scheme}://{host}/console/callback")
}

/// `GET /console/sign-in/oidc?issuer=N`: off to the identity provider, with a PKCE challenge.
pub async fn start_oidc(
    visitor: Visitor,
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(provider): Query<Provider>,
) -> Response {
    let Some(oidc) = state.oidc() else {
        let detail = visitor.lang.t("sign_in.no_provider");
        return render(&visitor, &state, Some(&detail), StatusCode::NOT_FOUND);
    };
    let endpoints = match oidc.endpoints(provider.issuer).await {
        Ok(endpoints) => endpoints,
        Err(error) => {
            return render(
                &visitor,
                &state,
                Some(&error),
                StatusCode::SERVICE_UNAVAILABLE,
            );
        }
    };
    let (nonce, verifier) = (random(), random());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", endpoints.client_id.as_str()),
            ("redirect_uri", &callback_uri(&visitor, &headers)),
            ("scope", "openid profile email groups"),
            ("state", &nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    let separator = if endpoints.authorization.contains('?') {
        '&'
    } else {
        '?'
    };
    let target = format!("{}{separator}{query}", endpoints.authorization);
    with_cookie(
        Redirect::to(&target).into_response(),
        &set_cookie(
            SIGN_IN_COOKIE,
            &format!("{}.{nonce}.{verifier}", provider.issuer),
            SIGN_IN_SECONDS,
            visitor.secure,
        ),
    )
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /console/callback`: the provider's answer; its code is traded for an ID token, which
/// signs in like any other token.
pub async fn callback(
    visitor: Visitor,
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(answer): Query<Callback>,
) -> Response {
    let pending = cookie(&headers, SIGN_IN_COOKIE)
        .unwrap_or_default()
        .to_owned();
    let mut parts = pending.splitn(3, '.');
    let (Some(index), Some(nonce), Some(verifier)) = (parts.next(), parts.next(), parts.next())
    else {
        let detail = visitor.lang.t("error.csrf");
        return render(&visitor, &state, Some(&detail), StatusCode::FORBIDDEN);
    };
    if answer.state.as_deref() != Some(nonce) || nonce.is_empty() {
        let detail = visitor.lang.t("error.csrf");
        return render(&visitor, &state, Some(&detail), StatusCode::FORBIDDEN);
    }
    if let Some(error) = answer.error {
        return render(&visitor, &state, Some(&error), StatusCode::UNAUTHORIZED);
    }
    let (Some(oidc), Ok(index), Some(code)) = (state.oidc(), index.parse::<usize>(), answer.code)
    else {
        let detail = visitor.lang.t("sign_in.bad_callback");
        return render(&visitor, &state, Some(&detail), StatusCode::BAD_REQUEST);
    };
    let id_token = match oidc
        .exchange_code(index, &code, &callback_uri(&visitor, &headers), verifier)
        .await
    {
        Ok(token) => token,
        Err(error) => return render(&visitor, &state, Some(&error), StatusCode::UNAUTHORIZED),
    };
    with_bearer(&state, &visitor, &id_token).await
}

#[derive(Deserialize)]
pub struct SignOut {
    csrf: Option<String>,
}

/// `POST /console/sign-out`: ends the session.
pub async fn sign_out(
    visitor: Visitor,
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignOut>,
) -> Response {
    if let Err(refused) = visitor.check_csrf(form.csrf.as_deref()) {
        return refused;
    }
    if let Some(value) = cookie(&headers, SESSION_COOKIE)
        && let Err(error) = state
            .store()
            .close_console_session(value, Timestamp::now())
            .await
    {
        return crate::problem::Problem::from(error).into_response();
    }
    // The browser forgets the person's language with them: the next one starts in Chinese,
    // and this one gets theirs back at sign-in.
    let secure = over_tls(&state, &headers);
    let response = with_cookie(
        Redirect::to("/console/sign-in").into_response(),
        &set_cookie(SESSION_COOKIE, "", 0, secure),
    );
    with_cookie(response, &set_cookie(LANG_COOKIE, "", 0, secure))
}
