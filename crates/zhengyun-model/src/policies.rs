//! The admission policies that hold tenants to their namespace: `ValidatingAdmissionPolicy`s
//! (CEL, evaluated by the API server itself) with their bindings, for every namespace labelled
//! with a bureau. They close what RBAC cannot: a tenant may create pods, services and disruption
//! budgets, but not every pod, service or budget.
//!
//! - **Pods** use only their environment's PriorityClass (named by the namespace's annotation
//!   [`PRIORITY_CLASS_ANNOTATION`], which the operator sets and tenants cannot change) or none,
//!   or the burst class while the pool lends (annotation [`BURST_CLASS_ANNOTATION`]);
//!   they never pick a node (`nodeName`) and tolerate no taint beyond the standard
//!   not-ready/unreachable ones the API server adds itself.
//! - **Services** have no `externalIPs` (which would intercept traffic to those addresses for
//!   the whole cluster) and are not `ExternalName` (a door out of the network policies).
//! - **PodDisruptionBudgets** always let a node drain make progress: they name
//!   `maxUnavailable` of at least one pod (or a percentage above zero), never `minAvailable`.
//!
//! And one platform policy, over `RateCard`s (cluster-wide), that keeps the set of rate cards a
//! schedule: each new card is checked against every existing card (the policy's params), so a
//! second card on the same `effectiveFrom` date or in another currency is refused at admission;
//! and a card is not deleted (its prices priced months already shown) unless it carries the
//! annotation [`ALLOW_DELETION_ANNOTATION`] `"true"`.
//!
//! And one over `Bureau`s, with the capacity pool as its param, that keeps the domains granted
//! to a bureau (`spec.domains`) off the platform's domain, the domains above it and other
//! bureaus' names under it ([`BUREAU_DOMAINS_POLICY`]).
//!
//! Shipped as `zhengyun policies` (and in `manifests/crds/policies.yaml` and the chart).

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use serde::Serialize;
use serde_json::{Value, json};

/// Label of every environment namespace: the bureau it belongs to.
pub const BUREAU_LABEL: &str = "zhengyun.io/bureau";

/// ServiceAccount the operator keeps in each environment namespace, bound to the tenant-admin
/// role: the identity of the kubeconfigs issued to the bureau's admins.
pub const KUBECONFIG_ADMIN_ACCOUNT: &str = "zhengyun-kubeconfig-admin";

/// ServiceAccount the operator keeps in each environment namespace, bound to the tenant-viewer
/// role: the identity of the kubeconfigs issued to the bureau's viewers.
pub const KUBECONFIG_VIEWER_ACCOUNT: &str = "zhengyun-kubeconfig-viewer";

/// Label of the Secret each issued kubeconfig's token is bound to (its value is the
/// kubeconfig's id): deleting the Secret revokes the token.
pub const KUBECONFIG_LABEL: &str = "zhengyun.io/kubeconfig";

/// Annotation of an environment namespace listing, comma-separated, the domains its Ingresses
/// and Gateway API routes may name (each domain and any name below it).
pub const HOSTNAMES_ANNOTATION: &str = "zhengyun.io/hostnames";

/// Annotation of an environment namespace naming the PriorityClass its pods may use.
pub const PRIORITY_CLASS_ANNOTATION: &str = "zhengyun.io/priority-class";

/// Annotation of an environment namespace naming the burst PriorityClass, present only while
/// the capacity pool lends: its pods may then also run as burst.
pub const BURST_CLASS_ANNOTATION: &str = "zhengyun.io/burst-priority-class";

/// Annotation that lets a `RateCard` be deleted (meant for a card created by mistake before it
/// takes effect).
pub const ALLOW_DELETION_ANNOTATION: &str = "zhengyun.io/allow-deletion";

/// The name of the policy (and binding) over `RateCard`s.
pub const RATE_CARD_POLICY: &str = "zhengyun-rate-cards";

