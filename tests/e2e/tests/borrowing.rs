//! Borrowing on the devcluster: a bureau at its quota runs burst pods on capacity the pool can
//! lend, within an allowance the operator sets; the pool stops lending and burst pods are
//! refused with a clear message.
//!
//! These tests change the capacity pool, which every environment shares, so they run on their
//! own after the rest of the suite (`scripts/e2e.sh` runs this binary alone, one test at a
//! time; the tests live in [`pool_wide`] so that the main run can skip them by name).

mod pool_wide {
    use std::time::Duration;

    use k8s_openapi::api::core::v1::{Namespace, Pod};
    use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
    use kube::{Api, Client, ResourceExt};
    use serde_json::json;
    use zhengyun_e2e::operator::ensure_operator;
    use zhengyun_e2e::{client, eventually, unique_name};
    use zhengyun_model::crd::{Bureau, CapacityPool, Environment, EnvironmentPhase};
    use zhengyun_model::quantity::{Resource, Unit};

    const WAIT: Duration = Duration::from_secs(180);
    /// The field manager of the pool's borrowing policy in these tests.
    const MANAGER: &str = "zhengyun-e2e-borrowing";

    fn code(prefix: &str) -> String {
        unique_name(prefix)
            .chars()
            .take(30)
            .collect::<String>()
            .trim_end_matches('-')
            .to_owned()
    }

