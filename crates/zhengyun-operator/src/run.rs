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
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::Config as WatcherConfig;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use zhengyun_model::crd::{Bureau, CapacityPool, Environment};

use crate::leader::{LeaseConfig, LeaseLock};
use crate::metrics::Metrics;
use crate::resources::{Catalog, ENVIRONMENT_LABEL, MANAGED_BY};
use crate::{Error, MANAGER, Result, apply, bureaus, cluster, environments};

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
}

#[derive(Clone)]
struct Health {
    metrics: Arc<Metrics>,
    leading: watch::Receiver<bool>,
}

/// Runs the operator until `shutdown` resolves. Controllers run only while this replica leads;
/// losing the Lease ends the function with an error so that the process restarts cleanly.
pub async fn run(
    client: Client,
    config: OperatorConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
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

    let mut stop = stop_rx.clone();
    tokio::select! {
        _ = leading_rx.wait_for(|l| *l) => {}
        _ = stop.wait_for(|s| *s) => {
            let _ = election.await;
            let _ = server.await;
            return Ok(());
        }
    }
    metrics.set_leader(true);
    tracing::info!("leading; starting controllers");
    install_cluster_objects(&client).await?;

    let mut stop_controllers = stop_rx.clone();
    let mut lost = leading_rx.clone();
    let graceful = async move {
        tokio::select! {
            _ = stop_controllers.wait_for(|s| *s) => {}
            _ = lost.wait_for(|l| !*l) => {}
        }
    };
    let graceful = futures::future::FutureExt::shared(graceful);
    let controllers = run_controllers(client, &config, metrics.clone(), graceful);
    controllers.await;
    metrics.set_leader(false);
    let stopping = *stop_rx.borrow();
    let _ = election.await;
    let _ = server.await;
    if stopping {
        Ok(())
    } else {
        anyhow::bail!("lost the leader Lease; exiting so a restart can compete for it again")
    }
}

fn default_holder() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "zhengyun-operator".into());
    format!("{host}-{}", uuid::Uuid::new_v4().simple())
}

async fn install_cluster_objects(client: &Client) -> Result<()> {
    for role in cluster::tenant_roles().map_err(|source| Error::Build {
        what: "tenant roles".into(),
        source,
    })? {
        apply::cluster(client, &role).await?;
    }
    let pool = environments::capacity_pool(client).await?;
    for class in
        cluster::priority_classes(&pool.priority_classes).map_err(|source| Error::Build {
            what: "priority classes".into(),
            source,
        })?
    {
        apply::cluster(client, &class).await?;
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

fn watch_children<K>(ctrl: Controller<Environment>, client: &Client) -> Controller<Environment>
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    ctrl.watches(Api::<K>::all(client.clone()), managed(), owner_env::<K>)
}

async fn run_controllers(
    client: Client,
    config: &OperatorConfig,
    metrics: Arc<Metrics>,
    graceful: impl std::future::Future<Output = ()> + Clone + Send + Sync + 'static,
) {
    let reporter = Reporter {
        controller: MANAGER.into(),
        instance: None,
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let controller_config = ControllerConfig::default().concurrency(config.concurrency);

    let env_ctrl = Controller::new(
        Api::<Environment>::all(client.clone()),
        WatcherConfig::default(),
    )
    .with_config(controller_config.clone());
    let env_store = env_ctrl.store();
    let mut env_ctrl = env_ctrl.watches(
        Api::<Bureau>::all(client.clone()),
        WatcherConfig::default(),
        move |bureau: Bureau| {
            let name = bureau.name_any();
            env_store
                .state()
                .into_iter()
                .filter(|e| e.spec.bureau == name)
                .map(|e| ObjectRef::from_obj(&*e))
                .collect::<Vec<_>>()
        },
    );
    env_ctrl = watch_children::<Namespace>(env_ctrl, &client);
    env_ctrl = watch_children::<ResourceQuota>(env_ctrl, &client);
    env_ctrl = watch_children::<LimitRange>(env_ctrl, &client);
    env_ctrl = watch_children::<NetworkPolicy>(env_ctrl, &client);
    env_ctrl = watch_children::<RoleBinding>(env_ctrl, &client);
    env_ctrl = watch_children::<Service>(env_ctrl, &client);
    env_ctrl = watch_children::<Deployment>(env_ctrl, &client);
    env_ctrl = watch_children::<StatefulSet>(env_ctrl, &client);
    let env_ctx = Arc::new(environments::Context {
        client: client.clone(),
        metrics: metrics.clone(),
        catalog: Catalog {
            registry: config.catalog_registry.clone(),
        },
        recorder: recorder.clone(),
    });
    let envs = env_ctrl
        .graceful_shutdown_on(graceful.clone())
        .run(environments::reconcile, environments::error_policy, env_ctx)
        .for_each(|_| futures::future::ready(()));

    let bureau_ctrl = Controller::new(Api::<Bureau>::all(client.clone()), WatcherConfig::default())
        .with_config(controller_config);
    let bureau_store = bureau_ctrl.store();
    let all_bureaus = bureau_store.clone();
    let bureau_ctx = Arc::new(bureaus::Context {
        client: client.clone(),
        metrics,
        recorder,
        bureaus: bureau_store,
    });
    let bureaus = bureau_ctrl
        .watches(
            Api::<Environment>::all(client.clone()),
            WatcherConfig::default(),
            |env: Environment| Some(ObjectRef::<Bureau>::new(&env.spec.bureau)),
        )
        .watches(
            Api::<CapacityPool>::all(client.clone()),
            WatcherConfig::default(),
            move |_pool: CapacityPool| {
                all_bureaus
                    .state()
                    .iter()
                    .map(|b| ObjectRef::from_obj(&**b))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(graceful)
        .run(bureaus::reconcile, bureaus::error_policy, bureau_ctx)
        .for_each(|_| futures::future::ready(()));
    futures::future::join(envs, bureaus).await;
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

async fn metrics(
    State(health): State<Health>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        health.metrics.render(),
    )
}