/// The policy keeping rate cards a schedule: checked against each existing card as a param.
fn rate_card_policy() -> Value {
    let currency = |of: &str| format!("(has({of}.spec.currency) ? {of}.spec.currency : 'CNY')");
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": RATE_CARD_POLICY, "labels": {"app.kubernetes.io/part-of": "zhengyun"}},
        "spec": {
            "failurePolicy": "Fail",
            "paramKind": {"apiVersion": "zhengyun.io/v1alpha1", "kind": "RateCard"},
            "matchConstraints": {
                "resourceRules": [{
                    "apiGroups": ["zhengyun.io"], "apiVersions": ["*"],
                    "operations": ["CREATE", "DELETE"], "resources": ["ratecards"],
                }],
            },
            "validations": [
                {
                    "expression": format!(
                        "request.operation != 'DELETE' || \
                         (has(oldObject.metadata.annotations) && \
                          oldObject.metadata.annotations[?'{ALLOW_DELETION_ANNOTATION}'].orValue('') == 'true')"
                    ),
                    "messageExpression": format!(
                        "'RateCard ' + oldObject.metadata.name + ' is not deleted: its prices priced months already shown. \
                         Supersede it with a card with a later effectiveFrom, or annotate it {ALLOW_DELETION_ANNOTATION}=true \
                         if it was created by mistake and is not yet in force'"
                    ),
                    "reason": "Forbidden",
                },
                {
                    "expression": "request.operation != 'CREATE' || params.metadata.name == object.metadata.name || \
                                   params.spec.effectiveFrom != object.spec.effectiveFrom",
                    "messageExpression": "'RateCard ' + params.metadata.name + ' already takes effect on ' + \
                                          params.spec.effectiveFrom + '; two cards on one date would make the price ambiguous'",
                    "reason": "Invalid",
                },
                {
                    "expression": format!(
                        "request.operation != 'CREATE' || params.metadata.name == object.metadata.name || \
                         {} == {}",
                        currency("object"),
                        currency("params")
                    ),
                    "messageExpression": format!(
                        "'RateCard ' + params.metadata.name + ' prices in ' + {} + '; every rate card uses one currency'",
                        currency("params")
                    ),
                    "reason": "Invalid",
                },
            ],
        },
    })
}

/// The name of the policy (and binding) holding environments to their tier's prerequisites.
pub const SERVICE_LEVEL_POLICY: &str = "zhengyun-service-levels";

/// The policy holding each environment to its tier's structural prerequisites (the capacity
/// pool's `serviceLevels.<tier>.minReplicas`, its param): every web service runs at least that
/// many replicas. Checked on create, and on an update that changes the spec, so that an
/// environment created before the pool raised its minimum can still be deleted, relabelled or
/// have its status written.
///
/// Its failure policy is `Ignore`: for some seconds after the API server starts (or the policy
/// is installed) it cannot read its param ("failed to find resource referenced by paramKind"),
/// and with `Fail` every Environment write would be refused meanwhile. A service-level
/// prerequisite is not worth refusing every environment for; a refusal it does evaluate still
/// refuses.
fn service_level_policy() -> Value {
    let minimum = format!(
        "params.spec.?serviceLevels[?object.spec.tier].?minReplicas.orValue(\
         object.spec.tier == 'gold' ? {gold} : 1)",
        gold = crate::crd::GOLD_MIN_REPLICAS
    );
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": SERVICE_LEVEL_POLICY, "labels": {"app.kubernetes.io/part-of": "zhengyun"}},
        "spec": {
            "failurePolicy": "Ignore",
            "paramKind": {"apiVersion": "zhengyun.io/v1alpha1", "kind": "CapacityPool"},
            "matchConstraints": {
                "resourceRules": [{
                    "apiGroups": ["zhengyun.io"], "apiVersions": ["*"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["environments"],
                }],
            },
            "variables": [{"name": "minimum", "expression": minimum}],
            "validations": [{
                "expression": "(request.operation == 'UPDATE' && oldObject.spec == object.spec) || \
                               !has(object.spec.services) || \
                               object.spec.services.all(s, s.kind != 'web' || \
                                 (has(s.replicas) ? s.replicas : 1) >= variables.minimum)",
                "messageExpression": "'a ' + object.spec.tier + ' environment runs each web service with at least ' + \
                                      string(variables.minimum) + ' replicas (the capacity pool\\'s serviceLevels.' + \
                                      object.spec.tier + '.minReplicas); fewer in: ' + \
                                      object.spec.services.filter(s, s.kind == 'web' && \
                                        (has(s.replicas) ? s.replicas : 1) < variables.minimum).map(s, s.name).join(', ')",
                "reason": "Invalid",
            }],
        },
    })
}

