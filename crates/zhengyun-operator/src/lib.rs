//! Zhengyun operator: kube-rs controllers that admit environments against their bureau's quota
//! and turn admitted ones into namespaces with everything a bureau needs inside.
//!
//! - [`admission`]: the pure admission rule.
//! - [`resources`] and [`cluster`]: pure builders of the objects the operator applies.
//! - [`billing_audit`]: rate card, budget and tier changes made in the cluster, appended to the
//!   audit log once each.
//! - `bureaus`: the bureau controller — admission and the bureau's status rollup.
//! - `environments`: the environment controller — namespaces, quotas, policies, workloads.
//! - [`metering`]: the sampler writing usage intervals to the ledger, and the finance metrics.
//! - [`runtime`]: the Lease, health and metrics endpoints, shutdown, the watches and the one
//!   `Applier` every write goes through; [`metrics`]: the operator's metrics.

pub mod admission;
mod availability;
pub mod billing_audit;
pub mod borrowing;
mod bureaus;
pub mod cluster;
mod conditions;
mod environments;
pub mod expiry;
mod lending;
pub mod metering;
pub mod metrics;
pub mod rate_cards;
mod recent;
pub mod resources;
pub mod runtime;
pub mod service_levels;
mod spacing;
mod versions;

pub use runtime::{OperatorConfig, run, run_with_store};

/// Field manager of every server-side apply by the operator.
pub const MANAGER: &str = "zhengyun-operator";
/// Field manager of admission decisions on environment status.
pub const ADMISSION_MANAGER: &str = "zhengyun-admission";

/// Drops an object's managedFields. The operator never reads them, and everything it keeps (watch
/// caches, its writes' answers, the digests it compares) is smaller and cheaper without them.
pub(crate) fn no_managed_fields<K: kube::Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

/// Why a reconciliation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("unable to {action}: {source}")]
    Kube {
        /// What was being attempted, e.g. "apply ResourceQuota for wjw-prod".
        action: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// An object could not be built from the spec.
    #[error("unable to build {what}: {source}")]
    Build {
        /// Which object.
        what: String,
        /// The serialization error.
        #[source]
        source: serde_json::Error,
    },
    /// An environment's namespace is still being deleted; cleanup waits for it.
    #[error("namespace {0} is still terminating")]
    NamespaceTerminating(String),
    /// The finalizer machinery failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// The audit log could not be written, so the change it would record was not made.
    #[error("unable to {action}: {source}")]
    Audit {
        /// What was being attempted.
        action: String,
        /// The store's error.
        #[source]
        source: zhengyun_store::Error,
    },
}

impl Error {
    /// A short, bounded label for the `reconcile_failures` metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "Kube",
            Error::Build { .. } => "Build",
            Error::NamespaceTerminating(_) => "NamespaceTerminating",
            Error::Finalizer(_) => "Finalizer",
            Error::Audit { .. } => "Audit",
        }
    }

    pub(crate) fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |source| Error::Kube { action, source }
    }
}

/// Result with the operator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
