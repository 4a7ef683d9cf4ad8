//! The lending loop: while the capacity pool lends, it reads what the nodes can give and what
//! pods that are not burst request, works out every admitted environment's burst allowance
//! ([`crate::borrowing`]) and writes the ones that changed to `status.burstAllowance`, as its own
//! field manager. The environment controller turns that figure into the namespace's quotas.
//! When the pool stops lending, every allowance is withdrawn.
//!
//! When an allowance falls below what the environment's burst pods hold, the newest of them are
//! deleted, each with the pool's reclaim grace period, until the rest fit
//! ([`borrowing::reclaim`]); each is announced by a `BurstReclaimed` Event on its Environment
//! and counted in `zhengyun_operator_burst_reclaims_total`. The scheduler takes room back
//! from burst pods on its own too (they have the lowest priority and never preempt).
//!
//! It runs every `--lending-period` seconds (10 by default) of a leadership term, and only reads nodes and pods while
//! the pool lends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::FutureExt as _;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams};
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource as _, ResourceExt};
use serde::Serialize;
use zhengyun_model::crd::{CapacityPoolSpec, Environment};
use zhengyun_model::quantity::{Quantity, Quota, Resource, ResourceAmounts, Unit, parse};

use crate::borrowing::{self, Borrower, BurstPod};
use crate::environments::{capacity_pool, granted};
use crate::metering::observe::pod_requests;
use crate::metrics::Metrics;
use crate::runtime::applier::Applier;
use crate::runtime::events::{EventType, Note, Publisher};
use crate::{Error, Result};

/// The field manager of `status.burstAllowance`.
pub const LENDING_MANAGER: &str = "zhengyun-lending";

/// How many pods one page of the lending loop's list of every pod holds.
const PODS_PAGE: u32 = 500;

/// Runs the loop until `ending` resolves. The pool is read from the API server on each pass
/// (one small object), so that a cache still empty at the start of a term never reads as a
/// pool that does not lend.
pub(crate) async fn run(
    period: Duration,
    client: Client,
    ledger: zhengyun_store::Store,
    envs: Store<Environment>,
    events: Publisher,
    metrics: Arc<Metrics>,
    ending: impl std::future::Future<Output = ()> + Send,
) {
    let lender = Lender {
        ledger,
        client: client.clone(),
        applier: Applier::new(client, Default::default()),
        events,
        metrics,
    };
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ending = ending.fuse();
    futures::pin_mut!(ending);
    loop {
        futures::select! {
            () = ending => return,
            _ = ticks.tick().fuse() => {}
        }
        if let Err(error) = lender.lend_once(&envs).await {
            tracing::warn!(%error, "unable to work out burst allowances; they stay as they are");
        }
    }
}

/// What one pass needs.
struct Lender {
    /// Where reclaims are recorded.
    ledger: zhengyun_store::Store,
    client: Client,
    applier: Applier,
    events: Publisher,
    metrics: Arc<Metrics>,
}

/// What the cluster holds now, as lending sees it.
struct Holdings {
    /// What the pool can lend.
    lendable: ResourceAmounts,
    /// The burst pods not being deleted, by namespace.
    burst: HashMap<String, Vec<BurstPod>>,
    /// The bureau of the oldest pod that is not burst and waits to be scheduled: whose room
    /// a reclaim gives back.
    waiting: Option<String>,
    /// What the pods that are not burst request, by namespace.
    guaranteed: HashMap<String, ResourceAmounts>,
    /// The most one pod requests of each resource, by namespace ([`Borrower::pod`]).
    largest: HashMap<String, ResourceAmounts>,
}

