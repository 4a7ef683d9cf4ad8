//! The web console in a real browser (headless Chromium over WebDriver) against a running
//! `zhengyun dev` (API and operator in one process) on the devcluster: a bureau admin signs in, requests an environment that fits and one that does not,
//! sees them, downloads a kubeconfig, and is refused another bureau's page; a platform admin
//! approves the pending request; finance opens the month, downloads the CSV and closes a past
//! month; an auditor verifies the chain. A form posted without its CSRF token is refused.
//! Screenshots of each page go to target/console-screenshots/.

use std::{path::PathBuf, time::Duration};

use kube::Api as KubeApi;
use serde_json::json;
use zhengyun_e2e::{
    browser::Browser,
    client, eventually,
    operator::install_crds,
    process::ServerProcess,
    tenants::{apply_sample_rate_card, bureau_code, create_bureau, ensure_capacity_pool},
};
use zhengyun_model::crd::{Bureau, Environment, EnvironmentPhase};
use zhengyun_store::{Role, Store};

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots")
}

/// Waits for the page's notice to say `expected` (a form's answer replaces the page after the
/// click returns); the notice, or the page itself in the error.
async fn notice_saying(browser: &Browser, expected: &str) -> anyhow::Result<String> {
    let found = eventually(
        &format!("a notice saying {expected}"),
        Duration::from_secs(15),
        || async {
            Ok(browser
                .text(".notice")
                .await
                .ok()
                .filter(|text| text.contains(expected)))
        },
    )
    .await;
    match found {
        Ok(text) => Ok(text),
        Err(error) => {
            let page = browser.source().await.unwrap_or_default();
            anyhow::bail!(
                "{error}; the page at {}: {page}",
                browser.url().await.unwrap_or_default()
            )
        }
    }
}

async fn sign_in(browser: &Browser, base: &str, token: &str) -> anyhow::Result<()> {
    browser.clear_cookies().await?;
    browser.open(&format!("{base}/console/sign-in")).await?;
    browser.fill("input[name=token]", token).await?;
    browser
        .click("form[action='/console/sign-in'] button")
        .await?;
    Ok(())
}

/// Asserts that the browser shows a page whose address ends with `path`.
/// A form's submission navigates after the click returns: the address is waited for.
async fn at(browser: &Browser, path: &str) -> anyhow::Result<()> {
    let reached = eventually(
        &format!("the page …{path}"),
        Duration::from_secs(15),
        || async { Ok(browser.url().await?.ends_with(path).then_some(())) },
    )
    .await;
    if reached.is_err() {
        let url = browser.url().await?;
        let page = browser.source().await.unwrap_or_default();
        anyhow::bail!("at {url}, not …{path}: {page}");
    }
    Ok(())
}

/// Issues a token straight in the server's database.
async fn token(store: &Store, role: Role, bureau: Option<&str>) -> anyhow::Result<String> {
    let (_, secret) = store.create_token(role, bureau, "e2e").await?;
    Ok(secret.expose().to_owned())
}

