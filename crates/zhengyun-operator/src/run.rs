//! Starting the operator: leader election, the two controllers, and the health and metrics
//! endpoints, with graceful shutdown on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::Config as WatcherConfig;
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};

use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use zhengyun_model::crd::{Bureau, CapacityPool, Environment, RateCard};

use anyhow::Context as _;
use zhengyun_metering::Calendar;

use crate::billing_audit;
use crate::leader::{LeaseConfig, LeaseLock};
use crate::metering::{self, MeteringConfig};
use crate::metrics::Metrics;
use crate::resources::{Catalog, ENVIRONMENT_LABEL, MANAGED_BY};
use crate::versions::ChildVersions;
use crate::{
    Error, MANAGER, Result, apply, bureaus, cluster, environments, no_managed_fields, rate_cards,
};

/// Settings of the operator (flags of `zhengyun operator`).
#[derive(Clone, Debug, clap::Args)]
pub struct OperatorConfig {
    /// Address of the /healthz, /readyz and /metrics endpoints.
    #[arg(long, env = "ZHENGYUN_OPERATOR_ADDR", default_value = "127.0.0.1:9090")]
    pub operator_addr: SocketAddr,
    /// Registry prefix of catalog images (web, postgres).
    #[arg(
        long,
        env = "ZHENGYUN_CATALOG_REGISTRY",
        default_value = "registry.local/zhengyun"
    )]
    pub catalog_registry: String,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "ZHENGYUN_LEASE_NAMESPACE", default_value = "kube-system")]
    pub lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, env = "ZHENGYUN_LEASE_NAME", default_value = "zhengyun-operator")]
    pub lease_name: String,
    /// Identity of this replica in the Lease (defaults to the pod or host name plus a random suffix).
    #[arg(long, env = "ZHENGYUN_LEASE_HOLDER")]
    pub lease_holder: Option<String>,
    /// Seconds a leader's claim lasts without renewal.
    #[arg(long, env = "ZHENGYUN_LEASE_SECONDS", default_value_t = 15)]
    pub lease_seconds: u64,
    /// Most reconciliations running at once, per controller.
    #[arg(long, env = "ZHENGYUN_OPERATOR_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,
    #[command(flatten)]
    pub database: zhengyun_store::DatabaseArgs,
    /// Hours before a dev or test environment's `expiresAt` its owners are told, once, with an
    /// `ExpiresSoon` Event and condition.
    #[arg(long, env = "ZHENGYUN_EXPIRY_NOTICE_HOURS", default_value_t = 24)]
    pub expiry_notice_hours: u64,
    #[command(flatten)]
    pub metering: MeteringConfig,
}

#[derive(Clone)]
struct Health {
    metrics: Arc<Metrics>,
    leading: watch::Receiver<bool>,
}

/// Runs the operator until `shutdown` resolves, with the ledger at `config.database`.
/// Controllers and the metering sampler run only while this replica leads; losing the Lease
/// (another replica took it, or the API server was away for longer than the Lease lasts) stops
/// them until this replica wins the Lease again.
pub async fn run(
    client: Client,
    config: OperatorConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = zhengyun_store::Store::connect(&config.database.database_url)
        .await
        .context("unable to open the metering ledger (--database-url)")?;
    let result = run_with_store(client, store.clone(), config, shutdown).await;
    store.close().await;
    result
}

/// [`run`] with a store opened by the caller (for a process that shares it with the API).
pub async fn run_with_store(
    client: Client,
    store: zhengyun_store::Store,
    config: OperatorConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let calendar = Calendar::new(&config.metering.zone.time_zone)
        .with_context(|| format!("unknown --time-zone {:?}", config.metering.zone.time_zone))?;
    let metrics = Arc::new(Metrics::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    let (leading_tx, mut leading_rx) = watch::channel(false);
    let lock = LeaseLock::new(
        client.clone(),
        LeaseConfig {
            namespace: config.lease_namespace.clone(),
            name: config.lease_name.clone(),
            holder: config.lease_holder.clone().unwrap_or_else(default_holder),
            ttl: Duration::from_secs(config.lease_seconds.max(3)),
        },
    );
    let election = tokio::spawn(lock.run(leading_tx, stop_rx.clone()));
    let health = Health {
        metrics: metrics.clone(),
        leading: leading_rx.clone(),
    };
    let server = tokio::spawn(serve(config.operator_addr, health, stop_rx.clone()));

    let term = Term {
        client: &client,
        config: &config,
        metrics: &metrics,
        store: &store,
        calendar: &calendar,
    };
    let led = term.lead_while_elected(&mut leading_rx, &stop_rx).await;
    let _ = election.await;
    let _ = server.await;
    led
}

/// What one leadership term needs.
struct Term<'a> {
    client: &'a Client,
    config: &'a OperatorConfig,
    metrics: &'a Arc<Metrics>,
    store: &'a zhengyun_store::Store,
    calendar: &'a Calendar,
}

