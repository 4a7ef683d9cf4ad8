//! API tokens: issuing one, the view of one, and who a caller is.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A token to issue.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateToken {
    /// `platform-admin`, `bureau-admin`, `bureau-viewer`, `finance` or `auditor`.
    #[schema(example = "bureau-admin")]
    pub role: String,
    /// The bureau, for bureau roles (and only for them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "wjw")]
    pub bureau: Option<String>,
    /// What the token is for (at most 200 characters).
    #[serde(default)]
    #[schema(example = "卫健委信息中心 张工")]
    pub description: String,
    /// How many days the token lives, from 1 to the configured maximum
    /// (`--token-max-lifetime-days`, 365 by default); the configured default
    /// (`--token-lifetime-days`, 90 by default) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 30, minimum = 1)]
    pub lifetime_days: Option<u32>,
}

/// A token as listed: never its secret.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    /// Public id, in audit entries and change requests.
    pub id: String,
    /// Role.
    pub role: String,
    /// Bureau, for bureau roles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bureau: Option<String>,
    /// Description.
    pub description: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339: from then on the token authenticates nobody.
    pub expires_at: String,
    /// RFC 3339, once revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// A newly issued token: the only time its secret is shown.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedToken {
    /// Public id.
    pub id: String,
    /// The bearer secret. Store it now: it cannot be shown again.
    pub secret: String,
    /// Role.
    pub role: String,
    /// Bureau, for bureau roles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bureau: Option<String>,
    /// RFC 3339: from then on the token authenticates nobody.
    pub expires_at: String,
}

/// Who the caller is.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmI {
    /// Token id.
    pub token: String,
    /// Role.
    pub role: String,
    /// Bureau, for bureau roles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bureau: Option<String>,
    /// RFC 3339: when the token expires.
    pub expires_at: String,
}

/// An identity provider callers may sign in with (`zhengyun login`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignInProvider {
    /// The issuer URL: its discovery document is `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// The client id to sign in as.
    pub client_id: String,
    /// What to call it (统一身份认证).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}