    fn pod(name: &str, class: Option<&str>, cpu: &str) -> anyhow::Result<Pod> {
        let resources = json!({"cpu": cpu, "memory": "64Mi"});
        let mut spec = json!({
            "terminationGracePeriodSeconds": 0,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "app", "image": "registry.local/batch-report:1",
                "resources": {"requests": resources, "limits": resources},
                "securityContext": {"allowPrivilegeEscalation": false,
                                    "capabilities": {"drop": ["ALL"]}}}]
        });
        if let Some(class) = class {
            spec["priorityClassName"] = json!(class);
        }
        Ok(serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec,
        }))?)
    }

    /// Sets the pool's borrowing policy (`None` gives the field back: borrowing off).
    async fn set_borrowing(
        client: &Client,
        policy: Option<serde_json::Value>,
    ) -> anyhow::Result<()> {
        let pools: Api<CapacityPool> = Api::all(client.clone());
        let mut body = json!({
            "apiVersion": "zhengyun.io/v1alpha1", "kind": "CapacityPool",
            "metadata": {"name": "default"},
        });
        if let Some(policy) = policy {
            body["spec"] = json!({"borrowing": policy});
        }
        pools
            .patch(
                "default",
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await?;
        Ok(())
    }

    /// An admitted environment of a new bureau, granted `cpu` and 1Gi; returns its name.
    async fn admitted_environment(client: &Client, cpu: &str) -> anyhow::Result<String> {
        let code = code("e2e-burst");
        let bureau: Bureau = serde_json::from_value(json!({
            "apiVersion": "zhengyun.io/v1alpha1", "kind": "Bureau",
            "metadata": {"name": code},
            "spec": {"displayName": "区城市管理委员会", "kind": "bureau",
                     "quota": {"cpu": cpu, "memory": "2Gi", "storage": "1Gi"},
                     "adminGroups": [], "viewerGroups": []},
        }))?;
        Api::<Bureau>::all(client.clone())
            .create(&PostParams::default(), &bureau)
            .await?;
        let name = format!("{code}-prod");
        let env: Environment = serde_json::from_value(json!({
            "apiVersion": "zhengyun.io/v1alpha1", "kind": "Environment",
            "metadata": {"name": name},
            "spec": {"bureau": code, "purpose": "prod", "tier": "silver",
                     "quota": {"cpu": cpu, "memory": "1Gi", "storage": "1Gi"}},
        }))?;
        let envs: Api<Environment> = Api::all(client.clone());
        envs.create(&PostParams::default(), &env).await?;
        eventually(&format!("environment {name} Ready"), WAIT, || async {
            let env = envs.get(&name).await?;
            let ready = env.status.and_then(|s| s.phase) == Some(EnvironmentPhase::Ready);
            Ok(ready.then_some(()))
        })
        .await?;
        Ok(name)
    }

    /// The environment's burst allowance of CPU in millicores, once it has one.
    async fn cpu_allowance(client: &Client, name: &str) -> anyhow::Result<Option<u64>> {
        let env = Api::<Environment>::all(client.clone()).get(name).await?;
        Ok(env
            .status
            .and_then(|s| s.burst_allowance)
            .and_then(|q| q.get(Resource::Cpu).cloned())
            .and_then(|q| Unit::Millicores.parse(q.as_str()).ok()))
    }

    async fn refusal(pods: &Api<Pod>, pod: &Pod) -> anyhow::Result<String> {
        match pods.create(&PostParams::default(), pod).await {
            Err(kube::Error::Api(status)) => Ok(status.message),
            Ok(p) => anyhow::bail!("pod {} was admitted", p.name_any()),
            Err(e) => Err(e.into()),
        }
    }

    #[tokio::test]
    async fn a_bureau_at_its_quota_runs_burst_pods_within_its_allowance_and_none_once_lending_stops()
    -> anyhow::Result<()> {
        ensure_operator().await?;
        let client = client().await?;
        set_borrowing(
            &client,
            Some(json!({"enabled": true, "maxBorrowPercent": 50, "hysteresisPercent": 0})),
        )
        .await?;
        let name = admitted_environment(&client, "1").await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &name);

        // At its quota: two guaranteed pods of 500m fill the granted CPU; a third is refused.
        for i in 0..2 {
            pods.create(
                &PostParams::default(),
                &pod(&format!("steady-{i}"), None, "500m")?,
            )
            .await?;
        }
        let over = refusal(&pods, &pod("steady-2", None, "500m")?).await?;
        assert!(over.contains("exceeded quota"), "{over}");

        // The pool lends: the allowance is half the granted CPU, the devcluster's nodes having
        // far more room than that.
        let allowance = eventually("a burst allowance", WAIT, || async {
            cpu_allowance(&client, &name).await
        })
        .await?;
        assert_eq!(allowance, 500, "50 % of 1 core");
        let burst = "zhengyun-burst";
        // The quota of burst pods follows the allowance once the operator has applied it.
        eventually("a burst pod admitted", WAIT, || async {
            match pods
                .create(
                    &PostParams::default(),
                    &pod("report-0", Some(burst), "300m")?,
                )
                .await
            {
                Ok(_) => Ok(Some(())),
                Err(kube::Error::Api(s)) if s.code == 403 => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
        .await?;
        eventually("the burst pod running", WAIT, || async {
            let p = pods.get("report-0").await?;
            Ok((p.status.and_then(|s| s.phase).as_deref() == Some("Running")).then_some(()))
        })
        .await?;
        // Beyond the allowance (300m + 300m > 500m): refused by the burst quota.
        let beyond = refusal(&pods, &pod("report-1", Some(burst), "300m")?).await?;
        assert!(
            beyond.contains("exceeded quota: zhengyun-burst"),
            "{beyond}"
        );
        // A guaranteed pod still cannot use the allowance.
        let guaranteed = refusal(&pods, &pod("steady-3", None, "100m")?).await?;
        assert!(guaranteed.contains("exceeded quota"), "{guaranteed}");

        // The pool stops lending: the allowance is withdrawn and new burst pods are refused by
        // the admission policy, with a message that says why.
        set_borrowing(&client, None).await?;
        eventually("the allowance withdrawn", WAIT, || async {
            Ok(cpu_allowance(&client, &name).await?.is_none().then_some(()))
        })
        .await?;
        let message = eventually("burst refused with borrowing off", WAIT, || async {
            match pods
                .create(
                    &PostParams::default(),
                    &pod("report-2", Some(burst), "100m")?,
                )
                .await
            {
                Err(kube::Error::Api(s))
                    if s.message.contains("burst") && s.message.contains("lends") =>
                {
                    Ok(Some(s.message))
                }
                Ok(_) => {
                    pods.delete("report-2", &DeleteParams::default()).await?;
                    Ok(None)
                }
                Err(_) => Ok(None),
            }
        })
        .await?;
        assert!(
            message.contains("zhengyun.io/burst-priority-class"),
            "{message}"
        );
        let ns = Api::<Namespace>::all(client.clone()).get(&name).await?;
        assert!(
            !ns.annotations()
                .contains_key("zhengyun.io/burst-priority-class")
        );

        Api::<Environment>::all(client.clone())
            .delete(&name, &DeleteParams::default())
            .await?;
        Ok(())
    }
}
