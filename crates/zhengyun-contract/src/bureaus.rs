//! Bureaus: creating and changing one, asking for more quota, and the view of one.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zhengyun_model::crd::Bureau;

use crate::quota::QuotaBody;

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

/// The conditions of a resource's status as the API shows them.
pub fn conditions(list: &[Condition]) -> Vec<ConditionView> {
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
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// What the bureau may hand out to its environments.
    #[serde(default)]
    pub quota: QuotaBody,
    /// Monthly budget in CNY, a decimal string with at most 2 decimals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "12000.00")]
    pub monthly_budget: Option<String>,
    /// Identity-provider groups that administer the bureau's namespaces.
    #[serde(default)]
    pub admin_groups: Vec<String>,
    /// Identity-provider groups that may only look.
    #[serde(default)]
    pub viewer_groups: Vec<String>,
    /// Domains the bureau may publish under besides `<bureau>.<the platform's domain>`; never
    /// the platform's domain, one above it, or a name under another bureau's
    /// `<bureau>.<the platform's domain>` (422).
    #[serde(default)]
    #[schema(example = json!(["wjw.bj.gov.cn"]))]
    pub domains: Vec<String>,
}

/// Changes to a bureau; absent fields stay as they are.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateBureau {
    /// New official name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// New quota (replaces the whole quota).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaBody>,
    /// New monthly budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_budget: Option<String>,
    /// New admin groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_groups: Option<Vec<String>>,
    /// New viewer groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewer_groups: Option<Vec<String>>,
    /// New domains of its own to publish under (replaces the list), under the same rule as
    /// at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domains: Option<Vec<String>>,
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
        if let Some(domains) = &self.domains {
            spec.domains = domains.clone();
        }
    }
}

/// A bureau's request for a different quota.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
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
    /// Σ the environments' burst allowances: what burst pods may request now, on top of the
    /// quota (empty while the pool does not lend).
    #[serde(default)]
    pub burst_allowance: QuotaBody,
    /// Σ what the environments' burst pods request now.
    #[serde(default)]
    pub burst_used: QuotaBody,
    /// Charges this month for capacity borrowed as burst (CNY), when it borrowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst_charges_this_month: Option<String>,
    /// Credits this month for reserved capacity lent while idle (CNY), when it lent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lent_credits_this_month: Option<String>,
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
    /// Domains of its own to publish under.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
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
            domains: spec.domains.clone(),
            status: BureauStatusView {
                allocated: status
                    .allocated
                    .as_ref()
                    .map(Into::into)
                    .unwrap_or_default(),
                used: status.used.as_ref().map(Into::into).unwrap_or_default(),
                burst_allowance: status
                    .burst_allowance
                    .as_ref()
                    .map(Into::into)
                    .unwrap_or_default(),
                burst_used: status
                    .burst_used
                    .as_ref()
                    .map(Into::into)
                    .unwrap_or_default(),
                burst_charges_this_month: status.burst_charges_this_month.clone(),
                lent_credits_this_month: status.lent_credits_this_month.clone(),
                environments: status.environments,
                conditions: conditions(&status.conditions),
            },
            resource_version: bureau.metadata.resource_version.clone().unwrap_or_default(),
        }
    }
}
