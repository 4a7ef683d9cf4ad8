//! Tenant isolation, modelled on the Kubernetes multi-tenancy benchmark (MTB) checks that apply
//! to a namespace-per-environment platform: a bureau admin, impersonated through the API
//! server with the bureau's admin group, works freely in its own namespace and nowhere else.
//!
//! Each check names the MTB profile check it follows.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod, ResourceQuota, Service};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Config, ResourceExt};
use serde_json::{Value, json};
use zhengyun_e2e::operator::ensure_operator;
use zhengyun_e2e::tenants::{create_bureau, create_ready_environment};
use zhengyun_e2e::{client, eventually, unique_name};
use zhengyun_model::crd::{Bureau, CapacityPool, Environment, EnvironmentPhase, RateCard};

const WAIT: Duration = Duration::from_secs(180);

async fn impersonate(user: &str, group: &str) -> anyhow::Result<Client> {
    let mut config = Config::infer().await?;
    config.auth_info.impersonate = Some(user.into());
    config.auth_info.impersonate_groups = Some(vec![group.to_owned()]);
    Ok(Client::try_from(config)?)
}

/// Asserts that the API server refused `result` with one of `codes`.
fn refused<T: std::fmt::Debug>(result: Result<T, kube::Error>, codes: &[u16], check: &str) {
    match result {
        Err(kube::Error::Api(status)) => {
            assert!(
                codes.contains(&status.code),
                "{check}: got {} {}",
                status.code,
                status.message
            )
        }
        other => panic!("{check}: expected a refusal {codes:?}, got {other:?}"),
    }
}

fn pod(name: &str, spec: Value) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(
        json!({"metadata": {"name": name}, "spec": spec}),
    )?)
}

/// A pod spec that passes Pod Security `restricted`, with `extra` merged into its container.
fn restricted_spec(container_extra: Value, pod_extra: Value) -> Value {
    let mut container = json!({
        "name": "app", "image": "registry.local/wjw/app:1",
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}
    });
    merge(&mut container, container_extra);
    let mut spec = json!({
        "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container]
    });
    merge(&mut spec, pod_extra);
    spec
}

fn merge(target: &mut Value, extra: Value) {
    if let (Some(target), Value::Object(extra)) = (target.as_object_mut(), extra) {
        for (k, v) in extra {
            match (target.get_mut(&k), v) {
                (Some(existing @ Value::Object(_)), v @ Value::Object(_)) => merge(existing, v),
                (_, v) => {
                    target.insert(k, v);
                }
            }
        }
    }
}

