//! Performance evaluation: efficiency and idle cost over a range, and right-sizing
//! recommendations.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::quota::QuotaBody;

/// Efficiency and idle cost over a range (`GET /api/v1/efficiency`): how much of what was
/// reserved was used, and what the unused part cost at the reservation price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EfficiencyReport {
    /// From (RFC 3339).
    pub from: String,
    /// To, exclusive (RFC 3339).
    pub to: String,
    /// The currency of the amounts.
    pub currency: String,
    /// The bureaus, from the largest idle cost to the smallest.
    pub bureaus: Vec<BureauEfficiencyView>,
    /// The environments, by bureau and name.
    pub environments: Vec<EnvironmentEfficiencyView>,
}

/// One bureau's efficiency and idle cost, with its rank by idle cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BureauEfficiencyView {
    /// 1 for the bureau whose reservations sat idle at the largest cost.
    pub rank: usize,
    /// The bureau's code.
    pub bureau: String,
    /// What its reservations cost (decimal string).
    pub reservation_cost: String,
    /// What the idle part of them cost (decimal string).
    pub idle_cost: String,
    /// The share of the reservation cost that was used, `1 − idle ÷ reservation` (four
    /// decimals, truncated); absent when nothing priced was reserved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efficiency: Option<String>,
}

/// One environment's efficiency and idle cost, with its resources.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvironmentEfficiencyView {
    /// The bureau.
    pub bureau: String,
    /// The environment.
    pub environment: String,
    /// What its reservations cost (decimal string).
    pub reservation_cost: String,
    /// What the idle part of them cost (decimal string).
    pub idle_cost: String,
    /// The share of the reservation cost that was used (four decimals, truncated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efficiency: Option<String>,
    /// Per resource.
    pub resources: Vec<ResourceEfficiencyView>,
}

/// One resource of one environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResourceEfficiencyView {
    /// `cpu`, `memory`, …
    pub resource: String,
    /// The unit of the quantities: `core-hour`, `GiB-hour`, …
    pub unit: String,
    /// Unit-hours reserved.
    pub reserved_unit_hours: String,
    /// Unit-hours consumed.
    pub consumed_unit_hours: String,
    /// Unit-hours reserved and not consumed.
    pub idle_unit_hours: String,
    /// Consumed ÷ reserved (four decimals, truncated); absent when nothing was reserved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efficiency: Option<String>,
    /// What the reservation cost (decimal string).
    pub reservation_cost: String,
    /// What the idle part cost (decimal string).
    pub idle_cost: String,
}

/// A right-sizing recommendation for an environment
/// (`GET /api/v1/bureaus/{bureau}/environments/{environment}/rightsizing`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RightSizingView {
    /// The environment.
    pub environment: String,
    /// Its tier, whose reservation price prices the saving.
    pub tier: String,
    /// The history read: from (RFC 3339).
    pub from: String,
    /// The history read: to (RFC 3339).
    pub to: String,
    /// The percentile of consumption covered.
    pub percentile: u32,
    /// The headroom added on top of it, in percent.
    pub margin_percent: u64,
    /// The days of history a resource needs for a recommendation.
    pub min_history_days: i64,
    /// Per right-sized resource (CPU, memory, storage, GPUs).
    pub resources: Vec<ResourceRecommendation>,
    /// The quota with every recommendation applied (the other resources as they are): what
    /// `POST …/rightsizing` asks for.
    pub quota: QuotaBody,
    /// The monthly saving of all recommendations together (decimal string; negative when the
    /// environment needs more than it has).
    pub monthly_saving: String,
    /// The currency of the saving.
    pub currency: String,
}

/// The recommendation for one resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResourceRecommendation {
    /// `cpu`, `memory`, `storage` or `gpu`.
    pub resource: String,
    /// The quota now (a quantity).
    pub current: String,
    /// Days of history read (time with a reservation of the resource, decimal string).
    pub history_days: String,
    /// The consumption at the percentile (a quantity), when there is history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentile_used: Option<String>,
    /// The largest consumption seen (a quantity), when there is history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak: Option<String>,
    /// The recommended quota (a quantity); absent with too little history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended: Option<String>,
    /// What the recommendation saves in an average month (decimal string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_saving: Option<String>,
    /// Why there is no recommendation, when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
