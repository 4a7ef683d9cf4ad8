//! What the benchmark binaries share: the operator under test, started as a deployment would
//! run it (its own Lease, a SQLite ledger in a file), and the wait for it to lead.

use std::time::Duration;

use anyhow::Context as _;
use kube::{Api, Client};

use crate::eventually;

/// Where the operators of this benchmark keep their ledgers: SQLite files, as a deployment
/// would, so that the ledger is not counted in the operator's memory. Removed after each size.
pub fn ledgers() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("zhengyun-bench-{}", std::process::id()))
}

/// Starts the operator under test, on a new ledger. Its log goes to `BENCH_OPERATOR_LOG` (a
/// file) when set, otherwise nowhere.
pub fn start_operator(
    bin: &str,
    metrics_port: u16,
    extra: &[&str],
) -> anyhow::Result<std::process::Child> {
    std::fs::create_dir_all(ledgers())?;
    let ledger = ledgers().join(format!("{metrics_port}.db"));
    let database_url = format!("sqlite://{}?mode=rwc", ledger.display());
    let log = match std::env::var_os("BENCH_OPERATOR_LOG") {
        Some(path) => std::process::Stdio::from(
            std::fs::File::create(&path).with_context(|| format!("create {path:?}"))?,
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
