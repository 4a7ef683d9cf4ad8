//! Zhengyun control-plane HTTP API: bureau IT staff request environments, platform admins
//! onboard bureaus, set quotas and approve requests, auditors read the audit log.
//!
//! The API changes custom resources only (`Bureau`, `Environment`), with resourceVersion
//! preconditions; it never creates namespaces itself, and the operator's admission stays the
//! single authority (docs/architecture.md, invariant 1). Money and history (tokens, audit log,
//! change requests) live in the store.
//!
//! - Authentication: bearer tokens from the store ([`middleware::authenticate`]); repeated
//!   failures from one address get 429 without a database query ([`limit`]).
//! - Authorisation: by role, and for bureau roles by bureau. A bureau token asking about
//!   another bureau gets **403**, decided from the token alone before anything is looked up, so
//!   the answer is the same whether that bureau exists or not. A platform-wide token asking
//!   for a bureau or environment that does not exist gets 404.
//! - Every mutating call by an authenticated caller is appended to the hash-chained audit log,
//!   whatever its outcome.
//! - Every error is `application/problem+json` ([`problem::Problem`]).

pub mod audit;
pub mod availability;
pub mod bureaus;
pub mod cache;
pub mod console;
pub mod context;
pub mod downloads;
pub mod environments;
pub mod evaluation;
pub mod extract;
pub mod headroom;
pub mod health;
pub mod kubeconfigs;
pub mod limit;
pub mod metrics;
pub mod middleware;
pub mod oidc;
pub mod page;
pub mod pool;
pub mod problem;
pub mod reclaims;
pub mod reply;
pub mod requests;
pub mod retry;
pub mod sign_in;
pub mod state;
pub mod statement_csv;
pub mod statements;
pub mod tls;
pub mod token_cache;
pub mod tokens;
pub mod views;

use std::{future::Future, net::SocketAddr};

use axum::{Router, extract::DefaultBodyLimit, http::StatusCode, routing::get};
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
    /// The first platform-admin token, registered at start-up (at least 32 characters; e.g.
    /// `openssl rand -hex 32`). Required for the first start on a database without tokens; a
    /// secret is never generated or logged. It expires `--token-lifetime-days` after it was
    /// first registered (restarts do not renew it); set a new secret to renew it.
    #[arg(long, env = "ZHENGYUN_BOOTSTRAP_TOKEN", hide_env_values = true)]
    pub bootstrap_token: Option<String>,
    /// How often the API writes the audit head (sequence and hash) to its log, a copy outside
    /// the database to compare the chain against; each is remembered as published (see
    /// docs/auditors.md).
    #[arg(
        long,
        env = "ZHENGYUN_API_AUDIT_HEAD_INTERVAL",
        default_value = "10m",
        value_parser = parse_duration
    )]
    pub audit_head_interval: std::time::Duration,
    #[command(flatten)]
    pub connections: ConnectionLimits,
    #[command(flatten)]
    pub auth_limit: AuthLimitArgs,
    /// Days a token lives when issued without `lifetimeDays`, and the lifetime of a newly
    /// registered bootstrap token.
    #[arg(
        long,
        env = "ZHENGYUN_TOKEN_LIFETIME_DAYS",
        default_value_t = 90,
        value_parser = clap::value_parser!(u16).range(1..=365)
    )]
    pub token_lifetime_days: u16,
    /// The most days a token may be given (`lifetimeDays` when issuing one); at most 365.
    #[arg(
        long,
        env = "ZHENGYUN_TOKEN_MAX_LIFETIME_DAYS",
        default_value_t = 365,
        value_parser = clap::value_parser!(u16).range(1..=365)
    )]
    pub token_max_lifetime_days: u16,
    #[command(flatten)]
    pub limits: state::TenantLimits,
    #[command(flatten)]
    pub kubeconfigs: kubeconfigs::KubeconfigArgs,
    #[command(flatten)]
    pub tls: tls::TlsArgs,
    /// A YAML file naming the identity providers whose OpenID Connect tokens the API accepts
    /// next to its own tokens, and how their claims name a role and a bureau (see
    /// docs/operators.md, "Sign-in with the district's identity provider").
    #[arg(long, env = "ZHENGYUN_OIDC_CONFIG")]
    pub oidc_config: Option<std::path::PathBuf>,
    /// A directory of further command-line builds to offer at `/downloads` (files named
    /// `zhengyun-<os>-<arch>[.exe]`), besides the running binary itself.
    #[arg(long, env = "ZHENGYUN_DOWNLOADS_DIR")]
    pub downloads_dir: Option<std::path::PathBuf>,
}