/// The binding of `policy` with the capacity pool `default` as its param. Without a pool the
/// policy lets everything in: there are no service-level minimums to hold environments to and
/// no platform domain to keep granted domains off (and the operator admits nothing without a
/// pool's capacity anyway).
fn pool_param_binding(policy: &str) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": policy, "labels": {"app.kubernetes.io/part-of": "zhengyun"}},
        "spec": {
            "policyName": policy,
            "validationActions": ["Deny"],
            "paramRef": {"name": crate::crd::POOL_NAME, "parameterNotFoundAction": "Allow"},
        },
    })
}

/// The name of the policy (and binding) keeping bureaus' granted domains off the platform's.
pub const BUREAU_DOMAINS_POLICY: &str = "zhengyun-bureau-domains";

/// The policy holding `Bureau.spec.domains` to [`crate::names::check_granted_domain`] against
/// the capacity pool's `publishing.domain` (its param): no granted domain is the platform's
/// domain, one above it, or a name under the platform's domain outside the bureau's own
/// `<bureau>.<domain>`. Checked on create, and on an update that changes the domains, so that
/// a bureau granted a domain before the pool's domain changed can still be edited otherwise.
///
/// Its failure policy is `Ignore`, as [`SERVICE_LEVEL_POLICY`]'s and for the same reason: for
/// some seconds after the API server starts it cannot read its param, and every Bureau write
/// would be refused meanwhile. Only platform admins write Bureaus: the rule keeps their
/// mistakes out, and the API applies it too.
fn bureau_domains_policy() -> Value {
    let allowed = "d != variables.platform && !variables.platform.endsWith('.' + d) && \
                   (!d.endsWith('.' + variables.platform) || d == variables.own || \
                    d.endsWith('.' + variables.own))";
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": BUREAU_DOMAINS_POLICY, "labels": {"app.kubernetes.io/part-of": "zhengyun"}},
        "spec": {
            "failurePolicy": "Ignore",
            "paramKind": {"apiVersion": "zhengyun.io/v1alpha1", "kind": "CapacityPool"},
            "matchConstraints": {
                "resourceRules": [{
                    "apiGroups": ["zhengyun.io"], "apiVersions": ["*"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["bureaus"],
                }],
            },
            "variables": [
                {"name": "platform", "expression": "params.spec.?publishing.?domain.orValue('')"},
                {"name": "own", "expression": "object.metadata.name + '.' + variables.platform"},
                {"name": "domains", "expression": "object.spec.?domains.orValue([])"},
            ],
            "validations": [{
                "expression": format!(
                    "variables.platform == '' || \
                     (request.operation == 'UPDATE' && oldObject.spec.?domains.orValue([]) == variables.domains) || \
                     variables.domains.all(d, {allowed})"
                ),
                "messageExpression": format!(
                    "'spec.domains may not grant the platform\\'s domain ' + variables.platform + \
                     ', a domain above it, or a name under another bureau\\'s <bureau>.' + variables.platform + \
                     ' (its own is ' + variables.own + '): ' + \
                     variables.domains.filter(d, !({allowed})).join(', ')"
                ),
                "reason": "Invalid",
            }],
        },
    })
}

