//! [`Quota`], the resource list of a bureau, environment or capacity pool, and
//! [`ResourceAmounts`], its parsed form in which all quota arithmetic is done.
//!
//! A resource left out of a quota counts as **zero** for accounting: a bureau that was granted
//! no GPUs has none to hand out, and an environment that asks for none takes none. That makes
//! every comparison (`fits_within`, `shortfall`) deny-by-default.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    MAX_BASE_UNITS, Quantity, QuantityError, Unit, written_bytes_schema, written_count_schema,
    written_cpu_schema,
};
use crate::validation::{ValidationErrors, field_path};

/// One kind of resource a quota can limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// CPU requests, in millicores.
    Cpu,
    /// Memory requests, in bytes.
    Memory,
    /// Persistent volume storage requests, in bytes.
    Storage,
    /// GPUs.
    Gpu,
    /// Pods.
    Pods,
    /// Services of type LoadBalancer.
    LoadBalancers,
    /// Persistent volume claims.
    PersistentVolumeClaims,
    /// Services.
    Services,
}

impl Resource {
    /// Every resource, in the order quotas list them.
    pub const ALL: [Resource; 8] = [
        Resource::Cpu,
        Resource::Memory,
        Resource::Storage,
        Resource::Gpu,
        Resource::Pods,
        Resource::LoadBalancers,
        Resource::PersistentVolumeClaims,
        Resource::Services,
    ];

    /// The field name in a [`Quota`] (`cpu`, `loadbalancers`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
            Resource::Storage => "storage",
            Resource::Gpu => "gpu",
            Resource::Pods => "pods",
            Resource::LoadBalancers => "loadbalancers",
            Resource::PersistentVolumeClaims => "persistentvolumeclaims",
            Resource::Services => "services",
        }
    }

    /// The base unit amounts of this resource are counted in.
    pub fn unit(self) -> Unit {
        match self {
            Resource::Cpu => Unit::Millicores,
            Resource::Memory | Resource::Storage => Unit::Bytes,
            _ => Unit::Count,
        }
    }

    /// The key of this resource in a namespace `ResourceQuota`'s `spec.hard` (GPUs assume the
    /// NVIDIA device plugin).
    pub fn resource_quota_key(self) -> &'static str {
        match self {
            Resource::Cpu => "requests.cpu",
            Resource::Memory => "requests.memory",
            Resource::Storage => "requests.storage",
            Resource::Gpu => "requests.nvidia.com/gpu",
            Resource::Pods => "pods",
            Resource::LoadBalancers => "services.loadbalancers",
            Resource::PersistentVolumeClaims => "persistentvolumeclaims",
            Resource::Services => "services",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much of each resource a bureau, environment or pool may use, as Kubernetes quantities
/// (`cpu: "8"`, `memory: 32Gi`). Absent resources count as zero (see the module docs).
///
/// Its schema holds each resource to the written language of its unit (see
/// [`Unit::parse_written`]); a quota the cluster or the operator wrote (in a status) is described
/// by [`ObservedQuota`] instead and read with [`Quota::observed_amounts`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Quota {
    /// CPU cores, e.g. `"24"` or `"500m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "written_cpu_schema")]
    pub cpu: Option<Quantity>,
    /// Memory, e.g. `96Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "written_bytes_schema")]
    pub memory: Option<Quantity>,
    /// Persistent storage, e.g. `768Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "written_bytes_schema")]
    pub storage: Option<Quantity>,
    /// GPUs (whole devices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "written_count_schema")]
    pub gpu: Option<Quantity>,
    /// Number of pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "written_count_schema")]
    pub pods: Option<Quantity>,
    /// Number of LoadBalancer services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "written_count_schema")]
    pub loadbalancers: Option<Quantity>,
    /// Number of persistent volume claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "written_count_schema")]
    pub persistentvolumeclaims: Option<Quantity>,
    /// Number of services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "written_count_schema")]
    pub services: Option<Quantity>,
}

