//! Kubernetes quantities as exact integers in base units, and quotas built from them.
//!
//! CPU is counted in millicores, memory and storage in bytes, everything else (GPUs, pods,
//! load balancers, volume claims, services) in whole units. Values are `u64` but never above
//! [`MAX_BASE_UNITS`] (2^63−1): Kubernetes cannot represent more, and it keeps every amount
//! storable in a signed 64-bit SQL column. No floating point anywhere; see [`parse`] for how
//! values finer than the base unit are rounded.

mod language;
mod parse;
mod quota;
mod value;

pub use parse::{format_bytes, format_count, format_cpu, parse};
pub use quota::{ObservedQuota, Quota, Resource, ResourceAmounts, Shortfall};
pub use value::{
    QUANTITY_PATTERN, Quantity, written_bytes_schema, written_count_schema, written_cpu_schema,
};

/// Largest amount of any resource, in base units: `i64::MAX`, like Kubernetes' own limit.
pub const MAX_BASE_UNITS: u64 = i64::MAX as u64;

/// The base unit a quantity is converted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Thousandths of a CPU core.
    Millicores,
    /// Bytes of memory or storage.
    Bytes,
    /// Whole objects or devices; fractions are rejected.
    Count,
}

impl Unit {
    /// Power of ten between the written number and the unit (`2` cores = `2000` millicores).
    fn decimal_scale(self) -> i64 {
        match self {
            Unit::Millicores => 3,
            Unit::Bytes | Unit::Count => 0,
        }
    }

    /// Parses `text` into this unit; shorthand for [`parse`].
    pub fn parse(self, text: &str) -> Result<u64, QuantityError> {
        parse(text, self)
    }

    /// Renders `value` in the canonical form for this unit (`500m`, `128Gi`, `10`).
    pub fn format(self, value: u64) -> String {
        match self {
            Unit::Millicores => format_cpu(value),
            Unit::Bytes => format_bytes(value),
            Unit::Count => format_count(value),
        }
    }
}

/// Why a quantity string was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The string is empty.
    #[error("must not be empty")]
    Empty,
    /// The value is below zero.
    #[error("must not be negative")]
    Negative,
    /// The string is not a Kubernetes quantity.
    #[error("must be a Kubernetes quantity such as \"500m\", \"2\", \"128Gi\" or \"1e3\"")]
    Malformed,
    /// The value exceeds [`MAX_BASE_UNITS`], or has more than 38 significant digits.
    #[error("is out of range (at most {MAX_BASE_UNITS} base units and 38 significant digits)")]
    OutOfRange,
    /// A count was not a whole number.
    #[error("must be a whole number")]
    Fractional,
    /// A quantity in Kubernetes' grammar that is not in the written language of this unit
    /// (see [`Unit::parse_written`]).
    #[error("{}", .0.written_forms())]
    Unwritten(Unit),
}
