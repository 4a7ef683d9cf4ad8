//! Billing inputs changed with the Kubernetes client (as `kubectl` changes them) reach the
//! hash-chained audit log exactly once — rate cards created and deleted, a budget and a tier
//! changed — naming the field manager, and an operator restart records none of them again.
//! The operator also writes each bureau's cost to date and forecast into its status.
//!
//! The operator runs with a 2-second metering window, so that costs appear in seconds.

use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use zhengyun_e2e::operator::{
    ensure_operator, kill_and_restart_operator, ledger_url, operator_metrics, use_operator_args,
};
use zhengyun_e2e::tenants::bureau_code;
use zhengyun_e2e::{client, eventually, running_month};
use zhengyun_model::crd::{Bureau, Environment, EnvironmentPhase, RateCard};
use zhengyun_store::{AuditFilter, AuditRecord, ChainStatus, Store};

const WAIT: Duration = Duration::from_secs(120);

async fn setup() -> anyhow::Result<(Client, Store)> {
    use_operator_args(&["--metering-period", "2", "--metering-lateness", "1"]);
    ensure_operator().await?;
    // The operator migrates the ledger before it serves metrics: open it only then, so that
    // two processes never migrate one new SQLite file at once.
    eventually("the operator serving metrics", WAIT, || async {
        Ok(operator_metrics().await.ok())
    })
    .await?;
    let store = Store::connect(&ledger_url()).await?;
    Ok((client().await?, store))
}

/// What `kubectl create` sends: a create with its field manager.
fn created_by(manager: &str) -> PostParams {
    PostParams {
        field_manager: Some(manager.to_owned()),
        ..PostParams::default()
    }
}

/// What `kubectl patch --type merge` (or `kubectl edit`) sends.
async fn merge_patch<K>(api: &Api<K>, name: &str, manager: &str, patch: Value) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = PatchParams {
        field_manager: Some(manager.to_owned()),
        ..PatchParams::default()
    };
    api.patch(name, &params, &Patch::Merge(&patch)).await?;
    Ok(())
}

/// Every audit entry of `action` on `object`.
async fn entries(store: &Store, action: &str, object: &str) -> anyhow::Result<Vec<AuditRecord>> {
    let mut found = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .audit_log(&AuditFilter {
                action: Some(action.to_owned()),
                after,
                limit: 1000,
                ..AuditFilter::default()
            })
            .await?;
        let Some(last) = page.last() else {
            return Ok(found);
        };
        after = Some(last.seq);
        found.extend(page.into_iter().filter(|r| r.entry.object == object));
    }
}

/// Waits for the one entry of `action` on `object` whose values after are `after`, and
/// returns it; fails if there are two.
async fn recorded_once(
    store: &Store,
    action: &str,
    object: &str,
    after: Option<Value>,
    before: Option<Value>,
) -> anyhow::Result<AuditRecord> {
    let what = format!("{action} of {object} in the audit log");
    let found = eventually(&what, WAIT, || async {
        let matching: Vec<_> = entries(store, action, object)
            .await?
            .into_iter()
            .filter(|r| r.entry.quota_after == after && r.entry.quota_before == before)
            .collect();
        Ok((!matching.is_empty()).then_some(matching))
    })
    .await?;
    anyhow::ensure!(found.len() == 1, "{what}: recorded {} times", found.len());
    Ok(found.into_iter().next().expect("one"))
}

