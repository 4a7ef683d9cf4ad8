//! `/api/v1/requests`: change requests that wait for a platform admin. Approving one applies
//! it: the bureau's quota is raised just enough (an environment request), or the resources a
//! bureau's quota request names are set to what it asked (the others keep their quota), and
//! the environment is created or resized.
//!
//! Approval is all or nothing. The environment write is first tried as a server-side dry run,
//! before the bureau's quota is raised; if the real write still fails, the raise is rolled back
//! (on the bureau as it was raised, retried on conflicts) and the request goes back to pending.
//! A failed approval is recorded in the audit log with what became of the quota. A quota request
//! is never applied below what the bureau's environments have been admitted (409).

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use zhengyun_model::{Validate, crd::Bureau, quantity::Quota};
use zhengyun_store::{ChangeRequest, RequestFilter, RequestKind, RequestState, Role};

use crate::{
    bureaus::already_exists,
    context::{Audit, Caller},
    environments::{apply_update, environment_from},
    extract::{Json, Path, Query},
    headroom::{self, Headroom},
    page::{Page, page},
    problem::{ApiResult, Problem},
    retry,
    state::{AppState, dry_run_params, write_params},
    views::{
        Approved, CreateEnvironment, Decision, EnvironmentView, QuotaBody, RequestView,
        UpdateEnvironment, quota_json, request_view,
    },
};

/// The change-request routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_requests))
        .routes(routes!(get_request))
        .routes(routes!(approve_request))
        .routes(routes!(reject_request))
}

/// Filters for listing change requests.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RequestQuery {
    /// Only this bureau's (bureau roles always see only their own).
    pub bureau: Option<String>,
    /// `pending`, `approved` or `rejected`.
    pub state: Option<String>,
    /// At most this many requests (1–1000; 500 if absent).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Start after the request with this id: the `x-next-after` header of the previous page.
    pub after: Option<String>,
}

const READERS: [Role; 4] = [
    Role::PlatformAdmin,
    Role::BureauAdmin,
    Role::BureauViewer,
    Role::Auditor,
];

