//! The Zhengyun custom resources (group `zhengyun.io`, version `v1alpha1`, all cluster-scoped),
//! and their CustomResourceDefinitions.
//!
//! Rules are enforced twice on purpose: CEL rules and OpenAPI patterns in the CRD let the
//! apiserver refuse bad objects whichever door they came through (API or `kubectl apply`), and
//! the [`Validate`](crate::Validate) implementations give the API an early, field-named error.

mod bureau;
mod capacity_pool;
mod environment;
mod rate_card;
mod service_levels;

#[cfg(test)]
mod tests;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResourceExt;

pub use bureau::{BUDGET_MAX_SCALE, Bureau, BureauSpec, BureauStatus, MAX_GROUPS};
pub use capacity_pool::{
    Borrowing, CapacityPool, CapacityPoolSpec, CapacityPoolStatus, ContainerResources,
    LimitRangeDefaults, MAX_OVERCOMMIT_PERCENT, MAX_PRIORITY_VALUE, ObjectCounts, Overcommit,
    POOL_NAME, TierPriorityClasses, TierPriorityValues,
};
pub use environment::{
    CLEANUP_FINALIZER, CatalogService, Environment, EnvironmentPhase, EnvironmentSpec,
    EnvironmentStatus, MAX_REPLICAS, MAX_SERVICES, ServiceKind,
};
pub use rate_card::{
    PRICE_MAX_SCALE, RateCard, RateCardSpec, RateCardStatus, ResourcePrices, TierPrices,
};
pub use service_levels::{
    CreditStep, GOLD_MIN_REPLICAS, HUNDRED_PERCENT, MaintenanceWindow, ServiceLevels,
    TierServiceLevel, parse_percent,
};

/// API group of every Zhengyun resource.
pub const GROUP: &str = "zhengyun.io";

/// API version of every Zhengyun resource.
pub const VERSION: &str = "v1alpha1";

/// Every Zhengyun CRD, in a fixed order (alphabetical by CRD name).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        Bureau::crd(),
        CapacityPool::crd(),
        Environment::crd(),
        RateCard::crd(),
    ]
}

/// Every Zhengyun CRD as one multi-document YAML stream (what `zhengyun crds` prints).
///
/// # Panics
///
/// Never in practice: CRDs are plain data with string keys, which always serialize.
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|crd| {
            serde_yaml::to_string(crd).expect("a CustomResourceDefinition serializes to YAML")
        })
        .map(|doc| format!("---\n{doc}"))
        .collect()
}

/// Pattern of a calendar date as written in resources: `YYYY-MM-DD`.
pub const DATE_PATTERN: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$";
