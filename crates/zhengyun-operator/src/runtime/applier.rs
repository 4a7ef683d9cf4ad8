//! The [`Applier`]: every server-side apply the controllers make goes through it, and so does
//! the decision not to make one for a child that is exactly as last written.

use std::fmt::Debug;
use std::sync::Arc;

use kube::api::{Patch, PatchParams};
use kube::core::{ClusterResourceScope, NamespaceResourceScope};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::versions::ChildVersions;
use crate::{Error, MANAGER, Result};

/// Writes objects and statuses by server-side apply, forced (each field manager owns what it
/// declares), and remembers the children it wrote so that an unchanged one is not written again.
#[derive(Clone)]
pub(crate) struct Applier {
    client: Client,
    versions: Arc<ChildVersions>,
}

impl Applier {
    /// An applier writing through `client`, remembering children in `versions` (shared with the
    /// watches that see them change).
    pub(crate) fn new(client: Client, versions: Arc<ChildVersions>) -> Self {
        Self { client, versions }
    }

    /// What the applier remembers of the children it wrote and the watches saw.
    pub(crate) fn versions(&self) -> &ChildVersions {
        &self.versions
    }

    /// Applies a namespaced object (its namespace is taken from its metadata) as the
    /// operator's field manager.
    pub(crate) async fn namespaced<K>(&self, obj: &K) -> Result<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + Debug
            + Serialize
            + DeserializeOwned,
    {
        let ns = obj.namespace().unwrap_or_default();
        let what = format!("{ns}/{}", obj.name_any());
        apply(Api::namespaced(self.client.clone(), &ns), obj, &what).await
    }

    /// Applies a cluster-scoped object as the operator's field manager.
    pub(crate) async fn cluster<K>(&self, obj: &K) -> Result<K>
    where
        K: Resource<Scope = ClusterResourceScope, DynamicType = ()>
            + Clone
            + Debug
            + Serialize
            + DeserializeOwned,
    {
        apply(Api::all(self.client.clone()), obj, &obj.name_any()).await
    }

    /// Applies a namespaced child of an environment unless it is exactly as last written and
    /// untouched since (see [`ChildVersions`]).
    pub(crate) async fn child<K>(&self, obj: &K) -> Result<()>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + Debug
            + Serialize
            + DeserializeOwned,
    {
        if self.versions.unchanged(obj) {
            return Ok(());
        }
        let applied = self.namespaced(obj).await?;
        self.versions.wrote(obj, &applied);
        Ok(())
    }

    /// Applies `status` (a typed status that leaves out the fields it does not set) to the
    /// status subresource of the cluster-scoped resource `obj`, as `manager`. `action` says what
    /// it was for. Returns the object as written.
    pub(crate) async fn status<K, S>(
        &self,
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
        Api::<K>::all(self.client.clone())
            .patch_status(
                &obj.name_any(),
                &PatchParams::apply(manager).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(Error::kube(action))
    }
}

fn params() -> PatchParams {
    PatchParams::apply(MANAGER).force()
}

/// The object an apply returned, without its managed fields: the operator keeps its answers to
/// compare with what it declares, which never includes them.
fn without_managed_fields<K: Resource>(mut obj: K) -> K {
    crate::no_managed_fields(&mut obj);
    obj
}

/// The body of a server-side apply to a status subresource.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusPatch<'a, S> {
    api_version: &'a str,
    kind: &'a str,
    status: &'a S,
}

/// Server-side apply of `obj` through `api`; `what` names it in an error.
async fn apply<K>(api: Api<K>, obj: &K, what: &str) -> Result<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    api.patch(&obj.name_any(), &params(), &Patch::Apply(obj))
        .await
        .map(without_managed_fields)
        .map_err(Error::kube(format!("apply {} {what}", K::kind(&()))))
}

#[cfg(test)]
mod tests {
    use zhengyun_model::crd::{BureauStatus, EnvironmentPhase, EnvironmentStatus};

    use super::*;

    #[test]
    fn a_status_patch_declares_only_the_fields_its_manager_sets() {
        let status = EnvironmentStatus {
            phase: Some(EnvironmentPhase::Pending),
            ..EnvironmentStatus::default()
        };
        let patch = StatusPatch {
            api_version: "zhengyun.io/v1alpha1",
            kind: "Environment",
            status: &status,
        };
        assert_eq!(
            serde_json::to_value(&patch).expect("serializes"),
            serde_json::json!({"apiVersion": "zhengyun.io/v1alpha1", "kind": "Environment",
                               "status": {"phase": "Pending"}})
        );
        let rollup = serde_json::to_value(BureauStatus::default()).expect("serializes");
        assert_eq!(rollup, serde_json::json!({"environments": 0}));
    }
}
