//! `make bench` (converge): how long the operator takes to bring N environments from creation
//! to Ready, against the floor of a minimal client writing the same objects directly to the same
//! kind of API server in the same run, and the operator's peak memory. Below 5,000
//! environments the floor runs twice, before and after the operator, and the ratio is against
//! the mean of the two, which halves the floor's run-to-run noise; from 5,000 on it runs once,
//! before (see [`ONE_FLOOR_FROM`]). Runs of one size in a row share the floor between them:
//! `converge 1000 1000 1000` times floor, operator, floor, operator, floor, operator, floor, so
//! that every operator run has a floor just before and just after it. Each timed run starts a
//! fresh devcluster (empty etcd, the same flags), so that none shares its API server with what
//! another made.
//!
//! Both sides create each Environment as the control-plane API does, with the cleanup finalizer
//! already in place (an Environment made with `kubectl` gets it from the operator, one PATCH
//! more).
//!
//! Usage: `bench converge [N ...]` (default 1000). Needs KUBECONFIG, the devcluster of
//! `DEVCLUSTER_DIR` (restarted between runs with `scripts/cluster.sh`), and a built
//! `zhengyun` binary (ZHENGYUN_BIN, default target/release/zhengyun).
//!
//! With `BENCH_PODS=P`, after the largest size has converged, P running pods are spread over its
//! environments (on the simulated nodes) and the operator's peak memory is read again once a
//! metering window has closed over them all: its pod watch and the window's intervals grow with
//! them. That run's operator closes a window every two minutes instead of every hour, so the
//! benchmark need not wait for the hour to turn; a window's cost is in its pods, not its length.
//!
//! With `BENCH_PERF=DIR`, `perf record` samples the devcluster's process during each timed run
//! (`DIR/floor-before.data`, `DIR/operator.data`, `DIR/floor-after.data`, and `DIR/pods.data`
//! while the pods start), to compare where the cluster's CPU goes in each (`perf report -i …
//! --no-children --sort symbol`), and the operator's own process during its run
//! (`DIR/operator-process.data`).
//!
//! With `BENCH_OPERATOR_LOG=FILE`, the operators' logs are appended to FILE (their level from
//! `ZHENGYUN_LOG`, e.g. `info,kube_client=debug` to see every request).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use zhengyun_e2e::bench::{
    cpu_seconds, ledger_of, ledgers, start_operator, start_operator_on, wait_for_leader,
};
use zhengyun_e2e::operator::install_crds;
use zhengyun_e2e::{eventually, unique_name};
use zhengyun_model::crd::{Bureau, CapacityPoolSpec, Environment, EnvironmentPhase};
use zhengyun_model::names::environment_belongs_to;
use zhengyun_operator::resources::{Catalog, Inputs, Materialized, materialize};

const CONCURRENCY: usize = 16;
const ENVS_PER_BUREAU: usize = 10;

/// Environment `i` of `bureau`, as the control-plane API creates it: with the cleanup finalizer
/// in place from creation. Both sides create the same object.
fn env_object(bureau: &str, i: usize) -> anyhow::Result<Environment> {
    let spec = serde_json::from_value(json!({
        "bureau": bureau, "purpose": "dev", "tier": "bronze",
        "quota": {"cpu": "1", "memory": "1Gi", "storage": "1Gi"}
    }))?;
    Ok(Environment::with_cleanup_finalizer(
        &format!("{bureau}-dev-{i}"),
        spec,
    ))
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
                let inputs = Inputs { env: &env, granted: &granted, allowance: &zhengyun_model::quantity::ResourceAmounts::ZERO, admin_groups: &groups, viewer_groups: &[], hostnames: &[], pool: &pool, catalog: &catalog };
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
    put!(k8s_openapi::api::core::v1::ResourceQuota, m.other_classes);
    put!(k8s_openapi::api::core::v1::LimitRange, m.limits);
    for p in m.policies {
        put!(k8s_openapi::api::networking::v1::NetworkPolicy, p);
    }
    for a in m.accounts {
        put!(k8s_openapi::api::core::v1::ServiceAccount, a);
    }
    for b in m.bindings {
        put!(k8s_openapi::api::rbac::v1::RoleBinding, b);
    }
    Ok(())
}

/// One timed run of the floor: how long it took, the CPU seconds of the cluster and of this
/// client, and the API requests per environment. Each runs on a fresh cluster ([`fresh_cluster`]).
#[derive(Clone)]
struct Floor {
    took: Duration,
    cpu: (f64, f64),
    requests: Vec<(String, f64)>,
}

