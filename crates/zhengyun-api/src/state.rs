//! The state every handler shares: the store, the cluster client, per-bureau locks and metrics.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use jiff::SignedDuration;

use kube::{
    Api,
    api::{ListParams, PostParams},
};
use tokio::sync::OwnedMutexGuard;
use zhengyun_model::crd::{Bureau, Environment};
use zhengyun_store::Store;

use zhengyun_model::names;

use crate::{
    cache::{ClusterCache, Kind, Scope},
    limit::FailedAuthLimiter,
    metrics::HttpMetrics,
    problem::Problem,
};

/// Field manager of the API's writes to the cluster, so that `managedFields` tells what the
/// control-plane API wrote from what the operator or `kubectl` did.
pub const FIELD_MANAGER: &str = "zhengyun-api";

/// Parameters of the API's creates and replaces: its own field manager.
pub fn write_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    }
}

/// Parameters of a server-side dry run of a create or replace: the cluster validates and
/// admits the object as it would for real, and stores nothing.
pub fn dry_run_params() -> PostParams {
    PostParams {
        dry_run: true,
        ..write_params()
    }
}

/// A name that cannot be a bureau code names no bureau: 404, decided before it reaches the
/// cluster (where it could not even be put in a URL or a field selector).
fn valid_bureau(name: &str) -> Result<(), Problem> {
    names::check_bureau_code(name)
        .map_err(|reason| Problem::not_found(format!("bureau {name:?} not found: {reason}")))
}

/// How long tokens live: the default of a token issued without a lifetime, and the most one
/// may be given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenPolicy {
    /// The lifetime of a token issued without one (and of a new bootstrap secret).
    pub default_lifetime: SignedDuration,
    /// The longest lifetime a token may be given.
    pub max_lifetime: SignedDuration,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        Self {
            default_lifetime: zhengyun_store::DEFAULT_TOKEN_LIFETIME,
            max_lifetime: zhengyun_store::MAX_TOKEN_LIFETIME,
        }
    }
}

/// Finds the Kubernetes uid of bureau `code`, `None` if there is no such bureau.
pub type BureauUidLookup =
    Arc<dyn Fn(String) -> BoxFuture<'static, Result<Option<String>, Problem>> + Send + Sync>;

/// How long an answer of the bureau lookup is reused when authenticating bureau tokens.
pub const BUREAU_CACHE_TTL: Duration = Duration::from_secs(5);

/// Shared by every handler; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

struct Inner {
    store: Store,
    client: kube::Client,
    bureau_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    metrics: HttpMetrics,
    auth_limiter: FailedAuthLimiter,
    calendar: zhengyun_metering::Calendar,
    clock: zhengyun_metering::Clock,
    tokens: TokenPolicy,
    bureau_lookup: BureauUidLookup,
    bureau_uids: Mutex<HashMap<String, (Instant, Option<String>)>>,
    limits: TenantLimits,
    changes: tokio_util::task::TaskTracker,
    cache: Arc<std::sync::OnceLock<ClusterCache>>,
    token_cache: Arc<crate::token_cache::TokenCache>,
    kubeconfigs: crate::kubeconfigs::KubeconfigPolicy,
    oidc: Option<crate::oidc::Oidc>,
    downloads: Arc<crate::downloads::Downloads>,
    serving_tls: Arc<std::sync::atomic::AtomicBool>,
}

/// How much of the platform's bookkeeping one bureau may take, so that no bureau exhausts it
/// for the others (flags of `zhengyun api` and `zhengyun dev`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::Args)]
pub struct TenantLimits {
    /// Most environments one bureau may have; a request for one more is refused (409).
    #[arg(
        long,
        env = "ZHENGYUN_MAX_ENVIRONMENTS_PER_BUREAU",
        default_value_t = 100
    )]
    pub max_environments_per_bureau: usize,
    /// Most change requests one bureau may have waiting; filing one more is refused (409).
    #[arg(
        long,
        env = "ZHENGYUN_MAX_PENDING_REQUESTS_PER_BUREAU",
        default_value_t = 100
    )]
    pub max_pending_requests_per_bureau: usize,
}

