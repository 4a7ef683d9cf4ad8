//! Cluster-wide objects every environment relies on: the tenant ClusterRoles its RoleBindings
//! point at (installed with the chart or `zhengyun policies`, never by the operator), and one
//! PriorityClass per tier (applied when the operator starts leading).
//!
//! The tenant roles are written so that invariant 3 of docs/architecture.md holds: a bureau can
//! run its workloads but can never raise its own quota. They grant nothing on resourcequotas,
//! limitranges, namespaces, networkpolicies (the platform's baseline policies) or RBAC objects.

use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use serde_json::json;
use zhengyun_model::crd::{TierPriorityClasses, TierPriorityValues};
use zhengyun_model::names::Tier;

use crate::resources::{MANAGED_BY, TENANT_ADMIN_ROLE, TENANT_VIEWER_ROLE};

/// What a bureau's admins may do inside their own namespaces.
const ADMIN_RULES: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "pods",
            "pods/log",
            "pods/exec",
            "pods/portforward",
            "services",
            "configmaps",
            "secrets",
            "persistentvolumeclaims",
            "serviceaccounts",
        ],
    ),
    (
        "apps",
        &[
            "deployments",
            "deployments/scale",
            "statefulsets",
            "statefulsets/scale",
            "replicasets",
        ],
    ),
    ("batch", &["jobs", "cronjobs"]),
    ("autoscaling", &["horizontalpodautoscalers"]),
    ("policy", &["poddisruptionbudgets"]),
    ("networking.k8s.io", &["ingresses"]),
    (GATEWAY_API_GROUP, TENANT_ROUTES),
];

/// The Gateway API group: tenants publish through the platform's Gateways with routes of their
/// own; the Gateways, GatewayClasses and ReferenceGrants stay the platform's.
const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";

/// The Gateway API routes a tenant may write (the kinds the admission policy
/// `zhengyun-tenant-routes` holds to the bureau's hostnames).
const TENANT_ROUTES: &[&str] = &["httproutes", "grpcroutes", "tlsroutes"];

/// What everyone bound to a namespace may read (viewers and admins).
const READ_RULES: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "pods",
            "pods/log",
            "services",
            "endpoints",
            "configmaps",
            "persistentvolumeclaims",
            "events",
            "resourcequotas",
            "limitranges",
            "serviceaccounts",
        ],
    ),
    ("apps", &["deployments", "statefulsets", "replicasets"]),
    ("batch", &["jobs", "cronjobs"]),
    ("autoscaling", &["horizontalpodautoscalers"]),
    ("policy", &["poddisruptionbudgets"]),
    ("networking.k8s.io", &["ingresses", "networkpolicies"]),
    (GATEWAY_API_GROUP, TENANT_ROUTES),
    ("events.k8s.io", &["events"]),
];

const WRITE_VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];
const READ_VERBS: &[&str] = &["get", "list", "watch"];

fn rules(sets: &[&[(&str, &[&str])]], verbs: &[&str]) -> Vec<serde_json::Value> {
    sets.iter()
        .flat_map(|set| set.iter())
        .map(|(group, resources)| json!({"apiGroups": [group], "resources": resources, "verbs": verbs}))
        .collect()
}

/// The two tenant ClusterRoles.
pub fn tenant_roles() -> Result<Vec<ClusterRole>, serde_json::Error> {
    let labels = json!({"app.kubernetes.io/managed-by": MANAGED_BY});
    let mut admin_rules = rules(&[ADMIN_RULES], WRITE_VERBS);
    admin_rules.extend(rules(&[READ_RULES], READ_VERBS));
    let viewer_rules = rules(&[READ_RULES], READ_VERBS);
    [
        (TENANT_ADMIN_ROLE, admin_rules),
        (TENANT_VIEWER_ROLE, viewer_rules),
    ]
    .into_iter()
    .map(|(name, rules)| {
        serde_json::from_value(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": labels},
            "rules": rules,
        }))
    })
    .collect()
}

