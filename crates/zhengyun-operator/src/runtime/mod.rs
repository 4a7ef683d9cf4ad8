//! The operator's runtime: the Lease ([`lease`]), health and metrics ([`health`]), shutdown,
//! the watches and their backoff ([`watches`]), every write ([`applier`]) and the wiring of the
//! controllers to their watches ([`controllers`]). The controllers and the metering sampler run
//! only during a leadership term ([`Term`]).

pub(crate) mod applier;
pub(crate) mod by_bureau;
mod controllers;
pub(crate) mod events;
mod health;
pub mod lease;
pub(crate) mod watches;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use tokio::sync::watch;
use zhengyun_metering::Calendar;

use crate::billing_audit;
use crate::metering::{self, MeteringConfig};
use crate::metrics::Metrics;
use crate::{Error, Result, cluster, environments};
use applier::Applier;
use lease::LeaseConfig;

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
    /// Seconds between two passes of the lending loop, which sets burst allowances while the
    /// capacity pool lends (each pass lists nodes and pods).
    #[arg(long, env = "ZHENGYUN_LENDING_PERIOD", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub lending_period: u64,
    #[command(flatten)]
    pub metering: MeteringConfig,
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
    let lease = LeaseConfig {
        namespace: config.lease_namespace.clone(),
        name: config.lease_name.clone(),
        holder: config.lease_holder.clone().unwrap_or_else(default_holder),
        ttl: Duration::from_secs(config.lease_seconds.max(3)),
    };
    let election = tokio::spawn(lease::campaign(
        client.clone(),
        lease,
        leading_tx,
        stop_rx.clone(),
    ));
    let server = tokio::spawn(health::serve(
        config.operator_addr,
        metrics.clone(),
        stop_rx.clone(),
    ));

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
            self.lead(leading_rx, stop_rx).await?;
            if *stop_rx.borrow() {
                return Ok(());
            }
            tracing::warn!(
                "lost the leader Lease; controllers and metering stopped until it is ours again"
            );
        }
    }

    /// One leadership term: installs the cluster-wide objects, then runs the controllers, the
    /// sampler, the billing audit and the budget statuses until the process stops or the Lease
    /// is lost, and waits for all of them to finish.
    async fn lead(
        &self,
        leading_rx: &watch::Receiver<bool>,
        stop_rx: &watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        use futures::FutureExt as _;
        self.metrics.set_leader(true);
        tracing::info!("leading; starting controllers");
        install_cluster_objects(self.client).await?;
        let ending = term_ends(stop_rx.clone(), leading_rx.clone())
            .boxed()
            .shared();
        let graceful = ending.clone().map(drop).shared();
        // One cache of Environments per term: the controllers keep it, the finance metrics read it.
        let (envs, env_events) =
            watches::reflected::<zhengyun_model::crd::Environment>(self.client);
        let sampler = metering::run(
            self.client.clone(),
            self.store.clone(),
            self.config.metering.clone(),
            self.calendar.clone(),
            self.metrics.metering().clone(),
            envs.clone(),
            once_ended(ending),
        );
        let audit = billing_audit::run(self.client.clone(), self.store.clone(), graceful.clone());
        let costs = metering::budgets::write_status(
            self.client.clone(),
            self.metrics.metering().clone(),
            graceful.clone(),
        );
        let shared = controllers::Shared::new(
            self.client.clone(),
            self.store.clone(),
            self.calendar.clone(),
            self.config,
            self.metrics.clone(),
        );
        let controllers = controllers::run(shared, self.config, (envs, env_events), graceful);
        futures::future::join4(controllers, sampler, audit, costs).await;
        self.metrics.set_leader(false);
        self.metrics.metering().stop_leading();
        Ok(())
    }
}

/// Why a term ends, once it does: the process stops, or the Lease is lost.
async fn term_ends(
    mut stop: watch::Receiver<bool>,
    mut leading: watch::Receiver<bool>,
) -> metering::Ending {
    tokio::select! {
        _ = stop.wait_for(|s| *s) => metering::Ending::Shutdown,
        _ = leading.wait_for(|l| !*l) => metering::Ending::LeaseLost,
    }
}

/// A channel that says why the term ended once `ending` has (the sampler writes its last
/// window according to it).
fn once_ended(
    ending: impl Future<Output = metering::Ending> + Send + 'static,
) -> watch::Receiver<Option<metering::Ending>> {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let _ = tx.send(Some(ending.await));
    });
    rx
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
    let applier = Applier::new(client.clone(), Default::default());
    for class in classes {
        // A PriorityClass's value never changes: a pool that gives an existing class another
        // value is reported, and the class keeps the value it has.
        if let Err(e) = applier.cluster(&class).await {
            tracing::warn!(error = %e, "unable to apply a tier PriorityClass; name new classes to change a value");
        }
    }
    Ok(())
}