/// The schema of a [`Quota`] that the cluster or the operator wrote (`status.usage`,
/// `status.admittedQuota`, `status.allocated`…): every quantity in Kubernetes' own grammar,
/// since a ResourceQuota reports `1k` pods or `500m` bytes. Only a schema; the data is a
/// [`Quota`] (`#[schemars(with = "Option<ObservedQuota>")]`).
#[derive(Debug, JsonSchema)]
#[allow(dead_code)] // never built: it only describes
pub struct ObservedQuota {
    /// CPU, e.g. `"24"` or `"500m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cpu: Option<Quantity>,
    /// Memory, e.g. `96Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory: Option<Quantity>,
    /// Persistent storage, e.g. `768Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    storage: Option<Quantity>,
    /// GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gpu: Option<Quantity>,
    /// Pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pods: Option<Quantity>,
    /// LoadBalancer services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    loadbalancers: Option<Quantity>,
    /// Persistent volume claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    persistentvolumeclaims: Option<Quantity>,
    /// Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    services: Option<Quantity>,
}

impl Quota {
    /// The quantity written for `resource`, if any.
    pub fn get(&self, resource: Resource) -> Option<&Quantity> {
        match resource {
            Resource::Cpu => self.cpu.as_ref(),
            Resource::Memory => self.memory.as_ref(),
            Resource::Storage => self.storage.as_ref(),
            Resource::Gpu => self.gpu.as_ref(),
            Resource::Pods => self.pods.as_ref(),
            Resource::LoadBalancers => self.loadbalancers.as_ref(),
            Resource::PersistentVolumeClaims => self.persistentvolumeclaims.as_ref(),
            Resource::Services => self.services.as_ref(),
        }
    }

    /// Sets (or with `None`, removes) the quantity for `resource`.
    pub fn set(&mut self, resource: Resource, quantity: Option<Quantity>) {
        let slot = match resource {
            Resource::Cpu => &mut self.cpu,
            Resource::Memory => &mut self.memory,
            Resource::Storage => &mut self.storage,
            Resource::Gpu => &mut self.gpu,
            Resource::Pods => &mut self.pods,
            Resource::LoadBalancers => &mut self.loadbalancers,
            Resource::PersistentVolumeClaims => &mut self.persistentvolumeclaims,
            Resource::Services => &mut self.services,
        };
        *slot = quantity;
    }

    /// Builder-style [`Quota::set`], handy in tests and fixtures.
    pub fn with(mut self, resource: Resource, quantity: &str) -> Self {
        self.set(resource, Some(Quantity::new(quantity)));
        self
    }

    /// Parses every quantity of a quota somebody wrote (a spec), each in the written language
    /// of its unit ([`Unit::parse_written`], the language the CRDs publish); the error names
    /// the first resource that does not parse.
    pub fn to_amounts(&self) -> Result<ResourceAmounts, (Resource, QuantityError)> {
        self.amounts_by(Quantity::parse_written)
    }

    /// Parses every quantity of a quota the cluster or the operator wrote (a status), in
    /// Kubernetes' own grammar ([`Quantity::parse`]).
    pub fn observed_amounts(&self) -> Result<ResourceAmounts, (Resource, QuantityError)> {
        self.amounts_by(Quantity::parse)
    }

    fn amounts_by(
        &self,
        parse: impl Fn(&Quantity, Unit) -> Result<u64, QuantityError>,
    ) -> Result<ResourceAmounts, (Resource, QuantityError)> {
        let mut amounts = ResourceAmounts::ZERO;
        for resource in Resource::ALL {
            if let Some(quantity) = self.get(resource) {
                let value = parse(quantity, resource.unit()).map_err(|e| (resource, e))?;
                amounts.set(resource, value);
            }
        }
        Ok(amounts)
    }