/// Its binding: every existing `RateCard` is a param; with none yet, the first card is let in.
fn rate_card_binding() -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": RATE_CARD_POLICY, "labels": {"app.kubernetes.io/part-of": "zhengyun"}},
        "spec": {
            "policyName": RATE_CARD_POLICY,
            "validationActions": ["Deny"],
            "paramRef": {"selector": {}, "parameterNotFoundAction": "Allow"},
        },
    })
}

/// The taints every pod may tolerate: those the API server's DefaultTolerationSeconds plugin adds
/// to each pod, so that pods leave an unreachable node after a while.
pub const STANDARD_TOLERATIONS: [&str; 2] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];

/// One rule of a policy: a CEL expression that must hold, and what a refused tenant is told.
struct Rule {
    expression: String,
    message: &'static str,
}

fn rule(expression: impl Into<String>, message: &'static str) -> Rule {
    Rule {
        expression: expression.into(),
        message,
    }
}

/// A policy over `resources` of `group` (create and update), its rules, and its binding.
struct Policy {
    name: &'static str,
    group: &'static str,
    resources: &'static [&'static str],
    rules: Vec<Rule>,
}

fn tenant_namespaces() -> Value {
    json!({"matchExpressions": [{"key": BUREAU_LABEL, "operator": "Exists"}]})
}

impl Policy {
    fn policy(&self) -> Value {
        let validations: Vec<Value> = self
            .rules
            .iter()
            .map(|r| json!({"expression": r.expression, "message": r.message, "reason": "Forbidden"}))
            .collect();
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": self.name, "labels": {"app.kubernetes.io/part-of": "zhengyun"}},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "namespaceSelector": tenant_namespaces(),
                    "resourceRules": [{
                        "apiGroups": [self.group], "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"], "resources": self.resources,
                    }],
                },
                "validations": validations,
            },
        })
    }

    fn binding(&self) -> Value {
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": self.name, "labels": {"app.kubernetes.io/part-of": "zhengyun"}},
            "spec": {
                "policyName": self.name,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": tenant_namespaces()},
            },
        })
    }
}