impl Lender {
    /// One pass: the allowances of every admitted environment, written where they changed, and
    /// burst pods beyond a lowered allowance reclaimed.
    async fn lend_once(&self, envs: &Store<Environment>) -> Result<()> {
        self.name_beneficiaries().await;
        let pool = capacity_pool(&self.client).await?;
        let envs = envs.state();
        // One environment's failed write does not stop the others': the first failure is
        // reported once the pass is done.
        let mut failed: Result<()> = Ok(());
        if !pool.borrowing.enabled {
            for env in envs.iter().filter(|e| has_allowance(e)) {
                let written = write(&self.applier, env, None).await;
                failed = failed.and(written);
            }
            return failed;
        }
        let holdings = self.holdings(&pool).await?;
        let admitted: Vec<_> = envs
            .iter()
            .filter(|e| e.metadata.deletion_timestamp.is_none())
            .filter_map(|e| Some((e, granted(e)?)))
            .collect();
        let burst_pods = |env: &Environment| {
            holdings
                .burst
                .get(&env.name_any())
                .map_or(&[][..], Vec::as_slice)
        };
        let borrowers: Vec<Borrower> = admitted
            .iter()
            .map(|(env, granted)| Borrower {
                at_quota: borrowing::at_quota(
                    holdings
                        .guaranteed
                        .get(&env.name_any())
                        .unwrap_or(&ResourceAmounts::ZERO),
                    granted,
                ),
                cap: borrowing::cap(granted, &pool.borrowing),
                current: borrowing::burst_allowance(env, &pool),
                used: burst_pods(env)
                    .iter()
                    .fold(ResourceAmounts::ZERO, |sum, p| {
                        sum.saturating_add(&p.requests)
                    }),
                pod: holdings
                    .largest
                    .get(&env.name_any())
                    .copied()
                    .unwrap_or(ResourceAmounts::ZERO),
            })
            .collect();
        let new = borrowing::allowances(
            &borrowers,
            &holdings.lendable,
            pool.borrowing.hysteresis_percent,
        );
        for ((env, _), (borrower, allowance)) in admitted.iter().zip(borrowers.iter().zip(&new)) {
            let pods = burst_pods(env);
            let reclaimed = borrowing::reclaim(pods, allowance);
            let usage = pods
                .iter()
                .filter(|p| !reclaimed.iter().any(|r| r.name == p.name))
                .fold(ResourceAmounts::ZERO, |sum, p| {
                    sum.saturating_add(&p.requests)
                });
            let figures = Figures {
                allowance: *allowance,
                usage: borrowing::burst_part(&usage),
            };
            if !has_allowance(env)
                || borrower.current != *allowance
                || written_usage(env) != Some(figures.usage)
            {
                let written = write(&self.applier, env, Some(&figures)).await;
                failed = failed.and(written);
            }
            for pod in reclaimed {
                let evicted = self
                    .evict(env, pod, allowance, &pool, holdings.waiting.as_deref())
                    .await;
                failed = failed.and(evicted);
            }
        }
        failed
    }

