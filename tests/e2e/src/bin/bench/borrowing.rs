//! `make bench` (borrowing): how much more of the district's demand the same hardware serves
//! when bureaus at their peak borrow what others reserved and left idle, and what that costs the
//! lenders' own pods in time to run.
//!
//! **The district.** The 71 Haidian sample tenants, each with one environment granted a quarter
//! of its sample CPU quota (345 cores in all) on six simulated nodes of 64 cores (384). Pods ask
//! for 500m CPU and 256Mi each.
//!
//! **The demand model.** A day from 07:00 to 22:00, one simulated hour every
//! `BENCH_HOUR_SECONDS` seconds (default 12). Each tenant wants
//! `quota × (0.1 + 2.9 × exp(−Δ² / (2 × 1.5²)))` pods' worth, rounded to whole pods, where `Δ`
//! is the hours from its peak: bureaus (委办局) peak during office hours, between 08:00 and
//! 17:00 (the `i`-th sample tenant at `8 + 7i mod 10`), towns (街镇) between 12:00 and 17:00
//! (`12 + i mod 6`) and communities (社区) in the evening, between 18:00 and 21:00
//! (`18 + i mod 4`). So each idles at a tenth of its quota most of the day and asks for three
//! times it at its peak, and peaks come at different hours.
//!
//! **Two runs on the same cluster.** Static quotas (the pool does not lend): a tenant runs
//! pods up to its quota and the rest of its demand is not served. Borrowing (the pool lends, up
//! to 200 % of each quota, 5 % of the nodes kept back, no grace period): what exceeds the quota
//! runs as burst pods within the allowance the operator gives, and the scheduler takes room back
//! from burst pods when a tenant's own pods need it. The operator's lending loop runs every
//! `10 s × BENCH_HOUR_SECONDS / 3600` (at least 1 s): as often, relative to the compressed
//! hours, as its default 10 s is in a real day. A control loop every 2 s makes each
//! tenant's pods match its demand (guaranteed first), deleting the newest first.
//!
//! **Figures.** The share of demanded pod-seconds served (running pods, up to the demand), the
//! nodes' mean CPU utilisation, and for guaranteed pods the time from creation to Running (p50,
//! p99), in each run. Beside them, the **ceiling**: what a pool that lends without any lag
//! would serve of the same demand under the same terms (each tenant's demand up to its quota,
//! and with borrowing the rest up to its cap within the nodes less the margin), and an hour by
//! hour table of the demand, the ceiling, what was served, pods waiting to run and creations a
//! quota refused, which shows where what is served falls short of what could be. Burst pods
//! the benchmark deletes itself as its demand falls are not counted as reclaimed. Targets: borrowing serves at least 1.5× what static quotas serve, and the
//! guaranteed pods' p99 stays within 2× the static run's p99 plus the grace period.
//!
//! Usage: `bench borrowing`. Needs KUBECONFIG (a fresh devcluster: `make bench` gives it six
//! nodes of 64 cores) and a built `zhengyun` (ZHENGYUN_BIN, default target/release/zhengyun).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use zhengyun_e2e::bench::{ledgers, start_operator, wait_for_leader};
use zhengyun_e2e::eventually;
use zhengyun_e2e::operator::install_crds;
use zhengyun_model::crd::{CapacityPool, Environment, EnvironmentPhase};

/// The label of every pod this benchmark makes.
const LABEL: &str = "zhengyun-bench";
/// CPU of one pod, in millicores.
const POD_MILLICORES: u64 = 500;
/// The control loop's period.
const TICK: Duration = Duration::from_secs(2);
/// The first and last simulated hours.
const HOURS: std::ops::RangeInclusive<u32> = 7..=22;
const CONCURRENCY: usize = 16;
/// The pool's borrowing terms in the borrowing run.
const MAX_BORROW_PERCENT: u32 = 200;
const SAFETY_MARGIN_PERCENT: u32 = 5;

