//! `Bureau`: a tenant (委办局, 街镇, 社区 or agency) with a quota it hands out to its environments.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::Condition;
use crate::{
    names::{self, BureauKind},
    quantity::{ObservedQuota, Quota},
    validation::{Validate, ValidationErrors, check_decimal, field_path},
};

/// Fractional digits allowed in `monthlyBudget`: whole fen (分).
pub const BUDGET_MAX_SCALE: usize = 2;

/// Most groups in `adminGroups` or in `viewerGroups`; bounds the cost of CEL rules on them.
pub const MAX_GROUPS: usize = 32;

/// A tenant of the platform. `metadata.name` is its short code (e.g. `wjw`), which prefixes the
/// names of all its environments and namespaces.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "zhengyun.io",
    version = "v1alpha1",
    kind = "Bureau",
    plural = "bureaus",
    shortname = "bu",
    category = "zhengyun",
    status = "BureauStatus",
    derive = "PartialEq",
    doc = "A tenant of the platform: a bureau, town, community or agency with a quota.",
    printcolumn(name = "Display Name", type_ = "string", json_path = ".spec.displayName"),
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.kind"),
    printcolumn(name = "CPU", type_ = "string", json_path = ".spec.quota.cpu"),
    printcolumn(name = "Memory", type_ = "string", json_path = ".spec.quota.memory"),
    printcolumn(name = "Allocated CPU", type_ = "string", json_path = ".status.allocated.cpu"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    // The apiserver already holds every name to DNS-1123 subdomain syntax; a label has no dots.
    validation = Rule::new("self.metadata.name.size() <= 40 && !self.metadata.name.contains('.')")
        .message("metadata.name must be a bureau code: a DNS-1123 label (no dots) of at most 40 characters"),
    validation = Rule::new("self.metadata.name != 'kube' && !self.metadata.name.startsWith('kube-')")
        .message("bureau codes 'kube' and 'kube-*' are reserved"),
    // names::PURPOSE_SEGMENT_PATTERN: every environment name belongs to one bureau.
    validation = Rule::new("!self.metadata.name.matches('(^|-)(dev|test|staging|prod)(-|$)')")
        .message("metadata.name must not have a purpose (dev, test, staging, prod) as a '-'-separated segment, so that every environment name <bureau>-<purpose> belongs to one bureau"),
    validation = Rule::new("!has(self.spec.parent) || self.spec.parent != self.metadata.name")
        .message("a bureau cannot be its own parent"),
)]
#[serde(rename_all = "camelCase")]
pub struct BureauSpec {
    /// Official name, any Unicode, e.g. 区卫生健康委员会.
    #[schemars(length(min = 1, max = 128))]
    #[x_kube(validation = Rule::new("self == self.trim()").message("displayName must not start or end with whitespace"))]
    // names::HIDDEN_TEXT_PATTERN
    #[x_kube(validation = Rule::new(r"!self.matches('[\\p{Cc}\\p{Cf}\\p{Zl}\\p{Zp}]')").message("displayName must not contain control or format characters (such as bidirectional controls or zero-width characters)"))]
    pub display_name: String,

    /// What kind of public body this is.
    pub kind: BureauKind,

    /// Code of the bureau this one belongs to (e.g. a community's town).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40), regex(pattern = names::DNS1123_LABEL_PATTERN))]
    #[x_kube(validation = Rule::new("!self.matches('(^|-)(dev|test|staging|prod)(-|$)')").message("parent must be a bureau code, which has no purpose (dev, test, staging, prod) as a segment"))]
    pub parent: Option<String>,

    /// Everything this bureau may hand out to its environments.
    #[serde(default)]
    pub quota: Quota,

    /// Monthly budget in CNY, as a decimal string with up to 2 decimals (`"12000.00"`): the
    /// budget of an average month. Each month's budget is its share by length of twelve times
    /// this (a 31-day month more, February less), so a year's months add up to twelve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{1,15}(\.[0-9]{1,2})?$"))]
    pub monthly_budget: Option<String>,

    /// Identity-provider groups whose members administer this bureau's environments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 256)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[x_kube(validation = Rule::new("self.all(g, !g.startsWith('system:'))").message("adminGroups must not contain Kubernetes system groups (system:…)"))]
    pub admin_groups: Vec<String>,

    /// Identity-provider groups whose members may only look.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 256)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[x_kube(validation = Rule::new("self.all(g, !g.startsWith('system:'))").message("viewerGroups must not contain Kubernetes system groups (system:…)"))]
    pub viewer_groups: Vec<String>,

    /// Domains this bureau may publish applications under besides `<bureau>.<the pool's
    /// domain>` (its Ingresses and routes may name these and any name below them), granted by a
    /// platform admin: `wjw.bj.gov.cn`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 3, max = 253), regex(pattern = names::DOMAIN_PATTERN)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub domains: Vec<String>,
}

