//! `RateCard`: prices per resource-hour per tier from a date on. A rate card never changes once
//! created; a new price is a new RateCard with a later `effectiveFrom`.
//!
//! `prices` are **list prices**: what one unit-hour reserved and fully used costs. Each splits
//! into a reservation price (charged on the admitted quota × time) and a consumption price
//! (charged on what pods request while running): `reservationPrices` gives the reservation part
//! explicitly; otherwise it is the list price × `reservationShare` (default `"0.5"`), rounded half
//! up to six decimals, and consumption is the rest. A card written before the split existed
//! (neither field) is therefore read as list prices split half and half. `rounding` is how each
//! statement line is rounded to the fen: `half-up` (四舍五入, the default) or `half-even`.

use k8s_openapi::jiff::civil::Date;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, DATE_PATTERN};
use crate::{
    names::Tier,
    validation::{Validate, ValidationErrors, check_decimal, field_path},
};

/// Fractional digits allowed in a price: prices per hour are small (0.0069 CNY per GiB-hour).
pub const PRICE_MAX_SCALE: usize = 6;

/// Prices of resources per hour, by tier, effective from a date.
// Clippy mistakes the repeated `type_` keys of distinct printer columns for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "zhengyun.io",
    version = "v1alpha1",
    kind = "RateCard",
    plural = "ratecards",
    shortname = "rc",
    category = "zhengyun",
    status = "RateCardStatus",
    derive = "PartialEq",
    doc = "Prices per resource-hour per tier, effective from a date. Immutable: a new price is a new RateCard.",
    printcolumn(name = "Currency", type_ = "string", json_path = ".spec.currency"),
    printcolumn(
        name = "Effective From",
        type_ = "string",
        json_path = ".spec.effectiveFrom"
    ),
    printcolumn(
        name = "Gold CPU/h",
        type_ = "string",
        json_path = ".spec.prices.gold.cpuCoreHour",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = Rule::new("self == oldSelf")
        .message("a RateCard never changes; create a new one with a later effectiveFrom"),
    validation = Rule::new("!has(self.reservationPrices) || (double(self.reservationPrices.gold.cpuCoreHour) <= double(self.prices.gold.cpuCoreHour) && double(self.reservationPrices.gold.memoryGibHour) <= double(self.prices.gold.memoryGibHour) && double(self.reservationPrices.gold.storageGibHour) <= double(self.prices.gold.storageGibHour) && double(self.reservationPrices.gold.gpuHour) <= double(self.prices.gold.gpuHour) && double(self.reservationPrices.silver.cpuCoreHour) <= double(self.prices.silver.cpuCoreHour) && double(self.reservationPrices.silver.memoryGibHour) <= double(self.prices.silver.memoryGibHour) && double(self.reservationPrices.silver.storageGibHour) <= double(self.prices.silver.storageGibHour) && double(self.reservationPrices.silver.gpuHour) <= double(self.prices.silver.gpuHour) && double(self.reservationPrices.bronze.cpuCoreHour) <= double(self.prices.bronze.cpuCoreHour) && double(self.reservationPrices.bronze.memoryGibHour) <= double(self.prices.bronze.memoryGibHour) && double(self.reservationPrices.bronze.storageGibHour) <= double(self.prices.bronze.storageGibHour) && double(self.reservationPrices.bronze.gpuHour) <= double(self.prices.bronze.gpuHour))")
        .message("a reservation price may not exceed its list price (spec.prices)"),
    validation = Rule::new("!has(self.reservationPrices) || !has(self.reservationShare)")
        .message("give either reservationPrices or reservationShare, not both")
)]
#[serde(rename_all = "camelCase")]
pub struct RateCardSpec {
    /// ISO 4217 currency code.
    #[serde(default = "default_currency")]
    #[schemars(length(min = 3, max = 3), regex(pattern = r"^[A-Z]{3}$"))]
    pub currency: String,

    /// First day (`YYYY-MM-DD`, platform time zone) the prices apply.
    #[schemars(length(min = 10, max = 10), regex(pattern = DATE_PATTERN))]
    pub effective_from: String,

    /// List prices for each tier: what a unit-hour reserved and fully used costs (reservation
    /// price + consumption price).
    pub prices: TierPrices,

    /// The reservation part of each list price, per tier and resource; the consumption price is
    /// the list price minus it. Absent: the list price × `reservationShare`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_prices: Option<TierPrices>,

    /// The share of each list price charged for holding capacity (0 to 1, e.g. `"0.6"`) when
    /// `reservationPrices` is absent; the reservation price is rounded half up to six decimals.
    /// Absent: `"0.5"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0(\.[0-9]{1,4})?|1(\.0{1,4})?)$"))]
    pub reservation_share: Option<String>,

