//! The operator against the devcluster: onboarding, admission under concurrency, tenant RBAC,
//! drift repair, idempotence, restarts and bad specs.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    Event as CoreEvent, LimitRange, Namespace, ResourceQuota, Service,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Config, ResourceExt};
use serde_json::json;
use zhengyun_e2e::operator::{
    counter, ensure_operator, kill_and_restart_operator, operator_metrics,
};
use zhengyun_e2e::{client, eventually, unique_name};
use zhengyun_model::crd::{Bureau, Environment, EnvironmentPhase};
use zhengyun_model::quantity::Resource;

const WAIT: Duration = Duration::from_secs(180);

async fn setup() -> anyhow::Result<Client> {
    ensure_operator().await?;
    client().await
}

fn bureau(code: &str, cpu: &str, memory: &str, admins: &[&str]) -> anyhow::Result<Bureau> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "Bureau",
        "metadata": {"name": code},
        "spec": {
            "displayName": "区卫生健康委员会测试", "kind": "bureau",
            "quota": {"cpu": cpu, "memory": memory, "storage": "100Gi"},
            "adminGroups": admins, "viewerGroups": [format!("{code}-viewers")],
        }
    }))?)
}

fn environment(bureau: &str, name: &str, purpose: &str, cpu: &str) -> anyhow::Result<Environment> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "Environment",
        "metadata": {"name": name},
        "spec": {"bureau": bureau, "purpose": purpose, "tier": "silver",
                 "quota": {"cpu": cpu, "memory": "1Gi", "storage": "1Gi"}}
    }))?)
}

async fn create<K>(api: &Api<K>, obj: &K) -> anyhow::Result<K>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    Ok(api.create(&PostParams::default(), obj).await?)
}

fn phase(env: &Environment) -> Option<EnvironmentPhase> {
    env.status.as_ref().and_then(|s| s.phase)
}

async fn wait_ready(api: &Api<Environment>, name: &str) -> anyhow::Result<Environment> {
    eventually(&format!("environment {name} Ready"), WAIT, || async {
        let env = api.get(name).await?;
        Ok((phase(&env) == Some(EnvironmentPhase::Ready)).then_some(env))
    })
    .await
}

