//! Every change made through the API has its audit entry: a change is carried out to its end
//! and its entry even when the caller hangs up halfway, and a change whose entry cannot be
//! written is refused before anything is touched.

use std::{collections::BTreeSet, net::SocketAddr, str::FromStr, time::Duration};

use axum::http::{Method, StatusCode};
use futures::future::join_all;
use kube::{Api as KubeApi, api::ListParams};
use serde_json::json;
use sqlx::{Connection, sqlite::SqliteConnectOptions};
use tokio::{io::AsyncWriteExt, net::TcpStream};
use zhengyun_api::TenantLimits;
use zhengyun_e2e::{api::Api, client, eventually, tenants::bureau_code};
use zhengyun_model::crd::{Bureau, Environment};
use zhengyun_store::{AuditFilter, ChainStatus, Role, Store, StoreOptions};

const WAIT: Duration = Duration::from_secs(180);

/// Connections cut during environment creates.
const CUTS: usize = 200;

async fn onboard(api: &Api, code: &str) -> anyhow::Result<()> {
    let answer = api
        .call(
            Method::POST,
            "/api/v1/bureaus",
            Some(&api.admin),
            Some(&json!({
                "name": code,
                "displayName": "区民政局",
                "kind": "bureau",
                "quota": {"cpu": "64", "memory": "256Gi", "storage": "100Gi"},
                "adminGroups": [format!("{code}-admins")],
            })),
        )
        .await?;
    anyhow::ensure!(answer.status == StatusCode::CREATED, "onboard: {answer:?}");
    Ok(())
}

async fn environments_of(bureau: &str) -> anyhow::Result<BTreeSet<String>> {
    let envs: KubeApi<Environment> = KubeApi::all(client().await?);
    let params = ListParams::default().fields(&format!("spec.bureau={bureau}"));
    Ok(envs
        .list(&params)
        .await?
        .into_iter()
        .filter_map(|e| e.metadata.name)
        .collect())
}

async fn cleanup(bureau: &str) -> anyhow::Result<()> {
    let kube = client().await?;
    let envs: KubeApi<Environment> = KubeApi::all(kube.clone());
    for name in environments_of(bureau).await? {
        envs.delete(&name, &Default::default()).await.ok();
    }
    KubeApi::<Bureau>::all(kube)
        .delete(bureau, &Default::default())
        .await
        .ok();
    Ok(())
}

/// Sends the create of environment number `n` and hangs up at a moment that depends on `n`:
/// halfway through the headers, halfway through the body, right after the request, or up to
/// 60 ms after it. Never reads the answer.
async fn create_and_hang_up(
    addr: SocketAddr,
    token: &str,
    bureau: &str,
    n: usize,
) -> anyhow::Result<()> {
    let body = json!({
        "name": format!("{bureau}-dev-{n}"),
        "purpose": "dev",
        "quota": {"cpu": "100m", "memory": "128Mi"},
    })
    .to_string();
    let head = format!(
        "POST /api/v1/bureaus/{bureau}/environments HTTP/1.1\r\nhost: zhengyun\r\n\
         authorization: Bearer {token}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await?;
    match n % 5 {
        0 => stream.write_all(&head.as_bytes()[..head.len() / 2]).await?,
        1 => {
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body.as_bytes()[..body.len() / 2]).await?;
        }
        2 => stream.write_all(format!("{head}{body}").as_bytes()).await?,
        _ => {
            stream.write_all(format!("{head}{body}").as_bytes()).await?;
            let pause = u64::try_from(n * 7 % 61).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }
    drop(stream);
    Ok(())
}

#[tokio::test]
async fn every_environment_created_over_a_connection_cut_midway_has_its_audit_entry()
-> anyhow::Result<()> {
    // A database file, as the API runs on: an in-memory one lives and dies with its single
    // connection, which a query cancelled by a hang-up may close.
    let dir = std::env::temp_dir().join(zhengyun_e2e::unique_name("audit-cut"));
    std::fs::create_dir_all(&dir)?;
    let store = Store::connect(&format!("sqlite://{}/store.db?mode=rwc", dir.display())).await?;
    let api = Api::start_with(
        store,
        zhengyun_e2e::clock(),
        TenantLimits {
            max_environments_per_bureau: CUTS + 10,
            max_pending_requests_per_bureau: 10,
        },
    )
    .await?;
    let bureau = bureau_code("cut");
    onboard(&api, &bureau).await?;
    let token = api.token(Role::BureauAdmin, Some(&bureau)).await?;
    let addr = api.listen().await?;
    let numbers: Vec<usize> = (0..CUTS).collect();
    for batch in numbers.chunks(25) {
        for sent in join_all(
            batch
                .iter()
                .map(|&n| create_and_hang_up(addr, &token, &bureau, n)),
        )
        .await
        {
            sent?;
        }
    }
    eventually("every change carried out and recorded", WAIT, || async {
        let (running, open) = (
            api.changes_in_flight(),
            api.store.open_audit_intents().await?,
        );
        anyhow::ensure!(
            running == 0 && open == 0,
            "{running} changes running, {open} audit intents open"
        );
        Ok(Some(()))
    })
    .await?;

    let existing = environments_of(&bureau).await?;
    let entries = api
        .store
        .audit_log(&AuditFilter {
            bureau: Some(bureau.clone()),
            action: Some("environment.create".to_owned()),
            limit: 1000,
            ..AuditFilter::default()
        })
        .await?;
    let recorded_created: BTreeSet<String> = entries
        .iter()
        .filter(|r| r.entry.result.starts_with("201"))
        .filter_map(|r| {
            r.entry
                .object
                .strip_prefix("environments/")
                .map(str::to_owned)
        })
        .collect();
    let unrecorded: Vec<&String> = existing.difference(&recorded_created).collect();
    let phantom: Vec<&String> = recorded_created.difference(&existing).collect();
    let chain = api.store.verify_audit().await?;
    cleanup(&bureau).await?;
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        !existing.is_empty(),
        "no create got through; the test cut nothing midway"
    );
    assert!(
        unrecorded.is_empty(),
        "{} of {} environments have no audit entry: {unrecorded:?}",
        unrecorded.len(),
        existing.len()
    );
    assert!(
        phantom.is_empty(),
        "entries say created but no such environment: {phantom:?}"
    );
    assert!(
        entries
            .iter()
            .all(|r| !r.entry.result.contains("in progress")),
        "every entry carries its outcome"
    );
    assert!(matches!(chain, ChainStatus::Intact { .. }), "{chain:?}");
    eprintln!(
        "{CUTS} connections cut: {} environments created, {} entries",
        existing.len(),
        entries.len()
    );
    Ok(())
}