#[tokio::test]
async fn a_bureau_admin_is_confined_to_its_own_namespaces() -> anyhow::Result<()> {
    ensure_operator().await?;
    let admin_client = client().await?;
    let (home, away) = (unique_name("iso-a"), unique_name("iso-b"));
    let group = format!("{home}-admins");
    let bureaus: Api<Bureau> = Api::all(admin_client.clone());
    for (code, groups) in [(&home, vec![group.clone()]), (&away, vec![])] {
        let b: Bureau = serde_json::from_value(json!({
            "apiVersion": "zhengyun.io/v1alpha1", "kind": "Bureau", "metadata": {"name": code},
            "spec": {"displayName": "区退役军人事务局", "kind": "bureau",
                     "quota": {"cpu": "4", "memory": "8Gi", "storage": "10Gi"}, "adminGroups": groups}
        }))?;
        bureaus.create(&PostParams::default(), &b).await?;
    }
    let envs: Api<Environment> = Api::all(admin_client.clone());
    let (ns, other_ns) = (format!("{home}-dev"), format!("{away}-dev"));
    for (code, name) in [(&home, &ns), (&away, &other_ns)] {
        let env: Environment = serde_json::from_value(json!({
            "apiVersion": "zhengyun.io/v1alpha1", "kind": "Environment", "metadata": {"name": name},
            "spec": {"bureau": code, "purpose": "dev", "tier": "bronze",
                     "quota": {"cpu": "2", "memory": "4Gi", "storage": "5Gi"}}
        }))?;
        envs.create(&PostParams::default(), &env).await?;
    }
    for name in [&ns, &other_ns] {
        eventually(&format!("{name} Ready"), WAIT, || async {
            let env = envs.get(name).await?;
            Ok((env.status.and_then(|s| s.phase) == Some(EnvironmentPhase::Ready)).then_some(()))
        })
        .await?;
    }
    // RoleBindings are in place once Ready; give the authorizer's cache a moment to see them.
    let tenant = impersonate("zhang.min@tyjrj", &group).await?;
    let pods: Api<Pod> = Api::namespaced(tenant.clone(), &ns);
    eventually("the tenant can list its own pods", WAIT, || async {
        Ok(pods
            .list(&ListParams::default())
            .await
            .is_ok()
            .then_some(()))
    })
    .await?;

    // MTB block-multitenant-resources: another tenant's namespace is out of reach.
    refused(
        Api::<Pod>::namespaced(tenant.clone(), &other_ns)
            .list(&ListParams::default())
            .await,
        &[403],
        "list pods in another bureau's namespace",
    );
    refused(
        Api::<Service>::namespaced(tenant.clone(), &other_ns)
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                "metadata": {"name": "intruder"}, "spec": {"ports": [{"port": 80}]}}))?,
            )
            .await,
        &[403],
        "create a service in another bureau's namespace",
    );

    // MTB block-cluster-resources: no cluster-scoped objects, not even reading most of them.
    refused(
        Api::<Namespace>::all(tenant.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": format!("{home}-shadow")}}))?,
            )
            .await,
        &[403],
        "create a namespace",
    );
    refused(
        Api::<Namespace>::all(tenant.clone())
            .list(&ListParams::default())
            .await,
        &[403],
        "list namespaces",
    );
    refused(
        Api::<ClusterRole>::all(tenant.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(
                    json!({"metadata": {"name": format!("{home}-root")}, "rules": []}),
                )?,
            )
            .await,
        &[403],
        "create a ClusterRole",
    );
    refused(
        Api::<StorageClass>::all(tenant.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(
                    json!({"metadata": {"name": format!("{home}-fast")}, "provisioner": "x"}),
                )?,
            )
            .await,
        &[403],
        "create a StorageClass",
    );
    refused(
        Api::<Bureau>::all(tenant.clone())
            .list(&ListParams::default())
            .await,
        &[403],
        "list bureaus",
    );
    refused(
        Api::<CapacityPool>::all(tenant.clone())
            .list(&ListParams::default())
            .await,
        &[403],
        "list the capacity pool",
    );
    refused(
        Api::<RateCard>::all(tenant.clone())
            .list(&ListParams::default())
            .await,
        &[403],
        "list rate cards",
    );
    refused(
        Api::<Environment>::all(tenant.clone())
            .list(&ListParams::default())
            .await,
        &[403],
        "list environments",
    );

    // MTB block-modification-of-resource-quotas (and creating a second, larger one).
    refused(
        Api::<ResourceQuota>::namespaced(tenant.clone(), &ns)
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                "metadata": {"name": "more"}, "spec": {"hard": {"requests.cpu": "100"}}}))?,
            )
            .await,
        &[403],
        "create another ResourceQuota",
    );

    // MTB block-privileged-containers, block-host-path, block-host-networking-ports,
    // block-host-pid / ipc, block-add-capabilities, require-run-as-non-root: Pod Security
    // `restricted` refuses them at admission.
    let forbidden_pods = [
        (
            "privileged",
            restricted_spec(json!({"securityContext": {"privileged": true}}), json!({})),
        ),
        (
            "hostpath",
            restricted_spec(
                json!({"volumeMounts": [{"name": "root", "mountPath": "/host"}]}),
                json!({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}),
            ),
        ),
        (
            "hostnetwork",
            restricted_spec(json!({}), json!({"hostNetwork": true})),
        ),
        (
            "hostport",
            restricted_spec(
                json!({"ports": [{"containerPort": 80, "hostPort": 80}]}),
                json!({}),
            ),
        ),
        (
            "hostpid",
            restricted_spec(json!({}), json!({"hostPID": true})),
        ),
        (
            "hostipc",
            restricted_spec(json!({}), json!({"hostIPC": true})),
        ),
        (
            "netadmin",
            restricted_spec(
                json!({"securityContext": {"capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}}),
                json!({}),
            ),
        ),
        (
            "root",
            restricted_spec(
                json!({}),
                json!({"securityContext": {"runAsNonRoot": false, "runAsUser": 0}}),
            ),
        ),
        (
            "escalation",
            restricted_spec(
                json!({"securityContext": {"allowPrivilegeEscalation": true}}),
                json!({}),
            ),
        ),
    ];
    for (name, spec) in forbidden_pods {
        refused(
            pods.create(&PostParams::default(), &pod(name, spec)?).await,
            &[403, 422],
            &format!("create a {name} pod"),
        );
    }

    // MTB block-nodeport: the ResourceQuota allows no NodePort services.
    refused(
        Api::<Service>::namespaced(tenant.clone(), &ns)
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                "metadata": {"name": "exposed"},
                "spec": {"type": "NodePort", "selector": {"app": "x"}, "ports": [{"port": 80}]}}))?,
            )
            .await,
        &[403],
        "create a NodePort service",
    );

    // MTB block-network-policy-modification: the baseline policies stay.
    refused(
        Api::<k8s_openapi::api::networking::v1::NetworkPolicy>::namespaced(tenant.clone(), &ns)
            .patch(
                "zhengyun-default-deny",
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"policyTypes": []}})),
            )
            .await,
        &[403],
        "weaken the default-deny policy",
    );

    // And what a tenant is for: a restricted pod and a ClusterIP service at home are fine.
    pods.create(
        &PostParams::default(),
        &pod("app", restricted_spec(json!({}), json!({})))?,
    )
    .await?;
    Api::<Service>::namespaced(tenant, &ns)
        .create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": {"name": "app"}, "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}}))?)
        .await?;

    for name in [&ns, &other_ns] {
        envs.delete(name, &DeleteParams::default()).await?;
    }
    for name in [&ns, &other_ns] {
        eventually(&format!("{name} gone"), WAIT, || async {
            Ok(envs.get_opt(name).await?.is_none().then_some(()))
        })
        .await?;
    }
    for code in [&home, &away] {
        bureaus.delete(code, &DeleteParams::default()).await?;
    }
    Ok(())
}

