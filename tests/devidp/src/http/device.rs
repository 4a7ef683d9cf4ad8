//! The device authorization grant (RFC 8628): a device asks for a user code, shows it, and
//! polls the token endpoint while its user approves or refuses on the form at `/device`.

use std::time::Instant;

use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::oauth_error::OAuthError;
use super::pages;
use crate::flows::{self, DEVICE_INTERVAL, DEVICE_LIFETIME};

/// The body of a device authorization request.
#[derive(Debug, Deserialize)]
struct DeviceCodeRequest {
    client_id: Option<String>,
    scope: Option<String>,
}

/// The answer to it (RFC 8628 3.2).
#[derive(Debug, Serialize)]
struct DeviceCodeResponse {
    device_code: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: String,
    expires_in: u64,
    interval: u64,
}

/// The query of the approval page's link.
#[derive(Debug, Deserialize)]
struct ApprovalLink {
    #[serde(default)]
    user_code: String,
}

/// The approval form as posted.
#[derive(Debug, Deserialize)]
struct Approval {
    #[serde(default)]
    user_code: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    /// `approve` or `deny`, from the button pressed.
    #[serde(default)]
    action: String,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/device/code", post(start))
        .route("/device", get(show_approval).post(decide))
}

async fn start(
    State(state): State<AppState>,
    form: Result<Form<DeviceCodeRequest>, FormRejection>,
) -> Result<Response, OAuthError> {
    let Form(request) =
        form.map_err(|rejection| OAuthError::invalid_request(rejection.body_text()))?;
    let client_id = request.client_id.unwrap_or_default();
    if client_id != state.issuer.client_id {
        return Err(OAuthError::invalid_client(&client_id));
    }
    let scope = flows::grant_scope(request.scope.as_deref());
    let started = state.grants.start_device(&client_id, scope, Instant::now());
    let verification_uri = format!("{}/device", state.issuer.url);
    let answer = DeviceCodeResponse {
        verification_uri_complete: format!("{verification_uri}?user_code={}", started.user_code),
        verification_uri,
        device_code: started.device_code,
        user_code: started.user_code,
        expires_in: DEVICE_LIFETIME.as_secs(),
        interval: DEVICE_INTERVAL.as_secs(),
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(answer)).into_response())
}

async fn show_approval(Query(link): Query<ApprovalLink>) -> Response {
    pages::device(
        StatusCode::OK,
        &flows::normalize_user_code(&link.user_code),
        "",
        None,
    )
}

async fn decide(State(state): State<AppState>, Form(approval): Form<Approval>) -> Response {
    let again =
        |status, error| pages::device(status, &approval.user_code, &approval.username, Some(error));
    let approve = match approval.action.as_str() {
        "approve" => true,
        "deny" => false,
        _ => return again(StatusCode::BAD_REQUEST, "请选择授权或拒绝"),
    };
    let Some(user) = state
        .users
        .authenticate(&approval.username, &approval.password)
    else {
        return again(StatusCode::UNAUTHORIZED, "用户名或密码错误");
    };
    let approver = approve.then_some(user.username.as_str());
    if !state
        .grants
        .decide_device(&approval.user_code, approver, Instant::now())
    {
        return again(StatusCode::BAD_REQUEST, "用户码无效、已过期或已处理");
    }
    if approve {
        pages::message(
            StatusCode::OK,
            "已授权",
            "设备已获得授权，请回到设备上继续。",
        )
    } else {
        pages::message(StatusCode::OK, "已拒绝", "已拒绝该设备的授权请求。")
    }
}