    /// Deletes a burst pod beyond its environment's allowance, with the grace period, and
    /// records the reclaim (its end is recorded when the metering sampler sees the pod gone).
    async fn evict(
        &self,
        env: &Environment,
        pod: &BurstPod,
        allowance: &ResourceAmounts,
        pool: &CapacityPoolSpec,
        beneficiary: Option<&str>,
    ) -> Result<()> {
        let ns = env.name_any();
        let grace = pool.borrowing.reclaim_grace_seconds;
        let params = DeleteParams {
            grace_period_seconds: Some(grace),
            ..DeleteParams::default()
        };
        match Api::<Pod>::namespaced(self.client.clone(), &ns)
            .delete(&pod.name, &params)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
            Err(e) => {
                return Err(Error::kube(format!("reclaim burst pod {ns}/{}", pod.name))(
                    e,
                ));
            }
        }
        self.metrics.burst_reclaimed();
        let reclaim = zhengyun_store::Reclaim {
            pod_uid: pod.uid.clone(),
            namespace: ns.clone(),
            pod: pod.name.clone(),
            bureau: env.spec.bureau.clone(),
            cause: zhengyun_store::ReclaimCause::Allowance,
            beneficiary: beneficiary.map(str::to_owned),
            started: jiff::Timestamp::now(),
            freed: None,
        };
        if let Err(error) = self.ledger.record_reclaim(&reclaim).await {
            tracing::warn!(%error, pod = %pod.name, "unable to record a reclaim");
        }
        let note = format!(
            "burst pod {} reclaimed (grace {grace} s): the allowance fell to {} CPU and {} memory \
             as the pool's lendable capacity shrank",
            pod.name,
            Resource::Cpu.unit().format(allowance.get(Resource::Cpu)),
            Resource::Memory
                .unit()
                .format(allowance.get(Resource::Memory)),
        );
        tracing::info!(environment = %ns, pod = %pod.name, "{note}");
        let event = Note {
            type_: EventType::Normal,
            reason: "BurstReclaimed",
            action: "Reclaim",
            note,
        };
        if let Err(e) = self.events.publish(&env.object_ref(&()), event).await {
            tracing::warn!(error = %e, environment = %ns, "unable to publish a BurstReclaimed Event");
        }
        Ok(())
    }

    /// What the pool can lend now, from the nodes and the pods that are not burst, and the
    /// burst pods by namespace.
    async fn holdings(&self, pool: &CapacityPoolSpec) -> Result<Holdings> {
        let nodes = Api::<Node>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .map_err(Error::kube("list nodes".to_owned()))?;
        let allocatable = nodes
            .items
            .iter()
            .filter(|n| schedulable(n))
            .fold(ResourceAmounts::ZERO, |sum, n| {
                sum.saturating_add(&allocatable(n))
            });
        // Every pod of the cluster, a page at a time: what is kept of each is its figures, so
        // that a pass does not hold the cluster's pods (tens of thousands) in memory at once.
        let pods = Api::<Pod>::all(self.client.clone());
        let mut params = ListParams::default()
            .fields("status.phase!=Succeeded,status.phase!=Failed")
            .limit(PODS_PAGE);
        let mut tally = Tally::new(&pool.priority_classes.burst);
        loop {
            let page = pods
                .list(&params)
                .await
                .map_err(Error::kube("list pods".to_owned()))?;
            page.items.iter().for_each(|pod| tally.count(pod));
            match page.metadata.continue_.filter(|token| !token.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        Ok(tally.holdings(&allocatable, pool.borrowing.safety_margin_percent))
    }

    /// The namespace of the pod a `Preempted` Event names in its message ("Preempted by pod
    /// <uid> on node <node>"), found among the pods bound to that node; `None` until it is
    /// bound there.
    async fn preemptor_namespace(
        &self,
        event: &k8s_openapi::api::core::v1::Event,
    ) -> Option<String> {
        let message = event.message.as_deref()?;
        let rest = message.strip_prefix("Preempted by pod ")?;
        let (uid, node) = rest.split_once(" on node ")?;
        let pods = Api::<Pod>::all(self.client.clone())
            .list(&ListParams::default().fields(&format!("spec.nodeName={}", node.trim())))
            .await
            .ok()?;
        pods.items
            .into_iter()
            .find(|p| p.metadata.uid.as_deref() == Some(uid.trim()))
            .and_then(|p| p.metadata.namespace)
    }

    /// Names the bureau that got the room back for each recent preemption that has none yet:
    /// the namespace of the pod that preempted it, from the scheduler's `Preempted` Event (its
    /// related object, or the pod its message names).
    async fn name_beneficiaries(&self) {
        let since = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(10);
        let waiting = match self.ledger.reclaims_awaiting_beneficiary(since).await {
            Ok(waiting) if !waiting.is_empty() => waiting,
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(%error, "unable to read reclaims");
                return;
            }
        };
        let events = match Api::<k8s_openapi::api::core::v1::Event>::all(self.client.clone())
            .list(&ListParams::default().fields("reason=Preempted"))
            .await
        {
            Ok(events) => events.items,
            Err(error) => {
                tracing::warn!(%error, "unable to list the scheduler's Preempted Events");
                return;
            }
        };
        for mut reclaim in waiting {
            let Some(event) = events
                .iter()
                .find(|e| e.involved_object.uid.as_deref() == Some(reclaim.pod_uid.as_str()))
            else {
                continue;
            };
            let namespace = match event.related.as_ref().and_then(|r| r.namespace.clone()) {
                Some(namespace) => Some(namespace),
                None => self.preemptor_namespace(event).await,
            };
            let beneficiary = namespace.and_then(|ns| {
                zhengyun_model::names::parse_environment_name(&ns).map(|(b, _)| b.to_owned())
            });
            if beneficiary.is_some() {
                reclaim.beneficiary = beneficiary;
                if let Err(error) = self.ledger.record_reclaim(&reclaim).await {
                    tracing::warn!(%error, pod = %reclaim.pod, "unable to name a reclaim's beneficiary");
                }
            }
        }
    }
}

