//! Statements and usage: what finance, auditors and each bureau read of the metering ledger.
//!
//! Amounts, prices and quantities are decimal strings (`"12.34"`), exact unit-seconds are
//! integer strings (they pass 2^53), instants are RFC 3339 and months `YYYY-MM`. Every line
//! type refuses fields it does not know, so that a field the ledger adds cannot be dropped on
//! its way to the caller unnoticed.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A half-open range of instants, `[start, end)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// First instant (RFC 3339).
    pub start: String,
    /// First instant after the range (RFC 3339).
    pub end: String,
}

/// One priced line of a statement: one resource of one environment, reserved or consumed,
/// over the part of the month one rate card prices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StatementLineView {
    /// The bureau.
    pub bureau: String,
    /// The environment.
    pub environment: String,
    /// `cpu`, `memory`, `storage`, `gpu`, `pods`, `loadbalancers`, …
    pub resource: String,
    /// `reserved` or `consumed`.
    pub kind: String,
    /// `gold`, `silver` or `bronze`.
    pub tier: String,
    /// `effectiveFrom` of the rate card pricing the line (`YYYY-MM-DD`).
    pub rate_card: String,
    /// The part of the month the line covers.
    pub period: Period,
    /// Exact quantity in base-unit-seconds (millicore-seconds, byte-seconds…), an integer string.
    pub unit_seconds: String,
    /// The quantity in `unit`s, six decimals, for reading.
    pub quantity: String,
    /// `core-hour`, `GiB-hour`, `GPU-hour`…
    pub unit: String,
    /// Price per `unit`.
    pub unit_price: String,
    /// How the amount was rounded to the fen: `half-even`, `half-up`, …
    pub rounding: String,
    /// The line's amount, whole fen.
    pub amount: String,
}

/// Unit-seconds of one resource and kind within a total.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UsageTotalView {
    /// The resource.
    pub resource: String,
    /// `reserved` or `consumed`.
    pub kind: String,
    /// Exact sum of unit-seconds, an integer string.
    pub unit_seconds: String,
}

/// The totals of one environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvironmentTotalView {
    /// The bureau owning the environment.
    pub bureau: String,
    /// The environment.
    pub environment: String,
    /// Sum of its line amounts.
    pub amount: String,
    /// Unit-seconds per resource and kind.
    pub usage: Vec<UsageTotalView>,
}

/// Where a bureau stands against its monthly budget.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BudgetView {
    /// The monthly budget.
    pub budget: String,
    /// Spent this month, adjustments included (negative after credits).
    pub spent: String,
    /// `spent / budget`, four decimals; null when the budget is zero.
    pub ratio: Option<String>,
    /// `ok`, `warning` or `exceeded`.
    pub level: String,
}

/// The totals of one bureau, what it owes with its adjustments, and its budget.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BureauTotalView {
    /// The bureau's code.
    pub bureau: String,
    /// Sum of its line amounts.
    pub amount: String,
    /// Unit-seconds per resource and kind.
    pub usage: Vec<UsageTotalView>,
    /// Where it stands against its budget, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetView>,
    /// The bureau's official name; null for a bureau no longer in the cluster.
    pub display_name: Option<String>,
    /// Sum of its adjustment amounts (signed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjustments_amount: Option<String>,
    /// Its settled borrowing: burst charges less lent credits (signed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement_amount: Option<String>,
    /// Its service credits for environments below their objective (negative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_credits_amount: Option<String>,
    /// `amount` plus `settlementAmount` plus `serviceCreditsAmount` plus `adjustmentsAmount`:
    /// what it owes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payable: Option<String>,
}

/// The whole platform's totals and what it is owed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PlatformTotalView {
    /// Sum of the bureaus' amounts.
    pub amount: String,
    /// Unit-seconds per resource and kind.
    pub usage: Vec<UsageTotalView>,
    /// Sum of every adjustment (signed).
    pub adjustments_amount: String,
    /// The platform's share of burst revenue (for one bureau: its settled borrowing).
    #[serde(default = "zero_amount")]
    pub settlement_amount: String,
    /// Every service credit (negative).
    #[serde(default = "zero_amount")]
    pub service_credits_amount: String,
    /// `amount` plus `settlementAmount` plus `serviceCreditsAmount` plus `adjustmentsAmount`.
    pub payable: String,
}

fn zero_amount() -> String {
    "0.00".to_owned()
}

