//! `/api/v1/bureaus/{bureau}/environments`: bureau IT staff request, resize and delete
//! environments. A request that fits what the bureau has left becomes an `Environment` at once;
//! one that does not becomes a change request for a platform admin. Either way the operator's
//! admission has the last word.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
};
use utoipa_axum::{router::OpenApiRouter, routes};
use zhengyun_model::{
    Validate,
    crd::{Environment, EnvironmentSpec, Time},
    names::{self, Purpose, Tier},
    quantity::Quota,
};
use zhengyun_store::{NewRequest, RequestFilter, RequestKind, RequestState, Role};

use crate::{
    bureaus::{already_exists, check_precondition, if_match},
    context::{Audit, Caller},
    extract::{Json, Path, Query},
    headroom::{self, Headroom},
    page::{Page, PageQuery, page},
    problem::{ApiResult, InvalidField, Problem},
    reply::{Created, OrPending},
    retry::{self, Attempt},
    state::{AppState, dry_run_params, write_params},
    views::{
        CreateEnvironment, EnvironmentView, Pending, UpdateEnvironment, quota_json, request_view,
    },
};

/// Roles that change environments (bureau admins only in their own bureau).
pub const WRITERS: [Role; 2] = [Role::PlatformAdmin, Role::BureauAdmin];

/// The environment routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_environments, create_environment))
        .routes(routes!(
            get_environment,
            update_environment,
            delete_environment
        ))
}