    /// Records an error for every resource of this quota (found at `path`) that is not in the
    /// written language of its unit.
    pub fn check(&self, path: &str, errors: &mut ValidationErrors) {
        for resource in Resource::ALL {
            if let Some(Err(e)) = self.get(resource).map(|q| q.parse_written(resource.unit())) {
                errors.push(field_path(path, resource.as_str()), e.to_string());
            }
        }
    }
}

/// A parsed quota: one integer per [`Resource`], in that resource's base unit. Every value is
/// at most [`MAX_BASE_UNITS`]; the checked operations keep it so.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ResourceAmounts([u64; Resource::ALL.len()]);

impl ResourceAmounts {
    /// Nothing of anything.
    pub const ZERO: Self = Self([0; Resource::ALL.len()]);

    /// The amount of `resource`, in its base unit.
    pub fn get(&self, resource: Resource) -> u64 {
        self.0[resource.index()]
    }

    /// Sets the amount of `resource`; values above [`MAX_BASE_UNITS`] are clamped to it.
    pub fn set(&mut self, resource: Resource, value: u64) {
        self.0[resource.index()] = value.min(MAX_BASE_UNITS);
    }

    /// Builder-style [`ResourceAmounts::set`].
    pub fn with(mut self, resource: Resource, value: u64) -> Self {
        self.set(resource, value);
        self
    }

    /// Each resource with its amount, in [`Resource::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Resource, u64)> + '_ {
        Resource::ALL.into_iter().map(|r| (r, self.get(r)))
    }

    /// Whether every amount is zero.
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|v| *v == 0)
    }

    /// The sum, or `None` if any resource would exceed [`MAX_BASE_UNITS`].
    pub fn checked_add(&self, other: &Self) -> Option<Self> {
        self.zip_checked(other, |a, b| {
            a.checked_add(b).filter(|v| *v <= MAX_BASE_UNITS)
        })
    }

    /// The sum, each resource clamped to [`MAX_BASE_UNITS`]: for figures that only report or
    /// bound, where an impossible overflow should not stop the sum.
    pub fn saturating_add(&self, other: &Self) -> Self {
        let mut out = *self;
        for (resource, value) in other.iter() {
            out.set(resource, self.get(resource).saturating_add(value));
        }
        out
    }

    /// The difference, or `None` if any resource would go below zero.
    pub fn checked_sub(&self, other: &Self) -> Option<Self> {
        self.zip_checked(other, u64::checked_sub)
    }

    /// The sum of many, or `None` on overflow. The sum of nothing is zero.
    pub fn checked_sum<'a>(items: impl IntoIterator<Item = &'a Self>) -> Option<Self> {
        items
            .into_iter()
            .try_fold(Self::ZERO, |total, item| total.checked_add(item))
    }

    /// Whether every resource of `self` is at most the same resource of `limit`.
    pub fn fits_within(&self, limit: &Self) -> bool {
        self.0.iter().zip(limit.0.iter()).all(|(a, b)| a <= b)
    }

    /// The resources where `self` exceeds `available`, and by how much; empty when it fits.
    pub fn shortfall(&self, available: &Self) -> Vec<Shortfall> {
        self.iter()
            .filter(|&(r, requested)| requested > available.get(r))
            .map(|(resource, requested)| Shortfall {
                resource,
                requested,
                available: available.get(resource),
            })
            .collect()
    }

    /// Each amount multiplied by `percent(resource)` / 100, rounded down (capacity is never
    /// overstated), clamped to [`MAX_BASE_UNITS`]. Used for overcommit ratios.
    pub fn scale_percent(&self, percent: impl Fn(Resource) -> u32) -> Self {
        let mut scaled = Self::ZERO;
        for (resource, value) in self.iter() {
            let product = u128::from(value) * u128::from(percent(resource)) / 100;
            scaled.set(resource, u64::try_from(product).unwrap_or(MAX_BASE_UNITS));
        }
        scaled
    }

    /// The canonical [`Quota`] for these amounts. CPU, memory and storage are always written
    /// (so that status columns show `0` rather than nothing); other resources only when non-zero.
    pub fn to_quota(&self) -> Quota {
        let mut quota = Quota::default();
        for (resource, value) in self.iter() {
            let core = matches!(
                resource,
                Resource::Cpu | Resource::Memory | Resource::Storage
            );
            if core || value != 0 {
                quota.set(
                    resource,
                    Some(Quantity::from_base_units(value, resource.unit())),
                );
            }
        }
        quota
    }

    fn zip_checked(&self, other: &Self, op: impl Fn(u64, u64) -> Option<u64>) -> Option<Self> {
        let mut result = Self::ZERO;
        for (i, (a, b)) in self.0.iter().zip(other.0.iter()).enumerate() {
            result.0[i] = op(*a, *b)?;
        }
        Some(result)
    }
}

