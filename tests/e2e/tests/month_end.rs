//! A month's end, lived through by the real operator and API with the platform's clock moved
//! (`--clock-offset`) to a few seconds before the end of the running month: usage is split
//! exactly at the boundary (midnight in Asia/Shanghai), the month that ended closes once, with
//! its metered lines once finance has waived the time the moved clock skipped (an unmetered
//! gap), while the month that began cannot close, and the API's defaults (the
//! running month, usage since its first second) follow the moved clock.
//!
//! The cluster keeps its own time: only metering and statements see the moved clock. Which
//! month's end is reached depends on the clock the run starts with (`ZHENGYUN_CLOCK_OFFSET`,
//! which the date checks of `make test` set), never on a date written here.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use jiff::{SignedDuration, Timestamp};
use kube::Api as KubeApi;
use serde_json::{Value, json};
use zhengyun_e2e::api::{Answer, Api};
use zhengyun_e2e::operator::{
    ensure_operator, kill_and_restart_operator, ledger_url, use_operator_args,
};
use zhengyun_e2e::tenants::{
    apply_sample_rate_card, bureau_code, create_bureau, create_ready_environment,
};
use zhengyun_e2e::{client, clock, eventually, running_month};
use zhengyun_metering::{Calendar, Clock};
use zhengyun_model::crd::{Bureau, Environment};
use zhengyun_store::{Role, Store};

const WAIT: Duration = Duration::from_secs(180);

/// How long before the month's end the moved clock starts: enough for the operator to start,
/// take the Lease and list the cluster, so that the ending month gets some metered seconds.
const LEAD: SignedDuration = SignedDuration::from_secs(20);

const METERING: [&str; 4] = ["--metering-period", "2", "--metering-lateness", "1"];

/// The reserved CPU unit-seconds of `answer`'s usage rows for `environment`.
fn reserved_cpu(answer: &Answer, environment: &str) -> u128 {
    answer.body["usage"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|u| u["environment"] == environment && u["resource"] == "cpu")
        .filter(|u| u["kind"] == "reserved")
        .filter_map(|u| u["unitSeconds"].as_str()?.parse::<u128>().ok())
        .sum()
}

fn usage_uri(bureau: &str, from: Timestamp, to: Timestamp) -> String {
    let encode = |t: Timestamp| t.to_string().replace('+', "%2B");
    format!(
        "/api/v1/bureaus/{bureau}/usage?from={}&to={}",
        encode(from),
        encode(to)
    )
}

