//! Seals of closed statements (docs/architecture.md, invariant 5: closed statements are sealed,
//! hash-chained month to month).
//!
//! When a month closes, its seal is the SHA-256 of, in order and each followed by a newline:
//! the tag `zhengyun statement seal v1`, the previous seal (64 hex digits; 64 zeros for the first
//! month sealed), the month, the closing instant in microseconds since the epoch, who closed it,
//! the stored header (JSON) and every stored line (JSON) in line order. The seal covers the
//! stored text itself, so no later change of the code's types can change what it means.
//!
//! Reading a closed statement recomputes its seal ([`crate::Store::closed_statement`]), and
//! [`crate::Store::verify_statement_seals`] walks the whole chain in closing order. Moving money
//! between two bureaus consistently passes every conservation check but not the seal; replacing
//! a seal breaks the next month's link.

use jiff::Timestamp;
use serde::Serialize;
use sha2::{Digest, Sha256};
use zhengyun_metering::Statement;

/// The "previous seal" of the first month sealed.
pub const GENESIS_SEAL: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The stored text a seal covers.
pub(crate) struct SealedText<'a> {
    pub month: &'a str,
    pub closed_at_us: i64,
    pub closed_by: &'a str,
    pub header: &'a str,
    pub lines: &'a [String],
}

/// The seal of `text` chained to `previous`.
pub(crate) fn seal_of(previous: &str, text: &SealedText<'_>) -> String {
    let mut hasher = Sha256::new();
    for part in [
        "zhengyun statement seal v1",
        previous,
        text.month,
        &text.closed_at_us.to_string(),
        text.closed_by,
        text.header,
    ] {
        hasher.update(part.as_bytes());
        hasher.update(b"\n");
    }
    for line in text.lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}

/// A closed month's statement with when, by whom and under which seal it was closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClosedStatement {
    /// The statement as closed (its seal verified, if it has one).
    pub statement: Statement,
    /// When the month was closed.
    pub closed_at: Timestamp,
    /// Who closed it (the token); empty for months closed before this was recorded.
    pub closed_by: String,
    /// Its seal; `None` for months closed before statements were sealed.
    pub seal: Option<String>,
}

/// One sealed month in the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedMonth {
    /// The month.
    pub month: String,
    /// The seal of the month before it in closing order (64 zeros for the first).
    pub previous_seal: String,
    /// Its own seal.
    pub seal: String,
}

/// What verifying the chain of seals found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SealVerification {
    /// Every seal recomputes from the stored statement and names its predecessor.
    pub intact: bool,
    /// The sealed months, in closing order, up to the first broken one.
    pub sealed: Vec<SealedMonth>,
    /// Closed months that have no seal (closed before statements were sealed).
    pub unsealed: Vec<String>,
    /// The first month whose seal does not hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_broken_month: Option<String>,
    /// Why it does not hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text<'a>(lines: &'a [String], header: &'a str) -> SealedText<'a> {
        SealedText {
            month: "2026-11",
            closed_at_us: 1_764_547_200_000_000,
            closed_by: "0123456789abcdef",
            header,
            lines,
        }
    }

    #[test]
    fn a_seal_changes_with_any_byte_of_the_stored_statement_and_with_its_predecessor() {
        let lines = vec![
            r#"{"amount":"1.00"}"#.to_owned(),
            r#"{"amount":"2.00"}"#.to_owned(),
        ];
        let seal = seal_of(GENESIS_SEAL, &text(&lines, "{}"));
        assert_eq!(seal.len(), 64);
        assert_eq!(seal, seal_of(GENESIS_SEAL, &text(&lines, "{}")));
        let moved = vec![
            r#"{"amount":"0.00"}"#.to_owned(),
            r#"{"amount":"3.00"}"#.to_owned(),
        ];
        assert_ne!(seal, seal_of(GENESIS_SEAL, &text(&moved, "{}")));
        assert_ne!(seal, seal_of(GENESIS_SEAL, &text(&lines, "{ }")));
        assert_ne!(seal, seal_of(&"1".repeat(64), &text(&lines, "{}")));
    }
}