/// `curl`'s status code for `args` (the response body is discarded).
fn curl_status(args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn staff_finance_admins_and_auditors_do_their_work_in_the_console() -> anyhow::Result<()> {
    let kube = client().await?;
    install_crds(&kube).await?;
    ensure_capacity_pool(&kube).await?;
    apply_sample_rate_card(&kube).await?;
    // `zhengyun dev` is this test binary's operator: it campaigns for the Lease the end-to-end
    // operators share, which the previous test binary's operator released when it stopped.
    let dev = ServerProcess::start(&[
        "dev",
        "--lease-name",
        "zhengyun-e2e",
        "--lease-seconds",
        "3",
        "--operator-addr",
        "127.0.0.1:0",
    ])?;
    let started = std::time::Instant::now();
    let base = dev.url.clone();
    let store = Store::connect(&dev.database_url).await?;
    let (code, other) = (bureau_code("conw"), bureau_code("conr"));
    for bureau in [&code, &other] {
        create_bureau(
            &kube,
            bureau,
            json!({"displayName": "区卫生健康委员会", "kind": "bureau",
                   "quota": {"cpu": "4", "memory": "8Gi", "storage": "20Gi"},
                   "monthlyBudget": "1000.00"}),
        )
        .await?;
    }
    let admin = token(&store, Role::BureauAdmin, Some(&code)).await?;
    let finance = token(&store, Role::Finance, None).await?;
    let auditor = token(&store, Role::Auditor, None).await?;
    let browser = Browser::start().await?;
    let shots = screenshots();

    // A bureau admin signs in and lands on the bureau's page, in Chinese.
    sign_in(&browser, &base, &admin).await?;
    at(&browser, &format!("/console/bureaus/{code}")).await?;
    assert!(browser.text("h1").await?.contains("区卫生健康委员会"));
    let html = browser.source().await?;
    assert!(
        html.contains("lang=\"zh-CN\"") && html.contains("配额"),
        "not in Chinese"
    );

    // The keyboard reaches the skip link first and then the request form's button.
    browser.press_tab().await?;
    let first = browser.focused().await?;
    assert!(first.contains("class=\"skip\""), "first focus: {first}");
    let mut reached = false;
    for _ in 0..80 {
        browser.press_tab().await?;
        let focused = browser.focused().await?;
        if focused.starts_with("<button") && focused.ends_with(">申请</button>") {
            reached = true;
            break;
        }
    }
    assert!(reached, "Tab never reached the request form's button");

    // An environment that fits is created; one that does not goes for approval.
    for (purpose, cpu, expect) in [("dev", "1", "已创建"), ("prod", "50", "审批")] {
        browser
            .fill("form[action$='/environments'] input[name=cpu]", cpu)
            .await?;
        browser
            .fill("form[action$='/environments'] input[name=memory]", "1Gi")
            .await?;
        browser
            .click(&format!("select[name=purpose] option[value={purpose}]"))
            .await?;
        browser
            .click("form[action$='/environments'] button")
            .await?;
        notice_saying(&browser, expect).await?;
    }
    browser.screenshot(&shots.join("bureau.png")).await?;
    let env = format!("{code}-dev");
    let page = browser.source().await?;
    assert!(page.contains(&env));
    // The request that went for approval is listed among the bureau's change requests.
    assert!(
        page.contains(&format!("{code}-prod")) && !page.contains("没有变更申请"),
        "the pending request is not listed"
    );

    // Once Ready, its kubeconfig downloads as a file.
    let envs: KubeApi<Environment> = KubeApi::all(kube.clone());
    eventually(
        &format!("{env} Ready"),
        Duration::from_secs(180),
        || async {
            let env = envs.get(&env).await?;
            Ok((env.status.and_then(|s| s.phase) == Some(EnvironmentPhase::Ready)).then_some(()))
        },
    )
    .await?;
    browser
        .open(&format!("{base}/console/bureaus/{code}"))
        .await?;
    browser
        .click(&format!(
            "form[action$='/environments/{env}/kubeconfig'] button"
        ))
        .await?;
    let kubeconfig = browser.downloaded(".kubeconfig").await?;
    assert!(
        kubeconfig.contains(&format!("current-context: {env}")),
        "{kubeconfig}"
    );

    // It is resized from its row.
    let resize = format!("form[action$='/environments/{env}/resize']");
    browser
        .fill(&format!("{resize} input[name=cpu]"), "2")
        .await?;
    browser.click(&format!("{resize} button")).await?;
    notice_saying(&browser, "配额已调整").await?;
    // This month's cost is charted by day.
    assert!(browser.source().await?.contains("本月按日费用"));
    // A refusal of the API is explained in Chinese.
    browser
        .fill(&format!("{resize} input[name=cpu]"), "许多")
        .await?;
    browser.click(&format!("{resize} button")).await?;
    notice_saying(&browser, "输入有误").await?;

    // The page fits a laptop's 1366×768 and a phone's 390×844 without scrolling sideways
    // (wide tables scroll within themselves).
    for (width, height, shot) in [(1366, 768, "bureau.png"), (390, 844, "bureau-phone.png")] {
        browser.resize(width, height).await?;
        browser
            .open(&format!("{base}/console/bureaus/{code}"))
            .await?;
        let overflow = browser.overflow().await?;
        assert!(overflow <= 0, "{overflow} px too wide at {width}×{height}");
        browser.screenshot(&shots.join(shot)).await?;
    }
    browser.resize(1366, 768).await?;

    // The year's evaluation opens for the bureau's staff, who see no other bureau (this test's
    // ledger has nothing for the year yet).
    browser.open(&format!("{base}/console/evaluation")).await?;
    let evaluation = browser.source().await?;
    assert!(
        evaluation.contains("各单位绩效") && !evaluation.contains(&other),
        "{evaluation}"
    );

    // Another bureau's page is refused.
    browser
        .open(&format!("{base}/console/bureaus/{other}"))
        .await?;
    assert!(browser.source().await?.contains("无权访问"));

    // A form posted without its CSRF token is refused, and nothing is requested.
    let session = browser
        .cookie("zy_session")
        .await?
        .expect("a session cookie");
    let forged = curl_status(&[
        "-b",
        &format!("zy_session={session}"),
        "--data",
        "purpose=test&tier=silver&cpu=1&memory=1Gi",
        &format!("{base}/console/bureaus/{code}/environments"),
    ])?;
    assert_eq!(forged, "403");
    assert!(envs.get_opt(&format!("{code}-test")).await?.is_none());

    // English, when asked for, and remembered as this person's: signed out (the sign-in page
    // is in Chinese again) and in again, on a browser without cookies, the page is in English.
    let in_english = || async {
        eventually("the page in English", Duration::from_secs(15), || async {
            Ok(browser
                .source()
                .await?
                .contains("Environments")
                .then_some(()))
        })
        .await
    };
    browser.click("a[hreflang=en]").await?;
    in_english().await?;
    browser
        .click("form[action='/console/sign-out'] button")
        .await?;
    at(&browser, "/console/sign-in").await?;
    assert!(browser.source().await?.contains("lang=\"zh-CN\""));
    browser.screenshot(&shots.join("sign-in.png")).await?;
    sign_in(&browser, &base, &admin).await?;
    at(&browser, &format!("/console/bureaus/{code}")).await?;
    in_english().await?;
    browser.click("a[hreflang=zh-CN]").await?;

    // A platform admin approves the pending request.
    sign_in(&browser, &base, &dev.admin).await?;
    at(&browser, "/console/admin/requests").await?;
    assert!(browser.source().await?.contains(&code));
    browser.screenshot(&shots.join("approvals.png")).await?;
    browser.click("form[action$='/approve'] button").await?;
    notice_saying(&browser, "已批准").await?;

    // The admin sees the pool against the allocations, and changes the bureau's budget.
    browser
        .open(&format!("{base}/console/admin/bureaus"))
        .await?;
    assert!(browser.source().await?.contains("资源池容量与分配"));
    browser
        .fill(
            &format!("input[form=edit-{code}][name=monthly_budget]"),
            "1200.00",
        )
        .await?;
    browser.click(&format!("form#edit-{code} button")).await?;
    notice_saying(&browser, "已更新").await?;
    browser.screenshot(&shots.join("bureaus.png")).await?;
    let bureaus: KubeApi<Bureau> = KubeApi::all(kube.clone());
    assert_eq!(
        bureaus.get(&code).await?.spec.monthly_budget.as_deref(),
        Some("1200.00")
    );

    // Finance opens the month, downloads its CSV, and closes the month that ended once its
    // metering gap is waived on the page (the server's ledger began when it started). The
    // running month cannot be closed yet.
    let ended = zhengyun_e2e::running_month().previous()?;
    sign_in(&browser, &base, &finance).await?;
    at(&browser, "/console/finance").await?;
    let running = browser.source().await?;
    assert!(
        !running.contains("action=\"/console/finance/close\"") && running.contains("本月尚未结束"),
        "the running month offers to close: {running}"
    );
    browser.screenshot(&shots.join("finance.png")).await?;
    browser.click("a[download]").await?;
    let csv = browser.downloaded(".csv").await?;
    assert!(csv.lines().count() >= 1, "{csv}");
    browser
        .open(&format!("{base}/console/finance?month={ended}"))
        .await?;
    assert!(browser.source().await?.contains("未豁免"));
    browser
        .fill(
            "form[action='/console/finance/waive'] input[name=reason]",
            "控制台测试：本账本自今日起",
        )
        .await?;
    browser
        .click("form[action='/console/finance/waive'] input[name=confirm]")
        .await?;
    browser
        .click("form[action='/console/finance/waive'] button")
        .await?;
    notice_saying(&browser, "已豁免").await?;
    browser.screenshot(&shots.join("finance-gaps.png")).await?;
    browser
        .click("form[action='/console/finance/close'] input[name=confirm]")
        .await?;
    browser
        .click("form[action='/console/finance/close'] button")
        .await?;
    notice_saying(&browser, "已结账").await?;
    let closed_page = format!("{base}/console/finance?month={ended}");
    let shown = eventually(
        "the month shown closed",
        Duration::from_secs(30),
        || async {
            browser.open(&closed_page).await?;
            Ok(browser
                .source()
                .await?
                .contains("已结账（封存")
                .then_some(()))
        },
    )
    .await;
    if shown.is_err() {
        let page = browser.source().await?;
        let state = page.split("<p>").nth(1).unwrap_or_default();
        anyhow::bail!("{closed_page} does not show the month closed: {state}");
    }
    // The closed month takes signed adjustments, once confirmed with a reason: this test's
    // ledger has not changed since, so there is nothing to adjust.
    browser
        .fill(
            "form[action='/console/finance/adjust'] input[name=note]",
            "复核：账本无变化",
        )
        .await?;
    browser
        .click("form[action='/console/finance/adjust'] input[name=confirm]")
        .await?;
    browser
        .click("form[action='/console/finance/adjust'] button")
        .await?;
    notice_saying(&browser, "无需调整").await?;

    // Finance sees every bureau ranked by idle cost, with the district's totals.
    browser.open(&format!("{base}/console/evaluation")).await?;
    let ranking = browser.source().await?;
    assert!(
        ranking.contains("各单位绩效") && ranking.contains("全区合计") && ranking.contains(&code),
        "{ranking}"
    );
    browser.screenshot(&shots.join("evaluation.png")).await?;

    // An auditor verifies the chain.
    sign_in(&browser, &base, &auditor).await?;
    at(&browser, "/console/audit").await?;
    browser
        .click("form[action='/console/audit/verify'] button")
        .await?;
    notice_saying(&browser, "哈希链完整").await?;
    // The month finance closed is listed with its seal.
    assert!(
        browser
            .source()
            .await?
            .contains(&format!("<td>{ended}</td>")),
        "the sealed month is not listed"
    );
    browser.screenshot(&shots.join("audit.png")).await?;

    // The process stops when asked, its API's watches never having failed. Its client gives up
    // on a response silent for 15 s, and rate cards rarely change: the server must end each
    // watch before that. The process has run for at least 20 s by then.
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(started.elapsed())).await;
    drop(browser);
    store.close().await;
    let (clean, log) = dev.stop()?;
    assert!(clean, "zhengyun dev did not stop cleanly:\n{log}");
    assert!(
        log.contains("the operator stopped") && log.contains("the API stopped"),
        "{log}"
    );
    assert!(
        !log.contains("watch failed") && !log.contains("watch of rate cards failed"),
        "{log}"
    );
    Ok(())
}

