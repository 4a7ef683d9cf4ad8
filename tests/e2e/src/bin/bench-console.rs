//! `make bench` (console): how long the console's pages take to render and how large they are,
//! with 20 signed-in sessions at once against a real `zhengyun api` process and the devcluster
//! holding the 71 Haidian sample tenants.
//!
//! Before the API starts, its store is given this month's usage so far (hourly, three
//! environments per bureau), so that statements, costs by day and the finance page have a row
//! per bureau. Sessions, twenty at once: 7 bureau admins of different bureaus (their bureau's
//! page), 4 finance officers (the month's cost by bureau), 2 more (the annual evaluation), 3
//! auditors (the audit log), 3 platform admins (2 on the bureaus, 1 on the approvals queue) and
//! one visitor not signed in (the sign-in page). Each loads its page `rounds` times, one after
//! another. The time is the whole answer over loopback, so it bounds the server's render time
//! from above. Prints p50 / p99 / max per page, the largest page, and the largest page with the
//! stylesheet and script it links to (what a first visit transfers), and writes
//! target/bench/console.json.
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

/// The console's own assets a page links to (`/console/assets/…`), each once.
fn assets_of(page: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(page);
    let mut found: Vec<String> = text
        .split(['"', '\''])
        .filter(|part| part.starts_with("/console/assets/"))
        .map(str::to_owned)
        .collect();
    found.sort();
    found.dedup();
    found
}

/// The size on the wire of every asset the measured pages link to, as a first visit loads it
/// (the browser taking gzip).
async fn asset_bytes(
    http: &Http,
    base: &str,
    results: &[anyhow::Result<(&str, Vec<Duration>, Bytes)>],
) -> anyhow::Result<std::collections::HashMap<String, usize>> {
    let mut sizes = std::collections::HashMap::new();
    for (_, _, page) in results.iter().flatten() {
        for asset in assets_of(page) {
            if sizes.contains_key(&asset) {
                continue;
            }
            // As a browser asks: compressed where the server offers it.
            let request = Request::get(format!("{base}{asset}"))
                .header(header::ACCEPT_ENCODING, "gzip, deflate, br, zstd")
                .body(Full::new(Bytes::new()))?;
            let answer = http.request(request).await?;
            anyhow::ensure!(
                answer.status() == StatusCode::OK,
                "{asset}: {}",
                answer.status()
            );
            sizes.insert(asset, answer.into_body().collect().await?.to_bytes().len());
        }
    }
    Ok(sizes)
}