/// The environments of a bureau, with phase and conditions as the operator reports them.
/// Paged by name: `limit` (500 by default) and `after`, the `x-next-after` of the previous page.
#[utoipa::path(get, path = "/api/v1/bureaus/{bureau}/environments", tag = "environments",
    params(("bureau" = String, Path, description = "Bureau code"), PageQuery),
    responses((status = 200, body = [EnvironmentView],
            headers(("x-next-after" = String, description = "The `after` of the next page, when there is one"))),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn list_environments(
    State(state): State<AppState>,
    caller: Caller,
    Path(bureau): Path<String>,
    Query(query): Query<PageQuery>,
) -> ApiResult<Page<EnvironmentView>> {
    caller.require_bureau(&bureau)?;
    state.read_bureau(&bureau).await?;
    let mut environments = state.read_environments_of(&bureau).await?;
    environments.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let views: Vec<EnvironmentView> = environments
        .iter()
        .map(|env| EnvironmentView::from(&**env))
        .collect();
    page(views, |e| &e.name, query.limit, query.after.as_deref())
}

/// One environment.
#[utoipa::path(get, path = "/api/v1/bureaus/{bureau}/environments/{environment}",
    tag = "environments",
    params(("bureau" = String, Path, description = "Bureau code"),
        ("environment" = String, Path, description = "Environment name")),
    responses((status = 200, body = EnvironmentView), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn get_environment(
    State(state): State<AppState>,
    caller: Caller,
    Path((bureau, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<EnvironmentView>> {
    caller.require_bureau(&bureau)?;
    let env = state.read_environment(&bureau, &name).await?;
    Ok(axum::Json(EnvironmentView::from(&*env)))
}

/// Builds and validates the `Environment` a request asks for, naming every invalid field. It
/// carries the cleanup finalizer from creation, so the operator has nothing to add before it
/// admits it. An expiry must be later than `now`: a past one would have the environment deleted
/// as soon as it was made.
pub fn environment_from(
    bureau: &str,
    body: &CreateEnvironment,
    now: jiff::Timestamp,
) -> ApiResult<Environment> {
    let mut errors = Vec::new();
    let mut field = |field: &str, message: String| {
        errors.push(InvalidField {
            field: field.to_owned(),
            message,
        })
    };
    let purpose = body
        .purpose
        .parse::<Purpose>()
        .map_err(|e| field("purpose", e.to_string()))
        .ok();
    let tier = match &body.tier {
        None => Some(Tier::default()),
        Some(tier) => tier
            .parse::<Tier>()
            .map_err(|e| field("tier", e.to_string()))
            .ok(),
    };
    let mut services = Vec::new();
    for (i, service) in body.services.iter().enumerate() {
        match service.to_catalog() {
            Ok(s) => services.push(s),
            Err(message) => field(&format!("services[{i}].kind"), message),
        }
    }
    let expires_at = match &body.expires_at {
        None => None,
        Some(text) => match text.parse::<jiff::Timestamp>() {
            Ok(at) if at <= now => {
                field(
                    "expiresAt",
                    format!("must be in the future (it is now {now})"),
                );
                None
            }
            Ok(at) => Some(Time(at)),
            Err(_) => {
                field("expiresAt", "must be an RFC 3339 instant".to_owned());
                None
            }
        },
    };
    let quota: Quota = body.quota.clone().into();
    let (Some(purpose), Some(tier)) = (purpose, tier) else {
        // The spec cannot be built; still report every bad quantity in one answer.
        let mut invalid = zhengyun_model::ValidationErrors::new();
        quota.check("quota", &mut invalid);
        let mut problem = Problem::from_validation(&invalid);
        errors.append(&mut problem.errors);
        return Err(Problem::invalid(errors));
    };
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let name = body
        .name
        .clone()
        .unwrap_or_else(|| names::environment_name(bureau, purpose));
    let env = Environment::with_cleanup_finalizer(
        &name,
        EnvironmentSpec {
            bureau: bureau.to_owned(),
            purpose,
            tier,
            quota,
            services,
            expires_at,
        },
    );
    env.validate().map_err(|e| Problem::from_validation(&e))?;
    Ok(env)
}

/// Refuses a second request for the same object while one is pending.
async fn no_pending_request(state: &AppState, bureau: &str, object: &str) -> ApiResult<()> {
    let pending = state
        .store()
        .list_requests(&RequestFilter {
            bureau: Some(bureau.to_owned()),
            state: Some(RequestState::Pending),
        })
        .await?;
    if let Some(request) = pending.iter().find(|r| r.object == object) {
        return Err(Problem::conflict(format!(
            "request {} for {object} is already waiting for approval",
            request.id
        )));
    }
    Ok(())
}

/// Files a change request, the answer (202) to a change that needs a platform admin.
async fn file_request(
    state: &AppState,
    caller: &Caller,
    audit: &Audit,
    request: NewRequest,
) -> ApiResult<Pending> {
    let pending = state
        .store()
        .list_requests(&RequestFilter {
            bureau: Some(request.bureau.clone()),
            state: Some(RequestState::Pending),
        })
        .await?;
    state.limits().room_for_request(pending.len())?;
    let filed = state.store().create_request(&request).await?;
    audit.outcome(format!("pending request {}", filed.id));
    let pending = Pending {
        message: format!(
            "{}; request {} is waiting for a platform admin's approval",
            request.note, filed.id
        ),
        request: request_view(&filed),
    };
    tracing::info!(request = %filed.id, by = caller.name(), "change request filed");
    Ok(pending)
}

/// Requests an environment. 201 when it fits the bureau's remaining quota (the operator then
/// admits it and creates its namespace); 202 with a change request when it needs more than
/// the bureau has.
#[utoipa::path(post, path = "/api/v1/bureaus/{bureau}/environments", tag = "environments",
    params(("bureau" = String, Path, description = "Bureau code")),
    request_body = CreateEnvironment,
    responses((status = 201, body = EnvironmentView), (status = 202, body = Pending),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn create_environment(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path(bureau): Path<String>,
    Json(body): Json<CreateEnvironment>,
) -> ApiResult<OrPending<Created<EnvironmentView>>> {
    let requested_name = body
        .name
        .clone()
        .unwrap_or_else(|| format!("{bureau}-{}", body.purpose));
    audit.about(
        "environment.create",
        format!("environments/{requested_name}"),
        Some(&bureau),
    );
    caller.require(&WRITERS)?;
    caller.require_bureau(&bureau)?;
    let env = environment_from(&bureau, &body, state.clock().now())?;
    let name = env.metadata.name.clone().unwrap_or_default();
    audit.note(|n| n.object = Some(format!("environments/{name}")));
    audit.quotas(None, Some(quota_json(&env.spec.quota)));
    let _guard = state.lock_bureau(&bureau).await;
    // From the watch cache, which holds this process's own writes (the lock orders them):
    // the check below only shapes the early answer; the operator admits.
    let owner = state.read_bureau(&bureau).await?;
    let environments = state.read_environments_of(&bureau).await?;
    if environments
        .iter()
        .any(|e| e.metadata.name.as_deref() == Some(&name))
    {
        return Err(Problem::conflict(format!(
            "environment {name:?} already exists"
        )));
    }
    state.limits().room_for_environment(environments.len())?;
    no_pending_request(&state, &bureau, &name).await?;
    let room = Headroom::new(
        &owner.spec.quota,
        environments.iter().map(AsRef::as_ref),
        None,
    )?;
    let short = room.shortfall(&headroom::wanted(&env.spec.quota)?);
    if !short.is_empty() {
        // A request the cluster would refuse (its admission policies) is refused now, not at
        // its approval.
        state
            .create_environment(&env, &dry_run_params())
            .await
            .map_err(|e| already_exists(e, "environment", &name))?;
        let mut payload = body.clone();
        payload.name = Some(name.clone());
        let request = NewRequest {
            kind: RequestKind::EnvironmentCreate,
            bureau: bureau.clone(),
            object: name,
            payload: serde_json::to_value(&payload).unwrap_or_default(),
            note: format!(
                "the bureau's remaining quota is too small: {}",
                headroom::describe(&short)
            ),
            requested_by: caller.name().to_owned(),
        };
        return Ok(OrPending::pending(
            file_request(&state, &caller, &audit, request).await?,
        ));
    }
    let created = state
        .create_environment(&env, &write_params())
        .await
        .map_err(|e| already_exists(e, "environment", &name))?;
    Ok(OrPending::Done(Created {
        location: format!("/api/v1/bureaus/{bureau}/environments/{name}"),
        body: EnvironmentView::from(&created),
    }))
}

/// Resizes an environment or changes its catalog workloads. A larger quota that does not fit
/// what the bureau has left becomes a change request (202). A smaller quota below what the
/// namespace already uses is refused by the operator with a `QuotaShrinkBlocked` condition.
#[utoipa::path(patch, path = "/api/v1/bureaus/{bureau}/environments/{environment}",
    tag = "environments",
    params(("bureau" = String, Path, description = "Bureau code"),
        ("environment" = String, Path, description = "Environment name"),
        ("If-Match" = Option<String>, Header, description = "resourceVersion last seen")),
    request_body = UpdateEnvironment,
    responses((status = 200, body = EnvironmentView), (status = 202, body = Pending),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 412, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn update_environment(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    headers: HeaderMap,
    Path((bureau, name)): Path<(String, String)>,
    Json(body): Json<UpdateEnvironment>,
) -> ApiResult<OrPending<axum::Json<EnvironmentView>>> {
    audit.about(
        "environment.update",
        format!("environments/{name}"),
        Some(&bureau),
    );
    caller.require(&WRITERS)?;
    caller.require_bureau(&bureau)?;
    let precondition = if_match(&headers)?;
    resize(&state, &caller, &audit, &bureau, &name, &body, precondition).await
}

/// Applies `body` to the environment under the bureau's lock: written when it fits what the
/// bureau has left (or shrinks), filed as a change request (202) when it grows beyond it.
/// `precondition` is the resourceVersion the caller last saw, if any.
pub(crate) async fn resize(
    state: &AppState,
    caller: &Caller,
    audit: &Audit,
    bureau: &str,
    name: &str,
    body: &UpdateEnvironment,
    precondition: Option<String>,
) -> ApiResult<OrPending<axum::Json<EnvironmentView>>> {
    let _guard = state.lock_bureau(bureau).await;
    let owner = state.bureau(bureau).await?;
    let (owner, precondition) = (&owner, &precondition);
    retry::on_conflict(|_| async move {
        let current = state.environment(bureau, name).await?;
        check_precondition(
            precondition.as_deref(),
            current.metadata.resource_version.as_deref(),
        )?;
        let updated = apply_update(&current, body)?;
        audit.quotas(
            Some(quota_json(&current.spec.quota)),
            Some(quota_json(&updated.spec.quota)),
        );
        let environments = state.environments_of(bureau).await?;
        let room = Headroom::new(&owner.spec.quota, &environments, Some(name))?;
        let short = room.shortfall(&headroom::wanted(&updated.spec.quota)?);
        if !short.is_empty() && grows(&current.spec.quota, &updated.spec.quota)? {
            no_pending_request(state, bureau, name).await?;
            // A change the cluster would refuse is refused now, not at its approval.
            let checked = state
                .replace_environment(name, &updated, &dry_run_params())
                .await;
            if let Attempt::Conflict(error) =
                retry::written::<_, Problem>(checked, precondition.is_none())?
            {
                return Ok(Attempt::Conflict(error));
            }
            let request = NewRequest {
                kind: RequestKind::EnvironmentResize,
                bureau: bureau.to_owned(),
                object: name.to_owned(),
                payload: serde_json::to_value(body).unwrap_or_default(),
                note: format!(
                    "the bureau's remaining quota is too small: {}",
                    headroom::describe(&short)
                ),
                requested_by: caller.name().to_owned(),
            };
            let pending = file_request(state, caller, audit, request).await?;
            return Ok(Attempt::Done(OrPending::pending(pending)));
        }
        let written = state
            .replace_environment(name, &updated, &write_params())
            .await;
        let replaced = retry::written::<_, Problem>(written, precondition.is_none())?;
        Ok(match replaced {
            Attempt::Done(env) => {
                Attempt::Done(OrPending::Done(axum::Json(EnvironmentView::from(&env))))
            }
            Attempt::Conflict(error) => Attempt::Conflict(error),
        })
    })
    .await
}

/// `current` with `update` applied, validated.
pub fn apply_update(current: &Environment, update: &UpdateEnvironment) -> ApiResult<Environment> {
    let mut updated = current.clone();
    if let Some(quota) = &update.quota {
        updated.spec.quota = quota.clone().into();
    }
    if let Some(services) = &update.services {
        let mut catalog = Vec::new();
        for (i, service) in services.iter().enumerate() {
            catalog.push(
                service
                    .to_catalog()
                    .map_err(|m| Problem::invalid_field(format!("services[{i}].kind"), m))?,
            );
        }
        updated.spec.services = catalog;
    }
    updated
        .validate()
        .map_err(|e| Problem::from_validation(&e))?;
    Ok(updated)
}

/// Whether `after` asks for more of any resource than `before`.
fn grows(before: &Quota, after: &Quota) -> ApiResult<bool> {
    let before = headroom::wanted(before)?;
    let after = headroom::wanted(after)?;
    Ok(!after.fits_within(&before))
}

/// Deletes an environment. The operator removes its namespace and everything in it; the
/// environment shows `Terminating` until then.
#[utoipa::path(delete, path = "/api/v1/bureaus/{bureau}/environments/{environment}",
    tag = "environments",
    params(("bureau" = String, Path, description = "Bureau code"),
        ("environment" = String, Path, description = "Environment name")),
    responses((status = 202, body = EnvironmentView), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn delete_environment(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path((bureau, name)): Path<(String, String)>,
) -> ApiResult<(StatusCode, axum::Json<EnvironmentView>)> {
    audit.about(
        "environment.delete",
        format!("environments/{name}"),
        Some(&bureau),
    );
    caller.require(&WRITERS)?;
    caller.require_bureau(&bureau)?;
    let current = state.environment(&bureau, &name).await?;
    audit.quotas(Some(quota_json(&current.spec.quota)), None);
    state.delete_environment(&name, &bureau).await?;
    let mut view = EnvironmentView::from(&current);
    view.phase = "Terminating".to_owned();
    Ok((StatusCode::ACCEPTED, axum::Json(view)))
}

#[cfg(test)]
mod tests {
    use zhengyun_model::crd::CLEANUP_FINALIZER;

    use super::*;

    #[test]
    fn an_environment_built_for_a_request_carries_the_cleanup_finalizer_from_creation() {
        let body: CreateEnvironment = serde_json::from_value(serde_json::json!({
            "purpose": "prod", "tier": "gold", "quota": {"cpu": "2", "memory": "4Gi"}
        }))
        .expect("body");
        let env = environment_from("wjw", &body, jiff::Timestamp::now()).expect("valid");
        assert_eq!(env.metadata.name.as_deref(), Some("wjw-prod"));
        assert_eq!(
            env.metadata.finalizers,
            Some(vec![CLEANUP_FINALIZER.to_owned()])
        );
    }

    fn dev_expiring_at(at: jiff::Timestamp) -> CreateEnvironment {
        serde_json::from_value(serde_json::json!({
            "purpose": "dev", "quota": {"cpu": "1", "memory": "1Gi"},
            "expiresAt": at.to_string(),
        }))
        .expect("body")
    }

    #[test]
    fn an_expiry_at_or_before_now_is_refused_naming_the_field() {
        let now = jiff::Timestamp::now();
        for past in [now, now - jiff::SignedDuration::from_secs(1)] {
            let problem = environment_from("wjw", &dev_expiring_at(past), now)
                .expect_err("a past expiry is refused");
            assert_eq!(problem.status, 422);
            let fields: Vec<&str> = problem.errors.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(fields, ["expiresAt"]);
        }
        let later = now + jiff::SignedDuration::from_secs(1);
        let env = environment_from("wjw", &dev_expiring_at(later), now).expect("a future expiry");
        assert_eq!(env.spec.expires_at.map(|t| t.0), Some(later));
    }

    #[test]
    fn an_environment_without_a_cpu_or_memory_quota_is_refused_naming_the_field() {
        for (quota, field) in [
            (serde_json::json!({"memory": "1Gi"}), "quota.cpu"),
            (serde_json::json!({"cpu": "1"}), "quota.memory"),
            (
                serde_json::json!({"cpu": "0", "memory": "1Gi"}),
                "quota.cpu",
            ),
        ] {
            let body: CreateEnvironment =
                serde_json::from_value(serde_json::json!({"purpose": "dev", "quota": quota}))
                    .expect("body");
            let problem =
                environment_from("wjw", &body, jiff::Timestamp::now()).expect_err("refused");
            assert_eq!(problem.status, 422);
            let fields: Vec<&str> = problem.errors.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(fields, [field]);
        }
    }
}
