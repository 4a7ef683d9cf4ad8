//! Zhengyun control-plane HTTP API: bureau IT staff request environments, platform admins
//! onboard bureaus, set quotas and approve requests, auditors read the audit log.
//!
//! The API changes custom resources only (`Bureau`, `Environment`), with resourceVersion
//! preconditions; it never creates namespaces itself, and the operator's admission stays the
//! single authority (DESIGN.md, invariant 1). Money and history (tokens, audit log, change
//! requests) live in the store.
//!
//! - Authentication: bearer tokens from the store ([`middleware::authenticate`]).
//! - Authorisation: by role, and for bureau roles by bureau. A bureau token asking about
//!   another bureau gets **403**, decided from the token alone before anything is looked up, so
//!   the answer is the same whether that bureau exists or not. A platform-wide token asking
//!   for a bureau or environment that does not exist gets 404.
//! - Every mutating call by an authenticated caller is appended to the hash-chained audit log,
//!   whatever its outcome.
//! - Every error is `application/problem+json` ([`problem::Problem`]).

pub mod audit;
pub mod bureaus;
pub mod context;
pub mod environments;
pub mod extract;
pub mod headroom;
pub mod health;
pub mod metrics;
pub mod middleware;
pub mod problem;
pub mod requests;
pub mod state;
pub mod statements;
pub mod tokens;
pub mod views;

use std::{future::Future, net::SocketAddr};

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_axum::router::OpenApiRouter;

pub use problem::{PROBLEM_JSON, Problem};
pub use state::{AppState, TenantLimits};

/// How the API process listens and starts.
#[derive(Clone, Debug, clap::Args)]
pub struct ApiConfig {
    /// Address to serve the API, health and metrics on.
    #[arg(
        long = "addr",
        env = "ZHENGYUN_API_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub addr: SocketAddr,
    /// The first platform-admin token, registered at start-up (at least 32 characters). If
    /// unset and no platform admin exists yet, one is generated and printed once.
    #[arg(long, env = "ZHENGYUN_BOOTSTRAP_TOKEN", hide_env_values = true)]
    pub bootstrap_token: Option<String>,
    #[command(flatten)]
    pub limits: state::TenantLimits,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Zhengyun API",
        description = "Quotas, environments and chargeback for a government private cloud. \
                       Errors are application/problem+json (RFC 9457).",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "bureaus", description = "Tenants and their quotas"),
        (name = "environments", description = "A bureau's environments"),
        (name = "requests", description = "Change requests awaiting a platform admin"),
        (name = "tokens", description = "API tokens"),
        (name = "audit", description = "The audit log"),
        (name = "statements", description = "Usage and monthly statements"),
        (name = "health", description = "Probes and metrics"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

fn routers() -> (OpenApiRouter<AppState>, OpenApiRouter<AppState>) {
    let authenticated = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(bureaus::router())
        .merge(environments::router())
        .merge(requests::router())
        .merge(tokens::router())
        .merge(audit::router())
        .merge(statements::router());
    (authenticated, health::router())
}

/// The OpenAPI 3.1 document, generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (api, health) = routers();
    let (_, mut doc) = api.split_for_parts();
    let (_, health_doc) = health.split_for_parts();
    doc.merge(health_doc);
    doc
}

