//! Ledger ingest and read-back rate, for `make bench`:
//!
//! ```text
//! cargo run --release -p zhengyun-store --example ingest -- [INTERVALS] [BATCH] [DATABASE_URL]
//! ```
//!
//! Writes INTERVALS (default 500,000) hourly intervals of 1,000 bureaus × 3 environments × 2
//! kinds in batches of BATCH (default 10,000), the way the sampler's hourly close does, then
//! replays them all (every one a duplicate), streams them back, and sums them per meter. The
//! default database is a new SQLite file in the temporary directory, removed afterwards. The
//! ingest rate is also written to `target/bench/ledger-ingest-<backend>.json`.

use std::time::Instant;

use futures::TryStreamExt;
use jiff::SignedDuration;
use zhengyun_metering::TimeRange;
use zhengyun_store::Store;

mod intervals;

use intervals::{Failure, generate, start};

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map_or(Ok(500_000), |a| a.parse())?;
    let batch: usize = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let temp = std::env::temp_dir().join(format!("zhengyun-ingest-{}.db", std::process::id()));
    let url = args
        .next()
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", temp.display()));

    let intervals = generate(count)?;
    let store = Store::connect(&url).await?;
    println!(
        "backend: {}; {count} intervals in batches of {batch}",
        store.backend().as_str()
    );

    let started = Instant::now();
    let mut new = 0;
    for chunk in intervals.chunks(batch) {
        new += store.record_intervals(chunk).await?.new;
    }
    let rate = report("ingest (new)", new, started);
    let figures = serde_json::json!({
        "backend": store.backend().as_str(),
        "intervals": new,
        "batch": batch,
        "ingestIntervalsPerSecond": rate,
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join(format!("ledger-ingest-{}.json", store.backend().as_str())),
        serde_json::to_string_pretty(&figures)? + "\n",
    )?;

    let started = Instant::now();
    let mut duplicates = 0;
    for chunk in intervals.chunks(batch) {
        duplicates += store.record_intervals(chunk).await?.duplicates;
    }
    report("replay (all duplicates)", duplicates, started);

    let everything = TimeRange::new(start(), start() + SignedDuration::from_hours(24 * 365))?;
    let started = Instant::now();
    let streamed = store
        .intervals_between(everything)
        .try_fold(0u64, |n, _| async move { Ok(n + 1) })
        .await?;
    report("stream back", streamed, started);

    let started = Instant::now();
    let meters = store.usage_totals(everything, None).await?;
    println!(
        "{:<26} {:>9} meters in {:>7.3} s",
        "usage totals",
        meters.len(),
        started.elapsed().as_secs_f64()
    );

    store.close().await;
    if url.contains(&temp.display().to_string()) {
        for suffix in ["", "-wal", "-shm"] {
            let mut file = temp.clone().into_os_string();
            file.push(suffix);
            std::fs::remove_file(file).ok();
        }
    }
    Ok(())
}

/// Prints and returns the rate.
fn report(what: &str, n: u64, started: Instant) -> f64 {
    let seconds = started.elapsed().as_secs_f64();
    let rate = n as f64 / seconds;
    println!("{what:<26} {n:>9} intervals in {seconds:>7.3} s = {rate:>9.0} intervals/s");
    rate
}
