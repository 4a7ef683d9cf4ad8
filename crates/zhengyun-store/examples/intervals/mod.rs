//! The hourly usage intervals the ledger examples write: 1,000 bureaus × 3 environments × 2
//! kinds, hour after hour, as the sampler's hourly close writes them.

use jiff::{SignedDuration, Timestamp};
use zhengyun_metering::{Meter, UsageInterval, UsageKind};
use zhengyun_model::{names::Tier, quantity::Resource};

/// What an example's `main` returns on failure.
pub type Failure = Box<dyn std::error::Error>;

/// The first hour of the intervals.
pub fn start() -> Timestamp {
    Timestamp::from_second(1_793_462_400).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// `count` intervals: hour after hour, each hour one interval per meter.
pub fn generate(count: usize) -> Result<Vec<UsageInterval>, Failure> {
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
