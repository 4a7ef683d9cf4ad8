//! The availability monitor: once a minute, whether each admitted environment's workloads are
//! available, and if not who caused it ([`crate::service_levels`]), written to the ledger as
//! one-minute slices with the stream's checkpoint in one transaction.
//!
//! - **Sampling.** The minute starting at `M` is judged by the state at `M + 30 s` (its
//!   middle): Deployments, StatefulSets and Nodes from watch caches, the pods of a namespace
//!   read from the API server only when one of its workloads is unavailable (rare), and the
//!   capacity pool for the service levels, the burst class and the maintenance windows. A
//!   minute inside an announced window is recorded as maintenance and judges nobody.
//! - **The control plane unreachable.** When the pool cannot be read after three tries, every
//!   environment measured the minute before gets a counted `control-plane-unreachable` slice.
//! - **Restarts.** The checkpoint says up to where minutes are recorded. A new term first
//!   reconstructs the minutes it missed (at most [`MAX_RECONSTRUCTED`]) from what Kubernetes
//!   kept: an environment unavailable through the platform's fault now was so since its pods
//!   lost readiness (their `Ready` condition's transition time); one that was when the
//!   checkpoint was written stayed so until its pods became Ready again. An outage that began
//!   and ended wholly while no operator ran is not seen. Minutes are written with the checkpoint
//!   they follow, so none is recorded twice or lost; a minute the ledger refuses (it is away)
//!   is reconstructed the same way once it is back.
//!
//! It runs with the controllers during a leadership term.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt as _, StreamExt as _};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt as _};
use zhengyun_metering::Clock;
use zhengyun_model::crd::{CapacityPoolSpec, Environment, ServiceLevels};
use zhengyun_store::availability::{AVAILABILITY_STREAM, MeasuredMinute, Presence, Slice};

use crate::environments::capacity_pool;
use crate::metrics::Metrics;
use crate::service_levels::{Cause, Workload, cause_of};

/// The most minutes a new term reconstructs; earlier missed minutes stay unmeasured.
pub const MAX_RECONSTRUCTED: i64 = 6 * 60;

const MINUTE: i64 = 60;
/// Where in its minute a minute is judged.
const SAMPLE_OFFSET: i64 = 30;

/// Runs the monitor until `ending` resolves.
pub(crate) async fn run(
    client: Client,
    ledger: zhengyun_store::Store,
    envs: Store<Environment>,
    metrics: Arc<Metrics>,
    clock: Clock,
    ending: impl std::future::Future<Output = ()> + Send,
) {
    let (deployments, deployment_events) = trimmed::<Deployment>(&client, |d| {
        if let Some(spec) = d.spec.as_mut() {
            spec.template = Default::default();
        }
    });
    let (sets, set_events) = trimmed::<StatefulSet>(&client, |s| {
        if let Some(spec) = s.spec.as_mut() {
            spec.template = Default::default();
            spec.volume_claim_templates = None;
        }
    });
    let (nodes, node_events) = trimmed::<Node>(&client, |n| {
        if let Some(status) = n.status.as_mut() {
            status.images = None;
        }
    });
    let mut watches = futures::stream::select_all([deployment_events, set_events, node_events]);
    let ending = ending.fuse();
    futures::pin_mut!(ending);
    let mut monitor = Monitor {
        client,
        ledger,
        envs,
        deployments,
        sets,
        nodes,
        metrics,
        clock,
        checkpoint: None,
        open: HashMap::new(),
        levels: ServiceLevels::default(),
        recorded_levels: None,
    };
    // The caches fill while the watches are polled.
    {
        let (d, s, n) = (
            monitor.deployments.clone(),
            monitor.sets.clone(),
            monitor.nodes.clone(),
        );
        let ready = async move {
            let _ = d.wait_until_ready().await;
            let _ = s.wait_until_ready().await;
            let _ = n.wait_until_ready().await;
        }
        .fuse();
        futures::pin_mut!(ready);
        loop {
            futures::select! {
                () = ending => return,
                () = ready => break,
                _ = watches.next() => {}
            }
        }
    }
    let mut started = false;
    loop {
        if !started {
            started = monitor.resume().await;
        }
        let wait = if started {
            monitor.until_next_sample()
        } else {
            Duration::from_secs(5)
        };
        let sleep = tokio::time::sleep(wait).fuse();
        futures::pin_mut!(sleep);
        loop {
            futures::select! {
                () = ending => return,
                () = sleep => break,
                _ = watches.next() => {}
            }
        }
        if started {
            // A minute the ledger refused is not skipped: resuming reconstructs it.
            started = monitor.sample().await;
        }
    }
}

