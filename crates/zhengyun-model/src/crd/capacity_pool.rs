//! `CapacityPool`: the singleton (`default`) describing what the cluster can give out, how far
//! it may be overcommitted, and the per-tier and per-container defaults the operator applies.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, ServiceLevels};
use crate::{
    names::Tier,
    quantity::{
        ObservedQuota, Quantity, QuantityError, Quota, Resource, ResourceAmounts, Unit,
        written_bytes_schema, written_cpu_schema,
    },
    validation::{Validate, ValidationErrors, field_path},
};

/// The only allowed name of the capacity pool.
pub const POOL_NAME: &str = "default";

/// Highest overcommit ratio accepted, in percent (10×).
pub const MAX_OVERCOMMIT_PERCENT: u32 = 1000;

/// What the cluster can give out. There is exactly one, named `default`.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "zhengyun.io",
    version = "v1alpha1",
    kind = "CapacityPool",
    plural = "capacitypools",
    shortname = "cp",
    category = "zhengyun",
    status = "CapacityPoolStatus",
    derive = "PartialEq",
    doc = "What the cluster can give out (singleton named 'default'): capacity, overcommit and defaults.",
    printcolumn(name = "CPU", type_ = "string", json_path = ".spec.capacity.cpu"),
    printcolumn(name = "Memory", type_ = "string", json_path = ".spec.capacity.memory"),
    printcolumn(name = "Storage", type_ = "string", json_path = ".spec.capacity.storage"),
    printcolumn(name = "CPU Overcommit %", type_ = "integer", json_path = ".spec.overcommit.cpuPercent"),
    printcolumn(name = "Allocated CPU", type_ = "string", json_path = ".status.allocated.cpu"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name == 'default'")
        .message("the capacity pool is a singleton and must be named 'default'"),
)]
#[serde(rename_all = "camelCase")]
pub struct CapacityPoolSpec {
    /// Physical capacity of the cluster available to tenants.
    pub capacity: Quota,

    /// How far the sum of bureau quotas may exceed the capacity.
    #[serde(default)]
    pub overcommit: Overcommit,

    /// PriorityClass given to the pods of each tier.
    #[serde(default)]
    pub priority_classes: TierPriorityClasses,

    /// Value of each tier's PriorityClass (default gold 100000, silver 10000, bronze 1000). On a
    /// cluster with workloads of its own, choose values that place the tiers where they belong
    /// among them. A PriorityClass's value never changes once created: to change a value, name
    /// new classes in `priorityClasses` too.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self.gold > self.silver && self.silver > self.bronze && self.bronze > self.burst").message("priorityValues: gold must be above silver, silver above bronze and bronze above burst"))]
    pub priority_values: TierPriorityValues,

    /// Whether and how far bureaus at their quota may borrow capacity that others reserved and
    /// left idle, running pods of the burst PriorityClass that give the room back when needed.
    #[serde(default)]
    pub borrowing: Borrowing,

    /// Defaults of the LimitRange in every environment namespace.
    #[serde(default)]
    pub limit_range: LimitRangeDefaults,

    /// Most objects of each kind in one environment namespace, so that no bureau can exhaust
    /// the API server's storage. An environment that sets `pods`, `services` or
    /// `persistentvolumeclaims` in its own quota gets that instead.
    #[serde(default)]
    pub object_counts: ObjectCounts,

    /// The availability each tier promises, the credits a month below it earns on the bill,
    /// and the announced maintenance windows (default: gold 99.95 %, silver 99.9 %, bronze
    /// 99.5 %, each crediting 10 % of the month's charges below its objective, 25 % below 99 %
    /// and 100 % below 95 %).
    #[serde(default)]
    pub service_levels: ServiceLevels,

    /// How tenants publish applications: the domain each bureau's hostnames live under, and
    /// the namespace of the ingress controller whose traffic may reach tenant pods.
    #[serde(default)]
    pub publishing: Publishing,
}

/// How tenants publish applications through the cluster's ingress controller (or gateway).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Publishing {
    /// The platform's domain: bureau `wjw` may publish `wjw.<domain>` and any name below it
    /// (`portal.wjw.apps.haidian.gov.cn`). Without it, and without domains of its own
    /// (`Bureau.spec.domains`), a bureau may publish no hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 200), regex(pattern = crate::names::DOMAIN_PATTERN))]
    pub domain: Option<String>,
    /// The namespace of the ingress controller (or gateway) that tenants' Ingresses and routes
    /// go through: its pods may reach tenant pods despite the default-deny network policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = crate::names::DNS1123_LABEL_PATTERN))]
    pub controller_namespace: Option<String>,
}

