//! `make bench` (console): how long the console's pages take to render and how large they are,
//! with 20 signed-in sessions at once against a real `zhengyun api` process and the devcluster
//! holding the 71 Haidian sample tenants.
//!
//! Sessions: 10 bureau admins of different bureaus (their bureau's page), 5 finance officers
//! (the month's cost by bureau) and 5 auditors (the audit log). Each loads its page `rounds`
//! times, one after another; all sessions run at once. The time is the whole answer over
//! loopback, so it bounds the server's render time from above. Prints p50 / p99 / max per page
//! and the largest page, and writes target/bench/console.json.
//!
//! Usage: `bench-console [rounds]` (default 30). Needs KUBECONFIG and ZHENGYUN_BIN (default
//! target/release/zhengyun).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use futures::future::join_all;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client as HttpClient, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use zhengyun_e2e::operator::install_crds;
use zhengyun_model::crd::Bureau;

type Http = HttpClient<HttpConnector, Full<Bytes>>;

async fn send(
    http: &Http,
    method: Method,
    url: &str,
    cookie: &str,
    token: Option<&str>,
    form: Option<String>,
) -> anyhow::Result<(StatusCode, http::HeaderMap, Bytes)> {
    let mut request = Request::builder().method(method).uri(url);
    if !cookie.is_empty() {
        request = request.header(header::COOKIE, cookie);
    }
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match form {
        Some(form) => {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            Bytes::from(form)
        }
        None => Bytes::new(),
    };
    let answer = http.request(request.body(Full::new(body))?).await?;
    let (parts, body) = answer.into_parts();
    Ok((
        parts.status,
        parts.headers,
        body.collect().await?.to_bytes(),
    ))
}

fn cookie_of(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")).map(str::to_owned))
}

/// Signs in with `token`; the session cookie.
async fn sign_in(http: &Http, base: &str, token: &str) -> anyhow::Result<String> {
    let (_, headers, _) = send(
        http,
        Method::GET,
        &format!("{base}/console/sign-in"),
        "",
        None,
        None,
    )
    .await?;
    let nonce = cookie_of(&headers, "zy_sign_in").context("no sign-in nonce")?;
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("token", token), ("nonce", &nonce)])
        .finish();
    let (status, headers, _) = send(
        http,
        Method::POST,
        &format!("{base}/console/sign-in"),
        &format!("zy_sign_in={nonce}"),
        None,
        Some(form),
    )
    .await?;
    anyhow::ensure!(status == StatusCode::SEE_OTHER, "sign-in answered {status}");
    Ok(format!(
        "zy_session={}",
        cookie_of(&headers, "zy_session").context("no session")?
    ))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(30);
    let kube = zhengyun_e2e::client().await?;
    install_crds(&kube).await?;
    // Statements and costs are priced by the sample rate card; the pool is the sample's.
    zhengyun_e2e::tenants::apply_sample_rate_card(&kube).await?;
    zhengyun_e2e::tenants::ensure_capacity_pool(&kube).await?;
    // The 71 sample tenants (created or left as they are).
    let bureaus: kube::Api<Bureau> = kube::Api::all(kube.clone());
    let samples = include_str!("../../../../manifests/samples/bureaus-haidian.yaml");
    let mut codes = Vec::new();
    for document in samples
        .split("\n---")
        .filter(|d| d.contains("kind: Bureau"))
    {
        let bureau: Bureau = serde_yaml::from_str(document)?;
        let name = bureau.metadata.name.clone().unwrap_or_default();
        bureaus
            .patch(
                &name,
                &PatchParams::apply("zhengyun-bench").force(),
                &Patch::Apply(&bureau),
            )
            .await?;
        codes.push(name);
    }
    let server = zhengyun_e2e::bench::start_api("bench-console")?;
    let admin = server.admin.clone();
    let base = server.url.clone();
    let http: Http = HttpClient::builder(TokioExecutor::new()).build_http();
    let started = Instant::now();
    while send(
        &http,
        Method::GET,
        &format!("{base}/readyz"),
        "",
        None,
        None,
    )
    .await
    .map(|(s, _, _)| s != StatusCode::OK)
    .unwrap_or(true)
    {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the API did not start"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Tokens, then sessions: 10 bureau admins, 5 finance officers, 5 auditors.
    let issue = |role: &'static str, bureau: Option<String>| {
        let (http, base, admin) = (http.clone(), base.clone(), admin.clone());
        async move {
            let body =
                json!({"role": role, "bureau": bureau, "description": "bench-console"}).to_string();
            let mut request = Request::post(format!("{base}/api/v1/tokens"))
                .header(header::AUTHORIZATION, format!("Bearer {admin}"))
                .header(header::CONTENT_TYPE, "application/json");
            request = request.header(header::ACCEPT, "application/json");
            let answer = http
                .request(request.body(Full::new(Bytes::from(body)))?)
                .await?;
            let body: Value =
                serde_json::from_slice(&answer.into_body().collect().await?.to_bytes())?;
            body["secret"]
                .as_str()
                .map(str::to_owned)
                .context("no token issued")
        }
    };
    let mut sessions: Vec<(&'static str, String, String)> = Vec::new();
    for code in codes.iter().take(10) {
        let token = issue("bureau-admin", Some(code.clone())).await?;
        sessions.push(("bureau", format!("{base}/console/bureaus/{code}"), token));
    }
    for _ in 0..5 {
        sessions.push((
            "finance",
            format!("{base}/console/finance"),
            issue("finance", None).await?,
        ));
        sessions.push((
            "audit",
            format!("{base}/console/audit"),
            issue("auditor", None).await?,
        ));
    }
    let mut signed_in = Vec::new();
    for (page, url, token) in &sessions {
        signed_in.push((*page, url.clone(), sign_in(&http, &base, token).await?));
    }
    // Every session loads its page `rounds` times; all at once.
    let runs = signed_in.iter().map(|(page, url, cookie)| {
        let http = http.clone();
        async move {
            let mut times = Vec::new();
            let mut largest = 0;
            for _ in 0..rounds {
                let started = Instant::now();
                let (status, _, body) = send(&http, Method::GET, url, cookie, None, None).await?;
                times.push(started.elapsed());
                anyhow::ensure!(status == StatusCode::OK, "{url}: {status}");
                largest = largest.max(body.len());
            }
            Ok::<_, anyhow::Error>((*page, times, largest))
        }
    });
    let results = join_all(runs).await;
    let mut report = serde_json::Map::new();
    println!("console: 20 sessions at once, {rounds} loads each (71 bureaus)");
    for page in ["bureau", "finance", "audit"] {
        let mut times = Vec::new();
        let mut largest = 0;
        for result in &results {
            let (name, t, size) = result.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
            if *name == page {
                times.extend(t.iter().copied());
                largest = largest.max(*size);
            }
        }
        times.sort();
        let (p50, p99, max) = (
            percentile(&times, 50.0),
            percentile(&times, 99.0),
            times.last().copied().unwrap_or_default(),
        );
        println!(
            "  {page:8} p50 {:7.1} ms  p99 {:7.1} ms  max {:7.1} ms  largest page {:6.1} KB",
            ms(p50),
            ms(p99),
            ms(max),
            largest as f64 / 1024.0
        );
        report.insert(
            page.to_owned(),
            json!({"p50_ms": ms(p50), "p99_ms": ms(p99), "max_ms": ms(max), "largest_bytes": largest, "loads": times.len()}),
        );
    }
    std::fs::create_dir_all("target/bench")?;
    std::fs::write(
        "target/bench/console.json",
        serde_json::to_string_pretty(&report)?,
    )?;
    Ok(())
}