async fn delete_and_wait(client: &Client, names: &[String]) -> anyhow::Result<()> {
    let envs: Api<Environment> = Api::all(client.clone());
    for name in names {
        let _ = envs.delete(name, &DeleteParams::default()).await;
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for name in names {
        eventually(
            &format!("environment {name} and its namespace gone"),
            WAIT,
            || async {
                let gone = envs.get_opt(name).await?.is_none()
                    && namespaces.get_opt(name).await?.is_none();
                Ok(gone.then_some(()))
            },
        )
        .await?;
    }
    Ok(())
}

/// A fresh bureau code for one test: short enough for `<code>-dev-NN`.
fn code(prefix: &str) -> String {
    let name = unique_name(prefix);
    name.chars()
        .take(30)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned()
}

#[tokio::test]
async fn the_haidian_sample_tenants_are_onboarded_with_every_object_in_place() -> anyhow::Result<()>
{
    #[derive(serde::Deserialize)]
    struct Tenants {
        tenants: Vec<serde_json::Value>,
    }
    let client = setup().await?;
    let raw = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/tenants-haidian.yaml"
    ))?;
    let tenants: Tenants = serde_yaml::from_str(&raw)?;
    assert_eq!(tenants.tenants.len(), 71);
    let bureaus: Api<Bureau> = Api::all(client.clone());
    let envs: Api<Environment> = Api::all(client.clone());
    let apply = PatchParams::apply("zhengyun-e2e").force();
    let mut names = Vec::new();
    for t in &tenants.tenants {
        let code = t["code"].as_str().unwrap_or_default().to_owned();
        let mut spec = json!({
            "displayName": t["displayName"], "kind": t["kind"], "quota": t["quota"],
            "adminGroups": [format!("{code}-admins")], "viewerGroups": [format!("{code}-viewers")],
        });
        if let Some(parent) = t.get("parent") {
            spec["parent"] = parent.clone();
        }
        let b = json!({"apiVersion": "zhengyun.io/v1alpha1", "kind": "Bureau", "metadata": {"name": code}, "spec": spec});
        bureaus.patch(&code, &apply, &Patch::Apply(&b)).await?;
        let name = format!("{code}-dev");
        let env = json!({"apiVersion": "zhengyun.io/v1alpha1", "kind": "Environment", "metadata": {"name": name},
            "spec": {"bureau": code, "purpose": "dev", "tier": "bronze", "quota": {"cpu": "1", "memory": "2Gi", "storage": "10Gi"}}});
        envs.patch(&name, &apply, &Patch::Apply(&env)).await?;
        names.push((
            code,
            name,
            t["displayName"].as_str().unwrap_or_default().to_owned(),
        ));
    }

    for (code, name, display) in &names {
        let env = wait_ready(&envs, name).await?;
        assert_eq!(
            env.status.as_ref().and_then(|s| s.namespace.as_deref()),
            Some(name.as_str())
        );
        // The bureau's allocation is the sum of its admitted environments (other environments
        // of the same bureau may exist on a shared development cluster).
        let bureau = eventually(&format!("bureau {code} status"), WAIT, || async {
            let b = bureaus.get(code).await?;
            let theirs = envs
                .list(&ListParams::default().fields(&format!("spec.bureau={code}")))
                .await?
                .items;
            let admitted_millis: u64 = theirs
                .iter()
                .filter_map(|e| {
                    e.status
                        .as_ref()?
                        .admitted_quota
                        .as_ref()?
                        .to_amounts()
                        .ok()
                })
                .map(|a| a.get(Resource::Cpu))
                .sum();
            let allocated = b
                .status
                .as_ref()
                .and_then(|s| s.allocated.as_ref())
                .and_then(|a| a.to_amounts().ok());
            let count = b.status.as_ref().map(|s| s.environments as usize);
            let agrees = allocated.map(|a| a.get(Resource::Cpu)) == Some(admitted_millis)
                && count == Some(theirs.len());
            Ok((agrees && admitted_millis >= 1000).then_some(b))
        })
        .await?;
        assert_eq!(&bureau.spec.display_name, display);

        let ns = Api::<Namespace>::all(client.clone()).get(name).await?;
        let labels = ns.labels();
        assert_eq!(labels.get("zhengyun.io/bureau"), Some(code));
        assert_eq!(labels.get("zhengyun.io/environment"), Some(name));
        assert_eq!(
            labels.get("zhengyun.io/tier").map(String::as_str),
            Some("bronze")
        );
        assert_eq!(
            labels
                .get("pod-security.kubernetes.io/enforce")
                .map(String::as_str),
            Some("restricted")
        );

        let quota = Api::<ResourceQuota>::namespaced(client.clone(), name)
            .get("zhengyun-quota")
            .await?;
        let hard = quota.spec.and_then(|s| s.hard).unwrap_or_default();
        assert_eq!(hard.get("requests.cpu").map(|q| q.0.as_str()), Some("1"));
        assert_eq!(
            hard.get("requests.memory").map(|q| q.0.as_str()),
            Some("2Gi")
        );
        assert_eq!(
            hard.get("services.nodeports").map(|q| q.0.as_str()),
            Some("0")
        );
        for count in ["pods", "services", "count/secrets", "count/configmaps"] {
            assert!(hard.contains_key(count), "{count} is capped");
        }
        Api::<LimitRange>::namespaced(client.clone(), name)
            .get("zhengyun-defaults")
            .await?;
        let policies = Api::<NetworkPolicy>::namespaced(client.clone(), name)
            .list(&ListParams::default())
            .await?;
        let mut policy_names: Vec<_> = policies.items.iter().map(ResourceExt::name_any).collect();
        policy_names.sort();
        assert_eq!(
            policy_names,
            [
                "zhengyun-allow-dns",
                "zhengyun-allow-ingress-controller",
                "zhengyun-allow-same-bureau",
                "zhengyun-default-deny"
            ]
        );
        let admins = Api::<RoleBinding>::namespaced(client.clone(), name)
            .get("zhengyun-admins")
            .await?;
        assert_eq!(admins.role_ref.name, "zhengyun-tenant-admin");
        let subjects: Vec<_> = admins
            .subjects
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.name)
            .collect();
        // The bureau's admin group, and the account its issued kubeconfigs stand for.
        assert_eq!(
            subjects,
            [
                format!("{code}-admins"),
                "zhengyun-kubeconfig-admin".to_owned()
            ]
        );
    }
    let env_names: Vec<String> = names.into_iter().map(|(_, n, _)| n).collect();
    delete_and_wait(&client, &env_names).await
}

/// Creates `n` environments of `code` at once; returns their names.
async fn create_many(client: &Client, code: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let envs: Api<Environment> = Api::all(client.clone());
    let names: Vec<String> = (0..n).map(|i| format!("{code}-dev-{i:02}")).collect();
    let results = join_all(names.iter().map(|name| {
        let envs = envs.clone();
        async move { create(&envs, &environment(code, name, "dev", "1")?).await }
    }))
    .await;
    for r in results {
        r?;
    }
    Ok(names)
}

