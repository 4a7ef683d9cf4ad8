//! The JSON the API speaks: request bodies (which refuse unknown fields) and the views of
//! bureaus, environments and change requests it answers with. They are the API's own types,
//! translated to and from the custom resources, so the HTTP surface can stay stable while the
//! resources evolve.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zhengyun_model::{
    crd::{Bureau, CatalogService, Environment, ServiceKind},
    quantity::{Quantity, Quota, Resource},
};
use zhengyun_store::ChangeRequest;

/// Resource amounts as Kubernetes quantities. Absent resources count as zero.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaBody {
    /// CPU cores, e.g. `"8"` or `"500m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "8")]
    pub cpu: Option<String>,
    /// Memory, e.g. `"32Gi"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "32Gi")]
    pub memory: Option<String>,
    /// Persistent storage, e.g. `"200Gi"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    /// Whole GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
    /// Number of pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<String>,
    /// Number of LoadBalancer services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loadbalancers: Option<String>,
    /// Number of persistent volume claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistentvolumeclaims: Option<String>,
    /// Number of services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<String>,
}

impl QuotaBody {
    /// Whether no resource is named.
    pub fn is_empty(&self) -> bool {
        *self == QuotaBody::default()
    }

    /// `current` with each resource named here set to its new amount; the resources not named
    /// keep theirs. This is how a bureau's quota request is applied.
    pub fn applied_to(&self, current: &Quota) -> Quota {
        let named = Quota::from(self.clone());
        let mut changed = current.clone();
        for resource in Resource::ALL {
            if let Some(amount) = named.get(resource) {
                changed.set(resource, Some(amount.clone()));
            }
        }
        changed
    }
}

impl From<QuotaBody> for Quota {
    fn from(body: QuotaBody) -> Self {
        let q = |v: Option<String>| v.map(Quantity::new);
        Quota {
            cpu: q(body.cpu),
            memory: q(body.memory),
            storage: q(body.storage),
            gpu: q(body.gpu),
            pods: q(body.pods),
            loadbalancers: q(body.loadbalancers),
            persistentvolumeclaims: q(body.persistentvolumeclaims),
            services: q(body.services),
        }
    }
}

impl From<&Quota> for QuotaBody {
    fn from(quota: &Quota) -> Self {
        let q = |v: &Option<Quantity>| v.as_ref().map(|v| v.as_str().to_owned());
        QuotaBody {
            cpu: q(&quota.cpu),
            memory: q(&quota.memory),
            storage: q(&quota.storage),
            gpu: q(&quota.gpu),
            pods: q(&quota.pods),
            loadbalancers: q(&quota.loadbalancers),
            persistentvolumeclaims: q(&quota.persistentvolumeclaims),
            services: q(&quota.services),
        }
    }
}

/// A quota as JSON for the audit log.
pub fn quota_json(quota: &Quota) -> serde_json::Value {
    serde_json::to_value(quota).unwrap_or_default()
}

/// A condition the operator reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConditionView {
    /// `Ready`, `Admitted`, `QuotaExceeded`, `QuotaShrinkBlocked`, `OverCapacity`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// PascalCase reason.
    pub reason: String,
    /// For a human.
    pub message: String,
    /// RFC 3339.
    pub last_transition_time: String,
}

fn conditions(list: &[Condition]) -> Vec<ConditionView> {
    list.iter()
        .map(|c| ConditionView {
            kind: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            last_transition_time: c.last_transition_time.0.to_string(),
        })
        .collect()
}

/// A new bureau.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateBureau {
    /// Short code, a DNS-1123 label of at most 40 characters (`wjw`).
    #[schema(example = "wjw")]
    pub name: String,
    /// Official name, any Unicode.
    #[schema(example = "海淀区卫生健康委员会")]
    pub display_name: String,
    /// `bureau`, `town`, `community` or `agency`.
    #[schema(example = "bureau")]
    pub kind: String,
    /// Code of the bureau this one belongs to.
    #[serde(default)]
    pub parent: Option<String>,
    /// What the bureau may hand out to its environments.
    #[serde(default)]
    pub quota: QuotaBody,
    /// Monthly budget in CNY, a decimal string with at most 2 decimals.
    #[serde(default)]
    #[schema(example = "12000.00")]
    pub monthly_budget: Option<String>,
    /// Identity-provider groups that administer the bureau's namespaces.
    #[serde(default)]
    pub admin_groups: Vec<String>,
    /// Identity-provider groups that may only look.
    #[serde(default)]
    pub viewer_groups: Vec<String>,
}

/// Changes to a bureau; absent fields stay as they are.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateBureau {
    /// New official name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// New quota (replaces the whole quota).
    #[serde(default)]
    pub quota: Option<QuotaBody>,
    /// New monthly budget.
    #[serde(default)]
    pub monthly_budget: Option<String>,
    /// New admin groups.
    #[serde(default)]
    pub admin_groups: Option<Vec<String>>,
    /// New viewer groups.
    #[serde(default)]
    pub viewer_groups: Option<Vec<String>>,
}

