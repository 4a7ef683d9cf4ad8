//! What an admitted environment becomes: pure builders for the Namespace and everything the
//! operator keeps inside it. Reconciliation applies these with server-side apply; keeping them
//! pure lets tests read the exact objects a bureau will get.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use zhengyun_model::crd::{CapacityPoolSpec, CatalogService, Environment, ServiceKind};
use zhengyun_model::quantity::{Resource, ResourceAmounts};

/// Label naming the bureau on every object the operator creates.
pub const BUREAU_LABEL: &str = zhengyun_model::policies::BUREAU_LABEL;
/// Label naming the environment on every object the operator creates.
pub const ENVIRONMENT_LABEL: &str = "zhengyun.io/environment";
/// Label naming the tier on the namespace.
pub const TIER_LABEL: &str = "zhengyun.io/tier";
/// `app.kubernetes.io/managed-by` value of everything the operator owns.
pub const MANAGED_BY: &str = "zhengyun";
/// ClusterRole bound to a bureau's admin groups in each of its namespaces.
pub const TENANT_ADMIN_ROLE: &str = "zhengyun-tenant-admin";
/// ClusterRole bound to a bureau's viewer groups in each of its namespaces.
pub const TENANT_VIEWER_ROLE: &str = "zhengyun-tenant-viewer";
/// ServiceAccount in each environment namespace, bound to [`TENANT_ADMIN_ROLE`]: the identity of
/// the kubeconfigs the API issues to the bureau's admins.
pub const KUBECONFIG_ADMIN_ACCOUNT: &str = zhengyun_model::policies::KUBECONFIG_ADMIN_ACCOUNT;
/// ServiceAccount in each environment namespace, bound to [`TENANT_VIEWER_ROLE`]: the identity
/// of the kubeconfigs the API issues to the bureau's viewers.
pub const KUBECONFIG_VIEWER_ACCOUNT: &str = zhengyun_model::policies::KUBECONFIG_VIEWER_ACCOUNT;
/// Annotation of an environment namespace listing the domains its Ingresses and routes may name.
pub const HOSTNAMES_ANNOTATION: &str = zhengyun_model::policies::HOSTNAMES_ANNOTATION;
/// Name of the ResourceQuota in each environment namespace.
pub const QUOTA_NAME: &str = "zhengyun-quota";

/// Name of the ResourceQuota that allows no pods of another PriorityClass than the tier's (or
/// the burst class, which has a quota of its own).
pub const OTHER_CLASSES_QUOTA_NAME: &str = "zhengyun-other-priority-classes";
/// Name of the ResourceQuota that holds every pod but burst pods to the granted quota.
pub const GUARANTEED_QUOTA_NAME: &str = "zhengyun-guaranteed";
/// Name of the ResourceQuota that holds burst pods to the environment's burst allowance.
pub const BURST_QUOTA_NAME: &str = "zhengyun-burst";
/// The resources a burst allowance is given in: what pods request of the nodes.
pub const BURST_RESOURCES: [Resource; 2] = [Resource::Cpu, Resource::Memory];
/// Name of the LimitRange in each environment namespace.
pub const LIMITS_NAME: &str = "zhengyun-defaults";

/// Where catalog images come from.
#[derive(Clone, Debug)]
pub struct Catalog {
    /// Registry prefix, e.g. `registry.gov.local/zhengyun`.
    pub registry: String,
}

impl Catalog {
    fn postgres_image(&self) -> String {
        format!("{}/postgres:16", self.registry.trim_end_matches('/'))
    }
}

/// Everything an admitted environment becomes, in the order it is applied.
#[derive(Clone, Debug, Default)]
pub struct Materialized {
    /// The namespace `<bureau>-<purpose>`.
    pub namespace: Namespace,
    /// The environment's granted quota.
    pub quota: ResourceQuota,
    /// No pods of any PriorityClass but the tier's and burst: behind the admission policy, a
    /// second line.
    pub other_classes: ResourceQuota,
    /// Every pod but burst pods within the granted quota.
    pub guaranteed: ResourceQuota,
    /// Burst pods within the burst allowance.
    pub burst: ResourceQuota,
    /// Container defaults.
    pub limits: LimitRange,
    /// Default deny, same bureau, DNS.
    pub policies: Vec<NetworkPolicy>,
    /// The identities of issued kubeconfigs ([`KUBECONFIG_ADMIN_ACCOUNT`],
    /// [`KUBECONFIG_VIEWER_ACCOUNT`]); no token of theirs is mounted anywhere.
    pub accounts: Vec<ServiceAccount>,
    /// The bureau's groups, and the kubeconfig accounts, bound to the tenant roles.
    pub bindings: Vec<RoleBinding>,
    /// Catalog web workloads.
    pub deployments: Vec<Deployment>,
    /// Catalog databases.
    pub stateful_sets: Vec<StatefulSet>,
    /// Services of the catalog workloads.
    pub services: Vec<Service>,
}

