//! What the sampler reads from Kubernetes objects: the amounts an environment reserves, a pod
//! consumes and a volume claim consumes, and since when. Pure functions of one object each.
//!
//! - **Reserved**: the environment's admitted quota (`status.admittedQuota`) of CPU, memory,
//!   storage and GPUs, from `status.admittedAt`.
//! - **Consumed by a pod**: its requests, counted like Kubernetes' `resource.PodRequests` (what
//!   the scheduler and ResourceQuota count) — the larger of (Σ app containers + Σ restartable
//!   init containers) and each other init container plus the restartable ones started before
//!   it; CPU and memory from the pod-level `spec.resources.requests` instead where it sets them;
//!   plus the pod overhead — while it is bound to a node (`spec.nodeName`), from its
//!   `PodScheduled` transition, until it is terminal (`Succeeded`/`Failed`: until the last
//!   container's `finishedAt`, when the pod records it) or, once deleted, until its deletion
//!   grace period has passed (`deletionTimestamp + deletionGracePeriodSeconds`, after which
//!   ResourceQuota stops counting a pod stuck terminating on a lost node).
//! - **Consumed by a volume claim**: its requested storage while it is `Bound`, from its
//!   creation (the tracker starts it when it is seen bound if it saw it unbound before).
//!
//! A quantity that does not parse counts as zero and is reported by the caller; nothing here
//! panics on what the cluster returns.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use zhengyun_model::crd::Environment;
use zhengyun_model::quantity::{Resource, Unit, parse};

/// The resources the sampler meters: the ones a rate card can price.
pub const METERED: [Resource; 4] = [
    Resource::Cpu,
    Resource::Memory,
    Resource::Storage,
    Resource::Gpu,
];

/// The request key of GPUs (the NVIDIA device plugin's).
pub const GPU_KEY: &str = "nvidia.com/gpu";

/// One amount per metered resource, in base units (millicores, bytes, bytes, devices).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Amounts(pub [u64; METERED.len()]);

impl Amounts {
    /// Nothing.
    pub const ZERO: Self = Self([0; METERED.len()]);

    /// The amount of the `i`-th metered resource.
    pub fn get(&self, resource: Resource) -> u64 {
        METERED
            .iter()
            .position(|r| *r == resource)
            .map_or(0, |i| self.0[i])
    }

    /// Sets the amount of `resource` (ignored if it is not metered).
    pub fn set(&mut self, resource: Resource, value: u64) {
        if let Some(i) = METERED.iter().position(|r| *r == resource) {
            self.0[i] = value;
        }
    }

    /// Whether every amount is zero.
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|v| *v == 0)
    }

    fn add(self, other: Self) -> Self {
        let mut sum = self;
        for (a, b) in sum.0.iter_mut().zip(other.0) {
            *a = a.saturating_add(b);
        }
        sum
    }

    fn max(self, other: Self) -> Self {
        let mut max = self;
        for (a, b) in max.0.iter_mut().zip(other.0) {
            *a = (*a).max(b);
        }
        max
    }
}

/// What one object contributes, and since when (whole seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contribution {
    /// The environment (and namespace) it belongs to.
    pub environment: String,
    /// The amounts.
    pub amounts: Amounts,
    /// When it began, by the object's own record, if it has one.
    pub since: Option<i64>,
    /// When it ends or ended, by the object's own record: a finished pod's last `finishedAt`,
    /// a deleted pod's end of grace period. `None`: it lasts until seen otherwise.
    pub until: Option<i64>,
}

/// The quota an environment holds, or `None` while it holds none (not admitted, released).
pub fn reserved(env: &Environment) -> Option<Contribution> {
    let status = env.status.as_ref()?;
    let quota = status.admitted_quota.as_ref()?.observed_amounts().ok()?;
    let mut amounts = Amounts::ZERO;
    for resource in METERED {
        amounts.set(resource, quota.get(resource));
    }
    Some(Contribution {
        environment: env.metadata.name.clone()?,
        amounts,
        since: status.admitted_at.as_ref().map(|t| t.0.as_second()),
        until: None,
    })
}

