//! Server-side apply helpers: one field manager, forced, for namespaced and cluster objects.

use std::fmt::Debug;

use kube::api::{Patch, PatchParams};
use kube::core::{ClusterResourceScope, NamespaceResourceScope};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, MANAGER, Result};

fn params() -> PatchParams {
    PatchParams::apply(MANAGER).force()
}

/// Applies a namespaced object (its namespace is taken from its metadata).
pub async fn namespaced<K>(client: &Client, obj: &K) -> Result<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    let name = obj.name_any();
    api.patch(&name, &params(), &Patch::Apply(obj))
        .await
        .map_err(Error::kube(format!("apply {} {ns}/{name}", K::kind(&()))))
}

/// Applies a cluster-scoped object.
pub async fn cluster<K>(client: &Client, obj: &K) -> Result<K>
where
    K: Resource<Scope = ClusterResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let api: Api<K> = Api::all(client.clone());
    let name = obj.name_any();
    api.patch(&name, &params(), &Patch::Apply(obj))
        .await
        .map_err(Error::kube(format!("apply {} {name}", K::kind(&()))))
}
