//! Instants as stored: integer microseconds since the Unix epoch. Integers sort and compare
//! correctly in SQL on both backends, which RFC 3339 text with varying fractions does not.

use jiff::Timestamp;

use crate::error::{Error, Result};

/// `at` in microseconds since the epoch; sub-microsecond digits are dropped.
pub(crate) fn to_micros(at: Timestamp) -> i64 {
    at.as_microsecond()
}

/// The instant `micros` after the epoch, or [`Error::Corrupt`] if no such instant exists.
pub(crate) fn from_micros(micros: i64, what: &str) -> Result<Timestamp> {
    Timestamp::from_microsecond(micros)
        .map_err(|_| Error::Corrupt(format!("{what} has an impossible instant: {micros} µs")))
}

/// Now, to the microsecond, as stored.
pub(crate) fn now_micros() -> i64 {
    to_micros(Timestamp::now())
}
