//! `Environment`: one environment of one bureau, named `<bureau>-<purpose>`, which the operator
//! admits against the bureau's quota and turns into a namespace.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, Time};
use crate::{
    names::{self, Purpose, Tier},
    quantity::{ObservedQuota, Quantity, Quota, Resource, Unit, written_bytes_schema},
    validation::{Validate, ValidationErrors, field_path},
};

/// Most catalog services in one environment.
pub const MAX_SERVICES: usize = 16;

/// Most replicas of one web service.
pub const MAX_REPLICAS: u32 = 20;

/// Finalizer that keeps an Environment, and the quota it holds, until its namespace is gone.
/// The operator adds it to an Environment that lacks it (one made with `kubectl`);
/// [`Environment::with_cleanup_finalizer`] makes one that carries it from creation, as the
/// control-plane API does, so that the operator has nothing to add.
pub const CLEANUP_FINALIZER: &str = "zhengyun.io/environment-cleanup";

/// One environment of a bureau. `metadata.name` must be `<spec.bureau>-<spec.purpose>`, or that
/// followed by `-<suffix>` when a bureau runs several environments of one purpose (`wjw-dev-2`,
/// `wjw-test-payroll`); it is also the name of its namespace, so at most 63 characters.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "zhengyun.io",
    version = "v1alpha1",
    kind = "Environment",
    plural = "environments",
    shortname = "env",
    category = "zhengyun",
    status = "EnvironmentStatus",
    derive = "PartialEq",
    doc = "One environment of one bureau, named <bureau>-<purpose>; becomes a namespace once admitted.",
    printcolumn(name = "Bureau", type_ = "string", json_path = ".spec.bureau"),
    printcolumn(name = "Purpose", type_ = "string", json_path = ".spec.purpose"),
    printcolumn(name = "Tier", type_ = "string", json_path = ".spec.tier"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "CPU", type_ = "string", json_path = ".spec.quota.cpu"),
    printcolumn(name = "Memory", type_ = "string", json_path = ".spec.quota.memory"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    selectable = ".spec.bureau",
    validation = Rule::new("self.metadata.name == self.spec.bureau + '-' + self.spec.purpose || self.metadata.name.startsWith(self.spec.bureau + '-' + self.spec.purpose + '-')")
        .message("metadata.name must be <spec.bureau>-<spec.purpose> or <spec.bureau>-<spec.purpose>-<suffix>"),
    validation = Rule::new("self.metadata.name.size() <= 63 && !self.metadata.name.contains('.')")
        .message("metadata.name is also the namespace name: a DNS-1123 label of at most 63 characters"),
)]
#[x_kube(
    validation = Rule::new("!has(self.expiresAt) || self.purpose == 'dev' || self.purpose == 'test'")
        .message("expiresAt is only allowed for dev and test environments"),
    validation = Rule::new("has(self.quota) && has(self.quota.cpu) && has(self.quota.memory)")
        .message("an environment needs a CPU and a memory quota (spec.quota.cpu, spec.quota.memory)")
)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentSpec {
    /// Code of the owning bureau. Never changes.
    #[schemars(length(min = 1, max = 40), regex(pattern = names::DNS1123_LABEL_PATTERN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("bureau is immutable"))]
    #[x_kube(validation = Rule::new("!self.matches('(^|-)(dev|test|staging|prod)(-|$)')").message("bureau must be a bureau code, which has no purpose (dev, test, staging, prod) as a segment"))]
    pub bureau: String,

    /// What the environment is for. Never changes.
    #[x_kube(validation = Rule::new("self == oldSelf").message("purpose is immutable"))]
    pub purpose: Purpose,

    /// Service tier: scheduling priority and price.
    #[serde(default)]
    pub tier: Tier,

    /// The share of the bureau's quota this environment reserves.
    #[serde(default)]
    pub quota: Quota,

    /// Catalog workloads to run inside the environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub services: Vec<CatalogService>,

    /// When a dev or test environment is deleted automatically (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
}

/// A workload from the platform catalog.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[x_kube(
    validation = Rule::new("has(self.storage) == (self.kind == 'postgres')")
        .message("storage is required for postgres services and not allowed for web services"),
    validation = Rule::new("self.kind != 'postgres' || !has(self.replicas) || self.replicas == 1")
        .message("postgres services run exactly one replica"),
    validation = Rule::new("self.kind != 'web' || has(self.image)")
        .message("web services need an image"),
)]
#[serde(rename_all = "camelCase")]
pub struct CatalogService {
    /// Name of the Service (and Deployment or StatefulSet): a DNS-1035 label.
    #[schemars(length(min = 1, max = 40), regex(pattern = names::DNS1035_LABEL_PATTERN))]
    pub name: String,