#[test]
fn console_pages_carry_a_strict_policy_and_a_stranger_is_sent_to_sign_in() -> anyhow::Result<()> {
    let api = ServerProcess::start(&["api"])?;
    let base = api.url.clone();
    let head = std::process::Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null"])
        .arg(format!("{base}/console/finance"))
        .output()?;
    let head = String::from_utf8_lossy(&head.stdout).to_lowercase();
    assert!(head.starts_with("http/1.1 303"), "{head}");
    assert!(head.contains("location: /console/sign-in"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'self'; script-src 'self'"),
        "{head}"
    );
    let page = std::process::Command::new("curl")
        .args(["-s"])
        .arg(format!("{base}/console/sign-in"))
        .output()?;
    let page = String::from_utf8_lossy(&page.stdout);
    assert!(!page.contains("<script>"), "an inline script: {page}");
    assert!(page.contains("/console/assets/htmx-2.0.11.min.js"));
    // A sign-in posted without the nonce this browser was given is refused.
    let forged = curl_status(&[
        "--data",
        &format!("token={}&nonce=guess", api.admin),
        &format!("{base}/console/sign-in"),
    ])?;
    assert_eq!(forged, "403");
    let (clean, log) = api.stop()?;
    assert!(clean, "zhengyun api did not stop cleanly:\n{log}");
    Ok(())
}