impl ApiConfig {
    /// The identity providers of `--oidc-config`, if any; or why the file does not do.
    pub fn oidc(&self) -> Result<Option<oidc::Oidc>, String> {
        let Some(path) = &self.oidc_config else {
            return Ok(None);
        };
        let config = oidc::config::OidcConfig::load(path)?;
        oidc::Oidc::new(&config).map(Some)
    }
}

impl ApiConfig {
    /// How long tokens live, or why the two lifetimes disagree.
    pub fn token_policy(&self) -> Result<state::TokenPolicy, String> {
        if self.token_lifetime_days > self.token_max_lifetime_days {
            return Err(format!(
                "--token-lifetime-days ({}) is longer than --token-max-lifetime-days ({})",
                self.token_lifetime_days, self.token_max_lifetime_days
            ));
        }
        let days = |n: u16| jiff::SignedDuration::from_hours(i64::from(n) * 24);
        Ok(state::TokenPolicy {
            default_lifetime: days(self.token_lifetime_days),
            max_lifetime: days(self.token_max_lifetime_days),
        })
    }
}

/// What one client may hold of the server: time to send a request head, idle time, and a
/// share of a bounded number of connections.
#[derive(Clone, Debug, clap::Args)]
pub struct ConnectionLimits {
    /// Time a client has to send a request's method, path and headers, counted from when the
    /// server starts waiting for them; on a kept-alive connection that wait starts when the
    /// previous response is sent, so this is also the idle timeout. Then the connection is
    /// closed. `500ms`, `10s`, `2m`.
    #[arg(
        long,
        env = "ZHENGYUN_API_HEADER_READ_TIMEOUT",
        default_value = "10s",
        value_parser = parse_duration
    )]
    pub header_read_timeout: std::time::Duration,
    /// Connections served at once; further clients wait in the listen backlog until one closes.
    #[arg(
        long,
        env = "ZHENGYUN_API_MAX_CONNECTIONS",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_connections: u32,
}

/// The rate limit of failed authentication ([`limit`]).
#[derive(Clone, Debug, clap::Args)]
pub struct AuthLimitArgs {
    /// Failed authentications (unknown, revoked or malformed tokens) one client address may
    /// make in a window; after that it gets 429 with Retry-After until the window ends.
    #[arg(
        long,
        env = "ZHENGYUN_API_AUTH_MAX_FAILURES",
        default_value_t = 20,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub auth_max_failures: u32,
    /// The window of `--auth-max-failures`, from a client's first failure in it.
    #[arg(
        long,
        env = "ZHENGYUN_API_AUTH_FAILURE_WINDOW",
        default_value = "1m",
        value_parser = parse_duration
    )]
    pub auth_failure_window: std::time::Duration,
    /// Addresses of reverse proxies whose `X-Forwarded-For` names the client (comma-separated).
    /// By default none: the client is the TCP peer.
    #[arg(
        long = "trusted-proxy",
        env = "ZHENGYUN_API_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl AuthLimitArgs {
    /// The limit these flags describe.
    pub fn limit(&self) -> limit::AuthLimit {
        limit::AuthLimit {
            max_failures: self.auth_max_failures,
            window: self.auth_failure_window,
            trusted_proxies: self.trusted_proxies.clone(),
            ..limit::AuthLimit::default()
        }
    }
}

/// A duration as `<n>ms`, `<n>s` or `<n>m`.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    use std::time::Duration;
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 10s or 2m"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("{text:?}: the unit must be ms, s or m")),
    };
    if duration.is_zero() {
        return Err("the duration must be more than zero".to_owned());
    }
    Ok(duration)
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
        .merge(statements::router())
        .merge(reclaims::router())
        .merge(pool::router())
        .merge(evaluation::router())
        .merge(availability::router())
        .merge(kubeconfigs::router());
    (
        authenticated,
        health::router()
            .merge(sign_in::router())
            .merge(downloads::router()),
    )
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
/// any `/api/v1` call can meet (400, 401, 403, 404, 422, 429, 500, 503; 413 and 415 with a body).
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
                (
                    "429",
                    "Too many failed authentications from this address; retry after \
                     Retry-After seconds",
                ),
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
    // The console calls the same routes, in the process, as the signed-in person.
    let internal = api.clone().with_state(state.clone());
    let spec = openapi_json();
    Router::new()
        .merge(api)
        .merge(health)
        .merge(console::router(internal))
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

