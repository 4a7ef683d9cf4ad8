//! Metering against the devcluster and a real ledger: workloads with known requests run for a
//! measured time, the operator is killed and restarted in the middle, and the ledger must agree
//! with an independent count within the sampler's documented boundary error, tile time without
//! gap or overlap, conserve to the unit, and match the operator's restored counters.
//!
//! The operator runs with a 2-second metering window and a 1-second lateness, so that windows
//! close in seconds instead of hours.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use rust_decimal::Decimal;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use zhengyun_e2e::operator::{
    ensure_operator, kill_and_restart_operator, ledger_url, operator_metrics, use_operator_args,
};
use zhengyun_e2e::{client, eventually, unique_name};
use zhengyun_metering::{Calendar, RateCard, RateSchedule, TimeRange, UsageInterval, UsageKind};
use zhengyun_model::crd::{Bureau, Environment, EnvironmentPhase};
use zhengyun_model::names::Tier;
use zhengyun_model::quantity::Resource;
use zhengyun_store::Store;

const WAIT: Duration = Duration::from_secs(180);
const PERIOD: &str = "2";
const LATENESS: &str = "1";

/// The sampler's documented boundary error per change, in seconds, as this test allows it: an
/// end is counted until the watch delivers it (well under a second on the devcluster) and the
/// test sees a deletion through polling every 250 ms; one more second for whole-second
/// truncation on each side.
const BOUNDARY_SECONDS: i64 = 3;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

async fn setup() -> anyhow::Result<Client> {
    use_operator_args(&["--metering-period", PERIOD, "--metering-lateness", LATENESS]);
    ensure_operator().await?;
    client().await
}

fn code(prefix: &str) -> String {
    unique_name(prefix)
        .chars()
        .take(30)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned()
}

fn pod(name: &str, cpu: &str, memory: &str) -> anyhow::Result<Pod> {
    let resources = json!({"cpu": cpu, "memory": memory});
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "app", "image": "registry.local/app:1",
                "resources": {"requests": resources, "limits": resources},
                "securityContext": {"allowPrivilegeEscalation": false,
                                    "capabilities": {"drop": ["ALL"]}}}]
        }
    }))?)
}

