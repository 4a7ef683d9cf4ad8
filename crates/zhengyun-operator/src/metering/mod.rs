//! Metering: the sampler that turns what the cluster runs into usage intervals in the ledger,
//! and the finance metrics derived from the ledger.
//!
//! # What is measured
//!
//! For every environment, per resource (CPU in millicores, memory and storage in bytes, GPUs):
//!
//! - **reserved**: its admitted quota, from admission (`status.admittedAt`) until the quota is
//!   released or the environment is gone;
//! - **consumed**: the requests of its pods while bound to a node and not terminal (from their
//!   `PodScheduled` transition), plus the requested storage of its volume claims while `Bound`
//!   (from their creation).
//!
//! See [`observe`] for the exact rules per object.
//!
//! # How: events, windows and the ledger
//!
//! The sampler watches Environments, Pods and PersistentVolumeClaims and keeps, in a
//! [`tracker::Tracker`], one constant segment per source. A new source starts at the second its
//! object records; a change or an end is counted from the second the sampler sees it. Time is cut
//! into windows of `--metering-period` seconds (default 3600: the hourly close), aligned on the
//! Unix epoch, which in a whole-hour time zone such as Asia/Shanghai are the local hours. A
//! window `[s, e)` is closed once the clock reaches `e + --metering-lateness` (default 120 s), so
//! that watch events of its last seconds arrive first; its intervals (split at local hours and
//! months) and the checkpoint `e` are then written in **one transaction**. Each interval's
//! idempotency key names its environment, resource, kind and bounds, so a replay stores nothing
//! twice, and a window is never written twice because the checkpoint moves with it.
//!
//! # Boundary error
//!
//! Starts are exact to the second (taken from the objects). A change or an end is counted until
//! the sampler sees it: late by the watch's delivery delay, normally well under a second, at
//! most the lateness window for the window to be right; anything later is counted in the next
//! window. So for each change of a source the ledger can be off by `amount × delay`, with the
//! delay bounded by the watch latency, plus up to one second from truncating to whole seconds.
//!
//! # Restarts and downtime
//!
//! Only the leader replica samples. On start it reads the checkpoint (stream
//! [`STREAM`]): everything before it is in the ledger and is never written again. Time from the
//! checkpoint until the sampler has its first complete view of the cluster (the initial lists of
//! all three watches) is counted **from the state found at start-up**: every environment, pod
//! and claim found counting is counted from its own start or the checkpoint, whichever is
//! later. Objects that ended while the operator was down — and changes during the outage — are
//! not seen: an environment deleted during an outage is not charged for the outage, and an
//! amount changed during it is charged at the new amount from the checkpoint. If the checkpoint
//! is older than `--metering-max-backfill` (default 7 days) only that much is filled and the
//! rest is logged as not metered. Without any checkpoint (a new ledger), metering starts at
//! start-up.
//!
//! The window open at a crash is lost from memory and is re-counted by the rule above, so a
//! restart leaves no gap and no double count for everything that kept running.

pub mod health;
pub mod observe;
pub mod tracker;

pub mod budgets;
mod metrics;
mod sampler;
mod settle;
mod time;

pub use metrics::MeteringMetrics;
pub use sampler::Ending;
pub(crate) use sampler::run;

/// Name of the sampler's checkpoint stream in the ledger.
pub const STREAM: &str = "usage";

/// Settings of metering (flags of `zhengyun operator`).
#[derive(Clone, Debug, clap::Args)]
pub struct MeteringConfig {
    /// Length of a metering window in seconds: how often usage is closed into the ledger.
    #[arg(long, env = "ZHENGYUN_METERING_PERIOD", default_value_t = 3600,
          value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub metering_period: u32,
    /// Seconds to wait after a window ends before closing it, for late watch events.
    #[arg(long, env = "ZHENGYUN_METERING_LATENESS", default_value_t = 120,
          value_parser = clap::value_parser!(u32).range(0..=86_400))]
    pub metering_lateness: u32,
    /// Longest outage, in seconds, filled from the state found at start-up.
    #[arg(
        long,
        env = "ZHENGYUN_METERING_MAX_BACKFILL",
        default_value_t = 604_800
    )]
    pub metering_max_backfill: u32,
    /// Longest watch failure, in seconds, filled from the state found when the watch lists
    /// again; a longer one is recorded as an unmetered gap instead.
    #[arg(long, env = "ZHENGYUN_METERING_MAX_STALE", default_value_t = 600)]
    pub metering_max_stale: u32,
    #[command(flatten)]
    pub zone: TimeZoneArgs,
    #[command(flatten)]
    pub clock: ClockArgs,
}

/// The time zone of billing months (flag of `zhengyun operator`, `api` and `dev`; the API and
/// the operator must be given the same one).
#[derive(Clone, Debug, clap::Args)]
pub struct TimeZoneArgs {
    /// IANA time zone of billing months and hours: of metering, statements and usage.
    #[arg(long, env = "ZHENGYUN_TIME_ZONE", default_value = zhengyun_metering::DEFAULT_TIME_ZONE)]
    pub time_zone: String,
}

/// The clock of metering and billing (flag of `zhengyun operator`, `api` and `dev`).
#[derive(Clone, Copy, Debug, Default, clap::Args)]
pub struct ClockArgs {
    /// For checking date logic only: metering and statements run this many seconds ahead of
    /// the system clock (negative: behind), e.g. to see a month end now. Admission, leases,
    /// conditions and the audit log keep the system clock. Leave at 0 in production.
    #[arg(long, env = "ZHENGYUN_CLOCK_OFFSET", default_value_t = 0,
          allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(-CLOCK_OFFSET_LIMIT..=CLOCK_OFFSET_LIMIT))]
    pub clock_offset: i64,
}

/// The largest clock offset accepted: a hundred years of seconds.
const CLOCK_OFFSET_LIMIT: i64 = 100 * 366 * 86_400;

impl ClockArgs {
    /// The clock these settings describe.
    pub fn clock(&self) -> zhengyun_metering::Clock {
        zhengyun_metering::Clock::offset_by_seconds(self.clock_offset)
    }
}