/// Most objects of each kind in one environment namespace (its ResourceQuota's counts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectCounts {
    /// Pods that are not finished (default 500).
    #[serde(default = "ObjectCounts::default_pods")]
    #[schemars(range(min = 1, max = 1_000_000), extend("format" = "int32"))]
    pub pods: u32,
    /// Services (default 100).
    #[serde(default = "ObjectCounts::default_services")]
    #[schemars(range(min = 1, max = 1_000_000), extend("format" = "int32"))]
    pub services: u32,
    /// PersistentVolumeClaims (default 100).
    #[serde(default = "ObjectCounts::default_claims")]
    #[schemars(range(min = 1, max = 1_000_000), extend("format" = "int32"))]
    pub persistentvolumeclaims: u32,
    /// Secrets (default 500).
    #[serde(default = "ObjectCounts::default_secrets")]
    #[schemars(range(min = 1, max = 1_000_000), extend("format" = "int32"))]
    pub secrets: u32,
    /// ConfigMaps (default 500).
    #[serde(default = "ObjectCounts::default_config_maps")]
    #[schemars(range(min = 1, max = 1_000_000), extend("format" = "int32"))]
    pub configmaps: u32,
}

impl ObjectCounts {
    fn default_pods() -> u32 {
        500
    }
    fn default_services() -> u32 {
        100
    }
    fn default_claims() -> u32 {
        100
    }
    fn default_secrets() -> u32 {
        500
    }
    fn default_config_maps() -> u32 {
        500
    }
}

impl Default for ObjectCounts {
    fn default() -> Self {
        Self {
            pods: Self::default_pods(),
            services: Self::default_services(),
            persistentvolumeclaims: Self::default_claims(),
            secrets: Self::default_secrets(),
            configmaps: Self::default_config_maps(),
        }
    }
}

/// Overcommit ratios in percent: 150 means bureau quotas may add up to 1.5× the capacity.
/// Only CPU, memory and storage can be overcommitted; GPUs and object counts never are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Overcommit {
    /// CPU ratio in percent.
    #[serde(default = "hundred")]
    #[schemars(range(min = 1, max = 1000))]
    // Kubernetes knows int32, not the uint32 schemars writes for u32.
    #[schemars(extend("format" = "int32"))]
    pub cpu_percent: u32,
    /// Memory ratio in percent.
    #[serde(default = "hundred")]
    #[schemars(range(min = 1, max = 1000))]
    // Kubernetes knows int32, not the uint32 schemars writes for u32.
    #[schemars(extend("format" = "int32"))]
    pub memory_percent: u32,
    /// Storage ratio in percent.
    #[serde(default = "hundred")]
    #[schemars(range(min = 1, max = 1000))]
    // Kubernetes knows int32, not the uint32 schemars writes for u32.
    #[schemars(extend("format" = "int32"))]
    pub storage_percent: u32,
}

fn hundred() -> u32 {
    100
}

impl Default for Overcommit {
    fn default() -> Self {
        Self {
            cpu_percent: 100,
            memory_percent: 100,
            storage_percent: 100,
        }
    }
}

impl Overcommit {
    /// The ratio in percent for `resource` (100 for resources that cannot be overcommitted).
    pub fn percent(&self, resource: Resource) -> u32 {
        match resource {
            Resource::Cpu => self.cpu_percent,
            Resource::Memory => self.memory_percent,
            Resource::Storage => self.storage_percent,
            _ => 100,
        }
    }

    fn check(&self, path: &str, errors: &mut ValidationErrors) {
        let fields = [
            ("cpuPercent", self.cpu_percent),
            ("memoryPercent", self.memory_percent),
            ("storagePercent", self.storage_percent),
        ];
        for (field, percent) in fields {
            if !(1..=MAX_OVERCOMMIT_PERCENT).contains(&percent) {
                errors.push(
                    field_path(path, field),
                    format!("must be between 1 and {MAX_OVERCOMMIT_PERCENT}"),
                );
            }
        }
    }
}