/// Waits until every environment of `names` has been decided; returns the admitted ones in
/// admission order (creation time, then name).
async fn decided(
    client: &Client,
    names: &[String],
) -> anyhow::Result<(Vec<String>, Vec<Environment>)> {
    let envs: Api<Environment> = Api::all(client.clone());
    let all = eventually("every environment decided", WAIT, || async {
        let mut all = Vec::new();
        for name in names {
            let env = envs.get(name).await?;
            match phase(&env) {
                Some(EnvironmentPhase::Ready | EnvironmentPhase::QuotaExceeded) => all.push(env),
                _ => return Ok(None),
            }
        }
        Ok(Some(all))
    })
    .await?;
    let mut admitted: Vec<&Environment> = all
        .iter()
        .filter(|e| phase(e) == Some(EnvironmentPhase::Ready))
        .collect();
    admitted.sort_by_key(|e| (e.creation_timestamp().map(|t| t.0), e.name_any()));
    Ok((admitted.iter().map(|e| e.name_any()).collect(), all))
}

fn creation_key(e: &Environment) -> (Option<i64>, String) {
    (
        e.creation_timestamp().map(|t| t.0.as_second()),
        e.name_any(),
    )
}

/// Admission goes in creation order: no refused request may have been created in an earlier second
/// than an admitted one, even when thirty creates in flight together are stored out of their
/// stamped order (the operator waits for a creation second to settle before admitting from it).
/// Within one second the API server's timestamps cannot tell the order; the name breaks ties.
fn assert_created_no_later_than_the_refused(all: &[Environment], round: usize) {
    let seconds = |p: EnvironmentPhase| {
        all.iter()
            .filter(move |e| phase(e) == Some(p))
            .map(|e| creation_key(e).0)
    };
    let latest_admitted = seconds(EnvironmentPhase::Ready).max().flatten();
    let earliest_refused = seconds(EnvironmentPhase::QuotaExceeded).min().flatten();
    if let (Some(admitted), Some(refused)) = (latest_admitted, earliest_refused) {
        assert!(
            admitted <= refused,
            "round {round}: a request created at {admitted} was admitted before one created at {refused}"
        );
    }
}

/// The first refused environment in admission order: the one that must be admitted next.
fn first_waiting(all: &[Environment]) -> String {
    let mut waiting: Vec<&Environment> = all
        .iter()
        .filter(|e| phase(e) == Some(EnvironmentPhase::QuotaExceeded))
        .collect();
    waiting.sort_by_key(|e| creation_key(e));
    waiting[0].name_any()
}

#[tokio::test]
async fn thirty_environments_against_room_for_ten_admit_exactly_the_ten_oldest_every_round()
-> anyhow::Result<()> {
    let client = setup().await?;
    let code = code("e2e-adm");
    let bureaus: Api<Bureau> = Api::all(client.clone());
    create(&bureaus, &bureau(&code, "10", "100Gi", &[])?).await?;
    for round in 0..3 {
        let names = create_many(&client, &code, 30).await?;
        let (admitted, all) = decided(&client, &names).await?;
        assert_eq!(admitted.len(), 10, "round {round}: admitted {admitted:?}");
        assert_created_no_later_than_the_refused(&all, round);
        for env in all
            .iter()
            .filter(|e| phase(e) == Some(EnvironmentPhase::QuotaExceeded))
        {
            let status = env.status.as_ref().expect("status");
            assert!(
                status.namespace.is_none(),
                "an exceeded environment has no namespace"
            );
            let msg = &status
                .conditions
                .iter()
                .find(|c| c.type_ == "Admitted")
                .expect("Admitted condition")
                .message;
            assert!(
                msg.contains("cpu") && msg.contains("short by 1"),
                "message says what is missing: {msg}"
            );
            assert!(
                Api::<Namespace>::all(client.clone())
                    .get_opt(&env.name_any())
                    .await?
                    .is_none()
            );
        }
        if round == 0 {
            // `kubectl describe` tells both stories: Admitted then Ready, or QuotaExceeded.
            let refused = first_waiting(&all);
            for (name, wanted) in [
                (
                    &admitted[0],
                    &[("Normal", "Admitted"), ("Normal", "Ready")][..],
                ),
                (&refused, &[("Warning", "QuotaExceeded")][..]),
            ] {
                let about = ListParams::default().fields(&format!("involvedObject.name={name}"));
                let events: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
                eventually(&format!("the events of {name}"), WAIT, || async {
                    let seen: Vec<(String, String, String)> = events
                        .list(&about)
                        .await?
                        .items
                        .into_iter()
                        .map(|e| {
                            (
                                e.type_.unwrap_or_default(),
                                e.reason.unwrap_or_default(),
                                e.reporting_component.unwrap_or_default(),
                            )
                        })
                        .collect();
                    let all_there = wanted.iter().all(|(type_, reason)| {
                        seen.iter().any(|(t, r, by)| {
                            t == type_ && r == reason && by == "zhengyun-operator"
                        })
                    });
                    Ok(all_there.then_some(()))
                })
                .await?;
            }
        }
        // The bureau's status rolls up the ten admitted environments (written just after them).
        eventually("bureau allocation of 10 CPU", WAIT, || async {
            let b = bureaus.get(&code).await?;
            let allocated = b
                .status
                .and_then(|s| s.allocated)
                .and_then(|a| a.cpu)
                .map(|q| q.as_str().to_owned());
            Ok((allocated.as_deref() == Some("10")).then_some(()))
        })
        .await?;

        if round == 2 {
            // Deleting an admitted environment admits the next one in order.
            let envs: Api<Environment> = Api::all(client.clone());
            envs.delete(&admitted[0], &DeleteParams::default()).await?;
            let next = first_waiting(&all);
            wait_ready(&envs, &next).await?;
            let (admitted_after, _) = decided(
                &client,
                &names
                    .iter()
                    .filter(|n| **n != admitted[0])
                    .cloned()
                    .collect::<Vec<_>>(),
            )
            .await?;
            assert_eq!(admitted_after.len(), 10);
            assert!(admitted_after.contains(&next));
        }
        delete_and_wait(&client, &names).await?;
    }
    bureaus.delete(&code, &DeleteParams::default()).await?;
    Ok(())
}