/// Records this month's usage so far (by the platform's clock, in its calendar) in the store at
/// `database_url`: for each bureau of `codes` three environments (dev, test, prod at bronze,
/// silver, gold), CPU and memory, reserved and consumed, one interval per meter per hour, one
/// transaction per hour as the sampler's close writes them. Returns the intervals written.
async fn seed_usage(database_url: &str, codes: &[String]) -> anyhow::Result<u64> {
    use jiff::SignedDuration;
    use zhengyun_metering::{Calendar, Meter, UsageInterval, UsageKind};
    use zhengyun_model::{names::Tier, quantity::Resource};
    let store = zhengyun_store::Store::connect(database_url).await?;
    let calendar = Calendar::default();
    let now = zhengyun_e2e::clock().now();
    let start = calendar.month_range(calendar.month_of(now))?.start();
    let hours = (now.as_second() - start.as_second()) / 3_600;
    let mut meters = Vec::new();
    for code in codes {
        for (purpose, tier) in [
            ("dev", Tier::Bronze),
            ("test", Tier::Silver),
            ("prod", Tier::Gold),
        ] {
            for resource in [Resource::Cpu, Resource::Memory] {
                for kind in [UsageKind::Reserved, UsageKind::Consumed] {
                    meters.push(Meter::new(
                        code.clone(),
                        format!("{code}-{purpose}"),
                        resource,
                        kind,
                        tier,
                    )?);
                }
            }
        }
    }
    let mut written = 0;
    for hour in 0..hours {
        let from = start + SignedDuration::from_hours(hour);
        let to = from + SignedDuration::from_hours(1);
        let batch = meters
            .iter()
            .enumerate()
            .map(|(i, meter)| {
                let reserved: u64 = match meter.resource() {
                    Resource::Cpu => 2_000,
                    _ => 4 << 30,
                };
                let amount = match meter.kind() {
                    UsageKind::Reserved => reserved,
                    _ => reserved / 5 + (reserved / 100) * ((hour as u64 + i as u64) % 24),
                };
                Ok(UsageInterval::new(meter.clone(), from, to, amount)?)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        written += store.record_intervals(&batch).await?.new;
    }
    store.close().await;
    Ok(written)
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
    // A month so far of hourly usage for every sample bureau, so that statements, costs by day
    // and the finance page have a row per bureau, as in a running district.
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        std::env::temp_dir()
            .join(format!("{}.db", zhengyun_e2e::unique_name("bench-console")))
            .display()
    );
    let intervals = seed_usage(&database_url, &codes).await?;
    let server = zhengyun_e2e::bench::start_api("bench-console", Some(database_url))?;
    let admin = server.admin.clone();
    let base = server.url.clone();
    let http: Http = HttpClient::builder(TokioExecutor::new()).build_http();
    zhengyun_e2e::bench::wait_ready(&base).await?;
    // Tokens, then sessions (twenty at once, see the module doc).
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
    let mut sessions: Vec<(&'static str, String, Option<String>)> = Vec::new();
    for code in codes.iter().take(7) {
        let token = issue("bureau-admin", Some(code.clone())).await?;
        sessions.push((
            "bureau",
            format!("{base}/console/bureaus/{code}"),
            Some(token),
        ));
    }
    let pages: [(&str, &str, &str, usize); 6] = [
        ("finance", "/console/finance", "finance", 4),
        ("evaluation", "/console/evaluation", "finance", 2),
        ("audit", "/console/audit", "auditor", 3),
        ("bureaus", "/console/admin/bureaus", "platform-admin", 2),
        ("approvals", "/console/admin/requests", "platform-admin", 1),
        ("sign-in", "/console/sign-in", "", 1),
    ];
    for (page, path, role, count) in pages {
        for _ in 0..count {
            let token = match role {
                "" => None,
                role => Some(issue(role, None).await?),
            };
            sessions.push((page, format!("{base}{path}"), token));
        }
    }
    anyhow::ensure!(sessions.len() == 20, "{} sessions", sessions.len());
    let mut signed_in = Vec::new();
    for (page, url, token) in &sessions {
        let cookie = match token {
            Some(token) => sign_in(&http, &base, token).await?,
            None => String::new(),
        };
        signed_in.push((*page, url.clone(), cookie));
    }
    // Every session loads its page `rounds` times; all at once.
    let runs = signed_in.iter().map(|(page, url, cookie)| {
        let http = http.clone();
        async move {
            let mut times = Vec::new();
            let mut largest = Bytes::new();
            for _ in 0..rounds {
                let started = Instant::now();
                let (status, _, body) = send(&http, Method::GET, url, cookie, None, None).await?;
                times.push(started.elapsed());
                anyhow::ensure!(status == StatusCode::OK, "{url}: {status}");
                if body.len() > largest.len() {
                    largest = body;
                }
            }
            Ok::<_, anyhow::Error>((*page, times, largest))
        }
    });
    let results = join_all(runs).await;
    let mut report = serde_json::Map::new();
    println!(
        "console: 20 sessions at once, {rounds} loads each ({} bureaus, {intervals} usage intervals this month)",
        codes.len()
    );
    let assets = asset_bytes(&http, &base, &results).await?;
    for page in [
        "bureau",
        "finance",
        "evaluation",
        "audit",
        "bureaus",
        "approvals",
        "sign-in",
    ] {
        let mut times = Vec::new();
        let mut largest = 0;
        let mut first_load = 0;
        for result in &results {
            let (name, t, body) = result.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
            if *name == page {
                times.extend(t.iter().copied());
                largest = largest.max(body.len());
                let with_assets = body.len()
                    + assets_of(body)
                        .iter()
                        .map(|a| assets.get(a).copied().unwrap_or(0))
                        .sum::<usize>();
                first_load = first_load.max(with_assets);
            }
        }
        times.sort();
        let (p50, p99, max) = (
            percentile(&times, 50.0),
            percentile(&times, 99.0),
            times.last().copied().unwrap_or_default(),
        );
        println!(
            "  {page:10} p50 {:7.1} ms  p99 {:7.1} ms  max {:7.1} ms  largest page {:6.1} KB, with its stylesheet and script {:6.1} KB",
            ms(p50),
            ms(p99),
            ms(max),
            largest as f64 / 1024.0,
            first_load as f64 / 1024.0
        );
        report.insert(
            page.to_owned(),
            json!({"p50_ms": ms(p50), "p99_ms": ms(p99), "max_ms": ms(max), "largest_bytes": largest,
                   "first_load_bytes": first_load, "loads": times.len()}),
        );
    }
    std::fs::create_dir_all("target/bench")?;
    std::fs::write(
        "target/bench/console.json",
        serde_json::to_string_pretty(&report)?,
    )?;
    Ok(())
}