/// The borrowing policy: bureaus at their quota may run burst pods on capacity the pool can
/// lend (node capacity that no guaranteed pod requests, less a safety margin), up to an
/// allowance per environment that the operator sets and lowers as that capacity shrinks.
/// Burst pods are charged at a fraction of the consumption price, and a share of that revenue
/// is credited to the bureaus whose reserved capacity sat idle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Borrowing {
    /// Whether burst pods may run at all (default off: pods of the burst class are refused).
    #[serde(default)]
    pub enabled: bool,
    /// The most an environment may borrow, in percent of its own granted quota (default 50).
    #[serde(default = "Borrowing::default_max_borrow")]
    #[schemars(range(min = 0, max = 1000), extend("format" = "int32"))]
    pub max_borrow_percent: u32,
    /// Price of burst capacity in percent of the consumption price (default 40).
    #[serde(default = "Borrowing::default_burst_price")]
    #[schemars(range(min = 0, max = 100), extend("format" = "int32"))]
    pub burst_price_percent: u32,
    /// Share of burst revenue credited to the lending bureaus, in percent (default 70); the
    /// platform keeps the rest.
    #[serde(default = "Borrowing::default_lender_share")]
    #[schemars(range(min = 0, max = 100), extend("format" = "int32"))]
    pub lender_share_percent: u32,
    /// Seconds a reclaimed burst pod is given to stop (default 30).
    #[serde(default = "Borrowing::default_grace")]
    #[schemars(range(min = 0, max = 3600), extend("format" = "int32"))]
    pub reclaim_grace_seconds: u32,
    /// Share of node capacity never lent, in percent (default 10).
    #[serde(default = "Borrowing::default_margin")]
    #[schemars(range(min = 0, max = 90), extend("format" = "int32"))]
    pub safety_margin_percent: u32,
    /// An allowance is raised only when it would grow by at least this percent of its cap
    /// (default 10), so that allowances do not flap; it is lowered at once.
    #[serde(default = "Borrowing::default_hysteresis")]
    #[schemars(range(min = 0, max = 100), extend("format" = "int32"))]
    pub hysteresis_percent: u32,
}

impl Borrowing {
    fn default_max_borrow() -> u32 {
        50
    }
    fn default_burst_price() -> u32 {
        40
    }
    fn default_lender_share() -> u32 {
        70
    }
    fn default_grace() -> u32 {
        30
    }
    fn default_margin() -> u32 {
        10
    }
    fn default_hysteresis() -> u32 {
        10
    }

    fn check(&self, path: &str, errors: &mut ValidationErrors) {
        let fields = [
            ("maxBorrowPercent", self.max_borrow_percent, 1000),
            ("burstPricePercent", self.burst_price_percent, 100),
            ("lenderSharePercent", self.lender_share_percent, 100),
            ("reclaimGraceSeconds", self.reclaim_grace_seconds, 3600),
            ("safetyMarginPercent", self.safety_margin_percent, 90),
            ("hysteresisPercent", self.hysteresis_percent, 100),
        ];
        for (field, value, max) in fields {
            if value > max {
                errors.push(
                    field_path(path, field),
                    format!("must be between 0 and {max}"),
                );
            }
        }
    }
}

impl Default for Borrowing {
    fn default() -> Self {
        Self {
            enabled: false,
            max_borrow_percent: Self::default_max_borrow(),
            burst_price_percent: Self::default_burst_price(),
            lender_share_percent: Self::default_lender_share(),
            reclaim_grace_seconds: Self::default_grace(),
            safety_margin_percent: Self::default_margin(),
            hysteresis_percent: Self::default_hysteresis(),
        }
    }
}

/// Name of the PriorityClass for each tier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TierPriorityClasses {
    /// PriorityClass of gold environments.
    #[serde(default = "default_gold")]
    #[schemars(length(min = 1, max = 253))]
    pub gold: String,
    /// PriorityClass of silver environments.
    #[serde(default = "default_silver")]
    #[schemars(length(min = 1, max = 253))]
    pub silver: String,
    /// PriorityClass of bronze environments.
    #[serde(default = "default_bronze")]
    #[schemars(length(min = 1, max = 253))]
    pub bronze: String,
    /// PriorityClass of burst pods: below every tier, and never preempting (default
    /// `zhengyun-burst`).
    #[serde(default = "default_burst")]
    #[schemars(length(min = 1, max = 253))]
    pub burst: String,
}