async fn impersonate(user: &str, groups: &[&str]) -> anyhow::Result<Client> {
    let mut config = Config::infer().await?;
    config.auth_info.impersonate = Some(user.into());
    config.auth_info.impersonate_groups = Some(groups.iter().map(|g| (*g).to_owned()).collect());
    Ok(Client::try_from(config)?)
}

fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) {
    match result {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{what}: {}", s.message),
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn a_bureau_admin_cannot_raise_its_quota_or_reach_another_bureau_but_can_deploy_at_home()
-> anyhow::Result<()> {
    let client = setup().await?;
    let (a, b) = (code("e2e-rbac-a"), code("e2e-rbac-b"));
    let group = format!("{a}-admins");
    create(
        &Api::all(client.clone()),
        &bureau(&a, "4", "8Gi", &[&group])?,
    )
    .await?;
    create(&Api::all(client.clone()), &bureau(&b, "4", "8Gi", &[])?).await?;
    let envs: Api<Environment> = Api::all(client.clone());
    let (env_a, env_b) = (format!("{a}-prod"), format!("{b}-prod"));
    create(&envs, &environment(&a, &env_a, "prod", "2")?).await?;
    create(&envs, &environment(&b, &env_b, "prod", "2")?).await?;
    wait_ready(&envs, &env_a).await?;
    wait_ready(&envs, &env_b).await?;

    let admin = impersonate("li.wei@wjw", &[&group]).await?;
    let quotas: Api<ResourceQuota> = Api::namespaced(admin.clone(), &env_a);
    let raise = json!({"spec": {"hard": {"requests.cpu": "100"}}});
    forbidden(
        quotas
            .patch(
                "zhengyun-quota",
                &PatchParams::default(),
                &Patch::Merge(&raise),
            )
            .await,
        "raise own quota",
    );
    forbidden(
        quotas
            .delete("zhengyun-quota", &DeleteParams::default())
            .await,
        "delete own quota",
    );
    let limits: Api<LimitRange> = Api::namespaced(admin.clone(), &env_a);
    forbidden(
        limits
            .delete("zhengyun-defaults", &DeleteParams::default())
            .await,
        "delete own limit range",
    );
    let policies: Api<NetworkPolicy> = Api::namespaced(admin.clone(), &env_a);
    forbidden(
        policies
            .delete("zhengyun-default-deny", &DeleteParams::default())
            .await,
        "delete baseline policy",
    );
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    forbidden(
        namespaces.delete(&env_a, &DeleteParams::default()).await,
        "delete own namespace",
    );
    let bureaus: Api<Bureau> = Api::all(admin.clone());
    forbidden(
        bureaus
            .patch(
                &a,
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"quota": {"cpu": "999"}}})),
            )
            .await,
        "raise bureau quota",
    );
    let other: Api<Deployment> = Api::namespaced(admin.clone(), &env_b);
    forbidden(
        other.list(&ListParams::default()).await,
        "list another bureau's deployments",
    );

    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "portal"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "portal"}},
            "template": {"metadata": {"labels": {"app": "portal"}}, "spec": {
                "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "portal", "image": "registry.local/wjw/portal:1",
                    "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}}}
    }))?;
    Api::<Deployment>::namespaced(admin, &env_a)
        .create(&PostParams::default(), &deployment)
        .await?;

    delete_and_wait(&client, &[env_a, env_b]).await?;
    Api::<Bureau>::all(client.clone())
        .delete(&a, &DeleteParams::default())
        .await?;
    Api::<Bureau>::all(client)
        .delete(&b, &DeleteParams::default())
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_deleted_quota_or_network_policy_comes_back_and_a_resync_writes_nothing()
-> anyhow::Result<()> {
    let client = setup().await?;
    let code = code("e2e-drift");
    create(&Api::all(client.clone()), &bureau(&code, "4", "8Gi", &[])?).await?;
    let envs: Api<Environment> = Api::all(client.clone());
    let name = format!("{code}-test");
    create(&envs, &environment(&code, &name, "test", "2")?).await?;
    wait_ready(&envs, &name).await?;

    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &name);
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &name);
    let old_uid = quotas.get("zhengyun-quota").await?.uid();
    quotas
        .delete("zhengyun-quota", &DeleteParams::default())
        .await?;
    policies
        .delete("zhengyun-default-deny", &DeleteParams::default())
        .await?;
    eventually("quota and policy restored", WAIT, || async {
        let q = quotas.get_opt("zhengyun-quota").await?;
        let p = policies.get_opt("zhengyun-default-deny").await?;
        Ok((q.is_some_and(|q| q.uid() != old_uid) && p.is_some()).then_some(()))
    })
    .await?;

    // Someone raising the hard limit is an edit, put back (unlike the quota controller's own
    // recounts of usage, which change the object's version too).
    let hard_cpu = |q: &ResourceQuota| {
        q.spec
            .as_ref()
            .and_then(|s| s.hard.as_ref())
            .and_then(|h| h.get("requests.cpu"))
            .map(|q| q.0.clone())
    };
    quotas
        .patch(
            "zhengyun-quota",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"hard": {"requests.cpu": "64"}}})),
        )
        .await?;
    eventually("quota edit undone", WAIT, || async {
        let q = quotas.get("zhengyun-quota").await?;
        Ok((hard_cpu(&q).as_deref() == Some("2")).then_some(()))
    })
    .await?;

    // Idempotence: force a reconciliation of the converged environment and compare versions.
    let versions = |client: Client, name: String| async move {
        let mut v = BTreeMap::new();
        v.insert(
            "namespace",
            Api::<Namespace>::all(client.clone())
                .get(&name)
                .await?
                .resource_version(),
        );
        // The quota controller rewrites the quota's status (its recounts of usage) on its own
        // schedule; what the operator owns is everything but that status.
        let quota = Api::<ResourceQuota>::namespaced(client.clone(), &name)
            .get("zhengyun-quota")
            .await?;
        let not_status = quota
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter(|f| f.subresource.as_deref() != Some("status"))
            .map(|f| (f.manager.clone(), f.time.as_ref().map(|t| t.0.to_string())))
            .collect::<Vec<_>>();
        v.insert(
            "quota",
            Some(serde_json::to_string(&(
                &quota.spec,
                &quota.metadata.labels,
                &quota.metadata.annotations,
                not_status,
            ))?),
        );
        v.insert(
            "limits",
            Api::<LimitRange>::namespaced(client.clone(), &name)
                .get("zhengyun-defaults")
                .await?
                .resource_version(),
        );
        for p in Api::<NetworkPolicy>::namespaced(client.clone(), &name)
            .list(&ListParams::default())
            .await?
            .items
        {
            v.insert(
                if p.name_any().contains("deny") {
                    "deny"
                } else if p.name_any().contains("dns") {
                    "dns"
                } else {
                    "bureau"
                },
                p.resource_version(),
            );
        }
        for b in Api::<RoleBinding>::namespaced(client.clone(), &name)
            .list(&ListParams::default())
            .await?
            .items
        {
            v.insert(
                if b.name_any().contains("admin") {
                    "admins"
                } else {
                    "viewers"
                },
                b.resource_version(),
            );
        }
        anyhow::Ok(v)
    };
    // Let the restored objects settle (the quota controller fills in the new quota's status
    // and follows the restored hard limit).
    eventually("quota status caught up", WAIT, || async {
        let q = quotas.get("zhengyun-quota").await?;
        let hard = q.spec.as_ref().and_then(|s| s.hard.clone());
        Ok(q.status
            .filter(|s| s.used.is_some() && s.hard == hard)
            .map(|_| ()))
    })
    .await?;
    let before = versions(client.clone(), name.clone()).await?;
    let env_before = envs.get(&name).await?;
    let metrics_before = counter(
        &operator_metrics().await?,
        "zhengyun_operator_reconciliations_total",
        r#"controller="environment""#,
    );
    let touch = json!({"metadata": {"annotations": {"e2e.zhengyun.io/resync": unique_name("t")}}});
    envs.patch(&name, &PatchParams::default(), &Patch::Merge(&touch))
        .await?;
    eventually("a reconciliation after the touch", WAIT, || async {
        let now = counter(
            &operator_metrics().await?,
            "zhengyun_operator_reconciliations_total",
            r#"controller="environment""#,
        );
        Ok((now > metrics_before).then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = versions(client.clone(), name.clone()).await?;
    assert_eq!(
        before, after,
        "a reconciliation of a converged environment must write nothing"
    );
    let env_after = envs.get(&name).await?;
    assert_eq!(env_before.status, env_after.status, "status unchanged");

    delete_and_wait(&client, &[name]).await?;
    Api::<Bureau>::all(client)
        .delete(&code, &DeleteParams::default())
        .await?;
    Ok(())
}

#[tokio::test]
async fn an_operator_killed_mid_convergence_still_converges_and_orphans_nothing()
-> anyhow::Result<()> {
    let client = setup().await?;
    let code = code("e2e-kill");
    create(
        &Api::all(client.clone()),
        &bureau(&code, "12", "24Gi", &[])?,
    )
    .await?;
    let names = create_many(&client, &code, 12).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    kill_and_restart_operator().await?;
    let (admitted, _) = decided(&client, &names).await?;
    assert_eq!(admitted.len(), 12);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ours = namespaces
        .list(&ListParams::default().labels(&format!("zhengyun.io/bureau={code}")))
        .await?;
    assert_eq!(ours.items.len(), 12);
    kill_and_restart_operator().await?;
    delete_and_wait(&client, &names).await?;
    let left = namespaces
        .list(&ListParams::default().labels(&format!("zhengyun.io/bureau={code}")))
        .await?;
    assert!(
        left.items
            .iter()
            .all(|n| n.metadata.deletion_timestamp.is_some()),
        "orphaned namespaces"
    );
    Api::<Bureau>::all(client)
        .delete(&code, &DeleteParams::default())
        .await?;
    Ok(())
}

#[tokio::test]
async fn bad_specs_are_refused_by_the_api_server_or_reported_as_a_condition() -> anyhow::Result<()>
{
    let client = setup().await?;
    let envs: Api<Environment> = Api::all(client.clone());
    let code = code("e2e-bad");
    let cases = [
        (
            "negative quantity",
            json!({"metadata": {"name": format!("{code}-dev")}, "spec": {"bureau": code, "purpose": "dev", "quota": {"cpu": "-1", "memory": "1Gi"}}}),
        ),
        (
            "unknown purpose",
            json!({"metadata": {"name": format!("{code}-play")}, "spec": {"bureau": code, "purpose": "play", "quota": {"cpu": "1", "memory": "1Gi"}}}),
        ),
        (
            "name does not match",
            json!({"metadata": {"name": format!("{code}-prod")}, "spec": {"bureau": code, "purpose": "dev", "quota": {"cpu": "1", "memory": "1Gi"}}}),
        ),
        (
            "name too long",
            json!({"metadata": {"name": format!("{code}-dev-{}", "x".repeat(60))}, "spec": {"bureau": code, "purpose": "dev", "quota": {"cpu": "1", "memory": "1Gi"}}}),
        ),
        (
            "unknown field",
            json!({"metadata": {"name": format!("{code}-dev")}, "spec": {"bureau": code, "purpose": "dev", "quota": {"cpu": "1", "memory": "1Gi"}, "color": "red"}}),
        ),
        (
            "no memory quota",
            json!({"metadata": {"name": format!("{code}-dev")}, "spec": {"bureau": code, "purpose": "dev", "quota": {"cpu": "1"}}}),
        ),
        (
            "no quota at all",
            json!({"metadata": {"name": format!("{code}-dev")}, "spec": {"bureau": code, "purpose": "dev"}}),
        ),
    ];
    for (what, mut body) in cases {
        body["apiVersion"] = json!("zhengyun.io/v1alpha1");
        body["kind"] = json!("Environment");
        let result = client
            .request::<serde_json::Value>(
                http::Request::post(
                    "/apis/zhengyun.io/v1alpha1/environments?fieldValidation=Strict",
                )
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body)?)?,
            )
            .await;
        match result {
            Err(kube::Error::Api(s)) => assert!(
                s.code == 422 || s.code == 400,
                "{what}: {} {}",
                s.code,
                s.message
            ),
            other => panic!("{what}: expected a refusal, got {other:?}"),
        }
    }
    // A bureau that does not exist: accepted, and reported until the bureau appears.
    let orphan = format!("{code}-dev");
    create(&envs, &environment(&code, &orphan, "dev", "1")?).await?;
    let env = eventually("BureauNotFound reported", WAIT, || async {
        let env = envs.get(&orphan).await?;
        let reason = env
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Admitted"))
            .map(|c| c.reason.clone());
        Ok((reason.as_deref() == Some("BureauNotFound")).then_some(env))
    })
    .await?;
    assert_eq!(phase(&env), Some(EnvironmentPhase::Pending));
    create(&Api::all(client.clone()), &bureau(&code, "2", "4Gi", &[])?).await?;
    wait_ready(&envs, &orphan).await?;
    delete_and_wait(&client, &[orphan]).await?;
    Api::<Bureau>::all(client)
        .delete(&code, &DeleteParams::default())
        .await?;
    Ok(())
}