/// Inputs of [`materialize`].
#[derive(Debug)]
pub struct Inputs<'a> {
    /// The environment (must have a name and uid).
    pub env: &'a Environment,
    /// The quota admission granted it.
    pub granted: &'a ResourceAmounts,
    /// What its burst pods may request now ([`BURST_RESOURCES`]; zero when it may not borrow).
    pub allowance: &'a ResourceAmounts,
    /// The bureau's admin groups.
    pub admin_groups: &'a [String],
    /// The bureau's viewer groups.
    pub viewer_groups: &'a [String],
    /// The domains the bureau may publish under (see [`hostnames`]).
    pub hostnames: &'a [String],
    /// The capacity pool's defaults (built-in defaults when there is no pool).
    pub pool: &'a CapacityPoolSpec,
    /// Catalog images.
    pub catalog: &'a Catalog,
}

/// Builds every object of an admitted environment.
pub fn materialize(inputs: &Inputs<'_>) -> Result<Materialized, serde_json::Error> {
    let ns = namespace_name(inputs.env);
    let builder = Builder { inputs, ns: &ns };
    let mut out = Materialized {
        namespace: builder.namespace()?,
        quota: builder.resource_quota()?,
        other_classes: builder.other_classes_quota()?,
        guaranteed: builder.guaranteed_quota()?,
        burst: builder.burst_quota()?,
        limits: builder.limit_range()?,
        policies: builder.network_policies()?,
        accounts: builder.accounts()?,
        bindings: builder.role_bindings()?,
        ..Materialized::default()
    };
    for service in &inputs.env.spec.services {
        match service.kind {
            ServiceKind::Web => out.deployments.push(builder.web(service)?),
            ServiceKind::Postgres => out.stateful_sets.push(builder.postgres(service)?),
        }
        out.services.push(builder.service(service)?);
    }
    Ok(out)
}

/// The domains bureau `bureau` may publish under: `<bureau>.<the pool's domain>`, then the
/// bureau's own domains.
pub fn hostnames(bureau: &str, pool: &CapacityPoolSpec, own: &[String]) -> Vec<String> {
    let mut domains: Vec<String> = pool
        .publishing
        .domain
        .iter()
        .map(|domain| format!("{bureau}.{domain}"))
        .collect();
    for domain in own {
        if !domains.contains(domain) {
            domains.push(domain.clone());
        }
    }
    domains
}

/// The namespace of an environment: its own name, `<bureau>-<purpose>`.
pub fn namespace_name(env: &Environment) -> String {
    env.metadata.name.clone().unwrap_or_default()
}

pub use zhengyun_model::policies::{BURST_CLASS_ANNOTATION, PRIORITY_CLASS_ANNOTATION};

/// Whether `ns` is the namespace `env` created: it carries `env`'s owner reference (by uid), which
/// only the operator sets, when it creates the namespace.
pub fn owned_by(ns: &k8s_openapi::api::core::v1::Namespace, env: &Environment) -> bool {
    let Some(uid) = env.metadata.uid.as_deref() else {
        return false;
    };
    ns.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.kind == "Environment")
}

/// Whether `obj` is one the operator made for `env`: it carries the operator's labels naming
/// `env` and `env`'s controller owner reference (by uid). Only such objects are ever pruned; a
/// tenant's own object, even one that copies the labels, is not.
pub fn made_for<K: kube::Resource>(obj: &K, env: &Environment) -> bool {
    let meta = obj.meta();
    let labels = meta.labels.as_ref();
    let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
    let Some(uid) = env.metadata.uid.as_deref() else {
        return false;
    };
    label("app.kubernetes.io/managed-by") == Some(MANAGED_BY)
        && label(ENVIRONMENT_LABEL) == env.metadata.name.as_deref()
        && meta
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.uid == uid && o.kind == "Environment" && o.controller == Some(true))
}