/// What lending keeps of the pods it counts, one at a time.
struct Tally<'a> {
    /// The burst PriorityClass.
    class: &'a str,
    /// What pods that are not burst request, in all.
    guaranteed: ResourceAmounts,
    /// The same, by namespace.
    by_namespace: HashMap<String, ResourceAmounts>,
    /// The burst pods not being deleted, by namespace.
    burst: HashMap<String, Vec<BurstPod>>,
    /// The most one pod requests of each resource, by namespace.
    largest: HashMap<String, ResourceAmounts>,
    /// The oldest pod that is not burst and waits to be scheduled: when it was created, and
    /// its bureau.
    waiting: Option<(i64, String)>,
    /// Requests that did not parse (counted as zero).
    bad: Vec<String>,
}

impl<'a> Tally<'a> {
    fn new(class: &'a str) -> Self {
        Self {
            class,
            guaranteed: ResourceAmounts::ZERO,
            by_namespace: HashMap::new(),
            burst: HashMap::new(),
            largest: HashMap::new(),
            waiting: None,
            bad: Vec::new(),
        }
    }

    /// Counts `pod`.
    fn count(&mut self, pod: &Pod) {
        let requests = pod_requests(pod, &mut self.bad);
        let mut amounts = ResourceAmounts::ZERO;
        for resource in crate::resources::BURST_RESOURCES {
            amounts.set(resource, requests.get(resource));
        }
        let is_burst = pod
            .spec
            .as_ref()
            .and_then(|s| s.priority_class_name.as_deref())
            == Some(self.class);
        let created = pod
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(0, |t| t.0.as_second());
        let largest = self
            .largest
            .entry(pod.namespace().unwrap_or_default())
            .or_default();
        for (resource, amount) in amounts.iter() {
            largest.set(resource, largest.get(resource).max(amount));
        }
        if is_burst {
            if pod.metadata.deletion_timestamp.is_none() {
                self.burst
                    .entry(pod.namespace().unwrap_or_default())
                    .or_default()
                    .push(BurstPod {
                        name: pod.name_any(),
                        uid: pod.uid().unwrap_or_default(),
                        created,
                        requests: amounts,
                    });
            }
            return;
        }
        self.guaranteed = self.guaranteed.saturating_add(&amounts);
        let held = self
            .by_namespace
            .entry(pod.namespace().unwrap_or_default())
            .or_default();
        *held = held.saturating_add(&amounts);
        let unscheduled = pod.spec.as_ref().is_none_or(|s| s.node_name.is_none());
        let bureau = pod
            .namespace()
            .as_deref()
            .and_then(zhengyun_model::names::parse_environment_name)
            .map(|(b, _)| b.to_owned());
        if let Some(bureau) = bureau.filter(|_| unscheduled)
            && self.waiting.as_ref().is_none_or(|(at, _)| created < *at)
        {
            self.waiting = Some((created, bureau));
        }
    }