/// One month's settled amount of borrowed capacity for one party and resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SettlementLineView {
    /// `burst` (a borrower's charge), `lent` (a lender's credit) or `platform` (its share).
    pub role: String,
    /// The bureau charged or credited; absent for the platform's share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bureau: Option<String>,
    /// The borrowing environment of a `burst` line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The borrowing environment's tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// The resource.
    pub resource: String,
    /// Burst unit-seconds (`burst`, `platform`) or idle reserved unit-seconds (`lent`), an
    /// integer string.
    pub unit_seconds: String,
    /// `unitSeconds` in `unit`s, six decimals.
    pub quantity: String,
    /// `core-hour`, `GiB-hour`…
    pub unit: String,
    /// Whole fen, signed: a charge positive, a credit negative, the platform's share positive.
    pub amount: String,
}

/// A credit for an environment whose month fell below its tier's availability objective.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceCreditView {
    /// The bureau credited.
    pub bureau: String,
    /// The environment.
    pub environment: String,
    /// Its tier.
    pub tier: String,
    /// The tier's objective in percent (`"99.95"`).
    pub objective: String,
    /// The month's measured availability in percent, three decimals truncated.
    pub availability: String,
    /// Minutes measured (maintenance windows excluded).
    pub measured_minutes: u64,
    /// Minutes the platform made it unavailable.
    pub bad_minutes: u64,
    /// The credit in percent of the environment's charges.
    pub credit_percent: u32,
    /// The environment's charges on the statement.
    pub charges: String,
    /// The credit, negative, to the fen.
    pub amount: String,
}

/// Finance's acceptance of a month's metering gaps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaiverView {
    /// Who waived (token id).
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
    /// Why, in finance's words.
    pub reason: String,
}

/// A span the ledger does not measure as it happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GapView {
    /// First second of the span (RFC 3339).
    pub from: String,
    /// First second after it (RFC 3339).
    pub to: String,
    /// `unmetered` or `reconstructed`.
    pub kind: String,
    /// What caused it.
    pub reason: String,
    /// Set once finance waived it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waived: Option<WaiverView>,
}

/// A signed correction to one line of a closed month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdjustmentView {
    /// The closed month corrected.
    pub month: String,
    /// The bureau.
    pub bureau: String,
    /// The environment.
    pub environment: String,
    /// The resource.
    pub resource: String,
    /// `reserved` or `consumed`.
    pub kind: String,
    /// The tier.
    pub tier: String,
    /// `effectiveFrom` of the rate card of the line (`YYYY-MM-DD`).
    pub rate_card: String,
    /// `correction`, `addition` or `reversal`.
    pub reason: String,
    /// Signed change in unit-seconds, an integer string.
    pub unit_seconds: String,
    /// Signed change in money, whole fen.
    pub amount: String,
    /// The line's unit price.
    pub unit_price: String,
    /// Why it was issued.
    #[serde(default)]
    pub note: String,
    /// The token that issued it (empty on older adjustments).
    #[serde(default)]
    pub issued_by: String,
    /// When it was issued (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<String>,
}

/// Whether a statement is final.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Standing {
    /// An open month: the statement changes as the ledger grows.
    #[serde(rename_all = "camelCase")]
    Provisional {
        /// The ledger is complete up to this instant (RFC 3339); null while nothing is metered.
        covered_until: Option<String>,
    },
    /// A closed month: its lines are final; corrections are adjustments.
    #[serde(rename_all = "camelCase")]
    Closed {
        /// When it was closed (RFC 3339).
        closed_at: String,
        /// Who closed it (token id; empty for months closed before this was recorded).
        closed_by: String,
    },
}

/// A month's statement (`GET /api/v1/statements`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatementView {
    /// `YYYY-MM`.
    pub month: String,
    /// IANA time zone the month is read in.
    pub time_zone: String,
    /// Currency of every amount.
    pub currency: String,
    /// The instants the month covers.
    pub period: Period,
    /// The lines, ordered by key.
    pub lines: Vec<StatementLineView>,
    /// Per environment, ordered by bureau then environment.
    pub environments: Vec<EnvironmentTotalView>,
    /// Per bureau, ordered by bureau.
    pub bureaus: Vec<BureauTotalView>,
    /// The whole platform (or the one bureau asked about).
    pub platform: PlatformTotalView,
    /// The spans of the month the ledger does not measure as they happened.
    pub gaps: Vec<GapView>,
    /// Borrowed capacity settled over the month's windows: charges, credits and the platform's
    /// share (a bureau sees its own lines).
    #[serde(default)]
    pub settlement: Vec<SettlementLineView>,
    /// Credits for environments whose measured availability fell below their tier's objective
    /// (a bureau sees its own).
    #[serde(default)]
    pub service_credits: Vec<ServiceCreditView>,
    /// Provisional or closed, and since when.
    #[serde(flatten)]
    pub standing: Standing,
    /// The seal of a closed month (64 hex digits); absent on months closed before sealing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
    /// The adjustment lines issued for the month.
    pub adjustments: Vec<AdjustmentView>,
}

