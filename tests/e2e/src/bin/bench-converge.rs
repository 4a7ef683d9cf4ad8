//! `make bench` (converge): how long the operator takes to bring N environments from creation
//! to Ready, against the floor of a minimal client writing the same objects directly to the same
//! API server in the same run, and the operator's peak memory.
//!
//! Usage: `bench-converge [N ...]` (default 200 1000). Needs KUBECONFIG and a built
//! `zhengyun` binary (ZHENGYUN_BIN, default target/release/zhengyun).
//!
//! With `BENCH_PODS=P`, after the largest size has converged, P running pods are spread over its
//! environments (one Deployment each, on the simulated nodes) and the operator's peak memory is
//! read again once it has seen them all: its pod watch (metering) grows with them.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use zhengyun_e2e::operator::install_crds;
use zhengyun_e2e::{eventually, unique_name};
use zhengyun_model::crd::{Bureau, CapacityPoolSpec, Environment, EnvironmentPhase};
use zhengyun_operator::resources::{Catalog, Inputs, Materialized, materialize};

const CONCURRENCY: usize = 16;
const ENVS_PER_BUREAU: usize = 10;

fn env_object(bureau: &str, i: usize) -> anyhow::Result<Environment> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "Environment",
        "metadata": {"name": format!("{bureau}-dev-{i}")},
        "spec": {"bureau": bureau, "purpose": "dev", "tier": "bronze", "quota": {"cpu": "1", "memory": "1Gi", "storage": "1Gi"}}
    }))?)
}

async fn create_bureaus(client: &Client, prefix: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let api: Api<Bureau> = Api::all(client.clone());
    let codes: Vec<String> = (0..n.div_ceil(ENVS_PER_BUREAU))
        .map(|i| format!("{prefix}{i}"))
        .collect();
    for code in &codes {
        let b: Bureau = serde_json::from_value(json!({
            "apiVersion": "zhengyun.io/v1alpha1", "kind": "Bureau", "metadata": {"name": code},
            "spec": {"displayName": "区基准测试局", "kind": "agency", "quota": {"cpu": "100", "memory": "100Gi", "storage": "100Gi"},
                     "adminGroups": [format!("{code}-admins")]}
        }))?;
        api.create(&PostParams::default(), &b).await?;
    }
    Ok(codes)
}

fn env_names(codes: &[String], n: usize) -> Vec<(String, usize)> {
    (0..n)
        .map(|i| (codes[i / ENVS_PER_BUREAU].clone(), i % ENVS_PER_BUREAU))
        .collect()
}

