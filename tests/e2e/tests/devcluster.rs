//! The devcluster is a real Kubernetes control plane: quota admission refuses pods over a
//! namespace's ResourceQuota, the scheduler binds pods to simulated nodes where they reach
//! Running, the namespace controller finishes deletions, and RBAC denies the unprivileged.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Pod, ResourceQuota};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, Config};
use serde_json::json;
use zhengyun_e2e::{client, eventually, unique_name};

const WAIT: Duration = Duration::from_secs(120);

async fn namespace_with_cpu_quota(client: &Client, name: &str, cpu: &str) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    namespaces.create(&PostParams::default(), &ns).await?;
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), name);
    let quota = serde_json::from_value(json!({
        "metadata": {"name": "compute"},
        "spec": {"hard": {"cpu": cpu}}
    }))?;
    quotas.create(&PostParams::default(), &quota).await?;
    // Quota admission refuses pods until the quota controller has computed the usage.
    eventually("quota status", WAIT, || async {
        let q = quotas.get("compute").await?;
        Ok(q.status.and_then(|s| s.hard).map(|_| ()))
    })
    .await
}

fn deployment(name: &str, replicas: i32, cpu: &str) -> anyhow::Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "app",
                    "image": "registry.local/zhengyun/web:1",
                    "resources": {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}}
                }]}
            }
        }
    }))?)
}

async fn running_pods(pods: &Api<Pod>, app: &str) -> anyhow::Result<Vec<Pod>> {
    let list = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .collect())
}

#[tokio::test]
async fn quota_admission_refuses_pods_beyond_the_namespace_quota_and_admits_those_within()
-> anyhow::Result<()> {
    let client = client().await?;
    let ns = unique_name("e2e-quota");
    namespace_with_cpu_quota(&client, &ns, "1").await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);

    // Three replicas of 400m against cpu: 1 — two fit, the third is refused by quota admission.
    deployments
        .create(&PostParams::default(), &deployment("web", 3, "400m")?)
        .await?;
    let running = eventually("two running pods", WAIT, || async {
        let running = running_pods(&pods, "web").await?;
        Ok((running.len() == 2).then_some(running))
    })
    .await?;
    for pod in &running {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        assert!(
            node.starts_with("devcluster-node-"),
            "pod bound to a simulated node, got {node:?}"
        );
    }
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let refusal = eventually("a quota refusal on the ReplicaSet", WAIT, || async {
        let list = replica_sets
            .list(&ListParams::default().labels("app=web"))
            .await?;
        Ok(list.items.iter().find_map(|rs| {
            let conditions = rs.status.as_ref()?.conditions.as_ref()?;
            conditions
                .iter()
                .find(|c| c.type_ == "ReplicaFailure")
                .and_then(|c| c.message.clone())
        }))
    })
    .await?;
    assert!(
        refusal.contains("exceeded quota"),
        "refusal message: {refusal}"
    );
    let all = pods.list(&ListParams::default().labels("app=web")).await?;
    assert_eq!(
        all.items.len(),
        2,
        "the third pod must never have been created"
    );

    // A pod that alone exceeds the quota is refused at creation with 403 Forbidden.
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "too-big"},
        "spec": {"containers": [{"name": "app", "image": "registry.local/zhengyun/web:1",
            "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "2"}}}]}
    }))?;
    match pods.create(&PostParams::default(), &pod).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403);
            assert!(
                status.message.contains("exceeded quota"),
                "{}",
                status.message
            );
        }
        other => panic!("expected a quota refusal, got {other:?}"),
    }

    Api::<Namespace>::all(client)
        .delete(&ns, &DeleteParams::default())
        .await?;
    Ok(())
}

#[tokio::test]
async fn deleting_a_namespace_completes_and_removes_its_contents() -> anyhow::Result<()> {
    let client = client().await?;
    let ns = unique_name("e2e-delete");
    namespace_with_cpu_quota(&client, &ns, "2").await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment("web", 1, "100m")?)
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    eventually("a running pod", WAIT, || async {
        Ok((running_pods(&pods, "web").await?.len() == 1).then_some(()))
    })
    .await?;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.delete(&ns, &DeleteParams::default()).await?;
    eventually("the namespace to be gone", WAIT, || async {
        Ok(namespaces.get_opt(&ns).await?.is_none().then_some(()))
    })
    .await?;
    let leftover = pods.list(&ListParams::default()).await?;
    assert!(
        leftover.items.is_empty(),
        "pods left behind: {}",
        leftover.items.len()
    );
    Ok(())
}

#[tokio::test]
async fn rbac_forbids_an_impersonated_unprivileged_user() -> anyhow::Result<()> {
    let admin = client().await?;
    let ns = unique_name("e2e-rbac");
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
        )
        .await?;

    let mut config = Config::infer().await?;
    config.auth_info.impersonate = Some("zhengyun-e2e-nobody".into());
    config.auth_info.impersonate_groups = Some(vec!["zhengyun-e2e-nobodies".into()]);
    let nobody = Client::try_from(config)?;

    let pods: Api<Pod> = Api::namespaced(nobody.clone(), &ns);
    match pods.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{}", status.message),
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }
    let nobody_namespaces: Api<Namespace> = Api::all(nobody);
    let ns_obj: Namespace =
        serde_json::from_value(json!({"metadata": {"name": unique_name("e2e-rbac-x")}}))?;
    match nobody_namespaces
        .create(&PostParams::default(), &ns_obj)
        .await
    {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{}", status.message),
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }
    // The same calls succeed for the cluster admin, so the 403s above are RBAC, not a broken API.
    Api::<Pod>::namespaced(admin, &ns)
        .list(&ListParams::default())
        .await?;
    namespaces.delete(&ns, &DeleteParams::default()).await?;
    Ok(())
}