/// What a pod consumes, or `None` when it consumes nothing: not bound to a node yet, finished
/// without a record of when, or requesting nothing metered. A finished pod that records when
/// it was scheduled and when its containers finished consumes over that span (`until`), so
/// that a pod whose whole life passed while the sampler was not watching is still counted.
/// `bad` collects the quantities that did not parse.
pub fn pod_consumption(pod: &Pod, bad: &mut Vec<String>) -> Option<Contribution> {
    let spec = pod.spec.as_ref()?;
    spec.node_name.as_ref()?;
    let status = pod.status.as_ref();
    let terminal = status
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|phase| matches!(phase, "Succeeded" | "Failed"));
    let until = if terminal {
        Some(finished_at(pod)?)
    } else {
        grace_ends(pod)
    };
    let amounts = pod_requests(pod, bad);
    if amounts.is_zero() {
        return None;
    }
    let scheduled = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|conditions| {
            conditions
                .iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "True")
        })
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0.as_second());
    if terminal && scheduled.is_none() {
        // An end without a start cannot be placed: it ends when seen, as an unknown end does.
        return None;
    }
    Some(Contribution {
        environment: pod.metadata.namespace.clone()?,
        amounts,
        since: scheduled,
        until,
    })
}

/// The last `finishedAt` of a terminal pod's containers, if each finished one records it.
fn finished_at(pod: &Pod) -> Option<i64> {
    let status = pod.status.as_ref()?;
    status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0.as_second())
        .max()
}

/// When a deleted pod's grace period ends: ResourceQuota stops counting it then, even if it
/// stays (a pod stuck terminating on a lost node).
fn grace_ends(pod: &Pod) -> Option<i64> {
    let deleted = pod.metadata.deletion_timestamp.as_ref()?.0.as_second();
    let grace = pod
        .metadata
        .deletion_grace_period_seconds
        .unwrap_or(0)
        .max(0);
    Some(deleted.saturating_add(grace))
}

/// A pod's effective requests (see the module docs).
pub fn pod_requests(pod: &Pod, bad: &mut Vec<String>) -> Amounts {
    let Some(spec) = pod.spec.as_ref() else {
        return Amounts::ZERO;
    };
    let mut running = Amounts::ZERO;
    for container in &spec.containers {
        running = running.add(container_requests(container, bad));
    }
    let mut init_peak = Amounts::ZERO;
    let mut sidecars = Amounts::ZERO;
    for init in spec.init_containers.iter().flatten() {
        let requests = container_requests(init, bad);
        if init.restart_policy.as_deref() == Some("Always") {
            // A sidecar: starts before the app containers and runs alongside them, and
            // alongside every init container started after it.
            running = running.add(requests);
            sidecars = sidecars.add(requests);
            init_peak = init_peak.max(sidecars);
        } else {
            init_peak = init_peak.max(requests.add(sidecars));
        }
    }
    let mut requests = running.max(init_peak);
    if let Some(pod_level) = spec.resources.as_ref().and_then(|r| r.requests.as_ref()) {
        // Pod-level requests (Kubernetes 1.34+) replace the containers' for what they set.
        let amounts = amounts_of(pod_level, bad);
        for (key, resource) in [("cpu", Resource::Cpu), ("memory", Resource::Memory)] {
            if pod_level.contains_key(key) {
                requests.set(resource, amounts.get(resource));
            }
        }
    }
    let overhead = spec
        .overhead
        .as_ref()
        .map_or(Amounts::ZERO, |o| amounts_of(o, bad));
    requests.add(overhead)
}

fn container_requests(container: &Container, bad: &mut Vec<String>) -> Amounts {
    container
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .map_or(Amounts::ZERO, |requests| amounts_of(requests, bad))
}

/// CPU, memory and GPUs of a request map (`cpu`, `memory`, `nvidia.com/gpu`).
fn amounts_of(requests: &BTreeMap<String, Quantity>, bad: &mut Vec<String>) -> Amounts {
    let mut amounts = Amounts::ZERO;
    for (key, resource, unit) in [
        ("cpu", Resource::Cpu, Unit::Millicores),
        ("memory", Resource::Memory, Unit::Bytes),
        (GPU_KEY, Resource::Gpu, Unit::Count),
    ] {
        if let Some(quantity) = requests.get(key) {
            match parse(&quantity.0, unit) {
                Ok(value) => amounts.set(resource, value),
                Err(_) => bad.push(format!("{key}: {:?}", quantity.0)),
            }
        }
    }
    amounts
}

