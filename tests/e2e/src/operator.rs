//! The operator under test: CRDs installed once, one `zhengyun operator` process shared by the
//! tests of a test binary, which a test may kill (SIGKILL) and start again. The process holds a
//! pipe to its standard input and stops by itself when the test binary exits.

use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};

use crate::eventually;

struct Running {
    child: Child,
    _stdin: Option<ChildStdin>,
    metrics_port: u16,
}

static OPERATOR: tokio::sync::Mutex<Option<Running>> = tokio::sync::Mutex::const_new(None);

/// Flags added to every `zhengyun operator` this test binary starts.
static EXTRA_ARGS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Starts every later operator of this test binary with `args` too (e.g. a short
/// `--metering-period`). Call before [`ensure_operator`].
pub fn use_operator_args(args: &[&str]) {
    if let Ok(mut extra) = EXTRA_ARGS.lock() {
        *extra = args.iter().map(|a| (*a).to_owned()).collect();
    }
}

/// The metering ledger of this test binary's operators: a SQLite file under `target/e2e/`,
/// new for each run of the binary and kept across operator restarts.
pub fn ledger_url() -> String {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let path = PATH.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/e2e");
        let _ = std::fs::create_dir_all(&dir);
        let binary = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "e2e".to_owned());
        dir.join(format!("ledger-{binary}-{}.db", std::process::id()))
    });
    format!("sqlite://{}?mode=rwc", path.display())
}

fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("ZHENGYUN_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("debug/zhengyun")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Installs (server-side applies) the Zhengyun CRDs and the tenant admission policies, and waits
/// until the CRDs are served.
pub async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in zhengyun_model::crds() {
        api.patch(
            &crd.name_any(),
            &PatchParams::apply("zhengyun-e2e").force(),
            &Patch::Apply(&crd),
        )
        .await
        .with_context(|| format!("apply CRD {}", crd.name_any()))?;
    }
    install_policies(client).await?;
    for crd in zhengyun_model::crds() {
        established(client, &crd.name_any()).await?;
    }
    rate_card_policy_ready(client).await
}

/// Waits until the CRD `name` is established: its kind is served.
pub async fn established(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    eventually(
        &format!("CRD {name} established"),
        Duration::from_secs(60),
        || async {
            let established = api
                .get(name)
                .await?
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            Ok(established.then_some(()))
        },
    )
    .await
}

/// Waits until a server-side dry run of creating `probe` is no longer refused for a policy's
/// params the API server cannot find yet.
async fn params_readable<K>(what: &str, api: &Api<K>, probe: &K) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let dry_run = kube::api::PostParams {
        dry_run: true,
        ..kube::api::PostParams::default()
    };
    eventually(what, Duration::from_secs(60), || async {
        match api.create(&dry_run, probe).await {
            Err(kube::Error::Api(status)) if status.message.contains("paramKind") => Ok(None),
            _ => Ok(Some(())),
        }
    })
    .await
}

/// Waits until the API server's rate-card policy can read its params: right after the policy
/// or the RateCard CRD is applied, it refuses every RateCard write with "failed to find resource
/// referenced by paramKind" until its own view of the API catches up. A server-side dry run of
/// a far-future card tells (any other answer means the policy is working).
async fn rate_card_policy_ready(client: &Client) -> anyhow::Result<()> {
    let cards: Api<zhengyun_model::crd::RateCard> = Api::all(client.clone());
    let prices = serde_json::json!({"cpuCoreHour": "1", "memoryGibHour": "0.1",
                                    "storageGibHour": "0.01", "gpuHour": "10"});
    let card: zhengyun_model::crd::RateCard = serde_json::from_value(serde_json::json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "RateCard",
        "metadata": {"name": "e2e-policy-probe"},
        "spec": {"currency": "CNY", "effectiveFrom": "2999-12-31",
                 "prices": {"gold": prices, "silver": prices, "bronze": prices}},
    }))?;
    params_readable("the rate-card policy reading its params", &cards, &card).await
}