async fn floor(client: &Client, cluster: u32, run: &str, n: usize) -> anyhow::Result<Floor> {
    let before = api_requests(client).await?;
    let cpu = (cpu_seconds(cluster), cpu_seconds(std::process::id()));
    let sampling = Sampling::start(cluster, run)?;
    let (took, _) = direct(client, n).await.context("direct writes")?;
    drop(sampling);
    let cpu = (
        cpu_seconds(cluster) - cpu.0,
        cpu_seconds(std::process::id()) - cpu.1,
    );
    let requests = requests_per(&before, &api_requests(client).await?, n);
    Ok(Floor {
        took,
        cpu,
        requests,
    })
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
    tokio::time::timeout(Duration::from_secs(3600), all_ready(envs, &codes, n))
        .await
        .context("waiting for every environment to be Ready")??;
    Ok((start.elapsed(), codes))
}

/// Follows the Environments with one watch (polling with LISTs would load the API server the
/// floor does not) until all `n` of the bureaus `codes` are Ready.
async fn all_ready(envs: Api<Environment>, codes: &[String], n: usize) -> anyhow::Result<()> {
    use kube::runtime::{WatchStreamExt, watcher};
    let mut ready = std::collections::HashSet::new();
    let mut events = std::pin::pin!(
        watcher(envs, watcher::Config::default())
            .default_backoff()
            .applied_objects()
    );
    while let Some(event) = events.next().await {
        let Ok(env) = event else { continue };
        if !codes.contains(&env.spec.bureau) {
            continue;
        }
        if env.status.as_ref().and_then(|s| s.phase) == Some(EnvironmentPhase::Ready) {
            ready.insert(env.name_any());
        } else {
            ready.remove(&env.name_any());
        }
        if ready.len() == n {
            return Ok(());
        }
    }
    anyhow::bail!("the watch of environments ended")
}

/// Starts the devcluster afresh (empty etcd, `--fresh`) for the next timed run and installs
/// the CRDs; returns a client of it and its process id. Every timed run gets an API server of
/// its own rather than one still deleting what the last run made: the namespace controller
/// takes minutes per thousand namespaces, which at 10,000 environments would be most of the
/// benchmark's time, and would run beside the next timed run.
async fn fresh_cluster() -> anyhow::Result<(Client, u32)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/cluster.sh");
    let args = std::env::var("DEVCLUSTER_ARGS").unwrap_or_default();
    let args = if args.split_whitespace().any(|a| a == "--fresh") {
        args
    } else {
        format!("{args} --fresh")
    };
    for step in ["down", "up"] {
        let status = std::process::Command::new(script)
            .arg(step)
            .env("DEVCLUSTER_ARGS", &args)
            .stdout(std::process::Stdio::null())
            .status()
            .with_context(|| format!("scripts/cluster.sh {step}"))?;
        anyhow::ensure!(status.success(), "scripts/cluster.sh {step} failed");
    }
    let client = zhengyun_e2e::client().await?;
    install_crds(&client).await?;
    Ok((client, cluster_pid().context("the devcluster's pid file")?))
}

/// Requests the API server has served so far, by verb and resource (with subresource), from
/// its `apiserver_request_total` counter. Watches are left out: they are long-lived streams.
async fn api_requests(client: &Client) -> anyhow::Result<std::collections::BTreeMap<String, f64>> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(request).await?;
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |key: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{key}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let verb = label("verb");
        if verb == "WATCH" || verb == "CONNECT" {
            continue;
        }
        let (resource, sub) = (label("resource"), label("subresource"));
        if resource.is_empty() {
            continue;
        }
        let key = if sub.is_empty() {
            format!("{verb} {resource}")
        } else {
            format!("{verb} {resource}/{sub}")
        };
        *out.entry(key).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
    }
    Ok(out)
}

/// What the API server served between two readings of [`api_requests`], per unit of work
/// (an environment, a pod), largest first (only kinds of request made at least once per ten).
fn requests_per(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
    n: usize,
) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = after
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                (v - before.get(k).copied().unwrap_or(0.0)) / n as f64,
            )
        })
        .filter(|(_, per)| *per >= 0.1)
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

fn print_requests(label: &str, unit: &str, per_env: &[(String, f64)]) {
    let total: f64 = per_env.iter().map(|(_, v)| v).sum();
    let detail: Vec<String> = per_env.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
    println!(
        "  {label}: {total:.1} API requests per {unit} ({})",
        detail.join(", ")
    );
}

/// Whether the namespace `ns` (an environment's name) belongs to one of the bureaus `codes` of
/// a run.
fn of_run(codes: &[String], ns: &str) -> bool {
    codes.iter().any(|c| environment_belongs_to(ns, c))
}