/// Change requests, oldest first: all of them for platform admins and auditors, the bureau's
/// own for bureau roles. Paged: `limit` (500 by default) and `after`, the `x-next-after` (a
/// request id) of the previous page.
#[utoipa::path(get, path = "/api/v1/requests", tag = "requests", params(RequestQuery),
    responses((status = 200, body = [RequestView],
            headers(("x-next-after" = String, description = "The `after` of the next page, when there is one"))),
        (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn list_requests(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<RequestQuery>,
) -> ApiResult<Page<RequestView>> {
    caller.require(&READERS)?;
    if let Some(bureau) = &query.bureau {
        caller.require_bureau(bureau)?;
    }
    let filter = RequestFilter {
        bureau: caller.bureau().map(str::to_owned).or(query.bureau),
        state: query
            .state
            .map(|s| s.parse::<RequestState>())
            .transpose()
            .map_err(|e| Problem::invalid_field("state", e.to_string()))?,
    };
    let list = state.store().list_requests(&filter).await?;
    let views: Vec<RequestView> = list.iter().map(request_view).collect();
    page(views, |r| &r.id, query.limit, query.after.as_deref())
}

/// A request the caller may see, or 404 (a bureau's requests are invisible to other bureaus).
async fn visible_request(state: &AppState, caller: &Caller, id: &str) -> ApiResult<ChangeRequest> {
    let request = state.store().get_request(id).await?;
    if !caller.sees_bureau(&request.bureau) {
        return Err(Problem::not_found(format!("change request {id} not found")));
    }
    Ok(request)
}

/// One change request.
#[utoipa::path(get, path = "/api/v1/requests/{id}", tag = "requests",
    params(("id" = String, Path, description = "Request id")),
    responses((status = 200, body = RequestView), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn get_request(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<RequestView>> {
    caller.require(&READERS)?;
    let request = visible_request(&state, &caller, &id).await?;
    Ok(axum::Json(request_view(&request)))
}

/// Approves a pending request and applies it (platform admin).
#[utoipa::path(post, path = "/api/v1/requests/{id}/approve", tag = "requests",
    params(("id" = String, Path, description = "Request id")),
    request_body = Decision,
    responses((status = 200, body = Approved), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
async fn approve_request(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path(id): Path<String>,
    Json(decision): Json<Decision>,
) -> ApiResult<axum::Json<Approved>> {
    audit.about("request.approve", format!("requests/{id}"), None);
    caller.require(&[Role::PlatformAdmin])?;
    check_decision(&decision)?;
    let request = state.store().get_request(&id).await?;
    audit.note(|n| n.bureau = Some(request.bureau.clone()));
    let decided = state
        .store()
        .decide_request(
            &id,
            RequestState::Approved,
            caller.name(),
            decision.reason.as_deref(),
        )
        .await?;
    match apply(&state, &audit, &decided).await {
        Ok((environment, bureau)) => Ok(axum::Json(Approved {
            request: request_view(&decided),
            environment: environment.as_ref().map(EnvironmentView::from),
            bureau_quota: QuotaBody::from(&bureau.spec.quota),
        })),
        Err(problem) => {
            if audit.snapshot().outcome.is_none() {
                audit.outcome(format!(
                    "approval failed, nothing was applied: {}",
                    problem.detail
                ));
            }
            if let Err(error) = state.store().reopen_request(&id).await {
                tracing::error!(%error, request = %id, "unable to reopen a request whose approval failed");
            }
            Err(problem)
        }
    }
}

fn payload<T: serde::de::DeserializeOwned>(request: &ChangeRequest) -> ApiResult<T> {
    serde_json::from_value(request.payload.clone()).map_err(|e| {
        Problem::conflict(format!(
            "request {} has a payload this version cannot apply: {e}",
            request.id
        ))
    })
}

/// Raises `bureau`'s quota to `quota` (if it differs), recording it in the audit note.
///
/// The operator writes the bureau's status whenever one of its environments changes, which
/// makes the read copy stale (409) without touching the spec the decision was based on; then
/// the change is made again on a fresh copy. A change to the spec itself stays a 409.
async fn set_bureau_quota(
    state: &AppState,
    audit: &Audit,
    bureau: Bureau,
    quota: Quota,
) -> ApiResult<Bureau> {
    if bureau.spec.quota == quota {
        return Ok(bureau);
    }
    let before = quota_json(&bureau.spec.quota);
    let name = bureau.metadata.name.clone().unwrap_or_default();
    let (decided_on, name, quota) = (&bureau.spec.clone(), &name, &quota);
    let mut read = Some(bureau);
    let written = retry::on_conflict(|_| {
        let first = read.take();
        async move {
            let current = match first {
                Some(first) => first,
                None => {
                    let fresh = state.bureau(name).await?;
                    if fresh.spec != *decided_on {
                        return Err(Problem::conflict(format!(
                            "bureau {name:?} was changed meanwhile; retry"
                        )));
                    }
                    fresh
                }
            };
            let mut changed = current;
            changed.spec.quota = quota.clone();
            changed
                .validate()
                .map_err(|e| Problem::from_validation(&e))?;
            let written = state.replace_bureau(name, &changed).await;
            retry::written::<_, Problem>(written, true)
        }
    })
    .await?;
    audit.quotas(Some(before), Some(quota_json(&written.spec.quota)));
    Ok(written)
}

/// Puts `raised`'s quota back to `previous` after the environment write failed with
/// `problem`, and returns `problem` with the audit note saying what became of the quota.
///
/// The write carries `raised`'s resourceVersion. On a conflict (the operator writes the
/// bureau's status) it is made again on a fresh copy, as long as the quota is still the one this
/// approval set; a quota someone else changed meanwhile is left to them, and the note says so.
async fn roll_back(
    state: &AppState,
    audit: &Audit,
    raised: Bureau,
    previous: Quota,
    problem: Problem,
) -> Problem {
    if raised.spec.quota == previous {
        return problem;
    }
    let name = raised.metadata.name.clone().unwrap_or_default();
    let raised_quota = raised.spec.quota.clone();
    let (name, raised_quota, previous) = (&name, &raised_quota, &previous);
    let mut read = Some(raised);
    let restored = retry::on_conflict(|_| {
        let first = read.take();
        async move {
            let current = match first {
                Some(first) => first,
                None => match state.bureau(name).await {
                    Ok(fresh) if fresh.spec.quota == *raised_quota => fresh,
                    Ok(_) => return Err(Failure("the quota was changed meanwhile".to_owned())),
                    Err(fresh) => return Err(Failure(fresh.detail)),
                },
            };
            let mut restored = current;
            restored.spec.quota = previous.clone();
            let written = state.replace_bureau(name, &restored).await;
            retry::written::<_, Failure>(written, true)
        }
    })
    .await;
    let failure = match restored {
        Ok(_) => {
            audit.quotas(Some(quota_json(previous)), Some(quota_json(previous)));
            audit.outcome(format!(
                "approval failed, the bureau quota was rolled back and nothing was applied: {}",
                problem.detail
            ));
            return problem;
        }
        Err(Failure(failure)) => failure,
    };
    tracing::error!(bureau = %name, %failure, "unable to roll back a bureau quota raised for a failed approval");
    audit.outcome(format!(
        "approval failed and the bureau quota raised for it could not be rolled back \
         ({failure}): {}",
        problem.detail
    ));
    problem
}

/// Why a roll-back could not be made, in words for the audit entry.
struct Failure(String);

impl From<kube::Error> for Failure {
    fn from(error: kube::Error) -> Self {
        Self(error.to_string())
    }
}

/// Refuses (409) a bureau quota below what its environments have been admitted, by their own
/// status or by the bureau's.
fn refuse_below_admitted(
    owner: &Bureau,
    quota: &Quota,
    environments: &[zhengyun_model::crd::Environment],
) -> ApiResult<()> {
    let mut over = headroom::below_admitted(quota, environments)?;
    if over.is_empty()
        && let Some(allocated) = owner.status.as_ref().and_then(|s| s.allocated.as_ref())
    {
        over = headroom::below_allocated(quota, allocated)?;
    }
    if over.is_empty() {
        return Ok(());
    }
    Err(Problem::conflict(format!(
        "approving would set the bureau's quota below what its environments have been \
         admitted: {}",
        headroom::describe(&over)
    )))
}

type Applied = (Option<zhengyun_model::crd::Environment>, Bureau);

async fn apply(state: &AppState, audit: &Audit, request: &ChangeRequest) -> ApiResult<Applied> {
    let bureau = &request.bureau;
    let _guard = state.lock_bureau(bureau).await;
    let owner = state.bureau(bureau).await?;
    match request.kind {
        RequestKind::BureauQuota => {
            // The payload names what changes; the rest stays as it is now. Requests stored
            // before this rule have the same shape and are read the same way.
            let change: QuotaBody = payload(request)?;
            let quota = change.applied_to(&owner.spec.quota);
            let environments = state.environments_of(bureau).await?;
            refuse_below_admitted(&owner, &quota, &environments)?;
            let updated = set_bureau_quota(state, audit, owner, quota).await?;
            Ok((None, updated))
        }
        RequestKind::EnvironmentCreate => {
            let body: CreateEnvironment = payload(request)?;
            let env = environment_from(bureau, &body, state.clock().now())?;
            let environments = state.environments_of(bureau).await?;
            if environments
                .iter()
                .any(|e| e.metadata.name.as_deref() == Some(request.object.as_str()))
            {
                return Err(Problem::conflict(format!(
                    "environment {:?} already exists",
                    request.object
                )));
            }
            let room = Headroom::new(&owner.spec.quota, &environments, None)?;
            let raised = room.raised_limit(&owner.spec.quota, &headroom::wanted(&env.spec.quota)?);
            let refused = |e| already_exists(e, "environment", &request.object);
            state
                .environments()
                .create(&dry_run_params(), &env)
                .await
                .map_err(refused)?;
            let previous = owner.spec.quota.clone();
            let updated = set_bureau_quota(state, audit, owner, raised).await?;
            match state.create_environment(&env, &write_params()).await {
                Ok(created) => Ok((Some(created), updated)),
                Err(e) => Err(roll_back(state, audit, updated, previous, refused(e)).await),
            }
        }
        RequestKind::EnvironmentResize => {
            let body: UpdateEnvironment = payload(request)?;
            let current = state.environment(bureau, &request.object).await?;
            let resized = apply_update(&current, &body)?;
            let environments = state.environments_of(bureau).await?;
            let room = Headroom::new(&owner.spec.quota, &environments, Some(&request.object))?;
            let raised =
                room.raised_limit(&owner.spec.quota, &headroom::wanted(&resized.spec.quota)?);
            let environments_api = state.environments();
            environments_api
                .replace(&request.object, &dry_run_params(), &resized)
                .await?;
            let previous = owner.spec.quota.clone();
            let updated = set_bureau_quota(state, audit, owner, raised).await?;
            match state
                .replace_environment(&request.object, &resized, &write_params())
                .await
            {
                Ok(replaced) => Ok((Some(replaced), updated)),
                Err(e) => Err(roll_back(state, audit, updated, previous, e.into()).await),
            }
        }
    }
}

/// Rejects a pending request with a reason (platform admin).
#[utoipa::path(post, path = "/api/v1/requests/{id}/reject", tag = "requests",
    params(("id" = String, Path, description = "Request id")),
    request_body = Decision,
    responses((status = 200, body = RequestView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn reject_request(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path(id): Path<String>,
    Json(decision): Json<Decision>,
) -> ApiResult<axum::Json<RequestView>> {
    audit.about("request.reject", format!("requests/{id}"), None);
    caller.require(&[Role::PlatformAdmin])?;
    check_decision(&decision)?;
    let reason = decision
        .reason
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| Problem::invalid_field("reason", "a rejection must say why"))?;
    let request = state.store().get_request(&id).await?;
    audit.note(|n| n.bureau = Some(request.bureau.clone()));
    let decided = state
        .store()
        .decide_request(&id, RequestState::Rejected, caller.name(), Some(&reason))
        .await?;
    Ok(axum::Json(request_view(&decided)))
}

/// 422 for a decision whose reason hides what it says (control or format characters).
fn check_decision(decision: &Decision) -> Result<(), Problem> {
    let reason = decision.reason.as_deref().unwrap_or_default();
    zhengyun_model::names::check_visible_text(reason)
        .map_err(|message| Problem::invalid_field("reason", message))
}