/// One sample tenant as the benchmark uses it.
#[derive(Clone, Debug)]
struct Tenant {
    code: String,
    name: String,
    /// Its quota in pods.
    quota: u64,
    /// The hour its demand peaks.
    peak: f64,
}

impl Tenant {
    /// Its demand in pods at simulated hour `hour` (fractional).
    fn demand(&self, hour: f64) -> u64 {
        let delta = (hour - self.peak)
            .abs()
            .min(24.0 - (hour - self.peak).abs());
        let shape = 0.1 + 2.9 * (-(delta * delta) / (2.0 * 1.5 * 1.5)).exp();
        (self.quota as f64 * shape).round() as u64
    }

    fn namespace(&self) -> String {
        format!("{}-prod", self.code)
    }
}

fn tenants() -> anyhow::Result<Vec<Tenant>> {
    #[derive(serde::Deserialize)]
    struct File {
        tenants: Vec<Sample>,
    }
    #[derive(serde::Deserialize)]
    struct Sample {
        code: String,
        kind: String,
        #[serde(rename = "displayName")]
        display_name: String,
        quota: BTreeMap<String, String>,
    }
    let raw = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/tenants-haidian.yaml"
    ))?;
    let file: File = serde_yaml::from_str(&raw)?;
    file.tenants
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let cores: u64 = t.quota.get("cpu").context("a cpu quota")?.parse()?;
            // A quarter of the sample quota, in 500m pods: cores / 4 / 0.5.
            let quota = (cores / 2).max(1);
            let peak = match t.kind.as_str() {
                "bureau" => 8 + (7 * i) % 10,
                "town" => 12 + i % 6,
                _ => 18 + i % 4,
            } as f64;
            Ok(Tenant {
                code: t.code,
                name: t.display_name,
                quota,
                peak,
            })
        })
        .collect()
}

/// What the benchmark knows of one of its pods, from the pod watch.
#[derive(Clone, Debug)]
struct Seen {
    created: Instant,
    running: Option<Instant>,
    gone: bool,
    burst: bool,
    /// Deleted by the benchmark itself, as its demand fell (not reclaimed).
    dropped: bool,
}

type Pods = Arc<Mutex<HashMap<(String, String), Seen>>>;

/// Keeps `pods` up to date from a watch of the benchmark's pods.
fn watch(client: &Client, pods: Pods) {
    let api = Api::<Pod>::all(client.clone());
    let events = watcher(api, watcher::Config::default().labels(LABEL));
    tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            let now = Instant::now();
            let mut pods = pods
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut note = |pod: &Pod, gone: bool| {
                let key = (pod.namespace().unwrap_or_default(), pod.name_any());
                if let Some(seen) = pods.get_mut(&key) {
                    let running =
                        pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                    if running && seen.running.is_none() {
                        seen.running = Some(now);
                    }
                    seen.gone |= gone || pod.metadata.deletion_timestamp.is_some();
                }
            };
            match event {
                Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                    note(&pod, false)
                }
                Ok(watcher::Event::Delete(pod)) => note(&pod, true),
                _ => {}
            }
        }
    });
}

fn pod(name: &str, burst: bool) -> anyhow::Result<Pod> {
    let resources = json!({"cpu": format!("{POD_MILLICORES}m"), "memory": "256Mi"});
    let mut spec = json!({
        "terminationGracePeriodSeconds": 0,
        "securityContext": {"runAsNonRoot": true, "runAsUser": 1000,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "app", "image": "registry.local/haidian/app:1",
            "resources": {"requests": resources, "limits": resources},
            "securityContext": {"allowPrivilegeEscalation": false,
                                "capabilities": {"drop": ["ALL"]}}}]
    });
    if burst {
        spec["priorityClassName"] = json!("zhengyun-burst");
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {LABEL: "borrowing"}}, "spec": spec,
    }))?)
}

