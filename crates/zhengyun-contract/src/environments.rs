//! Environments: requesting, resizing and the view of one.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zhengyun_model::{
    crd::{CatalogService, Environment, ServiceKind},
    quantity::Quantity,
};

use crate::{
    bureaus::{ConditionView, conditions},
    quota::QuotaBody,
};

/// A catalog workload in an environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceBody {
    /// DNS-1035 label.
    #[schema(example = "portal")]
    pub name: String,
    /// `web` or `postgres`.
    #[schema(example = "web")]
    pub kind: String,
    /// Pods (web only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Image (required for web).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Data volume size (required for postgres).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
}

impl ServiceBody {
    /// The catalog entry, or the message saying why `kind` is unknown.
    pub fn to_catalog(&self) -> Result<CatalogService, String> {
        let kind = match self.kind.as_str() {
            "web" => ServiceKind::Web,
            "postgres" => ServiceKind::Postgres,
            other => return Err(format!("unknown kind {other:?}, expected web or postgres")),
        };
        Ok(CatalogService {
            name: self.name.clone(),
            kind,
            replicas: self.replicas,
            image: self.image.clone(),
            storage: self.storage.clone().map(Quantity::new),
        })
    }

    fn from_catalog(service: &CatalogService) -> Self {
        ServiceBody {
            name: service.name.clone(),
            kind: match service.kind {
                ServiceKind::Web => "web",
                ServiceKind::Postgres => "postgres",
            }
            .to_owned(),
            replicas: service.replicas,
            image: service.image.clone(),
            storage: service.storage.as_ref().map(|s| s.as_str().to_owned()),
        }
    }
}

/// A request for a new environment.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateEnvironment {
    /// `<bureau>-<purpose>` (the default) or `<bureau>-<purpose>-<suffix>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "wjw-prod")]
    pub name: Option<String>,
    /// `dev`, `test`, `staging` or `prod`.
    #[schema(example = "prod")]
    pub purpose: String,
    /// `gold`, `silver` (default) or `bronze`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "silver")]
    pub tier: Option<String>,
    /// The environment's quota.
    pub quota: QuotaBody,
    /// Catalog workloads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceBody>,
    /// When a dev or test environment is removed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// Changes to an environment; absent fields stay as they are.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateEnvironment {
    /// New quota (replaces the whole quota).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaBody>,
    /// New catalog workloads (replaces the list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<ServiceBody>>,
}

/// An environment, as the operator reports it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentView {
    /// Name, also the namespace's.
    pub name: String,
    /// Owning bureau.
    pub bureau: String,
    /// Purpose.
    pub purpose: String,
    /// Tier.
    pub tier: String,
    /// Requested quota.
    pub quota: QuotaBody,
    /// Catalog workloads.
    pub services: Vec<ServiceBody>,
    /// Expiry, for dev and test.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// `Pending`, `Admitted`, `Ready`, `QuotaExceeded` or `Terminating`.
    pub phase: String,
    /// The namespace, once admitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The quota admission granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admitted_quota: Option<QuotaBody>,
    /// What the namespace uses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<QuotaBody>,
    /// Conditions.
    pub conditions: Vec<ConditionView>,
    /// RFC 3339.
    pub created_at: String,
    /// For `If-Match`.
    pub resource_version: String,
}

impl From<&Environment> for EnvironmentView {
    fn from(env: &Environment) -> Self {
        let spec = &env.spec;
        let status = env.status.clone().unwrap_or_default();
        let phase = if env.metadata.deletion_timestamp.is_some() {
            "Terminating".to_owned()
        } else {
            serde_json::to_value(status.phase.unwrap_or_default())
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "Pending".to_owned())
        };
        EnvironmentView {
            name: env.metadata.name.clone().unwrap_or_default(),
            bureau: spec.bureau.clone(),
            purpose: spec.purpose.as_str().to_owned(),
            tier: spec.tier.as_str().to_owned(),
            quota: (&spec.quota).into(),
            services: spec
                .services
                .iter()
                .map(ServiceBody::from_catalog)
                .collect(),
            expires_at: spec.expires_at.as_ref().map(|t| t.0.to_string()),
            phase,
            namespace: status.namespace.clone(),
            admitted_quota: status.admitted_quota.as_ref().map(Into::into),
            usage: status.usage.as_ref().map(Into::into),
            conditions: conditions(&status.conditions),
            created_at: env
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default(),
            resource_version: env.metadata.resource_version.clone().unwrap_or_default(),
        }
    }
}
