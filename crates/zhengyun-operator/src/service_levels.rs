//! Whether an environment is available in a minute, and if not, who caused it (pure: the
//! availability monitor, [`crate::availability`], feeds it what the caches and the API server
//! show).
//!
//! A workload (Deployment or StatefulSet) is **unavailable** when it should run replicas and has
//! fewer available than it should. Its pods say why:
//!
//! - **the platform's** — a pod on a node that is not Ready or is gone (`node-not-ready`), a
//!   pod the platform evicted or terminated (`evicted`: the eviction API, the kubelet, the
//!   taint manager), a pod the scheduler preempted (`preempted`), a pod that cannot be
//!   scheduled outside a rollout (`unschedulable`: the platform promised the quota);
//! - **the tenant's** — a rollout in progress (`rollout`), containers crashing on their own
//!   (`crash`), burst pods reclaimed (`burst-reclaimed`: borrowed capacity is preemptible),
//!   anything else (`other`).
//!
//! A platform cause of any pod wins over the tenant's; a workload scaled to zero is not
//! unavailable.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt as _;

/// Why a workload was unavailable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    /// A pod on a node that is not Ready, or is gone.
    NodeNotReady,
    /// A pod evicted or terminated by the platform.
    Evicted,
    /// A pod preempted by the scheduler.
    Preempted,
    /// A pod that cannot be scheduled.
    Unschedulable,
    /// The control plane could not be reached to measure.
    ControlPlaneUnreachable,
    /// A rollout in progress.
    Rollout,
    /// Containers crashing on their own.
    Crash,
    /// Burst pods reclaimed.
    BurstReclaimed,
    /// Anything else.
    Other,
}

impl Cause {
    /// Whether the platform caused it (it counts against the objective).
    pub fn platform(self) -> bool {
        matches!(
            self,
            Cause::NodeNotReady
                | Cause::Evicted
                | Cause::Preempted
                | Cause::Unschedulable
                | Cause::ControlPlaneUnreachable
        )
    }

    /// The code stored with a slice.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::NodeNotReady => "node-not-ready",
            Cause::Evicted => "evicted",
            Cause::Preempted => "preempted",
            Cause::Unschedulable => "unschedulable",
            Cause::ControlPlaneUnreachable => "control-plane-unreachable",
            Cause::Rollout => "rollout",
            Cause::Crash => "crash",
            Cause::BurstReclaimed => "burst-reclaimed",
            Cause::Other => "other",
        }
    }

    /// The cause a stored code names.
    pub fn parse(code: &str) -> Option<Self> {
        [
            Cause::NodeNotReady,
            Cause::Evicted,
            Cause::Preempted,
            Cause::Unschedulable,
            Cause::ControlPlaneUnreachable,
            Cause::Rollout,
            Cause::Crash,
            Cause::BurstReclaimed,
            Cause::Other,
        ]
        .into_iter()
        .find(|c| c.as_str() == code)
    }
}

/// What availability needs of a Deployment or StatefulSet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// `deployment` or `statefulset`.
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// The replicas it should have.
    pub desired: i32,
    /// The replicas available.
    pub available: i32,
    /// Whether a rollout is in progress (the controller has not caught up with the spec, or
    /// not every replica runs the current template).
    pub rolling: bool,
    /// The labels its pods carry (its selector's `matchLabels`).
    pub selector: BTreeMap<String, String>,
}

impl Workload {
    /// A Deployment as a workload.
    pub fn of_deployment(deployment: &Deployment) -> Self {
        let spec = deployment.spec.as_ref();
        let status = deployment.status.clone().unwrap_or_default();
        let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
        let generation = deployment.metadata.generation.unwrap_or(0);
        Self {
            kind: "deployment",
            name: deployment.name_any(),
            desired,
            available: status.available_replicas.unwrap_or(0),
            rolling: status.observed_generation.unwrap_or(0) < generation
                || status.updated_replicas.unwrap_or(0) < desired,
            selector: spec
                .and_then(|s| s.selector.match_labels.clone())
                .unwrap_or_default(),
        }
    }

    /// A StatefulSet as a workload.
    pub fn of_stateful_set(set: &StatefulSet) -> Self {
        let spec = set.spec.as_ref();
        let status = set.status.clone().unwrap_or_default();
        let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
        let generation = set.metadata.generation.unwrap_or(0);
        let revision_moving =
            status.update_revision.is_some() && status.update_revision != status.current_revision;
        Self {
            kind: "statefulset",
            name: set.name_any(),
            desired,
            available: status.available_replicas.unwrap_or(0),
            rolling: status.observed_generation.unwrap_or(0) < generation || revision_moving,
            selector: spec
                .and_then(|s| s.selector.match_labels.clone())
                .unwrap_or_default(),
        }
    }

