//! Zhengyun metering: ledger maths, rate cards and statements. Pure: no kube, no HTTP, no I/O
//! (reading the [`Clock`] aside).
//!
//! - [`usage`]: [`UsageInterval`]s (a constant amount of one resource, reserved or consumed by
//!   one environment, over `[start, end)`), their integral in unit-seconds, idempotency keys, and
//!   exact splitting at hour and month boundaries.
//! - [`clock`]: the platform's [`Clock`], the one source of "now" for date-sensitive logic.
//! - [`closing`]: when a month may be closed (ended by the clock, covered by the ledger, its
//!   gaps waived).
//! - [`gaps`]: spans the ledger does not measure as they happened, and their waivers.
//! - [`calendar`]: the platform time zone (default Asia/Shanghai), calendar [`Month`]s, hour
//!   boundaries and half-open [`TimeRange`]s.
//! - [`rates`]: [`RateCard`]s and the [`RateSchedule`] choosing the card in force; the exact
//!   conversion of unit-seconds to money ([`rates::cost`]).
//! - [`statement`]: monthly [`Statement`]s with lines, totals per environment, bureau and
//!   platform, and conservation checks.
//! - [`settlement`]: borrowed capacity settled per window and resource: borrowers charged the
//!   burst price, lenders credited by largest remainder, the platform keeping the rest.
//! - [`budget`]: month-to-date spending against a monthly budget (ok / warning / exceeded).
//! - [`proration`]: a month's share of the budget by its length, and the month-end forecast.
//! - [`adjustment`]: signed correction lines for closed months, and the amount payable.
//! - [`status`]: whether a statement is provisional (open month) or closed.
//!
//! # Quantities and time
//!
//! Amounts are `u64` in base units (millicores, bytes, counts). Instants are **whole seconds**:
//! constructors refuse a timestamp with a fractional second rather than round it, so the sampler
//! decides explicitly how it truncates observations. Usage is `amount × seconds` as a `u128`
//! ("unit-seconds": millicore-seconds, byte-seconds…), which cannot overflow for any `u64`
//! amount over any time jiff can represent. Splitting an interval anywhere conserves
//! unit-seconds exactly, because the pieces are whole-second ranges of the same amount.
//!
//! # Money: exactness and rounding
//!
//! A statement line's amount is the exact rational number
//!
//! ```text
//! unit_seconds × price_per_unit_hour / (base_units_per_unit × 3600)
//! ```
//!
//! (1000 millicores per core, 2^30 bytes per GiB, 1 per GPU or object), **rounded once to the fen
//! (0.01) by the rate card's rule**: half up (四舍五入, the default: 0.005 → 0.01, 0.015 → 0.02,
//! 0.025 → 0.03) or half to even ("banker's rounding", which statement lines stored before the
//! rule was a setting used: 0.005 → 0.00, 0.015 → 0.02, 0.025 → 0.02). Each line records its rule. No float is involved at any point and no
//! intermediate value is rounded or truncated: the product is formed in 256-bit integer
//! arithmetic, divided once, and the remainder decides the rounding. Prices are
//! `rust_decimal::Decimal` with at most six decimals, as the `RateCard` CRD allows. If a rounded
//! amount would not fit in a `Decimal` (about 7.9 × 10^26 CNY), the computation fails with
//! [`Error::Overflow`]; it never returns an approximate number.
//!
//! Totals (per environment, bureau and platform) are sums of rounded line amounts, so each total
//! is exactly what its lines add up to on paper. This means a bureau total may differ by a few
//! fen from pricing the bureau's unit-seconds in one go; that is intended: what is billed is the
//! lines.
//!
//! Quantities shown in unit-hours (core-hours, GiB-hours) are rounded half to even to six
//! decimals for reading only; money is always computed from unit-seconds.
//!
//! # Conservation
//!
//! [`Statement::check_conservation`] verifies, to the unit-second and to the fen, that every line
//! is priced by the rule above, Σ lines = each environment, Σ environments = each bureau, and
//! Σ bureaus = the platform. [`Statement::check_against_usage`] recounts the raw intervals over
//! the month independently of rate periods. [`adjustment::check_adjusted`] verifies
//! closed + adjustments = recomputed.

pub mod adjustment;
pub mod availability;
pub mod budget;
pub mod calendar;
pub mod clock;
pub mod closing;
pub mod daily;
pub mod efficiency;
pub mod error;
pub mod gaps;
pub mod proration;
pub mod rates;
pub mod rightsizing;
pub mod settlement;
pub mod statement;
pub mod status;
pub mod usage;

mod serde_as;
mod wide;

#[cfg(test)]
mod test_support;

pub use adjustment::{
    AdjustmentLine, AdjustmentReason, Payable, adjustments, at_closed_prices, check_adjusted,
    payable,
};
pub use budget::{BudgetLevel, BudgetStatus, budget_status};
pub use calendar::{Calendar, DEFAULT_TIME_ZONE, Month, TimeRange};
pub use clock::Clock;
pub use closing::{NotClosable, check_gaps, closable};
pub use error::{Error, Result};
pub use gaps::{Gap, GapKind, Waiver, month_gaps};
pub use proration::{forecast_month_end, month_budget};
pub use rates::{
    DEFAULT_RESERVATION_SHARE, PriceUnit, RateCard, RatePeriod, RateSchedule, Rounding, cost,
    cost_rounded, unit_hours,
};
pub use statement::{
    BureauTotal, EnvironmentTotal, LineKey, Statement, StatementBuilder, StatementLine, Totals,
    UsageTotal,
};
pub use status::StatementStatus;
pub use usage::{IdempotencyKey, Meter, UsageInterval, UsageKind};
