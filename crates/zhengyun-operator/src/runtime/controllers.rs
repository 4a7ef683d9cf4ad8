//! Wiring of the three controllers (environments, bureaus, rate cards) to their watches, for
//! one leadership term. The controllers themselves are in `crate::environments`,
//! `crate::bureaus` and `crate::rate_cards`.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use futures::channel::mpsc;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::{self, Config as WatcherConfig};
use kube::runtime::{PredicateConfig, WatchStreamExt as _};
use kube::{Api, Client, ResourceExt as _};
use tokio::sync::watch;
use zhengyun_metering::Calendar;
use zhengyun_model::crd::{Bureau, CapacityPool, Environment, RateCard};

use super::OperatorConfig;
use super::applier::Applier;
use super::by_bureau::ByBureau;
use super::events::Publisher;
use super::watches::{
    Events, Watched, everything, managed, owner_env, reflected, tee, without_errors,
};
use crate::metrics::Metrics;
use crate::resources::Catalog;
use crate::versions::ChildVersions;
use crate::{MANAGER, bureaus, environments, no_managed_fields, rate_cards};

/// What every controller of a term shares.
pub(super) struct Shared {
    pub client: Client,
    /// The audit log (and ledger): the expiry's deletions are audited there.
    pub store: zhengyun_store::Store,
    pub calendar: Calendar,
    pub metrics: Arc<Metrics>,
    pub events: Publisher,
    pub config: ControllerConfig,
}

impl Shared {
    pub(super) fn new(
        client: Client,
        store: zhengyun_store::Store,
        calendar: Calendar,
        config: &OperatorConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            events: Publisher::new(client.clone(), MANAGER),
            client,
            store,
            calendar,
            metrics,
            // No debounce: a trailing-edge debounce keeps postponing objects that change
            // continuously (a namespace being torn down), which delays admission; predicates cut
            // the noise instead.
            config: ControllerConfig::default().concurrency(config.concurrency),
        }
    }
}

/// Runs the three controllers until `graceful` resolves. `envs` is the term's cache of
/// Environments with the watch that fills it, which the controllers drive.
pub(super) async fn run(
    shared: Shared,
    config: &OperatorConfig,
    (envs, env_stream): (Store<Environment>, Events<Environment>),
    graceful: impl std::future::Future<Output = ()> + Clone + Send + Sync + 'static,
) {
    let client = &shared.client;
    let (bureaus, bureau_stream) = reflected::<Bureau>(client);
    let (pools, pool_stream) = reflected::<CapacityPool>(client);
    // Whether the environment cache holds its first complete LIST. Said by the stream itself: a
    // store's own `wait_until_ready` wakes only one of several waiters, and each controller
    // already waits on its store.
    let (envs_listed_tx, envs_listed) = watch::channel(false);
    let by_bureau = ByBureau::default();
    let index = by_bureau.clone();
    let env_stream = env_stream
        .inspect(move |event| {
            if let Ok(event) = event {
                index.observe(event);
            }
            if matches!(event, Ok(watcher::Event::InitDone)) {
                let _ = envs_listed_tx.send(true);
            }
        })
        .boxed();
    // Each watch feeds both controllers; neither needs the bureau controller's status writes.
    let (env_events_tx, env_events) = mpsc::unbounded();
    let (bureau_events_tx, bureau_events) = mpsc::unbounded();
    let (pool_events_tx, pool_events) = mpsc::unbounded();
    let for_envs = Triggers {
        envs: env_stream_for_envs(env_stream, env_events_tx),
        bureaus: tee(bureau_stream, bureau_events_tx, bureau_spec, bureau_spec).boxed(),
        pools: tee(pool_stream, pool_events_tx, everything, everything).boxed(),
    };
    let for_bureaus = Triggers {
        envs: env_events
            .predicate_filter(bureau_trigger, PredicateConfig::default())
            .boxed(),
        bureaus: bureau_events.boxed(),
        pools: pool_events.boxed(),
    };
    let stores = Stores {
        bureaus,
        pools,
        envs,
        by_bureau,
    };
    let env_run = environment_controller(&shared, config, &stores, for_envs, graceful.clone());
    let bureau_run =
        bureau_controller(&shared, &stores, envs_listed, for_bureaus, graceful.clone());
    let card_run = rate_card_controller(&shared, graceful.clone());
    let lending = crate::lending::run(
        Duration::from_secs(config.lending_period),
        shared.client.clone(),
        shared.store.clone(),
        stores.envs.clone(),
        shared.events.clone(),
        shared.metrics.clone(),
        graceful.clone(),
    );
    let availability = crate::availability::run(
        shared.client.clone(),
        shared.store.clone(),
        stores.envs.clone(),
        shared.metrics.clone(),
        config.metering.clock.clock(),
        graceful,
    );
    futures::future::join5(env_run, bureau_run, card_run, lending, availability).await;
}

