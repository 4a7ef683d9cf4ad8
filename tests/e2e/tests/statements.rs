//! Statements and usage through the API, read from the ledger the running operator writes:
//! finance sees every bureau, a bureau only itself, CSV carries the Chinese names, and the
//! money follows the sample rate card.
//!
//! The operator runs with a 2-second metering window so that usage reaches the ledger in
//! seconds.

use std::time::Duration;

use axum::http::{Method, StatusCode, header};
use kube::Api as KubeApi;
use rust_decimal::Decimal;
use serde_json::json;
use zhengyun_e2e::api::Api;
use zhengyun_e2e::operator::{ensure_operator, ledger_url, use_operator_args};
use zhengyun_e2e::tenants::{
    apply_sample_rate_card, bureau_code, create_bureau, create_ready_environment,
};
use zhengyun_e2e::{client, eventually, in_running_month};
use zhengyun_model::crd::{Bureau, Environment};
use zhengyun_store::{Role, Store};

const WAIT: Duration = Duration::from_secs(180);

#[tokio::test]
async fn finance_and_bureaus_read_priced_statements_and_usage_from_the_ledger() -> anyhow::Result<()>
{
    use_operator_args(&["--metering-period", "2", "--metering-lateness", "1"]);
    ensure_operator().await?;
    let kube = client().await?;
    apply_sample_rate_card(&kube).await?;
    let code = bureau_code("czj");
    create_bureau(
        &kube,
        &code,
        json!({"displayName": "区财政局", "kind": "bureau", "monthlyBudget": "0.01",
               "quota": {"cpu": "8", "memory": "16Gi"}}),
    )
    .await?;
    let name = format!("{code}-prod");
    create_ready_environment(
        &kube,
        &name,
        json!({"bureau": code, "purpose": "prod", "tier": "gold",
               "quota": {"cpu": "4", "memory": "8Gi"}}),
    )
    .await?;
    let envs: KubeApi<Environment> = KubeApi::all(kube.clone());

    // The API over the operator's own ledger.
    let ledger = Store::connect(&ledger_url()).await?;
    let api = Api::start_with_store(ledger).await?;
    let finance = api.token(Role::Finance, None).await?;
    let own = api.token(Role::BureauViewer, Some(&code)).await?;
    // Another bureau of its own: a token's bureau must exist for the token to authenticate.
    let other_code = bureau_code("wjw");
    create_bureau(
        &kube,
        &other_code,
        json!({"displayName": "区卫生健康委员会", "kind": "bureau",
               "quota": {"cpu": "1", "memory": "1Gi"}}),
    )
    .await?;
    let other = api.token(Role::BureauAdmin, Some(&other_code)).await?;

    // Reserved usage accrues from admission: wait until the ledger has some.
    let usage_uri = format!("/api/v1/bureaus/{code}/usage");
    let usage = eventually("reserved CPU in the ledger", WAIT, || async {
        let answer = api.call(Method::GET, &usage_uri, Some(&own), None).await?;
        let reserved = answer.body["usage"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|u| {
                u["resource"] == "cpu"
                    && u["kind"] == "reserved"
                    && u["unitSeconds"].as_str().is_some_and(|s| s != "0")
            });
        Ok(reserved.then_some(answer.body))
    })
    .await?;
    assert_eq!(usage["bureau"], code.as_str());
    let row = usage["usage"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|u| u["resource"] == "cpu" && u["kind"] == "reserved")
        .expect("cpu row");
    assert_eq!(row["environment"], name.as_str());
    assert_eq!(row["unit"], "core-hour");
    // 4 cores reserved: whole multiples of 4000 millicore-seconds.
    let unit_seconds: u128 = row["unitSeconds"].as_str().unwrap_or("0").parse()?;
    assert_eq!(unit_seconds % 4000, 0, "{row}");

    // The running month's statement (the default) carries the bureau once a window is closed.
    let (statement, mine) = eventually("the bureau on finance's statement", WAIT, || async {
        let statement = api
            .call(Method::GET, "/api/v1/statements", Some(&finance), None)
            .await?;
        assert_eq!(statement.status, StatusCode::OK, "{}", statement.body);
        let mine = statement.body["bureaus"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|b| b["bureau"] == code.as_str())
            .cloned();
        Ok(mine.map(|mine| (statement, mine)))
    })
    .await?;
    assert_eq!(mine["displayName"], "区财政局");
    let amount: Decimal = mine["amount"].as_str().unwrap_or("0").parse()?;
    assert!(amount >= Decimal::ZERO);
    assert_eq!(mine["budget"]["budget"], "0.01");
    // Gold CPU at 0.12 CNY per core-hour: each line's amount is its quantity × price, to the fen.
    for line in statement.body["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["bureau"] == code.as_str())
    {
        let quantity: Decimal = line["quantity"].as_str().unwrap_or("0").parse()?;
        let price: Decimal = line["unitPrice"].as_str().unwrap_or("0").parse()?;
        let amount: Decimal = line["amount"].as_str().unwrap_or("0").parse()?;
        let expected = (quantity * price)
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointNearestEven);
        assert!((amount - expected).abs() <= Decimal::new(1, 2), "{line}");
    }

    // A bureau sees only itself; another bureau's token is refused for it.
    let own_view = api
        .call(Method::GET, "/api/v1/statements", Some(&own), None)
        .await?;
    let codes: Vec<&str> = own_view.body["bureaus"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["bureau"].as_str())
        .collect();
    assert!(codes.iter().all(|c| *c == code), "{codes:?}");
    assert!(
        own_view.body["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|l| l["bureau"] == code.as_str())
    );
    let refused = api
        .call(
            Method::GET,
            &format!("/api/v1/statements?bureau={code}"),
            Some(&other),
            None,
        )
        .await?;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let refused = api
        .call(Method::GET, &usage_uri, Some(&other), None)
        .await?;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // CSV for spreadsheets: UTF-8 with a byte order mark, the Chinese name in its column.
    let csv = api
        .raw(
            Method::GET,
            &format!("/api/v1/statements?bureau={code}"),
            &finance,
            &[(header::ACCEPT.as_str(), "text/csv")],
        )
        .await?;
    assert_eq!(csv.0, StatusCode::OK);
    assert!(
        csv.1.starts_with("\u{feff}month,bureau,bureau_name,"),
        "{}",
        csv.1
    );
    assert!(csv.1.contains("区财政局"), "{}", csv.1);

    let bad = api
        .call(
            Method::GET,
            "/api/v1/statements?month=2026-13",
            Some(&finance),
            None,
        )
        .await?;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let auditor = api.token(Role::Auditor, None).await?;
    let denied = api
        .call(Method::GET, "/api/v1/statements", Some(&auditor), None)
        .await?;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);

    // The running month (by the platform's clock) can neither be closed nor adjusted; a bureau
    // may not close a month. Closing a month that has ended is checked across a month's end, in
    // tests/month_end.rs.
    let (running, by_bureau, open) = in_running_month(|month| {
        let (api, finance, own) = (&api, &finance, &own);
        async move {
            let close = format!("/api/v1/statements/{month}/close");
            let running = api.call(Method::POST, &close, Some(finance), None).await?;
            let by_bureau = api.call(Method::POST, &close, Some(own), None).await?;
            let adjust = format!("/api/v1/statements/{month}/adjustments");
            let open = api.call(Method::POST, &adjust, Some(finance), None).await?;
            Ok((running, by_bureau, open))
        }
    })
    .await?;
    assert_eq!(running.status, StatusCode::CONFLICT, "{}", running.body);
    assert!(
        running.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("is still running")),
        "{}",
        running.body
    );
    assert_eq!(by_bureau.status, StatusCode::FORBIDDEN);
    assert_eq!(open.status, StatusCode::CONFLICT, "{}", open.body);
    let log = api
        .call(
            Method::GET,
            "/api/v1/audit?action=statement.close",
            Some(&api.admin),
            None,
        )
        .await?;
    let results: Vec<&str> = log
        .body
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["result"].as_str())
        .collect();
    assert!(
        results.ends_with(&["409 Conflict", "403 Forbidden"]),
        "{results:?}"
    );

    envs.delete(&name, &Default::default()).await?;
    eventually("environment gone", WAIT, || async {
        Ok(envs.get_opt(&name).await?.is_none().then_some(()))
    })
    .await?;
    let bureaus = KubeApi::<Bureau>::all(kube);
    bureaus.delete(&code, &Default::default()).await?;
    bureaus.delete(&other_code, &Default::default()).await?;
    Ok(())
}
