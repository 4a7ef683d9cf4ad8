//! Faults: the control plane stopped and started again under a running API and operator, the
//! database stopped under a running API, the operator killed with SIGKILL while it converges,
//! watches that expire while the operator is away, metering while the API server is away, and
//! finance metrics across a leader handover.
//!
//! These tests stop their cluster, so they run on a devcluster of their own, one at a time:
//! `make test-faults` (scripts/faults.sh). They are ignored by a plain `cargo test`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use futures::future::join_all;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use zhengyun_e2e::faults::{Answer, Cluster, Http, Postgres, Process, Random, free_port};
use zhengyun_e2e::operator::install_crds;
use zhengyun_e2e::{eventually, unique_name};
use zhengyun_model::crd::{Bureau, Environment, EnvironmentPhase};

const WAIT: Duration = Duration::from_secs(180);

/// How long each outage lasts at least: longer than the operator's default 15 s Lease, so that
/// the operator loses its leadership while the cluster is away and has to win it back.
const OUTAGE: Duration = Duration::from_secs(20);

async fn setup() -> anyhow::Result<(Cluster, Client)> {
    let cluster = Cluster::from_env()?;
    cluster.up()?;
    let client = zhengyun_e2e::client().await?;
    install_crds(&client).await?;
    Ok((cluster, client))
}

/// A fresh bureau code: short enough for `<code>-staging` and `<code>-dev-NN`.
fn code(prefix: &str) -> String {
    let name = unique_name(prefix);
    name.chars()
        .take(30)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned()
}

/// A running API (with or without the operator in the same process), its client and the
/// bootstrap platform-admin token.
struct Zhengyun {
    process: Process,
    http: Http,
    admin: String,
    operator_port: u16,
}

impl Zhengyun {
    /// `zhengyun <command>` (`dev` or `api`) on the database at `database_url`.
    fn start(command: &str, database_url: &str, name: &str) -> anyhow::Result<Self> {
        let api_port = free_port()?;
        let operator_port = free_port()?;
        let admin = format!("faults-bootstrap-admin-token-{}", unique_name("t"));
        let process = Process::start(
            &[command, "--log-format", "json"],
            &[
                ("ZHENGYUN_API_ADDR", format!("127.0.0.1:{api_port}")),
                (
                    "ZHENGYUN_OPERATOR_ADDR",
                    format!("127.0.0.1:{operator_port}"),
                ),
                ("ZHENGYUN_DATABASE_URL", database_url.to_owned()),
                ("ZHENGYUN_BOOTSTRAP_TOKEN", admin.clone()),
                ("ZHENGYUN_LEASE_NAME", format!("faults-{name}")),
                ("ZHENGYUN_LEASE_NAMESPACE", "default".to_owned()),
            ],
            &format!("{command}-{name}"),
        )?;
        Ok(Self {
            process,
            http: Http::new(api_port),
            admin,
            operator_port,
        })
    }

    /// `zhengyun dev` on a SQLite file of its own.
    fn dev(name: &str) -> anyhow::Result<Self> {
        let db = zhengyun_e2e::faults::log_dir()?.join(format!("{name}.db"));
        Self::start("dev", &format!("sqlite://{}?mode=rwc", db.display()), name)
    }

    async fn ready(&self) -> anyhow::Result<()> {
        eventually("the API ready", WAIT, || async {
            let answer = self.http.get("/readyz", None).await?;
            Ok((answer.status == StatusCode::OK).then_some(()))
        })
        .await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        self.http.call(method, path, Some(token), body).await
    }

    async fn onboard(&self, bureau: &str, cpu: &str) -> anyhow::Result<()> {
        let answer = self
            .call(
                Method::POST,
                "/api/v1/bureaus",
                &self.admin,
                Some(&json!({
                    "name": bureau, "displayName": "海淀区应急管理局", "kind": "bureau",
                    "quota": {"cpu": cpu, "memory": "64Gi", "storage": "100Gi"},
                    "adminGroups": [format!("{bureau}-admins")],
                    "viewerGroups": [format!("{bureau}-viewers")],
                })),
            )
            .await?;
        anyhow::ensure!(answer.status == StatusCode::CREATED, "onboard: {answer:?}");
        Ok(())
    }

    async fn request(&self, token: &str, bureau: &str, purpose: &str) -> anyhow::Result<Answer> {
        self.call(
            Method::POST,
            &format!("/api/v1/bureaus/{bureau}/environments"),
            token,
            Some(&json!({"purpose": purpose, "quota": {"cpu": "1", "memory": "1Gi"}})),
        )
        .await
    }

    async fn wait_phase(
        &self,
        token: &str,
        bureau: &str,
        name: &str,
        phase: &str,
    ) -> anyhow::Result<Value> {
        let path = format!("/api/v1/bureaus/{bureau}/environments/{name}");
        eventually(&format!("{name} {phase}"), WAIT, || async {
            let answer = self.call(Method::GET, &path, token, None).await?;
            Ok((answer.body["phase"] == phase).then_some(answer.body))
        })
        .await
    }

    /// Deletes the environments through the API and waits until they and their namespaces
    /// are gone.
    async fn delete_all(
        &self,
        client: &Client,
        bureau: &str,
        names: &[&str],
    ) -> anyhow::Result<()> {
        for name in names {
            let path = format!("/api/v1/bureaus/{bureau}/environments/{name}");
            let answer = self.call(Method::DELETE, &path, &self.admin, None).await?;
            anyhow::ensure!(
                answer.status == StatusCode::ACCEPTED,
                "delete {name}: {answer:?}"
            );
        }
        gone(client, names).await
    }

    /// Audit entries of `bureau`.
    async fn audit(&self, bureau: &str) -> anyhow::Result<Vec<Value>> {
        let answer = self
            .call(
                Method::GET,
                &format!("/api/v1/audit?bureau={bureau}&limit=1000"),
                &self.admin,
                None,
            )
            .await?;
        anyhow::ensure!(answer.status == StatusCode::OK, "audit: {answer:?}");
        Ok(answer.body.as_array().cloned().unwrap_or_default())
    }
}