/// One resource that is short: `requested` base units were needed, `available` were left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shortfall {
    /// The resource that does not fit.
    pub resource: Resource,
    /// How much was asked for, in base units.
    pub requested: u64,
    /// How much was available, in base units.
    pub available: u64,
}

impl Shortfall {
    /// How much is missing, in base units.
    pub fn missing(&self) -> u64 {
        self.requested.saturating_sub(self.available)
    }
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = self.resource.unit();
        write!(
            f,
            "{} requested {}, only {} available (short by {})",
            self.resource,
            unit.format(self.requested),
            unit.format(self.available),
            unit.format(self.missing())
        )
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn amounts(cpu: u64, memory: u64) -> ResourceAmounts {
        ResourceAmounts::ZERO
            .with(Resource::Cpu, cpu)
            .with(Resource::Memory, memory)
    }

    const GI: u64 = 1 << 30;

    #[test]
    fn quota_parses_into_base_units_and_absent_means_zero() {
        let quota = Quota::default()
            .with(Resource::Cpu, "24")
            .with(Resource::Memory, "96Gi")
            .with(Resource::Storage, "768Gi")
            .with(Resource::LoadBalancers, "2");
        let parsed = quota.to_amounts().expect("valid quota");
        assert_eq!(parsed.get(Resource::Cpu), 24_000);
        assert_eq!(parsed.get(Resource::Memory), 96 * GI);
        assert_eq!(parsed.get(Resource::Storage), 768 * GI);
        assert_eq!(parsed.get(Resource::LoadBalancers), 2);
        assert_eq!(parsed.get(Resource::Gpu), 0);
    }