async fn not_found() -> Problem {
    Problem::not_found("no such route")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "this route does not accept that method",
    )
}

/// Serves the API on `config.addr` until `shutdown` resolves, then finishes the requests in
/// flight.
pub async fn serve(
    config: &ApiConfig,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let policy = config
        .token_policy()
        .map_err(|e| ServeError::new("invalid token lifetimes".into(), std::io::Error::other(e)))?;
    let state = state.with_token_policy(policy);
    let tls = config.tls.load().map_err(|e| {
        ServeError::new("unusable TLS certificate".into(), std::io::Error::other(e))
    })?;
    let acceptor = tls
        .as_ref()
        .map(tls::Reloading::acceptor)
        .transpose()
        .map_err(|e| {
            ServeError::new("unusable TLS certificate".into(), std::io::Error::other(e))
        })?;
    bootstrap(config.bootstrap_token.as_deref(), state.store(), policy).await?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| ServeError::new(format!("unable to listen on {}", config.addr), e))?;
    let local = listener
        .local_addr()
        .map_err(|e| ServeError::new("unable to read the listening address".into(), e))?;
    tracing::info!(addr = %local, tls = acceptor.is_some(), "API listening");
    state.note_serving_tls(acceptor.is_some());
    let reloader = tls.map(|tls| tokio::spawn(tls.watch()));
    let state = state.with_auth_limiter(limit::FailedAuthLimiter::new(config.auth_limit.limit()));
    state.start_cache();
    let publisher = tokio::spawn(publish_audit_heads(
        state.store().clone(),
        config.audit_head_interval,
    ));
    let sweeper = tokio::spawn(settle_stale_audit_intents(
        state.store().clone(),
        STALE_INTENT_SWEEP,
    ));
    let kubeconfig_sweeper = tokio::spawn(kubeconfigs::remove_due_kubeconfigs(state.clone()));
    let served = serve_tls_on(listener, &config.connections, state, shutdown, acceptor).await;
    if let Some(reloader) = reloader {
        reloader.abort();
    }
    publisher.abort();
    sweeper.abort();
    kubeconfig_sweeper.abort();
    served
}

/// How often open audit intents are looked at.
const STALE_INTENT_SWEEP: std::time::Duration = std::time::Duration::from_secs(60);

/// How old an open audit intent must be before it is taken for one whose process stopped: well
/// beyond the longest a change and the retries of its entry take.
pub const STALE_INTENT_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// Every `interval`, appends the audit intents opened more than [`STALE_INTENT_AGE`] ago with
/// an unknown outcome: their process stopped between the change and its entry. Each is
/// appended once, even with several API replicas sweeping.
pub async fn settle_stale_audit_intents(
    store: zhengyun_store::Store,
    interval: std::time::Duration,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let age = jiff::SignedDuration::try_from(STALE_INTENT_AGE).unwrap_or_default();
        let before = jiff::Timestamp::now()
            .checked_sub(age)
            .unwrap_or(jiff::Timestamp::MIN);
        match store.settle_stale_audit_intents(before).await {
            Ok(0) => {}
            Ok(settled) => tracing::warn!(
                settled,
                "recorded audit intents left open by a stopped process, outcome unknown"
            ),
            Err(error) => tracing::error!(
                error = %problem::ErrorChain(&error),
                "unable to settle stale audit intents"
            ),
        }
    }
}

/// Every `interval`, publishes the audit head to the log (and so remembers it in the store);
/// a head that went backwards or was rewritten is logged as an error instead.
async fn publish_audit_heads(store: zhengyun_store::Store, interval: std::time::Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match store.publish_audit_head().await {
            Ok(head) => tracing::info!(seq = head.seq, hash = %head.hash, "audit head"),
            Err(error) => tracing::error!(
                error = %problem::ErrorChain(&error),
                "unable to publish the audit head"
            ),
        }
    }
}