/// A bureau with one bronze environment `<code>-dev`, Ready, and an impersonated admin of it.
struct Tenant {
    code: String,
    ns: String,
    client: Client,
}

async fn bronze_tenant(prefix: &str) -> anyhow::Result<Tenant> {
    ensure_operator().await?;
    let admin = client().await?;
    let code = unique_name(prefix);
    let group = format!("{code}-admins");
    create_bureau(
        &admin,
        &code,
        json!({"displayName": "区水务局", "kind": "bureau",
               "quota": {"cpu": "4", "memory": "8Gi", "storage": "10Gi"}, "adminGroups": [group]}),
    )
    .await?;
    let ns = format!("{code}-dev");
    create_ready_environment(
        &admin,
        &ns,
        json!({"bureau": code, "purpose": "dev", "tier": "bronze",
               "quota": {"cpu": "2", "memory": "4Gi", "storage": "5Gi"}}),
    )
    .await?;
    let client = impersonate("li.na@swj", &group).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    eventually("the tenant can list its own pods", WAIT, || async {
        Ok(pods
            .list(&ListParams::default())
            .await
            .is_ok()
            .then_some(()))
    })
    .await?;
    Ok(Tenant { code, ns, client })
}

async fn remove_tenant(tenant: &Tenant) -> anyhow::Result<()> {
    let admin = client().await?;
    let envs: Api<Environment> = Api::all(admin.clone());
    envs.delete(&tenant.ns, &DeleteParams::default()).await?;
    eventually(&format!("{} gone", tenant.ns), WAIT, || async {
        Ok(envs.get_opt(&tenant.ns).await?.is_none().then_some(()))
    })
    .await?;
    Api::<Bureau>::all(admin)
        .delete(&tenant.code, &DeleteParams::default())
        .await?;
    Ok(())
}