fn tenant_policies() -> Vec<Policy> {
    let standard = STANDARD_TOLERATIONS
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    vec![
        Policy {
            name: "zhengyun-tenant-pods",
            group: "",
            resources: &["pods"],
            rules: vec![
                rule(
                    format!(
                        "!has(object.spec.priorityClassName) || object.spec.priorityClassName == '' || \
                         (has(namespaceObject.metadata.annotations) && \
                          (object.spec.priorityClassName == namespaceObject.metadata.annotations[?'{PRIORITY_CLASS_ANNOTATION}'].orValue('') || \
                           object.spec.priorityClassName == namespaceObject.metadata.annotations[?'{BURST_CLASS_ANNOTATION}'].orValue('')))"
                    ),
                    "a pod may use only its environment's PriorityClass (the namespace's annotation zhengyun.io/priority-class), \
                     or the burst class (annotation zhengyun.io/burst-priority-class) while the capacity pool lends; \
                     borrowing is off unless the namespace carries that annotation",
                ),
                rule(
                    "request.operation != 'CREATE' || !has(object.spec.nodeName) || object.spec.nodeName == ''",
                    "a pod may not choose its node (spec.nodeName); the scheduler places it",
                ),
                rule(
                    format!(
                        "!has(object.spec.tolerations) || object.spec.tolerations.all(t, has(t.key) && t.key in [{standard}])"
                    ),
                    "a pod may tolerate only the standard node.kubernetes.io/not-ready and unreachable taints",
                ),
            ],
        },
        Policy {
            name: "zhengyun-tenant-services",
            group: "",
            resources: &["services"],
            rules: vec![
                rule(
                    "!has(object.spec.externalIPs) || size(object.spec.externalIPs) == 0",
                    "a service may not claim external IPs (spec.externalIPs)",
                ),
                rule(
                    "!has(object.spec.type) || object.spec.type != 'ExternalName'",
                    "a service may not be of type ExternalName",
                ),
            ],
        },
        Policy {
            name: "zhengyun-tenant-disruption-budgets",
            group: "policy",
            resources: &["poddisruptionbudgets"],
            rules: vec![
                rule(
                    "!has(object.spec.minAvailable)",
                    "a PodDisruptionBudget must use maxUnavailable, not minAvailable, so that node drains can always proceed",
                ),
                rule(
                    "has(object.spec.maxUnavailable) && (type(object.spec.maxUnavailable) == int ? \
                     object.spec.maxUnavailable >= 1 : \
                     (object.spec.maxUnavailable.matches('^[0-9]+%$') && \
                      int(object.spec.maxUnavailable.replace('%', '')) >= 1))",
                    "a PodDisruptionBudget's maxUnavailable must be at least 1 pod or 1%, so that node drains can always proceed",
                ),
            ],
        },
        Policy {
            name: "zhengyun-tenant-ingresses",
            group: "networking.k8s.io",
            resources: &["ingresses"],
            rules: vec![
                rule(
                    "!has(object.spec.defaultBackend)",
                    "an Ingress may not take every hostname (spec.defaultBackend): name its hosts in its rules",
                ),
                rule(
                    "!has(object.spec.rules) || object.spec.rules.all(r, has(r.host) && r.host != '')",
                    "every rule of an Ingress must name its host",
                ),
                rule(
                    format!(
                        "(!has(object.spec.rules) || object.spec.rules.all(r, !has(r.host) || {})) && \
                         (!has(object.spec.tls) || object.spec.tls.all(t, !has(t.hosts) || t.hosts.all(h, {})))",
                        published("r.host"),
                        published("h")
                    ),
                    HOSTNAMES_MESSAGE,
                ),
            ],
        },
        Policy {
            name: "zhengyun-tenant-routes",
            group: "gateway.networking.k8s.io",
            resources: &["httproutes", "grpcroutes", "tlsroutes"],
            rules: vec![
                rule(
                    "has(object.spec.hostnames) && size(object.spec.hostnames) > 0",
                    "a route must name its hostnames (spec.hostnames): without them it takes every hostname of its gateway",
                ),
                rule(
                    format!(
                        "!has(object.spec.hostnames) || object.spec.hostnames.all(h, {})",
                        published("h")
                    ),
                    HOSTNAMES_MESSAGE,
                ),
            ],
        },
    ]
}

/// Why a hostname is refused.
const HOSTNAMES_MESSAGE: &str = "a bureau may publish only hostnames under its own domains: \
    <bureau>.<the platform's domain> and the domains granted to it, listed in its namespaces' \
    zhengyun.io/hostnames annotation";

/// A CEL expression: whether hostname `host` (a wildcard `*.x` counts as `x`) is one of the
/// namespace's published domains or a name below one.
fn published(host: &str) -> String {
    format!(
        "namespaceObject.metadata.?annotations.orValue({{}})[?'{HOSTNAMES_ANNOTATION}'].orValue('')\
         .split(',').exists(d, d != '' && ((({host}).startsWith('*.') ? ({host}).substring(2) : ({host})) == d || \
         (({host}).startsWith('*.') ? ({host}).substring(2) : ({host})).endsWith('.' + d)))"
    )
}

fn typed<K: serde::de::DeserializeOwned>(value: Value) -> K {
    serde_json::from_value(value).expect("a policy written here matches its Kubernetes type")
}

/// The admission policies: the tenant ones, then the rate-card one.
///
/// # Panics
///
/// Never in practice: each object is fixed JSON of its own Kubernetes type, checked by a test.
pub fn admission_policies() -> Vec<ValidatingAdmissionPolicy> {
    tenant_policies()
        .iter()
        .map(|p| typed(p.policy()))
        .chain([
            typed(rate_card_policy()),
            typed(service_level_policy()),
            typed(bureau_domains_policy()),
        ])
        .collect()
}