/// resourceVersions of everything the operator owns for the benchmark's environments: the
/// Environments, their Namespaces, and every ResourceQuota, LimitRange, NetworkPolicy,
/// RoleBinding and ServiceAccount in those namespaces. Read with one cluster-wide LIST per kind.
/// A ResourceQuota is compared by what the operator writes of it (its spec, labels,
/// annotations and owners) instead: the quota controller writes its status whenever a pod in
/// the namespace comes or goes, which changes its resourceVersion without any write of the
/// operator's. What the quota controller counted is kept apart, per namespace.
async fn versions(client: &Client, codes: &[String]) -> anyhow::Result<Versions> {
    use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota, ServiceAccount};
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use k8s_openapi::api::rbac::v1::RoleBinding;
    let mut out = std::collections::BTreeMap::new();
    let mut quota_usage = std::collections::BTreeMap::new();
    let ours = |ns: &str| of_run(codes, ns);
    let envs = Api::<Environment>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    for env in envs.items.iter().filter(|e| codes.contains(&e.spec.bureau)) {
        out.insert(format!("env/{}", env.name_any()), Seen::of(env)?);
    }
    for code in codes {
        if let Some(bureau) = Api::<Bureau>::all(client.clone()).get_opt(code).await? {
            out.insert(format!("bureau/{code}"), Seen::of(&bureau)?);
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
                        Seen::version(obj.resource_version().unwrap_or_default()),
                    );
                }
            }
        };
    }
    collect!(Namespace, "namespace", false);
    for quota in Api::<ResourceQuota>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
    {
        let ns = quota.namespace().unwrap_or_default();
        if ours(&ns) {
            let written = serde_json::to_string(&(
                &quota.spec,
                &quota.metadata.labels,
                &quota.metadata.annotations,
                &quota.metadata.owner_references,
            ))?;
            out.insert(
                format!("resourcequota/{ns}/{}", quota.name_any()),
                Seen::version(written),
            );
            let used = serde_json::to_string(&quota.status.as_ref().map(|s| &s.used))?;
            quota_usage
                .entry(ns)
                .or_insert_with(String::new)
                .push_str(&used);
        }
    }
    collect!(LimitRange, "limitrange", true);
    collect!(NetworkPolicy, "networkpolicy", true);
    collect!(RoleBinding, "rolebinding", true);
    collect!(ServiceAccount, "serviceaccount", true);
    Ok(Versions {
        objects: out,
        quota_usage,
    })
}

/// What [`versions`] read.
struct Versions {
    /// The objects the operator owns, by `kind/name` (`kind/namespace/name` in a namespace).
    objects: std::collections::BTreeMap<String, Seen>,
    /// Each namespace's quota usage as the quota controller last wrote it (its quotas'
    /// `status.used`, in order).
    quota_usage: std::collections::BTreeMap<String, String>,
}

impl Versions {
    /// The namespaces whose quota usage the quota controller changed between `before` and
    /// `self`.
    fn recounted_since(&self, before: &Versions) -> std::collections::BTreeSet<String> {
        self.quota_usage
            .iter()
            .filter(|(ns, used)| before.quota_usage.get(*ns) != Some(*used))
            .map(|(ns, _)| ns.clone())
            .collect()
    }
}

/// What [`versions`] keeps of one object: its version, and for Environments and Bureaus their
/// status and who last wrote what, so that a write can be explained.
#[derive(Clone, Debug)]
struct Seen {
    /// The resourceVersion, or for a ResourceQuota what the operator writes of it.
    version: String,
    /// The status, for Environments and Bureaus.
    status: Option<serde_json::Value>,
    /// `manager (operation, subresource) at time` of each managedFields entry.
    managers: Vec<String>,
}

impl Seen {
    fn version(version: String) -> Self {
        Self {
            version,
            status: None,
            managers: Vec::new(),
        }
    }

    fn of<K>(obj: &K) -> anyhow::Result<Self>
    where
        K: kube::Resource + serde::Serialize,
    {
        let value = serde_json::to_value(obj)?;
        let managers = obj
            .meta()
            .managed_fields
            .iter()
            .flatten()
            .map(|m| {
                format!(
                    "{} ({} {}) at {}",
                    m.manager.as_deref().unwrap_or("?"),
                    m.operation.as_deref().unwrap_or("?"),
                    m.subresource.as_deref().unwrap_or("main"),
                    m.time.as_ref().map(|t| t.0.to_string()).unwrap_or_default()
                )
            })
            .collect();
        Ok(Self {
            version: obj.meta().resource_version.clone().unwrap_or_default(),
            status: value.get("status").cloned(),
            managers,
        })
    }

