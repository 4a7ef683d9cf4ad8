//! Kubeconfigs for an environment's namespace: asking for one, the one issued, and the record
//! of those issued.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A kubeconfig to issue.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IssueKubeconfig {
    /// How long the kubeconfig works: `30m`, `2h`, `8h` (from 1 minute to the configured
    /// maximum, 24 hours by default, and never past the caller's own token). The configured
    /// default (8 hours) when absent, cut to the caller's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "2h")]
    pub ttl: Option<String>,
}

/// An issued kubeconfig. Its token is in this response only.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedKubeconfig {
    /// Id, in the audit log and the environment's list of kubeconfigs.
    pub id: String,
    /// The namespace it reaches.
    pub namespace: String,
    /// `admin` (the tenant-admin role) or `viewer` (the tenant-viewer role).
    pub access: String,
    /// When it stops working (RFC 3339).
    pub expires_at: String,
    /// The kubeconfig, in YAML: save it and point `KUBECONFIG` (or `kubectl --kubeconfig`) at it.
    pub kubeconfig: String,
}

/// A kubeconfig as listed: never its token.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeconfigView {
    /// Id.
    pub id: String,
    /// The namespace it reaches.
    pub namespace: String,
    /// `admin` or `viewer`.
    pub access: String,
    /// Who asked for it, as the audit log names them.
    pub issued_to: String,
    /// When it was issued.
    pub issued_at: String,
    /// When it stops (or stopped) working.
    pub expires_at: String,
    /// When it was revoked, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub state: String,
}
