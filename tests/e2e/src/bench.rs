//! What the benchmark binaries share: the operator under test, started as a deployment would
//! run it (its own Lease, a SQLite ledger in a file), and the wait for it to lead; the API
//! under test, a `zhengyun api` process.

use std::time::Duration;

use anyhow::Context as _;
use kube::{Api, Client};

use crate::eventually;

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

/// A `zhengyun api` process under test, stopped when dropped.
#[derive(Debug)]
pub struct ApiServer {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Its bootstrap platform admin's token.
    pub admin: String,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `zhengyun api` (`ZHENGYUN_BIN`, default `target/release/zhengyun`) on a free port
/// with a SQLite database of its own and a bootstrap admin token. Its warnings and errors go to
/// `target/bench/<name>-server.log`, so that a failed run can be read.
pub fn start_api(name: &str) -> anyhow::Result<ApiServer> {
    let bin = std::env::var("ZHENGYUN_BIN").unwrap_or_else(|_| "target/release/zhengyun".into());
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let db = std::env::temp_dir().join(format!("{}.db", crate::unique_name(name)));
    // The API refuses bootstrap tokens shorter than 32 characters; a unique name alone can be
    // short, depending on the process id.
    let admin = format!(
        "{name}-admin-{}-0123456789abcdef",
        crate::unique_name("token")
    );
    std::fs::create_dir_all("target/bench")?;
    let log_path = format!("target/bench/{name}-server.log");
    let log = std::fs::File::create(&log_path).with_context(|| format!("create {log_path}"))?;
    let child = std::process::Command::new(&bin)
        .args(["api", "--log-format", "json"])
        .env("ZHENGYUN_API_ADDR", format!("127.0.0.1:{port}"))
        .env(
            "ZHENGYUN_DATABASE_URL",
            format!("sqlite://{}?mode=rwc", db.display()),
        )
        .env("ZHENGYUN_BOOTSTRAP_TOKEN", &admin)
        .env("ZHENGYUN_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {bin}"))?;
    Ok(ApiServer {
        child,
        url: format!("http://127.0.0.1:{port}"),
        admin,
    })
}