    /// What changed from `before` to `self`: the status fields that differ, each as
    /// `field: before → after`, and the managedFields entries that are new.
    fn changes_from(&self, before: &Seen) -> String {
        let field = |s: &Option<serde_json::Value>, k: &str| {
            s.as_ref()
                .and_then(|s| s.get(k))
                .map_or("-".to_owned(), |v| v.to_string())
        };
        let keys: std::collections::BTreeSet<&String> = [&before.status, &self.status]
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_object())
            .flat_map(|o| o.keys())
            .collect();
        let mut out: Vec<String> = keys
            .into_iter()
            .filter(|k| field(&before.status, k) != field(&self.status, k))
            .map(|k| {
                format!(
                    "status.{k}: {} → {}",
                    field(&before.status, k),
                    field(&self.status, k)
                )
            })
            .collect();
        out.extend(
            self.managers
                .iter()
                .filter(|m| !before.managers.contains(m))
                .map(|m| format!("written by {m}")),
        );
        out.join("; ")
    }
}

/// From this many environments on, the direct-write floor is measured once, before the operator:
/// at 10,000 it takes four minutes a run, and the floors before and after the operator differed
/// by 4 % (241.6 and 232.2 s); below it, before and after, and the ratio is to their mean.
const ONE_FLOOR_FROM: usize = 5_000;

/// The environment controller's reconciliations so far, from the operator's /metrics.
async fn reconciliations(port: u16) -> anyhow::Result<u64> {
    Ok(metric(
        port,
        r#"zhengyun_operator_reconciliations_total{controller="environment"}"#,
    )
    .await?
    .map(|v| v as u64)
    .unwrap_or(0))
}

/// The value of the operator's metric `series` (name and labels, as `/metrics` writes them).
async fn metric(port: u16, series: &str) -> anyhow::Result<Option<f64>> {
    Ok(scrape(port)
        .await?
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok()))
}

/// The operator's `/metrics` answer, headers included.
async fn scrape(port: u16) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    Ok(text)
}