#[tokio::test]
async fn shrinking_an_environment_below_what_it_uses_is_refused_with_a_condition()
-> anyhow::Result<()> {
    let client = setup().await?;
    let code = code("e2e-shrink");
    create(&Api::all(client.clone()), &bureau(&code, "4", "8Gi", &[])?).await?;
    let envs: Api<Environment> = Api::all(client.clone());
    let name = format!("{code}-staging");
    let mut env = environment(&code, &name, "staging", "2")?;
    env.spec.services = serde_json::from_value(
        json!([{"name": "web", "kind": "web", "replicas": 3, "image": "registry.local/web:1"}]),
    )?;
    // Room for three pods at the LimitRange's default memory limit.
    env.spec.quota.memory = Some("4Gi".into());
    create(&envs, &env).await?;
    wait_ready(&envs, &name).await?;
    // Three pods, each with the LimitRange's default CPU request, are running.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &name);
    eventually("three web pods ready", WAIT, || async {
        let d = deployments.get("web").await?;
        Ok((d.status.and_then(|s| s.ready_replicas) == Some(3)).then_some(()))
    })
    .await?;
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &name);
    eventually("CPU in use", WAIT, || async {
        let used = quotas
            .get("zhengyun-quota")
            .await?
            .status
            .and_then(|s| s.used)
            .unwrap_or_default();
        Ok(used.get("requests.cpu").filter(|q| q.0 != "0").map(|_| ()))
    })
    .await?;
    let shrink = json!({"spec": {"quota": {"cpu": "1m"}}});
    envs.patch(&name, &PatchParams::default(), &Patch::Merge(&shrink))
        .await?;
    let blocked = eventually("QuotaShrinkBlocked", WAIT, || async {
        let env = envs.get(&name).await?;
        Ok(env.status.and_then(|s| {
            s.conditions
                .into_iter()
                .find(|c| c.type_ == "QuotaShrinkBlocked")
        }))
    })
    .await?;
    assert!(blocked.message.contains("cpu"), "{}", blocked.message);
    let hard = quotas
        .get("zhengyun-quota")
        .await?
        .spec
        .and_then(|s| s.hard)
        .unwrap_or_default();
    assert_eq!(
        hard.get("requests.cpu").map(|q| q.0.as_str()),
        Some("2"),
        "the quota is kept"
    );

    // Growing within the bureau is granted and enforced.
    envs.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"quota": {"cpu": "3"}}})),
    )
    .await?;
    eventually("ResourceQuota resized to 3", WAIT, || async {
        let hard = quotas
            .get("zhengyun-quota")
            .await?
            .spec
            .and_then(|s| s.hard)
            .unwrap_or_default();
        Ok((hard.get("requests.cpu").map(|q| q.0.as_str()) == Some("3")).then_some(()))
    })
    .await?;
    delete_and_wait(&client, &[name]).await?;
    Api::<Bureau>::all(client)
        .delete(&code, &DeleteParams::default())
        .await?;
    Ok(())
}