    /// Whether it should run replicas and has fewer available.
    pub fn unavailable(&self) -> bool {
        self.desired > 0 && self.available < self.desired
    }

    fn owns(&self, pod: &Pod) -> bool {
        let labels = pod.labels();
        !self.selector.is_empty() && self.selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// Why `workload` is unavailable, from its namespace's `pods`: the most telling cause, and a
/// line for a person. `node_ready` says whether a node is Ready (false for a node that is
/// gone); `burst_class` is the pool's burst PriorityClass.
pub fn cause_of(
    workload: &Workload,
    pods: &[Pod],
    node_ready: impl Fn(&str) -> bool,
    burst_class: &str,
) -> (Cause, String) {
    let mut found: Option<(Cause, String)> = None;
    for pod in pods.iter().filter(|p| workload.owns(p)) {
        let Some(cause) = pod_cause(pod, &node_ready, burst_class) else {
            continue;
        };
        let detail = format!("pod {}: {}", pod.name_any(), cause.as_str());
        found = match found {
            Some((seen, _)) if rank(seen) <= rank(cause) => found,
            _ => Some((cause, detail)),
        };
    }
    let lead = format!(
        "{} {}: {} of {} available",
        workload.kind, workload.name, workload.available, workload.desired
    );
    match found {
        // A pod a rollout cannot place is the rollout's (its new template asks for it).
        Some((Cause::Unschedulable, _)) if workload.rolling => {
            (Cause::Rollout, format!("{lead}; rollout in progress"))
        }
        Some((cause, detail)) if cause.platform() => (cause, format!("{lead}; {detail}")),
        _ if workload.rolling => (Cause::Rollout, format!("{lead}; rollout in progress")),
        Some((cause, detail)) => (cause, format!("{lead}; {detail}")),
        None => (Cause::Other, lead),
    }
}

/// Platform causes first, then the tenant's, the most specific first.
fn rank(cause: Cause) -> u8 {
    match cause {
        Cause::NodeNotReady => 0,
        Cause::Preempted => 1,
        Cause::Evicted => 2,
        Cause::Unschedulable => 3,
        Cause::ControlPlaneUnreachable => 4,
        Cause::BurstReclaimed => 5,
        Cause::Crash => 6,
        Cause::Rollout => 7,
        Cause::Other => 8,
    }
}

/// Why one pod is not serving, or `None` when it is Ready.
fn pod_cause(pod: &Pod, node_ready: &impl Fn(&str) -> bool, burst_class: &str) -> Option<Cause> {
    let status = pod.status.as_ref();
    let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
    let condition = |kind: &str| conditions.iter().find(|c| c.type_ == kind);
    let ready = condition("Ready").is_some_and(|c| c.status == "True");
    if ready && pod.metadata.deletion_timestamp.is_none() {
        return None;
    }
    let spec = pod.spec.as_ref();
    if spec.and_then(|s| s.priority_class_name.as_deref()) == Some(burst_class) {
        return Some(Cause::BurstReclaimed);
    }
    if let Some(target) = condition("DisruptionTarget").filter(|c| c.status == "True") {
        return Some(match target.reason.as_deref() {
            Some("PreemptionByScheduler") => Cause::Preempted,
            Some("DeletionByTaintManager") => Cause::NodeNotReady,
            _ => Cause::Evicted,
        });
    }
    if let Some(node) = spec.and_then(|s| s.node_name.as_deref())
        && !node_ready(node)
    {
        return Some(Cause::NodeNotReady);
    }
    if condition("PodScheduled")
        .is_some_and(|c| c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
    {
        return Some(Cause::Unschedulable);
    }
    let crashing = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or(&[])
        .iter()
        .any(|c| {
            let waiting = c
                .state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref());
            let failed = c
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_some_and(|t| t.exit_code != 0);
            matches!(waiting, Some("CrashLoopBackOff" | "Error")) || failed || c.restart_count > 0
        });
    Some(if crashing { Cause::Crash } else { Cause::Other })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i32, available: i32, updated: i32) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "wjw-prod", "generation": 2},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}}},
            "status": {"observedGeneration": 2, "availableReplicas": available,
                       "updatedReplicas": updated}
        }))
        .expect("deployment")
    }

    fn pod(name: &str, node: &str, ready: bool, extra: serde_json::Value) -> Pod {
        let mut pod = json!({
            "metadata": {"name": name, "namespace": "wjw-prod", "labels": {"app": "web"}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        });
        merge(&mut pod, extra);
        serde_json::from_value(pod).expect("pod")
    }

    fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
        match (into, from) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (slot, value) => *slot = value,
        }
    }

    fn all_ready(_: &str) -> bool {
        true
    }

    #[test]
    fn a_workload_scaled_to_zero_or_with_its_replicas_available_is_available() {
        assert!(!Workload::of_deployment(&deployment(0, 0, 0)).unavailable());
        assert!(!Workload::of_deployment(&deployment(2, 2, 2)).unavailable());
        assert!(Workload::of_deployment(&deployment(2, 1, 2)).unavailable());
    }

    #[test]
    fn a_pod_on_a_node_that_is_not_ready_is_the_platforms_fault() {
        let web = Workload::of_deployment(&deployment(2, 1, 2));
        let pods = [
            pod("web-a", "node-0", true, json!({})),
            pod("web-b", "node-1", false, json!({})),
        ];
        let (cause, detail) = cause_of(&web, &pods, |n| n != "node-1", "zhengyun-burst");
        assert_eq!(cause, Cause::NodeNotReady);
        assert!(cause.platform());
        assert_eq!(
            detail,
            "deployment web: 1 of 2 available; pod web-b: node-not-ready"
        );
    }

    #[test]
    fn preemption_and_eviction_are_the_platforms_and_reclaimed_burst_pods_the_tenants() {
        let web = Workload::of_deployment(&deployment(1, 0, 1));
        let disrupted = |reason: &str| {
            pod(
                "web-a",
                "node-0",
                false,
                json!({"status": {"conditions": [
                    {"type": "Ready", "status": "False"},
                    {"type": "DisruptionTarget", "status": "True", "reason": reason}]}}),
            )
        };
        let cause = |pods: &[Pod]| cause_of(&web, pods, all_ready, "zhengyun-burst").0;
        assert_eq!(
            cause(&[disrupted("PreemptionByScheduler")]),
            Cause::Preempted
        );
        assert_eq!(cause(&[disrupted("EvictionByEvictionAPI")]), Cause::Evicted);
        let burst = pod(
            "web-a",
            "node-0",
            false,
            json!({"spec": {"priorityClassName": "zhengyun-burst"}}),
        );
        assert_eq!(cause(&[burst]), Cause::BurstReclaimed);
        assert!(!Cause::BurstReclaimed.platform());
    }

    #[test]
    fn a_rollout_or_crashing_containers_are_the_tenants() {
        let rolling = Workload::of_deployment(&deployment(2, 1, 1));
        let pods = [pod("web-a", "node-0", false, json!({}))];
        assert_eq!(
            cause_of(&rolling, &pods, all_ready, "zhengyun-burst").0,
            Cause::Rollout
        );
        let steady = Workload::of_deployment(&deployment(1, 0, 1));
        let crashing = pod(
            "web-a",
            "node-0",
            false,
            json!({"status": {"containerStatuses": [{"name": "c", "image": "x", "imageID": "",
                "ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}),
        );
        let (cause, _) = cause_of(&steady, &[crashing], all_ready, "zhengyun-burst");
        assert_eq!(cause, Cause::Crash);
        assert!(!cause.platform());
    }

    #[test]
    fn a_node_failure_during_a_rollout_is_still_the_platforms() {
        let rolling = Workload::of_deployment(&deployment(2, 0, 1));
        let pods = [pod("web-a", "node-1", false, json!({}))];
        assert_eq!(
            cause_of(&rolling, &pods, |n| n != "node-1", "zhengyun-burst").0,
            Cause::NodeNotReady
        );
    }

    #[test]
    fn an_unschedulable_pod_is_the_platforms_and_a_stored_code_reads_back() {
        let web = Workload::of_deployment(&deployment(1, 0, 1));
        let pending = pod(
            "web-a",
            "",
            false,
            json!({"spec": {"nodeName": null}, "status": {"conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}}),
        );
        assert_eq!(
            cause_of(
                &web,
                std::slice::from_ref(&pending),
                all_ready,
                "zhengyun-burst"
            )
            .0,
            Cause::Unschedulable
        );
        // During a rollout, a new pod that cannot be placed is the rollout's.
        let rolling = Workload::of_deployment(&deployment(1, 0, 0));
        assert_eq!(
            cause_of(&rolling, &[pending], all_ready, "zhengyun-burst").0,
            Cause::Rollout
        );
        for cause in [
            Cause::NodeNotReady,
            Cause::Rollout,
            Cause::ControlPlaneUnreachable,
        ] {
            assert_eq!(Cause::parse(cause.as_str()), Some(cause));
        }
    }
}
