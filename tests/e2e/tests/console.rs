//! The web console in a real browser (headless Chromium over WebDriver) against a running
//! `zhengyun dev` (API and operator in one process) on the devcluster: a bureau admin signs in, requests an environment that fits and one that does not,
//! sees them, downloads a kubeconfig, and is refused another bureau's page; a platform admin
//! approves the pending request; finance opens the month, downloads the CSV and closes a past
//! month; an auditor verifies the chain. A form posted without its CSRF token is refused.
//! Screenshots of each page go to target/console-screenshots/.
//! Against a `zhengyun api`: a bureau admin signs in at the development identity provider's
//! own form in the browser (a wrong password opens no session); staff read their pages with
//! JavaScript turned off; every page a role opens forbids inline scripts.

use std::{path::PathBuf, time::Duration};

use kube::Api as KubeApi;
use serde_json::json;
use zhengyun_e2e::{
    browser::{Browser, BrowserOptions},
    client, eventually,
    idp::Idp,
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

/// A `zhengyun api` on the devcluster trusting the development identity provider as the
/// console's, with one bureau of this test's own (`prefix…`) named 区卫生健康委员会.
async fn api_with_a_bureau(
    prefix: &str,
    idp: Option<&Idp>,
) -> anyhow::Result<(ServerProcess, Store, String)> {
    let kube = client().await?;
    install_crds(&kube).await?;
    ensure_capacity_pool(&kube).await?;
    apply_sample_rate_card(&kube).await?;
    let code = bureau_code(prefix);
    create_bureau(
        &kube,
        &code,
        json!({"displayName": "区卫生健康委员会", "kind": "bureau",
               "quota": {"cpu": "4", "memory": "8Gi", "storage": "20Gi"},
               "monthlyBudget": "1000.00"}),
    )
    .await?;
    let api = match idp {
        Some(idp) => {
            let config = std::env::temp_dir().join(zhengyun_e2e::unique_name("zhengyun-oidc"));
            std::fs::write(
                &config,
                format!(
                    "issuers:\n  - issuer: {}\n    audiences: [zhengyun]\n    displayName: 海淀区统一身份认证（测试）\n    caFile: {}\n",
                    idp.issuer,
                    idp.ca.display()
                ),
            )?;
            let api = ServerProcess::start(&["api", "--oidc-config", &config.to_string_lossy()]);
            // Read once, at start.
            let _ = std::fs::remove_file(&config);
            api?
        }
        None => ServerProcess::start(&["api"])?,
    };
    let store = Store::connect(&api.database_url).await?;
    Ok((api, store, code))
}

/// Stops `api`, which must stop cleanly.
async fn stop(api: ServerProcess, store: Store) -> anyhow::Result<()> {
    store.close().await;
    let (clean, log) = api.stop()?;
    assert!(clean, "zhengyun api did not stop cleanly:\n{log}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bureau_admin_signs_in_at_the_identity_provider_in_the_browser_and_a_wrong_password_opens_no_session()
-> anyhow::Result<()> {
    let idp = Idp::require()?;
    let (api, store, code) = api_with_a_bureau("conoidc", Some(&idp)).await?;
    let base = api.url.clone();
    // 王芳, an admin of this test's own bureau (the sample users' bureaus may not exist here).
    let user = format!("wangfang-{code}");
    idp.add_user(
        &user,
        "zhengyun-dev",
        "王芳",
        &[&format!("zhengyun:{code}:bureau-admin")],
    )?;
    // The provider's certificate is signed by the development CA, which the system does not
    // trust: the browser accepts that certificate's key, and only it. The API checks the
    // provider's certificate against the CA itself.
    let browser = Browser::start_with(BrowserOptions {
        accepted_certificate: Some(idp.certificate.clone()),
        ..BrowserOptions::default()
    })
    .await?;
    let at_provider = || async {
        let reached = eventually(
            "the provider's sign-in form",
            Duration::from_secs(15),
            || async {
                Ok((browser.url().await?.starts_with(&idp.issuer)
                    && browser.source().await?.contains("name=\"password\""))
                .then_some(()))
            },
        )
        .await;
        if reached.is_err() {
            let url = browser.url().await?;
            let page = browser.source().await.unwrap_or_default();
            anyhow::bail!("at {url}, not the provider's sign-in form: {page}");
        }
        Ok(())
    };

    // A wrong password stays on the provider's page, saying so, and opens no session.
    browser.open(&format!("{base}/console/sign-in")).await?;
    browser
        .click("a[href='/console/sign-in/oidc?issuer=0']")
        .await?;
    at_provider().await?;
    browser.fill("input[name=username]", &user).await?;
    browser
        .fill("input[name=password]", "wrong-password")
        .await?;
    browser.click("form[action='/authorize'] button").await?;
    let refused = eventually(
        "the provider's refusal",
        Duration::from_secs(15),
        || async { Ok(browser.text(".error").await.ok()) },
    )
    .await?;
    assert!(!refused.is_empty());
    assert!(browser.url().await?.starts_with(&idp.issuer));
    browser
        .open(&format!("{base}/console/bureaus/{code}"))
        .await?;
    at(&browser, "/console/sign-in").await?;
    assert_eq!(browser.cookie("zy_session").await?, None);

    // The right one: back at the console's callback and on to the bureau's page, signed in as
    // the person.
    browser
        .click("a[href='/console/sign-in/oidc?issuer=0']")
        .await?;
    at_provider().await?;
    browser.fill("input[name=username]", &user).await?;
    browser.fill("input[name=password]", "zhengyun-dev").await?;
    browser.click("form[action='/authorize'] button").await?;
    at(&browser, &format!("/console/bureaus/{code}")).await?;
    assert!(browser.text("h1").await?.contains("区卫生健康委员会"));
    let who = browser.text(".who").await?;
    assert!(who.contains("王芳"), "signed in as {who}");
    assert!(browser.cookie("zy_session").await?.is_some());

    drop(browser);
    stop(api, store).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn staff_read_the_bureau_finance_and_audit_pages_with_javascript_turned_off()
-> anyhow::Result<()> {
    let (api, store, code) = api_with_a_bureau("connojs", None).await?;
    let base = api.url.clone();
    let admin = token(&store, Role::BureauAdmin, Some(&code)).await?;
    let finance = token(&store, Role::Finance, None).await?;
    let auditor = token(&store, Role::Auditor, None).await?;
    let browser = Browser::start_with(BrowserOptions {
        javascript: false,
        ..BrowserOptions::default()
    })
    .await?;

    // The sign-in form is a plain form post; the bureau's page shows its quota.
    sign_in(&browser, &base, &admin).await?;
    at(&browser, &format!("/console/bureaus/{code}")).await?;
    // No page script ran: htmx, which the page loads, never defined itself.
    let htmx = browser.execute("return typeof htmx").await?;
    assert_eq!(htmx, "undefined", "the page's scripts ran");
    assert!(browser.text("h1").await?.contains("区卫生健康委员会"));
    let page = browser.source().await?;
    assert!(page.contains("配额") && page.contains("<table"), "{page}");

    // Finance reads the month.
    sign_in(&browser, &base, &finance).await?;
    at(&browser, "/console/finance").await?;
    let page = browser.source().await?;
    assert!(
        browser.text("h1").await?.contains("财务") && page.contains("<table"),
        "{page}"
    );

    // An auditor reads the log.
    sign_in(&browser, &base, &auditor).await?;
    at(&browser, "/console/audit").await?;
    let page = browser.source().await?;
    assert!(
        browser.text("h1").await?.contains("审计日志")
            && page.contains("<table")
            && page.contains("action=\"/console/audit/verify\""),
        "{page}"
    );

    drop(browser);
    stop(api, store).await
}

/// The status and the `Content-Security-Policy` of `GET url`, with the session `cookie`.
fn status_and_policy(url: &str, cookie: Option<&str>) -> anyhow::Result<(String, String)> {
    let mut command = std::process::Command::new("curl");
    command.args(["-s", "-D", "-", "-o", "/dev/null"]);
    if let Some(cookie) = cookie {
        command.args(["-b", &format!("zy_session={cookie}")]);
    }
    let head = command.arg(url).output()?;
    let head = String::from_utf8_lossy(&head.stdout).into_owned();
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .unwrap_or_default()
        .to_owned();
    let policy = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-security-policy")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    Ok((status, policy))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_console_page_a_role_opens_forbids_inline_scripts() -> anyhow::Result<()> {
    let (api, store, code) = api_with_a_bureau("concsp", None).await?;
    let base = api.url.clone();
    let browser = Browser::start().await?;
    let mut sessions = Vec::new();
    for (role, bureau) in [
        (Role::BureauAdmin, Some(code.as_str())),
        (Role::Finance, None),
        (Role::Auditor, None),
    ] {
        sessions.push(token(&store, role, bureau).await?);
    }
    sessions.push(api.admin.clone());
    let mut cookies = Vec::new();
    for token in &sessions {
        sign_in(&browser, &base, token).await?;
        let cookie = eventually("a session", Duration::from_secs(15), || async {
            browser.cookie("zy_session").await
        })
        .await?;
        cookies.push(cookie);
    }
    let [admin, finance, auditor, platform] = &cookies[..] else {
        unreachable!()
    };
    let bureau_page = format!("/console/bureaus/{code}");
    for (path, cookie) in [
        (bureau_page.as_str(), Some(admin)),
        ("/console/evaluation", Some(admin)),
        ("/console/finance", Some(finance)),
        ("/console/evaluation", Some(finance)),
        ("/console/audit", Some(auditor)),
        ("/console/finance", Some(auditor)),
        ("/console/admin/bureaus", Some(platform)),
        ("/console/admin/requests", Some(platform)),
        ("/console/sign-in", None),
    ] {
        let (status, policy) =
            status_and_policy(&format!("{base}{path}"), cookie.map(String::as_str))?;
        assert_eq!(status, "200", "{path}");
        let scripts = policy
            .split(';')
            .map(str::trim)
            .find(|directive| directive.starts_with("script-src "))
            .or_else(|| {
                policy
                    .split(';')
                    .map(str::trim)
                    .find(|directive| directive.starts_with("default-src "))
            });
        let scripts = scripts.unwrap_or_else(|| panic!("{path}: no script source in {policy:?}"));
        assert!(
            !scripts.contains("'unsafe-inline'") && !scripts.contains("'unsafe-eval'"),
            "{path}: {policy}"
        );
        assert!(scripts.contains("'self'"), "{path}: {policy}");
    }

    drop(browser);
    stop(api, store).await
}