/// Whether the environment's own quota caps `resource` in its ResourceQuota (and so is what its
/// usage and admission speak of): priced resources always, object counts only when the
/// environment asks for them; otherwise the pool's default caps them.
pub fn capped_by_environment(resource: Resource, env: &Environment) -> bool {
    let counted = resource.unit() == zhengyun_model::quantity::Unit::Count
        && resource != Resource::Gpu
        && resource != Resource::LoadBalancers;
    !counted || env.spec.quota.get(resource).is_some()
}

/// The owner reference every object of an environment carries.
pub fn owner_reference(env: &Environment) -> OwnerReference {
    OwnerReference {
        api_version: "zhengyun.io/v1alpha1".into(),
        kind: "Environment".into(),
        name: env.metadata.name.clone().unwrap_or_default(),
        uid: env.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A ResourceQuota's CPU and memory entries for `amounts`: requests, and limits capped at the
/// same figures so that a pod cannot use more than its share.
fn compute_hard(amounts: &ResourceAmounts) -> BTreeMap<String, String> {
    BURST_RESOURCES
        .into_iter()
        .flat_map(|resource| {
            let value = resource.unit().format(amounts.get(resource));
            let limit = format!("limits.{}", resource.as_str());
            [
                (resource.resource_quota_key().to_owned(), value.clone()),
                (limit, value),
            ]
        })
        .collect()
}

struct Builder<'a> {
    inputs: &'a Inputs<'a>,
    ns: &'a str,
}

fn typed<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    serde_json::from_value(value)
}

