//! `GET …/environments/{environment}/availability`: an environment's measured availability over
//! a month, the credit it earns so far, and the evidence (the unavailable minutes and why).

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use zhengyun_contract::{AvailabilityView, SliceView};
use zhengyun_metering::{
    Month,
    availability::{availability_percent, credit_percent},
};
use zhengyun_model::crd::ServiceLevels;
use zhengyun_store::availability::AVAILABILITY_STREAM;

use crate::{
    context::Caller,
    extract::{Path, Query},
    problem::{ApiResult, Problem},
    state::AppState,
    statements::READERS,
};

/// Most slices an answer lists.
const MAX_SLICES: usize = 1000;

/// The availability routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_availability))
}

/// Which month.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AvailabilityQuery {
    /// `YYYY-MM` (platform time zone); this month if absent.
    #[param(example = "2026-11", pattern = r"^[0-9]{4}-[0-9]{2}$")]
    pub month: Option<String>,
}

/// An environment's availability over a month: minutes measured and bad, the availability
/// against its tier's objective, the credit earned so far, and every unavailable minute with
/// its cause (the platform's count; the tenant's are kept as evidence and do not count).
#[utoipa::path(get, path = "/api/v1/bureaus/{bureau}/environments/{environment}/availability",
    tag = "statements",
    params(("bureau" = String, Path, description = "Bureau code"),
        ("environment" = String, Path, description = "Environment name"), AvailabilityQuery),
    responses((status = 200, body = AvailabilityView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn get_availability(
    State(state): State<AppState>,
    caller: Caller,
    Path((bureau, environment)): Path<(String, String)>,
    Query(query): Query<AvailabilityQuery>,
) -> ApiResult<axum::Json<AvailabilityView>> {
    caller.require(&READERS)?;
    caller.require_bureau(&bureau)?;
    state.read_bureau(&bureau).await?;
    let owner =
        zhengyun_model::names::parse_environment_name(&environment).map(|(b, _)| b.to_owned());
    if owner.as_deref() != Some(bureau.as_str()) {
        return Err(Problem::not_found(format!(
            "environment {environment:?} of bureau {bureau:?} not found"
        )));
    }
    let calendar = state.calendar();
    let now = state.clock().now_second();
    let month: Month = match &query.month {
        Some(text) => text.parse().map_err(|e: zhengyun_metering::Error| {
            Problem::invalid_field("month", e.to_string())
        })?,
        None => calendar.month_of(now),
    };
    let range = calendar
        .month_range(month)
        .map_err(|e| Problem::invalid_field("month", e.to_string()))?;
    let store = state.store();
    let measure = store.month_measures(range, Some(&environment)).await?.pop();
    let at = now.min(range.end() - jiff::SignedDuration::from_secs(1));
    let levels = store
        .service_levels_at(at)
        .await?
        .unwrap_or_else(ServiceLevels::default);
    let slices = store
        .availability_slices(range, Some(&environment), None, MAX_SLICES)
        .await?;
    let measured_until = store.checkpoint(AVAILABILITY_STREAM).await?;
    let (measured, bad) = measure
        .as_ref()
        .map_or((0, 0), |m| (m.measured_minutes, m.bad_minutes));
    let level = measure.as_ref().map(|m| levels.of(m.tier));
    Ok(axum::Json(AvailabilityView {
        environment,
        month: month.to_string(),
        tier: measure.as_ref().map(|m| m.tier.to_string()),
        objective: level.map(|l| l.objective.clone()),
        measured_minutes: measured,
        bad_minutes: bad,
        availability: availability_percent(measured, bad).map(|a| a.to_string()),
        credit_percent: level.map_or(0, |l| credit_percent(l, measured, bad)),
        measured_until: measured_until.map(|t| t.to_string()),
        slices: slices
            .into_iter()
            .map(|s| SliceView {
                minute: s.minute.to_string(),
                counted: s.counted,
                cause: s.cause,
                detail: s.detail,
            })
            .collect(),
    }))
}