/// The bindings of [`admission_policies`]: every namespace with a bureau label for the tenant
/// policies; every existing `RateCard` as a param for the rate-card one; the capacity pool for
/// the service-level and bureau-domain ones.
///
/// # Panics
///
/// Never in practice (see [`admission_policies`]).
pub fn admission_policy_bindings() -> Vec<ValidatingAdmissionPolicyBinding> {
    tenant_policies()
        .iter()
        .map(|p| typed(p.binding()))
        .chain([
            typed(rate_card_binding()),
            typed(pool_param_binding(SERVICE_LEVEL_POLICY)),
            typed(pool_param_binding(BUREAU_DOMAINS_POLICY)),
        ])
        .collect()
}

/// Kubernetes objects as one multi-document YAML stream, each document opened by `---`.
///
/// # Panics
///
/// Never in practice: Kubernetes objects are plain data with string keys.
pub fn yaml_stream<T: Serialize>(objects: &[T]) -> String {
    objects
        .iter()
        .map(|obj| {
            let yaml = serde_yaml::to_string(obj).expect("a Kubernetes object serializes to YAML");
            format!("---\n{yaml}")
        })
        .collect()
}

/// The policies and their bindings as one multi-document YAML stream (`zhengyun policies`).
pub fn admission_policies_yaml() -> String {
    yaml_stream(&admission_policies()) + &yaml_stream(&admission_policy_bindings())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_has_its_binding_for_tenant_namespaces_only() {
        let policies = admission_policies();
        let bindings = admission_policy_bindings();
        assert_eq!(policies.len(), bindings.len());
        for (policy, binding) in policies.iter().zip(&bindings) {
            let spec = &binding.spec;
            if [
                RATE_CARD_POLICY,
                SERVICE_LEVEL_POLICY,
                BUREAU_DOMAINS_POLICY,
            ]
            .contains(&spec.policy_name.as_str())
            {
                let param = spec.param_ref.as_ref().expect("a param");
                assert_eq!(param.parameter_not_found_action.as_deref(), Some("Allow"));
                continue;
            }
            assert_eq!(
                Some(spec.policy_name.as_str()),
                policy.metadata.name.as_deref()
            );
            assert_eq!(spec.validation_actions, ["Deny"]);
            let selector = spec
                .match_resources
                .as_ref()
                .and_then(|m| m.namespace_selector.as_ref())
                .expect("a namespace selector");
            let exprs = selector.match_expressions.as_ref().expect("expressions");
            assert_eq!(exprs[0].key, BUREAU_LABEL);
            let policy_spec = policy.spec.as_ref().expect("spec");
            assert_eq!(policy_spec.failure_policy.as_deref(), Some("Fail"));
            assert!(!policy_spec.validations.as_ref().expect("rules").is_empty());
        }
    }

    #[test]
    fn the_yaml_stream_is_deterministic_and_holds_policies_then_bindings() {
        let yaml = admission_policies_yaml();
        assert_eq!(yaml, admission_policies_yaml());
        let kinds: Vec<String> = yaml
            .lines()
            .filter_map(|l| l.strip_prefix("kind: "))
            .map(str::to_owned)
            .collect();
        assert_eq!(
            kinds,
            [
                "ValidatingAdmissionPolicy",
                "ValidatingAdmissionPolicy",
                "ValidatingAdmissionPolicy",
                "ValidatingAdmissionPolicy",
                "ValidatingAdmissionPolicy",
                "ValidatingAdmissionPolicy",
                "ValidatingAdmissionPolicy",
                "ValidatingAdmissionPolicy",
                "ValidatingAdmissionPolicyBinding",
                "ValidatingAdmissionPolicyBinding",
                "ValidatingAdmissionPolicyBinding",
                "ValidatingAdmissionPolicyBinding",
                "ValidatingAdmissionPolicyBinding",
                "ValidatingAdmissionPolicyBinding",
                "ValidatingAdmissionPolicyBinding",
                "ValidatingAdmissionPolicyBinding"
            ]
        );
    }
}
