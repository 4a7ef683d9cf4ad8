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
use kube::{Api, Client, Config};
use serde_json::{Value, json};
use zhengyun_e2e::operator::ensure_operator;
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