impl UpdateBureau {
    /// Applies the fields that are present to `spec`.
    pub fn apply_to(&self, spec: &mut zhengyun_model::crd::BureauSpec) {
        if let Some(name) = &self.display_name {
            spec.display_name = name.clone();
        }
        if let Some(quota) = &self.quota {
            spec.quota = quota.clone().into();
        }
        if let Some(budget) = &self.monthly_budget {
            spec.monthly_budget = Some(budget.clone()).filter(|b| !b.is_empty());
        }
        if let Some(groups) = &self.admin_groups {
            spec.admin_groups = groups.clone();
        }
        if let Some(groups) = &self.viewer_groups {
            spec.viewer_groups = groups.clone();
        }
    }
}

/// A bureau's request for a different quota.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QuotaIncrease {
    /// The resources to change, each with the new total the bureau asks for (at least one).
    /// Resources not named keep the quota they have when the request is approved.
    #[schema(example = json!({"cpu": "32"}))]
    pub quota: QuotaBody,
    /// Why, for the platform admin.
    #[schema(example = "汛期值守系统扩容")]
    pub reason: String,
}

/// What the operator reports about a bureau.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BureauStatusView {
    /// Σ admitted environment quotas.
    pub allocated: QuotaBody,
    /// Σ what the environments' namespaces use.
    pub used: QuotaBody,
    /// Number of environments.
    pub environments: u32,
    /// Conditions (`OverAllocated`, `OverCapacity`).
    pub conditions: Vec<ConditionView>,
}

/// A bureau.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BureauView {
    /// Short code.
    pub name: String,
    /// Official name.
    pub display_name: String,
    /// `bureau`, `town`, `community` or `agency`.
    pub kind: String,
    /// Parent bureau.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Quota.
    pub quota: QuotaBody,
    /// Monthly budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly_budget: Option<String>,
    /// Admin groups.
    pub admin_groups: Vec<String>,
    /// Viewer groups.
    pub viewer_groups: Vec<String>,
    /// As the operator reports it.
    pub status: BureauStatusView,
    /// For `If-Match`.
    pub resource_version: String,
}

impl From<&Bureau> for BureauView {
    fn from(bureau: &Bureau) -> Self {
        let spec = &bureau.spec;
        let status = bureau.status.clone().unwrap_or_default();
        BureauView {
            name: bureau.metadata.name.clone().unwrap_or_default(),
            display_name: spec.display_name.clone(),
            kind: spec.kind.as_str().to_owned(),
            parent: spec.parent.clone(),
            quota: (&spec.quota).into(),
            monthly_budget: spec.monthly_budget.clone(),
            admin_groups: spec.admin_groups.clone(),
            viewer_groups: spec.viewer_groups.clone(),
            status: BureauStatusView {
                allocated: status
                    .allocated
                    .as_ref()
                    .map(Into::into)
                    .unwrap_or_default(),
                used: status.used.as_ref().map(Into::into).unwrap_or_default(),
                environments: status.environments,
                conditions: conditions(&status.conditions),
            },
            resource_version: bureau.metadata.resource_version.clone().unwrap_or_default(),
        }
    }
}

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

impl From<&ChangeRequest> for RequestView {
    fn from(r: &ChangeRequest) -> Self {
        RequestView {
            id: r.id.clone(),
            kind: r.kind.as_str().to_owned(),
            bureau: r.bureau.clone(),
            object: r.object.clone(),
            payload: r.payload.clone(),
            note: r.note.clone(),
            state: r.state.as_str().to_owned(),
            requested_by: r.requested_by.clone(),
            requested_at: r.requested_at.to_string(),
            decided_by: r.decided_by.clone(),
            decided_at: r.decided_at.map(|t| t.to_string()),
            decision_reason: r.decision_reason.clone(),
        }
    }
}

/// A decision on a change request.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Why (required to reject).
    #[serde(default)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_change_sets_the_resources_it_names_and_keeps_the_rest() {
        let current = Quota::default()
            .with(Resource::Cpu, "2")
            .with(Resource::Memory, "64Gi")
            .with(Resource::Storage, "100Gi");
        let change = QuotaBody {
            cpu: Some("32".into()),
            gpu: Some("1".into()),
            ..Default::default()
        };
        let want = current
            .clone()
            .with(Resource::Cpu, "32")
            .with(Resource::Gpu, "1");
        assert_eq!(change.applied_to(&current), want);
        assert_eq!(QuotaBody::default().applied_to(&current), current);
    }

    #[test]
    fn a_quota_body_is_empty_only_when_it_names_nothing() {
        assert!(QuotaBody::default().is_empty());
        let pods = QuotaBody {
            pods: Some("0".into()),
            ..Default::default()
        };
        assert!(!pods.is_empty());
    }
}
