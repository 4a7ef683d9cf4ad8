//! `make bench` (api): latency of the control-plane API at 50 concurrent clients, over HTTP
//! against a real `zhengyun api` process and the devcluster, next to the same reads and writes
//! made directly against the Kubernetes API server in the same run (the floor the API adds its
//! authentication, audit and checks to).
//!
//! Reads: each client lists its bureau's environments. Writes: each client requests
//! environments that fit its bureau's quota, then deletes them. Prints p50 / p99 / max and
//! throughput, and writes target/bench/api.json.
//!
//! Usage: `bench api [clients] [reads-per-client] [writes-per-client]` (default 50 40 10). Needs
//! KUBECONFIG and ZHENGYUN_BIN (default target/release/zhengyun).

use std::time::Instant;

use anyhow::Context as _;
use bytes::Bytes;
use futures::future::join_all;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client as HttpClient, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};
use zhengyun_e2e::operator::install_crds;
use zhengyun_e2e::unique_name;
use zhengyun_model::crd::{Bureau, Environment};

type Http = HttpClient<HttpConnector, Full<Bytes>>;

async fn call(
    http: &Http,
    method: Method,
    url: &str,
    token: &str,
    body: Option<&Value>,
) -> anyhow::Result<(StatusCode, Value)> {
    let mut request = Request::builder()
        .method(method)
        .uri(url)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    let payload = match body {
        Some(body) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Bytes::from(body.to_string())
        }
        None => Bytes::new(),
    };
    let response = http.request(request.body(Full::new(payload))?).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// Latencies of one kind of call.
#[derive(Default)]
struct Sample {
    millis: Vec<f64>,
    seconds: f64,
}

impl Sample {
    fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.millis.clone();
        sorted.sort_by(f64::total_cmp);
        if sorted.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    fn summary(&self) -> Value {
        json!({
            "count": self.millis.len(),
            "p50_ms": self.percentile(50.0),
            "p99_ms": self.percentile(99.0),
            "max_ms": self.percentile(100.0),
            "per_second": self.millis.len() as f64 / self.seconds.max(f64::EPSILON),
        })
    }
}

/// Runs `per_client` timed calls on each of `clients` concurrent tasks.
async fn measure<F, Fut>(clients: usize, per_client: usize, call: F) -> anyhow::Result<Sample>
where
    F: Fn(usize, usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    let tasks = (0..clients).map(|c| {
        let call = &call;
        async move {
            let mut millis = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let t = Instant::now();
                call(c, i).await?;
                millis.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(millis)
        }
    });
    let mut sample = Sample::default();
    for result in join_all(tasks).await {
        sample.millis.extend(result?);
    }
    sample.seconds = started.elapsed().as_secs_f64();
    Ok(sample)
}

fn env_object(bureau: &str, name: &str) -> anyhow::Result<Environment> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "Environment", "metadata": {"name": name},
        "spec": {"bureau": bureau, "purpose": "dev", "tier": "bronze", "quota": {"cpu": "1", "memory": "1Gi"}}
    }))?)
}

