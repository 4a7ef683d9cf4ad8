//! Helpers for the end-to-end tests: a client for the devcluster named by `KUBECONFIG`, unique
//! names so tests share one cluster without colliding, and polling with a deadline.

pub mod api;
pub mod bench;
pub mod browser;
pub mod faults;
pub mod gateway_api;
pub mod idp;
pub mod operator;
pub mod process;
pub mod tenants;

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use kube::Client;
use zhengyun_metering::{Calendar, Clock, Month};

/// The variable that moves the clock of the binaries under test (`--clock-offset`); the tests
/// read it too, so that they and the processes they start share one clock.
pub const CLOCK_OFFSET_VAR: &str = "ZHENGYUN_CLOCK_OFFSET";

/// The platform's clock as the processes under test read it: the system clock, moved by
/// `ZHENGYUN_CLOCK_OFFSET` seconds when that is set (as the date checks of `make test` do).
pub fn clock() -> Clock {
    let offset = std::env::var(CLOCK_OFFSET_VAR)
        .ok()
        .and_then(|text| text.trim().parse::<i64>().ok())
        .unwrap_or(0);
    Clock::offset_by_seconds(offset)
}

/// The running month by [`clock`], in the default calendar (Asia/Shanghai).
pub fn running_month() -> Month {
    Calendar::default().month_of(clock().now())
}

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

/// Runs `call` with the running month and returns its result, running it again if the month
/// changed meanwhile (a run whose clock is set near a month's end must not see a month
/// boundary pass between choosing the month and asking about it).
pub async fn in_running_month<T, F, Fut>(mut call: F) -> anyhow::Result<T>
where
    F: FnMut(Month) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    loop {
        let month = running_month();
        let result = call(month).await?;
        if running_month() == month {
            return Ok(result);
        }
    }
}
