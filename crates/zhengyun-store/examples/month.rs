//! A month of hourly ledger data and its statement, for `make bench`:
//!
//! ```text
//! cargo run --release -p zhengyun-store --example month -- [BUREAUS] [DATABASE_URL]
//! ```
//!
//! Records November 2026 (Asia/Shanghai) for BUREAUS (default 1,000) bureaus × 3 environments ×
//! CPU and memory × reserved and consumed, one interval per meter per hour, one transaction per
//! hour as the sampler's hourly close writes them: 8.64 million intervals for 1,000 bureaus.
//! Then computes the month's statement (every bureau, environment and line, priced by a rate
//! change on the 15th, budgets flagged) three times, each on a newly opened store so that no
//! sum is kept from the last, and checks its conservation. Then reads one environment's
//! intervals of the month three times, as right-sizing reads its last 30 days.
//!
//! Prints the ingest rate, the statement times and the environment's read times, and writes them to
//! `target/bench/ledger-month-<backend>.json`. The default database is a new SQLite file in the temporary
//! directory, removed afterwards.

use std::collections::BTreeMap;
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use rust_decimal::Decimal;
use zhengyun_metering::{Calendar, Meter, Month, RateCard, RateSchedule, UsageInterval, UsageKind};
use zhengyun_model::{names::Tier, quantity::Resource};
use zhengyun_store::Store;

type Failure = Box<dyn std::error::Error>;

const PURPOSES: [&str; 3] = ["dev", "test", "prod"];
const GIB: u64 = 1 << 30;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let bureaus: usize = args.next().map_or(Ok(1_000), |a| a.parse())?;
    let temp = std::env::temp_dir().join(format!("zhengyun-month-{}.db", std::process::id()));
    let url = args
        .next()
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", temp.display()));
    let calendar = Calendar::default();
    let month = Month::new(2026, 11)?;
    let range = calendar.month_range(month)?;
    let meters = meters(bureaus)?;
    let hours = range.seconds() / 3_600;
    let store = Store::connect(&url).await?;
    let backend = store.backend().as_str();
    println!(
        "backend: {backend}; {bureaus} bureaus × {} environments, {} meters × {hours} hours",
        PURPOSES.len(),
        meters.len()
    );

    let started = Instant::now();
    let mut written = 0u64;
    for hour in 0..i64::try_from(hours)? {
        let from = range.start() + SignedDuration::from_hours(hour);
        let batch = hourly(&meters, from, hour)?;
        written += store.record_intervals(&batch).await?.new;
        if hour % 120 == 119 {
            report_ingest(written, started);
        }
    }
    let ingest_seconds = started.elapsed().as_secs_f64();
    let rate = written as f64 / ingest_seconds;
    println!("ingest: {written} intervals in {ingest_seconds:.1} s = {rate:.0} intervals/s");

    let schedule = schedule()?;
    let budgets: BTreeMap<String, Decimal> = (0..bureaus)
        .map(|b| (code(b), Decimal::new(500_000, 2)))
        .collect();
    let mut times = Vec::new();
    let mut lines = 0;
    for _ in 0..3 {
        // A store of its own each time, as a new process opens it: a store keeps the sums it
        // read until the ledger changes, and the figure is what reading and pricing cost.
        let reader = Store::connect(&url).await?;
        let started = Instant::now();
        let statement = reader
            .month_statement(month, &calendar, &schedule, &budgets)
            .await?;
        times.push(started.elapsed().as_secs_f64());
        reader.close().await;
        statement.check_conservation()?;
        lines = statement.lines.len();
    }
    let best = fastest(&times);
    println!(
        "month statement: {lines} lines for {bureaus} bureaus in {:.3} s (first), {best:.3} s (best of {})",
        times[0],
        times.len()
    );

    // Right-sizing's read: one environment's intervals of the last 30 days, here the month.
    let environment = format!("{}-prod", code(bureaus / 2));
    let mut read_times = Vec::new();
    let mut read = 0;
    for _ in 0..3 {
        let started = Instant::now();
        read = store
            .environment_intervals(&environment, range)
            .await?
            .len();
        read_times.push(started.elapsed().as_secs_f64());
    }
    let read_best = fastest(&read_times);
    println!(
        "one environment's month ({environment}, as right-sizing reads it): {read} intervals in {:.1} ms (first), {:.1} ms (best of {})",
        read_times[0] * 1e3,
        read_best * 1e3,
        read_times.len()
    );

    let figures = serde_json::json!({
        "backend": backend,
        "bureaus": bureaus,
        "environments": bureaus * PURPOSES.len(),
        "intervals": written,
        "ingestSeconds": ingest_seconds,
        "ingestIntervalsPerSecond": rate,
        "statementLines": lines,
        "statementSecondsFirst": times[0],
        "statementSecondsBest": best,
        "environmentIntervals": read,
        "environmentReadSecondsFirst": read_times[0],
        "environmentReadSecondsBest": read_best,
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("ledger-month-{backend}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&figures)? + "\n")?;
    println!("figures written to {}", path.display());

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

/// The shortest of `times`.
fn fastest(times: &[f64]) -> f64 {
    times.iter().copied().fold(f64::INFINITY, f64::min)
}

fn code(bureau: usize) -> String {
    format!("b{bureau:04}")
}

/// CPU and memory, reserved and consumed, of every environment; tiers vary by purpose.
fn meters(bureaus: usize) -> Result<Vec<Meter>, Failure> {
    let mut meters = Vec::new();
    for b in 0..bureaus {
        let code = code(b);
        for (purpose, tier) in PURPOSES
            .into_iter()
            .zip([Tier::Bronze, Tier::Silver, Tier::Gold])
        {
            for resource in [Resource::Cpu, Resource::Memory] {
                for kind in UsageKind::ALL {
                    meters.push(Meter::new(
                        code.clone(),
                        format!("{code}-{purpose}"),
                        resource,
                        kind,
                        tier,
                    )?);
                }
            }
        }
    }
    Ok(meters)
}

/// One hour of every meter: reserved constant, consumed varying by the hour.
fn hourly(meters: &[Meter], from: Timestamp, hour: i64) -> Result<Vec<UsageInterval>, Failure> {
    let to = from + SignedDuration::from_hours(1);
    let wobble = u64::try_from(hour % 24)?;
    meters
        .iter()
        .enumerate()
        .map(|(i, meter)| {
            let base = match meter.resource() {
                Resource::Cpu => 4_000,
                _ => 8 * GIB,
            };
            let amount = match meter.kind() {
                UsageKind::Reserved => base,
                UsageKind::Consumed | UsageKind::Burst => {
                    base / 4 + wobble * 37 + u64::try_from(i % 101)?
                }
            };
            Ok(UsageInterval::new(meter.clone(), from, to, amount)?)
        })
        .collect()
}

fn schedule() -> Result<RateSchedule, Failure> {
    let card = |date: &str, cpu: &str, memory: &str| -> Result<RateCard, Failure> {
        let mut card = RateCard::new(date.parse()?, "CNY");
        for tier in Tier::ALL {
            card = card
                .with_price(*tier, Resource::Cpu, Decimal::from_str_exact(cpu)?)?
                .with_price(*tier, Resource::Memory, Decimal::from_str_exact(memory)?)?;
        }
        Ok(card)
    };
    Ok(RateSchedule::new([
        card("2026-01-01", "0.08", "0.0100")?,
        card("2026-11-15", "0.10", "0.0120")?,
    ])?)
}

fn report_ingest(written: u64, started: Instant) {
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "  … {written} intervals in {seconds:.1} s = {:.0} intervals/s",
        written as f64 / seconds
    );
}