#[tokio::test]
async fn tenant_pods_keep_their_tier_priority_and_let_the_scheduler_place_them()
-> anyhow::Result<()> {
    let tenant = bronze_tenant("iso-prio").await?;
    let pods: Api<Pod> = Api::namespaced(tenant.client.clone(), &tenant.ns);
    let own_class = Api::<Namespace>::all(client().await?)
        .get(&tenant.ns)
        .await?
        .annotations()
        .get("zhengyun.io/priority-class")
        .cloned()
        .expect("the namespace names its PriorityClass");
    let node = "kwok-node-0";
    let refused_pods = [
        (
            "critical",
            json!({"priorityClassName": "system-node-critical"}),
        ),
        ("gold", json!({"priorityClassName": "zhengyun-gold"})),
        // Borrowing is off in this suite's pool.
        ("burst", json!({"priorityClassName": "zhengyun-burst"})),
        ("pinned", json!({"nodeName": node})),
        ("tolerant", json!({"tolerations": [{"operator": "Exists"}]})),
        (
            "master",
            json!({"tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]}),
        ),
    ];
    for (name, extra) in refused_pods {
        refused(
            pods.create(
                &PostParams::default(),
                &pod(name, restricted_spec(json!({}), extra))?,
            )
            .await,
            &[403, 422],
            &format!("create a {name} pod"),
        );
    }
    // Behind the policy, a second line: the namespace's quota allows no pod of another class.
    let second_line = Api::<ResourceQuota>::namespaced(client().await?, &tenant.ns)
        .get("zhengyun-other-priority-classes")
        .await?;
    let scope = serde_json::to_value(&second_line.spec)?;
    assert_eq!(scope["hard"], json!({"pods": "0"}));
    // (the burst class has a quota of its own, and the policy admits it only while the pool
    // lends)
    assert_eq!(
        scope["scopeSelector"]["matchExpressions"][1]["values"],
        json!([own_class, "zhengyun-burst"])
    );
    // Its own class, and the standard tolerations, are fine.
    pods.create(
        &PostParams::default(),
        &pod(
            "own-class",
            restricted_spec(
                json!({}),
                json!({"priorityClassName": own_class,
                       "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                        "effect": "NoExecute", "tolerationSeconds": 60}]}),
            ),
        )?,
    )
    .await?;
    remove_tenant(&tenant).await
}

#[tokio::test]
async fn tenant_services_stay_inside_and_disruption_budgets_always_let_a_drain_proceed()
-> anyhow::Result<()> {
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    let tenant = bronze_tenant("iso-svc").await?;
    let services: Api<Service> = Api::namespaced(tenant.client.clone(), &tenant.ns);
    let service = |name: &str, spec: Value| -> anyhow::Result<Service> {
        Ok(serde_json::from_value(
            json!({"metadata": {"name": name}, "spec": spec}),
        )?)
    };
    refused(
        services
            .create(
                &PostParams::default(),
                &service(
                    "intercept",
                    json!({"selector": {"app": "x"}, "ports": [{"port": 80}], "externalIPs": ["203.0.113.10"]}),
                )?,
            )
            .await,
        &[403, 422],
        "create a service with externalIPs",
    );
    refused(
        services
            .create(
                &PostParams::default(),
                &service(
                    "outside",
                    json!({"type": "ExternalName", "externalName": "db.example.org"}),
                )?,
            )
            .await,
        &[403, 422],
        "create an ExternalName service",
    );
    let plain = services
        .create(
            &PostParams::default(),
            &service(
                "plain",
                json!({"selector": {"app": "x"}, "ports": [{"port": 80}]}),
            )?,
        )
        .await?;
    refused(
        services
            .patch(
                &plain.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"externalIPs": ["203.0.113.10"]}})),
            )
            .await,
        &[403, 422],
        "add externalIPs to a service",
    );

    let budgets: Api<PodDisruptionBudget> = Api::namespaced(tenant.client.clone(), &tenant.ns);
    let budget = |name: &str, spec: Value| -> anyhow::Result<PodDisruptionBudget> {
        let mut spec = spec;
        merge(
            &mut spec,
            json!({"selector": {"matchLabels": {"app": "x"}}}),
        );
        Ok(serde_json::from_value(
            json!({"metadata": {"name": name}, "spec": spec}),
        )?)
    };
    for (name, spec) in [
        ("all", json!({"minAvailable": "100%"})),
        ("three", json!({"minAvailable": 3})),
        ("none", json!({"maxUnavailable": 0})),
        ("none-percent", json!({"maxUnavailable": "0%"})),
    ] {
        refused(
            budgets
                .create(&PostParams::default(), &budget(name, spec)?)
                .await,
            &[403, 422],
            &format!("create the disruption budget {name}"),
        );
    }
    for (name, spec) in [
        ("one", json!({"maxUnavailable": 1})),
        ("quarter", json!({"maxUnavailable": "25%"})),
    ] {
        budgets
            .create(&PostParams::default(), &budget(name, spec)?)
            .await?;
    }
    remove_tenant(&tenant).await
}