#[tokio::test]
async fn a_month_that_ends_while_metering_closes_with_its_lines_and_the_next_one_starts_at_midnight()
-> anyhow::Result<()> {
    use_operator_args(&METERING);
    ensure_operator().await?;
    let kube = client().await?;
    apply_sample_rate_card(&kube).await?;
    let code = bureau_code("jxw");
    create_bureau(
        &kube,
        &code,
        json!({"displayName": "区经济和信息化局", "kind": "bureau",
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

    // Move the clock to LEAD before the end of the running month, and meter from there: the
    // time before is left unmetered, so the ledger holds only what this test lives through.
    // (A month that ends too soon for that is skipped for the next.)
    let calendar = Calendar::default();
    let mut ending = running_month();
    if calendar.month_range(ending)?.end() - LEAD * 2 < clock().now() {
        ending = ending.next()?;
    }
    let began = ending.next()?;
    let end = calendar.month_range(ending)?.end();
    let offset = Clock::offset_to(end - LEAD).as_secs();
    let moved = Clock::offset_by_seconds(offset);
    let offset = offset.to_string();
    let mut args = METERING.to_vec();
    args.extend(["--clock-offset", &offset, "--metering-max-backfill", "0"]);
    use_operator_args(&args);
    kill_and_restart_operator().await?;

    let ledger = Store::connect(&ledger_url()).await?;
    eventually("the ledger past the month's end", WAIT, || async {
        let at = ledger.checkpoint("usage").await?;
        Ok(at
            .is_some_and(|at| at >= end + SignedDuration::from_secs(4))
            .then_some(()))
    })
    .await?;
    let api = Api::start_with_clock(ledger.clone(), moved).await?;
    let finance = api.token(Role::Finance, None).await?;
    let covered = ledger.checkpoint("usage").await?.expect("a checkpoint");

    // Usage is cut at midnight: the seconds before it belong to the month that ended, those
    // after to the month that began, and the two add up to the whole.
    // From twice the lead before the end: what the operator metered on the real clock before
    // the restart (the environment was Ready a few seconds before it) lies before that, since
    // the month was chosen to end at least twice the lead after now; it is no part of what this
    // test lived through on the moved clock.
    let start = end - LEAD * 2;
    let before = api
        .call(
            Method::GET,
            &usage_uri(&code, start, end),
            Some(&finance),
            None,
        )
        .await?;
    let after = api
        .call(
            Method::GET,
            &usage_uri(&code, end, covered),
            Some(&finance),
            None,
        )
        .await?;
    let whole = api
        .call(
            Method::GET,
            &usage_uri(&code, start, covered),
            Some(&finance),
            None,
        )
        .await?;
    for answer in [&before, &after, &whole] {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    let month_start = calendar.month_range(ending)?.start();
    let month = api
        .call(
            Method::GET,
            &usage_uri(&code, month_start, end),
            Some(&finance),
            None,
        )
        .await?;
    assert_eq!(month.status, StatusCode::OK, "{}", month.body);
    let (before, after, whole, month) = (
        reserved_cpu(&before, &name),
        reserved_cpu(&after, &name),
        reserved_cpu(&whole, &name),
        reserved_cpu(&month, &name),
    );
    assert!(month >= before);
    assert!(before > 0, "no seconds metered before the month's end");
    assert!(after > 0, "no seconds metered after the month's end");
    assert_eq!(before + after, whole);
    // 4 cores reserved: whole seconds of 4000 millicores.
    assert_eq!(before % 4000, 0);
    assert!(
        before <= 4000 * u128::from(LEAD.as_secs().unsigned_abs()),
        "{before} unit-seconds before the end, more than the {LEAD:?} the clock ran in it"
    );

    // The API's defaults follow the moved clock: the month that began.
    let defaults = api
        .call(
            Method::GET,
            &format!("/api/v1/bureaus/{code}/usage"),
            Some(&finance),
            None,
        )
        .await?;
    assert_eq!(defaults.body["from"], end.to_string(), "{}", defaults.body);
    let statement = api
        .call(
            Method::GET,
            &format!("/api/v1/statements?bureau={code}"),
            Some(&finance),
            None,
        )
        .await?;
    assert_eq!(statement.body["month"], began.to_string());

    // The month that began is running; the month that ended closes once, with its lines.
    let post = |path: String| {
        let (api, finance) = (&api, &finance);
        async move { api.call(Method::POST, &path, Some(finance), None).await }
    };
    let running = post(format!("/api/v1/statements/{began}/close")).await?;
    assert_eq!(running.status, StatusCode::CONFLICT, "{}", running.body);
    // The restart moved the clock weeks ahead with no backfill: that time is an unmetered gap,
    // and the month does not close until finance waives it, with a reason.
    let refused = post(format!("/api/v1/statements/{ending}/close")).await?;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(
        refused.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("gap(s) not waived") && d.contains("unmetered")),
        "{}",
        refused.body
    );
    let waive = format!("/api/v1/statements/{ending}/gaps/waive");
    let blank = api
        .call(
            Method::POST,
            &waive,
            Some(&finance),
            Some(&json!({"reason": " "})),
        )
        .await?;
    assert_eq!(
        blank.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        blank.body
    );
    let reason = "时钟前移测试：空档期不计费";
    let waived = api
        .call(
            Method::POST,
            &waive,
            Some(&finance),
            Some(&json!({"reason": reason})),
        )
        .await?;
    assert_eq!(waived.status, StatusCode::OK, "{}", waived.body);
    assert!(
        waived.body["gaps"]
            .as_array()
            .is_some_and(|g| !g.is_empty()),
        "{}",
        waived.body
    );
    let results = api.audit_results("statement.waive-gaps").await?;
    assert!(
        results.len() >= 2,
        "the waiver and the refusal are audited: {results:?}"
    );
    let close = post(format!("/api/v1/statements/{ending}/close")).await?;
    assert_eq!(close.status, StatusCode::CREATED, "{}", close.body);
    let late = api
        .call(
            Method::POST,
            &waive,
            Some(&finance),
            Some(&json!({"reason": reason})),
        )
        .await?;
    assert_eq!(late.status, StatusCode::CONFLICT, "{}", late.body);
    assert_eq!(close.body["month"], ending.to_string());
    let again = post(format!("/api/v1/statements/{ending}/close")).await?;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    let adjust = post(format!("/api/v1/statements/{ending}/adjustments")).await?;
    assert_eq!(adjust.status, StatusCode::OK, "{}", adjust.body);
    assert_eq!(adjust.body["adjustments"], json!([]));
    let open = post(format!("/api/v1/statements/{began}/adjustments")).await?;
    assert_eq!(open.status, StatusCode::CONFLICT, "{}", open.body);

    let closed = api
        .call(
            Method::GET,
            &format!("/api/v1/statements?month={ending}&bureau={code}"),
            Some(&finance),
            None,
        )
        .await?;
    assert_eq!(closed.status, StatusCode::OK, "{}", closed.body);
    let cpu: Vec<&Value> = closed.body["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["environment"] == name.as_str() && l["resource"] == "cpu")
        .filter(|l| l["kind"] == "reserved")
        .collect();
    assert_eq!(cpu.len(), 1, "{}", closed.body);
    // The closed statement keeps its gaps, each with finance's waiver.
    let gaps = closed.body["gaps"].as_array().cloned().unwrap_or_default();
    assert!(!gaps.is_empty(), "{}", closed.body);
    assert!(
        gaps.iter().all(|g| g["waived"]["reason"] == reason),
        "{}",
        closed.body
    );
    // Exactly the month's seconds, as the ledger holds them.
    assert_eq!(cpu[0]["unitSeconds"], month.to_string(), "{}", closed.body);

    envs.delete(&name, &Default::default()).await?;
    eventually("environment gone", WAIT, || async {
        Ok(envs.get_opt(&name).await?.is_none().then_some(()))
    })
    .await?;
    KubeApi::<Bureau>::all(kube)
        .delete(&code, &Default::default())
        .await?;
    Ok(())
}
