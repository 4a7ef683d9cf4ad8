//! `/healthz`, `/readyz` and `/metrics`: for kubelets, load balancers and Prometheus. No
//! authentication; they reveal nothing about tenants.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{problem::Problem, state::AppState};

/// The health routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// A health answer.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
    })
}

/// The process can serve: the database and the cluster both answer, and the watch cache the
/// reads are served from (once started) has listed every Bureau and Environment.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Problem)))]
async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, Problem> {
    state.store().ping().await?;
    if let Err(error) = state.client().apiserver_version().await {
        tracing::warn!(%error, "cluster not answering");
        return Err(Problem::unavailable("the cluster is unreachable"));
    }
    if state.cache().is_some_and(|cache| !cache.ready()) {
        return Err(Problem::unavailable(
            "the watch cache of bureaus and environments is not synced yet",
        ));
    }
    Ok(Json(Health {
        status: "ok".to_owned(),
    }))
}

/// Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, content_type = "application/openmetrics-text", body = String)))]
async fn metrics(
    State(state): State<AppState>,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], String) {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics().encode(),
    )
}