/// One simulated hour of a run, in pod-seconds of the compressed day (and pod creations
/// refused).
#[derive(Clone, Debug, Default, serde::Serialize)]
struct HourFigures {
    demanded: f64,
    /// What a lender without lag would serve ([`ceiling`]).
    ceiling: f64,
    served: f64,
    /// Pods of the tenants' own (guaranteed) and burst pods created but not yet Running.
    pending_own: f64,
    pending_burst: f64,
    /// Creations refused by a quota (the admitted quota or the burst allowance).
    refused: u64,
}

/// One run's figures.
#[derive(Debug, Default)]
struct Figures {
    served_pod_seconds: f64,
    demanded_pod_seconds: f64,
    ceiling_pod_seconds: f64,
    utilisation_sum: f64,
    samples: u32,
    to_running: Vec<Duration>,
    burst_reclaimed: usize,
    hours: BTreeMap<u32, HourFigures>,
}

/// What the pool could serve of `demands` (each tenant's demand with its quota, in pods) on
/// nodes holding `capacity_pods` with no lag at all: every tenant's demand up to its quota, and
/// with borrowing the rest up to its cap, within what the nodes hold less the safety margin.
fn ceiling(demands: &[(u64, u64)], capacity_pods: u64, borrowing: bool) -> u64 {
    let own: u64 = demands.iter().map(|(d, q)| (*d).min(*q)).sum();
    if !borrowing {
        return own;
    }
    let wanted: u64 = demands
        .iter()
        .map(|(d, q)| {
            d.saturating_sub(*q)
                .min(q * u64::from(MAX_BORROW_PERCENT) / 100)
        })
        .sum();
    let lendable =
        (capacity_pods * u64::from(100 - SAFETY_MARGIN_PERCENT) / 100).saturating_sub(own);
    own + wanted.min(lendable)
}

impl Figures {
    fn served_share(&self) -> f64 {
        self.served_pod_seconds / self.demanded_pod_seconds.max(1.0)
    }

    /// The share of demanded pod-seconds a lender without lag would serve.
    fn ceiling_share(&self) -> f64 {
        self.ceiling_pod_seconds / self.demanded_pod_seconds.max(1.0)
    }

    /// The share of what a lender without lag would serve that was served.
    fn of_ceiling(&self) -> f64 {
        self.served_pod_seconds / self.ceiling_pod_seconds.max(1.0)
    }

    fn utilisation(&self) -> f64 {
        self.utilisation_sum / f64::from(self.samples.max(1))
    }

    fn percentile(&self, p: f64) -> f64 {
        let mut times: Vec<f64> = self.to_running.iter().map(Duration::as_secs_f64).collect();
        times.sort_by(f64::total_cmp);
        if times.is_empty() {
            return 0.0;
        }
        let at = ((times.len() as f64 - 1.0) * p).round() as usize;
        times[at]
    }
}