impl Term<'_> {
    /// Runs the controllers and the metering sampler each time this replica wins the Lease,
    /// until `stop`.
    async fn lead_while_elected(
        &self,
        leading_rx: &mut watch::Receiver<bool>,
        stop_rx: &watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        loop {
            let mut stop = stop_rx.clone();
            tokio::select! {
                _ = leading_rx.wait_for(|l| *l) => {}
                _ = stop.wait_for(|s| *s) => return Ok(()),
            }
            self.metrics.set_leader(true);
            tracing::info!("leading; starting controllers");
            install_cluster_objects(self.client).await?;

            let mut stop_controllers = stop_rx.clone();
            let mut lost = leading_rx.clone();
            let ending = async move {
                tokio::select! {
                    _ = stop_controllers.wait_for(|s| *s) => metering::Ending::Shutdown,
                    _ = lost.wait_for(|l| !*l) => metering::Ending::LeaseLost,
                }
            };
            let ending = futures::future::FutureExt::shared(ending);
            let graceful = futures::future::FutureExt::shared(futures::future::FutureExt::map(
                ending.clone(),
                |_| (),
            ));
            let sampler = {
                let (sampler_stop_tx, sampler_stop_rx) = watch::channel(None);
                let ending = ending.clone();
                tokio::spawn(async move {
                    let ending = ending.await;
                    let _ = sampler_stop_tx.send(Some(ending));
                });
                metering::run(
                    self.client.clone(),
                    self.store.clone(),
                    self.config.metering.clone(),
                    self.calendar.clone(),
                    self.metrics.metering().clone(),
                    sampler_stop_rx,
                )
            };
            let audit =
                billing_audit::run(self.client.clone(), self.store.clone(), graceful.clone());
            let costs = metering::budgets::write_status(
                self.client.clone(),
                self.metrics.metering().clone(),
                graceful.clone(),
            );
            let controllers = run_controllers(
                self.client.clone(),
                self.calendar.clone(),
                self.config,
                self.metrics.clone(),
                graceful,
            );
            futures::future::join4(controllers, sampler, audit, costs).await;
            self.metrics.set_leader(false);
            self.metrics.metering().stop_leading();
            if *stop_rx.borrow() {
                return Ok(());
            }
            tracing::warn!(
                "lost the leader Lease; controllers and metering stopped until it is ours again"
            );
        }
    }
}

fn default_holder() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "zhengyun-operator".into());
    format!("{host}-{}", uuid::Uuid::new_v4().simple())
}

async fn install_cluster_objects(client: &Client) -> Result<()> {
    // The tenant ClusterRoles are installed with the chart (or `zhengyun policies`), never by
    // the operator: it holds no write on ClusterRoles, only `bind` on those two.
    let pool = environments::capacity_pool(client).await?;
    let classes = cluster::priority_classes(&pool.priority_classes, &pool.priority_values)
        .map_err(|source| Error::Build {
            what: "priority classes".into(),
            source,
        })?;
    for class in classes {
        // A PriorityClass's value never changes: a pool that gives an existing class another
        // value is reported, and the class keeps the value it has.
        if let Err(e) = apply::cluster(client, &class).await {
            tracing::warn!(error = %e, "unable to apply a tier PriorityClass; name new classes to change a value");
        }
    }
    Ok(())
}

fn managed() -> WatcherConfig {
    WatcherConfig::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"))
}

/// Maps a child object to the environment named by its label.
fn owner_env<K: Resource>(obj: K) -> Option<ObjectRef<Environment>> {
    obj.labels()
        .get(ENVIRONMENT_LABEL)
        .map(|name| ObjectRef::new(name))
}

