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

/// The object an apply returned, without its managed fields: the operator keeps its answers to
/// compare with what it declares, which never includes them.
fn without_managed_fields<K: Resource>(mut obj: K) -> K {
    crate::no_managed_fields(&mut obj);
    obj
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
        .map(without_managed_fields)
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
        .map(without_managed_fields)
        .map_err(Error::kube(format!("apply {} {name}", K::kind(&()))))
}

/// Applies `status` to the status subresource of the cluster-scoped resource `obj`, as `manager`
/// (forced: each manager owns the status fields it writes). `action` says what it was for.
/// Returns the object as written.
pub async fn status<K, S>(
    client: &Client,
    manager: &str,
    obj: &K,
    status: &S,
    action: String,
) -> Result<K>
where
    K: Resource<Scope = ClusterResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
    S: Serialize + Debug,
{
    let patch = StatusPatch {
        api_version: &K::api_version(&()),
        kind: &K::kind(&()),
        status,
    };
    Api::<K>::all(client.clone())
        .patch_status(
            &obj.name_any(),
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(Error::kube(action))
}

/// The body of a server-side apply to a status subresource: only the fields of `status` the
/// manager declares (typed statuses leave out what they do not set).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusPatch<'a, S> {
    api_version: &'a str,
    kind: &'a str,
    status: &'a S,
}