impl Builder<'_> {
    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                "app.kubernetes.io/managed-by".to_owned(),
                MANAGED_BY.to_owned(),
            ),
            (BUREAU_LABEL.to_owned(), self.inputs.env.spec.bureau.clone()),
            (
                ENVIRONMENT_LABEL.to_owned(),
                namespace_name(self.inputs.env),
            ),
        ])
    }

    fn metadata(&self, name: &str) -> Value {
        json!({
            "name": name,
            "namespace": self.ns,
            "labels": self.labels(),
            "ownerReferences": [owner_reference(self.inputs.env)],
        })
    }

    fn namespace(&self) -> Result<Namespace, serde_json::Error> {
        let mut labels = self.labels();
        labels.insert(TIER_LABEL.into(), self.inputs.env.spec.tier.as_str().into());
        labels.insert(
            "zhengyun.io/purpose".into(),
            self.inputs.env.spec.purpose.as_str().into(),
        );
        for mode in ["enforce", "audit", "warn"] {
            labels.insert(
                format!("pod-security.kubernetes.io/{mode}"),
                "restricted".into(),
            );
            labels.insert(
                format!("pod-security.kubernetes.io/{mode}-version"),
                "latest".into(),
            );
        }
        // The one PriorityClass its pods may use, for the admission policy that enforces it
        // (an annotation: a class name may be longer than a label value).
        let class = self.tier_class();
        let mut annotations = BTreeMap::from([(PRIORITY_CLASS_ANNOTATION, class)]);
        let pool = self.inputs.pool;
        if pool.borrowing.enabled {
            annotations.insert(BURST_CLASS_ANNOTATION, &pool.priority_classes.burst);
        }
        // The domains its Ingresses and routes may name, for the admission policy that holds
        // them to those (comma-separated; empty: none).
        let hostnames = self.inputs.hostnames.join(",");
        annotations.insert(HOSTNAMES_ANNOTATION, &hostnames);
        typed(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {
                "name": self.ns, "labels": labels,
                "annotations": annotations,
                "ownerReferences": [owner_reference(self.inputs.env)],
            },
        }))
    }

    /// The namespace's whole quota: what it holds of everything, burst pods included. CPU and
    /// memory are the granted quota plus the burst allowance, which [`Self::guaranteed_quota`]
    /// and [`Self::burst_quota`] split between the two kinds of pods.
    fn resource_quota(&self) -> Result<ResourceQuota, serde_json::Error> {
        let mut hard = BTreeMap::new();
        let counts = &self.inputs.pool.object_counts;
        let whole = self.whole();
        for resource in Resource::ALL {
            // Priced resources are always capped (absent means none); object counts at what the
            // environment asks for, or else at the pool's default (never at zero).
            let value = if capped_by_environment(resource, self.inputs.env) {
                resource.unit().format(whole.get(resource))
            } else {
                match resource {
                    Resource::Pods => counts.pods,
                    Resource::Services => counts.services,
                    Resource::PersistentVolumeClaims => counts.persistentvolumeclaims,
                    _ => continue,
                }
                .to_string()
            };
            hard.insert(resource.resource_quota_key().to_owned(), value);
        }
        hard.insert("count/secrets".into(), counts.secrets.to_string());
        hard.insert("count/configmaps".into(), counts.configmaps.to_string());
        hard.extend(compute_hard(&whole));
        hard.insert("services.nodeports".into(), "0".into());
        typed(json!({
            "apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": self.metadata(QUOTA_NAME),
            "spec": {"hard": hard},
        }))
    }

    /// The granted quota plus the burst allowance.
    fn whole(&self) -> ResourceAmounts {
        let mut whole = *self.inputs.granted;
        for resource in BURST_RESOURCES {
            let sum = whole
                .get(resource)
                .saturating_add(self.inputs.allowance.get(resource));
            whole.set(resource, sum);
        }
        whole
    }

    /// Pods of every class but burst (pods naming no class included) within the granted CPU
    /// and memory.
    fn guaranteed_quota(&self) -> Result<ResourceQuota, serde_json::Error> {
        self.compute_quota(GUARANTEED_QUOTA_NAME, "NotIn", self.inputs.granted)
    }

    /// Burst pods within the allowance (zero: none may start).
    fn burst_quota(&self) -> Result<ResourceQuota, serde_json::Error> {
        self.compute_quota(BURST_QUOTA_NAME, "In", self.inputs.allowance)
    }

    fn compute_quota(
        &self,
        name: &str,
        operator: &str,
        amounts: &ResourceAmounts,
    ) -> Result<ResourceQuota, serde_json::Error> {
        let burst = &self.inputs.pool.priority_classes.burst;
        typed(json!({
            "apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": self.metadata(name),
            "spec": {
                "hard": compute_hard(amounts),
                "scopeSelector": {"matchExpressions": [
                    {"scopeName": "PriorityClass", "operator": operator, "values": [burst]},
                ]},
            },
        }))
    }

    /// The PriorityClass of the environment's tier.
    fn tier_class(&self) -> &str {
        self.inputs
            .pool
            .priority_classes
            .for_tier(self.inputs.env.spec.tier)
    }

    /// Zero pods of any named PriorityClass but the tier's and burst (a pod naming none is not
    /// counted: the quota scope `Exists` requires a name).
    fn other_classes_quota(&self) -> Result<ResourceQuota, serde_json::Error> {
        let class = self.tier_class();
        let burst = &self.inputs.pool.priority_classes.burst;
        typed(json!({
            "apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": self.metadata(OTHER_CLASSES_QUOTA_NAME),
            "spec": {
                "hard": {"pods": "0"},
                "scopeSelector": {"matchExpressions": [
                    {"scopeName": "PriorityClass", "operator": "Exists"},
                    {"scopeName": "PriorityClass", "operator": "NotIn", "values": [class, burst]},
                ]},
            },
        }))
    }

    fn limit_range(&self) -> Result<LimitRange, serde_json::Error> {
        let defaults = &self.inputs.pool.limit_range;
        typed(json!({
            "apiVersion": "v1", "kind": "LimitRange",
            "metadata": self.metadata(LIMITS_NAME),
            "spec": {"limits": [{
                "type": "Container",
                "defaultRequest": {"cpu": defaults.default_request.cpu.as_str(), "memory": defaults.default_request.memory.as_str()},
                "default": {"cpu": defaults.default.cpu.as_str(), "memory": defaults.default.memory.as_str()},
            }]},
        }))
    }

    fn network_policies(&self) -> Result<Vec<NetworkPolicy>, serde_json::Error> {
        let bureau = &self.inputs.env.spec.bureau;
        let same_bureau = json!([{"namespaceSelector": {"matchLabels": {BUREAU_LABEL: bureau}}}]);
        let policies = [
            json!({
                "metadata": self.metadata("zhengyun-default-deny"),
                "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
            }),
            json!({
                "metadata": self.metadata("zhengyun-allow-same-bureau"),
                "spec": {
                    "podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                    "ingress": [{"from": same_bureau}],
                    "egress": [{"to": same_bureau}],
                },
            }),
            // Traffic from the pool's ingress controller, when the pool names its namespace.
            // Otherwise the policy stays with no rule, allowing nothing, so that unsetting the
            // namespace takes the permission back. No rule is no `ingress` field, not an empty
            // one: the API server stores an empty list as none, so an apply of `[]` never
            // matched what it stored and wrote the policy again at every restart.
            json!({
                "metadata": self.metadata("zhengyun-allow-ingress-controller"),
                "spec": match &self.inputs.pool.publishing.controller_namespace {
                    Some(controller) => json!({
                        "podSelector": {}, "policyTypes": ["Ingress"],
                        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": controller}}}]}],
                    }),
                    None => json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
                },
            }),
            json!({
                "metadata": self.metadata("zhengyun-allow-dns"),
                "spec": {
                    "podSelector": {}, "policyTypes": ["Egress"],
                    "egress": [{
                        "to": [{
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        }],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    }],
                },
            }),
        ];
        policies
            .into_iter()
            .map(|mut p| {
                p["apiVersion"] = json!("networking.k8s.io/v1");
                p["kind"] = json!("NetworkPolicy");
                typed(p)
            })
            .collect()
    }

    fn accounts(&self) -> Result<Vec<ServiceAccount>, serde_json::Error> {
        [KUBECONFIG_ADMIN_ACCOUNT, KUBECONFIG_VIEWER_ACCOUNT]
            .into_iter()
            .map(|name| {
                typed(json!({
                    "apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": self.metadata(name),
                    "automountServiceAccountToken": false,
                }))
            })
            .collect()
    }

    fn role_bindings(&self) -> Result<Vec<RoleBinding>, serde_json::Error> {
        let binding = |name: &str, role: &str, groups: &[String], account: &str| {
            let mut subjects: Vec<Value> = groups
                .iter()
                .map(|g| json!({"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": g}))
                .collect();
            subjects.push(json!({"kind": "ServiceAccount", "name": account, "namespace": self.ns}));
            typed::<RoleBinding>(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": self.metadata(name),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": subjects,
            }))
        };
        Ok(vec![
            binding(
                "zhengyun-admins",
                TENANT_ADMIN_ROLE,
                self.inputs.admin_groups,
                KUBECONFIG_ADMIN_ACCOUNT,
            )?,
            binding(
                "zhengyun-viewers",
                TENANT_VIEWER_ROLE,
                self.inputs.viewer_groups,
                KUBECONFIG_VIEWER_ACCOUNT,
            )?,
        ])
    }

    fn pod_template(
        &self,
        service: &CatalogService,
        image: &str,
        port: u16,
        volume: Option<&str>,
    ) -> Value {
        let tier = self.inputs.env.spec.tier;
        let mut container = json!({
            "name": service.name,
            "image": image,
            "ports": [{"containerPort": port, "name": "service"}],
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "runAsNonRoot": true,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        });
        if let Some(volume) = volume {
            container["volumeMounts"] =
                json!([{"name": volume, "mountPath": "/var/lib/postgresql/data"}]);
        }
        json!({
            "metadata": {"labels": self.workload_labels(service)},
            "spec": {
                "priorityClassName": self.inputs.pool.priority_classes.for_tier(tier),
                "securityContext": {"runAsNonRoot": true, "runAsUser": 999, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [container],
            },
        })
    }

    fn workload_labels(&self, service: &CatalogService) -> BTreeMap<String, String> {
        let mut labels = self.labels();
        labels.insert("app.kubernetes.io/name".into(), service.name.clone());
        labels
    }

    fn web(&self, service: &CatalogService) -> Result<Deployment, serde_json::Error> {
        let image = service.image.clone().unwrap_or_default();
        let mut template = self.pod_template(service, &image, 8080, None);
        let tier = self.inputs.env.spec.tier;
        if self.inputs.pool.service_levels.spread_over_nodes(tier) {
            // The tier's objective assumes a node lost takes at most its share of the replicas.
            template["spec"]["topologySpreadConstraints"] = json!([{
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": service.name}},
            }]);
        }
        typed(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": self.metadata(&service.name),
            "spec": {
                "replicas": service.replicas.unwrap_or(1),
                "selector": {"matchLabels": {"app.kubernetes.io/name": service.name}},
                "template": template,
            },
        }))
    }

    fn postgres(&self, service: &CatalogService) -> Result<StatefulSet, serde_json::Error> {
        let image = service
            .image
            .clone()
            .unwrap_or_else(|| self.inputs.catalog.postgres_image());
        let storage = service
            .storage
            .as_ref()
            .map(|q| q.as_str().to_owned())
            .unwrap_or_default();
        typed(json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": self.metadata(&service.name),
            "spec": {
                "replicas": 1,
                "serviceName": service.name,
                "selector": {"matchLabels": {"app.kubernetes.io/name": service.name}},
                "template": self.pod_template(service, &image, 5432, Some("data")),
                "volumeClaimTemplates": [{
                    "metadata": {"name": "data", "labels": self.labels()},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}},
                }],
            },
        }))
    }

    fn service(&self, service: &CatalogService) -> Result<Service, serde_json::Error> {
        let port = match service.kind {
            ServiceKind::Web => 8080,
            ServiceKind::Postgres => 5432,
        };
        typed(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": self.metadata(&service.name),
            "spec": {
                "type": "ClusterIP",
                "selector": {"app.kubernetes.io/name": service.name},
                "ports": [{"name": "service", "port": port, "targetPort": "service"}],
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use zhengyun_model::crd::{CapacityPoolSpec, Environment};
    use zhengyun_model::quantity::ResourceAmounts;

    use super::*;
    use kube::ResourceExt;

    fn environment(tier: &str) -> Environment {
        serde_json::from_value(json!({
            "apiVersion": "zhengyun.io/v1alpha1", "kind": "Environment",
            "metadata": {"name": "wjw-dev", "uid": "5d6f2c1e-0000-4000-8000-000000000001"},
            "spec": {"bureau": "wjw", "purpose": "dev", "tier": tier,
                     "quota": {"cpu": "2", "memory": "4Gi"}}
        }))
        .expect("environment")
    }

    /// What `env` materializes into under `pool`, with nothing granted or lent and no groups.
    fn materialized(env: &Environment, pool: &CapacityPoolSpec) -> Materialized {
        let catalog = Catalog {
            registry: "registry.local/zhengyun".into(),
        };
        let inputs = Inputs {
            env,
            granted: &ResourceAmounts::ZERO,
            allowance: &ResourceAmounts::ZERO,
            admin_groups: &[],
            hostnames: &[],
            viewer_groups: &[],
            pool,
            catalog: &catalog,
        };
        materialize(&inputs).expect("materialize")
    }

    #[test]
    fn the_ingress_controller_policy_has_no_ingress_field_without_a_controller_namespace() {
        let policy = |pool: serde_json::Value| {
            let pool: CapacityPoolSpec = serde_json::from_value(pool).expect("pool");
            let m = materialized(&environment("silver"), &pool);
            let policy = m
                .policies
                .iter()
                .find(|p| p.name_any() == "zhengyun-allow-ingress-controller")
                .expect("the policy")
                .clone();
            serde_json::to_value(policy.spec).expect("json")
        };
        // The API server stores an empty list as no field; applying `[]` would never match it.
        let closed = policy(json!({"capacity": {}}));
        assert_eq!(closed["policyTypes"], json!(["Ingress"]));
        assert!(closed.get("ingress").is_none(), "{closed}");
        let open =
            policy(json!({"capacity": {}, "publishing": {"controllerNamespace": "ingress-nginx"}}));
        let from = &open["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"];
        assert_eq!(
            from["kubernetes.io/metadata.name"], "ingress-nginx",
            "{open}"
        );
    }

    #[test]
    fn gold_web_services_are_spread_over_nodes_and_other_tiers_are_not_unless_the_pool_says_so() {
        let spread = |tier: &str, pool: serde_json::Value| {
            let mut env = environment(tier);
            env.spec.services = serde_json::from_value(json!([
                {"name": "web", "kind": "web", "image": "registry.local/web:1", "replicas": 2},
            ]))
            .expect("services");
            let pool: CapacityPoolSpec = serde_json::from_value(pool).expect("pool");
            let m = materialized(&env, &pool);
            let spec = m.deployments[0]
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .expect("a pod spec")
                .clone();
            spec.topology_spread_constraints.unwrap_or_default()
        };
        let gold = spread("gold", json!({"capacity": {}}));
        assert_eq!(gold.len(), 1);
        assert_eq!(gold[0].topology_key, "kubernetes.io/hostname");
        assert_eq!(gold[0].max_skew, 1);
        assert_eq!(gold[0].when_unsatisfiable, "DoNotSchedule");
        assert!(spread("silver", json!({"capacity": {}})).is_empty());
        let asked = json!({"capacity": {}, "serviceLevels": {"silver": {"objective": "99.9", "spreadOverNodes": true}}});
        assert_eq!(spread("silver", asked).len(), 1);
    }

    #[test]
    fn only_objects_with_the_labels_and_the_owner_of_the_environment_count_as_made_for_it() {
        let env = environment("silver");
        let pool: CapacityPoolSpec = serde_json::from_value(json!({"capacity": {}})).expect("pool");
        let mut with_web = env.clone();
        with_web.spec.services = serde_json::from_value(
            json!([{"name": "web", "kind": "web", "image": "registry.local/web:1"}]),
        )
        .expect("services");
        let m = materialized(&with_web, &pool);
        let web = &m.deployments[0];
        assert!(made_for(web, &env));
        assert!(made_for(&m.services[0], &env));

        let mut copied_labels = web.clone();
        copied_labels.metadata.owner_references = None;
        assert!(
            !made_for(&copied_labels, &env),
            "a tenant copying the labels"
        );
        let mut other_env = web.clone();
        other_env
            .metadata
            .labels
            .as_mut()
            .expect("labels")
            .insert(ENVIRONMENT_LABEL.into(), "wjw-test".into());
        assert!(!made_for(&other_env, &env), "another environment's label");
        let mut unmanaged = web.clone();
        unmanaged
            .metadata
            .labels
            .as_mut()
            .expect("labels")
            .remove("app.kubernetes.io/managed-by");
        assert!(!made_for(&unmanaged, &env), "no managed-by label");
        let mut recreated = env.clone();
        recreated.metadata.uid = Some("5d6f2c1e-0000-4000-8000-000000000002".into());
        assert!(
            !made_for(web, &recreated),
            "an environment of the same name, recreated"
        );
    }

    fn quota_hard(env: &Environment, pool: serde_json::Value) -> serde_json::Value {
        let pool: CapacityPoolSpec = serde_json::from_value(pool).expect("pool");
        let granted = ResourceAmounts::default()
            .with(Resource::Pods, 10)
            .with(Resource::Cpu, 2000);
        let inputs = Inputs {
            env,
            granted: &granted,
            allowance: &ResourceAmounts::ZERO,
            admin_groups: &[],
            hostnames: &[],
            viewer_groups: &[],
            pool: &pool,
            catalog: &Catalog {
                registry: "registry.local/zhengyun".into(),
            },
        };
        let m = materialize(&inputs).expect("materialize");
        serde_json::to_value(&m.quota).expect("json")["spec"]["hard"].clone()
    }

    #[test]
    fn every_namespace_caps_object_counts_with_the_pool_defaults() {
        let hard = quota_hard(&environment("silver"), json!({"capacity": {}}));
        assert_eq!(hard["pods"], "500");
        assert_eq!(hard["services"], "100");
        assert_eq!(hard["persistentvolumeclaims"], "100");
        assert_eq!(hard["count/secrets"], "500");
        assert_eq!(hard["count/configmaps"], "500");
        assert_eq!(hard["requests.cpu"], "2", "priced resources as before");
    }

    #[test]
    fn the_pool_sets_the_count_defaults_and_an_environment_may_ask_for_its_own() {
        let pool = json!({"capacity": {}, "objectCounts": {"pods": 40, "secrets": 30}});
        let mut env = environment("silver");
        env.spec.quota.pods = Some("10".into());
        let hard = quota_hard(&env, pool);
        assert_eq!(hard["pods"], "10", "the environment's own cap, as granted");
        assert_eq!(hard["count/secrets"], "30");
        assert_eq!(
            hard["count/configmaps"], "500",
            "a default the pool leaves alone"
        );
    }

    #[test]
    fn a_namespace_names_its_tier_class_and_refuses_pods_of_any_other_named_class() {
        let env = environment("bronze");
        let pool: CapacityPoolSpec = serde_json::from_value(json!({"capacity": {}})).expect("pool");
        let granted = ResourceAmounts::default();
        let inputs = Inputs {
            env: &env,
            granted: &granted,
            allowance: &ResourceAmounts::ZERO,
            admin_groups: &[],
            hostnames: &[],
            viewer_groups: &[],
            pool: &pool,
            catalog: &Catalog {
                registry: "registry.local/zhengyun".into(),
            },
        };
        let m = materialize(&inputs).expect("materialize");
        assert_eq!(
            m.namespace.annotations().get(PRIORITY_CLASS_ANNOTATION),
            Some(&"zhengyun-bronze".to_owned())
        );
        let quota = serde_json::to_value(&m.other_classes).expect("json");
        assert_eq!(quota["metadata"]["name"], OTHER_CLASSES_QUOTA_NAME);
        assert_eq!(quota["spec"]["hard"], json!({"pods": "0"}));
        assert_eq!(
            quota["spec"]["scopeSelector"]["matchExpressions"],
            json!([
                {"scopeName": "PriorityClass", "operator": "Exists"},
                {"scopeName": "PriorityClass", "operator": "NotIn", "values": ["zhengyun-bronze", "zhengyun-burst"]}
            ])
        );
        assert_eq!(
            m.namespace.annotations().get(BURST_CLASS_ANNOTATION),
            None,
            "no burst class while the pool does not lend"
        );
        assert!(
            owned_by(&m.namespace, &env),
            "the namespace carries its owner"
        );
        let mut foreign = m.namespace.clone();
        foreign.metadata.owner_references = None;
        assert!(!owned_by(&foreign, &env));
    }

    #[test]
    fn burst_pods_get_the_allowance_and_every_other_pod_the_granted_quota() {
        let env = environment("silver");
        let pool: CapacityPoolSpec =
            serde_json::from_value(json!({"capacity": {}, "borrowing": {"enabled": true}}))
                .expect("pool");
        let granted = ResourceAmounts::default()
            .with(Resource::Cpu, 4_000)
            .with(Resource::Memory, 8 << 30)
            .with(Resource::Storage, 100 << 30);
        let allowance = ResourceAmounts::default()
            .with(Resource::Cpu, 1_500)
            .with(Resource::Memory, 2 << 30);
        let inputs = Inputs {
            env: &env,
            granted: &granted,
            allowance: &allowance,
            admin_groups: &[],
            hostnames: &[],
            viewer_groups: &[],
            pool: &pool,
            catalog: &Catalog {
                registry: "registry.local/zhengyun".into(),
            },
        };
        let m = materialize(&inputs).expect("materialize");
        let json = |q: &ResourceQuota| serde_json::to_value(q).expect("json");
        let (whole, guaranteed, burst) = (json(&m.quota), json(&m.guaranteed), json(&m.burst));
        assert_eq!(whole["spec"]["hard"]["requests.cpu"], "5500m");
        assert_eq!(whole["spec"]["hard"]["limits.memory"], "10Gi");
        assert_eq!(whole["spec"]["hard"]["requests.storage"], "100Gi");
        assert_eq!(
            guaranteed["spec"]["hard"],
            json!({"requests.cpu": "4", "limits.cpu": "4", "requests.memory": "8Gi", "limits.memory": "8Gi"})
        );
        assert_eq!(
            guaranteed["spec"]["scopeSelector"]["matchExpressions"],
            json!([{"scopeName": "PriorityClass", "operator": "NotIn", "values": ["zhengyun-burst"]}])
        );
        assert_eq!(
            burst["spec"]["hard"],
            json!({"requests.cpu": "1500m", "limits.cpu": "1500m", "requests.memory": "2Gi", "limits.memory": "2Gi"})
        );
        assert_eq!(
            burst["spec"]["scopeSelector"]["matchExpressions"],
            json!([{"scopeName": "PriorityClass", "operator": "In", "values": ["zhengyun-burst"]}])
        );
        assert_eq!(
            m.namespace.annotations().get(BURST_CLASS_ANNOTATION),
            Some(&"zhengyun-burst".to_owned())
        );
    }
}