/// The highest value a PriorityClass that is not a system class may have.
pub const MAX_PRIORITY_VALUE: i32 = 1_000_000_000;

/// The value of each tier's PriorityClass; gold above silver above bronze.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TierPriorityValues {
    /// Value of the gold tier's PriorityClass.
    #[serde(default = "default_gold_value")]
    #[schemars(range(min = 0, max = 1_000_000_000))]
    pub gold: i32,
    /// Value of the silver tier's PriorityClass.
    #[serde(default = "default_silver_value")]
    #[schemars(range(min = 0, max = 1_000_000_000))]
    pub silver: i32,
    /// Value of the bronze tier's PriorityClass.
    #[serde(default = "default_bronze_value")]
    #[schemars(range(min = 0, max = 1_000_000_000))]
    pub bronze: i32,
    /// Value of the burst PriorityClass, below bronze (default -100: below pods that name no
    /// class too, which have priority 0, so that any tenant pod can take its room back).
    #[serde(default = "default_burst_value")]
    #[schemars(range(min = -1_000_000_000, max = 1_000_000_000))]
    pub burst: i32,
}

fn default_gold_value() -> i32 {
    100_000
}

fn default_silver_value() -> i32 {
    10_000
}

fn default_bronze_value() -> i32 {
    1_000
}

fn default_burst_value() -> i32 {
    -100
}

impl Default for TierPriorityValues {
    fn default() -> Self {
        Self {
            gold: default_gold_value(),
            silver: default_silver_value(),
            bronze: default_bronze_value(),
            burst: default_burst_value(),
        }
    }
}

impl TierPriorityValues {
    /// The value for `tier`.
    pub fn for_tier(&self, tier: Tier) -> i32 {
        match tier {
            Tier::Gold => self.gold,
            Tier::Silver => self.silver,
            Tier::Bronze => self.bronze,
        }
    }

    fn check(&self, path: &str, errors: &mut ValidationErrors) {
        for &tier in Tier::ALL {
            let value = self.for_tier(tier);
            if !(0..=MAX_PRIORITY_VALUE).contains(&value) {
                errors.push(
                    field_path(path, tier.as_str()),
                    format!("must be from 0 to {MAX_PRIORITY_VALUE} (higher values are for system classes)"),
                );
            }
        }
        if !(-MAX_PRIORITY_VALUE..=MAX_PRIORITY_VALUE).contains(&self.burst) {
            errors.push(
                field_path(path, "burst"),
                format!("must be from -{MAX_PRIORITY_VALUE} to {MAX_PRIORITY_VALUE}"),
            );
        }
        if !(self.gold > self.silver && self.silver > self.bronze && self.bronze > self.burst) {
            errors.push(
                path.to_owned(),
                "gold must be above silver, silver above bronze and bronze above burst".to_owned(),
            );
        }
    }
}

fn default_gold() -> String {
    "zhengyun-gold".to_owned()
}

fn default_silver() -> String {
    "zhengyun-silver".to_owned()
}

fn default_bronze() -> String {
    "zhengyun-bronze".to_owned()
}

fn default_burst() -> String {
    "zhengyun-burst".to_owned()
}

impl Default for TierPriorityClasses {
    fn default() -> Self {
        Self {
            gold: default_gold(),
            silver: default_silver(),
            bronze: default_bronze(),
            burst: default_burst(),
        }
    }
}

impl TierPriorityClasses {
    /// The PriorityClass name for `tier`.
    pub fn for_tier(&self, tier: Tier) -> &str {
        match tier {
            Tier::Gold => &self.gold,
            Tier::Silver => &self.silver,
            Tier::Bronze => &self.bronze,
        }
    }

    fn check(&self, path: &str, errors: &mut ValidationErrors) {
        for &tier in Tier::ALL {
            errors.check(
                field_path(path, tier.as_str()),
                check_dns1123_subdomain(self.for_tier(tier)),
            );
        }
        errors.check(
            field_path(path, "burst"),
            check_dns1123_subdomain(&self.burst),
        );
        if Tier::ALL.iter().any(|&t| self.for_tier(t) == self.burst) {
            errors.push(
                field_path(path, "burst"),
                "must differ from every tier's PriorityClass".to_owned(),
            );
        }
    }
}

