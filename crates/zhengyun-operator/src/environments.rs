//! The environment controller: turns an admitted Environment into its namespace and everything
//! inside it, keeps them as declared (drift is repaired on the next event), reports the phase,
//! and on deletion removes the namespace before letting the Environment go.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::try_join_all;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota, Service};
use kube::api::DeleteParams;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use zhengyun_model::crd::{
    Bureau, CLEANUP_FINALIZER, CapacityPool, CapacityPoolSpec, Environment, EnvironmentPhase,
    EnvironmentStatus, POOL_NAME,
};
use zhengyun_model::quantity::{Quota, Resource as QuotaResource, ResourceAmounts};

use crate::conditions::{Kind, Observed, Reason, Status, find, has_same, says};
use crate::expiry::Expiry;
use crate::metrics::Metrics;
use crate::resources::{
    BURST_QUOTA_NAME, Catalog, Inputs, Materialized, capped_by_environment, made_for, materialize,
    namespace_name, owned_by,
};
use crate::runtime::applier::Applier;
use crate::runtime::events::{EventType, Note, Publisher};
use crate::spacing::Spacing;
use crate::versions::{digest, is_later};
use crate::{ADMISSION_MANAGER, Error, MANAGER, Result};

const CONTROLLER: &str = "environment";

/// What the environment controller needs.
pub(crate) struct Context {
    pub client: Client,
    /// The audit log, where an expiry's deletion is recorded, intent first.
    pub store: zhengyun_store::Store,
    pub metrics: Arc<Metrics>,
    pub catalog: Catalog,
    pub events: Publisher,
    pub bureaus: Store<Bureau>,
    pub pools: Store<CapacityPool>,
    /// Every write, and the decision not to write an unchanged child.
    pub applier: Applier,
    pub reported: Reports,
    /// When each environment's status was last written: a report that changes only usage
    /// waits until the last write is [`USAGE_SPACING`] old.
    pub usage_reports: Spacing,
    /// How long before a dev or test environment expires its owners are told.
    pub expiry_notice: Duration,
}

/// The last status the environment controller wrote for each environment: a digest of what it
/// said and the resourceVersion the write produced. While the watch cache still shows an older
/// version, a reconciliation that would say the same again writes nothing.
#[derive(Default)]
pub(crate) struct Reports(std::sync::Mutex<std::collections::HashMap<String, (u64, String)>>);