async fn gone(client: &Client, names: &[&str]) -> anyhow::Result<()> {
    let envs: Api<Environment> = Api::all(client.clone());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for name in names {
        eventually(&format!("{name} and its namespace gone"), WAIT, || async {
            let gone =
                envs.get_opt(name).await?.is_none() && namespaces.get_opt(name).await?.is_none();
            Ok(gone.then_some(()))
        })
        .await?;
    }
    Ok(())
}

/// GET of a plain HTTP endpoint (the operator's health) on loopback.
async fn plain_get(port: u16, path: &str) -> anyhow::Result<StatusCode> {
    Ok(Http::new(port).get(path, None).await?.status)
}

fn assert_unavailable(answer: &Answer, what: &str) {
    assert!(
        answer.is_unavailable_problem(),
        "{what}: expected a 503 problem+json, got {} {} {}",
        answer.status,
        answer.content_type,
        answer.body
    );
}

/// One round of calls while the cluster is away; returns how many writes were refused.
async fn probe_while_away(
    dev: &Zhengyun,
    envs_path: &str,
    first_path: &str,
) -> anyhow::Result<usize> {
    let admin = dev.admin.as_str();
    let healthz = dev.http.get("/healthz", None).await?;
    assert_eq!(healthz.status, StatusCode::OK, "/healthz while away");
    assert_eq!(
        plain_get(dev.operator_port, "/healthz").await?,
        StatusCode::OK,
        "the operator's /healthz while away"
    );
    assert_unavailable(&dev.http.get("/readyz", None).await?, "/readyz");
    // Reads come from the API's watch cache while its watches deliver; once a watch has
    // failed against the stopped API server (within moments), they go to the API server and
    // are refused with it, rather than answered from what the cache last saw.
    for path in ["/api/v1/bureaus", envs_path, first_path] {
        eventually(
            &format!("GET {path} refused with a 503 problem+json"),
            WAIT,
            || async {
                let answer = dev.call(Method::GET, path, admin, None).await?;
                Ok(answer.is_unavailable_problem().then_some(()))
            },
        )
        .await?;
    }
    let writes = [
        (
            Method::POST,
            envs_path,
            Some(json!({"purpose": "test", "quota": {"cpu": "1", "memory": "1Gi"}})),
        ),
        (
            Method::PATCH,
            first_path,
            Some(json!({"quota": {"cpu": "2", "memory": "1Gi"}})),
        ),
        (Method::DELETE, first_path, None),
    ];
    for (method, path, body) in &writes {
        let answer = dev.call(method.clone(), path, admin, body.as_ref()).await?;
        assert_unavailable(&answer, &format!("{method} {path}"));
    }
    // What lives only in the database still answers.
    let tokens = dev.call(Method::GET, "/api/v1/tokens", admin, None).await?;
    assert_eq!(
        tokens.status,
        StatusCode::OK,
        "tokens while the cluster is away"
    );
    Ok(writes.len())
}

/// How many times the operator in `dev` has lost its Lease.
fn lease_losses(dev: &Zhengyun) -> anyhow::Result<usize> {
    Ok(dev.process.log()?.matches("lost the leader Lease").count())
}