    /// Which catalog workload this is.
    pub kind: ServiceKind,

    /// Number of pods; 1 if unset. Postgres always runs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 20))]
    // Kubernetes knows int32, not the uint32 schemars writes for u32.
    #[schemars(extend("format" = "int32"))]
    pub replicas: Option<u32>,

    /// Container image; required for `web`, overrides the platform default for `postgres`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// Size of the data volume; required for `postgres`, counted against `spec.quota.storage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "written_bytes_schema")]
    pub storage: Option<Quantity>,
}

/// Kind of catalog workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    /// A stateless web application (Deployment + Service).
    Web,
    /// A single-instance PostgreSQL database (StatefulSet + Service + PVC).
    Postgres,
}

/// Where an environment is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum EnvironmentPhase {
    /// Not yet considered by the operator.
    #[default]
    Pending,
    /// Fits the bureau's quota; its namespace is being set up.
    Admitted,
    /// Namespace and everything in it are in place.
    Ready,
    /// Does not fit the bureau's remaining quota; has no namespace.
    QuotaExceeded,
    /// Being deleted.
    Terminating,
}

/// What the operator observed about an environment.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentStatus {
    /// Where the environment is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<EnvironmentPhase>,

    /// The namespace, once admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// Standard conditions, one per `type`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// What the environment's pods and volumes currently request, as its namespace's
    /// ResourceQuota counts them. A change is written within 5 s (usage alone is written at
    /// most once every 5 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<ObservedQuota>")]
    pub usage: Option<Quota>,

    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// When the operator admitted the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admitted_at: Option<Time>,

    /// The quota admission granted, which the namespace's ResourceQuota enforces. Differs from
    /// `spec.quota` while a resize is pending or blocked; absent until admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<ObservedQuota>")]
    pub admitted_quota: Option<Quota>,

    /// What the environment's burst pods (PriorityClass `zhengyun-burst`) may request now, on
    /// top of the admitted quota: set by the operator from what the capacity pool can lend, and
    /// lowered at once when that shrinks. Absent while the pool does not lend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<ObservedQuota>")]
    pub burst_allowance: Option<Quota>,

    /// What the environment's burst pods request now, as the operator last counted them
    /// (every 10 s while the pool lends). Absent while the pool does not lend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<ObservedQuota>")]
    pub burst_usage: Option<Quota>,
}

impl Environment {
    /// A new Environment that carries [`CLEANUP_FINALIZER`] from its creation: the API server
    /// stores it with the finalizer in place, and the operator's first reconciliation goes
    /// straight to admission instead of writing the finalizer and waiting for the next event.
    pub fn with_cleanup_finalizer(name: &str, spec: EnvironmentSpec) -> Self {
        let mut env = Self::new(name, spec);
        env.metadata.finalizers = Some(vec![CLEANUP_FINALIZER.to_owned()]);
        env
    }
}

impl EnvironmentSpec {
    /// The name this environment must have: `<bureau>-<purpose>`.
    pub fn expected_name(&self) -> String {
        names::environment_name(&self.bureau, self.purpose)
    }

    fn check(&self, path: &str, errors: &mut ValidationErrors) {
        let at = |field| field_path(path, field);
        errors.check(at("bureau"), names::check_bureau_code(&self.bureau));
        self.quota.check(&at("quota"), errors);
        self.check_required_quota(&at("quota"), errors);
        if self.services.len() > MAX_SERVICES {
            errors.push(
                at("services"),
                format!("must list at most {MAX_SERVICES} services"),
            );
        }
        for (i, service) in self.services.iter().enumerate() {
            let item = format!("{}[{i}]", at("services"));
            service.check(&item, errors);
            if self.services[..i].iter().any(|s| s.name == service.name) {
                errors.push(
                    field_path(&item, "name"),
                    format!("duplicate service {:?}", service.name),
                );
            }
        }
        self.check_service_storage(path, errors);
        if self.expires_at.is_some() && !self.purpose.allows_expiry() {
            errors.push(
                at("expiresAt"),
                "is only allowed for dev and test environments",
            );
        }
    }

