//! Helpers for the end-to-end tests: a client for the devcluster named by `KUBECONFIG`, unique
//! names so tests share one cluster without colliding, and polling with a deadline.

pub mod api;
pub mod operator;

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use kube::Client;

/// A client for the devcluster (or whatever cluster `KUBECONFIG` names).
pub async fn client() -> anyhow::Result<Client> {
    Client::try_default().await.context(
        "unable to build a Kubernetes client; run the end-to-end tests through `make test` \
         (or start a cluster with `make cluster` and export KUBECONFIG=.devcluster/kubeconfig)",
    )
}

/// A DNS-1123 name unique to this test process and call: `<prefix>-<pid/time suffix>-<n>`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() % 1_000_000)
        .unwrap_or(0);
    format!("{prefix}-{:x}{t:x}-{n}", std::process::id() % 4096)
}

/// Polls `check` until it returns `Some`, or fails after `timeout` naming `what`.
///
/// The timeout only bounds a hung test; assertions are on outcomes, never on elapsed time.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if tokio::time::Instant::now() >= deadline {
            match last_error {
                Some(e) => bail!("timed out waiting for {what}; last error: {e:#}"),
                None => bail!("timed out waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
