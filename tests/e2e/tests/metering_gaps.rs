//! What metering makes of time it did not watch, against the devcluster and a real ledger: a
//! pod that runs and finishes while the operator is down is charged for the span it records
//! itself, and the outage is a reconstructed gap on the month's statement, which the month
//! cannot be closed over until finance waives it.
//!
//! The operator runs with a 2-second metering window and a 1-second lateness, so that windows
//! close in seconds instead of hours; its Lease lasts 3 seconds, so a restart after a kill is
//! an outage of several seconds, longer than the lateness.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use futures::TryStreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use zhengyun_e2e::api::Api as ZhengyunApi;
use zhengyun_e2e::operator::{ensure_operator, kill_operator, ledger_url, use_operator_args};
use zhengyun_e2e::tenants::apply_sample_rate_card;
use zhengyun_e2e::{client, eventually, unique_name};
use zhengyun_metering::{Calendar, GapKind, TimeRange, UsageInterval, UsageKind};
use zhengyun_model::crd::{Bureau, Environment, EnvironmentPhase};
use zhengyun_model::quantity::Resource;
use zhengyun_store::{Role, Store};

const WAIT: Duration = Duration::from_secs(180);

async fn setup() -> anyhow::Result<Client> {
    use_operator_args(&["--metering-period", "2", "--metering-lateness", "1"]);
    ensure_operator().await?;
    client().await
}

/// A bureau with one ready gold environment; returns the environment's name.
async fn ready_environment(client: &Client, code: &str) -> anyhow::Result<String> {
    let name = format!("{code}-prod");
    let bureau: Bureau = serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "Bureau",
        "metadata": {"name": code},
        "spec": {"displayName": "区统计局计量测试", "kind": "bureau",
                 "quota": {"cpu": "4", "memory": "8Gi"}}
    }))?;
    Api::<Bureau>::all(client.clone())
        .create(&PostParams::default(), &bureau)
        .await?;
    let envs: Api<Environment> = Api::all(client.clone());
    let env: Environment = serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "Environment",
        "metadata": {"name": name},
        "spec": {"bureau": code, "purpose": "prod", "tier": "gold",
                 "quota": {"cpu": "2", "memory": "4Gi"}}
    }))?;
    envs.create(&PostParams::default(), &env).await?;
    eventually("environment Ready", WAIT, || async {
        let env = envs.get(&name).await?;
        let ready = env.status.unwrap_or_default().phase == Some(EnvironmentPhase::Ready);
        Ok(ready.then_some(()))
    })
    .await?;
    Ok(name)
}

fn job_pod(name: &str) -> anyhow::Result<Pod> {
    let resources = json!({"cpu": "1", "memory": "256Mi"});
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "job", "image": "registry.local/job:1",
                "resources": {"requests": resources, "limits": resources},
                "securityContext": {"allowPrivilegeEscalation": false,
                                    "capabilities": {"drop": ["ALL"]}}}]
        }
    }))?)
}

