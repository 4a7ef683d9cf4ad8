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

use jiff::{SignedDuration, Timestamp};
use zhengyun_metering::{Meter, UsageInterval, UsageKind};
use zhengyun_model::{names::Tier, quantity::Resource};
use zhengyun_store::Store;

type Failure = Box<dyn std::error::Error>;

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

fn start() -> Timestamp {
    Timestamp::from_second(1_793_462_400).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn generate(count: usize) -> Result<Vec<UsageInterval>, Failure> {
    let mut meters = Vec::new();
    for bureau in 0..1_000 {
        let code = format!("b{bureau:04}");
        for purpose in ["dev", "test", "prod"] {
            for kind in UsageKind::ALL {
                meters.push(Meter::new(
                    code.clone(),
                    format!("{code}-{purpose}"),
                    Resource::Cpu,
                    kind,
                    Tier::Silver,
                )?);
            }
        }
    }
    let mut intervals = Vec::with_capacity(count);
    for (n, meter) in (0..count).zip(meters.iter().cycle()) {
        let hour = i64::try_from(n / meters.len())?;
        let from = start() + SignedDuration::from_hours(hour);
        let amount = 500 + u64::try_from(n % 7_000)?;
        // As the sampler writes them: with the uid of the Environment object.
        let uid = format!(
            "{:08x}-5f3a-4c2e-9b1d-{:012x}",
            meter.environment().len(),
            meter
                .environment()
                .bytes()
                .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
                & 0xffff_ffff_ffff
        );
        intervals.push(
            UsageInterval::new(
                meter.clone(),
                from,
                from + SignedDuration::from_hours(1),
                amount,
            )?
            .with_environment_uid(uid),
        );
    }
    Ok(intervals)
}