/// Installs (server-side applies) the tenant ClusterRoles and the tenant admission policies with
/// their bindings, as the chart does.
pub async fn install_policies(client: &Client) -> anyhow::Result<()> {
    let params = PatchParams::apply("zhengyun-e2e").force();
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(client.clone());
    for role in zhengyun_operator::cluster::tenant_roles()? {
        roles
            .patch(&role.name_any(), &params, &Patch::Apply(&role))
            .await
            .with_context(|| format!("apply tenant role {}", role.name_any()))?;
    }
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    for policy in zhengyun_model::admission_policies() {
        policies
            .patch(&policy.name_any(), &params, &Patch::Apply(&policy))
            .await
            .with_context(|| format!("apply admission policy {}", policy.name_any()))?;
    }
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(client.clone());
    for binding in zhengyun_model::admission_policy_bindings() {
        bindings
            .patch(&binding.name_any(), &params, &Patch::Apply(&binding))
            .await
            .with_context(|| format!("apply admission policy binding {}", binding.name_any()))?;
    }
    Ok(())
}

fn spawn() -> anyhow::Result<Running> {
    let bin = binary();
    let metrics_port = free_port()?;
    let log_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/e2e-operator.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let mut child = Command::new(&bin)
        .args([
            "operator",
            "--stop-on-stdin-eof",
            "--lease-name",
            "zhengyun-e2e",
            "--lease-seconds",
            "3",
        ])
        .arg("--operator-addr")
        .arg(format!("127.0.0.1:{metrics_port}"))
        .arg("--database-url")
        .arg(ledger_url())
        .args(EXTRA_ARGS.lock().map(|a| a.clone()).unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| {
            format!(
                "start {} (build it with `cargo build -p zhengyun`)",
                bin.display()
            )
        })?;
    let stdin = child.stdin.take();
    Ok(Running {
        child,
        _stdin: stdin,
        metrics_port,
    })
}

/// Makes sure CRDs are installed and an operator is running.
pub async fn ensure_operator() -> anyhow::Result<()> {
    let mut guard = OPERATOR.lock().await;
    if let Some(running) = guard.as_mut()
        && running.child.try_wait()?.is_none()
    {
        return Ok(());
    }
    install_crds(&crate::client().await?).await?;
    *guard = Some(spawn()?);
    Ok(())
}

/// Kills the operator with SIGKILL (no chance to clean up) and starts a new one.
pub async fn kill_and_restart_operator() -> anyhow::Result<()> {
    let mut guard = OPERATOR.lock().await;
    if let Some(mut running) = guard.take() {
        running.child.kill()?;
        running.child.wait()?;
    }
    *guard = Some(spawn()?);
    Ok(())
}

/// Kills the operator with SIGKILL and leaves it down: [`ensure_operator`] starts another.
pub async fn kill_operator() -> anyhow::Result<()> {
    let mut guard = OPERATOR.lock().await;
    if let Some(mut running) = guard.take() {
        running.child.kill()?;
        running.child.wait()?;
    }
    Ok(())
}

/// The operator's current /metrics text.
pub async fn operator_metrics() -> anyhow::Result<String> {
    let port = OPERATOR
        .lock()
        .await
        .as_ref()
        .map(|r| r.metrics_port)
        .context("no operator running")?;
    metrics_at(port).await
}

/// The /metrics text (with the HTTP response head) of a process listening on `port`. A
/// refused connection, or one cut before the answer ended, is tried again for up to 30 s: the
/// operator a test shares may be restarting (another test of the binary killed it), not
/// listening yet or killed while it answered.
pub async fn metrics_at(port: u16) -> anyhow::Result<String> {
    use std::io::ErrorKind::{BrokenPipe, ConnectionRefused, ConnectionReset, UnexpectedEof};
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match scrape_once(port).await {
            Ok(body) => return Ok(body),
            Err(e)
                if matches!(
                    e.kind(),
                    ConnectionRefused | ConnectionReset | BrokenPipe | UnexpectedEof
                ) && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// One GET of /metrics on `port`, read to its end.
async fn scrape_once(port: u16) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    if body.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(body)
}

/// The value of counter `name` with `labels` (e.g. `controller="environment"`) in `metrics`.
pub fn counter(metrics: &str, name: &str, labels: &str) -> u64 {
    let prefix = format!("{name}{{{labels}}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