#[tokio::test]
async fn bureau_quotas_beyond_the_pool_capacity_mark_the_bureau_over_capacity() -> anyhow::Result<()>
{
    let client = setup().await?;
    let pool = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../manifests/samples/capacitypool.yaml"
    ))?;
    let pool: serde_json::Value = serde_yaml::from_str(&pool)?;
    let pools: Api<zhengyun_model::crd::CapacityPool> = Api::all(client.clone());
    pools
        .patch(
            "default",
            &PatchParams::apply("zhengyun-e2e").force(),
            &Patch::Apply(&pool),
        )
        .await?;
    let effective = pools
        .get("default")
        .await?
        .spec
        .effective_capacity()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    // One bureau asking for more CPU than the whole pool can give, overcommit included.
    let cores = effective.get(Resource::Cpu) / 1000 + 1;
    let code = code("e2e-cap");
    let bureaus: Api<Bureau> = Api::all(client.clone());
    create(&bureaus, &bureau(&code, &cores.to_string(), "1Gi", &[])?).await?;
    let condition = eventually("OverCapacity condition", WAIT, || async {
        let b = bureaus.get(&code).await?;
        Ok(b.status.and_then(|s| {
            s.conditions
                .into_iter()
                .find(|c| c.type_ == "OverCapacity" && c.status == "True")
        }))
    })
    .await?;
    assert!(condition.message.contains("cpu"), "{}", condition.message);
    bureaus.delete(&code, &DeleteParams::default()).await?;
    Ok(())
}