/// Starts the cluster again and waits, without touching `dev`, until its API answers 200 and
/// its operator makes a new environment `name` Ready; prints how long each took.
async fn recover(
    cluster: &Cluster,
    dev: &Zhengyun,
    bureau: &str,
    name: &str,
    after: &str,
    losses_before: usize,
) -> anyhow::Result<()> {
    let admin = dev.admin.as_str();
    let restart = Instant::now();
    cluster.up()?;
    let cluster_ready = restart.elapsed();
    let envs_path = format!("/api/v1/bureaus/{bureau}/environments");
    eventually("the API answering 200 again", WAIT, || async {
        let answer = dev.call(Method::GET, &envs_path, admin, None).await?;
        Ok((answer.status == StatusCode::OK).then_some(()))
    })
    .await?;
    let api_recovery = restart.elapsed();
    let created = dev
        .call(
            Method::POST,
            &envs_path,
            admin,
            Some(&json!({"name": name, "purpose": "dev", "quota": {"cpu": "1", "memory": "1Gi"}})),
        )
        .await?;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    dev.wait_phase(admin, bureau, name, "Ready").await?;
    let operator_recovery = restart.elapsed();
    let lost_lease = lease_losses(dev)? > losses_before;
    println!(
        "after {after}, from the cluster's restart: devcluster ready in {:.1} s, the API \
         answered 200 at {:.1} s, a new environment was Ready at {:.1} s (the operator lost \
         its Lease meanwhile: {lost_lease})",
        cluster_ready.as_secs_f64(),
        api_recovery.as_secs_f64(),
        operator_recovery.as_secs_f64()
    );
    assert_eq!(dev.http.get("/readyz", None).await?.status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
#[ignore = "stops and restarts its cluster: run with `make test-faults`"]
async fn api_and_operator_ride_out_a_stopped_api_server_without_restarting() -> anyhow::Result<()> {
    let (cluster, client) = setup().await?;
    let bureau = code("fa-apisrv");
    let dev = Zhengyun::dev(&bureau)?;
    dev.ready().await?;
    dev.onboard(&bureau, "8").await?;
    let admin = dev.admin.clone();
    let first = format!("{bureau}-dev");
    let created = dev.request(&admin, &bureau, "dev").await?;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    dev.wait_phase(&admin, &bureau, &first, "Ready").await?;

    let envs_path = format!("/api/v1/bureaus/{bureau}/environments");
    let first_path = format!("{envs_path}/{first}");

    // A short outage, over before the operator's Lease runs out: the controllers keep running
    // and must pick their watches up again.
    let losses = lease_losses(&dev)?;
    cluster.down()?;
    let mut refused_writes = probe_while_away(&dev, &envs_path, &first_path).await?;
    let second = format!("{bureau}-dev-2");
    recover(&cluster, &dev, &bureau, &second, "a short outage", losses).await?;

    // A long one, beyond the Lease: the operator stops its controllers and must win the Lease
    // back and start them again.
    let losses = lease_losses(&dev)?;
    cluster.down()?;
    let stopped = Instant::now();
    let mut rounds = 0;
    while rounds < 3 || stopped.elapsed() < OUTAGE {
        rounds += 1;
        refused_writes += probe_while_away(&dev, &envs_path, &first_path).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!(
        "cluster away for {:.1} s: {rounds} rounds of probes",
        stopped.elapsed().as_secs_f64()
    );
    let third = format!("{bureau}-dev-3");
    recover(&cluster, &dev, &bureau, &third, "a long outage", losses).await?;
    assert_eq!(dev.http.get("/readyz", None).await?.status, StatusCode::OK);

    // The refused writes left nothing: no test environment, the first one neither resized nor
    // deleted; and each of them is in the audit log with its 503.
    let environments: Api<Environment> = Api::all(client.clone());
    assert!(
        environments
            .get_opt(&format!("{bureau}-test"))
            .await?
            .is_none(),
        "a write refused with 503 created an environment"
    );
    let kept = environments.get(&first).await?;
    assert!(
        kept.metadata.deletion_timestamp.is_none(),
        "a refused delete deleted"
    );
    assert_eq!(
        kept.spec.quota.cpu.as_ref().map(|q| q.as_str().to_owned()),
        Some("1".to_owned()),
        "a refused resize resized"
    );
    let refused: Vec<Value> = dev
        .audit(&bureau)
        .await?
        .into_iter()
        .filter(|e| e["result"].as_str().is_some_and(|r| r.starts_with("503")))
        .collect();
    assert_eq!(
        refused.len(),
        refused_writes,
        "audit entries of refused writes: {refused:?}"
    );

    dev.delete_all(&client, &bureau, &[&first, &second, &third])
        .await?;
    Api::<Bureau>::all(client)
        .delete(&bureau, &DeleteParams::default())
        .await?;
    assert!(
        dev.process.stop(Duration::from_secs(60)).await?,
        "zhengyun dev exited with an error"
    );
    Ok(())
}

#[tokio::test]
#[ignore = "stops and restarts its PostgreSQL: run with `make test-faults`"]
async fn a_database_outage_refuses_every_call_with_503_and_changes_nothing() -> anyhow::Result<()> {
    let (cluster, client) = setup().await?;
    let mut postgres = Postgres::of(&cluster);
    let url = postgres.up()?;
    let bureau = code("fa-db");
    let operator = Zhengyun::start("operator", &url, &format!("{bureau}-operator"))?;
    let api = Zhengyun::start("api", &url, &bureau)?;
    api.ready().await?;
    api.onboard(&bureau, "8").await?;
    let issued = api
        .call(
            Method::POST,
            "/api/v1/tokens",
            &api.admin,
            Some(&json!({"role": "bureau-admin", "bureau": bureau, "description": "faults"})),
        )
        .await?;
    assert_eq!(issued.status, StatusCode::CREATED, "{issued:?}");
    let staff = issued.body["secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let first = format!("{bureau}-dev");
    let created = api.request(&staff, &bureau, "dev").await?;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    api.wait_phase(&staff, &bureau, &first, "Ready").await?;

    postgres.down()?;
    let stopped = Instant::now();
    let envs_path = format!("/api/v1/bureaus/{bureau}/environments");
    let first_path = format!("{envs_path}/{first}");
    let other = format!("{bureau}x");
    let mut rounds = 0;
    while rounds < 3 || stopped.elapsed() < OUTAGE {
        rounds += 1;
        assert_eq!(api.http.get("/healthz", None).await?.status, StatusCode::OK);
        assert_unavailable(&api.http.get("/readyz", None).await?, "/readyz");
        let no_token = api.http.get(&envs_path, None).await?;
        assert_eq!(
            no_token.status,
            StatusCode::UNAUTHORIZED,
            "no token: {no_token:?}"
        );
        let calls = [
            (&staff, Method::GET, envs_path.as_str(), None),
            (&staff, Method::GET, first_path.as_str(), None),
            (
                &staff,
                Method::POST,
                envs_path.as_str(),
                Some(json!({"purpose": "test", "quota": {"cpu": "1", "memory": "1Gi"}})),
            ),
            (
                &staff,
                Method::PATCH,
                first_path.as_str(),
                Some(json!({"quota": {"cpu": "2", "memory": "1Gi"}})),
            ),
            (&staff, Method::DELETE, first_path.as_str(), None),
            (
                &api.admin,
                Method::POST,
                "/api/v1/bureaus",
                Some(json!({
                "name": other, "displayName": "海淀区审计局", "kind": "bureau",
                "quota": {"cpu": "1", "memory": "1Gi"}})),
            ),
            (
                &api.admin,
                Method::POST,
                "/api/v1/tokens",
                Some(json!({"role": "auditor", "description": "faults"})),
            ),
            (&api.admin, Method::GET, "/api/v1/audit", None),
        ];
        // At once: each waits for the pool's acquire timeout before its 503.
        let answers = join_all(calls.iter().map(|(token, method, path, body)| {
            api.call(method.clone(), path, token, body.as_ref())
        }))
        .await;
        for ((_, method, path, _), answer) in calls.iter().zip(answers) {
            assert_unavailable(&answer?, &format!("{method} {path}"));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!(
        "database away for {:.1} s: {rounds} rounds of probes, every call 503",
        stopped.elapsed().as_secs_f64()
    );

    // Nothing reached the cluster: authentication needs the database, and comes first.
    let environments: Api<Environment> = Api::all(client.clone());
    assert!(
        environments
            .get_opt(&format!("{bureau}-test"))
            .await?
            .is_none()
    );
    assert!(
        Api::<Bureau>::all(client.clone())
            .get_opt(&other)
            .await?
            .is_none()
    );
    let kept = environments.get(&first).await?;
    assert!(
        kept.metadata.deletion_timestamp.is_none(),
        "a refused delete deleted"
    );
    assert_eq!(
        kept.spec.quota.cpu.as_ref().map(|q| q.as_str().to_owned()),
        Some("1".to_owned()),
        "a refused resize resized"
    );

    postgres.up()?;
    let back = Instant::now();
    eventually("the API answering 200 again", WAIT, || async {
        let answer = api.call(Method::GET, &envs_path, &staff, None).await?;
        Ok((answer.status == StatusCode::OK).then_some(()))
    })
    .await?;
    println!(
        "after the database came back: the API answered 200 in {:.1} s",
        back.elapsed().as_secs_f64()
    );
    let test = format!("{bureau}-test");
    let created = api.request(&staff, &bureau, "test").await?;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    api.wait_phase(&staff, &bureau, &test, "Ready").await?;
    assert_eq!(api.http.get("/readyz", None).await?.status, StatusCode::OK);

    // The log holds the calls that were answered, and none of the refused ones; its chain is
    // whole. (What the operator saw change in the cluster, `kubernetes:` principals, is left
    // aside: it records each new environment's tier.)
    let actions: Vec<String> = api
        .audit(&bureau)
        .await?
        .iter()
        .filter(|e| {
            !e["principal"]
                .as_str()
                .is_some_and(|p| p.starts_with("kubernetes:"))
        })
        .map(|e| {
            format!(
                "{} {}",
                e["action"].as_str().unwrap_or("?"),
                e["result"].as_str().unwrap_or("?")
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            "bureau.create 201 Created",
            "token.create 201 Created",
            "environment.create 201 Created",
            "environment.create 201 Created",
        ]
    );
    let verified = api
        .call(Method::GET, "/api/v1/audit/verify", &api.admin, None)
        .await?;
    assert_eq!(verified.body["intact"], true, "{verified:?}");

    api.delete_all(&client, &bureau, &[&first, &test]).await?;
    Api::<Bureau>::all(client)
        .delete(&bureau, &DeleteParams::default())
        .await?;
    assert!(
        api.process.stop(Duration::from_secs(60)).await?,
        "zhengyun api exited with an error"
    );
    operator.process.stop(Duration::from_secs(60)).await?;
    postgres.down()
}

/// The metering ledger of the operators of lease `lease`: one SQLite file, kept across kills.
fn ledger_url(lease: &str) -> String {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/faults");
    let _ = std::fs::create_dir_all(&dir);
    format!("sqlite://{}/ledger-{lease}.db?mode=rwc", dir.display())
}

/// Reads the ledger of `lease` once it is complete up to `end` and checks that, per environment,
/// resource and kind, no two intervals overlap (nothing counted twice) and the reserved ones
/// follow each other without a gap (nothing lost) — whatever the kills did.
async fn assert_ledger_tiles(
    lease: &str,
    from: i64,
    end: i64,
    environments: &BTreeMap<String, i64>,
) -> anyhow::Result<()> {
    use futures::TryStreamExt;
    use zhengyun_metering::{TimeRange, UsageInterval, UsageKind};
    let store = zhengyun_store::Store::connect(&ledger_url(lease)).await?;
    eventually(
        "the ledger complete up to the end of the kills",
        WAIT,
        || async {
            let at = store.checkpoint("usage").await?;
            Ok(at.filter(|c| c.as_second() >= end).map(|_| ()))
        },
    )
    .await?;
    let range = TimeRange::new(
        jiff::Timestamp::from_second(from)?,
        jiff::Timestamp::from_second(end)?,
    )?;
    let intervals: Vec<UsageInterval> = store.intervals_between(range).try_collect().await?;
    let mut series: BTreeMap<(String, String, UsageKind), Vec<(i64, i64)>> = BTreeMap::new();
    for i in intervals
        .iter()
        .filter(|i| environments.contains_key(i.environment()))
    {
        series
            .entry((
                i.environment().to_owned(),
                i.resource().to_string(),
                i.kind(),
            ))
            .or_default()
            .push((i.start().as_second(), i.end().as_second()));
    }
    let mut reserved = 0;
    for ((env, resource, kind), mut list) in series {
        list.sort_unstable();
        for pair in list.windows(2) {
            assert!(
                pair[0].1 <= pair[1].0,
                "{env} {resource} {kind:?}: overlap {pair:?}"
            );
            if kind == UsageKind::Reserved {
                assert_eq!(
                    pair[0].1, pair[1].0,
                    "{env} {resource} reserved: gap {pair:?}"
                );
            }
        }
        if kind == UsageKind::Reserved {
            reserved += 1;
            // Covered from admission to the end of the kills: nothing lost at either end.
            let (first, last) = (list[0], list[list.len() - 1]);
            assert!(
                first.0 <= environments[&env] && last.1 >= end,
                "{env} {resource} reserved covers {first:?}…{last:?}, not {}…{end}",
                environments[&env]
            );
        }
    }
    assert_eq!(
        reserved,
        environments.len() * 3,
        "every admitted environment has reserved CPU, memory and storage"
    );
    println!(
        "ledger: {} intervals, {reserved} reserved series tile time without gap or overlap",
        intervals.len()
    );
    anyhow::ensure!(
        reserved > 0,
        "the ledger holds no reserved usage for the environments"
    );
    store.close().await;
    Ok(())
}

/// An operator process of its own, for the tests that kill or freeze it.
fn operator(lease: &str, lease_seconds: u32, log_filter: Option<&str>) -> anyhow::Result<Process> {
    let mut envs = vec![
        (
            "ZHENGYUN_OPERATOR_ADDR",
            format!("127.0.0.1:{}", free_port()?),
        ),
        ("ZHENGYUN_LEASE_NAME", format!("faults-{lease}")),
        ("ZHENGYUN_DATABASE_URL", ledger_url(lease)),
        ("ZHENGYUN_METERING_PERIOD", "2".to_owned()),
        ("ZHENGYUN_METERING_LATENESS", "1".to_owned()),
        ("ZHENGYUN_LEASE_NAMESPACE", "default".to_owned()),
        ("ZHENGYUN_LEASE_SECONDS", lease_seconds.to_string()),
    ];
    if let Some(filter) = log_filter {
        envs.push(("ZHENGYUN_LOG", filter.to_owned()));
    }
    Process::start(
        &["operator", "--log-format", "json"],
        &envs,
        &format!("operator-{lease}"),
    )
}

fn bureau_object(code: &str, cpu: u32) -> anyhow::Result<Bureau> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "Bureau", "metadata": {"name": code},
        "spec": {"displayName": "海淀区城市管理委员会", "kind": "bureau",
                 "quota": {"cpu": cpu.to_string(), "memory": "64Gi", "storage": "100Gi"},
                 "adminGroups": [format!("{code}-admins")],
                 "viewerGroups": [format!("{code}-viewers")]}
    }))?)
}

fn environment_object(bureau: &str, name: &str, purpose: &str) -> anyhow::Result<Environment> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "Environment", "metadata": {"name": name},
        "spec": {"bureau": bureau, "purpose": purpose, "tier": "silver",
                 "quota": {"cpu": "1", "memory": "1Gi", "storage": "1Gi"}}
    }))?)
}

