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
//! After one load of every page (the first after a start, reported apart), it measures three
//! runs. Two load back to back, each session starting its next load as soon as the last
//! answered, which keeps the two cores busy (the throughput, and the wait in the queue that
//! saturation adds): first with the ledger as it stands between two metering closes (the
//! sampler closes hourly by default, and the API keeps usage sums until the ledger changes),
//! then while a close of every meter is recorded every 2 s, so that the loads after each close
//! read the ledger again. The third is twenty people at work: each session loads its page once
//! a second for a minute (far more often than a person reads a page), the closes still going
//! on; its times are the render time the console's target is about.
//!
//! Usage: `bench console [rounds [page]]` (default 100 rounds; with a page, only that page's
//! sessions load, to look at one page alone). Needs KUBECONFIG and ZHENGYUN_BIN (default
//! target/release/zhengyun).

use std::collections::HashMap;
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};
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
use zhengyun_e2e::bench::cpu_seconds;
use zhengyun_e2e::operator::install_crds;
use zhengyun_metering::{Calendar, Meter, UsageInterval, UsageKind};
use zhengyun_model::{crd::Bureau, names::Tier, quantity::Resource};

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
    results: &[Loads],
) -> anyhow::Result<HashMap<String, usize>> {
    let mut sizes = HashMap::new();
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

/// For each bureau of `codes` three environments (dev, test, prod at bronze, silver, gold),
/// CPU and memory, reserved and consumed.
fn meters_of(codes: &[String]) -> anyhow::Result<Vec<Meter>> {
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
    Ok(meters)
}

/// Records one interval per meter for the hour from `from`, in one transaction, as the
/// sampler's hourly close writes them. Returns the intervals written.
async fn record_hour(
    store: &zhengyun_store::Store,
    meters: &[Meter],
    from: jiff::Timestamp,
    hour: u64,
) -> anyhow::Result<u64> {
    let to = from + jiff::SignedDuration::from_hours(1);
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
                _ => reserved / 5 + (reserved / 100) * ((hour + i as u64) % 24),
            };
            Ok(UsageInterval::new(meter.clone(), from, to, amount)?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(store.record_intervals(&batch).await?.new)
}

/// Records this month's usage so far (by the platform's clock, in its calendar) in the store at
/// `database_url`, hour by hour. Returns the intervals written.
async fn seed_usage(database_url: &str, meters: &[Meter]) -> anyhow::Result<u64> {
    let store = zhengyun_store::Store::connect(database_url).await?;
    let calendar = Calendar::default();
    let now = zhengyun_e2e::clock().now();
    let start = calendar.month_range(calendar.month_of(now))?.start();
    let hours = (now.as_second() - start.as_second()) / 3_600;
    let mut written = 0;
    for hour in 0..hours {
        let from = start + jiff::SignedDuration::from_hours(hour);
        written += record_hour(&store, meters, from, hour as u64).await?;
    }
    store.close().await;
    Ok(written)
}

/// Until `stop` is set, records an hour of every meter every [`CLOSE_EVERY`], walking back
/// from the start of this month (so that this month's figures stay as seeded, while every
/// close moves the ledger's revision as the sampler's would). Returns the closes recorded.
async fn record_closes(
    database_url: String,
    meters: Vec<Meter>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<u64> {
    let store = zhengyun_store::Store::connect(&database_url).await?;
    let calendar = Calendar::default();
    let start = calendar
        .month_range(calendar.month_of(zhengyun_e2e::clock().now()))?
        .start();
    let mut closes = 0;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(CLOSE_EVERY).await;
        closes += 1;
        let from = start - jiff::SignedDuration::from_hours(closes as i64);
        record_hour(&store, &meters, from, closes).await?;
    }
    store.close().await;
    Ok(closes)
}

/// How often a session of the paced run loads its page, and how many times.
const PACE: Duration = Duration::from_secs(1);
const PACED_ROUNDS: usize = 60;

/// How often the second run records a metering close: 1,800 times the sampler's default
/// (hourly), so that the run sees many.
const CLOSE_EVERY: Duration = Duration::from_secs(2);

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

/// Runs the benchmark with `args` (those after its name).
pub async fn main(args: &[String]) -> anyhow::Result<()> {
    let rounds: usize = args.first().map(|a| a.parse()).transpose()?.unwrap_or(100);
    let kube = zhengyun_e2e::client().await?;
    install_crds(&kube).await?;
    // Statements and costs are priced by the sample rate card; the pool is the sample's.
    zhengyun_e2e::tenants::apply_sample_rate_card(&kube).await?;
    zhengyun_e2e::tenants::ensure_capacity_pool(&kube).await?;
    // The 71 sample tenants (created or left as they are).
    let bureaus: kube::Api<Bureau> = kube::Api::all(kube.clone());
    let samples = include_str!("../../../../../manifests/samples/bureaus-haidian.yaml");
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
    let meters = meters_of(&codes)?;
    let intervals = seed_usage(&database_url, &meters).await?;
    let server = zhengyun_e2e::bench::start_api("bench-console", Some(database_url.clone()))?;
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
    // `bench console ROUNDS PAGE` loads only PAGE's sessions: to look at one page alone.
    if let Some(only) = args.get(1) {
        sessions.retain(|(page, _, _)| *page == only);
    }
    let mut signed_in = Vec::new();
    for (page, url, token) in &sessions {
        let cookie = match token {
            Some(token) => sign_in(&http, &base, token).await?,
            None => String::new(),
        };
        signed_in.push((*page, url.clone(), cookie));
    }
    println!(
        "console: {} sessions at once, {rounds} loads each ({} bureaus, {intervals} usage intervals this month)",
        signed_in.len(),
        codes.len()
    );
    // First with the ledger as it is between two metering closes, then with a close recorded
    // every CLOSE_EVERY, each of which makes the next load of every page read the ledger again.
    // One load of every page first, alone: what the first visitor after a start waits for
    // (templates, the first read of the ledger). Reported, not counted with the rest.
    let cold = measure(&http, &signed_in, 1, None).await;
    let api_pid = server.pid();
    let runs: [(&str, &str, usize, Option<Duration>, bool); 4] = [
        (
            "steady",
            "back to back, between metering closes",
            rounds,
            None,
            false,
        ),
        (
            "paced",
            "each session once a second, between metering closes",
            PACED_ROUNDS,
            Some(PACE),
            false,
        ),
        (
            "withCloses",
            "back to back, a metering close of every meter every 2 s",
            rounds,
            None,
            true,
        ),
        (
            "pacedWithCloses",
            "each session once a second, a metering close every 2 s",
            PACED_ROUNDS,
            Some(PACE),
            true,
        ),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let mut writer = None;
    let mut measured = Vec::new();
    for (key, title, rounds, pace, closes) in runs {
        if closes && writer.is_none() {
            writer = Some(tokio::spawn(record_closes(
                database_url.clone(),
                meters.clone(),
                stop.clone(),
            )));
        }
        let (started, cpu) = (Instant::now(), cpu_seconds(api_pid));
        let loads = measure(&http, &signed_in, rounds, pace).await;
        let (lasted, cpu) = (started.elapsed(), cpu_seconds(api_pid) - cpu);
        measured.push((key, title, signed_in.len() * rounds, lasted, cpu, loads));
    }
    stop.store(true, Ordering::Relaxed);
    let closes = match writer {
        Some(writer) => writer.await??,
        None => 0,
    };
    let assets = asset_bytes(&http, &base, &cold).await?;
    let mut report = serde_json::Map::new();
    println!("  the first load of each page after the API started, 20 at once:");
    report.insert("first".to_owned(), summary(&cold, &assets)?);
    for (key, title, count, lasted, cpu, loads) in &measured {
        let seconds = lasted.as_secs_f64();
        println!(
            "  {title}: {count} loads in {seconds:.1} s, {:.0} loads/s, the API's CPU {:.2} ms a load ({:.0} % of one core)",
            *count as f64 / seconds,
            1000.0 * cpu / *count as f64,
            100.0 * cpu / seconds
        );
        let mut figures = summary(loads, &assets)?;
        figures["apiCpuMsPerLoad"] = json!(1000.0 * cpu / *count as f64);
        figures["loadsPerSecond"] = json!(*count as f64 / seconds);
        report.insert((*key).to_owned(), figures);
    }
    println!("  ({closes} metering closes recorded in all)");
    std::fs::create_dir_all("target/bench")?;
    std::fs::write(
        "target/bench/console.json",
        serde_json::to_string_pretty(&report)?,
    )?;
    Ok(())
}

/// One page's loads: its name, each load's time, and its largest answer.
type Loads = anyhow::Result<(&'static str, Vec<Duration>, Bytes)>;

/// Every session loads its page `rounds` times, one after another; all sessions at once, each
/// in a task of its own. With `pace`, a session starts a load only once every `pace` (the
/// sessions' starts spread over the first), as a person who reads the page between loads;
/// without, back to back.
async fn measure(
    http: &Http,
    signed_in: &[(&'static str, String, String)],
    rounds: usize,
    pace: Option<Duration>,
) -> Vec<Loads> {
    let sessions = signed_in.len().max(1) as u32;
    let runs = signed_in
        .iter()
        .enumerate()
        .map(|(i, (page, url, cookie))| {
            let (http, page, url, cookie) = (http.clone(), *page, url.clone(), cookie.clone());
            tokio::spawn(async move {
                let mut times = Vec::new();
                let mut largest = Bytes::new();
                let mut next = tokio::time::Instant::now();
                if let Some(pace) = pace {
                    next += pace * i as u32 / sessions;
                }
                for _ in 0..rounds {
                    if let Some(pace) = pace {
                        tokio::time::sleep_until(next).await;
                        next += pace;
                    }
                    let started = Instant::now();
                    let (status, _, body) =
                        send(&http, Method::GET, &url, &cookie, None, None).await?;
                    times.push(started.elapsed());
                    anyhow::ensure!(status == StatusCode::OK, "{url}: {status}");
                    if body.len() > largest.len() {
                        largest = body;
                    }
                }
                Ok::<_, anyhow::Error>((page, times, largest))
            })
        });
    join_all(runs)
        .await
        .into_iter()
        .map(|joined| joined.map_err(anyhow::Error::from).and_then(|r| r))
        .collect()
}

/// Prints p50 / p99 / max, the largest page and a first visit's transfer of each page, and
/// returns them as JSON.
fn summary(results: &[Loads], assets: &HashMap<String, usize>) -> anyhow::Result<Value> {
    let results = results
        .iter()
        .map(|r| r.as_ref().map_err(|e| anyhow::anyhow!("{e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut report = serde_json::Map::new();
    for page in [
        "bureau",
        "finance",
        "evaluation",
        "audit",
        "bureaus",
        "approvals",
        "sign-in",
    ] {
        if !results.iter().any(|(name, _, _)| *name == page) {
            continue;
        }
        let mut times = Vec::new();
        let mut largest = 0;
        let mut first_load = 0;
        for (name, t, body) in &results {
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
            "    {page:10} p50 {:7.1} ms  p99 {:7.1} ms  max {:7.1} ms  largest page {:6.1} KB, with its stylesheet and script {:6.1} KB",
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
    Ok(Value::Object(report))
}
