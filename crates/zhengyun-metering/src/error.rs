//! The one error type of the crate. Every variant says what was being attempted, and
//! [`Error::metric_label`] gives a stable, low-cardinality label for failure metrics.

use jiff::{Timestamp, civil::Date};
use rust_decimal::Decimal;

/// `Result` with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a metering computation was refused. Nothing in this crate panics on bad input: every
/// invalid interval, rate card or overflow comes back as one of these.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configured time zone is not in the bundled IANA database.
    #[error("unable to load time zone {name:?}")]
    UnknownTimeZone {
        /// The name that was looked up.
        name: String,
        /// What jiff reported.
        #[source]
        source: jiff::Error,
    },

    /// Civil-time arithmetic failed (a date outside jiff's supported range, year −9999..=9999).
    #[error("unable to compute {what}")]
    Time {
        /// What was being computed.
        what: &'static str,
        /// What jiff reported.
        #[source]
        source: jiff::Error,
    },

    /// A month was not written `YYYY-MM`.
    #[error("unable to parse month {value:?}: expected YYYY-MM, e.g. 2026-11")]
    InvalidMonth {
        /// The rejected text.
        value: String,
    },

    /// Ledger timestamps are whole seconds; see the crate documentation.
    #[error("unable to meter at {at}: timestamps must be whole seconds")]
    SubSecondTimestamp {
        /// The offending timestamp.
        at: Timestamp,
    },

    /// An interval must last at least one second (`start < end`).
    #[error("unable to meter the interval [{start}, {end}): it must end after it starts")]
    EmptyInterval {
        /// Start of the rejected interval.
        start: Timestamp,
        /// End of the rejected interval.
        end: Timestamp,
    },

    /// A bureau or environment name is not valid, or the environment is not the bureau's.
    #[error("unable to meter {field} {value:?}: {reason}")]
    InvalidName {
        /// `bureau` or `environment`.
        field: &'static str,
        /// The rejected name.
        value: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A price in a rate card is not a usable decimal.
    #[error(
        "unable to read the {tier} {resource} price {value:?} of the rate card effective {effective_from}: {reason}"
    )]
    InvalidPrice {
        /// `effectiveFrom` of the rate card.
        effective_from: String,
        /// Tier of the price.
        tier: String,
        /// Resource of the price.
        resource: String,
        /// The rejected text or value.
        value: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A price handed to [`crate::rates::cost`] that no rate card could hold.
    #[error("unable to price at {price}: prices are non-negative with at most 6 decimals")]
    UnsupportedPrice {
        /// The rejected price.
        price: Decimal,
    },

    /// A rate card's `effectiveFrom` is not a calendar date.
    #[error("unable to read rate card effectiveFrom {value:?}: expected YYYY-MM-DD")]
    InvalidEffectiveFrom {
        /// The rejected text.
        value: String,
    },

    /// A rate schedule must hold at least one rate card.
    #[error("unable to build a rate schedule without rate cards")]
    NoRateCards,

    /// Two rate cards take effect on the same day, so neither can be chosen.
    #[error("unable to build a rate schedule: two rate cards take effect on {date}")]
    DuplicateEffectiveFrom {
        /// The shared `effectiveFrom`.
        date: Date,
    },

    /// All rate cards of a schedule must use one currency, or totals would add yuan to euros.
    #[error("unable to build a rate schedule mixing currencies {expected} and {found}")]
    MixedCurrencies {
        /// Currency of the first rate card.
        expected: String,
        /// The different currency found.
        found: String,
    },

    /// Usage was recorded at a time before the first rate card took effect.
    #[error("unable to price usage at {at}: no rate card is effective yet")]
    NoRateCardEffective {
        /// First instant of the unpriced usage.
        at: Timestamp,
    },

    /// A value outside what the exact arithmetic can represent; refused rather than rounded.
    #[error("unable to compute {what}: the value is out of range")]
    Overflow {
        /// What was being computed.
        what: &'static str,
    },

    /// A conservation check failed: a total is not the sum of its parts.
    #[error("conservation violated for {scope}: expected {expected}, found {found}")]
    Unbalanced {
        /// Which total, e.g. `bureau wjw: cpu reserved unit-seconds`.
        scope: String,
        /// The sum of the parts.
        expected: String,
        /// The recorded total.
        found: String,
    },

    /// Two statements that must describe the same month, zone and currency do not.
    #[error("unable to compare statements: {reason}")]
    IncomparableStatements {
        /// What differs.
        reason: String,
    },

    /// A budget or month-to-date amount that cannot be compared: negative budget, or digits
    /// below the fen.
    #[error("unable to evaluate budget status for {value}: {reason}")]
    InvalidBudget {
        /// The rejected amount.
        value: Decimal,
        /// Why it was rejected.
        reason: String,
    },
}

impl Error {
    /// A stable label for metrics, one per kind of failure (never containing names or values).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::UnknownTimeZone { .. } => "unknown_time_zone",
            Error::Time { .. } => "time",
            Error::InvalidMonth { .. } => "invalid_month",
            Error::SubSecondTimestamp { .. } => "sub_second_timestamp",
            Error::EmptyInterval { .. } => "empty_interval",
            Error::InvalidName { .. } => "invalid_name",
            Error::InvalidPrice { .. } => "invalid_price",
            Error::UnsupportedPrice { .. } => "unsupported_price",
            Error::InvalidEffectiveFrom { .. } => "invalid_effective_from",
            Error::NoRateCards => "no_rate_cards",
            Error::DuplicateEffectiveFrom { .. } => "duplicate_effective_from",
            Error::MixedCurrencies { .. } => "mixed_currencies",
            Error::NoRateCardEffective { .. } => "no_rate_card_effective",
            Error::Overflow { .. } => "overflow",
            Error::Unbalanced { .. } => "unbalanced",
            Error::IncomparableStatements { .. } => "incomparable_statements",
            Error::InvalidBudget { .. } => "invalid_budget",
        }
    }
}