/// Waits until the operator has written nothing for [`QUIET`] seconds: longer than it may hold
/// back an environment's usage report (5 s, `USAGE_SPACING`), so that what converging left in
/// flight, such as the last usage counts of pods that just started, is written, and a restart
/// afterwards finds nothing pending. The quota controller's writes of quota usage count as
/// well: each is an environment's usage to report, and after 30,000 pods started the controller
/// may still be counting some of them.
async fn quiet(client: &Client) -> anyhow::Result<()> {
    const QUIET: u32 = 7;
    let mut last = writes_awaited(client).await?;
    let mut still = 0;
    while still < QUIET {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = writes_awaited(client).await?;
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
    Ok(())
}

/// Writes the API server has served so far to the kinds the operator writes (its Lease aside),
/// and to quotas' usage, which the operator reports.
/// Reconciliations are no sign of work left: a converged environment is looked at again every
/// few minutes, which at 10,000 environments is several times a second, and writes nothing.
async fn writes_awaited(client: &Client) -> anyhow::Result<f64> {
    const KINDS: [&str; 16] = [
        "environments",
        "environments/status",
        "bureaus/status",
        "ratecards/status",
        "namespaces",
        "resourcequotas",
        "resourcequotas/status",
        "limitranges",
        "networkpolicies",
        "rolebindings",
        "serviceaccounts",
        "services",
        "deployments",
        "statefulsets",
        "poddisruptionbudgets",
        "events",
    ];
    Ok(api_requests(client)
        .await?
        .iter()
        .filter(|(key, _)| {
            key.split_once(' ').is_some_and(|(verb, kind)| {
                ["APPLY", "POST", "PUT", "PATCH", "DELETE"].contains(&verb) && KINDS.contains(&kind)
            })
        })
        .map(|(_, n)| n)
        .sum())
}

/// How many of the objects an idle resync wrote it describes.
const EXPLAINED: usize = 20;

/// What a restart on a converged cluster cost.
struct Resync {
    /// Objects whose resourceVersion changed, by kind (`env`, `bureau`, `namespace`, …).
    writes_by_kind: std::collections::BTreeMap<String, usize>,
    /// The first [`EXPLAINED`] of those objects, each with what changed in it.
    written: Vec<String>,
    /// Of those objects, the Environments and Bureaus written after the quota controller
    /// changed the usage it counts in their namespaces (a Bureau: in any of its
    /// environments') during the resync: usage the operator reported, not a needless write.
    after_recount: usize,
    /// Namespaces of the run whose quota usage the quota controller changed during the resync.
    recounted: usize,
    /// The restarted operator's peak RSS, KiB: it lists everything at once.
    peak_rss_kib: u64,
}

impl Resync {
    /// Objects whose resourceVersion changed.
    fn writes(&self) -> usize {
        self.writes_by_kind.values().sum()
    }
}

/// Restarts the operator on a converged cluster, with the ledger `ledger` and the flags `extra`
/// it ran with (a full resync: every environment is reconciled again), and counts the objects
/// the operator wrote ([`versions`]).
async fn idle_resync(
    client: &Client,
    bin: &str,
    ledger: &std::path::Path,
    extra: &[&str],
    codes: &[String],
    n: usize,
) -> anyhow::Result<Resync> {
    let before = versions(client, codes).await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = start_operator_on(bin, port, ledger, extra)?;
    let n = n as u64;
    eventually("a full resync", Duration::from_secs(600), || async {
        Ok((reconciliations(port).await.unwrap_or(0) >= n).then_some(()))
    })
    .await?;
    // Let writes of the last reconciliations land before reading again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = versions(client, codes).await?;
    let recounted = after.recounted_since(&before);
    let peak_rss_kib = peak_rss_kib(child.id()).unwrap_or(0);
    drop(child.stdin.take());
    let _ = child.wait();
    let mut writes_by_kind = std::collections::BTreeMap::new();
    let mut written = Vec::new();
    let mut after_recount = 0;
    for (key, seen) in &after.objects {
        let was = before.objects.get(key);
        if was.map(|w| &w.version) == Some(&seen.version) {
            continue;
        }
        let (kind, name) = key.split_once('/').unwrap_or_default();
        *writes_by_kind.entry(kind.to_owned()).or_insert(0) += 1;
        // An Environment's namespace bears its name; a Bureau's environments, its code.
        let followed = match kind {
            "env" => recounted.contains(name),
            "bureau" => recounted.iter().any(|ns| environment_belongs_to(ns, name)),
            _ => false,
        };
        after_recount += usize::from(followed);
        if written.len() < EXPLAINED {
            let what = was.map_or("new".to_owned(), |was| seen.changes_from(was));
            let why = if followed {
                " (its quota usage recounted meanwhile)"
            } else {
                ""
            };
            written.push(format!("{key}: {what}{why}"));
        }
    }
    Ok(Resync {
        writes_by_kind,
        written,
        after_recount,
        recounted: recounted.len(),
        peak_rss_kib,
    })
}

/// Spreads `pods` small running pods over the environments of `codes` and waits until all of
/// them run. Returns how long that took. The pods are made directly, without a Deployment: the
/// operator watches pods (metering) but not workloads it did not make, and the Deployment and
/// ReplicaSet controllers' own writes (3.8 of 11.5 API server requests per pod in a run of
/// 3,000) would only slow the run.
async fn run_pods(client: &Client, codes: &[String], pods: usize) -> anyhow::Result<Duration> {
    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::{WatchStreamExt, watcher};
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
    // The scheduler places each pod, as it places a tenant's: admission refuses a tenant pod
    // that names its node.
    stream::iter(
        envs.iter()
            .flat_map(|ns| (0..per_env).map(move |i| (ns.clone(), i))),
    )
    .map(|(ns, i)| {
        let client = client.clone();
        async move {
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": format!("load-{i}"), "labels": {"app": "load"}},
                "spec": {
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 1000,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{"name": "app", "image": "registry.local/load:1",
                        "resources": {"requests": {"cpu": "5m", "memory": "8Mi"},
                                      "limits": {"cpu": "5m", "memory": "8Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": false,
                                            "capabilities": {"drop": ["ALL"]}}}]}
            }))?;
            let pods = Api::<Pod>::namespaced(client, &ns);
            // A namespace's default ServiceAccount, which every pod needs, comes from the
            // service account controller shortly after the namespace: wait for it, as the
            // ReplicaSet controller would by retrying.
            let mut tries = 0;
            loop {
                match pods.create(&PostParams::default(), &pod).await {
                    Ok(_) => return anyhow::Ok(()),
                    Err(kube::Error::Api(e))
                        if e.code == 403 && e.message.contains("serviceaccount") && tries < 120 =>
                    {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    })
    .buffer_unordered(CONCURRENCY)
    .try_collect::<Vec<_>>()
    .await?;
    // One watch of running pods, as the operator's own watches see them: polling with LISTs of
    // tens of thousands of pods would load the API server more than the pods themselves.
    let ours: std::collections::HashSet<&str> = envs.iter().map(String::as_str).collect();
    let running_pods = watcher::watcher(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().fields("status.phase=Running"),
    )
    .default_backoff();
    let mut running = std::collections::HashSet::new();
    let mut events = std::pin::pin!(running_pods);
    let counted = tokio::time::timeout(Duration::from_secs(3600), async {
        while let Some(event) = events.next().await {
            let (pod, is_running) = match event? {
                watcher::Event::Apply(p) | watcher::Event::InitApply(p) => (p, true),
                watcher::Event::Delete(p) => (p, false),
                watcher::Event::Init | watcher::Event::InitDone => continue,
            };
            if !pod.namespace().is_some_and(|ns| ours.contains(ns.as_str())) {
                continue;
            }
            let id = (pod.namespace(), pod.name_any());
            if is_running {
                running.insert(id);
            } else {
                running.remove(&id);
            }
            if running.len() >= total {
                return anyhow::Ok(());
            }
        }
        anyhow::bail!("the watch of running pods ended")
    })
    .await;
    counted.map_err(|_| {
        anyhow::anyhow!(
            "timed out after 1 h with {} of {total} pods Running",
            running.len()
        )
    })??;
    Ok(start.elapsed())
}

/// The metering window of the run with pods (the operator's default is an hour).
const WINDOW: Duration = Duration::from_secs(120);
/// How long that operator waits after a window ends before it closes it.
const LATENESS: Duration = Duration::from_secs(15);

/// Waits until the metering window that is open now has been closed into the ledger, as the
/// operator's `zhengyun_metering_checkpoint_timestamp_seconds` says (read once, as a scrape
/// would, after the window's end and lateness). Returns the window's end, in Unix seconds.
async fn window_closed(port: u16) -> anyhow::Result<u64> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let end = now.as_secs().div_ceil(WINDOW.as_secs()) * WINDOW.as_secs();
    let mut checkpoint = 0.0;
    for _ in 0..12 {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
        let due = Duration::from_secs(end) + LATENESS + Duration::from_secs(5);
        tokio::time::sleep(due.saturating_sub(since_epoch).max(Duration::from_secs(5))).await;
        checkpoint = metric(port, "zhengyun_metering_checkpoint_timestamp_seconds")
            .await?
            .unwrap_or(0.0);
        if checkpoint >= end as f64 {
            return Ok(end);
        }
    }
    anyhow::bail!("the checkpoint is at {checkpoint}, the window ended at {end}")
}

/// `perf record` of one process during one timed run, when `BENCH_PERF` names a directory.
/// Dropping it stops the recording, also when the run fails.
struct Sampling(Option<std::process::Child>);

impl Sampling {
    fn start(pid: u32, run: &str) -> anyhow::Result<Self> {
        let Some(dir) = std::env::var_os("BENCH_PERF") else {
            return Ok(Self(None));
        };
        std::fs::create_dir_all(&dir)?;
        let out = std::path::Path::new(&dir).join(format!("{run}.data"));
        let child = std::process::Command::new("perf")
            .args([
                "record",
                "-q",
                "-F",
                "199",
                "-g",
                "-p",
                &pid.to_string(),
                "-o",
            ])
            .arg(out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("start perf record (BENCH_PERF)")?;
        Ok(Self(Some(child)))
    }
}

impl Drop for Sampling {
    /// Stops the recording (SIGINT, so perf writes its file) and waits for it.
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = std::process::Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

/// The devcluster's process (its directory's `pid` file), to account its CPU.
fn cluster_pid() -> Option<u32> {
    let dir = std::env::var("DEVCLUSTER_DIR").unwrap_or_else(|_| ".devcluster".into());
    std::fs::read_to_string(format!("{dir}/pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs the benchmark with `args` (those after its name).
pub async fn main(args: &[String]) -> anyhow::Result<()> {
    let sizes: Vec<usize> = args.iter().map(|a| a.parse()).collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() { vec![1000] } else { sizes };
    let bin = std::env::var("ZHENGYUN_BIN").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/zhengyun").into()
    });
    let largest = sizes.iter().max().copied();
    let mut results = Vec::new();
    // The floor measured after a run, which is also the floor before the next run of the same
    // size: each operator run still has a floor just before and just after it.
    let mut last_floor: Option<(usize, Floor)> = None;
    for n in sizes {
        let (floor_before, shared) = match last_floor.take() {
            Some((size, floor)) if size == n => (floor, true),
            _ => {
                let (client, cluster) = fresh_cluster().await?;
                (floor(&client, cluster, "floor-before", n).await?, false)
            }
        };
        let (client, cluster) = fresh_cluster().await?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let pods: usize = std::env::var("BENCH_PODS")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let with_pods = pods > 0 && Some(&n) == largest.as_ref();
        let period = WINDOW.as_secs().to_string();
        let lateness = LATENESS.as_secs().to_string();
        let short_windows = [
            "--metering-period",
            period.as_str(),
            "--metering-lateness",
            lateness.as_str(),
        ];
        let extra: &[&str] = if with_pods { &short_windows } else { &[] };
        let mut child = start_operator(&bin, port, extra)?;
        wait_for_leader(&client).await?;
        let before = api_requests(&client).await?;
        let cpu = (cpu_seconds(cluster), cpu_seconds(child.id()));
        let sampling = Sampling::start(cluster, "operator")?;
        let sampling_operator = Sampling::start(child.id(), "operator-process")?;
        let (took, codes) = operator(&client, n).await.context("operator convergence")?;
        drop(sampling);
        drop(sampling_operator);
        let operator_cpu = (
            cpu_seconds(cluster) - cpu.0,
            cpu_seconds(child.id()) - cpu.1,
        );
        let operator_requests = requests_per(&before, &api_requests(&client).await?, n);
        let rss = peak_rss_kib(child.id()).unwrap_or(0);
        let with_pods = if with_pods {
            let before = api_requests(&client).await?;
            let cpu = (cpu_seconds(cluster), cpu_seconds(child.id()));
            let sampling = Sampling::start(cluster, "pods")?;
            // A failure here is reported with the figures, which the other runs still give.
            let running = run_pods(&client, &codes, pods).await;
            drop(sampling);
            // Let a metering window close over all of them.
            let window_end = window_closed(port).await;
            let cpu = (
                cpu_seconds(cluster) - cpu.0,
                cpu_seconds(child.id()) - cpu.1,
            );
            let per_pod = requests_per(&before, &api_requests(&client).await?, pods);
            // What a scrape renders at this size, held whole while it is written. The peak is
            // read after it: a scraper may come while the window's close is still resident.
            let metrics_mib = scrape(port)
                .await
                .map(|t| t.len() as f64 / 1048576.0)
                .map_err(|e| format!("{e:#}"));
            let rss = peak_rss_kib(child.id()).unwrap_or(0) as f64 / 1024.0;
            Some(match running {
                Ok(running) => {
                    let closed = match &window_end {
                        Ok(end) => format!("a metering window closed over them at {end}"),
                        Err(e) => format!("no metering window closed over them: {e:#}"),
                    };
                    println!(
                        "{pods} running pods over {n} environments (all Running after {:.1} s; {closed}): operator peak RSS {rss:.1} MiB",
                        running.as_secs_f64(),
                    );
                    print_requests("starting pods", "pod", &per_pod);
                    println!(
                        "  CPU seconds while pods started: cluster {:.1}, operator {:.1}",
                        cpu.0, cpu.1
                    );
                    match &metrics_mib {
                        Ok(mib) => {
                            println!("  the operator's /metrics after that window: {mib:.1} MiB")
                        }
                        Err(e) => println!("  the operator's /metrics after that window: {e}"),
                    }
                    json!({"pods": pods, "operator_peak_rss_mib": rss, "seconds_to_running": running.as_secs_f64(),
                           "window_closed": window_end.as_ref().ok(), "metrics_mib": metrics_mib.as_ref().ok(),
                           "cpu_seconds": {"cluster": cpu.0, "operator": cpu.1}})
                }
                Err(e) => {
                    println!(
                        "{pods} running pods over {n} environments: {e:#} (operator peak RSS {rss:.1} MiB)"
                    );
                    json!({"pods": pods, "operator_peak_rss_mib": rss, "error": format!("{e:#}")})
                }
            })
        } else {
            None
        };
        // Stop the operator once it is idle; a new one resyncs the converged cluster, which must
        // write nothing.
        quiet(&client).await?;
        drop(child.stdin.take());
        let _ = child.wait();
        // As a deployment restarts: the same ledger, the same flags.
        let resync = idle_resync(&client, &bin, &ledger_of(port), extra, &codes, n).await?;
        let resync_rss = resync.peak_rss_kib as f64 / 1024.0;
        let floor_after = if n < ONE_FLOOR_FROM {
            let (client, cluster) = fresh_cluster().await?;
            Some(floor(&client, cluster, "floor-after", n).await?)
        } else {
            None
        };
        last_floor = floor_after.clone().map(|after| (n, after));
        let floor_mean = match &floor_after {
            Some(after) => (floor_before.took + after.took) / 2,
            None => floor_before.took,
        };
        let ratio = took.as_secs_f64() / floor_mean.as_secs_f64();
        let rss_mib = rss as f64 / 1024.0;
        match &floor_after {
            Some(after) => println!(
                "converge {n:>5} environments: operator {:>7.2} s, direct-write floor {:>7.2} s before and {:>7.2} s after (mean {:.2} s), ratio {ratio:.2} ({:.2} and {:.2}), operator peak RSS {rss_mib:.1} MiB",
                took.as_secs_f64(),
                floor_before.took.as_secs_f64(),
                after.took.as_secs_f64(),
                floor_mean.as_secs_f64(),
                took.as_secs_f64() / floor_before.took.as_secs_f64(),
                took.as_secs_f64() / after.took.as_secs_f64(),
            ),
            None => println!(
                "converge {n:>5} environments: operator {:>7.2} s, direct-write floor {:>7.2} s, ratio {ratio:.2}, operator peak RSS {rss_mib:.1} MiB",
                took.as_secs_f64(),
                floor_before.took.as_secs_f64(),
            ),
        }
        print_requests("direct (before)", "environment", &floor_before.requests);
        print_requests("operator", "environment", &operator_requests);
        if let Some(after) = &floor_after {
            print_requests("direct (after)", "environment", &after.requests);
        }
        let after_cpu = floor_after.as_ref().map(|a| a.cpu);
        println!(
            "  CPU seconds: cluster {:.1} (direct, before){} vs {:.1} (operator); the direct client {:.1}{}, the operator {:.1}",
            floor_before.cpu.0,
            after_cpu.map_or(String::new(), |c| format!(" and {:.1} (after)", c.0)),
            operator_cpu.0,
            floor_before.cpu.1,
            after_cpu.map_or(String::new(), |c| format!(" and {:.1}", c.1)),
            operator_cpu.1
        );
        println!(
            "idle resync of {n} environments: {} objects written{}, {} of them after the quota controller recounted their usage ({} namespaces recounted during the resync); the restarted operator's peak RSS {resync_rss:.1} MiB",
            resync.writes(),
            if resync.writes_by_kind.is_empty() {
                String::new()
            } else {
                let kinds: Vec<String> = resync
                    .writes_by_kind
                    .iter()
                    .map(|(kind, count)| format!("{kind} {count}"))
                    .collect();
                format!(" ({})", kinds.join(", "))
            },
            resync.after_recount,
            resync.recounted
        );
        for written in &resync.written {
            println!("  written: {written}");
        }
        let as_json = |per_env: &[(String, f64)]| {
            serde_json::Map::from_iter(per_env.iter().map(|(k, v)| (k.clone(), json!(v))))
        };
        results.push(json!({"environments": n, "operator_seconds": took.as_secs_f64(), "floor_seconds": floor_mean.as_secs_f64(),
            "floor_seconds_before": floor_before.took.as_secs_f64(), "floor_seconds_after": floor_after.as_ref().map(|a| a.took.as_secs_f64()),
            "floor_before_is_the_last_runs_floor_after": shared,
            "ratio": ratio, "operator_peak_rss_mib": rss_mib, "idle_resync_writes": resync.writes(), "idle_resync_writes_by_kind": resync.writes_by_kind, "idle_resync_written": resync.written, "idle_resync_writes_after_recount": resync.after_recount, "idle_resync_namespaces_recounted": resync.recounted, "resync_peak_rss_mib": resync_rss,
            "with_pods": with_pods,
            "api_requests_per_environment": {"direct_before": as_json(&floor_before.requests), "operator": as_json(&operator_requests),
                                             "direct_after": floor_after.as_ref().map(|a| as_json(&a.requests))},
            "cpu_seconds": {"cluster_direct_before": floor_before.cpu.0, "cluster_direct_after": after_cpu.map(|c| c.0), "cluster_operator": operator_cpu.0,
                            "direct_client_before": floor_before.cpu.1, "direct_client_after": after_cpu.map(|c| c.1), "operator": operator_cpu.1}}));
        // Written after every size, so that a later failure keeps what was measured.
        save(&results)?;
        std::fs::remove_dir_all(ledgers()).ok();
    }
    Ok(())
}

/// Writes the figures so far to `target/bench/converge.json`.
fn save(results: &[serde_json::Value]) -> anyhow::Result<()> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/bench");
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        format!("{dir}/converge.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    Ok(())
}