    /// What the counted pods leave the pool to lend, on nodes of `allocatable` less
    /// `margin_percent` of it.
    fn holdings(self, allocatable: &ResourceAmounts, margin_percent: u32) -> Holdings {
        if !self.bad.is_empty() {
            tracing::debug!(bad = ?self.bad, "pod requests that do not parse count as zero");
        }
        Holdings {
            lendable: borrowing::lendable(allocatable, &self.guaranteed, margin_percent),
            burst: self.burst,
            waiting: self.waiting.map(|(_, bureau)| bureau),
            guaranteed: self.by_namespace,
            largest: self.largest,
        }
    }
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

fn has_allowance(env: &Environment) -> bool {
    env.status
        .as_ref()
        .is_some_and(|s| s.burst_allowance.is_some())
}

/// What the loop writes of an environment.
struct Figures {
    allowance: ResourceAmounts,
    usage: ResourceAmounts,
}

/// The burst usage last written to `env`'s status.
fn written_usage(env: &Environment) -> Option<ResourceAmounts> {
    let usage = env.status.as_ref()?.burst_usage.as_ref()?;
    usage
        .observed_amounts()
        .ok()
        .map(|a| borrowing::burst_part(&a))
}

/// CPU and memory of `amounts` as a quota (nothing else: burst figures speak of no other
/// resource).
fn burst_quota(amounts: &ResourceAmounts) -> Quota {
    let mut quota = Quota::default();
    for resource in crate::resources::BURST_RESOURCES {
        quota.set(
            resource,
            Some(Quantity::from_base_units(
                amounts.get(resource),
                resource.unit(),
            )),
        );
    }
    quota
}

/// The part of the status this loop owns.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LendingStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    burst_allowance: Option<Quota>,
    #[serde(skip_serializing_if = "Option::is_none")]
    burst_usage: Option<Quota>,
}

/// Writes `env`'s allowance and burst usage (`None` withdraws both).
async fn write(applier: &Applier, env: &Environment, figures: Option<&Figures>) -> Result<()> {
    let status = LendingStatus {
        burst_allowance: figures.map(|f| burst_quota(&f.allowance)),
        burst_usage: figures.map(|f| burst_quota(&f.usage)),
    };
    let action = format!("write the burst allowance of {}", env.name_any());
    applier
        .status(LENDING_MANAGER, env, &status, action)
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(namespace: &str, name: &str, class: &str, created: &str, node: Option<&str>) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}"),
                         "creationTimestamp": created},
            "spec": {"priorityClassName": class, "nodeName": node,
                     "containers": [{"name": "app",
                                     "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}}]},
        }))
        .expect("pod")
    }

    fn cpu(amounts: &ResourceAmounts) -> u64 {
        amounts.get(Resource::Cpu)
    }

    #[test]
    fn lending_counts_guaranteed_pods_against_the_nodes_and_lists_live_burst_pods() {
        let mut tally = Tally::new("zhengyun-burst");
        let at = "2026-12-01T08:00:00Z";
        tally.count(&pod("wjw-dev", "web-1", "zhengyun-silver", at, Some("n1")));
        tally.count(&pod(
            "wjw-dev",
            "report-1",
            "zhengyun-burst",
            at,
            Some("n1"),
        ));
        let mut leaving = pod("wjw-dev", "report-2", "zhengyun-burst", at, Some("n2"));
        leaving.metadata.deletion_timestamp = leaving.metadata.creation_timestamp.clone();
        tally.count(&leaving);
        tally.count(&pod(
            "rsj-prod",
            "api-1",
            "zhengyun-gold",
            "2026-12-01T09:00:00Z",
            None,
        ));
        tally.count(&pod(
            "rsj-prod",
            "api-0",
            "zhengyun-gold",
            "2026-12-01T07:00:00Z",
            None,
        ));
        let mut allocatable = ResourceAmounts::ZERO;
        allocatable.set(Resource::Cpu, 10_000);
        allocatable.set(Resource::Memory, 64 << 30);
        let holdings = tally.holdings(&allocatable, 10);
        // 10 cores less 10 % less three guaranteed pods of 500m.
        assert_eq!(cpu(&holdings.lendable), 7_500);
        assert_eq!(cpu(&holdings.guaranteed["wjw-dev"]), 500);
        assert_eq!(cpu(&holdings.guaranteed["rsj-prod"]), 1_000);
        let burst: Vec<&str> = holdings.burst["wjw-dev"]
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(
            burst,
            ["report-1"],
            "a burst pod being deleted is not listed"
        );
        // The oldest unscheduled guaranteed pod names the bureau that waits for room.
        assert_eq!(holdings.waiting.as_deref(), Some("rsj"));
    }
}