/// One run of the simulated day; `borrowing` says whether tenants run their excess as burst.
async fn run(
    client: &Client,
    tenants: &[Tenant],
    borrowing: bool,
    hour: Duration,
    capacity_pods: u64,
) -> anyhow::Result<Figures> {
    let pods: Pods = Arc::default();
    watch(client, pods.clone());
    let mut figures = Figures::default();
    let mut serial = 0u64;
    let start = Instant::now();
    let day = hour * (HOURS.end() - HOURS.start() + 1);
    while start.elapsed() < day {
        let tick = Instant::now();
        let at = f64::from(*HOURS.start()) + start.elapsed().as_secs_f64() / hour.as_secs_f64();
        let mut creates = Vec::new();
        let mut deletes = Vec::new();
        let (mut served, mut demanded, mut running_total) = (0u64, 0u64, 0u64);
        let (mut pending_own, mut pending_burst) = (0u64, 0u64);
        let mut demands = Vec::with_capacity(tenants.len());
        {
            let seen = pods
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for t in tenants {
                let ns = t.namespace();
                let demand = t.demand(at);
                let guaranteed = demand.min(t.quota);
                let burst = if borrowing { demand - guaranteed } else { 0 };
                let mut alive: Vec<(&String, &Seen)> = seen
                    .iter()
                    .filter(|((n, _), s)| *n == ns && !s.gone)
                    .map(|((_, name), s)| (name, s))
                    .collect();
                alive.sort_by_key(|(_, s)| std::cmp::Reverse(s.created));
                let running = alive.iter().filter(|(_, s)| s.running.is_some()).count() as u64;
                for (_, s) in alive.iter().filter(|(_, s)| s.running.is_none()) {
                    *if s.burst {
                        &mut pending_burst
                    } else {
                        &mut pending_own
                    } += 1;
                }
                running_total += running;
                served += running.min(demand);
                demanded += demand;
                demands.push((demand, t.quota));
                for (kind_burst, want) in [(false, guaranteed), (true, burst)] {
                    let mine: Vec<&String> = alive
                        .iter()
                        .filter(|(_, s)| s.burst == kind_burst)
                        .map(|(name, _)| *name)
                        .collect();
                    let have = mine.len() as u64;
                    if have > want {
                        // The newest first: the list is newest first.
                        for name in mine.iter().take((have - want) as usize) {
                            deletes.push((ns.clone(), (*name).clone()));
                        }
                    }
                    for _ in have..want {
                        serial += 1;
                        let name = format!("{}-{serial}", if kind_burst { "burst" } else { "own" });
                        creates.push((ns.clone(), name, kind_burst));
                    }
                }
            }
        }
        let dt = TICK.as_secs_f64();
        let ceiling = ceiling(&demands, capacity_pods, borrowing);
        figures.served_pod_seconds += served as f64 * dt;
        figures.demanded_pod_seconds += demanded as f64 * dt;
        figures.ceiling_pod_seconds += ceiling as f64 * dt;
        let this_hour = figures.hours.entry(at.floor() as u32).or_default();
        this_hour.demanded += demanded as f64 * dt;
        this_hour.ceiling += ceiling as f64 * dt;
        this_hour.served += served as f64 * dt;
        this_hour.pending_own += pending_own as f64 * dt;
        this_hour.pending_burst += pending_burst as f64 * dt;
        figures.utilisation_sum += running_total as f64 / capacity_pods as f64;
        figures.samples += 1;
        stream::iter(deletes)
            .map(|(ns, name)| {
                let api = Api::<Pod>::namespaced(client.clone(), &ns);
                let pods = pods.clone();
                async move {
                    // Marked before the delete, so that the watch never reports it as
                    // reclaimed.
                    if let Some(s) = pods
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .get_mut(&(ns.clone(), name.clone()))
                    {
                        s.dropped |= !s.gone;
                        s.gone = true;
                    }
                    let _ = api.delete(&name, &DeleteParams::default()).await;
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let refused = stream::iter(creates)
            .map(|(ns, name, burst)| {
                let api = Api::<Pod>::namespaced(client.clone(), &ns);
                let pods = pods.clone();
                async move {
                    let object = pod(&name, burst)?;
                    let created = Instant::now();
                    // Refused (over the quota or the allowance): not served this tick.
                    if api.create(&PostParams::default(), &object).await.is_err() {
                        return anyhow::Ok(1);
                    }
                    pods.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .entry((ns, name))
                        .or_insert(Seen {
                            created,
                            running: None,
                            gone: false,
                            burst,
                            dropped: false,
                        });
                    anyhow::Ok(0)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<u64>>()
            .await?;
        figures.hours.entry(at.floor() as u32).or_default().refused += refused.iter().sum::<u64>();
        tokio::time::sleep(TICK.saturating_sub(tick.elapsed())).await;
    }
    let seen = pods
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    figures.to_running = seen
        .values()
        .filter(|s| !s.burst)
        .filter_map(|s| Some(s.running?.duration_since(s.created)))
        .collect();
    figures.burst_reclaimed = seen
        .values()
        .filter(|s| s.burst && s.gone && !s.dropped)
        .count();
    Ok(figures)
}

/// Deletes every pod of the benchmark and waits until none is left.
async fn clear(client: &Client, tenants: &[Tenant]) -> anyhow::Result<()> {
    for t in tenants {
        Api::<Pod>::namespaced(client.clone(), &t.namespace())
            .delete_collection(
                &DeleteParams::default(),
                &ListParams::default().labels(LABEL),
            )
            .await?;
    }
    let all = Api::<Pod>::all(client.clone());
    eventually(
        "the benchmark's pods gone",
        Duration::from_secs(300),
        || async {
            let left = all.list(&ListParams::default().labels(LABEL)).await?;
            Ok(left.items.is_empty().then_some(()))
        },
    )
    .await
}

async fn set_borrowing(client: &Client, enabled: bool) -> anyhow::Result<()> {
    let pool = json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "CapacityPool",
        "metadata": {"name": "default"},
        "spec": {
            "capacity": {"cpu": "384", "memory": "768Gi", "storage": "64Ti"},
            "borrowing": {"enabled": enabled, "maxBorrowPercent": MAX_BORROW_PERCENT,
                          "safetyMarginPercent": SAFETY_MARGIN_PERCENT, "hysteresisPercent": 10,
                          "reclaimGraceSeconds": 0},
        },
    });
    Api::<CapacityPool>::all(client.clone())
        .patch(
            "default",
            &PatchParams::apply("bench-borrowing").force(),
            &Patch::Apply(&pool),
        )
        .await?;
    Ok(())
}

/// The bureaus and their environments, each granted its quota, and Ready.
async fn onboard(client: &Client, tenants: &[Tenant]) -> anyhow::Result<()> {
    let apply = PatchParams::apply("bench-borrowing").force();
    stream::iter(tenants)
        .map(|t| {
            let client = client.clone();
            let apply = apply.clone();
            async move {
                let cpu = format!("{}m", t.quota * POD_MILLICORES);
                let memory = format!("{}Mi", t.quota * 512);
                let bureau = json!({
                    "apiVersion": "zhengyun.io/v1alpha1", "kind": "Bureau",
                    "metadata": {"name": t.code},
                    "spec": {"displayName": t.name, "kind": "bureau",
                             "quota": {"cpu": cpu, "memory": memory, "storage": "1Gi"},
                             "adminGroups": [], "viewerGroups": []},
                });
                Api::<zhengyun_model::crd::Bureau>::all(client.clone())
                    .patch(&t.code, &apply, &Patch::Apply(&bureau))
                    .await?;
                let env = json!({
                    "apiVersion": "zhengyun.io/v1alpha1", "kind": "Environment",
                    "metadata": {"name": t.namespace()},
                    "spec": {"bureau": t.code, "purpose": "prod", "tier": "silver",
                             "quota": {"cpu": cpu, "memory": memory, "storage": "1Gi"}},
                });
                Api::<Environment>::all(client)
                    .patch(&t.namespace(), &apply, &Patch::Apply(&env))
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    let envs = Api::<Environment>::all(client.clone());
    eventually(
        "every environment Ready",
        Duration::from_secs(600),
        || async {
            let list = envs.list(&ListParams::default()).await?;
            let ready = list
                .items
                .iter()
                .filter(|e| {
                    e.status.as_ref().and_then(|s| s.phase) == Some(EnvironmentPhase::Ready)
                })
                .count();
            Ok((ready >= tenants.len()).then_some(()))
        },
    )
    .await
}

async fn capacity_pods(client: &Client) -> anyhow::Result<u64> {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    let millicores: u64 = nodes
        .items
        .iter()
        .filter_map(|n| n.status.as_ref()?.allocatable.as_ref()?.get("cpu").cloned())
        .filter_map(|q| zhengyun_model::quantity::Unit::Millicores.parse(&q.0).ok())
        .sum();
    Ok(millicores / POD_MILLICORES)
}

/// The money the borrowing day settled, in CNY scaled from the compressed day to simulated
/// hours (money is linear in unit-seconds).
struct Money {
    charges: f64,
    credits: f64,
    platform: f64,
    borrowers: usize,
    lenders: usize,
}

/// Waits until the ledger of the operator on `port` covers the day, then sums its settlements
/// of the months the day touched.
async fn settled(port: u16, since: jiff::Timestamp, hour: Duration) -> anyhow::Result<Money> {
    use zhengyun_metering::settlement::Role;
    let url = format!(
        "sqlite://{}?mode=rwc",
        ledgers().join(format!("{port}.db")).display()
    );
    let store = zhengyun_store::Store::connect(&url).await?;
    let end = jiff::Timestamp::now();
    eventually(
        "the ledger past the day",
        Duration::from_secs(120),
        || async {
            let checkpoint = store.checkpoint("usage").await?;
            Ok(checkpoint.filter(|c| *c >= end).map(|_| ()))
        },
    )
    .await?;
    let calendar = zhengyun_metering::Calendar::default();
    let months: std::collections::BTreeSet<_> =
        [since, end].iter().map(|t| calendar.month_of(*t)).collect();
    let mut shares = Vec::new();
    for month in months {
        shares.extend(store.month_settlement_sums(month).await?);
    }
    store.close().await;
    let scale = 3600.0 / hour.as_secs_f64().max(1.0);
    let cny = |role: Role| {
        shares
            .iter()
            .filter(|s| s.role == role)
            .map(|s| s.micro_fen as f64)
            .sum::<f64>()
            / 1e8
            * scale
    };
    let parties = |role: Role| {
        shares
            .iter()
            .filter(|s| s.role == role && s.micro_fen > 0)
            .map(|s| (s.bureau.as_str(), s.environment.as_str()))
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    Ok(Money {
        charges: cny(Role::Burst),
        credits: cny(Role::Lent),
        platform: cny(Role::Platform),
        borrowers: parties(Role::Burst),
        lenders: parties(Role::Lent),
    })
}

fn report(label: &str, f: &Figures) {
    println!(
        "  {label}: served {:.1} % of demanded pod-seconds ({:.1} % of what a lender without lag would serve), utilisation {:.1} %, guaranteed pods to Running p50 {:.2} s, p99 {:.2} s ({} pods), {} burst pods reclaimed",
        100.0 * f.served_share(),
        100.0 * f.of_ceiling(),
        100.0 * f.utilisation(),
        f.percentile(0.5),
        f.percentile(0.99),
        f.to_running.len(),
        f.burst_reclaimed,
    );
    println!(
        "    hour  demanded  ceiling   served  pending own  pending burst  refused  (pod-seconds of the compressed day)"
    );
    for (hour, h) in &f.hours {
        println!(
            "    {hour:02}:00 {:9.0} {:8.0} {:8.0} {:12.0} {:14.0} {:8}",
            h.demanded, h.ceiling, h.served, h.pending_own, h.pending_burst, h.refused
        );
    }
}

/// Runs the benchmark with `args` (those after its name).
pub async fn main(args: &[String]) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.is_empty(),
        "bench borrowing takes no arguments (BENCH_HOUR_SECONDS sets the simulated hour)"
    );
    let hour = Duration::from_secs(
        std::env::var("BENCH_HOUR_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(12),
    );
    let bin = std::env::var("ZHENGYUN_BIN").unwrap_or_else(|_| "target/release/zhengyun".into());
    let client = zhengyun_e2e::client().await?;
    install_crds(&client).await?;
    let port = zhengyun_e2e::faults::free_port()?;
    // A metering window every 2 s, so that the day's borrowing is settled in the ledger; and
    // the lending loop's 10 s compressed as the day is (at least 1 s), so that allowances follow
    // demand as fast, relative to the hours, as they do in a real day.
    let lending = ((10.0 * hour.as_secs_f64() / 3600.0).round() as u64).max(1);
    let mut operator = start_operator(
        &bin,
        port,
        &[
            "--metering-period",
            "2",
            "--metering-lateness",
            "1",
            "--lending-period",
            &lending.to_string(),
        ],
    )?;
    wait_for_leader(&client).await?;
    zhengyun_e2e::tenants::apply_sample_rate_card(&client).await?;
    let tenants = tenants()?;
    let capacity = capacity_pods(&client).await?;
    let quota: u64 = tenants.iter().map(|t| t.quota).sum();
    println!(
        "borrowing: {} tenants, quotas {} pods of {POD_MILLICORES}m on nodes holding {capacity}; one simulated hour every {} s, {:02}:00-{:02}:59",
        tenants.len(),
        quota,
        hour.as_secs(),
        HOURS.start(),
        HOURS.end()
    );
    set_borrowing(&client, false).await?;
    onboard(&client, &tenants).await?;
    let fixed = run(&client, &tenants, false, hour, capacity).await?;
    report("static quotas", &fixed);
    clear(&client, &tenants).await?;
    set_borrowing(&client, true).await?;
    // Let the lending loop give every environment its allowance before the day starts.
    tokio::time::sleep(Duration::from_secs(25)).await;
    let day_started = jiff::Timestamp::now();
    let lent = run(&client, &tenants, true, hour, capacity).await?;
    report("borrowing", &lent);
    clear(&client, &tenants).await?;
    let money = settled(port, day_started, hour).await?;
    println!(
        "  money settled (sample rate card, the pool's default terms), scaled to the simulated day: burst charges {:.2} CNY from {} environments, credits {:.2} CNY to {} lending bureaus, platform {:.2} CNY",
        money.charges, money.borrowers, money.credits, money.lenders, money.platform
    );
    let served_ratio = lent.served_share() / fixed.served_share().max(f64::EPSILON);
    let latency_limit = 2.0 * fixed.percentile(0.99);
    println!(
        "  served ratio {served_ratio:.2} (target at least 1.5: {}; a lender without lag: {:.2}); guaranteed p99 {:.2} s against {latency_limit:.2} s (2× static + 0 s grace: {})",
        if served_ratio >= 1.5 { "met" } else { "missed" },
        lent.ceiling_share() / fixed.ceiling_share().max(f64::EPSILON),
        lent.percentile(0.99),
        if lent.percentile(0.99) <= latency_limit {
            "met"
        } else {
            "missed"
        },
    );
    let results = json!({
        "hour_seconds": hour.as_secs(),
        "static": {"served": fixed.served_share(), "of_ceiling": fixed.of_ceiling(),
                   "utilisation": fixed.utilisation(),
                   "p50": fixed.percentile(0.5), "p99": fixed.percentile(0.99),
                   "hours": fixed.hours},
        "borrowing": {"served": lent.served_share(), "of_ceiling": lent.of_ceiling(),
                      "utilisation": lent.utilisation(),
                      "p50": lent.percentile(0.5), "p99": lent.percentile(0.99),
                      "reclaimed": lent.burst_reclaimed, "hours": lent.hours},
        "ceiling_ratio": lent.ceiling_share() / fixed.ceiling_share().max(f64::EPSILON),
        "served_ratio": served_ratio,
        "settled": {"charges": money.charges, "credits": money.credits,
                    "platform": money.platform, "borrowers": money.borrowers,
                    "lenders": money.lenders},
    });
    std::fs::create_dir_all("target/bench")?;
    std::fs::write(
        "target/bench/borrowing.json",
        serde_json::to_string_pretty(&results)?,
    )?;
    drop(operator.stdin.take());
    let _ = operator.wait();
    let _ = std::fs::remove_dir_all(ledgers());
    Ok(())
}