    /// How each statement line's exact amount is rounded to the fen: `half-up` (四舍五入, the
    /// default) or `half-even`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(half-up|half-even)$"))]
    pub rounding: Option<String>,
}

fn default_currency() -> String {
    "CNY".to_owned()
}

/// Prices for each tier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TierPrices {
    /// Prices of gold environments.
    pub gold: ResourcePrices,
    /// Prices of silver environments.
    pub silver: ResourcePrices,
    /// Prices of bronze environments.
    pub bronze: ResourcePrices,
}

impl TierPrices {
    /// The prices for `tier`.
    pub fn for_tier(&self, tier: Tier) -> &ResourcePrices {
        match tier {
            Tier::Gold => &self.gold,
            Tier::Silver => &self.silver,
            Tier::Bronze => &self.bronze,
        }
    }
}

/// Prices per resource-hour as decimal strings (never floats), e.g. `"0.05"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourcePrices {
    /// Per CPU core-hour.
    #[schemars(regex(pattern = r"^[0-9]{1,15}(\.[0-9]{1,6})?$"))]
    pub cpu_core_hour: String,
    /// Per GiB-hour of memory.
    #[schemars(regex(pattern = r"^[0-9]{1,15}(\.[0-9]{1,6})?$"))]
    pub memory_gib_hour: String,
    /// Per GiB-hour of persistent storage.
    #[schemars(regex(pattern = r"^[0-9]{1,15}(\.[0-9]{1,6})?$"))]
    pub storage_gib_hour: String,
    /// Per GPU-hour.
    #[schemars(regex(pattern = r"^[0-9]{1,15}(\.[0-9]{1,6})?$"))]
    pub gpu_hour: String,
}

impl ResourcePrices {
    fn check(&self, path: &str, errors: &mut ValidationErrors) {
        let fields = [
            ("cpuCoreHour", &self.cpu_core_hour),
            ("memoryGibHour", &self.memory_gib_hour),
            ("storageGibHour", &self.storage_gib_hour),
            ("gpuHour", &self.gpu_hour),
        ];
        for (field, price) in fields {
            errors.check(
                field_path(path, field),
                check_decimal(price, PRICE_MAX_SCALE),
            );
        }
    }
}

/// What the operator observed about a rate card.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateCardStatus {
    /// Standard conditions, one per `type`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

impl RateCardSpec {
    /// The first day the prices apply, if `effectiveFrom` is a real calendar date.
    pub fn effective_date(&self) -> Option<Date> {
        self.effective_from
            .parse()
            .ok()
            .filter(|_| self.effective_from.len() == 10)
    }

    fn check(&self, path: &str, errors: &mut ValidationErrors) {
        let at = |field| field_path(path, field);
        let currency_ok =
            self.currency.len() == 3 && self.currency.bytes().all(|b| b.is_ascii_uppercase());
        if !currency_ok {
            errors.push(
                at("currency"),
                "must be a three-letter ISO 4217 code such as CNY",
            );
        }
        if self.effective_date().is_none() {
            errors.push(
                at("effectiveFrom"),
                "must be a calendar date written YYYY-MM-DD",
            );
        }
        for &tier in Tier::ALL {
            let tier_path = field_path(&at("prices"), tier.as_str());
            self.prices.for_tier(tier).check(&tier_path, errors);
            if let Some(reservations) = &self.reservation_prices {
                let path = field_path(&at("reservationPrices"), tier.as_str());
                reservations.for_tier(tier).check(&path, errors);
            }
        }
        if let Some(share) = &self.reservation_share {
            let ok = check_decimal(share, 4).is_ok()
                && match share.split_once('.') {
                    Some((whole, fraction)) => {
                        whole == "0" || (whole == "1" && fraction.bytes().all(|b| b == b'0'))
                    }
                    None => share == "0" || share == "1",
                };
            if !ok {
                errors.push(
                    at("reservationShare"),
                    "must be a decimal between 0 and 1 with at most four decimals",
                );
            }
        }
        if self.reservation_prices.is_some() && self.reservation_share.is_some() {
            errors.push(
                at("reservationShare"),
                "give either reservationPrices or reservationShare, not both",
            );
        }
        if let Some(rounding) = &self.rounding
            && rounding != "half-up"
            && rounding != "half-even"
        {
            errors.push(at("rounding"), "must be half-up or half-even");
        }
    }
}

impl Validate for RateCardSpec {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        self.check("spec", &mut errors);
        errors.into_result()
    }
}

impl Validate for RateCard {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if self.metadata.name.as_deref().is_none_or(str::is_empty) {
            errors.push("metadata.name", "must not be empty");
        }
        self.spec.check("spec", &mut errors);
        errors.into_result()
    }
}