fn phase(env: &Environment) -> Option<EnvironmentPhase> {
    env.status.as_ref().and_then(|s| s.phase)
}

/// How far the environments named in `names` have got: 0 for nothing yet, 1 for admitted, 2
/// for decided (Ready or QuotaExceeded); and 2 for one that is gone.
async fn progress(envs: &Api<Environment>, names: &[String]) -> anyhow::Result<usize> {
    let listed: BTreeMap<String, Environment> = envs
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|e| (e.name_any(), e))
        .collect();
    Ok(names
        .iter()
        .map(|name| match listed.get(name).map(phase) {
            None => 2,
            Some(Some(EnvironmentPhase::Ready | EnvironmentPhase::QuotaExceeded)) => 2,
            Some(Some(EnvironmentPhase::Admitted)) => 1,
            Some(_) => 0,
        })
        .sum())
}

/// Kills the operator with SIGKILL once `names` have made `threshold` progress (or, for a
/// threshold of 0, at a random moment within 1.5 s), and starts another one at once.
async fn kill_at(
    operator: Process,
    threshold: usize,
    random: &mut Random,
    envs: &Api<Environment>,
    names: &[String],
    start: impl Fn() -> anyhow::Result<Process>,
) -> anyhow::Result<(Process, usize)> {
    if threshold == 0 {
        tokio::time::sleep(Duration::from_millis(random.below(1500))).await;
    } else {
        eventually(&format!("progress {threshold}"), WAIT, || async {
            Ok((progress(envs, names).await? >= threshold).then_some(()))
        })
        .await?;
    }
    operator.kill()?;
    let at = progress(envs, names).await?;
    Ok((start()?, at))
}

