//! Measured availability of an environment and the evidence behind it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An environment's availability over a month
/// (`GET /api/v1/bureaus/{bureau}/environments/{environment}/availability`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AvailabilityView {
    /// The environment.
    pub environment: String,
    /// `YYYY-MM`.
    pub month: String,
    /// Its tier (at the end of its measured time in the month), once measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// The tier's objective in percent, once measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<String>,
    /// Minutes measured (maintenance windows excluded).
    pub measured_minutes: u64,
    /// Minutes the platform made it unavailable.
    pub bad_minutes: u64,
    /// `(measured − bad) ÷ measured` in percent, three decimals truncated; absent before
    /// anything is measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<String>,
    /// The credit the month earns so far, in percent of the environment's charges.
    pub credit_percent: u32,
    /// Minutes are recorded up to this instant (RFC 3339); absent before the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_until: Option<String>,
    /// The evidence: every minute a workload was unavailable, with its cause (at most 1000).
    pub slices: Vec<SliceView>,
}

/// One minute an environment's workloads were unavailable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SliceView {
    /// The minute's start (RFC 3339).
    pub minute: String,
    /// Whether the platform caused it (it counts against the objective).
    pub counted: bool,
    /// The cause: `node-not-ready`, `evicted`, `preempted`, `unschedulable`,
    /// `control-plane-unreachable` (the platform's); `rollout`, `crash`, `burst-reclaimed`,
    /// `other` (the tenant's).
    pub cause: String,
    /// What was seen.
    pub detail: String,
}
