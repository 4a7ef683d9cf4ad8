//! The `zhengyun` CLI against a real `zhengyun api` process (over HTTP, with a SQLite file) on
//! the devcluster: what bureau IT staff type instead of curl.

use std::time::Duration;

use kube::Api as KubeApi;
use kube::api::PostParams;
use serde_json::{Value, json};
use zhengyun_e2e::{
    client, eventually, operator::ensure_operator, process::ServerProcess, unique_name,
};
use zhengyun_model::crd::{Bureau, Environment};

const WAIT: Duration = Duration::from_secs(180);

#[tokio::test]
async fn bureau_staff_request_list_resize_and_delete_environments_with_the_cli()
-> anyhow::Result<()> {
    ensure_operator().await?;
    let kube = client().await?;
    // Costs are priced by a rate card and the pool is shown against its bureaus.
    zhengyun_e2e::tenants::apply_sample_rate_card(&kube).await?;
    zhengyun_e2e::tenants::ensure_capacity_pool(&kube).await?;
    let bureau = unique_name("rsj");
    let onboard: Bureau = serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "Bureau", "metadata": {"name": bureau},
        "spec": {"displayName": "海淀区人力资源和社会保障局", "kind": "bureau",
                 "quota": {"cpu": "4", "memory": "16Gi"}}
    }))?;
    KubeApi::<Bureau>::all(kube.clone())
        .create(&PostParams::default(), &onboard)
        .await?;

    let api = ServerProcess::start(&["api"])?;
    let url = api.url.clone();
    eventually("the API ready", WAIT, || {
        let api = &api;
        async move {
            Ok(api
                .run(&api.admin, &["whoami"])?
                .status
                .success()
                .then_some(()))
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e} at {url}"))?;

    let issued: Value = serde_json::from_str(&api.ok(
        &api.admin,
        &[
            "token",
            "create",
            "--role",
            "bureau-admin",
            "--for-bureau",
            &bureau,
            "-o",
            "json",
        ],
    )?)?;
    let token = issued["secret"].as_str().expect("secret").to_owned();
    assert!(api.ok(&token, &["whoami"])?.contains("bureau-admin"));

    let requested = api.ok(
        &token,
        &["env", "request", "dev", "--cpu", "1", "--memory", "2Gi"],
    )?;
    assert!(
        requested.contains(&format!("environment {bureau}-dev requested")),
        "{requested}"
    );
    let listed = eventually("the environment Ready in the list", WAIT, || {
        let (api, token) = (&api, &token);
        async move {
            let table = api.ok(token, &["env", "list"])?;
            Ok(table.contains("Ready").then_some(table))
        }
    })
    .await?;
    let header = listed.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("NAME") && header.contains("PHASE"),
        "{listed}"
    );
    assert!(listed.contains(&format!("{bureau}-dev")), "{listed}");

    let resized = api.ok(
        &token,
        &["env", "resize", &format!("{bureau}-dev"), "--cpu", "2"],
    )?;
    assert!(resized.contains("resized"), "{resized}");
    let shown: Value = serde_json::from_str(&api.ok(
        &token,
        &["env", "show", &format!("{bureau}-dev"), "-o", "json"],
    )?)?;
    assert_eq!(shown["quota"], json!({"cpu": "2", "memory": "2Gi"}));

    let too_big = api.ok(
        &token,
        &["env", "request", "prod", "--cpu", "8", "--memory", "2Gi"],
    )?;
    assert!(
        too_big.contains("waiting for a platform admin's approval"),
        "{too_big}"
    );
    let pending = api.ok(&api.admin, &["requests", "list"])?;
    assert!(pending.contains(&format!("{bureau}-prod")), "{pending}");

    let quota = api.ok(&token, &["quota"])?;
    assert!(quota.contains("海淀区人力资源和社会保障局"), "{quota}");
    assert!(
        quota
            .lines()
            .any(|l| l.starts_with("cpu") && l.contains('4')),
        "{quota}"
    );

    // This month's costs by day, as a table and as CSV; the pool is for platform roles.
    let costs = api.ok(&token, &["costs"])?;
    assert!(
        costs
            .lines()
            .any(|l| l.starts_with("DATE") && l.contains("AMOUNT")),
        "{costs}"
    );
    let csv = api.ok(&token, &["costs", "--csv"])?;
    assert!(
        csv.trim_start_matches('\u{feff}')
            .starts_with("bureau,date,reserved,consumed,amount,currency"),
        "{csv}"
    );
    let pool = api.ok(&api.admin, &["pool"])?;
    assert!(
        pool.lines().any(|l| l.starts_with("cpu")) && pool.contains("bureaus hold quota"),
        "{pool}"
    );
    let hidden = api.run(&token, &["pool"])?;
    assert!(String::from_utf8_lossy(&hidden.stderr).contains("403"));

    let refused = api.run(&token, &["env", "request", "qa", "--cpu", "1"])?;
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("422") && message.contains("purpose"),
        "{message}"
    );
    let other = api.run(&token, &["--bureau", "wjw", "env", "list"])?;
    assert!(String::from_utf8_lossy(&other.stderr).contains("403"));

    let deleted = api.ok(&token, &["env", "delete", &format!("{bureau}-dev")])?;
    assert!(deleted.contains("being deleted"), "{deleted}");
    let envs: KubeApi<Environment> = KubeApi::all(kube.clone());
    eventually("the environment gone", WAIT, || {
        let envs = envs.clone();
        let name = format!("{bureau}-dev");
        async move { Ok(envs.get_opt(&name).await?.is_none().then_some(())) }
    })
    .await?;

    let (stopped_cleanly, log) = api.stop()?;
    assert!(stopped_cleanly, "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("\"answered\""))
        .expect("a request log line");
    let parsed: Value = serde_json::from_str(line)?;
    assert!(parsed["span"]["request_id"].is_string(), "{line}");
    KubeApi::<Bureau>::all(kube)
        .delete(&bureau, &Default::default())
        .await?;
    Ok(())
}