/// The OpenAPI document as pretty JSON, as committed in `openapi/openapi.json`: the generated
/// document with every error documented as `application/problem+json`, including the ones
/// any `/api/v1` call can meet (400, 401, 403, 404, 422, 500, 503; 413 and 415 with a body).
pub fn openapi_json() -> String {
    let mut doc = serde_json::to_value(openapi()).unwrap_or_default();
    document_problems(&mut doc);
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

fn document_problems(doc: &mut serde_json::Value) {
    use serde_json::{Value, json};
    let problem = json!({"schema": {"$ref": "#/components/schemas/Problem"}});
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for operation in item.values_mut() {
            let has_body = operation.get("requestBody").is_some();
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            for response in responses.values_mut() {
                let content = response.get_mut("content").and_then(Value::as_object_mut);
                if let Some(content) = content
                    && content
                        .get("application/json")
                        .is_some_and(|c| c["schema"]["$ref"] == "#/components/schemas/Problem")
                    && let Some(json) = content.remove("application/json")
                {
                    content.insert(PROBLEM_JSON.to_owned(), json);
                }
            }
            if !path.starts_with("/api/v1/") {
                continue;
            }
            let mut defaults = vec![
                ("400", "The request cannot be read"),
                ("401", "No token, or an unknown or revoked one"),
                ("403", "The token's role or bureau does not allow this"),
                ("404", "No such object"),
                ("422", "Invalid fields"),
                ("500", "A fault of the server, logged under the request id"),
                (
                    "503",
                    "The cluster or the database is unavailable; retry later",
                ),
            ];
            if has_body {
                defaults.push(("413", "The body is larger than 1 MiB"));
                defaults.push(("415", "The body is not JSON"));
            }
            for (status, description) in defaults {
                responses.entry(status).or_insert_with(|| {
                    json!({"description": description, "content": {PROBLEM_JSON: problem.clone()}})
                });
            }
        }
    }
}

/// The whole application: `/api/v1/…` behind authentication and audit, the probes, metrics
/// and OpenAPI document in front, problem+json for unknown routes and methods.
pub fn app(state: AppState) -> Router {
    let (api, health) = routers();
    let (api, _) = api.split_for_parts();
    let (health, _) = health.split_for_parts();
    let api = api.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        middleware::authenticate,
    ));
    let spec = openapi_json();
    Router::new()
        .merge(api)
        .merge(health)
        .route(
            "/api/v1/openapi.json",
            get(move || async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    spec,
                )
            }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::observe,
        ))
        .with_state(state)
}

async fn not_found() -> Response {
    Problem::not_found("no such route").into_response()
}

async fn method_not_allowed() -> Response {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "this route does not accept that method",
    )
    .into_response()
}

/// Serves the API on `config.addr` until `shutdown` resolves, then finishes the requests in
/// flight.
pub async fn serve(
    config: &ApiConfig,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    bootstrap(config, state.store()).await?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| ServeError::new(format!("unable to listen on {}", config.addr), e))?;
    let local = listener
        .local_addr()
        .map_err(|e| ServeError::new("unable to read the listening address".into(), e))?;
    tracing::info!(addr = %local, "API listening");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| ServeError::new("the HTTP server failed".into(), e))
}

/// Registers the bootstrap platform-admin token, or when none is configured and no token
/// exists at all, generates one and prints it once on standard error.
async fn bootstrap(config: &ApiConfig, store: &zhengyun_store::Store) -> Result<(), ServeError> {
    let fail = |e: zhengyun_store::Error| {
        ServeError::new("unable to register the bootstrap token".into(), e)
    };
    if let Some(secret) = &config.bootstrap_token {
        let outcome = store.bootstrap_admin(secret).await.map_err(fail)?;
        tracing::info!(?outcome, "bootstrap platform-admin token registered");
        return Ok(());
    }
    if store.list_tokens().await.map_err(fail)?.is_empty() {
        let (id, secret) = store
            .create_token(
                zhengyun_store::Role::PlatformAdmin,
                None,
                "generated at first start",
            )
            .await
            .map_err(fail)?;
        eprintln!(
            "No ZHENGYUN_BOOTSTRAP_TOKEN and no tokens yet: generated platform-admin token {id}.\n\
             It is shown once; keep it safe:\n\n    {}\n",
            secret.expose()
        );
    }
    Ok(())
}

/// Why [`serve`] stopped: what failed, with its cause.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct ServeError {
    what: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl ServeError {
    fn new(what: String, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            what,
            source: Box::new(source),
        }
    }
}
