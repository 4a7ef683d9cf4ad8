//! Statements and usage through the API, read from the ledger the running operator writes:
//! finance sees every bureau, a bureau only itself, CSV carries the Chinese names, and the
//! money follows the sample rate card.
//!
//! The operator runs with a 2-second metering window so that usage reaches the ledger in
//! seconds. A closed month is lived through on a ledger of the test's own (the month before the
//! running one, written straight into the store): its status, seal, adjustments and CSV.

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
use zhengyun_e2e::{client, eventually, in_running_month, running_month, unique_name};
use zhengyun_metering::{Calendar, Meter, UsageInterval, UsageKind};
use zhengyun_model::{
    crd::{Bureau, Environment, RateCard},
    names::Tier,
    quantity::Resource,
};
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
    // Auditors read statements and usage; the running month is provisional, as far as the
    // ledger covers it.
    let auditor = api.token(Role::Auditor, None).await?;
    let read = api
        .call(Method::GET, "/api/v1/statements", Some(&auditor), None)
        .await?;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["status"], "provisional", "{}", read.body);
    assert!(read.body["coveredUntil"].is_string(), "{}", read.body);
    let usage = api
        .call(Method::GET, &usage_uri, Some(&auditor), None)
        .await?;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.body);

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
    let results = api.audit_results("statement.close").await?;
    assert!(
        results.ends_with(&["409 Conflict".to_owned(), "403 Forbidden".to_owned()]),
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

/// The token id of a secret `zy_<id>_…`: how the API names its caller.
fn token_id(secret: &str) -> String {
    secret.split('_').nth(1).unwrap_or_default().to_owned()
}

/// A RateCard dated `effective_from`, gold CPU at `cpu` per core-hour.
fn rate_card(name: &str, effective_from: &str, currency: &str, cpu: &str) -> RateCard {
    let prices = json!({"cpuCoreHour": cpu, "memoryGibHour": "0.015", "storageGibHour": "0.0012", "gpuHour": "12"});
    serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "RateCard",
        "metadata": {"name": name, "labels": {"zhengyun.io/e2e": "statements"}},
        "spec": {"currency": currency, "effectiveFrom": effective_from,
                 "prices": {"gold": prices, "silver": prices, "bronze": prices}},
    }))
    .expect("a rate card")
}

