//! The lending loop: while the capacity pool lends, it reads what the nodes can give and what
//! pods that are not burst request, works out every admitted environment's burst allowance
//! ([`crate::borrowing`]) and writes the ones that changed to `status.burstAllowance`, as its own
//! field manager. The environment controller turns that figure into the namespace's quotas.
//! When the pool stops lending, every allowance is withdrawn.
//!
//! It runs every [`LENDING_PERIOD`] of a leadership term, and only reads nodes and pods while
//! the pool lends.

use std::time::Duration;

use futures::future::FutureExt as _;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};
use serde::Serialize;
use zhengyun_model::crd::{CapacityPoolSpec, Environment};
use zhengyun_model::quantity::{Quota, Resource, ResourceAmounts, Unit, parse};

use crate::borrowing::{self, Borrower};
use crate::environments::capacity_pool;
use crate::metering::observe::pod_requests;
use crate::runtime::applier::Applier;
use crate::{Error, Result};

/// How often allowances are worked out again.
pub const LENDING_PERIOD: Duration = Duration::from_secs(10);

/// The field manager of `status.burstAllowance`.
pub const LENDING_MANAGER: &str = "zhengyun-lending";

/// Runs the loop until `ending` resolves. The pool is read from the API server on each pass
/// (one small object), so that a cache still empty at the start of a term never reads as a
/// pool that does not lend.
pub(crate) async fn run(
    client: Client,
    envs: Store<Environment>,
    ending: impl std::future::Future<Output = ()> + Send,
) {
    let applier = Applier::new(client.clone(), Default::default());
    let mut ticks = tokio::time::interval(LENDING_PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ending = ending.fuse();
    futures::pin_mut!(ending);
    loop {
        futures::select! {
            () = ending => return,
            _ = ticks.tick().fuse() => {}
        }
        if let Err(error) = lend_once(&client, &applier, &envs).await {
            tracing::warn!(%error, "unable to work out burst allowances; they stay as they are");
        }
    }
}

/// One pass: the allowances of every admitted environment, written where they changed.
async fn lend_once(client: &Client, applier: &Applier, envs: &Store<Environment>) -> Result<()> {
    let pool = capacity_pool(client).await?;
    let envs = envs.state();
    if !pool.borrowing.enabled {
        for env in envs.iter().filter(|e| has_allowance(e)) {
            write(applier, env, None).await?;
        }
        return Ok(());
    }
    let room = lendable_now(client, &pool).await?;
    let admitted: Vec<_> = envs
        .iter()
        .filter(|e| e.metadata.deletion_timestamp.is_none())
        .filter_map(|e| Some((e, granted(e)?)))
        .collect();
    let borrowers: Vec<Borrower> = admitted
        .iter()
        .map(|(env, granted)| Borrower {
            cap: borrowing::cap(granted, &pool.borrowing),
            current: current(env, &pool),
        })
        .collect();
    let new = borrowing::allowances(&borrowers, &room, pool.borrowing.hysteresis_percent);
    for ((env, _), (borrower, allowance)) in admitted.iter().zip(borrowers.iter().zip(&new)) {
        if !has_allowance(env) || borrower.current != *allowance {
            write(applier, env, Some(allowance)).await?;
        }
    }
    Ok(())
}

/// What the pool can lend now, from the nodes and the pods that are not burst.
async fn lendable_now(client: &Client, pool: &CapacityPoolSpec) -> Result<ResourceAmounts> {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(Error::kube("list nodes".to_owned()))?;
    let allocatable = nodes
        .items
        .iter()
        .filter(|n| schedulable(n))
        .fold(ResourceAmounts::ZERO, |sum, n| add(&sum, &allocatable(n)));
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default().fields("status.phase!=Succeeded,status.phase!=Failed"))
        .await
        .map_err(Error::kube("list pods".to_owned()))?;
    let burst = &pool.priority_classes.burst;
    let mut bad = Vec::new();
    let guaranteed = pods
        .items
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.priority_class_name.as_ref()) != Some(burst))
        .fold(ResourceAmounts::ZERO, |sum, pod| {
            let requests = pod_requests(pod, &mut bad);
            let mut amounts = ResourceAmounts::ZERO;
            for resource in crate::resources::BURST_RESOURCES {
                amounts.set(resource, requests.get(resource));
            }
            add(&sum, &amounts)
        });
    if !bad.is_empty() {
        tracing::debug!(?bad, "pod requests that do not parse count as zero");
    }
    Ok(borrowing::lendable(
        &allocatable,
        &guaranteed,
        pool.borrowing.safety_margin_percent,
    ))
}

fn add(a: &ResourceAmounts, b: &ResourceAmounts) -> ResourceAmounts {
    let mut out = *a;
    for (resource, value) in b.iter() {
        out.set(resource, a.get(resource).saturating_add(value));
    }
    out
}

/// Whether pods may be scheduled to `node`: Ready and not cordoned.
fn schedulable(node: &Node) -> bool {
    let cordoned = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    ready && !cordoned
}

/// A node's allocatable CPU and memory (zero for what does not parse).
fn allocatable(node: &Node) -> ResourceAmounts {
    let mut out = ResourceAmounts::ZERO;
    let Some(values) = node.status.as_ref().and_then(|s| s.allocatable.as_ref()) else {
        return out;
    };
    for (key, resource, unit) in [
        ("cpu", Resource::Cpu, Unit::Millicores),
        ("memory", Resource::Memory, Unit::Bytes),
    ] {
        if let Some(value) = values.get(key).and_then(|q| parse(&q.0, unit).ok()) {
            out.set(resource, value);
        }
    }
    out
}

/// The quota admission granted `env`, once admitted.
fn granted(env: &Environment) -> Option<ResourceAmounts> {
    env.status
        .as_ref()?
        .admitted_quota
        .as_ref()?
        .observed_amounts()
        .ok()
}

fn has_allowance(env: &Environment) -> bool {
    env.status
        .as_ref()
        .is_some_and(|s| s.burst_allowance.is_some())
}

fn current(env: &Environment, pool: &CapacityPoolSpec) -> ResourceAmounts {
    borrowing::burst_allowance(env, pool)
}

/// The part of the status this loop owns.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AllowanceStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    burst_allowance: Option<Quota>,
}

/// Writes `env`'s allowance (`None` withdraws it).
async fn write(
    applier: &Applier,
    env: &Environment,
    allowance: Option<&ResourceAmounts>,
) -> Result<()> {
    let status = AllowanceStatus {
        burst_allowance: allowance.map(ResourceAmounts::to_quota),
    };
    let action = format!("write the burst allowance of {}", env.name_any());
    applier
        .status(LENDING_MANAGER, env, &status, action)
        .await
        .map(drop)
}