/// A reflector of every `K`, each object trimmed by `trim` before it is cached.
fn trimmed<K>(
    client: &Client,
    trim: fn(&mut K),
) -> (Store<K>, futures::stream::BoxStream<'static, ()>)
where
    K: crate::runtime::watches::Watched,
{
    let (reader, writer) = reflector::store();
    let events = watcher::watcher(Api::<K>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(move |object| {
            crate::no_managed_fields(object);
            trim(object);
        })
        .reflect(writer)
        .map(|_| ())
        .boxed();
    (reader, events)
}

struct Monitor {
    client: Client,
    ledger: zhengyun_store::Store,
    envs: Store<Environment>,
    deployments: Store<Deployment>,
    sets: Store<StatefulSet>,
    nodes: Store<Node>,
    metrics: Arc<Metrics>,
    clock: Clock,
    /// Up to where minutes are recorded.
    checkpoint: Option<Timestamp>,
    /// The environments measured at the last recorded minute.
    open: HashMap<String, Presence>,
    /// The service levels last read.
    levels: ServiceLevels,
    /// The levels last written to the ledger.
    recorded_levels: Option<ServiceLevels>,
}

/// What one environment looks like now.
struct Judgement {
    cause: Cause,
    detail: String,
    /// Since when its pods have not been Ready (the earliest loss of readiness), if known.
    since: Option<Timestamp>,
}

impl Monitor {
    /// Reads where the stream stands and writes the minutes missed since; false while the
    /// ledger cannot be read.
    async fn resume(&mut self) -> bool {
        let (checkpoint, open) = match (
            self.ledger.checkpoint(AVAILABILITY_STREAM).await,
            self.ledger.open_presence().await,
        ) {
            (Ok(checkpoint), Ok(open)) => (checkpoint, open),
            (Err(error), _) | (_, Err(error)) => {
                tracing::warn!(%error, "unable to read the availability checkpoint; retrying");
                return false;
            }
        };
        self.checkpoint = checkpoint;
        self.open = open
            .into_iter()
            .map(|p| (p.environment.clone(), p))
            .collect();
        if let Some(from) = checkpoint {
            let upto = self.next_minute();
            if from < upto
                && let Err(error) = self.reconstruct(from, upto).await
            {
                tracing::warn!(%error, "unable to reconstruct the minutes missed; retrying");
                return false;
            }
        }
        true
    }

    /// The first minute not yet sampled live: the current one, if its middle is still ahead.
    fn next_minute(&self) -> Timestamp {
        let now = self.clock.now().as_second();
        let minute = now.div_euclid(MINUTE) * MINUTE;
        let minute = if now < minute + SAMPLE_OFFSET {
            minute
        } else {
            minute + MINUTE
        };
        Timestamp::from_second(minute).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn until_next_sample(&self) -> Duration {
        let sample = self.next_minute() + SignedDuration::from_secs(SAMPLE_OFFSET);
        let now = self.clock.now();
        Duration::try_from(sample.duration_since(now)).unwrap_or(Duration::ZERO)
    }

    /// Judges the minute whose middle is now and records it; false when the ledger refused it.
    async fn sample(&mut self) -> bool {
        let now = self.clock.now().as_second();
        let minute_s = (now - SAMPLE_OFFSET).div_euclid(MINUTE) * MINUTE;
        let Ok(minute) = Timestamp::from_second(minute_s) else {
            return true;
        };
        if self.checkpoint.is_some_and(|c| minute < c) {
            return true;
        }
        let mut measured = MeasuredMinute {
            minute,
            ..MeasuredMinute::default()
        };
        match self.read_pool().await {
            None => {
                // Nothing can be read: every environment measured before is counted down.
                for presence in self.open.values() {
                    measured.slices.push(Slice {
                        of: presence.clone(),
                        minute,
                        counted: true,
                        cause: Cause::ControlPlaneUnreachable.as_str().to_owned(),
                        detail: "the API server could not be reached".to_owned(),
                    });
                }
            }
            Some(pool) => {
                self.presence_changes(&mut measured);
                measured.maintenance = self.levels.in_maintenance(minute_s);
                if !measured.maintenance {
                    let judged = self.judge_all(&pool.priority_classes.burst).await;
                    for (environment, judgement) in judged {
                        let Some(presence) = self.open.get(&environment) else {
                            continue;
                        };
                        measured.slices.push(Slice {
                            of: presence.clone(),
                            minute,
                            counted: judgement.cause.platform(),
                            cause: judgement.cause.as_str().to_owned(),
                            detail: judgement.detail,
                        });
                    }
                }
            }
        }
        let to = minute + SignedDuration::from_secs(MINUTE);
        self.write(vec![measured], to).await
    }

    /// Reads the capacity pool (three tries), remembering its service levels; `None` when
    /// the API server cannot be reached.
    async fn read_pool(&mut self) -> Option<CapacityPoolSpec> {
        for attempt in 0..3 {
            match capacity_pool(&self.client).await {
                Ok(pool) => {
                    self.levels = pool.service_levels.clone();
                    return Some(pool);
                }
                Err(error) => {
                    tracing::warn!(%error, attempt, "unable to read the capacity pool");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
        None
    }

    /// The admitted environments now, by name.
    fn admitted(&self) -> BTreeMap<String, Presence> {
        self.envs
            .state()
            .iter()
            .filter(|e| e.metadata.deletion_timestamp.is_none())
            .filter(|e| {
                e.status
                    .as_ref()
                    .and_then(|s| s.namespace.as_ref())
                    .is_some()
            })
            .map(|e| {
                let name = e.name_any();
                let presence = Presence {
                    environment: name.clone(),
                    bureau: e.spec.bureau.clone(),
                    tier: e.spec.tier,
                };
                (name, presence)
            })
            .collect()
    }

    /// Opens and closes presences from this minute on, as the environments now stand.
    fn presence_changes(&mut self, measured: &mut MeasuredMinute) {
        let admitted = self.admitted();
        let gone: Vec<String> = self
            .open
            .iter()
            .filter(|(name, p)| admitted.get(*name) != Some(*p))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            self.open.remove(&name);
            measured.closed.push(name);
        }
        for (name, presence) in admitted {
            if let std::collections::hash_map::Entry::Vacant(slot) = self.open.entry(name) {
                measured.opened.push(presence.clone());
                slot.insert(presence);
            }
        }
    }

    /// Every admitted environment with an unavailable workload, judged.
    async fn judge_all(&self, burst_class: &str) -> BTreeMap<String, Judgement> {
        let mut workloads: HashMap<String, Vec<Workload>> = HashMap::new();
        for d in self.deployments.state() {
            let w = Workload::of_deployment(&d);
            if w.unavailable() {
                workloads
                    .entry(d.namespace().unwrap_or_default())
                    .or_default()
                    .push(w);
            }
        }
        for s in self.sets.state() {
            let w = Workload::of_stateful_set(&s);
            if w.unavailable() {
                workloads
                    .entry(s.namespace().unwrap_or_default())
                    .or_default()
                    .push(w);
            }
        }
        let mut judged = BTreeMap::new();
        for (namespace, workloads) in workloads {
            if !self.open.contains_key(&namespace) {
                continue;
            }
            judged.insert(
                namespace.clone(),
                self.judge(&namespace, &workloads, burst_class).await,
            );
        }
        judged
    }

    /// Why the `workloads` of `namespace` are unavailable: the platform's cause if any has one.
    async fn judge(&self, namespace: &str, workloads: &[Workload], burst_class: &str) -> Judgement {
        let pods = match Api::<Pod>::namespaced(self.client.clone(), namespace)
            .list(&ListParams::default())
            .await
        {
            Ok(list) => list.items,
            Err(error) => {
                return Judgement {
                    cause: Cause::ControlPlaneUnreachable,
                    detail: format!("the pods of {namespace} could not be read: {error}"),
                    since: None,
                };
            }
        };
        let node_ready = |name: &str| {
            self.nodes
                .get(&reflector::ObjectRef::new(name))
                .is_some_and(|node| node_is_ready(&node))
        };
        let mut best: Option<(Cause, String)> = None;
        for workload in workloads {
            let (cause, detail) = cause_of(workload, &pods, node_ready, burst_class);
            let better = match &best {
                None => true,
                Some((seen, _)) => cause.platform() && !seen.platform(),
            };
            if better {
                best = Some((cause, detail));
            }
        }
        let (cause, detail) = best.unwrap_or((Cause::Other, String::new()));
        Judgement {
            cause,
            detail,
            since: not_ready_since(&pods),
        }
    }

    /// Writes the minutes missed in `[from, upto)` (the last [`MAX_RECONSTRUCTED`] of them),
    /// reconstructed from what Kubernetes shows now.
    async fn reconstruct(&mut self, from: Timestamp, upto: Timestamp) -> anyhow::Result<()> {
        let earliest = upto - SignedDuration::from_mins(MAX_RECONSTRUCTED);
        let first = from.max(earliest);
        let Some(pool) = self.read_pool().await else {
            anyhow::bail!("the capacity pool cannot be read");
        };
        // Who was down through the platform's fault in the last minute recorded.
        let last = first - SignedDuration::from_secs(MINUTE);
        let range = zhengyun_metering::TimeRange::new(last, first)?;
        let before: HashMap<String, Slice> = self
            .ledger
            .availability_slices(range, None, None, usize::MAX >> 1)
            .await?
            .into_iter()
            .filter(|s| s.counted)
            .map(|s| (s.of.environment.clone(), s))
            .collect();
        let mut changes = MeasuredMinute::default();
        self.presence_changes(&mut changes);
        let now = self.judge_all(&pool.priority_classes.burst).await;
        let mut minutes = Vec::new();
        let mut at = first;
        while at < upto {
            let mut measured = MeasuredMinute {
                minute: at,
                maintenance: self.levels.in_maintenance(at.as_second()),
                ..MeasuredMinute::default()
            };
            if at == first {
                measured.opened = std::mem::take(&mut changes.opened);
                measured.closed = std::mem::take(&mut changes.closed);
            }
            let middle = at + SignedDuration::from_secs(SAMPLE_OFFSET);
            if !measured.maintenance {
                for (environment, presence) in &self.open {
                    let down_now = now.get(environment).filter(|j| j.cause.platform());
                    let slice = |cause: &str, detail: &str| Slice {
                        of: presence.clone(),
                        minute: at,
                        counted: true,
                        cause: cause.to_owned(),
                        detail: format!("{detail} (reconstructed after a restart)"),
                    };
                    match (before.get(environment), down_now) {
                        (Some(_), Some(judged)) => {
                            measured
                                .slices
                                .push(slice(judged.cause.as_str(), &judged.detail));
                        }
                        (None, Some(judged)) if judged.since.is_some_and(|s| s <= middle) => {
                            measured
                                .slices
                                .push(slice(judged.cause.as_str(), &judged.detail));
                        }
                        (Some(was), None) => {
                            let recovered = self.ready_since(environment).await;
                            if recovered.is_some_and(|r| middle < r) {
                                measured.slices.push(slice(&was.cause, &was.detail));
                            }
                        }
                        _ => {}
                    }
                }
            }
            minutes.push(measured);
            at += SignedDuration::from_secs(MINUTE);
        }
        tracing::info!(
            from = %first,
            to = %upto,
            minutes = minutes.len(),
            "reconstructed the availability minutes missed"
        );
        // Minutes beyond reconstruction stay unmeasured: the checkpoint moves past them first.
        let written = (first == from || self.write(Vec::new(), first).await)
            && self.write(minutes, upto).await;
        anyhow::ensure!(written, "the ledger refused the reconstructed minutes");
        Ok(())
    }

    /// When the pods of `namespace` last became Ready (the latest readiness transition).
    async fn ready_since(&self, namespace: &str) -> Option<Timestamp> {
        let pods = Api::<Pod>::namespaced(self.client.clone(), namespace)
            .list(&ListParams::default())
            .await
            .ok()?;
        pods.items
            .iter()
            .filter_map(|p| ready_transition(p, "True"))
            .max()
    }

    /// Writes `minutes` and moves the checkpoint to `to`; false when the ledger refused them
    /// (it is away, or another writer moved the checkpoint), and the caller resumes from the
    /// checkpoint the ledger holds, reconstructing what was refused.
    async fn write(&mut self, minutes: Vec<MeasuredMinute>, to: Timestamp) -> bool {
        let written = self
            .ledger
            .record_availability(self.checkpoint, &minutes, to)
            .await;
        match written {
            Ok(()) => {
                self.checkpoint = Some(to);
                self.count(&minutes);
                if let Some(first) = minutes.first()
                    && self.recorded_levels.as_ref() != Some(&self.levels)
                {
                    match self
                        .ledger
                        .record_service_levels(first.minute, &self.levels)
                        .await
                    {
                        Ok(()) => self.recorded_levels = Some(self.levels.clone()),
                        Err(error) => tracing::warn!(%error, "unable to record the service levels"),
                    }
                }
                true
            }
            Err(error) => {
                tracing::warn!(%error, "unable to record availability; resuming from the ledger's checkpoint");
                false
            }
        }
    }

    fn count(&self, minutes: &[MeasuredMinute]) {
        for minute in minutes.iter().filter(|m| !m.maintenance) {
            let bad: HashSet<&str> = minute
                .slices
                .iter()
                .filter(|s| s.counted)
                .map(|s| s.of.environment.as_str())
                .collect();
            for presence in self.open.values() {
                self.metrics
                    .availability_minute(presence, bad.contains(presence.environment.as_str()));
            }
        }
        for (tier, level) in [
            (zhengyun_model::names::Tier::Gold, &self.levels.gold),
            (zhengyun_model::names::Tier::Silver, &self.levels.silver),
            (zhengyun_model::names::Tier::Bronze, &self.levels.bronze),
        ] {
            if let Some(objective) = level.objective_thousandths() {
                self.metrics.availability_objective(tier, objective);
            }
        }
    }
}

fn node_is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// When a pod's `Ready` condition last turned `status`.
fn ready_transition(pod: &Pod, status: &str) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == status)?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

/// The earliest loss of readiness among `pods` that are not Ready.
fn not_ready_since(pods: &[Pod]) -> Option<Timestamp> {
    pods.iter()
        .filter_map(|p| ready_transition(p, "False"))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn readiness_transitions_are_read_from_the_pods_ready_condition() {
        let pod = |status: &str, at: &str| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": "p"},
                "status": {"conditions": [{"type": "Ready", "status": status, "lastTransitionTime": at}]}
            }))
            .expect("pod")
        };
        let pods = [
            pod("False", "2026-12-05T10:02:00Z"),
            pod("False", "2026-12-05T10:01:00Z"),
            pod("True", "2026-12-05T09:00:00Z"),
        ];
        assert_eq!(
            not_ready_since(&pods),
            Some("2026-12-05T10:01:00Z".parse().expect("ts"))
        );
        assert_eq!(
            ready_transition(&pods[2], "True"),
            Some("2026-12-05T09:00:00Z".parse().expect("ts"))
        );
    }
}
