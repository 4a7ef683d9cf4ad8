//! Change requests: what a platform admin decides, and the answers that file or apply one.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{environments::EnvironmentView, quota::QuotaBody};

/// A change request waiting for, or past, a platform admin's decision.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestView {
    /// Id.
    pub id: String,
    /// `environment-create`, `environment-resize` or `bureau-quota`.
    pub kind: String,
    /// The bureau asking.
    pub bureau: String,
    /// The environment or bureau concerned.
    pub object: String,
    /// What will be applied when approved: for `bureau-quota`, the resources to change and
    /// their new totals (resources not named keep their quota).
    pub payload: serde_json::Value,
    /// Why it needs a decision.
    pub note: String,
    /// `pending`, `approved` or `rejected`.
    pub state: String,
    /// Token id of the requester.
    pub requested_by: String,
    /// RFC 3339.
    pub requested_at: String,
    /// Token id of the decider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    /// The decider's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_reason: Option<String>,
}

/// A decision on a change request.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Why (required to reject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The answer to a request that could not be applied at once.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    /// The change request filed for a platform admin.
    pub request: RequestView,
    /// Why it needs a decision.
    pub message: String,
}

/// What approving a request did.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Approved {
    /// The request, now approved.
    pub request: RequestView,
    /// The environment created or resized, for environment requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvironmentView>,
    /// The bureau's quota after approval.
    pub bureau_quota: QuotaBody,
}