/// The answer to closing a month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClosedMonth {
    /// `YYYY-MM`.
    pub month: String,
    /// Currency.
    pub currency: String,
    /// The platform's total.
    pub amount: String,
    /// Number of bureaus on the statement.
    pub bureaus: usize,
    /// Number of lines.
    pub lines: usize,
    /// The statement's seal.
    pub seal: String,
}

/// The adjustment lines issued (or none to issue) for a closed month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Adjustments {
    /// `YYYY-MM`.
    pub month: String,
    /// The lines issued by this call; empty when nothing changed.
    pub adjustments: Vec<AdjustmentView>,
}

/// Why finance accepts a month's metering gaps.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WaiveGaps {
    /// Why the gaps are accepted (1 to 1000 bytes), e.g. how the missing usage was settled.
    #[schema(example = "运维停机，按合同估算另行结算")]
    pub reason: String,
}

/// The gaps a waiver covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Waived {
    /// `YYYY-MM`.
    pub month: String,
    /// The gaps now waived by this waiver (those waived before are left out).
    pub gaps: Vec<GapView>,
}

/// One sealed month in the chain of seals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SealedMonthView {
    /// `YYYY-MM`.
    pub month: String,
    /// The seal of the month closed before it (64 zeros for the first).
    pub previous_seal: String,
    /// Its own seal.
    pub seal: String,
}

/// What verifying the chain of seals found (`GET /api/v1/statements/verify`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SealVerificationView {
    /// Every seal recomputes from its stored statement and names its predecessor.
    pub intact: bool,
    /// The sealed months, in closing order, up to the first broken one.
    pub sealed: Vec<SealedMonthView>,
    /// Closed months without a seal (closed before statements were sealed).
    pub unsealed: Vec<String>,
    /// The first month whose seal does not hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_broken_month: Option<String>,
    /// Why it does not hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What verifying one closed month found (`GET /api/v1/statements/{month}/verify`): the chain
/// of seals as [`SealVerificationView`], and the month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MonthVerification {
    /// Every seal up to the month's recomputes and names its predecessor.
    pub intact: bool,
    /// The sealed months, in closing order, up to the first broken one.
    pub sealed: Vec<SealedMonthView>,
    /// Closed months without a seal.
    pub unsealed: Vec<String>,
    /// The first month whose seal does not hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_broken_month: Option<String>,
    /// Why it does not hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `YYYY-MM`.
    pub month: String,
    /// Whether the month itself is among the sealed months that hold.
    pub month_sealed: bool,
}

impl MonthVerification {
    /// The verification of `month` from the chain's.
    pub fn of(month: String, chain: SealVerificationView) -> Self {
        let month_sealed = chain.sealed.iter().any(|s| s.month == month);
        Self {
            intact: chain.intact,
            sealed: chain.sealed,
            unsealed: chain.unsealed,
            first_broken_month: chain.first_broken_month,
            reason: chain.reason,
            month,
            month_sealed,
        }
    }
}

/// Usage of one resource and kind by one environment over a range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UsageRow {
    /// The environment.
    pub environment: String,
    /// The resource.
    pub resource: String,
    /// `reserved` or `consumed`.
    pub kind: String,
    /// Exact unit-seconds, an integer string.
    pub unit_seconds: String,
    /// The same in `unit`s (hours), a decimal string.
    pub unit_hours: String,
    /// `core-hour`, `GiB-hour`, …
    pub unit: String,
}

/// A bureau's metered usage over a range (`GET /api/v1/bureaus/{bureau}/usage`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// The bureau.
    pub bureau: String,
    /// From (RFC 3339).
    pub from: String,
    /// To, exclusive (RFC 3339).
    pub to: String,
    /// One row per environment, resource and kind.
    pub usage: Vec<UsageRow>,
}
