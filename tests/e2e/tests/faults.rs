//! Faults: the control plane stopped and started again under a running API and operator, the
//! database stopped under a running API, the operator killed with SIGKILL while it converges,
//! and watches that expire while the operator is away.
//!
//! These tests stop their cluster, so they run on a devcluster of their own, one at a time:
//! `make test-faults` (scripts/faults.sh). They are ignored by a plain `cargo test`.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use futures::future::join_all;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::DeleteParams;
use kube::{Api, Client};
use serde_json::{Value, json};
use zhengyun_e2e::faults::{Answer, Cluster, Http, Postgres, Process, free_port};
use zhengyun_e2e::operator::install_crds;
use zhengyun_e2e::{eventually, unique_name};
use zhengyun_model::crd::{Bureau, Environment};

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

/// A fresh bureau code: short enough for `<code>-staging`.
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

    cluster.down()?;
    let stopped = Instant::now();
    let envs_path = format!("/api/v1/bureaus/{bureau}/environments");
    let first_path = format!("{envs_path}/{first}");
    let mut refused_writes = 0;
    let mut rounds = 0;
    while rounds < 3 || stopped.elapsed() < OUTAGE {
        rounds += 1;
        let healthz = dev.http.get("/healthz", None).await?;
        assert_eq!(healthz.status, StatusCode::OK, "/healthz while away");
        assert_eq!(
            plain_get(dev.operator_port, "/healthz").await?,
            StatusCode::OK,
            "the operator's /healthz while away"
        );
        assert_unavailable(&dev.http.get("/readyz", None).await?, "/readyz");
        for path in ["/api/v1/bureaus", envs_path.as_str(), first_path.as_str()] {
            let answer = dev.call(Method::GET, path, &admin, None).await?;
            assert_unavailable(&answer, &format!("GET {path}"));
        }
        let writes = [
            (
                Method::POST,
                envs_path.as_str(),
                Some(json!({"purpose": "test", "quota": {"cpu": "1", "memory": "1Gi"}})),
            ),
            (
                Method::PATCH,
                first_path.as_str(),
                Some(json!({"quota": {"cpu": "2", "memory": "1Gi"}})),
            ),
            (Method::DELETE, first_path.as_str(), None),
        ];
        for (method, path, body) in writes {
            let answer = dev
                .call(method.clone(), path, &admin, body.as_ref())
                .await?;
            assert_unavailable(&answer, &format!("{method} {path}"));
            refused_writes += 1;
        }
        // What lives only in the database still answers.
        let tokens = dev
            .call(Method::GET, "/api/v1/tokens", &admin, None)
            .await?;
        assert_eq!(
            tokens.status,
            StatusCode::OK,
            "tokens while the cluster is away"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!(
        "cluster away for {:.1} s: {rounds} rounds of probes, {refused_writes} writes refused with 503",
        stopped.elapsed().as_secs_f64()
    );

    let restart = Instant::now();
    cluster.up()?;
    let cluster_ready = restart.elapsed();
    eventually("the API answering 200 again", WAIT, || async {
        let answer = dev.call(Method::GET, &envs_path, &admin, None).await?;
        Ok((answer.status == StatusCode::OK).then_some(()))
    })
    .await?;
    let api_recovery = restart.elapsed();
    let staging = format!("{bureau}-staging");
    let created = dev.request(&admin, &bureau, "staging").await?;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    dev.wait_phase(&admin, &bureau, &staging, "Ready").await?;
    let operator_recovery = restart.elapsed();
    let lost_lease = dev.process.log()?.contains("lost the leader Lease");
    println!(
        "from the cluster's restart: devcluster ready in {:.1} s, the API answered 200 at \
         {:.1} s, a new environment was Ready at {:.1} s (the operator lost its Lease while the \
         cluster was away: {lost_lease})",
        cluster_ready.as_secs_f64(),
        api_recovery.as_secs_f64(),
        operator_recovery.as_secs_f64()
    );
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

    dev.delete_all(&client, &bureau, &[&first, &staging])
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
    // whole.
    let actions: Vec<String> = api
        .audit(&bureau)
        .await?
        .iter()
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