/// Deletes the rate cards this file created (they must be marked deletable first).
async fn remove_test_rate_cards(cards: &KubeApi<RateCard>) -> anyhow::Result<()> {
    let mine = cards
        .list(&kube::api::ListParams::default().labels("zhengyun.io/e2e=statements"))
        .await?;
    for card in mine.items {
        let name = card.metadata.name.clone().unwrap_or_default();
        let mark = json!({"metadata": {"annotations": {"zhengyun.io/allow-deletion": "true"}}});
        cards
            .patch(&name, &Default::default(), &kube::api::Patch::Merge(&mark))
            .await?;
        cards.delete(&name, &Default::default()).await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_closed_month_is_sealed_payable_with_its_adjustments_and_never_repriced()
-> anyhow::Result<()> {
    let kube = client().await?;
    apply_sample_rate_card(&kube).await?;
    let cards: KubeApi<RateCard> = KubeApi::all(kube.clone());
    remove_test_rate_cards(&cards).await?;
    let api = Api::start().await?;
    let finance = api.token(Role::Finance, None).await?;
    let auditor = api.token(Role::Auditor, None).await?;

    // 4 gold cores reserved and fully used for the whole of last month, on a ledger that
    // covers it: the sample card's list price 0.12 once, 0.06 to hold and 0.06 to use.
    let calendar = Calendar::default();
    let ended = running_month().previous()?;
    let range = calendar.month_range(ended)?;
    let hours = Decimal::from(range.seconds() / 3600);
    let bureau = bureau_code("sjj");
    create_bureau(
        &kube,
        &bureau,
        json!({"displayName": "区审计局", "kind": "bureau", "quota": {"cpu": "8", "memory": "16Gi"}}),
    )
    .await?;
    let viewer = api.token(Role::BureauViewer, Some(&bureau)).await?;
    let env = format!("{bureau}-prod");
    let interval = |kind, start, end, cores: u64| -> anyhow::Result<UsageInterval> {
        let meter = Meter::new(&bureau, &env, Resource::Cpu, kind, Tier::Gold)?;
        Ok(UsageInterval::new(meter, start, end, cores * 1000)?)
    };
    api.store
        .record_intervals(&[
            interval(UsageKind::Reserved, range.start(), range.end(), 4)?,
            interval(UsageKind::Consumed, range.start(), range.end(), 4)?,
        ])
        .await?;
    api.store.save_checkpoint("usage", range.end()).await?;
    let uri = format!("/api/v1/statements?month={ended}");
    let open = api.call(Method::GET, &uri, Some(&finance), None).await?;
    assert_eq!(open.status, StatusCode::OK, "{}", open.body);
    assert_eq!(open.body["status"], "provisional");
    assert_eq!(open.body["coveredUntil"], range.end().to_string());
    let list = Decimal::from(4) * hours * Decimal::new(12, 2);
    assert_eq!(
        open.body["platform"]["amount"],
        list.round_dp(2).to_string()
    );

    // This ledger begins inside the month (no sampler ran before it): finance waives the time
    // before, with a reason, as it must before closing.
    let waived = api
        .call(
            Method::POST,
            &format!("/api/v1/statements/{ended}/gaps/waive"),
            Some(&finance),
            Some(&json!({"reason": "账本自本月中启用，此前无计量"})),
        )
        .await?;
    assert_eq!(waived.status, StatusCode::OK, "{}", waived.body);

    // Closing seals it; it reads back closed, by whom, with its seal, which verifies.
    let close = format!("/api/v1/statements/{ended}/close");
    let closed = api.call(Method::POST, &close, Some(&finance), None).await?;
    assert_eq!(closed.status, StatusCode::CREATED, "{}", closed.body);
    let seal = closed.body["seal"].as_str().unwrap_or_default().to_owned();
    assert_eq!(seal.len(), 64, "{}", closed.body);
    let read = api.call(Method::GET, &uri, Some(&auditor), None).await?;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["status"], "closed");
    assert_eq!(read.body["closedBy"], token_id(&finance));
    assert!(read.body["closedAt"].is_string());
    assert_eq!(read.body["seal"], seal.as_str());
    let verify = format!("/api/v1/statements/{ended}/verify");
    let verified = api.call(Method::GET, &verify, Some(&auditor), None).await?;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    assert_eq!(verified.body["intact"], true, "{}", verified.body);
    assert_eq!(verified.body["monthSealed"], true, "{}", verified.body);
    let refused = api.call(Method::GET, &verify, Some(&viewer), None).await?;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // A card on an existing date, or in another currency, never gets in; a card dated back
    // into the closed month gets in but prices only from now on: the closed month keeps its
    // lines and adjusting it finds nothing.
    let duplicate = cards
        .create(
            &Default::default(),
            &rate_card(&unique_name("dup"), "2026-01-01", "CNY", "0.5"),
        )
        .await;
    assert!(
        duplicate.is_err(),
        "a second card on 2026-01-01 was admitted"
    );
    let euro = cards
        .create(
            &Default::default(),
            &rate_card(&unique_name("eur"), "2040-01-01", "EUR", "0.5"),
        )
        .await;
    assert!(euro.is_err(), "a card in EUR was admitted");
    let first_day = format!("{ended}-01");
    // The cluster stamps the card's creation with its own (unmoved) clock: the card is dated
    // back when the closed month began before that, as it does unless the date checks moved
    // the platform's clock into a later year.
    let dated_back = range.start() < jiff::Timestamp::now();
    let back = unique_name("back");
    cards
        .create(
            &Default::default(),
            &rate_card(&back, &first_day, "CNY", "0.5"),
        )
        .await?;
    // The operator says on the card from when it prices; either way the closed month is
    // priced by the cards it was closed with.
    let said = eventually("the back-dated card's InForce condition", WAIT, || async {
        let card = cards.get(&back).await?;
        let found = card
            .status
            .into_iter()
            .flat_map(|s| s.conditions)
            .find(|c| c.type_ == "InForce");
        Ok(found)
    })
    .await?;
    let expected = if dated_back {
        "FromCreation"
    } else {
        "AsDated"
    };
    assert_eq!(said.reason, expected, "{said:?}");
    let after = api.call(Method::GET, &uri, Some(&finance), None).await?;
    assert_eq!(after.body["lines"], read.body["lines"]);
    assert_eq!(after.body["platform"], read.body["platform"]);
    let adjust = format!("/api/v1/statements/{ended}/adjustments");
    let nothing = api
        .call(Method::POST, &adjust, Some(&finance), None)
        .await?;
    assert_eq!(nothing.status, StatusCode::OK, "{}", nothing.body);
    assert_eq!(nothing.body["adjustments"], json!([]));

    // Late usage (one more core for the first hour) is an adjustment with a note and its
    // issuer, and counts in what the bureau owes.
    let first_hour = range.start() + jiff::SignedDuration::from_hours(1);
    api.store
        .record_intervals(&[interval(UsageKind::Reserved, range.start(), first_hour, 1)?])
        .await?;
    let issued = api
        .call(
            Method::POST,
            &format!("{adjust}?note=outage%20recounted"),
            Some(&finance),
            None,
        )
        .await?;
    assert_eq!(issued.status, StatusCode::CREATED, "{}", issued.body);
    let line = &issued.body["adjustments"][0];
    assert_eq!(line["note"], "outage recounted");
    assert_eq!(line["issuedBy"], token_id(&finance));
    assert_eq!(
        line["amount"], "0.06",
        "one core-hour at the reservation price"
    );
    let adjusted = api.call(Method::GET, &uri, Some(&auditor), None).await?;
    let mine = &adjusted.body["bureaus"][0];
    let amount: Decimal = mine["amount"].as_str().unwrap_or("0").parse()?;
    let payable: Decimal = mine["payable"].as_str().unwrap_or("0").parse()?;
    assert_eq!(payable, amount + Decimal::new(6, 2), "{mine}");
    assert_eq!(mine["adjustmentsAmount"], "0.06");
    assert_eq!(adjusted.body["platform"]["payable"], payable.to_string());

    // The CSV: text months, unit-seconds, status on every row, the bureau's total including
    // its adjustment, and a platform total row.
    let csv = api
        .raw(
            Method::GET,
            &uri,
            &finance,
            &[(header::ACCEPT.as_str(), "text/csv")],
        )
        .await?;
    assert_eq!(csv.0, StatusCode::OK);
    let rows: Vec<&str> = csv.1.trim_start_matches('\u{feff}').lines().collect();
    assert!(
        rows[0].ends_with(",unit_seconds,period_start,period_end,status"),
        "{}",
        rows[0]
    );
    let month_cell = format!("\"=\"\"{ended}\"\"\"");
    assert!(
        rows[1..].iter().all(|r| r.starts_with(&month_cell)),
        "{}",
        csv.1
    );
    assert!(
        rows[1..].iter().all(|r| r.ends_with(",closed")),
        "{}",
        csv.1
    );
    let reserved_seconds = (4000 * u128::from(range.seconds() as u64)).to_string();
    assert!(csv.1.contains(&reserved_seconds), "{}", csv.1);
    let total = rows
        .iter()
        .find(|r| r.contains(",total,"))
        .expect("a bureau total row");
    assert!(total.contains(&format!(",{payable},CNY,")), "{total}");
    let platform = rows
        .iter()
        .find(|r| r.contains(",platform total,"))
        .expect("a platform total row");
    assert!(platform.contains(&format!(",{payable},CNY,")), "{platform}");

    // GB18030 with Chinese column names, for older finance software.
    let (status, content_type, bytes) = api
        .raw_bytes(
            &format!("{uri}&charset=gb18030&headers=zh"),
            &finance,
            &[(header::ACCEPT.as_str(), "text/csv")],
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/csv; charset=gb18030");
    assert!(String::from_utf8(bytes.clone()).is_err(), "not UTF-8");
    let (text, _, malformed) = encoding_rs::GB18030.decode(&bytes);
    assert!(!malformed);
    assert!(text.starts_with("月份,单位代码,单位名称,"), "{text}");
    let bad = api
        .call(
            Method::GET,
            &format!("{uri}&charset=latin1"),
            Some(&finance),
            None,
        )
        .await?;
    assert_eq!(bad.status, StatusCode::OK, "charset only matters for CSV");
    let bad = api
        .raw(
            Method::GET,
            &format!("{uri}&charset=latin1"),
            &finance,
            &[(header::ACCEPT.as_str(), "text/csv")],
        )
        .await?;
    assert_eq!(bad.0, StatusCode::UNPROCESSABLE_ENTITY);

    // The whole chain verifies for an auditor.
    let chain = api
        .call(
            Method::GET,
            "/api/v1/statements/verify",
            Some(&auditor),
            None,
        )
        .await?;
    assert_eq!(chain.body["intact"], true, "{}", chain.body);
    remove_test_rate_cards(&cards).await?;
    KubeApi::<Bureau>::all(kube)
        .delete(&bureau, &Default::default())
        .await?;
    Ok(())
}

#[tokio::test]
async fn reclaims_are_listed_to_finance_and_to_each_bureau_it_borrowed_or_got_room_back()
-> anyhow::Result<()> {
    use zhengyun_store::{Reclaim, ReclaimCause};
    let api = Api::start().await?;
    let (borrower, lender, other) = (
        bureau_code("e2e-rb"),
        bureau_code("e2e-rl"),
        bureau_code("e2e-ro"),
    );
    let kube = client().await?;
    for (code, name) in [
        (&borrower, "区数据局"),
        (&lender, "区城市管理委员会"),
        (&other, "区教育委员会"),
    ] {
        create_bureau(
            &kube,
            code,
            json!({"displayName": name, "kind": "bureau", "quota": {"cpu": "4", "memory": "8Gi"}}),
        )
        .await?;
    }
    // Both within the API's current month, whatever the clock says (a month may have just
    // begun): the listing covers one month.
    let now = zhengyun_e2e::clock().now();
    let month_start = Calendar::default()
        .month_range(Calendar::default().month_of(now))?
        .start();
    let base = (now - jiff::SignedDuration::from_secs(90)).max(month_start);
    let reclaim = |uid: &str, cause, beneficiary: Option<&str>, after: i64| Reclaim {
        pod_uid: uid.to_owned(),
        namespace: format!("{borrower}-prod"),
        pod: format!("report-{uid}"),
        bureau: borrower.clone(),
        cause,
        beneficiary: beneficiary.map(str::to_owned),
        started: base + jiff::SignedDuration::from_secs(after),
        freed: Some(base + jiff::SignedDuration::from_secs(after + 30)),
    };
    api.store
        .record_reclaim(&reclaim("u1", ReclaimCause::Preempted, Some(&lender), 0))
        .await?;
    api.store
        .record_reclaim(&reclaim("u2", ReclaimCause::Allowance, None, 1))
        .await?;
    let list = |token: String, query: &'static str| {
        let api = &api;
        async move {
            api.call(
                Method::GET,
                &format!("/api/v1/reclaims{query}"),
                Some(&token),
                None,
            )
            .await
        }
    };
    let finance = api.token(Role::Finance, None).await?;
    let all = list(finance.clone(), "").await?;
    assert_eq!(all.status, StatusCode::OK, "{:?}", all.body);
    let views: Vec<zhengyun_contract::ReclaimView> = all.decode()?;
    let ours: Vec<&zhengyun_contract::ReclaimView> =
        views.iter().filter(|v| v.bureau == borrower).collect();
    assert_eq!(ours.len(), 2, "{views:?}");
    assert_eq!(ours[0].pod_uid, "u2", "newest first");
    assert_eq!(ours[1].seconds, Some(30));
    assert_eq!(ours[1].beneficiary.as_deref(), Some(lender.as_str()));
    assert_eq!(ours[1].cause, "preempted");

    // A bureau sees what it borrowed, or what gave room back to it; nothing else.
    let seen = |token: String| async move {
        let answer = list(token, "").await?;
        let views: Vec<zhengyun_contract::ReclaimView> = answer.decode()?;
        anyhow::Ok(views.into_iter().map(|v| v.pod_uid).collect::<Vec<_>>())
    };
    let as_bureau = |code: String| {
        let api = &api;
        async move { api.token(Role::BureauViewer, Some(&code)).await }
    };
    assert_eq!(
        seen(as_bureau(borrower.clone()).await?).await?,
        ["u2", "u1"]
    );
    assert_eq!(seen(as_bureau(lender.clone()).await?).await?, ["u1"]);
    assert!(seen(as_bureau(other.clone()).await?).await?.is_empty());
    let nosy = list(as_bureau(other).await?, "").await?;
    assert_eq!(nosy.status, StatusCode::OK);

    // A bad month is a 422 naming the field; another bureau's filter is refused.
    let bad = list(finance, "?month=2026-13").await?;
    assert_eq!(
        bad.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        bad.body
    );
    assert!(bad.body.to_string().contains("month"), "{:?}", bad.body);
    let lender_token = as_bureau(lender).await?;
    let answer = api
        .call(
            Method::GET,
            &format!("/api/v1/reclaims?bureau={borrower}"),
            Some(&lender_token),
            None,
        )
        .await?;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{:?}", answer.body);
    Ok(())
}