/// Waits until each of `expected` (name → Ready or not) is in that state: Ready, or
/// QuotaExceeded without a namespace.
async fn wait_decided(
    envs: &Api<Environment>,
    expected: &BTreeMap<String, bool>,
) -> anyhow::Result<()> {
    eventually("every environment decided as expected", WAIT, || async {
        let mut wrong = Vec::new();
        for (name, ready) in expected {
            let env = envs.get(name).await?;
            let want = if *ready {
                EnvironmentPhase::Ready
            } else {
                EnvironmentPhase::QuotaExceeded
            };
            if phase(&env) != Some(want) {
                wrong.push(format!("{name}: {:?}", phase(&env)));
            }
        }
        if wrong.is_empty() {
            Ok(Some(()))
        } else {
            anyhow::bail!("not yet as expected: {}", wrong.join(", "))
        }
    })
    .await
}

/// Everything an admitted environment becomes is in place; an exceeded one has no namespace.
async fn assert_materialised(
    client: &Client,
    bureau: &str,
    name: &str,
    ready: bool,
) -> anyhow::Result<()> {
    let namespace = Api::<Namespace>::all(client.clone()).get_opt(name).await?;
    if !ready {
        assert!(
            namespace.is_none(),
            "{name} exceeds its quota but has a namespace"
        );
        return Ok(());
    }
    let namespace =
        namespace.ok_or_else(|| anyhow::anyhow!("{name} is Ready without a namespace"))?;
    let labels = namespace.labels();
    assert_eq!(
        labels.get("zhengyun.io/bureau").map(String::as_str),
        Some(bureau)
    );
    assert_eq!(
        labels.get("zhengyun.io/environment").map(String::as_str),
        Some(name)
    );
    assert_eq!(
        labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted")
    );
    let quota = Api::<ResourceQuota>::namespaced(client.clone(), name)
        .get("zhengyun-quota")
        .await?;
    let hard = quota.spec.and_then(|s| s.hard).unwrap_or_default();
    assert_eq!(
        hard.get("requests.cpu").map(|q| q.0.as_str()),
        Some("1"),
        "{name}"
    );
    Api::<LimitRange>::namespaced(client.clone(), name)
        .get("zhengyun-defaults")
        .await?;
    let names_of =
        |items: Vec<String>| items.into_iter().collect::<std::collections::BTreeSet<_>>();
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), name)
        .list(&ListParams::default())
        .await?;
    assert_eq!(
        names_of(policies.items.iter().map(ResourceExt::name_any).collect()),
        names_of(
            [
                "zhengyun-allow-dns",
                "zhengyun-allow-ingress-controller",
                "zhengyun-allow-same-bureau",
                "zhengyun-default-deny"
            ]
            .map(String::from)
            .to_vec()
        ),
        "{name}"
    );
    let bindings = Api::<RoleBinding>::namespaced(client.clone(), name)
        .list(&ListParams::default())
        .await?;
    assert_eq!(
        names_of(bindings.items.iter().map(ResourceExt::name_any).collect()),
        names_of(
            ["zhengyun-admins", "zhengyun-viewers"]
                .map(String::from)
                .to_vec()
        ),
        "{name}"
    );
    Ok(())
}

