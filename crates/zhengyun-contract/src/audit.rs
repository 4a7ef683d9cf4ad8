//! The audit log: its entries, its head and the verification of its hash chain.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The newest entry of the audit chain, to be noted somewhere the database's users cannot
/// reach.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditHeadView {
    /// Number of entries (the last `seq`).
    pub seq: u64,
    /// The last entry's hash, 64 hex digits (64 zeros when the log is empty).
    pub hash: String,
}

/// One audit entry with its place in the hash chain.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditView {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// RFC 3339.
    pub at: String,
    /// Token id of the caller.
    pub principal: String,
    /// The caller as a person reads it: the token's id, role, bureau and description, e.g.
    /// `token 3f2a… (bureau-admin wjw: "卫健委 CI")`. Absent in entries written before it was
    /// recorded; `GET /api/v1/tokens` resolves their ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal_label: Option<String>,
    /// The caller's role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The bureau concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bureau: Option<String>,
    /// What was done.
    pub action: String,
    /// To what.
    pub object: String,
    /// Quota before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota_before: Option<serde_json::Value>,
    /// Quota after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota_after: Option<serde_json::Value>,
    /// The HTTP status and outcome.
    pub result: String,
    /// The request id.
    pub request_id: String,
    /// Hash of the previous entry.
    pub prev_hash: String,
    /// Hash of this entry.
    pub hash: String,
}

/// The result of recomputing the chain.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// Whether every entry hashes to what is stored and links to its predecessor.
    pub intact: bool,
    /// Entries checked (when intact).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
    /// The first broken entry (when not intact).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_broken_seq: Option<u64>,
    /// What is wrong with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