impl Default for TenantLimits {
    fn default() -> Self {
        Self {
            max_environments_per_bureau: 100,
            max_pending_requests_per_bureau: 100,
        }
    }
}

impl TenantLimits {
    /// Refuses one more environment for a bureau that has `existing` (409).
    pub fn room_for_environment(&self, existing: usize) -> Result<(), crate::problem::Problem> {
        let max = self.max_environments_per_bureau;
        if existing >= max {
            return Err(crate::problem::Problem::conflict(format!(
                "the bureau already has {existing} environments, the most one bureau may have \
                 ({max}); delete one first"
            )));
        }
        Ok(())
    }

    /// Refuses one more change request for a bureau that has `pending` waiting (409).
    pub fn room_for_request(&self, pending: usize) -> Result<(), crate::problem::Problem> {
        let max = self.max_pending_requests_per_bureau;
        if pending >= max {
            return Err(crate::problem::Problem::conflict(format!(
                "the bureau already has {pending} change requests waiting, the most one bureau \
                 may have ({max}); withdraw one or wait for a decision"
            )));
        }
        Ok(())
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State over `store` and the cluster behind `client`, with months in the default time
    /// zone (Asia/Shanghai).
    pub fn new(store: Store, client: kube::Client) -> Self {
        Self::with_calendar(store, client, zhengyun_metering::Calendar::default())
    }

    /// State whose statements use `calendar`'s months, with the system clock.
    pub fn with_calendar(
        store: Store,
        client: kube::Client,
        calendar: zhengyun_metering::Calendar,
    ) -> Self {
        Self::with_time(store, client, calendar, zhengyun_metering::Clock::system())
    }

    /// State whose statements use `calendar`'s months and whose "now" (the running month,
    /// whether a month has ended, the default range of usage) is `clock`'s.
    pub fn with_time(
        store: Store,
        client: kube::Client,
        calendar: zhengyun_metering::Calendar,
        clock: zhengyun_metering::Clock,
    ) -> Self {
        let lookup_client = client.clone();
        let bureau_lookup: BureauUidLookup = Arc::new(move |code: String| {
            let bureaus: Api<Bureau> = Api::all(lookup_client.clone());
            Box::pin(async move {
                Ok(bureaus
                    .get_opt(&code)
                    .await?
                    .map(|bureau| bureau.metadata.uid.unwrap_or_default()))
            })
        });
        Self(Arc::new(Inner {
            store,
            client,
            bureau_locks: Mutex::new(HashMap::new()),
            metrics: HttpMetrics::default(),
            auth_limiter: FailedAuthLimiter::default(),
            calendar,
            clock,
            tokens: TokenPolicy::default(),
            bureau_lookup,
            bureau_uids: Mutex::new(HashMap::new()),
            limits: TenantLimits::default(),
            changes: tokio_util::task::TaskTracker::new(),
            cache: Arc::default(),
            token_cache: Arc::default(),
            kubeconfigs: crate::kubeconfigs::KubeconfigPolicy::default(),
            oidc: None,
            downloads: crate::downloads::Downloads::new(None),
            serving_tls: Arc::default(),
        }))
    }

    /// The same state limiting failed authentication with `limiter`. Call it before the state
    /// is shared: a state already cloned keeps its limiter (and says so in the log).
    pub fn with_auth_limiter(mut self, limiter: FailedAuthLimiter) -> Self {
        match Arc::get_mut(&mut self.0) {
            Some(inner) => inner.auth_limiter = limiter,
            None => tracing::error!("the state is already shared; its auth limiter is unchanged"),
        }
        self
    }

    /// This state with `limits` instead of the default ones. Call it right after construction.
    pub fn with_limits(mut self, limits: TenantLimits) -> Self {
        match Arc::get_mut(&mut self.0) {
            Some(inner) => inner.limits = limits,
            None => tracing::warn!("tenant limits set on a shared state are ignored"),
        }
        self
    }

    /// This state issuing kubeconfigs by `policy`. Call it right after construction.
    pub fn with_kubeconfig_policy(mut self, policy: crate::kubeconfigs::KubeconfigPolicy) -> Self {
        match Arc::get_mut(&mut self.0) {
            Some(inner) => inner.kubeconfigs = policy,
            None => tracing::warn!("a kubeconfig policy set on a shared state is ignored"),
        }
        self
    }

    /// This state accepting the tokens of `oidc`'s identity providers too. Call it right after
    /// construction.
    pub fn with_oidc(mut self, oidc: Option<crate::oidc::Oidc>) -> Self {
        match Arc::get_mut(&mut self.0) {
            Some(inner) => inner.oidc = oidc,
            None => tracing::warn!("identity providers set on a shared state are ignored"),
        }
        self
    }

    /// This state offering the command-line builds of `dir` besides the running binary. Call it
    /// right after construction.
    pub fn with_downloads_dir(mut self, dir: Option<std::path::PathBuf>) -> Self {
        match Arc::get_mut(&mut self.0) {
            Some(inner) => inner.downloads = crate::downloads::Downloads::new(dir),
            None => tracing::warn!("a downloads directory set on a shared state is ignored"),
        }
        self
    }

    /// Records whether the API serves TLS itself (the console's cookies are then `Secure`).
    pub fn note_serving_tls(&self, tls: bool) {
        self.0
            .serving_tls
            .store(tls, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the API serves TLS itself.
    pub fn serves_tls(&self) -> bool {
        self.0
            .serving_tls
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The command-line builds offered for download.
    pub fn downloads(&self) -> &crate::downloads::Downloads {
        &self.0.downloads
    }

    /// The identity providers whose tokens are accepted, if any.
    pub fn oidc(&self) -> Option<&crate::oidc::Oidc> {
        self.0.oidc.as_ref()
    }

    /// Where issued kubeconfigs point and how long they live.
    pub fn kubeconfig_policy(&self) -> &crate::kubeconfigs::KubeconfigPolicy {
        &self.0.kubeconfigs
    }

    /// The mutating calls being carried out. Each runs to completion (and to its audit entry)
    /// as a task of its own, whether or not its caller is still connected; shutting down waits
    /// for them.
    pub fn changes(&self) -> &tokio_util::task::TaskTracker {
        &self.0.changes
    }

    /// The limiter of failed authentication.
    pub fn auth_limiter(&self) -> &FailedAuthLimiter {
        &self.0.auth_limiter
    }

    fn rebuilt(self, change: impl FnOnce(&mut TokenPolicy, &mut BureauUidLookup)) -> Self {
        let Inner {
            store,
            client,
            auth_limiter,
            calendar,
            clock,
            mut tokens,
            mut bureau_lookup,
            limits,
            changes,
            cache,
            token_cache,
            kubeconfigs,
            oidc,
            downloads,
            serving_tls,
            ..
        } = Arc::try_unwrap(self.0).unwrap_or_else(|shared| Inner {
            store: shared.store.clone(),
            client: shared.client.clone(),
            bureau_locks: Mutex::new(HashMap::new()),
            metrics: HttpMetrics::default(),
            auth_limiter: FailedAuthLimiter::default(),
            calendar: shared.calendar.clone(),
            clock: shared.clock,
            tokens: shared.tokens,
            bureau_lookup: shared.bureau_lookup.clone(),
            bureau_uids: Mutex::new(HashMap::new()),
            limits: shared.limits,
            changes: shared.changes.clone(),
            cache: shared.cache.clone(),
            token_cache: shared.token_cache.clone(),
            kubeconfigs: shared.kubeconfigs.clone(),
            oidc: shared.oidc.clone(),
            downloads: shared.downloads.clone(),
            serving_tls: shared.serving_tls.clone(),
        });
        change(&mut tokens, &mut bureau_lookup);
        Self(Arc::new(Inner {
            store,
            client,
            bureau_locks: Mutex::new(HashMap::new()),
            metrics: HttpMetrics::default(),
            auth_limiter,
            calendar,
            clock,
            tokens,
            bureau_lookup,
            bureau_uids: Mutex::new(HashMap::new()),
            limits,
            changes,
            cache,
            token_cache,
            kubeconfigs,
            oidc,
            downloads,
            serving_tls,
        }))
    }

    /// This state with tokens living by `policy`. Call before serving.
    pub fn with_token_policy(self, policy: TokenPolicy) -> Self {
        self.rebuilt(|tokens, _| *tokens = policy)
    }

    /// This state finding bureaus' uids with `lookup` instead of the cluster, for tests.
    pub fn with_bureau_lookup(self, lookup: BureauUidLookup) -> Self {
        self.rebuilt(|_, current| *current = lookup)
    }

    /// How long tokens live.
    pub fn token_policy(&self) -> TokenPolicy {
        self.0.tokens
    }

    /// The Kubernetes uid of bureau `code`, `None` if it does not exist. The watch cache
    /// answers when it holds the bureau with the `expected` uid (any uid when `None`); otherwise
    /// (a bureau the watch has not delivered yet, or one deleted or created again meanwhile)
    /// the lookup does, and its answers are reused for [`BUREAU_CACHE_TTL`], so that
    /// authenticating a bureau token costs the cluster at most one read per bureau every few
    /// seconds.
    pub async fn bureau_uid(
        &self,
        code: &str,
        expected: Option<&str>,
    ) -> Result<Option<String>, Problem> {
        let watched = self
            .cache()
            .filter(|cache| cache.current())
            .and_then(|cache| cache.bureau(code))
            .map(|bureau| bureau.metadata.uid.clone().unwrap_or_default())
            .filter(|uid| expected.is_none_or(|expected| expected == uid));
        if watched.is_some() {
            return Ok(watched);
        }
        let cached = self
            .0
            .bureau_uids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(code)
            .filter(|(at, _)| at.elapsed() < BUREAU_CACHE_TTL)
            .map(|(_, uid)| uid.clone());
        if let Some(uid) = cached {
            return Ok(uid);
        }
        let uid = (self.0.bureau_lookup)(code.to_owned()).await?;
        self.0
            .bureau_uids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(code.to_owned(), (Instant::now(), uid.clone()));
        Ok(uid)
    }

    /// Forgets the cached uid of bureau `code`, as when this process deletes it.
    pub fn forget_bureau(&self, code: &str) {
        self.0
            .bureau_uids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(code);
    }

    /// What one bureau may take.
    pub fn limits(&self) -> TenantLimits {
        self.0.limits
    }

    /// The calendar of statements.
    pub fn calendar(&self) -> &zhengyun_metering::Calendar {
        &self.0.calendar
    }

    /// The clock of statements and usage.
    pub fn clock(&self) -> zhengyun_metering::Clock {
        self.0.clock
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// The cluster.
    pub fn client(&self) -> kube::Client {
        self.0.client.clone()
    }

    /// HTTP metrics.
    pub fn metrics(&self) -> &HttpMetrics {
        &self.0.metrics
    }

    /// Bureaus on the cluster.
    pub fn bureaus(&self) -> Api<Bureau> {
        Api::all(self.client())
    }

    /// Environments on the cluster.
    pub fn environments(&self) -> Api<Environment> {
        Api::all(self.client())
    }

    /// Serialises the API's quota decisions for one bureau within this process, so that
    /// concurrent requests see each other's environments and the early answer (created, or
    /// pending approval) is exact. Across processes and doors the operator still decides.
    pub async fn lock_bureau(&self, bureau: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self
                .0
                .bureau_locks
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            locks.entry(bureau.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Starts the watch cache the read endpoints answer from (see [`crate::cache`]); until it
    /// is started, and while it syncs, they read the API server. Idempotent.
    pub fn start_cache(&self) -> &ClusterCache {
        self.0
            .cache
            .get_or_init(|| ClusterCache::start(self.client()))
    }

    /// Recent authentications (see [`crate::token_cache`]).
    pub fn token_cache(&self) -> &crate::token_cache::TokenCache {
        &self.0.token_cache
    }

    /// The watch cache, once started.
    pub fn cache(&self) -> Option<&ClusterCache> {
        self.0.cache.get()
    }

    /// Every rate card from the watch cache, when it holds them (see
    /// [`ClusterCache::rate_cards`]).
    pub fn cached_rate_cards(&self) -> Option<Vec<Arc<zhengyun_model::crd::RateCard>>> {
        self.cache()?.rate_cards()
    }

    /// The cache, when it can answer a read of `scope` now (see [`ClusterCache::settled`]).
    async fn cache_for(&self, scope: Scope<'_>) -> Option<&ClusterCache> {
        let cache = self.cache()?;
        cache.settled(scope).await.then_some(cache)
    }

    /// Creates `bureau` in the cluster.
    pub async fn create_bureau(&self, bureau: &Bureau) -> Result<Bureau, kube::Error> {
        let created = self.bureaus().create(&write_params(), bureau).await?;
        if let Some(cache) = self.cache() {
            cache.wrote_bureau(&created);
        }
        Ok(created)
    }

    /// Replaces bureau `name` with `bureau` (its resourceVersion the precondition).
    pub async fn replace_bureau(&self, name: &str, bureau: &Bureau) -> Result<Bureau, kube::Error> {
        let replaced = self
            .bureaus()
            .replace(name, &write_params(), bureau)
            .await?;
        if let Some(cache) = self.cache() {
            cache.wrote_bureau(&replaced);
        }
        Ok(replaced)
    }

    /// Deletes bureau `name`.
    pub async fn delete_bureau(&self, name: &str) -> Result<(), kube::Error> {
        let deleted = self
            .bureaus()
            .delete(name, &kube::api::DeleteParams::default())
            .await?;
        if let Some(cache) = self.cache() {
            match deleted.left() {
                Some(terminating) => cache.wrote_bureau(&terminating),
                None => cache.deleted(Kind::Bureau, name, name),
            }
        }
        Ok(())
    }

    /// Creates `env` in the cluster (`dry_run`: only validated and admitted, nothing stored).
    pub async fn create_environment(
        &self,
        env: &Environment,
        params: &PostParams,
    ) -> Result<Environment, kube::Error> {
        let created = self.environments().create(params, env).await?;
        if let Some(cache) = self.cache().filter(|_| !params.dry_run) {
            cache.wrote_environment(&created);
        }
        Ok(created)
    }

    /// Replaces environment `name` with `env` (its resourceVersion the precondition).
    pub async fn replace_environment(
        &self,
        name: &str,
        env: &Environment,
        params: &PostParams,
    ) -> Result<Environment, kube::Error> {
        let replaced = self.environments().replace(name, params, env).await?;
        if let Some(cache) = self.cache().filter(|_| !params.dry_run) {
            cache.wrote_environment(&replaced);
        }
        Ok(replaced)
    }

    /// Deletes environment `name` of `bureau`.
    pub async fn delete_environment(&self, name: &str, bureau: &str) -> Result<(), kube::Error> {
        let deleted = self
            .environments()
            .delete(name, &kube::api::DeleteParams::default())
            .await?;
        if let Some(cache) = self.cache() {
            match deleted.left() {
                Some(terminating) => cache.wrote_environment(&terminating),
                None => cache.deleted(Kind::Environment, name, bureau),
            }
        }
        Ok(())
    }

    /// Bureau `name` for a read endpoint: from the watch cache when it holds this process's
    /// writes (see [`crate::cache`]), else from the API server. 404 if there is none.
    ///
    /// A bureau the cache does not hold is looked for on the API server before answering 404:
    /// one made moments ago by someone else (`kubectl`, another replica) may not have reached
    /// the watch yet, and a 404 for a bureau that exists would send its staff away.
    pub async fn read_bureau(&self, name: &str) -> Result<Arc<Bureau>, Problem> {
        valid_bureau(name)?;
        let cached = self
            .cache_for(Scope::Bureau(name))
            .await
            .and_then(|cache| cache.bureau(name));
        match cached {
            Some(bureau) => Ok(bureau),
            None => self.bureau(name).await.map(Arc::new),
        }
    }

    /// Every bureau, for a read endpoint (as [`AppState::read_bureau`]).
    pub async fn read_bureaus(&self) -> Result<Vec<Arc<Bureau>>, Problem> {
        match self.cache_for(Scope::Bureaus).await {
            Some(cache) => Ok(cache.bureaus()),
            None => Ok(self
                .bureaus()
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .map(Arc::new)
                .collect()),
        }
    }

    /// The environments of `bureau`, for a read endpoint (as [`AppState::read_bureau`]).
    pub async fn read_environments_of(
        &self,
        bureau: &str,
    ) -> Result<Vec<Arc<Environment>>, Problem> {
        valid_bureau(bureau)?;
        match self.cache_for(Scope::EnvironmentsOf(bureau)).await {
            Some(cache) => Ok(cache.environments_of(bureau)),
            None => Ok(self
                .environments_of(bureau)
                .await?
                .into_iter()
                .map(Arc::new)
                .collect()),
        }
    }

    /// Environment `name` of `bureau`, for a read endpoint (as [`AppState::read_bureau`]).
    pub async fn read_environment(
        &self,
        bureau: &str,
        name: &str,
    ) -> Result<Arc<Environment>, Problem> {
        valid_environment(bureau, name)?;
        // As for a bureau, one the cache does not hold is looked for on the API server.
        let cached = self
            .cache_for(Scope::Environment(name))
            .await
            .and_then(|cache| cache.environment(name));
        match cached {
            Some(env) if env.spec.bureau == bureau => Ok(env),
            Some(_) => Err(environment_not_found(bureau, name)),
            None => self.environment(bureau, name).await.map(Arc::new),
        }
    }

    /// Bureau `name`, or 404.
    pub async fn bureau(&self, name: &str) -> Result<Bureau, Problem> {
        valid_bureau(name)?;
        self.bureaus()
            .get_opt(name)
            .await?
            .ok_or_else(|| Problem::not_found(format!("bureau {name:?} not found")))
    }

    /// Every environment of `bureau`, read from the API server (not a cache), so a request
    /// sees the environments created just before it.
    pub async fn environments_of(&self, bureau: &str) -> Result<Vec<Environment>, Problem> {
        valid_bureau(bureau)?;
        let params = ListParams::default().fields(&format!("spec.bureau={bureau}"));
        Ok(self.environments().list(&params).await?.items)
    }

    /// Environment `name` of `bureau`, or 404 (also when it belongs to another bureau).
    pub async fn environment(&self, bureau: &str, name: &str) -> Result<Environment, Problem> {
        valid_environment(bureau, name)?;
        self.environments()
            .get_opt(name)
            .await?
            .filter(|env| env.spec.bureau == bureau)
            .ok_or_else(|| environment_not_found(bureau, name))
    }
}

/// Names that cannot be a bureau's code or an environment's name name nothing: 404, decided
/// before anything is looked up.
fn valid_environment(bureau: &str, name: &str) -> Result<(), Problem> {
    valid_bureau(bureau)?;
    if names::check_dns1123_label(name, 63).is_err() {
        return Err(Problem::not_found(format!(
            "environment {name:?} not found: not a valid environment name"
        )));
    }
    Ok(())
}

fn environment_not_found(bureau: &str, name: &str) -> Problem {
    Problem::not_found(format!(
        "environment {name:?} of bureau {bureau:?} not found"
    ))
}

#[cfg(test)]
mod limit_tests {
    use super::TenantLimits;

    const LIMITS: TenantLimits = TenantLimits {
        max_environments_per_bureau: 3,
        max_pending_requests_per_bureau: 2,
    };

    #[test]
    fn a_bureau_at_its_environment_cap_is_refused_one_more_with_409() {
        assert!(LIMITS.room_for_environment(2).is_ok());
        let problem = LIMITS.room_for_environment(3).expect_err("at the cap");
        assert_eq!(problem.status, 409);
        assert!(problem.detail.contains("(3)"), "{}", problem.detail);
        assert!(LIMITS.room_for_environment(7).is_err(), "beyond it, too");
    }

    #[test]
    fn a_bureau_at_its_pending_request_cap_is_refused_one_more_with_409() {
        assert!(LIMITS.room_for_request(1).is_ok());
        let problem = LIMITS.room_for_request(2).expect_err("at the cap");
        assert_eq!(problem.status, 409);
    }
}