#[tokio::test]
async fn a_service_removed_from_the_spec_is_pruned_and_tenant_objects_stay() -> anyhow::Result<()> {
    let client = setup().await?;
    let code = code("e2e-prune");
    create(&Api::all(client.clone()), &bureau(&code, "4", "8Gi", &[])?).await?;
    let envs: Api<Environment> = Api::all(client.clone());
    let name = format!("{code}-staging");
    let mut env = environment(&code, &name, "staging", "2")?;
    env.spec.quota.memory = Some("4Gi".into());
    env.spec.services = serde_json::from_value(json!([
        {"name": "web", "kind": "web", "image": "registry.local/web:1"},
        {"name": "old", "kind": "web", "image": "registry.local/web:1"},
        {"name": "db", "kind": "postgres", "storage": "1Gi"},
    ]))?;
    create(&envs, &env).await?;
    wait_ready(&envs, &name).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &name);
    let stateful_sets: Api<StatefulSet> = Api::namespaced(client.clone(), &name);
    let services: Api<Service> = Api::namespaced(client.clone(), &name);
    eventually("the catalog in place", WAIT, || async {
        let all = deployments.get_opt("old").await?.is_some()
            && stateful_sets.get_opt("db").await?.is_some()
            && services.get_opt("db").await?.is_some();
        Ok(all.then_some(()))
    })
    .await?;
    // A tenant's own Service, even one that borrows the operator's labels, is never pruned.
    let tenant: Service = serde_json::from_value(json!({
        "metadata": {"name": "mine", "labels": {
            "app.kubernetes.io/managed-by": "zhengyun", "zhengyun.io/environment": name,
        }},
        "spec": {"ports": [{"port": 80}]},
    }))?;
    services.create(&PostParams::default(), &tenant).await?;

    let keep_web = json!({"spec": {"services": [
        {"name": "web", "kind": "web", "image": "registry.local/web:1"},
    ]}});
    envs.patch(&name, &PatchParams::default(), &Patch::Merge(&keep_web))
        .await?;
    eventually("old and db pruned", WAIT, || async {
        let gone = deployments.get_opt("old").await?.is_none()
            && stateful_sets.get_opt("db").await?.is_none()
            && services.get_opt("old").await?.is_none()
            && services.get_opt("db").await?.is_none();
        Ok(gone.then_some(()))
    })
    .await?;
    assert!(deployments.get_opt("web").await?.is_some(), "web is kept");
    assert!(
        services.get_opt("web").await?.is_some(),
        "web's Service is kept"
    );
    assert!(
        services.get_opt("mine").await?.is_some(),
        "the tenant's own Service stays"
    );
    delete_and_wait(&client, &[name]).await?;
    Api::<Bureau>::all(client)
        .delete(&code, &DeleteParams::default())
        .await?;
    Ok(())
}