/// What the operator observed about a bureau.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BureauStatus {
    /// Sum of the quotas of this bureau's admitted environments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<ObservedQuota>")]
    pub allocated: Option<Quota>,

    /// Sum of what this bureau's environments actually request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<ObservedQuota>")]
    pub used: Option<Quota>,

    /// Sum of the burst allowances of this bureau's environments: what its burst pods may
    /// request now, on top of its quota. Absent while the pool does not lend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<ObservedQuota>")]
    pub burst_allowance: Option<Quota>,

    /// Sum of what this bureau's burst pods request now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<ObservedQuota>")]
    pub burst_used: Option<Quota>,

    /// Number of environments of this bureau.
    #[serde(default)]
    // Kubernetes knows int32, not the uint32 schemars writes for u32.
    #[schemars(extend("format" = "int32"))]
    pub environments: u32,

    /// The month `costToDate` and `costForecast` are for (`YYYY-MM`, platform time zone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_month: Option<String>,

    /// Charges so far this month in CNY, as a decimal string: the month-to-date statement
    /// amount plus adjustments booked to the month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_to_date: Option<String>,

    /// Forecast charges at the end of the month in CNY: month-to-date usage extrapolated
    /// linearly over the month's seconds, plus adjustments. Absent before the ledger covers
    /// any of the month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_forecast: Option<String>,

    /// Charges so far this month in CNY for capacity borrowed as burst, at the burst price
    /// (included in `costToDate`). Absent when the bureau borrowed nothing this month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst_charges_this_month: Option<String>,

    /// Credits so far this month in CNY for reserved capacity the bureau left idle while
    /// others borrowed (deducted in `costToDate`). Absent when it lent nothing this month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lent_credits_this_month: Option<String>,

    /// Standard conditions, one per `type`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl BureauSpec {
    fn check(&self, path: &str, errors: &mut ValidationErrors) {
        let at = |field| field_path(path, field);
        errors.check(
            at("displayName"),
            names::check_display_name(&self.display_name),
        );
        if let Some(parent) = &self.parent {
            errors.check(at("parent"), names::check_bureau_code(parent));
        }
        self.quota.check(&at("quota"), errors);
        if let Some(budget) = &self.monthly_budget {
            errors.check(at("monthlyBudget"), check_decimal(budget, BUDGET_MAX_SCALE));
        }
        check_groups(&self.admin_groups, &at("adminGroups"), errors);
        check_groups(&self.viewer_groups, &at("viewerGroups"), errors);
        self.check_domains(&at("domains"), errors);
    }

    fn check_domains(&self, path: &str, errors: &mut ValidationErrors) {
        if self.domains.len() > MAX_DOMAINS {
            errors.push(path, format!("must list at most {MAX_DOMAINS} domains"));
        }
        for (i, domain) in self.domains.iter().enumerate() {
            let item = format!("{path}[{i}]");
            errors.check(item.clone(), names::check_domain(domain));
            if self.domains[..i].contains(domain) {
                errors.push(item, format!("duplicate domain {domain:?}"));
            }
        }
    }

    /// Checks the granted `domains` of bureau `code` against the platform's domain (the
    /// capacity pool's `publishing.domain`), with [`names::check_granted_domain`]: never the
    /// platform's domain, a domain above it, or a name under another bureau's
    /// `<other>.<platform>`. The admission policy `zhengyun-bureau-domains` holds the same rule
    /// for `kubectl`.
    pub fn check_granted_domains(
        &self,
        code: &str,
        platform: &str,
    ) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        for (i, domain) in self.domains.iter().enumerate() {
            errors.check(
                format!("spec.domains[{i}]"),
                names::check_granted_domain(code, domain, platform),
            );
        }
        errors.into_result()
    }
}

/// Most domains in `domains`.
pub const MAX_DOMAINS: usize = 16;

fn check_groups(groups: &[String], path: &str, errors: &mut ValidationErrors) {
    if groups.len() > MAX_GROUPS {
        errors.push(path, format!("must list at most {MAX_GROUPS} groups"));
    }
    for (i, group) in groups.iter().enumerate() {
        let item = format!("{path}[{i}]");
        errors.check(item.clone(), names::check_group_name(group));
        if groups[..i].contains(group) {
            errors.push(item, format!("duplicate group {group:?}"));
        }
    }
}

impl Validate for BureauSpec {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        self.check("spec", &mut errors);
        errors.into_result()
    }
}

impl Validate for Bureau {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let name = self.metadata.name.as_deref().unwrap_or_default();
        errors.check("metadata.name", names::check_bureau_code(name));
        if self.spec.parent.as_deref() == Some(name) {
            errors.push("spec.parent", "a bureau cannot be its own parent");
        }
        self.spec.check("spec", &mut errors);
        errors.into_result()
    }
}