impl Reports {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut std::collections::HashMap<String, (u64, String)>) -> T,
    ) -> T {
        f(&mut self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Whether `said` was already written for `env` at a version later than the one at hand.
    fn already_said(&self, env: &Environment, said: u64) -> bool {
        self.with(|m| {
            m.get(&env.name_any()).is_some_and(|(digest, written)| {
                *digest == said && is_later(Some(written), env.resource_version().as_deref())
            })
        })
    }

    fn said(&self, env: &Environment, said: u64, written: Option<String>) {
        self.with(|m| match written {
            Some(rv) => m.insert(env.name_any(), (said, rv)),
            None => m.remove(&env.name_any()),
        });
    }

    fn forget(&self, env: &Environment) {
        self.with(|m| m.remove(&env.name_any()));
    }
}

/// Entry point of each reconciliation.
pub(crate) async fn reconcile(env: Arc<Environment>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let api: Api<Environment> = Api::all(ctx.client.clone());
    finalizer(&api, CLEANUP_FINALIZER, env, |event| async {
        match event {
            Event::Apply(env) => converge(&env, &ctx).await,
            Event::Cleanup(env) => cleanup(&env, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// Retries failures with a short delay; a namespace still terminating is not a failure.
pub(crate) fn error_policy(_env: Arc<Environment>, error: &Error, ctx: Arc<Context>) -> Action {
    if waiting_for_namespace(error) {
        return Action::requeue(Duration::from_secs(2));
    }
    tracing::warn!(error = %error, "environment reconciliation failed");
    ctx.metrics.failure(CONTROLLER, error.metric_label());
    Action::requeue(Duration::from_secs(5))
}

fn waiting_for_namespace(error: &Error) -> bool {
    matches!(error, Error::Finalizer(e) if matches!(**e, kube::runtime::finalizer::Error::CleanupFailed(Error::NamespaceTerminating(_))))
}

/// The quota admission granted this environment, if it is admitted.
pub(crate) fn granted(env: &Environment) -> Option<ResourceAmounts> {
    env.status
        .as_ref()?
        .admitted_quota
        .as_ref()?
        .observed_amounts()
        .ok()
}

async fn converge(env: &Environment, ctx: &Context) -> Result<Action> {
    let recheck = match expire(env, ctx).await? {
        Some(recheck) => recheck,
        None => return Ok(Action::await_change()),
    };
    let again = converge_admitted(env, ctx).await?;
    // Whichever comes first: the next look the environment needs, or its expiry's next step.
    Ok(match again.into_iter().chain(recheck).min() {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

/// The longest a converged environment waits before it is looked at again.
const LONGEST_WAIT: Duration = Duration::from_secs(600);

/// How far apart two writes of one environment's status are at least when the later one only
/// changes usage (see [`Spacing`]). Starting a Deployment's pods changes its quota's count once
/// per pod; the first change is reported at once and the rest of the burst in one write.
pub(crate) const USAGE_SPACING: Duration = Duration::from_secs(5);

/// Field manager of the `ExpiresSoon` condition, apart from the phase reports so that neither
/// write removes the other's condition.
const EXPIRY_MANAGER: &str = "zhengyun-expiry";

/// Acts on the environment's expiry: deletes it once expired (`None`: nothing else to do), gives
/// notice once when it is near; otherwise says when to look again (`Some(None)`: never).
async fn expire(env: &Environment, ctx: &Context) -> Result<Option<Option<Duration>>> {
    let expires_at = env
        .spec
        .expires_at
        .as_ref()
        .filter(|_| env.spec.purpose.allows_expiry())
        .map(|t| t.0);
    let stamp = expires_at.map(|t| t.to_string()).unwrap_or_default();
    let notified = env
        .status
        .as_ref()
        .and_then(|s| find(&s.conditions, Kind::ExpiresSoon))
        .is_some_and(|c| says(c, Status::True) && c.message.contains(&stamp));
    let now = jiff::Timestamp::now();
    match crate::expiry::decide(expires_at, now, ctx.expiry_notice, notified) {
        Expiry::Never => Ok(Some(None)),
        Expiry::Later { recheck } => Ok(Some(Some(recheck))),
        Expiry::Notify { remaining } => {
            notify_expiry(env, ctx, &stamp).await?;
            Ok(Some(Some(remaining)))
        }
        Expiry::Expired => {
            delete_expired(env, ctx, &stamp).await?;
            Ok(None)
        }
    }
}

/// Principal of the audit entries the expiry writes.
const EXPIRY_PRINCIPAL: &str = "kubernetes:zhengyun-expiry";

/// Deletes an expired environment, with its audit entry: the intent is written first, and if
/// it cannot be, nothing is deleted and the reconciliation fails, to be retried (no change
/// without its audit entry).
async fn delete_expired(env: &Environment, ctx: &Context, stamp: &str) -> Result<()> {
    let name = env.name_any();
    let mut entry = zhengyun_store::AuditEntry {
        at: jiff::Timestamp::now(),
        principal: EXPIRY_PRINCIPAL.to_owned(),
        principal_label: Some(
            "the operator, deleting an environment whose expiresAt has passed".to_owned(),
        ),
        role: None,
        bureau: Some(env.spec.bureau.clone()),
        action: "environment.expire".to_owned(),
        object: format!("environments/{name}"),
        quota_before: None,
        quota_after: None,
        result: zhengyun_store::IN_PROGRESS.to_owned(),
        request_id: format!("uid {} expired at {stamp}", env.uid().unwrap_or_default()),
    };
    let intent = ctx
        .store
        .open_audit_intent(&entry)
        .await
        .map_err(|source| Error::Audit {
            action: format!("write the audit intent for deleting expired {name}"),
            source,
        })?;
    let note = format!("expired at {stamp}; the environment and its namespace are deleted");
    publish(ctx, env, Reason::Expired, &note).await;
    let params = DeleteParams {
        preconditions: env.uid().map(|uid| kube::api::Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    let outcome = Api::<Environment>::all(ctx.client.clone())
        .delete(&name, &params)
        .await;
    // Gone already, or replaced by another object of the name: nothing of this one to delete.
    let outcome = match outcome {
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
            entry.result = format!("{} already gone or replaced: nothing deleted", status.code);
            Ok(())
        }
        Ok(_) => {
            entry.result = "202 Accepted: deletion started".to_owned();
            Ok(())
        }
        Err(e) => {
            entry.result = format!("failed: {e}");
            Err(Error::kube(format!("delete expired environment {name}"))(e))
        }
    };
    if let Err(e) = ctx.store.append_audit_settling(&entry, &intent).await {
        // The intent stays open; the API's sweep records it as an unknown outcome.
        tracing::warn!(environment = %name, error = %e, "could not record the expiry's audit entry");
    }
    outcome
}

/// Tells the environment's owners, once per expiry moment, that it is about to expire: a
/// condition (which remembers the notice across restarts) and an Event.
async fn notify_expiry(env: &Environment, ctx: &Context, stamp: &str) -> Result<()> {
    let status = env.status.clone().unwrap_or_default();
    let message = format!("the environment expires at {stamp} and will then be deleted");
    let soon = Observed::new(&status.conditions, env.metadata.generation).holds(
        Kind::ExpiresSoon,
        Reason::ExpiresSoon,
        message.clone(),
    );
    let body = EnvironmentStatus {
        conditions: vec![soon],
        ..EnvironmentStatus::default()
    };
    let action = format!("note that environment {} expires soon", env.name_any());
    ctx.applier
        .status(EXPIRY_MANAGER, env, &body, action)
        .await?;
    publish(ctx, env, Reason::ExpiresSoon, &message).await;
    Ok(())
}

/// Converges an admitted environment's namespace; says when to look again (`None`: on change).
async fn converge_admitted(env: &Environment, ctx: &Context) -> Result<Option<Duration>> {
    let bureau = ctx.bureaus.get(&ObjectRef::new(&env.spec.bureau));
    let Some(granted) = granted(env) else {
        // Not admitted (yet): the bureau controller decides and writes the phase, unless there
        // is no such bureau to decide.
        if bureau.is_none() && bureau_missing(env, ctx).await? {
            report_missing_bureau(env, ctx).await?;
        }
        return Ok(None);
    };
    let name = env.name_any();
    // The watch cache may not have the bureau yet right after both were created; its groups
    // must never be applied as empty, so ask the API server then.
    let bureau = match bureau {
        Some(b) => Some(b),
        None => Api::<Bureau>::all(ctx.client.clone())
            .get_opt(&env.spec.bureau)
            .await
            .map_err(Error::kube(format!("read bureau {}", env.spec.bureau)))?
            .map(Arc::new),
    };
    let (admins, viewers, domains) = bureau
        .map(|b| {
            (
                b.spec.admin_groups.clone(),
                b.spec.viewer_groups.clone(),
                b.spec.domains.clone(),
            )
        })
        .unwrap_or_default();
    let pool = pool_spec(&ctx.pools)?;
    let hostnames = crate::resources::hostnames(&env.spec.bureau, &pool, &domains);
    let allowance = crate::borrowing::burst_allowance(env, &pool);
    let inputs = Inputs {
        env,
        granted: &granted,
        allowance: &allowance,
        admin_groups: &admins,
        viewer_groups: &viewers,
        hostnames: &hostnames,
        pool: &pool,
        catalog: &ctx.catalog,
    };
    let desired = materialize(&inputs).map_err(|source| Error::Build {
        what: format!("objects of {name}"),
        source,
    })?;
    let keep = CatalogNames::of(&desired);
    let Some((active, usage)) = apply_all(ctx, env, desired, pool.borrowing.enabled).await? else {
        report_conflict(env, ctx).await?;
        return Ok(Some(Duration::from_secs(60)));
    };
    prune_catalog(ctx, env, &keep).await?;
    let held_back = report(env, ctx, active, usage).await?;
    Ok(Some(held_back.unwrap_or(LONGEST_WAIT)))
}

/// The names of the catalog objects an environment declares, by kind.
struct CatalogNames {
    deployments: BTreeSet<String>,
    stateful_sets: BTreeSet<String>,
    services: BTreeSet<String>,
}

impl CatalogNames {
    fn of(desired: &Materialized) -> Self {
        fn names<K: Resource>(objects: &[K]) -> BTreeSet<String> {
            objects.iter().map(|o| o.name_any()).collect()
        }
        Self {
            deployments: names(&desired.deployments),
            stateful_sets: names(&desired.stateful_sets),
            services: names(&desired.services),
        }
    }
}

/// Deletes the catalog Deployments, StatefulSets and Services the operator made for `env` that
/// it no longer declares (a service removed from `spec.services`, or one whose kind changed).
/// A StatefulSet's volume claims stay, as Kubernetes keeps them by default: the data of a
/// database removed by mistake comes back with a service of the same name; the bureau's admins
/// delete a claim they no longer want, and the namespace's deletion removes the rest.
async fn prune_catalog(ctx: &Context, env: &Environment, keep: &CatalogNames) -> Result<()> {
    prune::<Deployment>(ctx, env, &keep.deployments).await?;
    prune::<StatefulSet>(ctx, env, &keep.stateful_sets).await?;
    prune::<Service>(ctx, env, &keep.services).await
}

/// Deletes the children of kind `K` that the watch last saw in `env`'s namespace, that are not
/// in `keep`, and that the operator made for `env` (read again: never on the cache's word).
async fn prune<K>(ctx: &Context, env: &Environment, keep: &BTreeSet<String>) -> Result<()>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    let ns = namespace_name(env);
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let kind = K::kind(&());
    for name in ctx.applier.versions().present::<K>(&ns) {
        if keep.contains(&name) {
            continue;
        }
        let found = api
            .get_opt(&name)
            .await
            .map_err(Error::kube(format!("read {kind} {ns}/{name}")))?;
        let Some(obj) = found.filter(|o| made_for(o, env)) else {
            continue;
        };
        let params = DeleteParams {
            preconditions: obj.uid().map(|uid| kube::api::Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {
                tracing::info!(namespace = %ns, %name, %kind, "pruned a catalog object no longer declared")
            }
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(e) => return Err(Error::kube(format!("delete {kind} {ns}/{name}"))(e)),
        }
    }
    Ok(())
}

/// Whether the environment may write its namespace: it may if the namespace is one it created,
/// or if there is none and it creates it now. A namespace of that name made by anyone else is
/// never adopted (`false`): nothing is applied to it, and it is never deleted.
///
/// It tries the create first, which fails if a namespace of that name exists: a new
/// environment's namespace costs one request here rather than a read and then a create, and
/// only an existing one is read to see whose it is.
async fn claim_namespace(ctx: &Context, env: &Environment, desired: &Namespace) -> Result<bool> {
    let name = desired.name_any();
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let params = kube::api::PostParams {
        field_manager: Some(MANAGER.to_owned()),
        ..Default::default()
    };
    // A create makes its manager own every field it sets, for good: what may later be taken
    // away (the burst class, while the pool lends) is left to the apply that follows.
    let mut created = desired.clone();
    if let Some(annotations) = created.metadata.annotations.as_mut() {
        annotations.remove(crate::resources::BURST_CLASS_ANNOTATION);
    }
    match namespaces.create(&params, &created).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let ns = namespaces
                .get_opt(&name)
                .await
                .map_err(Error::kube(format!("read namespace {name}")))?;
            Ok(ns.is_some_and(|ns| owned_by(&ns, env)))
        }
        Err(e) => Err(Error::kube(format!("create namespace {name}"))(e)),
    }
}

/// Says that the environment's namespace belongs to someone else, once per change.
async fn report_conflict(env: &Environment, ctx: &Context) -> Result<()> {
    let status = env.status.clone().unwrap_or_default();
    let message = format!(
        "a namespace named {} already exists and was not created for this environment; \
         nothing is applied to it until it is removed or the environment is renamed",
        namespace_name(env)
    );
    let ready = Observed::new(&status.conditions, env.metadata.generation).fails(
        Kind::Ready,
        Reason::NamespaceConflict,
        message.clone(),
    );
    if has_same(&status.conditions, &ready) {
        return Ok(());
    }
    let body = EnvironmentStatus {
        phase: Some(EnvironmentPhase::Admitted),
        observed_generation: env.metadata.generation,
        conditions: vec![ready],
        ..EnvironmentStatus::default()
    };
    let action = format!("update status of environment {}", env.name_any());
    ctx.applier.status(MANAGER, env, &body, action).await?;
    publish(ctx, env, Reason::NamespaceConflict, &message).await;
    Ok(())
}

/// The capacity pool's spec, or the built-in defaults while there is none.
pub(crate) async fn capacity_pool(client: &Client) -> Result<CapacityPoolSpec> {
    let pool = Api::<CapacityPool>::all(client.clone())
        .get_opt(POOL_NAME)
        .await
        .map_err(Error::kube("read the capacity pool"))?;
    pool.map(|p| Ok(p.spec)).unwrap_or_else(default_pool)
}

/// The capacity pool's spec from the watch cache, or the built-in defaults while there is none.
pub(crate) fn pool_spec(pools: &Store<CapacityPool>) -> Result<CapacityPoolSpec> {
    pools
        .get(&ObjectRef::new(POOL_NAME))
        .map(|p| Ok(p.spec.clone()))
        .unwrap_or_else(default_pool)
}

fn default_pool() -> Result<CapacityPoolSpec> {
    serde_json::from_value(json!({"capacity": {}})).map_err(|source| Error::Build {
        what: "default capacity pool".into(),
        source,
    })
}

/// Applies the namespace, then the guard rails inside it (quota, limits, network policies),
/// then what they guard (role bindings, catalog workloads), each group at once. Returns whether
/// the namespace is Active and what the environment's pods and volumes use according to its
/// ResourceQuota, once counted; `None` if the namespace is not the environment's own.
async fn apply_all(
    ctx: &Context,
    env: &Environment,
    desired: Materialized,
    lends: bool,
) -> Result<Option<(bool, Option<Quota>)>> {
    let applier = &ctx.applier;
    let versions = applier.versions();
    let ns = desired.namespace.name_any();
    if !versions.unchanged(&desired.namespace) {
        if !claim_namespace(ctx, env, &desired.namespace).await? {
            return Ok(None);
        }
        let applied = applier.cluster(&desired.namespace).await?;
        versions.wrote(&desired.namespace, &applied);
        versions.note_namespace(&applied);
    }
    let mut tasks: Vec<futures::future::BoxFuture<'_, Result<()>>> = Vec::new();
    let quota = &desired.quota;
    tasks.push(Box::pin(async move {
        if !versions.unchanged(quota) {
            let applied = applier.namespaced(quota).await?;
            versions.wrote(quota, &applied);
            versions.note_quota(&applied);
            versions.note_uncounted_quota(&applied);
        }
        Ok(())
    }));
    tasks.push(Box::pin(applier.child(&desired.limits)));
    tasks.push(Box::pin(applier.child(&desired.other_classes)));
    // The guaranteed and burst quotas, once the pool lends: until then the whole quota holds
    // every pod to the granted quota, and the admission policy refuses burst pods. Once made
    // they are kept (at a zero allowance when the pool stops lending).
    let split = lends
        || versions
            .present::<ResourceQuota>(&ns)
            .iter()
            .any(|name| name == BURST_QUOTA_NAME);
    if split {
        tasks.push(Box::pin(applier.child(&desired.guaranteed)));
        tasks.push(Box::pin(applier.child(&desired.burst)));
    }
    macro_rules! apply_each {
        ($($list:ident),+) => {$(
            for o in &desired.$list {
                tasks.push(Box::pin(applier.child(o)));
            }
        )+};
    }
    apply_each!(policies, accounts);
    // No binding grants anyone the namespace before its quota, limits and policies are in.
    try_join_all(std::mem::take(&mut tasks)).await?;
    apply_each!(bindings, services, deployments, stateful_sets);
    try_join_all(tasks).await?;
    let observed = versions.observed(&ns);
    // A quota the quota controller has not counted yet says nothing about usage: keep the last report.
    Ok(Some((
        observed.active.unwrap_or(false),
        observed.used.map(|used| usage_from(&used, env)),
    )))
}

/// Converts a ResourceQuota's `status.used` into a [`Quota`] keyed like the environment's: only
/// what the environment's own quota caps (not the pool's default object counts).
fn usage_from(
    used: &std::collections::BTreeMap<
        String,
        k8s_openapi::apimachinery::pkg::api::resource::Quantity,
    >,
    env: &Environment,
) -> Quota {
    let mut quota = Quota::default();
    for resource in QuotaResource::ALL {
        if !capped_by_environment(resource, env) {
            continue;
        }
        if let Some(q) = used.get(resource.resource_quota_key()) {
            quota.set(resource, Some(q.0.as_str().into()));
        }
    }
    quota
}

/// The environment controller's part of `env`'s status once its namespace is applied: the
/// phase (Ready once the namespace is Active, Admitted until then), the namespace, usage (`None`:
/// not counted yet, the last report stands) and the Ready condition; `None` if the status
/// already says all that.
fn namespace_report(
    env: &Environment,
    active: bool,
    usage: Option<&Quota>,
) -> Option<EnvironmentStatus> {
    let status = env.status.clone().unwrap_or_default();
    let phase = if active {
        EnvironmentPhase::Ready
    } else {
        EnvironmentPhase::Admitted
    };
    let said = Observed::new(&status.conditions, env.metadata.generation);
    let ready = if active {
        said.holds(
            Kind::Ready,
            Reason::NamespaceReady,
            "namespace, quota, limits, network policies and role bindings are in place",
        )
    } else {
        said.fails(
            Kind::Ready,
            Reason::NamespaceNotActive,
            "waiting for the namespace to become Active",
        )
    };
    let unchanged = status.phase == Some(phase)
        && status.namespace.as_deref() == Some(namespace_name(env).as_str())
        && (usage.is_none() || status.usage.as_ref() == usage)
        && status.observed_generation == env.metadata.generation
        && has_same(&status.conditions, &ready);
    (!unchanged).then(|| EnvironmentStatus {
        phase: Some(phase),
        namespace: Some(namespace_name(env)),
        usage: usage.cloned().or(status.usage),
        observed_generation: env.metadata.generation,
        conditions: vec![ready],
        ..EnvironmentStatus::default()
    })
}

/// Whether `env`'s status already says everything a report would but usage: a report then
/// changes only usage, and is spaced ([`USAGE_SPACING`]).
fn says_all_but_usage(env: &Environment, active: bool) -> bool {
    namespace_report(env, active, None).is_none()
}

/// Writes [`namespace_report`] unless the status says it already, or this process wrote the same
/// report at a version the watch cache has not caught up with; publishes an Event on Ready. A
/// report that only changes usage is held back while the last write is younger than
/// [`USAGE_SPACING`]: returns how long it must still wait.
async fn report(
    env: &Environment,
    ctx: &Context,
    active: bool,
    usage: Option<Quota>,
) -> Result<Option<Duration>> {
    let Some(body) = namespace_report(env, active, usage.as_ref()) else {
        return Ok(None);
    };
    let name = env.name_any();
    if says_all_but_usage(env, active)
        && let Some(wait) = ctx.usage_reports.wait(&name, Instant::now())
    {
        return Ok(Some(wait));
    }
    let phase = body.phase.unwrap_or(EnvironmentPhase::Admitted);
    let ready = &body.conditions[0];
    // What this report says, times aside (a stale view would stamp a new transition time).
    let said = digest(&(
        phase,
        namespace_name(env),
        &usage,
        env.metadata.generation,
        (&ready.status, &ready.reason, &ready.message),
    ));
    if said.is_some_and(|said| ctx.reported.already_said(env, said)) {
        return Ok(None);
    }
    let action = format!("update status of environment {name}");
    let written = ctx.applier.status(MANAGER, env, &body, action).await?;
    ctx.usage_reports.wrote(&name, Instant::now());
    if let Some(said) = said {
        ctx.reported.said(env, said, written.resource_version());
    }
    let was = env.status.as_ref().and_then(|s| s.phase);
    if was != Some(phase) && phase == EnvironmentPhase::Ready {
        publish(
            ctx,
            env,
            Reason::Ready,
            "Namespace and everything in it are in place",
        )
        .await;
    }
    Ok(None)
}

/// Confirms with the API server (the cache may not have caught up yet) that there is no bureau.
async fn bureau_missing(env: &Environment, ctx: &Context) -> Result<bool> {
    let found = Api::<Bureau>::all(ctx.client.clone())
        .get_opt(&env.spec.bureau)
        .await
        .map_err(Error::kube(format!("read bureau {}", env.spec.bureau)))?;
    Ok(found.is_none())
}

/// Reports an environment whose bureau does not exist. Written as admission's own condition, so
/// the bureau controller replaces it once the bureau appears.
async fn report_missing_bureau(env: &Environment, ctx: &Context) -> Result<()> {
    let status = env.status.clone().unwrap_or_default();
    let message = format!(
        "bureau {:?} does not exist; the environment waits for it",
        env.spec.bureau
    );
    let admitted = Observed::new(&status.conditions, env.metadata.generation).fails(
        Kind::Admitted,
        Reason::BureauNotFound,
        message,
    );
    if status.phase == Some(EnvironmentPhase::Pending) && has_same(&status.conditions, &admitted) {
        return Ok(());
    }
    let body = EnvironmentStatus {
        phase: Some(EnvironmentPhase::Pending),
        conditions: vec![admitted],
        ..EnvironmentStatus::default()
    };
    let action = format!(
        "report the missing bureau of environment {}",
        env.name_any()
    );
    ctx.applier
        .status(ADMISSION_MANAGER, env, &body, action)
        .await?;
    Ok(())
}

/// Publishes an Event about `env`; failing to publish one never fails a reconciliation.
async fn publish(ctx: &Context, env: &Environment, reason: Reason, note: &str) {
    let event = Note {
        type_: EventType::Normal,
        reason: reason.as_str(),
        note: note.to_owned(),
        action: reason.as_str(),
    };
    if let Err(e) = ctx.events.publish(&env.object_ref(&()), event).await {
        tracing::debug!(error = %e, "unable to publish an event");
    }
}

async fn cleanup(env: &Environment, ctx: &Context) -> Result<Action> {
    let name = namespace_name(env);
    mark_terminating(env, ctx).await?;
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let Some(ns) = namespaces
        .get_opt(&name)
        .await
        .map_err(Error::kube(format!("read namespace {name}")))?
    else {
        release_quota(env, ctx).await?;
        ctx.applier.versions().forget_namespace(&name);
        ctx.reported.forget(env);
        return Ok(Action::await_change());
    };
    if !owned_by(&ns, env) {
        // A namespace of the same name that this environment never created is left alone.
        return Ok(Action::await_change());
    }
    if ns.metadata.deletion_timestamp.is_none() {
        namespaces
            .delete(&name, &DeleteParams::background())
            .await
            .map_err(Error::kube(format!("delete namespace {name}")))?;
    }
    Err(Error::NamespaceTerminating(name))
}

/// Gives the environment's quota back once its namespace is gone. Written as admission's own
/// fields, so the bureau controller sees the change and admits whoever waits next.
async fn release_quota(env: &Environment, ctx: &Context) -> Result<()> {
    let status = env.status.clone().unwrap_or_default();
    if status.admitted_quota.is_none() {
        return Ok(());
    }
    let admitted = Observed::new(&status.conditions, env.metadata.generation).fails(
        Kind::Admitted,
        Reason::Released,
        "the namespace is gone; the quota is released",
    );
    let body = EnvironmentStatus {
        phase: Some(EnvironmentPhase::Terminating),
        conditions: vec![admitted],
        ..EnvironmentStatus::default()
    };
    let action = format!("release the quota of environment {}", env.name_any());
    ctx.applier
        .status(ADMISSION_MANAGER, env, &body, action)
        .await?;
    Ok(())
}

async fn mark_terminating(env: &Environment, ctx: &Context) -> Result<()> {
    let status = env.status.clone().unwrap_or_default();
    if status.phase == Some(EnvironmentPhase::Terminating) {
        return Ok(());
    }
    let ready = Observed::new(&status.conditions, env.metadata.generation).fails(
        Kind::Ready,
        Reason::Terminating,
        "the environment is being deleted",
    );
    let body = EnvironmentStatus {
        phase: Some(EnvironmentPhase::Terminating),
        namespace: Some(namespace_name(env)),
        conditions: vec![ready],
        ..EnvironmentStatus::default()
    };
    let action = format!("mark environment {} terminating", env.name_any());
    ctx.applier.status(MANAGER, env, &body, action).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use zhengyun_model::crd::EnvironmentSpec;
    use zhengyun_model::names::Purpose;

    use super::*;

    fn env() -> Environment {
        let spec = EnvironmentSpec {
            bureau: "wjw".into(),
            purpose: Purpose::Dev,
            tier: Default::default(),
            quota: Quota::default(),
            services: vec![],
            expires_at: None,
        };
        let mut env = Environment::new("wjw-dev", spec);
        env.metadata.generation = Some(1);
        env
    }

    #[test]
    fn an_active_namespace_makes_the_environment_ready_once() {
        let mut env = env();
        let report = namespace_report(&env, true, None).expect("a first report");
        assert_eq!(report.phase, Some(EnvironmentPhase::Ready));
        assert_eq!(report.namespace.as_deref(), Some("wjw-dev"));
        assert_eq!(report.conditions[0].reason, "NamespaceReady");
        env.status = Some(report);
        assert!(namespace_report(&env, true, None).is_none(), "said already");
    }

    #[test]
    fn a_namespace_not_active_yet_keeps_the_environment_admitted() {
        let report = namespace_report(&env(), false, None).expect("a report");
        assert_eq!(report.phase, Some(EnvironmentPhase::Admitted));
        let ready = &report.conditions[0];
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "NamespaceNotActive")
        );
    }

    #[test]
    fn new_usage_is_reported_and_usage_not_counted_yet_keeps_the_last() {
        let mut env = env();
        let used = Quota::default().with(QuotaResource::Cpu, "1");
        env.status = namespace_report(&env, true, Some(&used));
        assert!(namespace_report(&env, true, None).is_none());
        let more = Quota::default().with(QuotaResource::Cpu, "2");
        let report = namespace_report(&env, true, Some(&more)).expect("changed usage");
        assert_eq!(report.usage, Some(more));
    }

    #[test]
    fn only_a_report_that_changes_nothing_but_usage_is_spaced() {
        let mut env = env();
        assert!(!says_all_but_usage(&env, true), "the first report");
        let used = Quota::default().with(QuotaResource::Cpu, "1");
        env.status = namespace_report(&env, false, Some(&used));
        assert!(says_all_but_usage(&env, false), "usage alone may wait");
        assert!(!says_all_but_usage(&env, true), "Ready goes at once");
        env.metadata.generation = Some(2);
        assert!(
            !says_all_but_usage(&env, false),
            "a new generation goes at once"
        );
    }
}