/// Runs the benchmark with `args` (those after its name).
pub async fn main(args: &[String]) -> anyhow::Result<()> {
    let args: Vec<usize> = args
        .iter()
        .map(|a| a.parse())
        .collect::<Result<_, _>>()
        .context("arguments: [clients] [reads-per-client] [writes-per-client]")?;
    let clients = args.first().copied().unwrap_or(50);
    let reads = args.get(1).copied().unwrap_or(40);
    let writes = args.get(2).copied().unwrap_or(10);

    let kube = zhengyun_e2e::client().await?;
    install_crds(&kube).await?;
    let server = zhengyun_e2e::bench::start_api("bench-api", None)?;
    zhengyun_e2e::bench::wait_ready(&server.url).await?;
    let http: Http = HttpClient::builder(TokioExecutor::new()).build_http();

    let prefix = unique_name("bapi").replace('-', "");
    let bureaus: Vec<String> = (0..clients).map(|i| format!("{prefix}x{i}")).collect();
    let bureau_api: Api<Bureau> = Api::all(kube.clone());
    let mut tokens = Vec::new();
    for code in &bureaus {
        let b: Bureau = serde_json::from_value(json!({
            "apiVersion": "zhengyun.io/v1alpha1", "kind": "Bureau", "metadata": {"name": code},
            "spec": {"displayName": "区基准测试局", "kind": "agency",
                     "quota": {"cpu": "1000", "memory": "1000Gi"}}
        }))?;
        bureau_api.create(&PostParams::default(), &b).await?;
        let (status, issued) = call(
            &http,
            Method::POST,
            &format!("{}/api/v1/tokens", server.url),
            &server.admin,
            Some(&json!({"role": "bureau-admin", "bureau": code})),
        )
        .await?;
        anyhow::ensure!(status == StatusCode::CREATED, "token: {status} {issued}");
        tokens.push(issued["secret"].as_str().unwrap_or_default().to_owned());
    }
    let envs: Api<Environment> = Api::all(kube.clone());

    let (url, http_ref, bureaus_ref, tokens_ref) = (&server.url, &http, &bureaus, &tokens);
    // One untimed round first, on both paths: connections (TLS to the API server, the API's
    // database pool) are opened once in a process's life and are not what is measured.
    let read_api = |c: usize, _: usize| async move {
        let path = format!("{url}/api/v1/bureaus/{}/environments", bureaus_ref[c]);
        let (status, body) = call(http_ref, Method::GET, &path, &tokens_ref[c], None).await?;
        anyhow::ensure!(status == StatusCode::OK, "read: {status} {body}");
        Ok(())
    };
    measure(clients, 2, read_api).await?;
    let api_reads = measure(clients, reads, read_api).await?;
    let envs_ref = &envs;
    measure(clients, 2, |c, _| async move {
        let params = ListParams::default().fields(&format!("spec.bureau={}", bureaus_ref[c]));
        envs_ref.list(&params).await?;
        Ok(())
    })
    .await?;
    let kube_reads = measure(clients, reads, |c, _| async move {
        let params = ListParams::default().fields(&format!("spec.bureau={}", bureaus_ref[c]));
        envs_ref.list(&params).await?;
        Ok(())
    })
    .await?;
    let api_writes = measure(clients, writes, |c, i| async move {
        let path = format!("{url}/api/v1/bureaus/{}/environments", bureaus_ref[c]);
        let body = json!({"name": format!("{}-dev-{i}", bureaus_ref[c]), "purpose": "dev",
                          "quota": {"cpu": "1", "memory": "1Gi"}});
        let (status, answer) =
            call(http_ref, Method::POST, &path, &tokens_ref[c], Some(&body)).await?;
        anyhow::ensure!(status == StatusCode::CREATED, "write: {status} {answer}");
        Ok(())
    })
    .await?;
    let kube_writes = measure(clients, writes, |c, i| async move {
        let name = format!("{}-dev-k{i}", bureaus_ref[c]);
        let env = env_object(&bureaus_ref[c], &name)?;
        envs_ref.create(&PostParams::default(), &env).await?;
        Ok(())
    })
    .await?;

    for code in &bureaus {
        let params = ListParams::default().fields(&format!("spec.bureau={code}"));
        envs.delete_collection(&DeleteParams::default(), &params)
            .await?;
        bureau_api.delete(code, &DeleteParams::default()).await?;
    }

    let ratio = |api: &Sample, floor: &Sample| {
        api.percentile(50.0) / floor.percentile(50.0).max(f64::EPSILON)
    };
    let report = json!({
        "clients": clients,
        "reads": {"api": api_reads.summary(), "kube_direct": kube_reads.summary(),
                  "p50_ratio": ratio(&api_reads, &kube_reads)},
        "writes": {"api": api_writes.summary(), "kube_direct": kube_writes.summary(),
                   "p50_ratio": ratio(&api_writes, &kube_writes)},
    });
    println!("API at {clients} concurrent clients (ms)        p50      p99      max    per s");
    for (label, sample) in [
        ("reads  through the API", &api_reads),
        ("reads  straight to kube", &kube_reads),
        ("writes through the API", &api_writes),
        ("writes straight to kube", &kube_writes),
    ] {
        println!(
            "  {label:<38} {:>7.1}  {:>7.1}  {:>7.1}  {:>7.0}",
            sample.percentile(50.0),
            sample.percentile(99.0),
            sample.percentile(100.0),
            sample.millis.len() as f64 / sample.seconds
        );
    }
    println!(
        "  p50 ratio API / direct: reads {:.2}, writes {:.2}",
        ratio(&api_reads, &kube_reads),
        ratio(&api_writes, &kube_writes)
    );
    std::fs::create_dir_all("target/bench")?;
    std::fs::write(
        "target/bench/api.json",
        serde_json::to_string_pretty(&report)?,
    )?;
    Ok(())
}