/// Creates a pod and waits until it runs; returns the second it was scheduled, as the pod
/// records it.
async fn run_pod(pods: &Api<Pod>, pod: &Pod) -> anyhow::Result<i64> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    pods.create(&PostParams::default(), pod).await?;
    eventually(&format!("pod {name} running"), WAIT, || async {
        let pod = pods.get(&name).await?;
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
    .await
}

/// Deletes a pod and returns the second the test saw it gone.
async fn delete_pod(pods: &Api<Pod>, name: &str) -> anyhow::Result<i64> {
    pods.delete(name, &DeleteParams::default().grace_period(0))
        .await?;
    eventually(&format!("pod {name} gone"), WAIT, || async {
        let gone = pods.get_opt(name).await?.is_none();
        Ok(gone.then(|| Timestamp::now().as_second()))
    })
    .await
}

fn schedule() -> anyhow::Result<RateSchedule> {
    let price = |s: &str| Decimal::from_str_exact(s);
    let mut card = RateCard::new("2026-01-01".parse()?, "CNY");
    for tier in Tier::ALL {
        card = card
            .with_price(*tier, Resource::Cpu, price("100")?)?
            .with_price(*tier, Resource::Memory, price("10")?)?
            .with_price(*tier, Resource::Storage, price("1")?)?;
    }
    Ok(RateSchedule::new([card])?)
}

/// `(start, end, amount)` of each interval of one meter, sorted.
type Series = Vec<(i64, i64, u64)>;

/// The series of `bureau`: its intervals, per (resource, kind), sorted by start.
fn series(intervals: &[UsageInterval], bureau: &str) -> BTreeMap<(Resource, UsageKind), Series> {
    let mut series: BTreeMap<(Resource, UsageKind), Series> = BTreeMap::new();
    for i in intervals.iter().filter(|i| i.bureau() == bureau) {
        series.entry((i.resource(), i.kind())).or_default().push((
            i.start().as_second(),
            i.end().as_second(),
            i.amount(),
        ));
    }
    for list in series.values_mut() {
        list.sort();
    }
    series
}

fn assert_within(what: &str, found: u128, expected: u128, tolerance: u128) {
    let error = found.abs_diff(expected);
    println!("{what}: ledger {found}, independent count {expected}, off by {error}");
    assert!(
        error <= tolerance,
        "{what}: ledger {found}, independent count {expected}, off by {error} (> {tolerance})"
    );
}

#[tokio::test]
async fn known_workloads_are_metered_exactly_once_across_an_operator_kill() -> anyhow::Result<()> {
    let client = setup().await?;
    let code = code("e2e-meter");
    let name = format!("{code}-prod");
    let bureau: Bureau = serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "Bureau",
        "metadata": {"name": code},
        "spec": {"displayName": "区财政局计量测试", "kind": "bureau", "monthlyBudget": "1000.00",
                 "quota": {"cpu": "4", "memory": "8Gi", "storage": "20Gi"}}
    }))?;
    Api::<Bureau>::all(client.clone())
        .create(&PostParams::default(), &bureau)
        .await?;
    let envs: Api<Environment> = Api::all(client.clone());
    let env: Environment = serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "Environment",
        "metadata": {"name": name},
        "spec": {"bureau": code, "purpose": "prod", "tier": "gold",
                 "quota": {"cpu": "2", "memory": "4Gi", "storage": "10Gi"}}
    }))?;
    envs.create(&PostParams::default(), &env).await?;
    let admitted_at = eventually("environment Ready", WAIT, || async {
        let env = envs.get(&name).await?;
        let status = env.status.unwrap_or_default();
        let ready = status.phase == Some(EnvironmentPhase::Ready);
        Ok(status
            .admitted_at
            .map(|t| t.0.as_second())
            .filter(|_| ready))
    })
    .await?;

    // Known workloads: two pods and a bound volume claim.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &name);
    let first_scheduled = run_pod(&pods, &pod("first", "500m", "256Mi")?).await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &name);
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    }))?;
    let claim = claims.create(&PostParams::default(), &claim).await?;
    let claim_created = claim
        .metadata
        .creation_timestamp
        .map(|t| t.0.as_second())
        .unwrap_or_default();
    let claim_bound = eventually("volume claim bound", WAIT, || async {
        let claim = claims.get("data").await?;
        let phase = claim.status.and_then(|s| s.phase);
        Ok((phase.as_deref() == Some("Bound")).then(|| Timestamp::now().as_second()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let second_scheduled = run_pod(&pods, &pod("second", "250m", "128Mi")?).await?;

    // Killed without warning in the middle; the pods keep running meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    kill_and_restart_operator().await?;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let first_gone = delete_pod(&pods, "first").await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let end = Timestamp::now().as_second();

    // Wait until the ledger is written past `end`.
    let store = Store::connect(&ledger_url()).await?;
    eventually(
        "the ledger's checkpoint past the measured time",
        WAIT,
        || async {
            let checkpoint = store.checkpoint("usage").await?;
            Ok(checkpoint.filter(|c| c.as_second() >= end).map(|_| ()))
        },
    )
    .await?;
    let range = TimeRange::new(
        Timestamp::from_second(admitted_at)?,
        Timestamp::from_second(end)?,
    )?;

    // 1. The ledger against an independent count.
    let usage = store.bureau_usage(&code, range).await?;
    let found = |resource: Resource, kind: UsageKind| -> u128 {
        usage
            .iter()
            .filter(|u| u.environment == name && u.resource == resource && u.kind == kind)
            .map(|u| u.unit_seconds)
            .sum()
    };
    let secs = |from: i64, to: i64| u128::try_from(to - from).unwrap_or(0);
    let tolerance = |amount: u64, changes: u128| {
        u128::from(amount) * changes * u128::try_from(BOUNDARY_SECONDS).unwrap_or(0)
    };
    // Reserved: admitted quota × time, exact (starts come from status.admittedAt).
    let measured = secs(admitted_at, end);
    assert_eq!(found(Resource::Cpu, UsageKind::Reserved), 2_000 * measured);
    assert_eq!(
        found(Resource::Memory, UsageKind::Reserved),
        u128::from(4 * GIB) * measured
    );
    assert_eq!(
        found(Resource::Storage, UsageKind::Reserved),
        u128::from(10 * GIB) * measured
    );
    // Consumed: exact starts; the first pod's end is seen within the boundary error.
    let cpu = 500 * secs(first_scheduled, first_gone) + 250 * secs(second_scheduled, end);
    assert_within(
        "consumed CPU",
        found(Resource::Cpu, UsageKind::Consumed),
        cpu,
        tolerance(500, 1),
    );
    let memory = u128::from(256 * MIB) * secs(first_scheduled, first_gone)
        + u128::from(128 * MIB) * secs(second_scheduled, end);
    assert_within(
        "consumed memory",
        found(Resource::Memory, UsageKind::Consumed),
        memory,
        tolerance(256 * MIB, 1),
    );
    // A claim counts while Bound: from its creation if first seen bound, from the second it
    // is seen bound if seen pending before (the test polls, so it may see it a little later).
    let storage = found(Resource::Storage, UsageKind::Consumed);
    let from_creation = u128::from(GIB) * secs(claim_created.max(admitted_at), end);
    let from_bound = u128::from(GIB) * secs(claim_bound, end);
    assert!(
        storage <= from_creation && storage + tolerance(GIB, 1) >= from_bound,
        "storage while bound: {storage}, from creation {from_creation}, seen bound {from_bound}"
    );

    // 2. No gap and no double count across the kill: each series tiles time, and the
    // reserved ones cover the whole measured time.
    use futures::TryStreamExt;
    let intervals: Vec<UsageInterval> = store.intervals_between(range).try_collect().await?;
    for ((resource, kind), list) in series(&intervals, &code) {
        for pair in list.windows(2) {
            assert!(
                pair[0].1 <= pair[1].0,
                "{resource} {kind}: overlap {pair:?}"
            );
        }
        if kind == UsageKind::Reserved {
            for pair in list.windows(2) {
                assert_eq!(pair[0].1, pair[1].0, "{resource} reserved: gap {pair:?}");
            }
            let (first, last) = (list[0], list[list.len() - 1]);
            assert!(
                first.0 <= admitted_at && last.1 >= end,
                "{resource}: {first:?}…{last:?}"
            );
        }
    }

    // 3. Conservation to the unit and the fen: lines, environments, bureaus, platform, and the
    // raw intervals recounted.
    let calendar = Calendar::default();
    let month = calendar.month_of(Timestamp::from_second(end)?);
    let month_range = calendar.month_range(month)?;
    let everything: Vec<UsageInterval> = store.intervals_between(month_range).try_collect().await?;
    let budgets = BTreeMap::from([(code.clone(), Decimal::from_str_exact("1000.00")?)]);
    let statement = store
        .month_statement(month, &calendar, &schedule()?, &budgets)
        .await?;
    statement.check_conservation()?;
    statement.check_against_usage(&everything)?;
    let ours = statement
        .bureau(&code)
        .expect("the bureau is on the statement");
    assert!(ours.totals.amount > Decimal::ZERO);
    assert_eq!(ours.budget.as_ref().map(|b| b.level.as_str()), Some("ok"));

    // 4. The operator's counters, restored from the ledger after the kill, equal the ledger.
    let counters = store.usage_counters().await?;
    let in_ledger = |resource: Resource, kind: UsageKind| {
        counters
            .iter()
            .find(|c| c.bureau == code && c.resource == resource && c.kind == kind)
            .map(|c| c.unit_seconds)
    };
    let series_name = format!(
        r#"zhengyun_reserved_resource_seconds_total{{bureau="{code}",resource="cpu",unit="core"}}"#
    );
    eventually("reserved CPU counter equal to the ledger", WAIT, || async {
        let text = operator_metrics().await?;
        let metric = text
            .lines()
            .find_map(|l| l.strip_prefix(&series_name)?.trim().parse::<f64>().ok());
        let ledger = store
            .usage_counters()
            .await?
            .into_iter()
            .find(|c| {
                c.bureau == code && c.resource == Resource::Cpu && c.kind == UsageKind::Reserved
            })
            .map(|c| c.unit_seconds as f64 / 1000.0);
        Ok((metric.is_some() && metric == ledger).then_some(()))
    })
    .await?;
    assert!(in_ledger(Resource::Cpu, UsageKind::Consumed).is_some());

    // 5. The exposition passes promtool.
    let text = operator_metrics().await?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or(text.as_str(), |(_, body)| body);
    promtool_check(body).await?;

    store.close().await;
    Api::<Environment>::all(client.clone())
        .delete(&name, &DeleteParams::default())
        .await?;
    eventually("environment gone", WAIT, || async {
        Ok(envs.get_opt(&name).await?.is_none().then_some(()))
    })
    .await?;
    Api::<Bureau>::all(client)
        .delete(&code, &DeleteParams::default())
        .await?;
    Ok(())
}

/// Runs `promtool check metrics` on `exposition`; fails if promtool is missing (`make test`
/// installs it through scripts/ensure-tools.sh).
async fn promtool_check(exposition: &str) -> anyhow::Result<()> {
    let mut child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!("promtool not found ({e}); run scripts/ensure-tools.sh (Debian's prometheus package)")
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(exposition.as_bytes()).await?;
    }
    let output = child.wait_with_output().await?;
    anyhow::ensure!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}
