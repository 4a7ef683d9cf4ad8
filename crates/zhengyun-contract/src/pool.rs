//! The capacity pool: what the district's cluster offers and how much of it the bureaus hold.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::quota::QuotaBody;

/// The capacity pool against the bureaus' quotas (`GET /api/v1/pool`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PoolView {
    /// The capacity the platform offers (`CapacityPool.spec.capacity`).
    pub capacity: QuotaBody,
    /// What bureau quotas may add up to: the capacity times the overcommit of each resource.
    pub allocatable: QuotaBody,
    /// The bureaus' quotas added up.
    pub allocated: QuotaBody,
    /// What is left to allocate (`allocatable − allocated`, never below zero).
    pub unallocated: QuotaBody,
    /// How many bureaus hold the allocation.
    pub bureaus: usize,
    /// Whether bureaus may borrow each other's idle capacity.
    pub borrowing: bool,
}
