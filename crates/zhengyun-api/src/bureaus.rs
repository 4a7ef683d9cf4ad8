//! `/api/v1/bureaus`: platform admins onboard bureaus and set their quotas; bureaus see
//! themselves and ask for more quota.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode, header},
};
use utoipa_axum::{router::OpenApiRouter, routes};
use zhengyun_model::{
    Validate,
    crd::{Bureau, BureauSpec, CapacityPool, POOL_NAME},
    names::BureauKind,
    quantity::Quota,
};
use zhengyun_store::{NewRequest, RequestKind, Role};

use crate::{
    context::{Audit, Caller},
    extract::{Json, Path, Query},
    headroom,
    page::{Page, PageQuery, page},
    problem::{ApiResult, Problem},
    reply::Created,
    retry::{self, is_conflict},
    state::AppState,
    views::{
        BureauView, CreateBureau, Pending, QuotaIncrease, UpdateBureau, quota_json, request_view,
    },
};

/// Roles that may read any bureau (bureau roles read only their own).
pub const READERS: [Role; 5] = Role::ALL;

/// The bureau routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_bureaus, create_bureau))
        .routes(routes!(get_bureau, update_bureau, delete_bureau))
        .routes(routes!(request_quota))
}

/// Lists the bureaus the caller may see, by code: all of them for platform-wide roles, its own
/// for a bureau role. Paged: `limit` (500 by default) and `after`, the `x-next-after` header of
/// the previous page.
#[utoipa::path(get, path = "/api/v1/bureaus", tag = "bureaus", params(PageQuery),
    responses((status = 200, body = [BureauView],
            headers(("x-next-after" = String, description = "The `after` of the next page, when there is one"))),
        (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn list_bureaus(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> ApiResult<Page<BureauView>> {
    caller.require(&READERS)?;
    let list = state.read_bureaus().await?;
    let mut views: Vec<BureauView> = list
        .iter()
        .filter(|b| caller.sees_bureau(b.metadata.name.as_deref().unwrap_or_default()))
        .map(|b| BureauView::from(&**b))
        .collect();
    views.sort_by(|a, b| a.name.cmp(&b.name));
    page(views, |b| &b.name, query.limit, query.after.as_deref())
}

/// Onboards a bureau (platform admin).
#[utoipa::path(post, path = "/api/v1/bureaus", tag = "bureaus", request_body = CreateBureau,
    responses((status = 201, body = BureauView), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn create_bureau(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Json(body): Json<CreateBureau>,
) -> ApiResult<Created<BureauView>> {
    audit.about(
        "bureau.create",
        format!("bureaus/{}", body.name),
        Some(&body.name),
    );
    caller.require(&[Role::PlatformAdmin])?;
    let kind: BureauKind = body
        .kind
        .parse()
        .map_err(|e| Problem::invalid_field("kind", format!("{e}")))?;
    let quota: Quota = body.quota.into();
    let bureau = Bureau::new(
        &body.name,
        BureauSpec {
            display_name: body.display_name,
            kind,
            parent: body.parent,
            quota: quota.clone(),
            monthly_budget: body.monthly_budget,
            admin_groups: body.admin_groups,
            viewer_groups: body.viewer_groups,
            domains: body.domains,
        },
    );
    bureau
        .validate()
        .map_err(|e| Problem::from_validation(&e))?;
    check_granted_domains(&state, &body.name, &bureau.spec).await?;
    audit.quotas(None, Some(quota_json(&quota)));
    let created = state
        .create_bureau(&bureau)
        .await
        .map_err(|e| already_exists(e, "bureau", &body.name))?;
    Ok(Created {
        location: format!("/api/v1/bureaus/{}", body.name),
        body: BureauView::from(&created),
    })
}

/// 422 naming each domain granted to bureau `code` that the platform's domain (the capacity
/// pool's `publishing.domain`) rules out: the platform's domain itself, one above it, or a
/// name under another bureau's `<other>.<domain>`. Nothing to check without domains, a pool or
/// a platform domain.
async fn check_granted_domains(state: &AppState, code: &str, spec: &BureauSpec) -> ApiResult<()> {
    if spec.domains.is_empty() {
        return Ok(());
    }
    let pool = kube::Api::<CapacityPool>::all(state.client())
        .get_opt(POOL_NAME)
        .await?;
    let Some(platform) = pool.and_then(|p| p.spec.publishing.domain) else {
        return Ok(());
    };
    spec.check_granted_domains(code, &platform)
        .map_err(|e| Problem::from_validation(&e))
}

/// Turns the cluster's 409 on create into "already exists".
pub fn already_exists(error: kube::Error, what: &str, name: &str) -> Problem {
    if is_conflict(&error) {
        return Problem::conflict(format!("{what} {name:?} already exists"));
    }
    error.into()
}

/// One bureau, with the quota it has allocated and uses.
#[utoipa::path(get, path = "/api/v1/bureaus/{bureau}", tag = "bureaus",
    params(("bureau" = String, Path, description = "Bureau code")),
    responses((status = 200, body = BureauView), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn get_bureau(
    State(state): State<AppState>,
    caller: Caller,
    Path(bureau): Path<String>,
) -> ApiResult<axum::Json<BureauView>> {
    caller.require(&READERS)?;
    caller.require_bureau(&bureau)?;
    let found = state.read_bureau(&bureau).await?;
    Ok(axum::Json(BureauView::from(&*found)))
}

/// The `If-Match` precondition, if any: the resourceVersion the caller last saw.
pub fn if_match(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| Problem::bad_request("If-Match must be a resourceVersion"))?;
    Ok(Some(text.trim().trim_matches('"').to_owned()))
}

/// Refuses with 412 when the object changed since the caller read it.
pub fn check_precondition(expected: Option<&str>, actual: Option<&str>) -> ApiResult<()> {
    match expected {
        Some(expected) if Some(expected) != actual => Err(Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition-failed",
            "Precondition failed",
            format!(
                "the object changed since resourceVersion {expected}; it is now {}",
                actual.unwrap_or("unknown")
            ),
        )),
        _ => Ok(()),
    }
}

/// Changes a bureau (platform admin). The quota may not drop below what its environments
/// already ask for.
#[utoipa::path(patch, path = "/api/v1/bureaus/{bureau}", tag = "bureaus",
    params(("bureau" = String, Path, description = "Bureau code"),
        ("If-Match" = Option<String>, Header, description = "resourceVersion last seen")),
    request_body = UpdateBureau,
    responses((status = 200, body = BureauView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn update_bureau(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    headers: HeaderMap,
    Path(bureau): Path<String>,
    Json(body): Json<UpdateBureau>,
) -> ApiResult<axum::Json<BureauView>> {
    audit.about("bureau.update", format!("bureaus/{bureau}"), Some(&bureau));
    caller.require(&[Role::PlatformAdmin])?;
    let precondition = if_match(&headers)?;
    let _guard = state.lock_bureau(&bureau).await;
    let (state, bureau, body, audit) = (&state, &bureau, &body, &audit);
    let precondition = &precondition;
    let updated = retry::on_conflict(|_| async move {
        let mut current = state.bureau(bureau).await?;
        check_precondition(
            precondition.as_deref(),
            current.metadata.resource_version.as_deref(),
        )?;
        let before = quota_json(&current.spec.quota);
        let domains_before = current.spec.domains.clone();
        body.apply_to(&mut current.spec);
        current
            .validate()
            .map_err(|e| Problem::from_validation(&e))?;
        if current.spec.domains != domains_before {
            check_granted_domains(state, bureau, &current.spec).await?;
        }
        audit.quotas(Some(before), Some(quota_json(&current.spec.quota)));
        let environments = state.environments_of(bureau).await?;
        let over = headroom::below_admitted(&current.spec.quota, &environments)?;
        if !over.is_empty() {
            return Err(Problem::conflict(format!(
                "the new quota is below what the bureau's admitted environments hold: {}",
                headroom::describe(&over)
            )));
        }
        let written = state.replace_bureau(bureau, &current).await;
        retry::written::<_, Problem>(written, precondition.is_none())
    })
    .await?;
    Ok(axum::Json(BureauView::from(&updated)))
}

/// Removes a bureau that has no environments left (platform admin).
#[utoipa::path(delete, path = "/api/v1/bureaus/{bureau}", tag = "bureaus",
    params(("bureau" = String, Path, description = "Bureau code")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)),
    security(("bearer" = [])))]
async fn delete_bureau(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path(bureau): Path<String>,
) -> ApiResult<StatusCode> {
    audit.about("bureau.delete", format!("bureaus/{bureau}"), Some(&bureau));
    caller.require(&[Role::PlatformAdmin])?;
    let _guard = state.lock_bureau(&bureau).await;
    let current = state.bureau(&bureau).await?;
    audit.quotas(Some(quota_json(&current.spec.quota)), None);
    let environments = state.environments_of(&bureau).await?;
    if !environments.is_empty() {
        let names: Vec<_> = environments
            .iter()
            .filter_map(|e| e.metadata.name.as_deref())
            .collect();
        return Err(Problem::conflict(format!(
            "bureau {bureau:?} still has environments: {}; delete them first",
            names.join(", ")
        )));
    }
    state.delete_bureau(&bureau).await?;
    // Its tokens die with it (authentication also refuses them while it is gone, or when a
    // bureau of the same code is created again; revoking makes it permanent and visible).
    let revoked = state.store().revoke_bureau_tokens(&bureau).await?;
    state.token_cache().clear();
    state.forget_bureau(&bureau);
    audit.outcome(format!("revoked {revoked} token(s)"));
    Ok(StatusCode::NO_CONTENT)
}

/// A bureau asks for a different quota; a platform admin decides. The request names the
/// resources to change; approval sets those and leaves the others as they are then.
#[utoipa::path(post, path = "/api/v1/bureaus/{bureau}/quota-requests", tag = "bureaus",
    params(("bureau" = String, Path, description = "Bureau code")),
    request_body = QuotaIncrease,
    responses((status = 202, body = Pending), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn request_quota(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path(bureau): Path<String>,
    Json(body): Json<QuotaIncrease>,
) -> ApiResult<(StatusCode, axum::Json<Pending>)> {
    audit.about(
        "bureau.quota-request",
        format!("bureaus/{bureau}"),
        Some(&bureau),
    );
    caller.require(&[Role::PlatformAdmin, Role::BureauAdmin])?;
    caller.require_bureau(&bureau)?;
    let quota: Quota = body.quota.clone().into();
    let mut errors = zhengyun_model::ValidationErrors::new();
    if body.quota.is_empty() {
        errors.push(
            "quota",
            "must name at least one resource to change; those not named keep their quota",
        );
    }
    quota.check("quota", &mut errors);
    if body.reason.trim().is_empty() {
        errors.push("reason", "must say why the bureau needs more");
    }
    errors.check(
        "reason",
        zhengyun_model::names::check_visible_text(&body.reason),
    );
    errors
        .into_result()
        .map_err(|e| Problem::from_validation(&e))?;
    let current = state.bureau(&bureau).await?;
    audit.quotas(
        Some(quota_json(&current.spec.quota)),
        Some(quota_json(&body.quota.applied_to(&current.spec.quota))),
    );
    let pending = state
        .store()
        .list_requests(&zhengyun_store::RequestFilter {
            bureau: Some(bureau.clone()),
            state: Some(zhengyun_store::RequestState::Pending),
        })
        .await?;
    state.limits().room_for_request(pending.len())?;
    let filed = state
        .store()
        .create_request(&NewRequest {
            kind: RequestKind::BureauQuota,
            bureau: bureau.clone(),
            object: bureau.clone(),
            payload: serde_json::to_value(&body.quota).unwrap_or_default(),
            note: body.reason,
            requested_by: caller.name().to_owned(),
        })
        .await?;
    audit.outcome(format!("pending request {}", filed.id));
    let pending = Pending {
        message: format!(
            "request {} is waiting for a platform admin's approval",
            filed.id
        ),
        request: request_view(&filed),
    };
    Ok((StatusCode::ACCEPTED, axum::Json(pending)))
}