/// No namespace labelled as an environment's is left without that environment.
async fn assert_no_orphans(client: &Client) -> anyhow::Result<()> {
    let envs: Api<Environment> = Api::all(client.clone());
    let namespaces = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default().labels("zhengyun.io/environment"))
        .await?;
    for namespace in namespaces {
        let name = namespace.labels()["zhengyun.io/environment"].clone();
        let env = envs.get_opt(&name).await?;
        assert!(
            env.is_some_and(|e| e.metadata.deletion_timestamp.is_none()),
            "namespace {} is left without its environment {name}",
            namespace.name_any()
        );
    }
    Ok(())
}

#[tokio::test]
#[ignore = "kills its operator: run with `make test-faults`"]
async fn an_operator_killed_at_random_moments_admits_exactly_the_right_ones_and_orphans_nothing()
-> anyhow::Result<()> {
    let (_cluster, client) = setup().await?;
    let mut random = Random::from_env("operator kills");
    let prefix = code("fa-kill");
    let lease = prefix.clone();
    let start = || operator(&lease, 3, None);
    let bureaus: Api<Bureau> = Api::all(client.clone());
    let envs: Api<Environment> = Api::all(client.clone());

    // Room for 4, 7 and 10 of ten environments each, all requested before any operator runs,
    // so admission order is creation order (then name) over all of them.
    let rooms = [("a", 4), ("b", 7), ("c", 10)];
    let mut expected = BTreeMap::new();
    let mut of_bureau = BTreeMap::new();
    for (suffix, room) in rooms {
        let bureau = format!("{prefix}{suffix}");
        bureaus
            .create(&PostParams::default(), &bureau_object(&bureau, room)?)
            .await?;
        for i in 0..10 {
            let name = format!("{bureau}-dev-{i:02}");
            envs.create(
                &PostParams::default(),
                &environment_object(&bureau, &name, "dev")?,
            )
            .await?;
            expected.insert(name.clone(), i < room);
            of_bureau.insert(name, bureau.clone());
        }
    }
    let names: Vec<String> = expected.keys().cloned().collect();

    let started = jiff::Timestamp::now().as_second();
    let mut thresholds: Vec<usize> = (0..4)
        .map(|_| random.below(2 * names.len() as u64) as usize)
        .collect();
    thresholds.sort_unstable();
    let mut running = start()?;
    for threshold in thresholds {
        let (next, at) = kill_at(running, threshold, &mut random, &envs, &names, start).await?;
        println!(
            "killed the operator at convergence progress {at} of {}",
            2 * names.len()
        );
        running = next;
    }
    wait_decided(&envs, &expected).await?;
    for (name, ready) in &expected {
        assert_materialised(&client, &of_bureau[name], name, *ready).await?;
    }
    for (suffix, room) in rooms {
        let code = format!("{prefix}{suffix}");
        eventually(&format!("{code} allocating {room} CPU"), WAIT, || async {
            let bureau = bureaus.get(&code).await?;
            let allocated = bureau.status.and_then(|s| s.allocated).and_then(|a| a.cpu);
            Ok((allocated.map(|q| q.as_str().to_owned()) == Some(room.to_string())).then_some(()))
        })
        .await?;
    }

    // The ledger across the four kills: per environment and resource, reserved usage tiles
    // time with no gap and no overlap, and nothing consumed is counted twice.
    let mut admitted = BTreeMap::new();
    for name in expected.iter().filter(|(_, ready)| **ready).map(|(n, _)| n) {
        let env = envs.get(name).await?;
        let at = env
            .status
            .and_then(|s| s.admitted_at)
            .map(|t| t.0.as_second());
        admitted.insert(name.clone(), at.unwrap_or(i64::MAX));
    }
    let end = jiff::Timestamp::now().as_second();
    assert_ledger_tiles(&lease, started, end, &admitted).await?;

    // Delete every other environment (admitted and exceeded alike), killing the operator
    // twice meanwhile: the deleted ones vanish with their namespaces, freed room goes to the
    // next in order, and no namespace is orphaned.
    let (deleted, kept): (Vec<String>, Vec<String>) = names
        .iter()
        .cloned()
        .partition(|n| n.ends_with(['0', '2', '4', '6', '8']));
    for name in &deleted {
        envs.delete(name, &DeleteParams::default()).await?;
    }
    let mut thresholds: Vec<usize> = (0..2)
        .map(|_| random.below(deleted.len() as u64) as usize)
        .collect();
    thresholds.sort_unstable();
    for threshold in thresholds {
        if threshold > 0 {
            eventually("deletions under way", WAIT, || async {
                let mut gone = 0;
                for name in &deleted {
                    gone += usize::from(envs.get_opt(name).await?.is_none());
                }
                Ok((gone >= threshold).then_some(()))
            })
            .await?;
        } else {
            tokio::time::sleep(Duration::from_millis(random.below(1500))).await;
        }
        running.kill()?;
        println!(
            "killed the operator with deletions under way (threshold {threshold} of {})",
            deleted.len()
        );
        running = start()?;
    }
    gone(
        &client,
        &deleted.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await?;
    let mut left = BTreeMap::new();
    for (suffix, room) in rooms {
        let bureau = format!("{prefix}{suffix}");
        let theirs: Vec<&String> = kept.iter().filter(|n| of_bureau[*n] == bureau).collect();
        for (i, name) in theirs.into_iter().enumerate() {
            left.insert(name.clone(), i < room as usize);
        }
    }
    wait_decided(&envs, &left).await?;
    for (name, ready) in &left {
        assert_materialised(&client, &of_bureau[name], name, *ready).await?;
    }
    assert_no_orphans(&client).await?;

    for name in &kept {
        envs.delete(name, &DeleteParams::default()).await?;
    }
    gone(
        &client,
        &kept.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await?;
    assert_no_orphans(&client).await?;
    for (suffix, _) in rooms {
        bureaus
            .delete(&format!("{prefix}{suffix}"), &DeleteParams::default())
            .await?;
    }
    running.stop(Duration::from_secs(60)).await?;
    Ok(())
}

/// How many watches of `operator` have ended with 410 Gone (from kube-runtime's debug log).
fn expired_watches(operator: &Process) -> anyhow::Result<usize> {
    Ok(operator
        .log()?
        .lines()
        .filter(|l| l.contains("code: 410"))
        .count())
}

#[tokio::test]
#[ignore = "stops and restarts its cluster: run with `make test-faults`"]
async fn watches_that_expire_while_the_operator_is_away_are_relisted_and_nothing_is_missed()
-> anyhow::Result<()> {
    let (cluster, client) = setup().await?;
    let bureau = code("fa-gone");
    // A Lease that outlasts the pause, so the operator keeps leading and resumes its watches
    // rather than starting new ones; the watcher's debug log names each expired watch.
    let mut operator = operator(&bureau, 120, Some("info,kube_runtime::watcher=debug"))?;
    let bureaus: Api<Bureau> = Api::all(client.clone());
    let envs: Api<Environment> = Api::all(client.clone());
    bureaus
        .create(&PostParams::default(), &bureau_object(&bureau, 8)?)
        .await?;
    let (kept, removed, added) = (
        format!("{bureau}-dev"),
        format!("{bureau}-test"),
        format!("{bureau}-staging"),
    );
    for (name, purpose) in [(&kept, "dev"), (&removed, "test")] {
        envs.create(
            &PostParams::default(),
            &environment_object(&bureau, name, purpose)?,
        )
        .await?;
    }
    let both = BTreeMap::from([(kept.clone(), true), (removed.clone(), true)]);
    wait_decided(&envs, &both).await?;

    // While the operator is frozen: a new environment, a deleted one, and a deleted quota;
    // then the API server restarts, so every watch the operator holds is cut and the new API
    // server's watch caches begin after the resource versions the operator last saw.
    operator.freeze()?;
    envs.create(
        &PostParams::default(),
        &environment_object(&bureau, &added, "staging")?,
    )
    .await?;
    envs.delete(&removed, &DeleteParams::default()).await?;
    Api::<ResourceQuota>::namespaced(client.clone(), &kept)
        .delete("zhengyun-quota", &DeleteParams::default())
        .await?;
    cluster.down()?;
    cluster.up()?;
    let expired_before = expired_watches(&operator)?;
    operator.thaw()?;
    let thawed = Instant::now();

    wait_decided(&envs, &BTreeMap::from([(added.clone(), true)])).await?;
    gone(&client, &[&removed]).await?;
    eventually("the deleted quota restored", WAIT, || async {
        let quota = Api::<ResourceQuota>::namespaced(client.clone(), &kept)
            .get_opt("zhengyun-quota")
            .await?;
        Ok(quota.map(drop))
    })
    .await?;
    println!(
        "after the thaw: everything missed was reconciled in {:.1} s",
        thawed.elapsed().as_secs_f64()
    );
    assert_materialised(&client, &bureau, &kept, true).await?;
    assert_materialised(&client, &bureau, &added, true).await?;
    assert!(operator.running()?, "the operator exited");
    let expired = expired_watches(&operator)? - expired_before;
    println!("watches that expired with 410 Gone after the thaw: {expired}");
    assert!(
        expired > 0,
        "no watch expired after the thaw, so this test proved nothing; see {}",
        operator.log_path().display()
    );

    for name in [&kept, &added] {
        envs.delete(name, &DeleteParams::default()).await?;
    }
    gone(&client, &[&kept, &added]).await?;
    bureaus.delete(&bureau, &DeleteParams::default()).await?;
    assert!(
        operator.stop(Duration::from_secs(60)).await?,
        "the operator exited with an error"
    );
    Ok(())
}

/// The second of the ledger's metering checkpoint, if any.
async fn checkpoint_of(store: &zhengyun_store::Store) -> anyhow::Result<Option<i64>> {
    Ok(store.checkpoint("usage").await?.map(|t| t.as_second()))
}

#[tokio::test]
#[ignore = "stops and restarts its cluster: run with `make test-faults`"]
async fn metering_writes_nothing_past_a_stopped_api_server_and_records_the_outage_as_a_gap()
-> anyhow::Result<()> {
    let (cluster, _client) = setup().await?;
    let lease = code("fa-meter");
    // A Lease of 15 s: the operator keeps leading for about 10 s after the API server stops,
    // long enough for windows of 2 s to close on the last known state if they were allowed to.
    let operator = operator(&lease, 15, None)?;
    let store = zhengyun_store::Store::connect(&ledger_url(&lease)).await?;
    let started = jiff::Timestamp::now().as_second();
    eventually("metering under way", WAIT, || async {
        Ok(checkpoint_of(&store).await?.filter(|c| *c > started + 4))
    })
    .await?;

    cluster.down()?;
    // The API server is gone once `down` returns (it shuts down gracefully before that).
    let down = jiff::Timestamp::now().as_second();
    tokio::time::sleep(OUTAGE).await;
    let during = checkpoint_of(&store).await?.unwrap_or_default();
    // The watches broke when the API server went away: no window past that closes, and the
    // sampler that loses the Lease (about 10 s later) writes no last window.
    assert!(
        during <= down + 2,
        "the checkpoint moved to {during}, {} s past the API server's stop",
        during - down
    );
    // The API server is certainly away until `up` is called; `up` returns only after the
    // cluster is ready, by which time the sampler may already have resumed.
    let restarting = jiff::Timestamp::now().as_second();
    cluster.up()?;
    let up = jiff::Timestamp::now().as_second();
    eventually("metering resumed after the outage", WAIT, || async {
        Ok(checkpoint_of(&store).await?.filter(|c| *c > up + 4))
    })
    .await?;

    // The time the sampler did not watch is a gap in the ledger, counted from the state found
    // afterwards (shorter than --metering-max-stale).
    let range = zhengyun_metering::TimeRange::new(
        jiff::Timestamp::from_second(down - 60)?,
        jiff::Timestamp::from_second(up + 60)?,
    )?;
    let gaps = store.gaps_between("usage", range).await?;
    let (first, last) = (
        gaps.iter().map(|g| g.from.as_second()).min(),
        gaps.iter().map(|g| g.to.as_second()).max(),
    );
    assert!(
        first.is_some_and(|f| f <= during) && last.is_some_and(|l| l >= restarting),
        "gaps {gaps:?} do not cover {during}..{restarting}"
    );
    assert!(
        gaps.iter()
            .all(|g| g.kind == zhengyun_metering::GapKind::Reconstructed),
        "{gaps:?}"
    );
    store.close().await;
    assert!(
        operator.stop(Duration::from_secs(60)).await?,
        "the operator exited with an error"
    );
    Ok(())
}

/// The sum of the samples of `family` (e.g. `zhengyun_cost_month_to_date`) in `metrics`, and
/// how many there are.
fn samples(metrics: &str, family: &str) -> (f64, usize) {
    let prefix = format!("{family}{{");
    let values: Vec<f64> = metrics
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.trim().parse().ok())
        .collect();
    (values.iter().sum(), values.len())
}

#[tokio::test]
#[ignore = "stops and restarts its cluster: run with `make test-faults`"]
async fn a_former_leader_exports_no_finance_figures_after_a_handover() -> anyhow::Result<()> {
    let (_cluster, client) = setup().await?;
    let lease = code("fa-handover");
    zhengyun_e2e::tenants::apply_sample_rate_card(&client).await?;
    Api::<Bureau>::all(client.clone())
        .create(&PostParams::default(), &bureau_object(&lease, 8)?)
        .await?;
    let env = format!("{lease}-dev");
    Api::<Environment>::all(client.clone())
        .create(
            &PostParams::default(),
            &environment_object(&lease, &env, "dev")?,
        )
        .await?;
    let replica = |name: &str, port: u16| {
        Process::start(
            &["operator"],
            &[
                ("ZHENGYUN_OPERATOR_ADDR", format!("127.0.0.1:{port}")),
                ("ZHENGYUN_LEASE_NAME", format!("faults-{lease}")),
                ("ZHENGYUN_LEASE_NAMESPACE", "default".to_owned()),
                ("ZHENGYUN_LEASE_SECONDS", "3".to_owned()),
                ("ZHENGYUN_DATABASE_URL", ledger_url(&lease)),
                ("ZHENGYUN_METERING_PERIOD", "2".to_owned()),
                ("ZHENGYUN_METERING_LATENESS", "1".to_owned()),
            ],
            &format!("operator-{lease}-{name}"),
        )
    };
    let (first_port, second_port) = (free_port()?, free_port()?);
    let first = replica("first", first_port)?;
    let cost = "zhengyun_cost_month_to_date";
    eventually("the first replica exports costs", WAIT, || async {
        let metrics = zhengyun_e2e::operator::metrics_at(first_port).await?;
        Ok((samples(&metrics, cost).1 > 0).then_some(()))
    })
    .await?;
    let second = replica("second", second_port)?;

    // The first replica stalls past its Lease; the second takes over; the first comes back
    // without a restart and finds it no longer leads.
    first.freeze()?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    first.thaw()?;
    eventually(
        "the second replica leads and exports costs",
        WAIT,
        || async {
            let metrics = zhengyun_e2e::operator::metrics_at(second_port).await?;
            let leads = metrics.lines().any(|l| l == "zhengyun_operator_leader 1");
            Ok((leads && samples(&metrics, cost).1 > 0).then_some(()))
        },
    )
    .await?;
    eventually(
        "the former leader drops its finance figures",
        WAIT,
        || async {
            let metrics = zhengyun_e2e::operator::metrics_at(first_port).await?;
            let follows = metrics.lines().any(|l| l == "zhengyun_operator_leader 0");
            let exported = [cost, "zhengyun_cost_total", "zhengyun_quota_hard"]
                .iter()
                .map(|family| samples(&metrics, family).1)
                .sum::<usize>();
            Ok((follows && exported == 0).then_some(()))
        },
    )
    .await?;
    // A sum over both replicas, as the dashboard takes it, is the leader's figure alone.
    let leader = samples(
        &zhengyun_e2e::operator::metrics_at(second_port).await?,
        cost,
    );
    let former = samples(&zhengyun_e2e::operator::metrics_at(first_port).await?, cost);
    assert_eq!(former.1, 0, "the former leader still exports {cost}");
    assert!(leader.1 > 0);

    Api::<Environment>::all(client.clone())
        .delete(&env, &DeleteParams::default())
        .await?;
    gone(&client, &[&env]).await?;
    Api::<Bureau>::all(client)
        .delete(&lease, &DeleteParams::default())
        .await?;
    assert!(
        second.stop(Duration::from_secs(60)).await?,
        "the leader exited with an error"
    );
    first.kill()?;
    Ok(())
}
