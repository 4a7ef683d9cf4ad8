//! Audit writes at concurrent writers, for `make bench`:
//!
//! ```text
//! cargo run --release -p zhengyun-store --example audit -- [WRITERS] [ROUNDS] [DATABASE_URL]
//! ```
//!
//! Each of WRITERS (default 50) tasks makes ROUNDS (default 20) changes the way the API
//! records one: an audit intent committed before the change, then the outcome appended and the
//! intent settled in one transaction. Prints the p50, p99 and max of one such pair, first with
//! one writer alone (the baseline) and then with all of them at once, and writes the figures to
//! `target/bench/audit-<backend>.json`. The default database is a new SQLite file in the
//! temporary directory, removed afterwards.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use zhengyun_store::{AuditEntry, IN_PROGRESS, Role, Store};

type Failure = Box<dyn std::error::Error>;

/// The audit entry writer `w` makes in round `r`.
fn entry(w: usize, r: usize) -> AuditEntry {
    AuditEntry {
        at: Timestamp::now(),
        principal: format!("token-{w}"),
        principal_label: Some(format!("token token-{w} (bureau-admin bench{w})")),
        role: Some(Role::BureauAdmin),
        bureau: Some(format!("bench{w}")),
        action: "environment.create".to_owned(),
        object: format!("environments/bench{w}-dev-{r}"),
        quota_before: None,
        quota_after: Some(serde_json::json!({"cpu": "1", "memory": "1Gi"})),
        result: IN_PROGRESS.to_owned(),
        request_id: format!("req-{w}-{r}"),
    }
}

/// One change's audit: the intent, then the outcome settling it. Returns how long it took.
async fn record(store: &Store, w: usize, r: usize) -> Result<Duration, zhengyun_store::Error> {
    let started = Instant::now();
    let mut attempt = entry(w, r);
    let intent = store.open_audit_intent(&attempt).await?;
    attempt.result = "ok".to_owned();
    store.append_audit_settling(&attempt, &intent).await?;
    Ok(started.elapsed())
}

/// Runs `writers` tasks of `rounds` records each at once; returns every latency, sorted.
async fn measure(store: &Store, writers: usize, rounds: usize) -> Result<Vec<Duration>, Failure> {
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut took = Vec::with_capacity(rounds);
                for r in 0..rounds {
                    took.push(record(&store, w, r).await?);
                }
                Ok::<_, zhengyun_store::Error>(took)
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    all.sort();
    Ok(all)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p / 100.0).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn summary(sorted: &[Duration]) -> serde_json::Value {
    serde_json::json!({
        "count": sorted.len(),
        "p50_ms": percentile(sorted, 50.0),
        "p99_ms": percentile(sorted, 99.0),
        "max_ms": percentile(sorted, 100.0),
    })
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let writers: usize = args.next().map_or(Ok(50), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(20), |a| a.parse())?;
    let temp = std::env::temp_dir().join(format!("zhengyun-audit-{}.db", std::process::id()));
    let url = args
        .next()
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", temp.display()));
    let store = Store::connect(&url).await?;
    let backend = store.backend().as_str();
    // Warm the pool's connections, untimed.
    measure(&store, writers.min(8), 2).await?;
    let alone = measure(&store, 1, rounds * 5).await?;
    let together = measure(&store, writers, rounds).await?;
    println!("audit intent + outcome ({backend})          p50      p99      max (ms)");
    for (what, sample) in [("one writer", &alone), ("concurrent writers", &together)] {
        let label = if what == "one writer" {
            what.to_owned()
        } else {
            format!("{writers} {what}")
        };
        println!(
            "  {label:<30} {:>8.2} {:>8.2} {:>8.2}",
            percentile(sample, 50.0),
            percentile(sample, 99.0),
            percentile(sample, 100.0)
        );
    }
    let ratio = percentile(&together, 99.0) / percentile(&alone, 99.0);
    println!("  p99 at {writers} writers / p99 alone: {ratio:.1}");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/bench");
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        format!("{dir}/audit-{backend}.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "backend": backend, "writers": writers, "rounds": rounds,
            "alone": summary(&alone), "together": summary(&together), "p99_ratio": ratio,
        }))?,
    )?;
    store.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", temp.display()));
    }
    Ok(())
}