/// Serves the API on `listener` (HTTP/1.1) within `limits` until `shutdown` resolves, then
/// finishes the requests in flight. Each request carries its peer address as
/// [`axum::extract::ConnectInfo`].
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    limits: &ConnectionLimits,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_tls_on(listener, limits, state, shutdown, None).await
}

/// [`serve_on`], over TLS with `tls` when given: the handshake must complete within the
/// header read timeout, like the request head after it.
pub async fn serve_tls_on(
    listener: tokio::net::TcpListener,
    limits: &ConnectionLimits,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Result<(), ServeError> {
    use hyper_util::{
        rt::{TokioIo, TokioTimer},
        server::graceful::GracefulShutdown,
        service::TowerToHyperService,
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_connections as usize));
    let graceful = GracefulShutdown::new();
    let changes = state.changes().clone();
    let app = app(state);
    let shutdown = std::pin::pin!(shutdown);
    let mut shutdown = shutdown;
    loop {
        // Waiting for a free slot before accepting leaves further clients in the backlog.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit,
            () = &mut shutdown => break,
        };
        let Ok(permit) = permit else { break };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(%error, "unable to accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = tower::ServiceExt::map_request(
            app.clone(),
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request
            },
        );
        let service = TowerToHyperService::new(service);
        let Some(acceptor) = tls.clone() else {
            let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%peer, %error, "connection closed with an error");
                }
                drop(permit);
            });
            continue;
        };
        let watcher = graceful.watcher();
        let http = http.clone();
        let handshake_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let connection = http.serve_connection(TokioIo::new(stream), service);
                    if let Err(error) = watcher.watch(connection).await {
                        tracing::debug!(%peer, %error, "connection closed with an error");
                    }
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
            drop(permit);
        });
    }
    drop(listener);
    // Idle connections close at once; requests in progress get a while to be answered. A
    // connection still open after that is dropped: a stuck client must not keep the process up.
    if tokio::time::timeout(CONNECTIONS_DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            waited = ?CONNECTIONS_DRAIN,
            "connections still open at shutdown are dropped"
        );
    }
    // Changes whose callers left are carried out to their audit entries before stopping.
    changes.close();
    if tokio::time::timeout(CHANGES_DRAIN, changes.wait())
        .await
        .is_err()
    {
        tracing::error!(
            open = changes.len(),
            "changes still running at shutdown; their audit intents will be recorded with an \
             unknown outcome"
        );
    }
    Ok(())
}

/// How long shutting down waits for the requests in progress to be answered.
const CONNECTIONS_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// How long shutting down waits for changes still being carried out.
const CHANGES_DRAIN: std::time::Duration = std::time::Duration::from_secs(60);

/// Registers the bootstrap platform-admin token if one is configured. Without one, a database
/// that holds no token at all is refused: nobody could ever call the API, and a generated
/// secret would have to be shown somewhere (a log is read by many and kept long).
pub async fn bootstrap(
    secret: Option<&str>,
    store: &zhengyun_store::Store,
    policy: state::TokenPolicy,
) -> Result<(), ServeError> {
    let fail = |e: zhengyun_store::Error| {
        ServeError::new("unable to register the bootstrap token".into(), e)
    };
    if let Some(secret) = secret {
        let outcome = store
            .bootstrap_admin_at(secret, jiff::Timestamp::now(), policy.default_lifetime)
            .await
            .map_err(fail)?;
        match outcome {
            zhengyun_store::BootstrapOutcome::Expired => tracing::warn!(
                "the bootstrap platform-admin token has expired; set a new ZHENGYUN_BOOTSTRAP_TOKEN \
                 to renew it"
            ),
            outcome => tracing::info!(?outcome, "bootstrap platform-admin token registered"),
        }
        return Ok(());
    }
    if store.list_tokens().await.map_err(fail)?.is_empty() {
        return Err(ServeError::new(
            "the database holds no API token: set ZHENGYUN_BOOTSTRAP_TOKEN (or \
             --bootstrap-token) to a secret of at least 32 characters, e.g. \
             `openssl rand -hex 32`, for the first start"
                .into(),
            std::io::Error::other("no bootstrap token"),
        ));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_are_milliseconds_seconds_or_minutes_and_never_zero() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        for bad in ["", "10", "0s", "s", "1h", "-1s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