#[tokio::test]
async fn a_change_whose_audit_entry_cannot_be_written_is_refused_with_503_and_not_made()
-> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(zhengyun_e2e::unique_name("audit-locked"));
    std::fs::create_dir_all(&dir)?;
    let url = format!("sqlite://{}/store.db?mode=rwc", dir.display());
    let store = Store::connect_with(
        &url,
        &StoreOptions {
            busy_timeout: Duration::from_millis(300),
            ..StoreOptions::default()
        },
    )
    .await?;
    let api = Api::start_with_store(store).await?;
    let bureau = bureau_code("locked");
    onboard(&api, &bureau).await?;
    let token = api.token(Role::BureauAdmin, Some(&bureau)).await?;
    let name = format!("{bureau}-dev");
    let body = json!({"name": name, "purpose": "dev", "quota": {"cpu": "1", "memory": "1Gi"}});
    let uri = format!("/api/v1/bureaus/{bureau}/environments");

    // Another process holds the database's write lock: nothing can be appended to the log.
    let mut other =
        sqlx::SqliteConnection::connect_with(&SqliteConnectOptions::from_str(&url)?).await?;
    sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await?;
    let refused = api
        .call(Method::POST, &uri, Some(&token), Some(&body))
        .await?;
    sqlx::query("ROLLBACK").execute(&mut other).await?;
    let after_refusal = environments_of(&bureau).await?;
    let entries_after_refusal = api
        .store
        .audit_log(&AuditFilter {
            bureau: Some(bureau.clone()),
            action: Some("environment.create".to_owned()),
            ..AuditFilter::default()
        })
        .await?;

    // With the lock released, the same call goes through and is recorded.
    let accepted = api
        .call(Method::POST, &uri, Some(&token), Some(&body))
        .await?;
    let entries = api
        .store
        .audit_log(&AuditFilter {
            bureau: Some(bureau.clone()),
            action: Some("environment.create".to_owned()),
            ..AuditFilter::default()
        })
        .await?;
    cleanup(&bureau).await?;
    std::fs::remove_dir_all(&dir).ok();

    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{refused:?}"
    );
    assert_eq!(
        refused.body["type"], "https://zhengyun.io/problems/unavailable",
        "{refused:?}"
    );
    assert!(
        refused.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("audit log cannot be written")),
        "{refused:?}"
    );
    assert!(
        after_refusal.is_empty(),
        "refused, yet created: {after_refusal:?}"
    );
    assert!(entries_after_refusal.is_empty());
    assert_eq!(accepted.status, StatusCode::CREATED, "{accepted:?}");
    assert_eq!(entries.len(), 1);
    assert!(entries[0].entry.result.starts_with("201"));
    assert_eq!(entries[0].entry.object, format!("environments/{name}"));
    Ok(())
}
