//! Zhengyun model: custom resource types, names, quantities and validation. No I/O.
//!
//! - [`names`]: bureau codes, environment names, display names, and the `Purpose`, `Tier` and
//!   `BureauKind` vocabularies.
//! - [`quantity`]: exact Kubernetes quantities, quotas and quota arithmetic.
//! - [`crd`]: the `Bureau`, `Environment`, `CapacityPool` and `RateCard` custom resources and
//!   their CRDs.
//! - [`validation`]: the [`Validate`] trait and field-named [`ValidationErrors`].

pub mod crd;
pub mod names;
pub mod policies;
pub mod quantity;
pub mod validation;

pub use crd::{crds, crds_yaml};
pub use policies::{admission_policies, admission_policies_yaml, admission_policy_bindings};
pub use validation::{FieldError, Validate, ValidationErrors};
