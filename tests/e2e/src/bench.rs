//! What the benchmark binaries share: the operator under test, started as a deployment would
//! run it (its own Lease, a SQLite ledger in a file), and the wait for it to lead; the API
//! under test, a `zhengyun api` process.

use std::time::Duration;

use anyhow::Context as _;
use kube::{Api, Client};

use crate::eventually;
use crate::process::{Launch, ServerProcess};

/// Where the operators of this benchmark keep their ledgers: SQLite files, as a deployment
/// would, so that the ledger is not counted in the operator's memory. Removed after each size.
pub fn ledgers() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("zhengyun-bench-{}", std::process::id()))
}

/// The SQLite ledger of the operator first started with `metrics_port`, in [`ledgers`].
pub fn ledger_of(metrics_port: u16) -> std::path::PathBuf {
    ledgers().join(format!("{metrics_port}.db"))
}

/// Starts the operator under test on the ledger of its port ([`ledger_of`]), new unless an
/// operator ran on that port before. Its log is appended to `BENCH_OPERATOR_LOG` (a file) when
/// set, otherwise goes nowhere.
pub fn start_operator(
    bin: &str,
    metrics_port: u16,
    extra: &[&str],
) -> anyhow::Result<std::process::Child> {
    start_operator_on(bin, metrics_port, &ledger_of(metrics_port), extra)
}

/// [`start_operator`] on the ledger `ledger`: a restart keeps the ledger it had.
pub fn start_operator_on(
    bin: &str,
    metrics_port: u16,
    ledger: &std::path::Path,
    extra: &[&str],
) -> anyhow::Result<std::process::Child> {
    std::fs::create_dir_all(ledgers())?;
    let database_url = format!("sqlite://{}?mode=rwc", ledger.display());
    let log = match std::env::var_os("BENCH_OPERATOR_LOG") {
        Some(path) => std::process::Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("open {path:?}"))?,
        ),
        None => std::process::Stdio::null(),
    };
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
            &database_url,
        ])
        .args(extra)
        .stdin(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .with_context(|| format!("start {bin}"))
}

/// Waits until the benchmark's operator holds its Lease, so start-up is not timed.
pub async fn wait_for_leader(client: &Client) -> anyhow::Result<()> {
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "kube-system");
    eventually("the operator to lead", Duration::from_secs(120), || async {
        let lease = leases.get_opt("zhengyun-bench").await?;
        Ok(lease.and_then(|l| l.spec?.holder_identity).map(|_| ()))
    })
    .await
}

/// Starts `zhengyun api` (`ZHENGYUN_BIN`, default `target/release/zhengyun`) as the tests start
/// theirs ([`ServerProcess::launch`]: a port the system picks, a bootstrap admin token), on
/// `database_url` or a new SQLite file. Only its warnings, errors and start-up lines are logged,
/// to `target/bench/<name>-server.log`, so that a failed run can be read without a log line per
/// request weighing on what is measured. It stops when dropped (its stdin closes).
pub fn start_api(name: &str, database_url: Option<String>) -> anyhow::Result<ServerProcess> {
    let bin = std::env::var("ZHENGYUN_BIN").unwrap_or_else(|_| "target/release/zhengyun".into());
    std::fs::create_dir_all("target/bench")?;
    ServerProcess::launch(&Launch {
        log_filter: Some("warn,zhengyun_api=info,zhengyun_api::middleware=warn"),
        log_file: Some(format!("target/bench/{name}-server.log").into()),
        database_url,
        ..Launch::new(bin.into(), &["api"])
    })
}

/// Waits until the API at `url` answers `/readyz` with 200: its database and the cluster answer
/// and its watch cache has synced, which listening alone does not say.
pub async fn wait_ready(url: &str) -> anyhow::Result<()> {
    use http_body_util::Full;
    use hyper_util::client::legacy::Client as HttpClient;
    use hyper_util::rt::TokioExecutor;
    let http: HttpClient<_, Full<bytes::Bytes>> =
        HttpClient::builder(TokioExecutor::new()).build_http();
    let readyz: http::Uri = format!("{url}/readyz").parse()?;
    eventually("the API to be ready", Duration::from_secs(120), || {
        let (http, readyz) = (http.clone(), readyz.clone());
        async move {
            let ready = http
                .get(readyz)
                .await
                .is_ok_and(|answer| answer.status() == http::StatusCode::OK);
            Ok(ready.then_some(()))
        }
    })
    .await
}

/// CPU seconds (user and system) spent so far by a process and everything it started.
pub fn cpu_seconds(pid: u32) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    // (pid, parent, user + system ticks) of every process, from /proc/<pid>/stat.
    let procs: Vec<(u32, u32, u64)> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let parent = fields.get(1)?.parse().ok()?;
            let used: u64 =
                fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            Some((p, parent, used))
        })
        .collect();
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(procs.iter().filter(|p| p.1 == parent).map(|p| p.0));
        i += 1;
    }
    procs
        .iter()
        .filter(|p| tree.contains(&p.0))
        .map(|p| p.2)
        .sum::<u64>() as f64
        / ticks
}
