//! The layers around every handler: a request id, a log line and metrics for each request, a
//! timeout; and, on `/api/v1`, bearer-token authentication (failures limited per client
//! address, [`crate::limit`]) and the audit record of every mutating call.
//!
//! # Every change has its audit entry
//!
//! A mutating call first opens an audit intent in the store (the entry it will append, "in
//! progress"); if that write fails, the call is refused with 503 and nothing is attempted. The
//! handler and the append of its entry (which settles the intent in the same transaction) then
//! run as a task of their own, tracked by [`AppState::changes`]: a client that disconnects, or
//! the answer timeout (504 for a change, whose outcome is then in the audit log), cancels
//! neither. An entry the database refuses after the change is retried in the background, and
//! an intent left open by a process that stopped is appended with an unknown outcome by
//! [`crate::settle_stale_audit_intents`].

use std::time::{Duration, Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tracing::Instrument;
use zhengyun_store::{AuditEntry, AuditIntent};

use crate::{
    context::{Audit, Caller, REQUEST_ID},
    problem::{ErrorChain, Problem, retry_seconds},
    state::AppState,
};

/// The header carrying the request id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// How long a request may take before the caller gets an answer anyway: 503 for a read, 504
/// for a change (which is carried on to its end).
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
    let changing = mutates(&method);
    let work = async move {
        match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
            Ok(response) => response,
            Err(_) if changing => {
                tracing::warn!("change timed out; it is still being carried out");
                Problem::still_running(format!(
                    "the change took longer than {} s to answer; it is still being carried out \
                     and its outcome will be in the audit log under this request id",
                    REQUEST_TIMEOUT.as_secs()
                ))
                .into_response()
            }
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

/// Authenticates the bearer token and, for mutating methods, makes sure what happens is in the
/// audit log whatever the answer (see the module documentation).
pub async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // The console's in-process calls come authenticated by its session, whose sign-in must
    // still hold.
    if let Some(signed_in) = request
        .extensions()
        .get::<crate::console::SignedIn>()
        .cloned()
    {
        if let Err(problem) = still_signed_in(&state, &signed_in.0.0).await {
            return problem.into_response();
        }
        return proceed(state, request, next, signed_in.0).await;
    }
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
    let caller = match authenticated(&state, authorization.clone()).await {
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
    proceed(state, request, next, caller).await
}

/// Serves `request` as `caller`, a change with its audit entry (see the module documentation).
async fn proceed(state: AppState, mut request: Request, next: Next, caller: Caller) -> Response {
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
    let attempt = Attempt {
        state,
        caller,
        audit,
        action,
        path,
    };
    // The intent, the change and its entry run to completion as a task of their own: a caller
    // that disconnects or times out cancels none of them (nor leaves an intent for a change
    // that was never attempted).
    let id = crate::context::current_request_id().unwrap_or_default();
    let span = tracing::Span::current();
    let changes = attempt.state.changes().clone();
    let change = async move {
        // Written before anything is changed: no entry, no change.
        let intent = match attempt
            .state
            .store()
            .open_audit_intent(&attempt.entry(zhengyun_store::IN_PROGRESS))
            .await
        {
            Ok(intent) => intent,
            Err(error) => {
                tracing::error!(error = %ErrorChain(&error), "unable to write to the audit log");
                return Problem::unavailable(
                    "the audit log cannot be written, so nothing was changed; retry later",
                )
                .into_response();
            }
        };
        let response = next.run(request).await;
        attempt.record(&intent, response.status()).await;
        response
    };
    match changes
        .spawn(REQUEST_ID.scope(id, change.instrument(span)))
        .await
    {
        Ok(response) => response,
        Err(failed) => Problem::internal(&failed).into_response(),
    }
}

/// How long a change's entry keeps being retried when the database refuses it; after that the
/// intent is left for [`crate::settle_stale_audit_intents`].
const RECORD_PERSISTENCE: Duration = Duration::from_secs(300);

/// A mutating call: who made it, on what, and what the handler noted about it.
struct Attempt {
    state: AppState,
    caller: Caller,
    audit: Audit,
    action: String,
    path: String,
}

impl Attempt {
    /// The call's entry with `result`, from what the handler has noted so far.
    fn entry(&self, result: &str) -> AuditEntry {
        let note = self.audit.snapshot();
        let mut result = result.to_owned();
        if let Some(outcome) = &note.outcome {
            result = format!("{result}: {outcome}");
        }
        AuditEntry {
            at: jiff::Timestamp::now(),
            principal: self.caller.name().to_owned(),
            principal_label: Some(self.caller.0.label()),
            role: Some(self.caller.role()),
            bureau: note
                .bureau
                .or_else(|| bureau_in_path(&self.path))
                .or_else(|| self.caller.bureau().map(str::to_owned)),
            action: note.action.unwrap_or_else(|| self.action.clone()),
            object: note
                .object
                .filter(|o| !o.is_empty())
                .unwrap_or_else(|| self.path.trim_start_matches("/api/v1/").to_owned()),
            quota_before: note.before,
            quota_after: note.after,
            result,
            request_id: crate::context::current_request_id().unwrap_or_default(),
        }
    }

    /// Appends the call's entry with its outcome and settles `intent`. If the database refuses,
    /// the answer goes out anyway (the change is made) and the entry is retried in the
    /// background; the intent keeps it in the database meanwhile.
    async fn record(self, intent: &AuditIntent, status: StatusCode) {
        let entry = self.entry(&status.to_string());
        let store = self.state.store().clone();
        let Err(error) = store.append_audit_settling(&entry, intent).await else {
            return;
        };
        tracing::warn!(error = %ErrorChain(&error), "unable to append to the audit log; retrying");
        let intent = intent.clone();
        self.state.changes().spawn(
            async move {
                let deadline = Instant::now() + RECORD_PERSISTENCE;
                let mut wait = Duration::from_millis(100);
                loop {
                    tokio::time::sleep(wait).await;
                    match store.append_audit_settling(&entry, &intent).await {
                        Ok(_) => return,
                        Err(error) if Instant::now() < deadline => {
                            tracing::warn!(error = %ErrorChain(&error), "audit append retry failed");
                            wait = (wait * 2).min(Duration::from_secs(5));
                        }
                        Err(error) => {
                            tracing::error!(
                                error = %ErrorChain(&error), ?entry,
                                "unable to append to the audit log; the open intent will be \
                                 recorded with an unknown outcome"
                            );
                            return;
                        }
                    }
                }
            }
            .in_current_span(),
        );
    }
}

fn mutates(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The caller an `Authorization` header names: an API token, or an identity provider's token.
pub(crate) async fn authenticated(
    state: &AppState,
    authorization: Option<HeaderValue>,
) -> Result<Caller, Problem> {
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
        .filter(|s| !s.is_empty() && s.len() <= crate::oidc::MAX_TOKEN_LEN)
        .ok_or_else(|| {
            Problem::unauthorized("the Authorization header must be `Bearer <token>`")
        })?;
    if let Some(oidc) = state.oidc()
        && crate::oidc::looks_like_jwt(secret)
    {
        return signed_in(state, oidc, secret).await;
    }
    if secret.len() > 512 {
        return Err(Problem::unauthorized(
            "the token is unknown, revoked or expired",
        ));
    }
    let digest = zhengyun_store::secret_digest(secret);
    let cached =
        state
            .token_cache()
            .get(&digest, std::time::Instant::now(), jiff::Timestamp::now());
    let principal = match cached {
        Some(principal) => principal,
        None => {
            let Some(principal) = state.store().authenticate(secret).await? else {
                return Err(Problem::unauthorized(
                    "the token is unknown, revoked or expired",
                ));
            };
            state
                .token_cache()
                .put(digest, principal.clone(), std::time::Instant::now());
            principal
        }
    };
    bureau_still_there(state, &principal).await?;
    Ok(Caller(principal))
}

/// Refuses (401) a principal of a bureau role whose bureau is gone, or is another one now.
async fn bureau_still_there(
    state: &AppState,
    principal: &zhengyun_store::Principal,
) -> Result<(), Problem> {
    let Some(bureau) = principal.bureau.as_deref() else {
        return Ok(());
    };
    // A bureau token reaches its bureau only while that bureau exists, and only the one it
    // was issued for: `kubectl delete bureau` and a re-created bureau of the same code
    // included.
    match state
        .bureau_uid(bureau, principal.bureau_uid.as_deref())
        .await?
    {
        None => Err(Problem::unauthorized(format!(
            "the token's bureau {bureau:?} no longer exists"
        ))),
        Some(uid)
            if principal
                .bureau_uid
                .as_ref()
                .is_some_and(|issued| *issued != uid) =>
        {
            Err(Problem::unauthorized(format!(
                "the token's bureau {bureau:?} was deleted; the bureau of that code now is \
                 another one"
            )))
        }
        Some(_) => Ok(()),
    }
}

/// Whether the sign-in behind a console session still holds, as a call with its token would
/// be authenticated: the token or identity provider's token has not expired, an API token is
/// not revoked (checked like a token, at most [`crate::token_cache::TOKEN_CACHE_TTL`] late
/// when revoked by another replica, at once when revoked here), and a bureau role's bureau is
/// still the one signed in to. 401 otherwise: the session ends.
pub(crate) async fn still_signed_in(
    state: &AppState,
    principal: &zhengyun_store::Principal,
) -> Result<(), Problem> {
    let today = jiff::Timestamp::now();
    if principal.expires_at <= today {
        return Err(Problem::unauthorized(
            "the sign-in behind this session has expired",
        ));
    }
    if !principal.token.is_signed_in() {
        // Remembered under a key no secret can have: the digest of the id with a prefix.
        let key =
            zhengyun_store::secret_digest(&format!("console-session-token:{}", principal.token));
        let now = std::time::Instant::now();
        if state.token_cache().get(&key, now, today).is_none() {
            let Some(current) = state
                .store()
                .token_in_force(&principal.token, today)
                .await?
            else {
                return Err(Problem::unauthorized(
                    "the token this session was opened with is revoked or expired",
                ));
            };
            state.token_cache().put(key, current, now);
        }
    }
    bureau_still_there(state, principal).await
}

/// The caller an identity provider's token names: verified, mapped to a role, and for a bureau
/// role checked against the bureau's existence (403 when it does not exist: the identity is
/// valid, it just has nothing here). Verified callers are remembered like tokens, never past the
/// token's expiry.
async fn signed_in(
    state: &AppState,
    oidc: &crate::oidc::Oidc,
    token: &str,
) -> Result<Caller, Problem> {
    use crate::oidc::Refusal;
    let digest = zhengyun_store::secret_digest(token);
    let now = std::time::Instant::now();
    if let Some(principal) = state
        .token_cache()
        .get(&digest, now, jiff::Timestamp::now())
    {
        return Ok(Caller(principal));
    }
    let verified = oidc.verify(token).await.map_err(|refusal| match refusal {
        Refusal::Unauthenticated(m) => Problem::unauthorized(m),
        Refusal::Forbidden(m) => Problem::forbidden(m),
        Refusal::Unavailable(m) => Problem::unavailable(m),
    })?;
    let mapped = verified.mapped;
    let mut bureau_uid = None;
    if let Some(bureau) = mapped.bureau.as_deref() {
        if zhengyun_model::names::check_bureau_code(bureau).is_err() {
            return Err(Problem::forbidden(format!(
                "your identity names the bureau {bureau:?}, which is no bureau code"
            )));
        }
        match state.bureau_uid(bureau, None).await? {
            Some(uid) => bureau_uid = Some(uid),
            None => {
                return Err(Problem::forbidden(format!(
                    "your identity names the bureau {bureau:?}, which does not exist here"
                )));
            }
        }
    }
    let principal = zhengyun_store::Principal {
        token: zhengyun_store::TokenId::signed_in(&mapped.subject, &verified.issuer_host),
        role: mapped.role,
        bureau: mapped.bureau,
        bureau_uid,
        description: mapped.name,
        expires_at: verified.expires_at,
    };
    state.token_cache().put(digest, principal.clone(), now);
    Ok(Caller(principal))
}

/// `bureaus/<code>` paths name their bureau even when the handler never ran.
fn bureau_in_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/api/v1/bureaus/")?;
    let code = rest.split('/').next()?;
    (!code.is_empty()).then(|| code.to_owned())
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
