//! Quotas as the API speaks them: each resource a Kubernetes quantity string.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zhengyun_model::quantity::{Quantity, Quota, Resource};

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

impl QuotaBody {
    /// The amount named for `resource`, if any.
    pub fn get(&self, resource: Resource) -> Option<&str> {
        let amount = match resource {
            Resource::Cpu => &self.cpu,
            Resource::Memory => &self.memory,
            Resource::Storage => &self.storage,
            Resource::Gpu => &self.gpu,
            Resource::Pods => &self.pods,
            Resource::LoadBalancers => &self.loadbalancers,
            Resource::PersistentVolumeClaims => &self.persistentvolumeclaims,
            Resource::Services => &self.services,
        };
        amount.as_deref()
    }

    /// This quota with the resources `other` names set to `other`'s amounts.
    pub fn merged_with(&self, other: &QuotaBody) -> QuotaBody {
        let pick = |mine: &Option<String>, theirs: &Option<String>| {
            theirs.clone().or_else(|| mine.clone())
        };
        QuotaBody {
            cpu: pick(&self.cpu, &other.cpu),
            memory: pick(&self.memory, &other.memory),
            storage: pick(&self.storage, &other.storage),
            gpu: pick(&self.gpu, &other.gpu),
            pods: pick(&self.pods, &other.pods),
            loadbalancers: pick(&self.loadbalancers, &other.loadbalancers),
            persistentvolumeclaims: pick(
                &self.persistentvolumeclaims,
                &other.persistentvolumeclaims,
            ),
            services: pick(&self.services, &other.services),
        }
    }
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