/// The storage a volume claim consumes, or `None` unless it is bound.
pub fn claim_consumption(
    claim: &PersistentVolumeClaim,
    bad: &mut Vec<String>,
) -> Option<Contribution> {
    let phase = claim.status.as_ref()?.phase.as_deref();
    if phase != Some("Bound") {
        return None;
    }
    let requested = claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")?;
    let bytes = match parse(&requested.0, Unit::Bytes) {
        Ok(bytes) => bytes,
        Err(_) => {
            bad.push(format!("storage: {:?}", requested.0));
            return None;
        }
    };
    let mut amounts = Amounts::ZERO;
    amounts.set(Resource::Storage, bytes);
    Some(Contribution {
        environment: claim.metadata.namespace.clone()?,
        amounts,
        since: claim
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second()),
        until: None,
    })
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use serde_json::json;

    use super::*;

    const GI: u64 = 1 << 30;

    fn pod(spec: serde_json::Value, status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "wjw-prod"},
            "spec": spec,
            "status": status,
        }))
        .expect("pod")
    }

    fn container(cpu: &str, memory: &str) -> serde_json::Value {
        json!({"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}})
    }

    fn running() -> serde_json::Value {
        json!({"phase": "Running", "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-05T10:00:07Z"}
        ]})
    }

    #[rstest]
    #[case::one_container(json!([container("500m", "1Gi")]), json!([]), None, (500, GI))]
    #[case::containers_add_up(
        json!([container("500m", "1Gi"), container("250m", "512Mi")]),
        json!([]),
        None,
        (750, GI + GI / 2)
    )]
    #[case::a_larger_init_container_sets_the_peak(
        json!([container("500m", "1Gi")]),
        json!([container("2", "256Mi")]),
        None,
        (2_000, GI)
    )]
    #[case::a_sidecar_runs_alongside(
        json!([container("500m", "1Gi")]),
        json!([{"name": "s", "restartPolicy": "Always",
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]),
        None,
        (600, GI + 64 * (1 << 20))
    )]
    #[case::a_sidecar_started_before_an_init_container_runs_alongside_it(
        json!([container("500m", "1Gi")]),
        json!([{"name": "s", "restartPolicy": "Always",
                "resources": {"requests": {"cpu": "1", "memory": "64Mi"}}},
               container("2", "256Mi")]),
        None,
        (3_000, GI + 64 * (1 << 20))
    )]
    #[case::a_sidecar_started_after_an_init_container_does_not_add_to_it(
        json!([container("500m", "1Gi")]),
        json!([container("2", "256Mi"),
               {"name": "s", "restartPolicy": "Always",
                "resources": {"requests": {"cpu": "1", "memory": "64Mi"}}}]),
        None,
        (2_000, GI + 64 * (1 << 20))
    )]
    #[case::overhead_is_added(
        json!([container("500m", "1Gi")]),
        json!([]),
        Some(json!({"cpu": "250m", "memory": "120Mi"})),
        (750, GI + 120 * (1 << 20))
    )]
    fn a_pod_requests_what_resource_quota_would_count(
        #[case] containers: serde_json::Value,
        #[case] init: serde_json::Value,
        #[case] overhead: Option<serde_json::Value>,
        #[case] expected: (u64, u64),
    ) {
        let mut spec = json!({"nodeName": "n1", "containers": containers, "initContainers": init});
        if let Some(overhead) = overhead {
            spec["overhead"] = overhead;
        }
        let mut bad = Vec::new();
        let requests = pod_requests(&pod(spec, running()), &mut bad);
        assert_eq!(
            (requests.get(Resource::Cpu), requests.get(Resource::Memory)),
            expected
        );
        assert!(bad.is_empty(), "{bad:?}");
    }

    #[rstest]
    #[case::pending_unbound(json!({"containers": [container("1", "1Gi")]}), running(), false)]
    #[case::bound_and_running(json!({"nodeName": "n1", "containers": [container("1", "1Gi")]}), running(), true)]
    #[case::succeeded(json!({"nodeName": "n1", "containers": [container("1", "1Gi")]}), json!({"phase": "Succeeded"}), false)]
    #[case::failed(json!({"nodeName": "n1", "containers": [container("1", "1Gi")]}), json!({"phase": "Failed"}), false)]
    #[case::requests_nothing(json!({"nodeName": "n1", "containers": [{"name": "c"}]}), running(), false)]
    fn only_bound_non_terminal_pods_consume(
        #[case] spec: serde_json::Value,
        #[case] status: serde_json::Value,
        #[case] consumes: bool,
    ) {
        let found = pod_consumption(&pod(spec, status), &mut Vec::new());
        assert_eq!(found.is_some(), consumes, "{found:?}");
        if let Some(c) = found {
            assert_eq!(c.environment, "wjw-prod");
            assert_eq!(c.since, Some(1_793_872_807));
        }
    }

    #[rstest]
    #[case::containers_without_requests(json!([{"name": "c"}]))]
    #[case::containers_requesting_less(json!([container("500m", "1Gi")]))]
    fn pod_level_requests_replace_the_containers_cpu_and_memory(
        #[case] containers: serde_json::Value,
    ) {
        let spec = json!({"nodeName": "n1", "containers": containers,
                          "resources": {"requests": {"cpu": "4", "memory": "8Gi"}},
                          "overhead": {"cpu": "100m"}});
        let pod = pod(spec, running());
        let requests = pod_requests(&pod, &mut Vec::new());
        assert_eq!(
            (requests.get(Resource::Cpu), requests.get(Resource::Memory)),
            (4_100, 8 * GI)
        );
        assert!(pod_consumption(&pod, &mut Vec::new()).is_some());
    }

    #[test]
    fn a_finished_pod_consumes_from_its_scheduling_to_its_last_container_finishing() {
        let spec =
            json!({"nodeName": "n1", "containers": [container("8", "1Gi"), container("1", "1Gi")]});
        let status = json!({"phase": "Succeeded",
            "conditions": [{"type": "PodScheduled", "status": "True",
                            "lastTransitionTime": "2026-11-05T10:10:00Z"}],
            "containerStatuses": [
                {"name": "a", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "finishedAt": "2026-11-05T10:40:00Z"}}},
                {"name": "b", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "finishedAt": "2026-11-05T10:39:00Z"}}}]});
        let found = pod_consumption(&pod(spec, status), &mut Vec::new()).expect("closed span");
        assert_eq!(found.since, Some(1_793_873_400));
        assert_eq!(found.until, Some(1_793_875_200));
        assert_eq!(found.amounts.get(Resource::Cpu), 9_000);
    }

    #[test]
    fn a_pod_stuck_terminating_consumes_until_its_grace_period_ends() {
        let spec = json!({"nodeName": "n1", "containers": [container("4", "1Gi")]});
        let mut stuck = pod(spec, running());
        stuck.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-11-05T10:05:00Z".parse().expect("ts"),
            ));
        stuck.metadata.deletion_grace_period_seconds = Some(30);
        let found = pod_consumption(&stuck, &mut Vec::new()).expect("still counted");
        assert_eq!(found.until, Some(1_793_873_100 + 30));
    }

    #[test]
    fn gpus_are_metered_and_bad_quantities_count_as_zero_and_are_reported() {
        let spec = json!({"nodeName": "n1", "containers": [{"name": "c", "resources": {"requests": {
            "cpu": "lots", "memory": "2Gi", "nvidia.com/gpu": "2"}}}]});
        let mut bad = Vec::new();
        let requests = pod_requests(&pod(spec, running()), &mut bad);
        assert_eq!(requests.get(Resource::Cpu), 0);
        assert_eq!(requests.get(Resource::Memory), 2 * GI);
        assert_eq!(requests.get(Resource::Gpu), 2);
        assert_eq!(bad, [r#"cpu: "lots""#]);
    }

    #[rstest]
    #[case::bound("Bound", Some(10 * GI))]
    #[case::pending("Pending", None)]
    #[case::lost("Lost", None)]
    fn a_claim_consumes_its_requested_storage_while_bound(
        #[case] phase: &str,
        #[case] expected: Option<u64>,
    ) {
        let claim: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": "data", "namespace": "wjw-prod",
                         "creationTimestamp": "2026-11-05T10:00:00Z"},
            "spec": {"resources": {"requests": {"storage": "10Gi"}}},
            "status": {"phase": phase},
        }))
        .expect("claim");
        let found = claim_consumption(&claim, &mut Vec::new());
        assert_eq!(
            found.as_ref().map(|c| c.amounts.get(Resource::Storage)),
            expected
        );
    }

    #[test]
    fn an_environment_reserves_its_admitted_quota_from_admission() {
        let env: Environment = serde_json::from_value(json!({
            "apiVersion": "zhengyun.io/v1alpha1", "kind": "Environment",
            "metadata": {"name": "wjw-prod"},
            "spec": {"bureau": "wjw", "purpose": "prod", "quota": {"cpu": "8"}},
            "status": {"admittedQuota": {"cpu": "4", "memory": "8Gi", "pods": "10"},
                       "admittedAt": "2026-11-05T10:00:00Z"},
        }))
        .expect("environment");
        let reserved = reserved(&env).expect("admitted");
        assert_eq!(reserved.amounts.get(Resource::Cpu), 4_000);
        assert_eq!(reserved.amounts.get(Resource::Memory), 8 * GI);
        assert_eq!(reserved.amounts.get(Resource::Pods), 0);
        assert_eq!(reserved.since, Some(1_793_872_800));
        let mut pending = env.clone();
        pending.status = None;
        assert_eq!(super::reserved(&pending), None);
    }
}
