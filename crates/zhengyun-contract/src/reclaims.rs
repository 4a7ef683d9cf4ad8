//! Reclaims of borrowed capacity: burst pods whose room was taken back.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One burst pod whose room was taken back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReclaimView {
    /// The pod's uid.
    pub pod_uid: String,
    /// Its namespace (the borrowing environment).
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The bureau that borrowed.
    pub bureau: String,
    /// `preempted` (the scheduler took the room for a pod of higher priority) or `allowance`
    /// (the operator deleted it above a lowered burst allowance).
    pub cause: String,
    /// The bureau whose pods got the room back, once known; absent when none was waiting (the
    /// pool itself shrank) or not known yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beneficiary: Option<String>,
    /// When the reclaim started (RFC 3339).
    pub started: String,
    /// When the pod was gone (RFC 3339), once it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freed: Option<String>,
    /// Seconds from `started` to `freed`: how long the room took to come back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<i64>,
}