/// PriorityClass names are DNS-1123 subdomains: labels joined by dots, at most 253 characters.
fn check_dns1123_subdomain(name: &str) -> Result<(), String> {
    if name.len() > 253 {
        return Err("must be at most 253 characters".to_owned());
    }
    name.split('.')
        .try_for_each(|label| {
            crate::names::check_dns1123_label(label, crate::names::DNS1123_LABEL_MAX_LEN)
        })
        .map_err(|_| {
            format!(
                "{name:?} must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.')"
            )
        })
}

/// Defaults for containers that do not declare their own requests and limits, so that every
/// pod counts against the namespace quota.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitRangeDefaults {
    /// Default requests.
    #[serde(default = "ContainerResources::default_request")]
    pub default_request: ContainerResources,
    /// Default limits.
    #[serde(default = "ContainerResources::default_limit")]
    pub default: ContainerResources,
}

impl Default for LimitRangeDefaults {
    fn default() -> Self {
        Self {
            default_request: ContainerResources::default_request(),
            default: ContainerResources::default_limit(),
        }
    }
}

impl LimitRangeDefaults {
    fn check(&self, path: &str, errors: &mut ValidationErrors) {
        let request = self
            .default_request
            .parse(&field_path(path, "defaultRequest"), errors);
        let limit = self.default.parse(&field_path(path, "default"), errors);
        if let (Some(request), Some(limit)) = (request, limit) {
            for (field, req, lim) in [("cpu", request.0, limit.0), ("memory", request.1, limit.1)] {
                if req > lim {
                    let at = field_path(&field_path(path, "defaultRequest"), field);
                    errors.push(at, format!("must not exceed {path}.default.{field}"));
                }
            }
        }
    }
}

/// CPU and memory of one container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ContainerResources {
    /// CPU, e.g. `100m`.
    #[schemars(schema_with = "written_cpu_schema")]
    pub cpu: Quantity,
    /// Memory, e.g. `128Mi`.
    #[schemars(schema_with = "written_bytes_schema")]
    pub memory: Quantity,
}

impl ContainerResources {
    fn default_request() -> Self {
        Self {
            cpu: "100m".into(),
            memory: "128Mi".into(),
        }
    }

    fn default_limit() -> Self {
        Self {
            cpu: "500m".into(),
            memory: "512Mi".into(),
        }
    }

    /// (millicores, bytes), recording errors against `path`.
    fn parse(&self, path: &str, errors: &mut ValidationErrors) -> Option<(u64, u64)> {
        let cpu = self.cpu.parse_written(Unit::Millicores);
        let memory = self.memory.parse_written(Unit::Bytes);
        if let Err(e) = &cpu {
            errors.push(field_path(path, "cpu"), e.to_string());
        }
        if let Err(e) = &memory {
            errors.push(field_path(path, "memory"), e.to_string());
        }
        Some((cpu.ok()?, memory.ok()?))
    }
}

/// What the operator observed about the pool.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapacityPoolStatus {
    /// Sum of all bureau quotas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<ObservedQuota>")]
    pub allocated: Option<Quota>,

    /// Standard conditions, one per `type`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl CapacityPoolSpec {
    /// What bureau quotas may add up to: capacity × overcommit, rounded down.
    pub fn effective_capacity(&self) -> Result<ResourceAmounts, (Resource, QuantityError)> {
        let capacity = self.capacity.to_amounts()?;
        Ok(capacity.scale_percent(|r| self.overcommit.percent(r)))
    }

    fn check(&self, path: &str, errors: &mut ValidationErrors) {
        let at = |field| field_path(path, field);
        self.capacity.check(&at("capacity"), errors);
        self.overcommit.check(&at("overcommit"), errors);
        self.priority_classes.check(&at("priorityClasses"), errors);
        self.priority_values.check(&at("priorityValues"), errors);
        self.limit_range.check(&at("limitRange"), errors);
        self.borrowing.check(&at("borrowing"), errors);
        self.service_levels.check(&at("serviceLevels"), errors);
    }
}

impl Validate for CapacityPoolSpec {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        self.check("spec", &mut errors);
        errors.into_result()
    }
}

impl Validate for CapacityPool {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if self.metadata.name.as_deref() != Some(POOL_NAME) {
            errors.push(
                "metadata.name",
                format!("must be {POOL_NAME:?}: the capacity pool is a singleton"),
            );
        }
        self.spec.check("spec", &mut errors);
        errors.into_result()
    }
}