#[tokio::test]
async fn an_expired_dev_environment_is_deleted_with_an_event() -> anyhow::Result<()> {
    let client = setup().await?;
    let code = code("e2e-expiry");
    create(&Api::all(client.clone()), &bureau(&code, "4", "8Gi", &[])?).await?;
    let envs: Api<Environment> = Api::all(client.clone());
    let name = format!("{code}-dev");
    let mut env = environment(&code, &name, "dev", "1")?;
    let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(8);
    env.spec.expires_at = Some(serde_json::from_value(json!(soon.to_string()))?);
    create(&envs, &env).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    eventually(
        &format!("expired {name} and its namespace gone"),
        WAIT,
        || async {
            let gone =
                envs.get_opt(&name).await?.is_none() && namespaces.get_opt(&name).await?.is_none();
            Ok(gone.then_some(()))
        },
    )
    .await?;
    let events: Api<CoreEvent> = Api::all(client.clone());
    let about = ListParams::default().fields(&format!("involvedObject.name={name}"));
    let reasons: Vec<String> = events
        .list(&about)
        .await?
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert!(
        reasons.iter().any(|r| r == "Expired"),
        "an Expired event: {reasons:?}"
    );
    // The deletion is in the audit log, by the expiry, with its outcome.
    let store = zhengyun_store::Store::connect(&zhengyun_e2e::operator::ledger_url()).await?;
    let entries = store
        .audit_log(&zhengyun_store::AuditFilter {
            bureau: Some(code.clone()),
            action: Some("environment.expire".to_owned()),
            ..Default::default()
        })
        .await?;
    let object = format!("environments/{name}");
    assert!(
        entries.iter().any(|r| r.entry.object == object
            && r.entry.principal == "kubernetes:zhengyun-expiry"
            && r.entry.result.starts_with("202")),
        "the expiry's audit entry: {entries:?}"
    );
    Api::<Bureau>::all(client)
        .delete(&code, &DeleteParams::default())
        .await?;
    Ok(())
}
