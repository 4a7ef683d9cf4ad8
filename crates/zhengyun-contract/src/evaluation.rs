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

/// What a bureau's reservations and consumption cost day by day
/// (`GET /api/v1/bureaus/{bureau}/costs`). Each day is rounded to the fen on its own, so the
/// days of a month may differ from its statement by a few fen; the statement is what is owed.
/// Borrowed capacity is settled per month and is not spread over days.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DailyCostsView {
    /// The bureau.
    pub bureau: String,
    /// From (RFC 3339).
    pub from: String,
    /// To, exclusive (RFC 3339).
    pub to: String,
    /// The currency of the amounts.
    pub currency: String,
    /// Every day the range touches, in order (platform time zone).
    pub days: Vec<DayCostView>,
}

/// What one day cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DayCostView {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// The reservation charge (decimal string).
    pub reserved: String,
    /// The consumption charge (decimal string).
    pub consumed: String,
    /// Both (decimal string).
    pub amount: String,
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

/// The annual performance evaluation (`GET /api/v1/evaluation`): per bureau and for the
/// district, what was spent against budget month by month, how much of the reserved capacity
/// was used, availability against the objectives with the credits received, borrowed and lent
/// capacity, and the ranking by idle cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AnnualEvaluation {
    /// The year.
    pub year: i16,
    /// The currency of every amount.
    pub currency: String,
    /// From (RFC 3339): the year's start.
    pub from: String,
    /// To (RFC 3339): the year's end, or now for the running year.
    pub to: String,
    /// The bureaus, from the largest idle cost to the smallest.
    pub bureaus: Vec<BureauEvaluation>,
    /// The district: every bureau shown added up.
    pub district: DistrictEvaluation,
}

/// One bureau's year.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BureauEvaluation {
    /// The bureau's code.
    pub bureau: String,
    /// Its official name; absent for a bureau no longer in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Its rank by idle cost (1: the most money reserved and left idle).
    pub idle_rank: usize,
    /// What it owed each month (statement lines, borrowing, credits and adjustments) against
    /// the month's budget.
    pub months: Vec<MonthSpend>,
    /// What it owed over the year.
    pub spent: String,
    /// Its budget over the months shown, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<String>,
    /// What its reservations cost over the year.
    pub reservation_cost: String,
    /// What the idle part of them cost.
    pub idle_cost: String,
    /// `1 − idle ÷ reservation cost`, four decimals truncated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efficiency: Option<String>,
    /// Its environments' availability over the year against their objectives.
    pub environments: Vec<EnvironmentAvailability>,
    /// Service credits received (negative).
    pub service_credits: String,
    /// What it paid for borrowed (burst) capacity.
    pub burst_charges: String,
    /// What it was credited for capacity it lent (negative).
    pub lent_credits: String,
}

/// One month of a bureau's spending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MonthSpend {
    /// `YYYY-MM`.
    pub month: String,
    /// What it owed.
    pub spent: String,
    /// The month's share of its budget, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<String>,
    /// `ok`, `warning` (from 80 %) or `exceeded` (from 100 %), when it has a budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
}

/// One environment's availability over the year.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvironmentAvailability {
    /// The environment.
    pub environment: String,
    /// Its tier (at the end of the year's measured time).
    pub tier: String,
    /// The tier's objective in percent.
    pub objective: String,
    /// Its availability in percent, three decimals truncated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<String>,
    /// Minutes measured.
    pub measured_minutes: u64,
    /// Minutes the platform made it unavailable.
    pub bad_minutes: u64,
    /// Whether the year met the objective.
    pub met: bool,
}

/// The district's year: every bureau shown added up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DistrictEvaluation {
    /// What the bureaus owed.
    pub spent: String,
    /// Their budgets (of the bureaus that have one).
    pub budget: String,
    /// What the reservations cost.
    pub reservation_cost: String,
    /// What the idle part cost.
    pub idle_cost: String,
    /// `1 − idle ÷ reservation cost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efficiency: Option<String>,
    /// Service credits (negative).
    pub service_credits: String,
    /// Burst charges.
    pub burst_charges: String,
    /// Lent credits (negative).
    pub lent_credits: String,
}
