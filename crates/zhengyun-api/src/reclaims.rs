//! `/api/v1/reclaims`: burst pods whose room was taken back, with the bureau that borrowed, the
//! bureau that got the room back and how long it took.

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use zhengyun_contract::ReclaimView;
use zhengyun_metering::Month;
use zhengyun_store::Reclaim;

use crate::{
    context::Caller,
    extract::Query,
    page::{Page, page},
    problem::{ApiResult, Problem},
    state::AppState,
    statements::READERS,
};

/// The reclaim routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_reclaims))
}

/// Which reclaims to list.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReclaimQuery {
    /// `YYYY-MM`: reclaims started in that month (platform time zone); this month if absent.
    #[param(example = "2026-11", pattern = r"^[0-9]{4}-[0-9]{2}$")]
    pub month: Option<String>,
    /// Only those this bureau borrowed or got room back from (bureau roles always get only
    /// their own).
    pub bureau: Option<String>,
    /// At most this many (1–1000; 500 if absent).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Start after the reclaim of this pod uid: the `x-next-after` header of the previous page.
    pub after: Option<String>,
}

/// Reclaims of borrowed capacity started in a month, newest first (at most 1000 a month):
/// every one for platform admins, finance and auditors; for a bureau role, those its bureau
/// borrowed or got the room back from.
#[utoipa::path(get, path = "/api/v1/reclaims", tag = "statements", params(ReclaimQuery),
    responses((status = 200, body = [ReclaimView],
            headers(("x-next-after" = String, description = "The `after` of the next page, when there is one"))),
        (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn list_reclaims(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ReclaimQuery>,
) -> ApiResult<Page<ReclaimView>> {
    caller.require(&READERS)?;
    if let Some(bureau) = &query.bureau {
        caller.require_bureau(bureau)?;
    }
    let bureau = caller.bureau().map(str::to_owned).or(query.bureau);
    let month: Month = match &query.month {
        Some(text) => text.parse().map_err(|e: zhengyun_metering::Error| {
            Problem::invalid_field("month", e.to_string())
        })?,
        None => state.calendar().month_of(state.clock().now()),
    };
    let range = state
        .calendar()
        .month_range(month)
        .map_err(|e| Problem::invalid_field("month", e.to_string()))?;
    let reclaims = state
        .store()
        .list_reclaims(bureau.as_deref(), range.start(), range.end())
        .await?;
    let views: Vec<ReclaimView> = reclaims.iter().map(view).collect();
    page(views, |r| &r.pod_uid, query.limit, query.after.as_deref())
}

fn view(reclaim: &Reclaim) -> ReclaimView {
    ReclaimView {
        pod_uid: reclaim.pod_uid.clone(),
        namespace: reclaim.namespace.clone(),
        pod: reclaim.pod.clone(),
        bureau: reclaim.bureau.clone(),
        cause: reclaim.cause.as_str().to_owned(),
        beneficiary: reclaim.beneficiary.clone(),
        started: reclaim.started.to_string(),
        freed: reclaim.freed.map(|t| t.to_string()),
        seconds: reclaim
            .freed
            .map(|freed| freed.as_second() - reclaim.started.as_second()),
    }
}