fn watch_children<K>(
    ctrl: Controller<Environment>,
    client: &Client,
    versions: &Arc<ChildVersions>,
    note: fn(&ChildVersions, &K),
) -> Controller<Environment>
where
    K: Watched,
{
    let versions = Arc::clone(versions);
    let seen = Arc::clone(&versions);
    // Managed fields are dropped first: nothing here reads them, and `observe` digests the rest.
    let events = watcher(Api::<K>::all(client.clone()), managed())
        .default_backoff()
        .modify(no_managed_fields)
        .inspect(move |event| match event {
            Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => seen.observe(obj),
            Ok(watcher::Event::Delete(obj)) => seen.observe_deleted(obj),
            _ => {}
        })
        .touched_objects();
    ctrl.watches_stream(without_errors(events), move |obj: K| {
        note(&versions, &obj);
        owner_env(obj)
    })
}

/// Keeps a watch's errors from its controller. A kube-runtime `Controller` backs off all of its
/// triggers at once when any of them yields an error, so after an API server restart the errors
/// of a dozen watches (connections cut, then 410 Gone on resuming) would pause every trigger
/// for up to 30 s each, minutes in all. Each watch retries on its own backoff instead, and an
/// error is only logged.
fn without_errors<K: Resource<DynamicType = ()> + Send + 'static>(
    events: impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static {
    events.filter(|event| {
        match event {
            Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                tracing::info!(kind = %K::kind(&()), "watch expired; listing again");
            }
            Err(error) => {
                tracing::warn!(%error, kind = %K::kind(&()), "watch failed; retrying");
            }
            Ok(_) => {}
        }
        futures::future::ready(event.is_ok())
    })
}

/// What, in an Environment, is worth a reconciliation: its spec, admission's decision, its
/// deletion and finalizers, and annotations (a touch forces a resync). The environment
/// controller's own status writes (phase, usage, conditions) are not.
fn env_trigger(env: &Environment) -> Option<u64> {
    let mut h = DefaultHasher::new();
    env.metadata.generation.hash(&mut h);
    serde_json::to_string(&env.status.as_ref().and_then(|s| s.admitted_quota.as_ref()))
        .ok()
        .hash(&mut h);
    env.metadata
        .deletion_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .hash(&mut h);
    env.metadata.finalizers.hash(&mut h);
    env.metadata.annotations.hash(&mut h);
    Some(h.finish())
}

/// What, in an Environment, admission and the bureau rollup depend on. Not the phase: the
/// environment controller moving it from Admitted to Ready changes nothing admission or the
/// rollup reads, and would cost every bureau a LIST per environment.
fn bureau_trigger(env: &Environment) -> Option<u64> {
    let mut h = DefaultHasher::new();
    env.metadata.generation.hash(&mut h);
    let status = env.status.as_ref();
    serde_json::to_string(&status.map(|s| (&s.admitted_quota, &s.usage)))
        .ok()
        .hash(&mut h);
    env.metadata
        .deletion_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .hash(&mut h);
    Some(h.finish())
}

/// What, in a Bureau, either controller acts on: its spec (quota, groups), its deletion, and
/// annotations (a touch forces a resync). Not its status, which the bureau controller writes.
fn bureau_spec(bureau: &Bureau) -> Option<u64> {
    let mut h = DefaultHasher::new();
    bureau.metadata.generation.hash(&mut h);
    bureau
        .metadata
        .deletion_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .hash(&mut h);
    bureau.metadata.annotations.hash(&mut h);
    Some(h.finish())
}

/// What the operator can watch and cache.
trait Watched:
    Resource<DynamicType = ()>
    + Clone
    + std::fmt::Debug
    + DeserializeOwned
    + serde::Serialize
    + Send
    + Sync
    + 'static
{
}

impl<K> Watched for K where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + serde::Serialize
        + Send
        + Sync
        + 'static
{
}

type Events<K> = futures::stream::BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>;

/// A reflector-backed store of `K` (without managedFields) and the event stream that keeps it.
fn reflected<K>(client: &Client) -> (Store<K>, Events<K>)
where
    K: Watched,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(Api::<K>::all(client.clone()), WatcherConfig::default())
        .default_backoff()
        .modify(no_managed_fields)
        .reflect(writer)
        .boxed();
    (reader, stream)
}