#[tokio::test]
async fn a_pod_that_ran_and_finished_while_the_operator_was_down_is_charged_and_the_outage_is_a_gap()
-> anyhow::Result<()> {
    let client = setup().await?;
    apply_sample_rate_card(&client).await?;
    let code: String = unique_name("e2e-gaps").chars().take(30).collect();
    let code = code.trim_end_matches('-').to_owned();
    let name = ready_environment(&client, &code).await?;
    let store = Store::connect(&ledger_url()).await?;
    // A checkpoint past every gap recorded so far: a window closed normally since the last
    // start of the operator (another test of this binary may have just restarted it), so that
    // the outage's gap cannot join an earlier one on the month's list.
    let before = eventually("a checkpoint after the last gap", WAIT, || async {
        let Some(at) = store.checkpoint("usage").await? else {
            return Ok(None);
        };
        let month = Calendar::default().month_of(at);
        let gaps = store
            .month_gaps("usage", month, Calendar::default().month_range(month)?)
            .await?;
        let past_gaps = gaps.iter().all(|g| g.to < at);
        Ok(past_gaps.then_some(at.as_second()))
    })
    .await?;

    // The operator is down while a pod runs for a few seconds and finishes.
    kill_operator().await?;
    let down = Timestamp::now().as_second();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &name);
    pods.create(&PostParams::default(), &job_pod("job")?)
        .await?;
    let scheduled = eventually("job running", WAIT, || async {
        let pod = pods.get("job").await?;
        let status = pod.status.unwrap_or_default();
        let scheduled = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "True")
            .and_then(|c| c.last_transition_time)
            .map(|t| t.0.as_second());
        Ok(scheduled.filter(|_| status.phase.as_deref() == Some("Running")))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let finished = Timestamp::now().as_second();
    let finished_at = Timestamp::from_second(finished)?.to_string();
    let status = json!({"status": {"phase": "Succeeded", "containerStatuses": [{
        "name": "job", "image": "registry.local/job:1", "imageID": "", "ready": false,
        "restartCount": 0,
        "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                 "startedAt": finished_at, "finishedAt": finished_at}}}]}});
    pods.patch_status("job", &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    eventually("job succeeded", WAIT, || async {
        let pod = pods.get("job").await?;
        let phase = pod.status.and_then(|s| s.phase);
        Ok((phase.as_deref() == Some("Succeeded")).then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure_operator().await?;
    let up = Timestamp::now().as_second();

    // The ledger charges the job from its scheduling to its finish, to the second.
    eventually("the ledger past the restart", WAIT, || async {
        let at = store.checkpoint("usage").await?.map(|t| t.as_second());
        Ok(at.filter(|at| *at > up + 2))
    })
    .await?;
    let range = TimeRange::new(
        Timestamp::from_second(before - 3_600)?,
        Timestamp::from_second(up + 3_600)?,
    )?;
    let intervals: Vec<UsageInterval> = store.intervals_between(range).try_collect().await?;
    let consumed: u128 = intervals
        .iter()
        .filter(|i| i.environment() == name && i.kind() == UsageKind::Consumed)
        .filter(|i| i.resource() == Resource::Cpu)
        .map(UsageInterval::unit_seconds)
        .sum();
    assert_eq!(
        consumed,
        1_000 * u128::try_from(finished - scheduled)?,
        "1 core from {scheduled} to {finished}"
    );
    assert!(
        intervals
            .iter()
            .filter(|i| i.environment() == name)
            .all(|i| i.environment_uid().is_some()),
        "every interval names its Environment object"
    );

    // The outage is a reconstructed gap, from the checkpoint the killed operator left.
    // (Recorded window by window; the month's gaps show one span as one.)
    let month = Calendar::default().month_of(Timestamp::from_second(down)?);
    let month_range = Calendar::default().month_range(month)?;
    let gaps = store.month_gaps("usage", month, month_range).await?;
    let outage = gaps
        .iter()
        .find(|g| g.from.as_second() <= down && g.to.as_second() >= finished)
        .unwrap_or_else(|| panic!("no gap over the outage {down}..{up}: {gaps:?}"));
    assert_eq!(outage.kind, GapKind::Reconstructed, "{outage:?}");
    assert!(outage.from.as_second() >= before, "{outage:?}");

    // The running month's statement lists it.
    let api = ZhengyunApi::start_with_store(store.clone()).await?;
    let finance = api.token(Role::Finance, None).await?;
    let statement = api
        .call(
            Method::GET,
            &format!("/api/v1/statements?month={month}&bureau={code}"),
            Some(&finance),
            None,
        )
        .await?;
    assert_eq!(statement.status, StatusCode::OK, "{}", statement.body);
    let listed = statement.body["gaps"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        listed.iter().any(|g| g["kind"] == "reconstructed"
            && g["from"].as_str() <= Some(outage.from.to_string().as_str())
            && g["reason"].as_str().is_some_and(|r| r.contains("restart"))),
        "{}",
        statement.body
    );
    Ok(())
}
