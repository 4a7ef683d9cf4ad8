//! The admission policy shipped with the CRDs: every Environment carries the operator's cleanup
//! finalizer from the moment it is created.
//!
//! Without it the operator would add the finalizer itself with one more write of each new
//! Environment. With it the API server adds it while admitting the create, whichever door the
//! Environment came through. The policy also puts it back on an update that dropped it, but not
//! once the Environment is being deleted, so the operator can still remove it when the namespace
//! is gone. `failurePolicy: Ignore`: if the policy cannot run, the operator adds the finalizer as
//! before, so a cluster without `MutatingAdmissionPolicy` (before Kubernetes 1.36) loses nothing.

use k8s_openapi::api::admissionregistration::v1::{
    MutatingAdmissionPolicy, MutatingAdmissionPolicyBinding,
};
use serde_json::json;

use super::GROUP;

/// Finalizer that keeps an Environment until the operator has removed its namespace.
pub const ENVIRONMENT_FINALIZER: &str = "zhengyun.io/environment-cleanup";

/// Name of the MutatingAdmissionPolicy (and of its binding) that adds [`ENVIRONMENT_FINALIZER`].
pub const FINALIZER_POLICY: &str = "zhengyun-environment-finalizer";

/// The MutatingAdmissionPolicy that adds [`ENVIRONMENT_FINALIZER`] to every Environment that is
/// not being deleted.
///
/// # Panics
///
/// Never in practice: the object is a constant that matches its type.
pub fn finalizer_policy() -> MutatingAdmissionPolicy {
    serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": FINALIZER_POLICY},
        "spec": {
            "failurePolicy": "Ignore",
            "reinvocationPolicy": "Never",
            // Written out with the API server's defaults: the field is atomic, so a second
            // field manager applying the same policy would otherwise conflict with the first.
            "matchConstraints": {
                "matchPolicy": "Equivalent",
                "namespaceSelector": {},
                "objectSelector": {},
                "resourceRules": [{
                    "apiGroups": [GROUP],
                    "apiVersions": ["*"],
                    "operations": ["CREATE", "UPDATE"],
                    "resources": ["environments"],
                    "scope": "*",
                }],
            },
            "matchConditions": [{
                "name": "not-being-deleted",
                "expression": "!has(object.metadata.deletionTimestamp)",
            }],
            "mutations": [{
                "patchType": "ApplyConfiguration",
                "applyConfiguration": {
                    "expression": format!(
                        "Object{{metadata: Object.metadata{{finalizers: [{ENVIRONMENT_FINALIZER:?}]}}}}"
                    ),
                },
            }],
        },
    }))
    .expect("the finalizer policy matches MutatingAdmissionPolicy")
}

/// The binding that puts [`finalizer_policy`] in force for the whole cluster.
///
/// # Panics
///
/// Never in practice: the object is a constant that matches its type.
pub fn finalizer_policy_binding() -> MutatingAdmissionPolicyBinding {
    serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": FINALIZER_POLICY},
        "spec": {"policyName": FINALIZER_POLICY},
    }))
    .expect("the finalizer policy binding matches MutatingAdmissionPolicyBinding")
}