    #[test]
    fn quota_errors_name_every_bad_resource() {
        let quota = Quota::default()
            .with(Resource::Cpu, "-1")
            .with(Resource::Memory, "lots")
            .with(Resource::Gpu, "0.5");
        assert_eq!(
            quota.to_amounts(),
            Err((Resource::Cpu, QuantityError::Negative))
        );
        let mut errors = ValidationErrors::new();
        quota.check("spec.quota", &mut errors);
        let fields: Vec<_> = errors.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["spec.quota.cpu", "spec.quota.memory", "spec.quota.gpu"]
        );
        assert_eq!(errors.errors()[0].message, "must not be negative");
    }

    #[test]
    fn quota_serializes_as_kubernetes_quantity_strings() {
        let quota = Quota::default()
            .with(Resource::Cpu, "8")
            .with(Resource::Memory, "32Gi");
        let yaml = serde_yaml::to_string(&quota).expect("serializes");
        assert_eq!(yaml, "cpu: '8'\nmemory: 32Gi\n");
        let back: Quota = serde_yaml::from_str("cpu: 8\nmemory: 32Gi\n").expect("parses");
        assert_eq!(back, quota);
    }

    #[rstest]
    #[case(amounts(1000, GI), amounts(2000, 2 * GI), true)]
    #[case(amounts(2000, 2 * GI), amounts(2000, 2 * GI), true)]
    #[case(amounts(2001, GI), amounts(2000, 2 * GI), false)]
    #[case(amounts(0, 3 * GI), amounts(2000, 2 * GI), false)]
    #[case(ResourceAmounts::ZERO, ResourceAmounts::ZERO, true)]
    #[case(ResourceAmounts::ZERO.with(Resource::Gpu, 1), amounts(u64::MAX, u64::MAX), false)]
    fn fits_within(
        #[case] request: ResourceAmounts,
        #[case] limit: ResourceAmounts,
        #[case] fits: bool,
    ) {
        assert_eq!(request.fits_within(&limit), fits);
        assert_eq!(request.shortfall(&limit).is_empty(), fits);
    }

    #[test]
    fn shortfall_names_each_short_resource_and_by_how_much() {
        let request = amounts(8000, 64 * GI).with(Resource::Gpu, 1);
        let available = amounts(6500, 96 * GI);
        let short = request.shortfall(&available);
        assert_eq!(short.len(), 2);
        assert_eq!(
            (short[0].resource, short[0].missing()),
            (Resource::Cpu, 1500)
        );
        assert_eq!((short[1].resource, short[1].missing()), (Resource::Gpu, 1));
        assert_eq!(
            short[0].to_string(),
            "cpu requested 8, only 6500m available (short by 1500m)"
        );
    }

    #[test]
    fn add_and_sub_are_checked() {
        let a = amounts(1500, GI);
        let b = amounts(500, GI);
        assert_eq!(a.checked_add(&b), Some(amounts(2000, 2 * GI)));
        assert_eq!(a.checked_sub(&b), Some(amounts(1000, 0)));
        assert_eq!(b.checked_sub(&a), None);
        let max = amounts(MAX_BASE_UNITS, 0);
        assert_eq!(max.checked_add(&amounts(1, 0)), None);
        assert_eq!(max.checked_add(&ResourceAmounts::ZERO), Some(max));
        assert_eq!(
            ResourceAmounts::checked_sum([&a, &b, &b]),
            Some(amounts(2500, 3 * GI))
        );
        assert_eq!(ResourceAmounts::checked_sum([&max, &max]), None);
        assert_eq!(
            ResourceAmounts::checked_sum([]),
            Some(ResourceAmounts::ZERO)
        );
    }

    #[test]
    fn set_clamps_to_the_representable_maximum() {
        assert_eq!(
            ResourceAmounts::ZERO
                .with(Resource::Pods, u64::MAX)
                .get(Resource::Pods),
            MAX_BASE_UNITS
        );
    }

    #[rstest]
    #[case(2_000_000, 150, 3_000_000)]
    #[case(3, 150, 4)] // rounded down
    #[case(MAX_BASE_UNITS, 1000, MAX_BASE_UNITS)] // clamped
    #[case(100, 0, 0)]
    fn overcommit_scales_by_percent(#[case] value: u64, #[case] percent: u32, #[case] scaled: u64) {
        let capacity = ResourceAmounts::ZERO
            .with(Resource::Cpu, value)
            .with(Resource::Memory, value);
        let effective = capacity.scale_percent(|r| if r == Resource::Cpu { percent } else { 100 });
        assert_eq!(effective.get(Resource::Cpu), scaled);
        assert_eq!(effective.get(Resource::Memory), value);
    }

    #[test]
    fn amounts_render_back_to_a_canonical_quota() {
        let quota = amounts(1500, 128 * GI).with(Resource::Pods, 10).to_quota();
        assert_eq!(quota.cpu.as_ref().map(Quantity::as_str), Some("1500m"));
        assert_eq!(quota.memory.as_ref().map(Quantity::as_str), Some("128Gi"));
        assert_eq!(quota.storage.as_ref().map(Quantity::as_str), Some("0"));
        assert_eq!(quota.pods.as_ref().map(Quantity::as_str), Some("10"));
        assert_eq!(quota.gpu, None);
        assert_eq!(
            quota.to_amounts().ok(),
            Some(amounts(1500, 128 * GI).with(Resource::Pods, 10))
        );
    }
}
