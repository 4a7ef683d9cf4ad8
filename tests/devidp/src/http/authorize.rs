//! The authorization endpoint (RFC 6749 4.1, with PKCE): a sign-in form for the browser of a
//! native app listening on a loopback port, and the redirect back to it with a code.
//!
//! A request that names an unknown client or a redirect URI this provider will not send to is
//! answered here with 400; any other fault goes back to the client's redirect URI as
//! `error=…` (RFC 6749 4.1.2.1).

use std::time::Instant;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;
use url::Url;

use super::AppState;
use super::pages;
use crate::flows::{self, CodeRequest, Session};

/// The parameters of an authorization request, as the query of `GET` or the hidden fields of
/// the sign-in form.
#[derive(Debug, Default, Deserialize)]
struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    scope: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    nonce: Option<String>,
}

/// The sign-in form as posted.
#[derive(Debug, Deserialize)]
struct SignIn {
    #[serde(flatten)]
    params: AuthorizeParams,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// An authorization request that may go on to the sign-in.
#[derive(Debug)]
struct Accepted {
    client_id: String,
    /// As the client wrote it: the token request must repeat it exactly.
    redirect_uri: String,
    /// Parsed, to add the answer to its query.
    redirect_url: Url,
    challenge: String,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/authorize", get(show_sign_in).post(sign_in))
}

async fn show_sign_in(
    State(state): State<AppState>,
    Query(params): Query<AuthorizeParams>,
) -> Response {
    match accept(&state, &params) {
        Ok(_) => pages::sign_in(StatusCode::OK, &hidden(&params), "", None),
        Err(refused) => refused.into_response(),
    }
}

async fn sign_in(State(state): State<AppState>, Form(form): Form<SignIn>) -> Response {
    let params = &form.params;
    let accepted = match accept(&state, params) {
        Ok(accepted) => accepted,
        Err(refused) => return refused.into_response(),
    };
    let Some(user) = state.users.authenticate(&form.username, &form.password) else {
        return pages::sign_in(
            StatusCode::UNAUTHORIZED,
            &hidden(params),
            &form.username,
            Some("用户名或密码错误"),
        );
    };
    let session = Session::new(
        user.username,
        flows::grant_scope(params.scope.as_deref()),
        params.nonce.clone(),
    );
    let code = state.grants.issue_code(
        CodeRequest {
            client_id: accepted.client_id,
            redirect_uri: accepted.redirect_uri,
            code_challenge: accepted.challenge,
            session,
        },
        Instant::now(),
    );
    redirect(
        accepted.redirect_url,
        &[("code", &code)],
        params.state.as_deref(),
    )
}

/// Why an authorization request cannot go on to the sign-in.
#[derive(Debug)]
enum Refused {
    /// The client or its redirect URI cannot be trusted with the answer, so it is shown here.
    Here { title: &'static str, text: String },
    /// Anything else goes back to the client.
    Back {
        to: Box<Url>,
        error: &'static str,
        description: &'static str,
        state: Option<String>,
    },
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Here { title, text } => pages::message(StatusCode::BAD_REQUEST, title, &text),
            Refused::Back {
                to,
                error,
                description,
                state,
            } => {
                let pairs = [("error", error), ("error_description", description)];
                redirect(*to, &pairs, state.as_deref())
            }
        }
    }
}

/// Checks a request in the order RFC 6749 4.1.2.1 asks: client and redirect URI first, answered
/// here; then the rest, answered at the redirect URI.
fn accept(state: &AppState, params: &AuthorizeParams) -> Result<Accepted, Refused> {
    let client_id = params.client_id.as_deref().unwrap_or_default();
    if client_id != state.issuer.client_id {
        return Err(Refused::Here {
            title: "未知的客户端",
            text: format!("client_id “{client_id}” 不是本身份提供方登记的客户端。"),
        });
    }
    let redirect_uri = params.redirect_uri.as_deref().unwrap_or_default();
    let Some(redirect_url) = flows::loopback_redirect(redirect_uri) else {
        return Err(Refused::Here {
            title: "回调地址无效",
            text: "redirect_uri 必须是本机回环地址上的 http 地址，如 http://127.0.0.1:端口/路径（RFC 8252）。".into(),
        });
    };
    let back = |error, description| Refused::Back {
        to: Box::new(redirect_url.clone()),
        error,
        description,
        state: params.state.clone(),
    };
    if params.response_type.as_deref() != Some("code") {
        return Err(back(
            "unsupported_response_type",
            "only response_type=code is supported",
        ));
    }
    let challenge = params.code_challenge.as_deref().unwrap_or_default();
    if params.code_challenge_method.as_deref() != Some("S256") || !flows::is_pkce_string(challenge)
    {
        return Err(back(
            "invalid_request",
            "PKCE is required: code_challenge with code_challenge_method=S256",
        ));
    }
    Ok(Accepted {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        redirect_url,
        challenge: challenge.to_owned(),
    })
}

/// `302 Found` to `uri` with `pairs` and the client's `state` added to its query.
fn redirect(mut uri: Url, pairs: &[(&str, &str)], state: Option<&str>) -> Response {
    {
        let mut query = uri.query_pairs_mut();
        query.extend_pairs(pairs);
        if let Some(state) = state {
            query.append_pair("state", state);
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, uri.to_string())]).into_response()
}

fn hidden(params: &AuthorizeParams) -> Vec<(&'static str, Option<&str>)> {
    vec![
        ("response_type", params.response_type.as_deref()),
        ("client_id", params.client_id.as_deref()),
        ("redirect_uri", params.redirect_uri.as_deref()),
        ("state", params.state.as_deref()),
        ("scope", params.scope.as_deref()),
        ("code_challenge", params.code_challenge.as_deref()),
        (
            "code_challenge_method",
            params.code_challenge_method.as_deref(),
        ),
        ("nonce", params.nonce.as_deref()),
    ]
}
