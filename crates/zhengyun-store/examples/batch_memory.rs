//! Resident memory while the ledger records batches of varying sizes, as a metering window's
//! close does:
//!
//! ```text
//! cargo run --release -p zhengyun-store --example batch_memory -- [BATCHES] [DATABASE_URL]
//! ```
//!
//! Records BATCHES (default 150) batches of 1,000 to 1,999 intervals each, so that nearly every
//! batch ends in a chunk of a length not seen before, and prints the process's resident memory
//! every ten batches and its growth over the run. The default database is a new SQLite file in
//! the temporary directory, removed afterwards.

use zhengyun_store::Store;

mod intervals;

use intervals::{Failure, generate};

/// The process's resident memory in KiB, from `/proc/self/status`.
fn resident_kib() -> Result<u64, Failure> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .ok_or("no VmRSS in /proc/self/status")?;
    Ok(line.trim().trim_end_matches("kB").trim().parse()?)
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let batches: usize = args.next().map_or(Ok(150), |a| a.parse())?;
    let temp = std::env::temp_dir().join(format!("zhengyun-batches-{}.db", std::process::id()));
    let url = args
        .next()
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", temp.display()));
    let sizes: Vec<usize> = (0..batches).map(|n| 1_000 + (n * 37) % 1_000).collect();
    let intervals = generate(sizes.iter().sum())?;
    let store = Store::connect(&url).await?;
    println!(
        "backend: {}; {batches} batches of 1,000 to 1,999 intervals",
        store.backend().as_str()
    );
    // One batch first, so that the connections and their full-sized statements exist.
    let mut at = sizes[0];
    store.record_intervals(&intervals[..at]).await?;
    let before = resident_kib()?;
    println!(
        "after the first batch: {:.1} MiB resident",
        before as f64 / 1024.0
    );
    for (n, size) in sizes.iter().enumerate().skip(1) {
        store.record_intervals(&intervals[at..at + size]).await?;
        at += size;
        if n % 10 == 9 {
            println!(
                "after {:>3} batches: {:.1} MiB",
                n + 1,
                resident_kib()? as f64 / 1024.0
            );
        }
    }
    let after = resident_kib()?;
    println!(
        "grew by {:.1} MiB over {} batches",
        after.saturating_sub(before) as f64 / 1024.0,
        batches - 1
    );
    drop(store);
    let _ = std::fs::remove_file(&temp);
    Ok(())
}
