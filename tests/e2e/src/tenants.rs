//! Tenants for the end-to-end tests, made through the cluster's door (as `kubectl` would): the
//! sample rate card, bureaus, and environments waited for until Ready.

use std::time::Duration;

use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use zhengyun_model::crd::{Bureau, Environment, EnvironmentPhase, RateCard};

use crate::{eventually, unique_name};

const WAIT: Duration = Duration::from_secs(180);

/// Applies `manifests/samples/ratecard-2026.yaml` (prices from 1 January 2026).
pub async fn apply_sample_rate_card(kube: &Client) -> anyhow::Result<()> {
    let sample: RateCard = serde_yaml::from_str(include_str!(
        "../../../manifests/samples/ratecard-2026.yaml"
    ))?;
    Api::<RateCard>::all(kube.clone())
        .patch(
            "rates-2026",
            &PatchParams::apply("zhengyun-e2e").force(),
            &Patch::Apply(&sample),
        )
        .await?;
    Ok(())
}

/// A bureau code unique to this call, short enough for `<code>-<purpose>` names.
pub fn bureau_code(prefix: &str) -> String {
    unique_name(prefix)
        .chars()
        .take(30)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned()
}

/// Creates the bureau `code` with `spec` (its `displayName`, `kind`, `quota`, groups…).
pub async fn create_bureau(kube: &Client, code: &str, spec: Value) -> anyhow::Result<()> {
    let bureau: Bureau = serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "Bureau", "metadata": {"name": code},
        "spec": spec,
    }))?;
    Api::<Bureau>::all(kube.clone())
        .create(&PostParams::default(), &bureau)
        .await?;
    Ok(())
}

/// Creates the environment `name` with `spec` and waits until it is Ready.
pub async fn create_ready_environment(
    kube: &Client,
    name: &str,
    spec: Value,
) -> anyhow::Result<()> {
    let env: Environment = serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "Environment", "metadata": {"name": name},
        "spec": spec,
    }))?;
    let envs: Api<Environment> = Api::all(kube.clone());
    envs.create(&PostParams::default(), &env).await?;
    eventually(&format!("{name} Ready"), WAIT, || async {
        let env = envs.get(name).await?;
        Ok((env.status.and_then(|s| s.phase) == Some(EnvironmentPhase::Ready)).then_some(()))
    })
    .await
}

/// A bureau of a code made from `prefix`, with 4 cores, 8Gi and 10Gi, whose admins and viewers
/// are the groups `<code>-admins` and `<code>-viewers`, and its Ready bronze `dev` environment of
/// 2 cores: `(code, environment)`.
pub async fn bureau_with_dev_environment(
    kube: &Client,
    prefix: &str,
) -> anyhow::Result<(String, String)> {
    let code = bureau_code(prefix);
    create_bureau(
        kube,
        &code,
        json!({"displayName": "区卫生健康委员会", "kind": "bureau",
               "quota": {"cpu": "4", "memory": "8Gi", "storage": "10Gi"},
               "adminGroups": [format!("{code}-admins")],
               "viewerGroups": [format!("{code}-viewers")]}),
    )
    .await?;
    let env = format!("{code}-dev");
    create_ready_environment(
        kube,
        &env,
        json!({"bureau": code, "purpose": "dev", "tier": "bronze",
               "quota": {"cpu": "2", "memory": "4Gi", "storage": "5Gi"}}),
    )
    .await?;
    Ok((code, env))
}

/// Makes sure the capacity pool exists: the sample `manifests/samples/capacitypool.yaml`, applied
/// when there is none (tests that change the pool apply their fields over it).
pub async fn ensure_capacity_pool(kube: &Client) -> anyhow::Result<()> {
    let pools: Api<zhengyun_model::crd::CapacityPool> = Api::all(kube.clone());
    if pools.get_opt("default").await?.is_none() {
        let sample: serde_json::Value =
            serde_yaml::from_str(include_str!("../../../manifests/samples/capacitypool.yaml"))?;
        pools
            .patch(
                "default",
                &PatchParams::apply("zhengyun-e2e").force(),
                &Patch::Apply(&sample),
            )
            .await?;
    }
    Ok(())
}

/// Applies `spec` (fields of the pool's spec, or none) to the capacity pool as `manager`, after
/// making sure the pool exists: the manager's fields are set, and those it held before and
/// `spec` leaves out go back to their defaults.
pub async fn apply_pool_spec(
    kube: &Client,
    manager: &str,
    spec: Option<Value>,
) -> anyhow::Result<()> {
    ensure_capacity_pool(kube).await?;
    let mut body = json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "CapacityPool",
        "metadata": {"name": "default"},
    });
    if let Some(spec) = spec {
        body["spec"] = spec;
    }
    Api::<zhengyun_model::crd::CapacityPool>::all(kube.clone())
        .patch(
            "default",
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&body),
        )
        .await?;
    Ok(())
}

/// Makes sure the capacity pool exists and waits until the API server holds environments to
/// its service levels: right after the policy is installed (or the pool created) a write may
/// pass unchecked for a moment. A server-side dry run of a gold environment with a single web
/// replica tells.
pub async fn service_levels_in_force(kube: &Client) -> anyhow::Result<()> {
    ensure_capacity_pool(kube).await?;
    let envs: Api<zhengyun_model::crd::Environment> = Api::all(kube.clone());
    let probe: zhengyun_model::crd::Environment = serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "Environment",
        "metadata": {"name": "e2e-probe-prod"},
        "spec": {"bureau": "e2e-probe", "purpose": "prod", "tier": "gold",
                 "quota": {"cpu": "1", "memory": "1Gi"},
                 "services": [{"name": "probe", "kind": "web", "replicas": 1,
                               "image": "registry.local/probe:1"}]},
    }))?;
    let dry_run = kube::api::PostParams {
        dry_run: true,
        ..Default::default()
    };
    crate::eventually(
        "the service-level policy in force",
        std::time::Duration::from_secs(60),
        || async {
            Ok(match envs.create(&dry_run, &probe).await {
                Err(kube::Error::Api(status)) if status.message.contains("minReplicas") => Some(()),
                _ => None,
            })
        },
    )
    .await
}