/// The watch caches the controllers read.
struct Stores {
    bureaus: Store<Bureau>,
    pools: Store<CapacityPool>,
    envs: Store<Environment>,
    /// The environments of each bureau in `envs`.
    by_bureau: ByBureau,
}

/// The objects that trigger one controller.
struct Triggers {
    envs: ObjectStream<Environment>,
    bureaus: ObjectStream<Bureau>,
    pools: ObjectStream<CapacityPool>,
}

type ObjectStream<K> = futures::stream::BoxStream<'static, Result<K, watcher::Error>>;

/// The environment watch, for the environment controller, with a copy of what the bureau
/// controller needs sent to `copy`.
fn env_stream_for_envs(
    events: Events<Environment>,
    copy: mpsc::UnboundedSender<Result<Environment, watcher::Error>>,
) -> ObjectStream<Environment> {
    tee(events, copy, bureau_trigger, everything).boxed()
}

fn environment_controller(
    shared: &Shared,
    config: &OperatorConfig,
    stores: &Stores,
    triggers: Triggers,
    graceful: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> impl std::future::Future<Output = ()> {
    let (of_bureau, by_bureau) = (stores.envs.clone(), stores.by_bureau.clone());
    let every_env = stores.envs.clone();
    let mut ctrl = Controller::for_stream(
        triggers
            .envs
            .predicate_filter(env_trigger, PredicateConfig::default()),
        stores.envs.clone(),
    )
    .with_config(shared.config.clone())
    .watches_stream(triggers.bureaus, move |bureau: Bureau| {
        by_bureau
            .environments(&bureau.name_any(), &of_bureau)
            .into_iter()
            .map(|e| ObjectRef::from_obj(&*e))
            .collect::<Vec<_>>()
    })
    .watches_stream(triggers.pools, move |_pool: CapacityPool| {
        // The pool's defaults (LimitRange, PriorityClass names) reach every environment.
        every_object(&every_env)
    });
    let versions = Arc::new(ChildVersions::default());
    let client = &shared.client;
    ctrl = watch_children::<Namespace>(ctrl, client, &versions, ChildVersions::note_namespace);
    ctrl = watch_children::<ResourceQuota>(ctrl, client, &versions, ChildVersions::note_quota);
    ctrl = watch_children::<LimitRange>(ctrl, client, &versions, |_, _| {});
    ctrl = watch_children::<NetworkPolicy>(ctrl, client, &versions, |_, _| {});
    ctrl = watch_children::<RoleBinding>(ctrl, client, &versions, |_, _| {});
    ctrl = watch_children::<ServiceAccount>(ctrl, client, &versions, |_, _| {});
    ctrl = watch_children::<Service>(ctrl, client, &versions, |_, _| {});
    ctrl = watch_children::<Deployment>(ctrl, client, &versions, |_, _| {});
    ctrl = watch_children::<StatefulSet>(ctrl, client, &versions, |_, _| {});
    let ctx = Arc::new(environments::Context {
        applier: Applier::new(client.clone(), versions),
        reported: environments::Reports::default(),
        usage_reports: crate::spacing::Spacing::new(environments::USAGE_SPACING),
        expiry_notice: Duration::from_secs(config.expiry_notice_hours.saturating_mul(3600)),
        client: client.clone(),
        store: shared.store.clone(),
        metrics: shared.metrics.clone(),
        catalog: Catalog {
            registry: config.catalog_registry.clone(),
        },
        events: shared.events.clone(),
        bureaus: stores.bureaus.clone(),
        pools: stores.pools.clone(),
    });
    ctrl.graceful_shutdown_on(graceful)
        .run(environments::reconcile, environments::error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
}

fn bureau_controller(
    shared: &Shared,
    stores: &Stores,
    envs_listed: watch::Receiver<bool>,
    triggers: Triggers,
    graceful: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> impl std::future::Future<Output = ()> {
    let all_bureaus = stores.bureaus.clone();
    let ctx = Arc::new(bureaus::Context {
        client: shared.client.clone(),
        applier: Applier::new(shared.client.clone(), Arc::default()),
        metrics: shared.metrics.clone(),
        events: shared.events.clone(),
        bureaus: stores.bureaus.clone(),
        pools: stores.pools.clone(),
        envs: stores.envs.clone(),
        by_bureau: stores.by_bureau.clone(),
        envs_ready: envs_listed,
        decided: crate::recent::RecentWrites::default(),
        rollups: crate::spacing::Spacing::new(bureaus::ROLLUP_SPACING),
    });
    Controller::for_stream(triggers.bureaus, stores.bureaus.clone())
        .with_config(shared.config.clone())
        .watches_stream(triggers.envs, |env: Environment| {
            Some(ObjectRef::<Bureau>::new(&env.spec.bureau))
        })
        .watches_stream(triggers.pools, move |_pool: CapacityPool| {
            every_object(&all_bureaus)
        })
        .graceful_shutdown_on(graceful)
        .run(bureaus::reconcile, bureaus::error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
}

fn rate_card_controller(
    shared: &Shared,
    graceful: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> impl std::future::Future<Output = ()> {
    let ctrl = Controller::new(
        Api::<RateCard>::all(shared.client.clone()),
        WatcherConfig::default(),
    );
    let ctx = Arc::new(rate_cards::Context {
        applier: Applier::new(shared.client.clone(), Arc::default()),
        cards: ctrl.store(),
        calendar: shared.calendar.clone(),
    });
    ctrl.graceful_shutdown_on(graceful)
        .run(rate_cards::reconcile, rate_cards::error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
}

/// Triggers the environment controller on changes of the children it manages (by their
/// environment label); `note` records what the controller reads back from them.
fn watch_children<K: Watched>(
    ctrl: Controller<Environment>,
    client: &Client,
    versions: &Arc<ChildVersions>,
    note: fn(&ChildVersions, &K),
) -> Controller<Environment> {
    let versions = Arc::clone(versions);
    let seen = Arc::clone(&versions);
    // Managed fields are dropped first: nothing here reads them, and `observe` digests the rest.
    let events = watcher::watcher(Api::<K>::all(client.clone()), managed())
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

/// What, in an Environment, is worth a reconciliation: its spec, admission's decision, its
/// deletion and finalizers, and annotations (a touch forces a resync). The environment
/// controller's own status writes (phase, usage, conditions) are not.
fn env_trigger(env: &Environment) -> Option<u64> {
    let mut h = DefaultHasher::new();
    env.metadata.generation.hash(&mut h);
    // The admitted quota and the burst allowance: both set the namespace's quotas.
    let status = env.status.as_ref();
    serde_json::to_string(&status.map(|s| (&s.admitted_quota, &s.burst_allowance)))
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
    serde_json::to_string(&status.map(|s| {
        (
            &s.admitted_quota,
            &s.usage,
            &s.burst_allowance,
            &s.burst_usage,
        )
    }))
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

/// A reference to every object `store` holds: what a change that reaches them all triggers.
fn every_object<K: Watched>(store: &Store<K>) -> Vec<ObjectRef<K>> {
    store
        .state()
        .iter()
        .map(|o| ObjectRef::from_obj(&**o))
        .collect()
}
