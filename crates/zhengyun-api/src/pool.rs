//! `/api/v1/pool`: the capacity pool against the bureaus' quotas, for platform admins, finance
//! and auditors.

use axum::{Json, extract::State};
use utoipa_axum::{router::OpenApiRouter, routes};
use zhengyun_contract::{PoolView, QuotaBody};
use zhengyun_model::{
    crd::{CapacityPool, POOL_NAME},
    quantity::ResourceAmounts,
};
use zhengyun_store::Role;

use crate::{
    context::Caller,
    headroom::{amounts, unusable},
    problem::{ApiResult, Problem},
    state::AppState,
};

/// Who sees the whole pool.
const READERS: [Role; 3] = [Role::PlatformAdmin, Role::Finance, Role::Auditor];

/// The pool routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_pool))
}

/// The capacity pool: its capacity, what bureau quotas may add up to (capacity × overcommit),
/// the bureaus' quotas added up, and what is left to allocate.
#[utoipa::path(get, path = "/api/v1/pool", tag = "bureaus",
    responses((status = 200, body = PoolView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
async fn get_pool(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<PoolView>> {
    caller.require(&READERS)?;
    let pool = kube::Api::<CapacityPool>::all(state.client())
        .get_opt(POOL_NAME)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no CapacityPool {POOL_NAME:?}")))?;
    let allocatable = pool
        .spec
        .effective_capacity()
        .map_err(unusable("the capacity pool"))?;
    let bureaus = state.read_bureaus().await?;
    let mut allocated = ResourceAmounts::ZERO;
    for bureau in &bureaus {
        allocated = allocated.saturating_add(&amounts(&bureau.spec.quota, "a bureau")?);
    }
    let mut unallocated = ResourceAmounts::ZERO;
    for (resource, value) in allocatable.iter() {
        unallocated.set(resource, value.saturating_sub(allocated.get(resource)));
    }
    let body = |amounts: &ResourceAmounts| QuotaBody::from(&amounts.to_quota());
    Ok(Json(PoolView {
        capacity: QuotaBody::from(&pool.spec.capacity),
        allocatable: body(&allocatable),
        allocated: body(&allocated),
        unallocated: body(&unallocated),
        bureaus: bureaus.len(),
        borrowing: pool.spec.borrowing.enabled,
    }))
}
