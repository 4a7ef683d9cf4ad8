//! Whether a statement is final: a **provisional** statement (an open month, computed from the
//! ledger each time it is read) says how far the ledger covers the month; a **closed** one says
//! when it was closed and by whom, and never changes again.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The standing of a month's statement. In JSON: `{"status": "provisional", "coveredUntil":
/// …}` or `{"status": "closed", "closedAt": …, "closedBy": …}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum StatementStatus {
    /// The month is open: the statement changes as the ledger grows (and may change with a
    /// rate card that appears before the month ends).
    #[serde(rename_all = "camelCase")]
    Provisional {
        /// The ledger is complete up to this instant (`None`: nothing metered yet).
        covered_until: Option<Timestamp>,
    },
    /// The month is closed: its stored lines are final; corrections are adjustments.
    #[serde(rename_all = "camelCase")]
    Closed {
        /// When it was closed.
        closed_at: Timestamp,
        /// Who closed it (the token; empty for months closed before this was recorded).
        closed_by: String,
    },
}

impl StatementStatus {
    /// `provisional` or `closed`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Provisional { .. } => "provisional",
            Self::Closed { .. } => "closed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_reads_as_flat_json_fields() {
        let provisional = StatementStatus::Provisional {
            covered_until: Some("2026-11-20T04:00:00Z".parse().expect("instant")),
        };
        assert_eq!(
            serde_json::to_value(&provisional).expect("json"),
            serde_json::json!({"status": "provisional", "coveredUntil": "2026-11-20T04:00:00Z"})
        );
        let closed = StatementStatus::Closed {
            closed_at: "2026-12-01T02:00:00Z".parse().expect("instant"),
            closed_by: "tok1".to_owned(),
        };
        assert_eq!(
            serde_json::to_value(&closed).expect("json"),
            serde_json::json!({"status": "closed", "closedAt": "2026-12-01T02:00:00Z", "closedBy": "tok1"})
        );
        assert_eq!(closed.name(), "closed");
    }
}