    /// An environment without CPU or memory could run nothing, and one without a cap on either
    /// would leave its namespace's ResourceQuota without it: both must be set and above zero.
    /// Unparsable values are reported by [`Quota::check`].
    fn check_required_quota(&self, path: &str, errors: &mut ValidationErrors) {
        for resource in [Resource::Cpu, Resource::Memory] {
            let field = field_path(path, resource.as_str());
            match self
                .quota
                .get(resource)
                .map(|q| q.parse_written(resource.unit()))
            {
                None => errors.push(
                    field,
                    "is required: an environment needs a CPU and a memory quota",
                ),
                Some(Ok(0)) => errors.push(field, "must be more than zero"),
                Some(_) => {}
            }
        }
    }

    /// The catalog's volumes must fit the environment's own storage quota. Unparsable sizes
    /// are reported by their own fields, so this check then stays quiet.
    fn check_service_storage(&self, path: &str, errors: &mut ValidationErrors) {
        let Some(volumes) = self.volume_bytes() else {
            return;
        };
        let quota = match self
            .quota
            .get(Resource::Storage)
            .map(|q| q.parse_written(Unit::Bytes))
        {
            None => 0,
            Some(Ok(bytes)) => bytes,
            Some(Err(_)) => return,
        };
        if volumes > quota {
            let message = format!(
                "service volumes need {} of storage but spec.quota.storage is {}",
                Unit::Bytes.format(volumes),
                Unit::Bytes.format(quota)
            );
            errors.push(field_path(path, "services"), message);
        }
    }

    /// Total size of the catalog's data volumes, or `None` if one does not parse.
    pub fn volume_bytes(&self) -> Option<u64> {
        self.services
            .iter()
            .filter_map(|s| s.storage.as_ref())
            .try_fold(0u64, |total, size| {
                total.checked_add(size.parse_written(Unit::Bytes).ok()?)
            })
    }
}

impl CatalogService {
    fn check(&self, path: &str, errors: &mut ValidationErrors) {
        let at = |field| field_path(path, field);
        errors.check(at("name"), names::check_service_name(&self.name));
        let postgres = self.kind == ServiceKind::Postgres;
        match (&self.storage, postgres) {
            (None, true) => errors.push(at("storage"), "is required for postgres services"),
            (Some(_), false) => errors.push(at("storage"), "is only allowed for postgres services"),
            (Some(size), true) => {
                if let Err(e) = size.parse_written(Unit::Bytes) {
                    errors.push(at("storage"), e.to_string());
                }
            }
            (None, false) => {}
        }
        match self.replicas {
            Some(0) => errors.push(at("replicas"), "must be at least 1"),
            Some(n) if n > MAX_REPLICAS => {
                errors.push(at("replicas"), format!("must be at most {MAX_REPLICAS}"))
            }
            Some(n) if postgres && n != 1 => {
                errors.push(at("replicas"), "postgres services run exactly one replica")
            }
            _ => {}
        }
        self.check_image(&at("image"), errors);
    }

    fn check_image(&self, path: &str, errors: &mut ValidationErrors) {
        match &self.image {
            None if self.kind == ServiceKind::Web => {
                errors.push(path, "is required for web services")
            }
            Some(image)
                if image.is_empty() || image.len() > 512 || image.contains(char::is_whitespace) =>
            {
                errors.push(
                    path,
                    "must be a container image reference of 1 to 512 characters without spaces",
                )
            }
            _ => {}
        }
    }
}

impl Validate for EnvironmentSpec {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        self.check("spec", &mut errors);
        errors.into_result()
    }
}

impl Validate for Environment {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let expected = self.spec.expected_name();
        let name = self.metadata.name.as_deref().unwrap_or_default();
        let suffix = name.strip_prefix(expected.as_str());
        let well_formed = match suffix {
            Some("") => true,
            Some(rest) => rest.strip_prefix('-').is_some_and(|s| !s.is_empty()),
            None => false,
        };
        if !well_formed {
            errors.push(
                "metadata.name",
                format!("must be {expected:?} or {expected:?} followed by \"-<suffix>\""),
            );
        } else if name.len() > names::DNS1123_LABEL_MAX_LEN {
            let max = names::DNS1123_LABEL_MAX_LEN;
            errors.push(
                "metadata.name",
                format!("must be at most {max} characters (it names the namespace)"),
            );
        } else if let Some(rest) = suffix.and_then(|s| s.strip_prefix('-')) {
            errors.check(
                "metadata.name",
                names::check_dns1123_label(rest, names::DNS1123_LABEL_MAX_LEN),
            );
        }
        self.spec.check("spec", &mut errors);
        errors.into_result()
    }
}