/// One PriorityClass per tier, with the pool's names and values (gold preempts silver preempts
/// bronze), and the burst class below them all, which never preempts: a burst pod waits for
/// room and is the first the scheduler takes room from.
pub fn priority_classes(
    names: &TierPriorityClasses,
    values: &TierPriorityValues,
) -> Result<Vec<PriorityClass>, serde_json::Error> {
    let tiers = Tier::ALL.iter().map(|&tier| {
        json!({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": names.for_tier(tier), "labels": {"app.kubernetes.io/managed-by": MANAGED_BY, "zhengyun.io/tier": tier.as_str()}},
            "value": values.for_tier(tier),
            "globalDefault": false,
            "description": format!("Zhengyun {} tier", tier.as_str()),
        })
    });
    let burst = json!({
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": {"name": names.burst, "labels": {"app.kubernetes.io/managed-by": MANAGED_BY, "zhengyun.io/tier": "burst"}},
        "value": values.burst,
        "globalDefault": false,
        "preemptionPolicy": "Never",
        "description": "Zhengyun burst: borrowed capacity, given back when its owner needs it",
    });
    tiers.chain([burst]).map(serde_json::from_value).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_roles_grant_nothing_that_could_raise_a_quota_or_open_the_network() {
        for role in tenant_roles().unwrap() {
            for rule in role.rules.unwrap_or_default() {
                let writes = rule.verbs.iter().any(|v| !READ_VERBS.contains(&v.as_str()));
                for resource in rule.resources.unwrap_or_default() {
                    let forbidden = [
                        "resourcequotas",
                        "limitranges",
                        "namespaces",
                        "networkpolicies",
                        "roles",
                        "rolebindings",
                        "clusterroles",
                        "clusterrolebindings",
                    ];
                    assert!(
                        !(writes && forbidden.contains(&resource.as_str())),
                        "{resource} is writable"
                    );
                    assert_ne!(resource, "*");
                }
                assert!(
                    !rule
                        .verbs
                        .iter()
                        .any(|v| v == "*" || v == "escalate" || v == "bind" || v == "impersonate")
                );
            }
        }
    }

    #[test]
    fn tier_and_burst_classes_take_the_pools_values_and_burst_never_preempts() {
        let names = TierPriorityClasses::default();
        let values = TierPriorityValues {
            gold: 900,
            silver: 500,
            bronze: 10,
            burst: -5,
        };
        let classes = priority_classes(&names, &values).unwrap();
        let got: Vec<(String, i32)> = classes
            .iter()
            .map(|c| {
                (
                    c.metadata.name.clone().unwrap_or_default(),
                    c.value.unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("zhengyun-gold".to_owned(), 900),
                ("zhengyun-silver".to_owned(), 500),
                ("zhengyun-bronze".to_owned(), 10),
                ("zhengyun-burst".to_owned(), -5)
            ]
        );
        let burst = classes.last().unwrap();
        assert_eq!(burst.preemption_policy.as_deref(), Some("Never"));
    }

    /// The verbs `role` grants on `resource` of `group`.
    fn verbs_on(role: &ClusterRole, group: &str, resource: &str) -> Vec<String> {
        role.rules
            .iter()
            .flatten()
            .filter(|r| r.api_groups.iter().flatten().any(|g| g == group))
            .filter(|r| r.resources.iter().flatten().any(|x| x == resource))
            .flat_map(|r| r.verbs.clone())
            .collect()
    }

    #[test]
    fn admins_write_and_viewers_read_the_routes_the_policy_checks_but_never_gateways() {
        let roles = tenant_roles().unwrap();
        let role = |name: &str| {
            roles
                .iter()
                .find(|r| r.metadata.name.as_deref() == Some(name))
                .unwrap()
        };
        let (admin, viewer) = (role(TENANT_ADMIN_ROLE), role(TENANT_VIEWER_ROLE));
        let policy = zhengyun_model::policies::admission_policies()
            .into_iter()
            .find(|p| p.metadata.name.as_deref() == Some("zhengyun-tenant-routes"))
            .expect("the routes policy");
        let checked: Vec<String> = policy
            .spec
            .iter()
            .flat_map(|s| s.match_constraints.iter())
            .flat_map(|m| m.resource_rules.iter().flatten())
            .flat_map(|r| r.resources.clone().unwrap_or_default())
            .collect();
        assert_eq!(checked, TENANT_ROUTES);
        for route in TENANT_ROUTES {
            let verbs = verbs_on(admin, GATEWAY_API_GROUP, route);
            for verb in ["create", "update", "patch", "delete", "get", "list"] {
                assert!(verbs.iter().any(|v| v == verb), "admin {verb} {route}");
            }
            let verbs = verbs_on(viewer, GATEWAY_API_GROUP, route);
            assert_eq!(verbs, READ_VERBS, "viewer on {route}");
        }
        for platform in ["gateways", "gatewayclasses", "referencegrants", "*"] {
            for role in [admin, viewer] {
                assert!(
                    verbs_on(role, GATEWAY_API_GROUP, platform).is_empty(),
                    "{platform} granted to {:?}",
                    role.metadata.name
                );
            }
        }
    }

    #[test]
    fn viewers_cannot_read_secrets() {
        let roles = tenant_roles().unwrap();
        let viewer = roles
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(TENANT_VIEWER_ROLE))
            .unwrap();
        let reads_secrets = viewer
            .rules
            .iter()
            .flatten()
            .any(|r| r.resources.iter().flatten().any(|x| x == "secrets"));
        assert!(!reads_secrets);
    }
}
