//! The layers around every handler: a request id, a log line and metrics for each request, a
//! timeout; and, on `/api/v1`, bearer-token authentication (failures limited per client
//! address, [`crate::limit`]) and the audit record of every mutating call.

use std::time::{Duration, Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tracing::Instrument;
use zhengyun_store::AuditEntry;

use crate::{
    context::{Audit, Caller, REQUEST_ID},
    problem::{ErrorChain, Problem, retry_seconds},
    state::AppState,
};

/// The header carrying the request id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// How long a request may take before the caller gets a 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Gives the request an id (a caller's own `x-request-id` is kept if it is a sane token), logs
/// it, times it out, counts it, and returns the id in the response.
pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!("request", request_id = %id, %method, %route);
    let started = Instant::now();
    let work = async move {
        match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
            Ok(response) => response,
            Err(_) => {
                tracing::warn!("request timed out");
                Problem::unavailable(format!(
                    "the request took longer than {} s; retry later",
                    REQUEST_TIMEOUT.as_secs()
                ))
                .into_response()
            }
        }
    };
    let mut response = REQUEST_ID
        .scope(id.clone(), work.instrument(span.clone()))
        .await;
    let status = response.status();
    let seconds = started.elapsed().as_secs_f64();
    span.in_scope(|| {
        tracing::info!(status = status.as_u16(), ms = seconds * 1000.0, "answered");
    });
    state
        .metrics()
        .observe(&method, &route, status.as_u16(), seconds);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// Authenticates the bearer token and, for mutating methods, appends what happened to the
/// audit log once the handler has answered, whatever the answer.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let limiter = state.auth_limiter();
    let client = limiter.client(request.extensions().get(), request.headers());
    let authorization = request.headers().get(header::AUTHORIZATION).cloned();
    let presented = authorization.as_ref().map(HeaderValue::as_bytes);
    if let Err(wait) = limiter.check(client)
        && !presented.is_some_and(|a| limiter.recently_good(a))
    {
        let mut response = Problem::too_many_failures(wait).into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_seconds(wait)));
        return response;
    }
    let caller = match caller(&state, authorization.clone()).await {
        Ok(caller) => {
            if let Some(presented) = presented {
                limiter.succeed(presented);
            }
            caller
        }
        Err(problem) => {
            if problem.status() == StatusCode::UNAUTHORIZED {
                limiter.fail(client);
                if let Some(presented) = presented {
                    limiter.forget(presented);
                }
            }
            return problem.into_response();
        }
    };
    request.extensions_mut().insert(caller.clone());
    if !mutates(request.method()) {
        return next.run(request).await;
    }
    let audit = Audit::default();
    request.extensions_mut().insert(audit.clone());
    let action = format!(
        "{} {}",
        request.method(),
        request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str)
            .unwrap_or_else(|| request.uri().path())
    );
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    record(&state, &caller, &audit, action, &path, response.status()).await;
    response
}

fn mutates(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

async fn caller(state: &AppState, authorization: Option<HeaderValue>) -> Result<Caller, Problem> {
    let Some(value) = authorization else {
        return Err(Problem::unauthorized(
            "a bearer token is required: `Authorization: Bearer <token>`",
        ));
    };
    let secret = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 512)
        .ok_or_else(|| {
            Problem::unauthorized("the Authorization header must be `Bearer <token>`")
        })?;
    let Some(principal) = state.store().authenticate(secret).await? else {
        return Err(Problem::unauthorized(
            "the token is unknown, revoked or expired",
        ));
    };
    if let Some(bureau) = principal.bureau.as_deref() {
        // A bureau token reaches its bureau only while that bureau exists, and only the one it
        // was issued for: `kubectl delete bureau` and a re-created bureau of the same code
        // included.
        match state.bureau_uid(bureau).await? {
            None => {
                return Err(Problem::unauthorized(format!(
                    "the token's bureau {bureau:?} no longer exists"
                )));
            }
            Some(uid)
                if principal
                    .bureau_uid
                    .as_ref()
                    .is_some_and(|issued| *issued != uid) =>
            {
                return Err(Problem::unauthorized(format!(
                    "the token's bureau {bureau:?} was deleted; the bureau of that code now is \
                     another one"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(Caller(principal))
}

/// `bureaus/<code>` paths name their bureau even when the handler never ran.
fn bureau_in_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/api/v1/bureaus/")?;
    let code = rest.split('/').next()?;
    (!code.is_empty()).then(|| code.to_owned())
}

async fn record(
    state: &AppState,
    caller: &Caller,
    audit: &Audit,
    route_action: String,
    path: &str,
    status: StatusCode,
) {
    let note = audit.snapshot();
    let mut result = status.to_string();
    if let Some(outcome) = &note.outcome {
        result = format!("{result}: {outcome}");
    }
    let entry = AuditEntry {
        at: jiff::Timestamp::now(),
        principal: caller.name().to_owned(),
        principal_label: Some(caller.0.label()),
        role: Some(caller.role()),
        bureau: note
            .bureau
            .or_else(|| bureau_in_path(path))
            .or_else(|| caller.bureau().map(str::to_owned)),
        action: note.action.unwrap_or(route_action),
        object: note
            .object
            .filter(|o| !o.is_empty())
            .unwrap_or_else(|| path.trim_start_matches("/api/v1/").to_owned()),
        quota_before: note.before,
        quota_after: note.after,
        result,
        request_id: crate::context::current_request_id().unwrap_or_default(),
    };
    if let Err(error) = state.store().append_audit(&entry).await {
        // The change (if any) is made; the entry is kept in the log so it can be re-entered.
        tracing::error!(error = %ErrorChain(&error), ?entry, "unable to append to the audit log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bureau_paths_name_their_bureau() {
        assert_eq!(
            bureau_in_path("/api/v1/bureaus/wjw/environments/wjw-dev"),
            Some("wjw".to_owned())
        );
        assert_eq!(bureau_in_path("/api/v1/bureaus/"), None);
        assert_eq!(bureau_in_path("/api/v1/tokens"), None);
    }
}