async fn run_controllers(
    client: Client,
    calendar: Calendar,
    config: &OperatorConfig,
    metrics: Arc<Metrics>,
    graceful: impl std::future::Future<Output = ()> + Clone + Send + Sync + 'static,
) {
    let reporter = Reporter {
        controller: MANAGER.into(),
        instance: None,
    };
    let recorder = Recorder::new(client.clone(), reporter);
    // No debounce: a trailing-edge debounce keeps postponing objects that change continuously
    // (a namespace being torn down), which delays admission; predicates cut the noise instead.
    let controller_config = ControllerConfig::default().concurrency(config.concurrency);

    let (bureaus, bureau_stream) = reflected::<Bureau>(&client);
    let (pools, pool_stream) = reflected::<CapacityPool>(&client);
    let (envs, env_stream) = reflected::<Environment>(&client);
    // Whether the environment cache holds its first complete LIST. Said by the stream itself: a
    // store's own `wait_until_ready` wakes only one of several waiters, and each controller
    // already waits on its store.
    let (envs_listed_tx, envs_listed) = watch::channel(false);
    let env_stream = env_stream
        .inspect(move |event| {
            if matches!(event, Ok(watcher::Event::InitDone)) {
                let _ = envs_listed_tx.send(true);
            }
        })
        .boxed();
    let (env_events_tx, env_events_rx) =
        futures::channel::mpsc::unbounded::<Result<Environment, watcher::Error>>();
    let (bureau_events_tx, bureau_events_rx) =
        futures::channel::mpsc::unbounded::<Result<Bureau, watcher::Error>>();
    let (pool_events_tx, pool_events_rx) =
        futures::channel::mpsc::unbounded::<Result<CapacityPool, watcher::Error>>();
    // Each watch feeds both controllers.
    let env_stream = tee(env_stream, env_events_tx, bureau_trigger, everything);
    // Neither controller needs the bureau controller's own status writes.
    let bureau_stream = tee(bureau_stream, bureau_events_tx, bureau_spec, bureau_spec);
    let pool_stream = tee(pool_stream, pool_events_tx, everything, everything);

    let env_store = envs.clone();
    let every_env = envs.clone();
    let env_ctrl = Controller::for_stream(
        env_stream.predicate_filter(env_trigger, PredicateConfig::default()),
        envs.clone(),
    )
    .with_config(controller_config.clone())
    .watches_stream(bureau_stream, move |bureau: Bureau| {
        let name = bureau.name_any();
        env_store
            .state()
            .into_iter()
            .filter(|e| e.spec.bureau == name)
            .map(|e| ObjectRef::from_obj(&*e))
            .collect::<Vec<_>>()
    })
    .watches_stream(pool_stream, move |_pool: CapacityPool| {
        // The pool's defaults (LimitRange, PriorityClass names) reach every environment.
        every_env
            .state()
            .iter()
            .map(|e| ObjectRef::from_obj(&**e))
            .collect::<Vec<_>>()
    });
    let mut env_ctrl = env_ctrl;
    let versions = Arc::new(ChildVersions::default());
    env_ctrl =
        watch_children::<Namespace>(env_ctrl, &client, &versions, ChildVersions::note_namespace);
    env_ctrl =
        watch_children::<ResourceQuota>(env_ctrl, &client, &versions, ChildVersions::note_quota);
    env_ctrl = watch_children::<LimitRange>(env_ctrl, &client, &versions, |_, _| {});
    env_ctrl = watch_children::<NetworkPolicy>(env_ctrl, &client, &versions, |_, _| {});
    env_ctrl = watch_children::<RoleBinding>(env_ctrl, &client, &versions, |_, _| {});
    env_ctrl = watch_children::<Service>(env_ctrl, &client, &versions, |_, _| {});
    env_ctrl = watch_children::<Deployment>(env_ctrl, &client, &versions, |_, _| {});
    env_ctrl = watch_children::<StatefulSet>(env_ctrl, &client, &versions, |_, _| {});
    let env_ctx = Arc::new(environments::Context {
        versions,
        reported: environments::Reports::default(),
        expiry_notice: Duration::from_secs(config.expiry_notice_hours.saturating_mul(3600)),
        client: client.clone(),
        metrics: metrics.clone(),
        catalog: Catalog {
            registry: config.catalog_registry.clone(),
        },
        recorder: recorder.clone(),
        bureaus: bureaus.clone(),
        pools: pools.clone(),
    });
    let env_run = env_ctrl
        .graceful_shutdown_on(graceful.clone())
        .run(environments::reconcile, environments::error_policy, env_ctx)
        .for_each(|_| futures::future::ready(()));

    let all_bureaus = bureaus.clone();
    let bureau_ctx = Arc::new(bureaus::Context {
        client: client.clone(),
        metrics,
        recorder,
        bureaus: bureaus.clone(),
        pools,
        envs: envs.clone(),
        envs_ready: envs_listed,
        decided: crate::recent::RecentWrites::default(),
        rollups: crate::spacing::Spacing::new(bureaus::ROLLUP_SPACING),
    });
    let bureau_run = Controller::for_stream(bureau_events_rx, bureaus)
        .with_config(controller_config)
        .watches_stream(
            env_events_rx.predicate_filter(bureau_trigger, PredicateConfig::default()),
            |env: Environment| Some(ObjectRef::<Bureau>::new(&env.spec.bureau)),
        )
        .watches_stream(pool_events_rx, move |_pool: CapacityPool| {
            all_bureaus
                .state()
                .iter()
                .map(|b| ObjectRef::from_obj(&**b))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(graceful.clone())
        .run(bureaus::reconcile, bureaus::error_policy, bureau_ctx)
        .for_each(|_| futures::future::ready(()));
    let card_ctrl = Controller::new(
        Api::<RateCard>::all(client.clone()),
        WatcherConfig::default(),
    );
    let card_ctx = Arc::new(rate_cards::Context {
        client,
        cards: card_ctrl.store(),
        calendar,
    });
    let card_run = card_ctrl
        .graceful_shutdown_on(graceful)
        .run(rate_cards::reconcile, rate_cards::error_policy, card_ctx)
        .for_each(|_| futures::future::ready(()));
    futures::future::join3(env_run, bureau_run, card_run).await;
}

/// Decodes `events` into the objects touched, and sends a copy of each to `copy` when it was
/// deleted or when `changed` (a hash of what the other side cares about; `None`: everything)
/// differs from the last copy sent. Deletions always pass, unlike a plain predicate filter.
fn tee<K: Resource<DynamicType = ()> + Clone + Send + 'static>(
    events: Events<K>,
    copy: futures::channel::mpsc::UnboundedSender<Result<K, watcher::Error>>,
    changed: fn(&K) -> Option<u64>,
    changed_here: fn(&K) -> Option<u64>,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static {
    let mut for_copy = Changes::new(changed);
    let mut for_here = Changes::new(changed_here);
    let objects = events
        .inspect(move |event| {
            if for_copy.passes(event)
                && let Ok(
                    watcher::Event::Apply(o)
                    | watcher::Event::InitApply(o)
                    | watcher::Event::Delete(o),
                ) = event
            {
                let _ = copy.unbounded_send(Ok(o.clone()));
            }
        })
        .filter(move |event| futures::future::ready(for_here.passes(event)))
        .touched_objects();
    without_errors(objects)
}

/// Remembers, per object, a hash of what one consumer cares about, and lets an event through
/// when that hash changed, when the object was deleted, or when it is not about an object.
struct Changes<K> {
    hash: fn(&K) -> Option<u64>,
    seen: std::collections::HashMap<String, u64>,
}

impl<K: Resource> Changes<K> {
    fn new(hash: fn(&K) -> Option<u64>) -> Self {
        Self {
            hash,
            seen: std::collections::HashMap::new(),
        }
    }

    fn passes(&mut self, event: &Result<watcher::Event<K>, watcher::Error>) -> bool {
        match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                let key = o.meta().uid.clone().unwrap_or_default();
                match (self.hash)(o) {
                    None => true,
                    Some(hash) => self.seen.insert(key, hash) != Some(hash),
                }
            }
            Ok(watcher::Event::Delete(o)) => {
                self.seen
                    .remove(o.meta().uid.as_deref().unwrap_or_default());
                true
            }
            _ => true,
        }
    }
}

/// Everything: for a consumer that wants every event.
fn everything<K>(_: &K) -> Option<u64> {
    None
}

async fn serve(addr: SocketAddr, health: Health, mut stop: watch::Receiver<bool>) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, %addr, "unable to listen for health and metrics");
            return;
        }
    };
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "health and metrics server failed");
    }
}

/// Ready once this replica either leads or knows who does (a standby is ready to take over).
async fn readyz(State(health): State<Health>) -> (StatusCode, &'static str) {
    let _ = *health.leading.borrow();
    (StatusCode::OK, "ok")
}

/// OpenMetrics for scrapers that ask for it (Prometheus does), the classic text format
/// otherwise.
async fn metrics(
    State(health): State<Health>,
    headers: axum::http::HeaderMap,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    let openmetrics = headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (content_type, body) = if openmetrics {
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            health.metrics.render(),
        )
    } else {
        (
            "text/plain; version=0.0.4; charset=utf-8",
            health.metrics.render_prometheus(),
        )
    };
    ([(axum::http::header::CONTENT_TYPE, content_type)], body)
}