/// The floor: write each Environment and everything the operator would make of it, directly.
async fn direct(client: &Client, n: usize) -> anyhow::Result<(Duration, Vec<String>)> {
    let prefix = unique_name("bf").replace('-', "");
    let codes = create_bureaus(client, &prefix[..prefix.len().min(12)], n).await?;
    let pool: CapacityPoolSpec = serde_json::from_value(json!({"capacity": {}}))?;
    let catalog = Catalog {
        registry: "registry.local/zhengyun".into(),
    };
    let start = Instant::now();
    stream::iter(env_names(&codes, n))
        .map(|(code, i)| {
            let (client, pool, catalog) = (client.clone(), pool.clone(), catalog.clone());
            async move {
                let envs: Api<Environment> = Api::all(client.clone());
                let env = envs.create(&PostParams::default(), &env_object(&code, i)?).await?;
                let granted = env.spec.quota.to_amounts().map_err(|e| anyhow::anyhow!("{e:?}"))?;
                let groups = vec![format!("{code}-admins")];
                let inputs = Inputs { env: &env, granted: &granted, admin_groups: &groups, viewer_groups: &[], pool: &pool, catalog: &catalog };
                write_all(&client, materialize(&inputs)?).await?;
                let status = json!({"apiVersion": "zhengyun.io/v1alpha1", "kind": "Environment",
                    "status": {"phase": "Ready", "namespace": env.name_any(), "admittedQuota": env.spec.quota}});
                envs.patch_status(&env.name_any(), &PatchParams::apply("bench-direct").force(), &Patch::Apply(&status)).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    Ok((start.elapsed(), codes))
}

async fn write_all(client: &Client, m: Materialized) -> anyhow::Result<()> {
    let pp = PatchParams::apply("bench-direct").force();
    let ns = m.namespace.name_any();
    Api::<Namespace>::all(client.clone())
        .patch(&ns, &pp, &Patch::Apply(&m.namespace))
        .await?;
    macro_rules! put {
        ($ty:ty, $obj:expr) => {
            Api::<$ty>::namespaced(client.clone(), &ns)
                .patch(&$obj.name_any(), &pp, &Patch::Apply(&$obj))
                .await?;
        };
    }
    put!(k8s_openapi::api::core::v1::ResourceQuota, m.quota);
    put!(k8s_openapi::api::core::v1::LimitRange, m.limits);
    for p in m.policies {
        put!(k8s_openapi::api::networking::v1::NetworkPolicy, p);
    }
    for b in m.bindings {
        put!(k8s_openapi::api::rbac::v1::RoleBinding, b);
    }
    Ok(())
}

/// The operator: create N Environments and wait until every one is Ready.
async fn operator(client: &Client, n: usize) -> anyhow::Result<(Duration, Vec<String>)> {
    let prefix = unique_name("bo").replace('-', "");
    let codes = create_bureaus(client, &prefix[..prefix.len().min(12)], n).await?;
    let envs: Api<Environment> = Api::all(client.clone());
    let start = Instant::now();
    stream::iter(env_names(&codes, n))
        .map(|(code, i)| {
            let envs = envs.clone();
            async move {
                envs.create(&PostParams::default(), &env_object(&code, i)?)
                    .await
                    .map(drop)
                    .map_err(anyhow::Error::from)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    let codes_ref = &codes;
    eventually(
        "every environment Ready",
        Duration::from_secs(3600),
        || async {
            let list = envs.list(&ListParams::default()).await?;
            let ready = list
                .items
                .iter()
                .filter(|e| codes_ref.contains(&e.spec.bureau))
                .filter(|e| {
                    e.status.as_ref().and_then(|s| s.phase) == Some(EnvironmentPhase::Ready)
                })
                .count();
            Ok((ready == n).then_some(()))
        },
    )
    .await?;
    Ok((start.elapsed(), codes))
}

async fn cleanup(client: &Client, codes: &[String], direct: bool) -> anyhow::Result<()> {
    let envs: Api<Environment> = Api::all(client.clone());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let list = envs.list(&ListParams::default()).await?;
    for env in list.items.iter().filter(|e| codes.contains(&e.spec.bureau)) {
        if direct {
            let _ = namespaces
                .delete(&env.name_any(), &DeleteParams::background())
                .await;
        }
        let _ = envs.delete(&env.name_any(), &DeleteParams::default()).await;
    }
    for code in codes {
        let _ = Api::<Bureau>::all(client.clone())
            .delete(code, &DeleteParams::default())
            .await;
    }
    Ok(())
}

/// Waits until the benchmark's operator holds its Lease, so start-up is not timed.
async fn wait_for_leader(client: &Client) -> anyhow::Result<()> {
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "kube-system");
    eventually("the operator to lead", Duration::from_secs(120), || async {
        let lease = leases.get_opt("zhengyun-bench").await?;
        Ok(lease.and_then(|l| l.spec?.holder_identity).map(|_| ()))
    })
    .await
}

/// resourceVersions of everything the operator owns for the benchmark's environments: the
/// Environments, their Namespaces, and every ResourceQuota, LimitRange, NetworkPolicy and
/// RoleBinding in those namespaces. Read with one cluster-wide LIST per kind.
async fn versions(
    client: &Client,
    codes: &[String],
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use k8s_openapi::api::rbac::v1::RoleBinding;
    let mut out = std::collections::BTreeMap::new();
    let ours = |ns: &str| codes.iter().any(|c| ns.starts_with(&format!("{c}-")));
    let envs = Api::<Environment>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    for env in envs.items.iter().filter(|e| codes.contains(&e.spec.bureau)) {
        out.insert(
            format!("env/{}", env.name_any()),
            env.resource_version().unwrap_or_default(),
        );
    }
    for code in codes {
        if let Some(bureau) = Api::<Bureau>::all(client.clone()).get_opt(code).await? {
            out.insert(
                format!("bureau/{code}"),
                bureau.resource_version().unwrap_or_default(),
            );
        }
    }
    macro_rules! collect {
        ($kind:ty, $label:literal, $namespaced:expr) => {
            for obj in Api::<$kind>::all(client.clone())
                .list(&ListParams::default())
                .await?
                .items
            {
                let ns = if $namespaced {
                    obj.namespace().unwrap_or_default()
                } else {
                    obj.name_any()
                };
                if ours(&ns) {
                    out.insert(
                        format!("{}/{ns}/{}", $label, obj.name_any()),
                        obj.resource_version().unwrap_or_default(),
                    );
                }
            }
        };
    }
    collect!(Namespace, "namespace", false);
    collect!(ResourceQuota, "resourcequota", true);
    collect!(LimitRange, "limitrange", true);
    collect!(NetworkPolicy, "networkpolicy", true);
    collect!(RoleBinding, "rolebinding", true);
    Ok(out)
}

fn start_operator(bin: &str, metrics_port: u16) -> anyhow::Result<std::process::Child> {
    std::process::Command::new(bin)
        .args([
            "operator",
            "--stop-on-stdin-eof",
            "--lease-name",
            "zhengyun-bench",
            "--lease-seconds",
            "3",
            "--operator-addr",
            &format!("127.0.0.1:{metrics_port}"),
            "--database-url",
            "sqlite::memory:",
        ])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("start {bin}"))
}

/// The environment controller's reconciliations so far, from the operator's /metrics.
async fn reconciliations(port: u16) -> anyhow::Result<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    Ok(text
        .lines()
        .find(|l| {
            l.starts_with(r#"zhengyun_operator_reconciliations_total{controller="environment"}"#)
        })
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or(0))
}

/// Restarts the operator on a converged cluster (a full resync: every environment is
/// reconciled again) and counts the objects whose resourceVersion changed.
async fn idle_resync_writes(
    client: &Client,
    bin: &str,
    codes: &[String],
    n: usize,
) -> anyhow::Result<usize> {
    let before = versions(client, codes).await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = start_operator(bin, port)?;
    let n = n as u64;
    eventually("a full resync", Duration::from_secs(600), || async {
        Ok((reconciliations(port).await.unwrap_or(0) >= n).then_some(()))
    })
    .await?;
    // Let writes of the last reconciliations land before reading again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = versions(client, codes).await?;
    drop(child.stdin.take());
    let _ = child.wait();
    Ok(after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .count())
}

/// Spreads `pods` small running pods over the environments of `codes` (one Deployment per
/// environment) and waits until all of them run. Returns how long that took.
async fn run_pods(client: &Client, codes: &[String], pods: usize) -> anyhow::Result<Duration> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Pod;
    let envs: Vec<String> = Api::<Environment>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| codes.contains(&e.spec.bureau))
        .map(|e| e.name_any())
        .collect();
    anyhow::ensure!(!envs.is_empty(), "no environments to run pods in");
    let per_env = pods.div_ceil(envs.len());
    let total = per_env * envs.len();
    let start = Instant::now();
    stream::iter(envs.iter().cloned())
        .map(|ns| {
            let client = client.clone();
            async move {
                let deployment: Deployment = serde_json::from_value(json!({
                    "metadata": {"name": "load"},
                    "spec": {"replicas": per_env, "selector": {"matchLabels": {"app": "load"}},
                        "template": {"metadata": {"labels": {"app": "load"}}, "spec": {
                            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000,
                                                "seccompProfile": {"type": "RuntimeDefault"}},
                            "containers": [{"name": "app", "image": "registry.local/load:1",
                                "resources": {"requests": {"cpu": "5m", "memory": "8Mi"},
                                              "limits": {"cpu": "5m", "memory": "8Mi"}},
                                "securityContext": {"allowPrivilegeEscalation": false,
                                                    "capabilities": {"drop": ["ALL"]}}}]}}}
                }))?;
                Api::<Deployment>::namespaced(client, &ns)
                    .create(&PostParams::default(), &deployment)
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    let pods_api: Api<Pod> = Api::all(client.clone());
    let ours: std::collections::HashSet<&str> = envs.iter().map(String::as_str).collect();
    eventually(
        &format!("{total} pods Running"),
        Duration::from_secs(3600),
        || async {
            let running = pods_api
                .list(&ListParams::default().fields("status.phase=Running"))
                .await?
                .items
                .iter()
                .filter(|p| p.namespace().is_some_and(|ns| ours.contains(ns.as_str())))
                .count();
            Ok((running >= total).then_some(()))
        },
    )
    .await?;
    Ok(start.elapsed())
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() {
        vec![200, 1000]
    } else {
        sizes
    };
    let client = zhengyun_e2e::client().await?;
    install_crds(&client).await?;
    let bin = std::env::var("ZHENGYUN_BIN").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/zhengyun").into()
    });
    let largest = sizes.iter().max().copied();
    let mut results = Vec::new();
    for n in sizes {
        let (floor, direct_codes) = direct(&client, n).await.context("direct writes")?;
        cleanup(&client, &direct_codes, true).await?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut child = start_operator(&bin, port)?;
        wait_for_leader(&client).await?;
        let (took, codes) = operator(&client, n).await.context("operator convergence")?;
        let rss = peak_rss_kib(child.id()).unwrap_or(0);
        let pods: usize = std::env::var("BENCH_PODS")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let with_pods = if pods > 0 && Some(&n) == largest.as_ref() {
            let running = run_pods(&client, &codes, pods)
                .await
                .context("running pods")?;
            // Let the operator's watches and the sampler take in the last of them.
            tokio::time::sleep(Duration::from_secs(15)).await;
            let rss = peak_rss_kib(child.id()).unwrap_or(0);
            println!(
                "{pods} running pods over {n} environments (all Running after {:.1} s): operator peak RSS {:.1} MiB",
                running.as_secs_f64(),
                rss as f64 / 1024.0
            );
            Some(
                json!({"pods": pods, "operator_peak_rss_mib": rss as f64 / 1024.0, "seconds_to_running": running.as_secs_f64()}),
            )
        } else {
            None
        };
        let ratio = took.as_secs_f64() / floor.as_secs_f64();
        println!(
            "converge {n:>5} environments: operator {:>7.2} s, direct-write floor {:>7.2} s, ratio {ratio:.2}, operator peak RSS {:.1} MiB",
            took.as_secs_f64(),
            floor.as_secs_f64(),
            rss as f64 / 1024.0
        );
        // Stop the operator; a new one resyncs the converged cluster, which must write nothing.
        drop(child.stdin.take());
        let _ = child.wait();
        let resync_writes = idle_resync_writes(&client, &bin, &codes, n).await?;
        println!("idle resync of {n} environments: {resync_writes} objects written");
        // Remove what it made directly (without waiting for the namespace controller, which
        // deletes slowly and is not what is measured here).
        cleanup(&client, &codes, true).await?;
        results.push(json!({"environments": n, "operator_seconds": took.as_secs_f64(), "floor_seconds": floor.as_secs_f64(),
            "ratio": ratio, "operator_peak_rss_mib": rss as f64 / 1024.0, "idle_resync_writes": resync_writes,
            "with_pods": with_pods}));
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/bench");
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        format!("{dir}/converge.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    Ok(())
}