#[tokio::test]
async fn an_environment_never_takes_over_or_deletes_a_namespace_it_did_not_create()
-> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::api::rbac::v1::RoleBinding;
    ensure_operator().await?;
    let admin = client().await?;
    let code = unique_name("iso-ns");
    let group = format!("{code}-admins");
    create_bureau(
        &admin,
        &code,
        json!({"displayName": "区档案局", "kind": "bureau",
               "quota": {"cpu": "4", "memory": "8Gi"}, "adminGroups": [group]}),
    )
    .await?;
    let bureaus: Api<Bureau> = Api::all(admin.clone());
    // A namespace someone else made, with a secret in it, named like one of the bureau's.
    let legacy = format!("{code}-prod-legacy");
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": legacy}}))?,
        )
        .await?;
    Api::<Secret>::namespaced(admin.clone(), &legacy)
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "db"}, "stringData": {"password": "s3cret"}}),
            )?,
        )
        .await?;

    let envs: Api<Environment> = Api::all(admin.clone());
    let env: Environment = serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "Environment", "metadata": {"name": legacy},
        "spec": {"bureau": code, "purpose": "prod", "tier": "bronze",
                 "quota": {"cpu": "1", "memory": "1Gi"}}
    }))?;
    envs.create(&PostParams::default(), &env).await?;
    eventually(
        "the environment reports NamespaceConflict",
        WAIT,
        || async {
            let env = envs.get(&legacy).await?;
            let conflict = env
                .status
                .iter()
                .flat_map(|s| s.conditions.iter())
                .any(|c| c.type_ == "Ready" && c.reason == "NamespaceConflict");
            Ok(conflict.then_some(()))
        },
    )
    .await?;
    // Nothing was applied to the namespace: no labels, no owner, no bindings, no quota.
    let ns = namespaces.get(&legacy).await?;
    assert!(!ns.labels().contains_key("zhengyun.io/bureau"), "{ns:?}");
    assert!(ns.owner_references().is_empty(), "{ns:?}");
    let bindings = Api::<RoleBinding>::namespaced(admin.clone(), &legacy)
        .list(&ListParams::default())
        .await?;
    assert!(bindings.items.is_empty(), "{:?}", bindings.items);
    let quotas = Api::<ResourceQuota>::namespaced(admin.clone(), &legacy)
        .list(&ListParams::default())
        .await?;
    assert!(quotas.items.is_empty());
    // The bureau's admins cannot read its secrets.
    let tenant = impersonate("wang.fang@daj", &group).await?;
    refused(
        Api::<Secret>::namespaced(tenant, &legacy).get("db").await,
        &[403],
        "read a secret in a namespace the bureau never owned",
    );

    // Deleting the environment leaves the namespace alone.
    envs.delete(&legacy, &DeleteParams::default()).await?;
    eventually("environment gone", WAIT, || async {
        Ok(envs.get_opt(&legacy).await?.is_none().then_some(()))
    })
    .await?;
    let ns = namespaces.get(&legacy).await?;
    assert!(ns.metadata.deletion_timestamp.is_none(), "{ns:?}");
    Api::<Secret>::namespaced(admin.clone(), &legacy)
        .get("db")
        .await?;
    namespaces.delete(&legacy, &DeleteParams::default()).await?;
    bureaus.delete(&code, &DeleteParams::default()).await?;
    Ok(())
}

#[tokio::test]
async fn a_new_namespace_gets_its_guard_rails_before_anyone_is_bound_to_it() -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::LimitRange;
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use k8s_openapi::api::rbac::v1::RoleBinding;
    let tenant = bronze_tenant("iso-order").await?;
    let admin = client().await?;
    // None of these objects is written again once created, so each resourceVersion is the
    // store's revision of its creation (the devcluster's etcd numbers them in order).
    let revision = |rv: Option<&String>| -> u64 {
        rv.and_then(|v| v.parse().ok())
            .expect("a numeric resourceVersion")
    };
    let limits = Api::<LimitRange>::namespaced(admin.clone(), &tenant.ns)
        .list(&ListParams::default())
        .await?;
    let policies = Api::<NetworkPolicy>::namespaced(admin.clone(), &tenant.ns)
        .list(&ListParams::default())
        .await?;
    let bindings = Api::<RoleBinding>::namespaced(admin.clone(), &tenant.ns)
        .list(&ListParams::default())
        .await?;
    assert!(!bindings.items.is_empty() && !policies.items.is_empty());
    let rails = limits
        .items
        .iter()
        .map(|l| revision(l.metadata.resource_version.as_ref()))
        .chain(
            policies
                .items
                .iter()
                .map(|p| revision(p.metadata.resource_version.as_ref())),
        )
        .max()
        .expect("guard rails");
    let first_binding = bindings
        .items
        .iter()
        .map(|b| revision(b.metadata.resource_version.as_ref()))
        .min()
        .expect("bindings");
    assert!(
        rails < first_binding,
        "a role binding (revision {first_binding}) was written before the last guard rail ({rails})"
    );
    remove_tenant(&tenant).await
}