#[tokio::test]
async fn rate_card_budget_and_tier_changes_made_with_kubectl_are_audited_once_across_a_restart()
-> anyhow::Result<()> {
    let (client, store) = setup().await?;
    let code = bureau_code("e2e-audit");
    let env = format!("{code}-dev");
    let bureaus: Api<Bureau> = Api::all(client.clone());
    let envs: Api<Environment> = Api::all(client.clone());
    let cards: Api<RateCard> = Api::all(client.clone());

    let bureau: Bureau = serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "Bureau", "metadata": {"name": code},
        "spec": {"displayName": "区审计测试局", "kind": "bureau", "monthlyBudget": "100.00",
                 "quota": {"cpu": "2", "memory": "4Gi"}}
    }))?;
    bureaus
        .create(&created_by("kubectl-create"), &bureau)
        .await?;
    let budget = |v: &str| Some(json!({ "monthlyBudget": v }));
    let first = recorded_once(
        &store,
        "bureau.budget",
        &format!("bureaus/{code}"),
        budget("100.00"),
        None,
    )
    .await?;
    assert_eq!(first.entry.principal, "kubernetes:kubectl-create");
    assert_eq!(first.entry.bureau.as_deref(), Some(code.as_str()));

    let environment: Environment = serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "Environment", "metadata": {"name": env},
        "spec": {"bureau": code, "purpose": "dev", "tier": "silver",
                 "quota": {"cpu": "1", "memory": "1Gi"}}
    }))?;
    envs.create(&created_by("kubectl-create"), &environment)
        .await?;
    let tier = |v: &str| Some(json!({ "tier": v }));
    recorded_once(
        &store,
        "environment.tier",
        &format!("environments/{env}"),
        tier("silver"),
        None,
    )
    .await?;

    // A far-future card: it prices nothing the other tests meter.
    let card_name = format!("{code}-rates");
    let card: RateCard = serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "RateCard", "metadata": {"name": card_name},
        "spec": {"currency": "CNY", "effectiveFrom": format!("2{:03}-01-01", 100 + std::process::id() % 900),
                 "prices": {
                     "gold": {"cpuCoreHour": "1", "memoryGibHour": "0.1", "storageGibHour": "0.01", "gpuHour": "10"},
                     "silver": {"cpuCoreHour": "0.5", "memoryGibHour": "0.05", "storageGibHour": "0.005", "gpuHour": "5"},
                     "bronze": {"cpuCoreHour": "0.25", "memoryGibHour": "0.02", "storageGibHour": "0.002", "gpuHour": "2"}}}
    }))?;
    cards.create(&created_by("kubectl-create"), &card).await?;
    let card_object = format!("ratecards/{card_name}");
    let spec = serde_json::to_value(&card.spec)?;
    let created = recorded_once(
        &store,
        "ratecard.create",
        &card_object,
        Some(spec.clone()),
        None,
    )
    .await?;
    assert_eq!(created.entry.principal, "kubernetes:kubectl-create");

    merge_patch(
        &bureaus,
        &code,
        "kubectl-patch",
        json!({"spec": {"monthlyBudget": "250.00"}}),
    )
    .await?;
    let patched = recorded_once(
        &store,
        "bureau.budget",
        &format!("bureaus/{code}"),
        budget("250.00"),
        budget("100.00"),
    )
    .await?;
    assert_eq!(patched.entry.principal, "kubernetes:kubectl-patch");

    merge_patch(
        &envs,
        &env,
        "kubectl-edit",
        json!({"spec": {"tier": "gold"}}),
    )
    .await?;
    let retiered = recorded_once(
        &store,
        "environment.tier",
        &format!("environments/{env}"),
        tier("gold"),
        tier("silver"),
    )
    .await?;
    assert_eq!(retiered.entry.principal, "kubernetes:kubectl-edit");

    // A card is deleted only once marked as created by mistake (the admission policy).
    cards
        .patch(
            &card_name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {
                "zhengyun.io/allow-deletion": "true"}}})),
        )
        .await?;
    cards.delete(&card_name, &DeleteParams::default()).await?;
    recorded_once(
        &store,
        "ratecard.delete",
        &card_object,
        None,
        Some(spec.clone()),
    )
    .await?;
    assert_eq!(
        store.verify_audit().await?,
        ChainStatus::Intact {
            entries: store.audit_head().await?.seq
        }
    );

    // A restart lists everything again: nothing above is recorded a second time. A change made
    // after the restart shows that the new operator has compared everything.
    kill_and_restart_operator().await?;
    merge_patch(
        &bureaus,
        &code,
        "kubectl-client-side-apply",
        json!({"spec": {"monthlyBudget": "300.00"}}),
    )
    .await?;
    let later = recorded_once(
        &store,
        "bureau.budget",
        &format!("bureaus/{code}"),
        budget("300.00"),
        budget("250.00"),
    )
    .await?;
    assert_eq!(
        later.entry.principal,
        "kubernetes:kubectl-client-side-apply"
    );
    recorded_once(
        &store,
        "bureau.budget",
        &format!("bureaus/{code}"),
        budget("100.00"),
        None,
    )
    .await?;
    recorded_once(
        &store,
        "bureau.budget",
        &format!("bureaus/{code}"),
        budget("250.00"),
        budget("100.00"),
    )
    .await?;
    recorded_once(
        &store,
        "environment.tier",
        &format!("environments/{env}"),
        tier("gold"),
        tier("silver"),
    )
    .await?;
    recorded_once(
        &store,
        "ratecard.create",
        &card_object,
        Some(spec.clone()),
        None,
    )
    .await?;
    recorded_once(&store, "ratecard.delete", &card_object, None, Some(spec)).await?;
    for (action, object) in [
        ("bureau.budget", format!("bureaus/{code}")),
        ("environment.tier", format!("environments/{env}")),
        ("ratecard.create", card_object.clone()),
        ("ratecard.delete", card_object.clone()),
    ] {
        let all = entries(&store, action, &object).await?;
        let expected = match action {
            "bureau.budget" => 3,
            "environment.tier" => 2,
            _ => 1,
        };
        assert_eq!(all.len(), expected, "{action} of {object}: {all:#?}");
    }
    assert_eq!(
        store.verify_audit().await?,
        ChainStatus::Intact {
            entries: store.audit_head().await?.seq
        }
    );

    envs.delete(&env, &DeleteParams::default()).await?;
    bureaus.delete(&code, &DeleteParams::default()).await.ok();
    Ok(())
}

#[tokio::test]
async fn the_operator_writes_a_bureaus_cost_to_date_and_forecast_into_its_status()
-> anyhow::Result<()> {
    let (client, _store) = setup().await?;
    // Costs need a rate card in force: the sample card, as the other tests apply it.
    let sample: RateCard = serde_yaml::from_str(include_str!(
        "../../../manifests/samples/ratecard-2026.yaml"
    ))?;
    Api::<RateCard>::all(client.clone())
        .patch(
            "rates-2026",
            &PatchParams::apply("zhengyun-e2e").force(),
            &Patch::Apply(&sample),
        )
        .await?;
    let code = bureau_code("e2e-cost");
    let env = format!("{code}-prod");
    let bureaus: Api<Bureau> = Api::all(client.clone());
    let envs: Api<Environment> = Api::all(client.clone());
    let bureau: Bureau = serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "Bureau", "metadata": {"name": code},
        "spec": {"displayName": "区成本测试局", "kind": "bureau", "monthlyBudget": "1000.00",
                 "quota": {"cpu": "8", "memory": "16Gi"}}
    }))?;
    bureaus.create(&PostParams::default(), &bureau).await?;
    let environment: Environment = serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "Environment", "metadata": {"name": env},
        "spec": {"bureau": code, "purpose": "prod", "tier": "gold",
                 "quota": {"cpu": "8", "memory": "16Gi"}}
    }))?;
    envs.create(&PostParams::default(), &environment).await?;
    eventually("environment Ready", WAIT, || async {
        let env = envs.get(&env).await?;
        Ok((env.status.and_then(|s| s.phase) == Some(EnvironmentPhase::Ready)).then_some(()))
    })
    .await?;
    // Reserved quota is charged from admission: 8 gold cores cost 0.96 an hour, so the cost
    // passes a fen within a minute of windows.
    let (cost, forecast, month) = eventually("costToDate above zero", WAIT, || async {
        let status = bureaus.get(&code).await?.status.unwrap_or_default();
        let cost = status
            .cost_to_date
            .as_deref()
            .map(Decimal::from_str_exact)
            .transpose()?;
        let forecast = status
            .cost_forecast
            .as_deref()
            .map(Decimal::from_str_exact)
            .transpose()?;
        Ok(cost
            .filter(|c| *c > Decimal::ZERO)
            .map(|c| (c, forecast, status.cost_month)))
    })
    .await?;
    assert_eq!(month, Some(running_month().to_string()));
    assert_eq!(cost.scale(), 2, "{cost}");
    let forecast = forecast.expect("a forecast once the ledger covers part of the month");
    assert!(
        forecast >= cost,
        "forecast {forecast} below cost to date {cost}"
    );

    envs.delete(&env, &DeleteParams::default()).await?;
    Ok(())
}
