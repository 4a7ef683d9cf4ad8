//! What the operator last wrote to each child object, and what the watches last saw of it.
//!
//! A reconciliation re-applies a child only when its desired content changed, when nothing was
//! written yet (a fresh start), or when the watch saw a resourceVersion other than the one the
//! operator's own write produced — someone edited or deleted it (a deletion is stamped with a
//! new resourceVersion). A converged environment then costs no writes and almost no calls.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{Resource, ResourceExt};
use serde::Serialize;

type Key = (String, String, String);

#[derive(Debug, Default)]
struct Entry {
    desired: Option<u64>,
    written: Option<String>,
    seen: Option<String>,
}

/// Written and observed versions of every child, by kind, namespace and name, and the last
/// observed status of each environment's namespace and quota (what the operator reports).
#[derive(Debug, Default)]
pub struct ChildVersions {
    entries: Mutex<HashMap<Key, Entry>>,
    statuses: Mutex<HashMap<String, Observed>>,
}

/// What the watches last saw of an environment's namespace and ResourceQuota.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Whether the namespace is Active.
    pub active: Option<bool>,
    /// The quota's `status.used`, once the quota controller has counted it.
    pub used: Option<BTreeMap<String, Quantity>>,
}

fn key<K: Resource<DynamicType = ()>>(obj: &K) -> Key {
    (
        K::kind(&()).into_owned(),
        obj.namespace().unwrap_or_default(),
        obj.name_any(),
    )
}

fn digest<K: Serialize>(obj: &K) -> Option<u64> {
    let text = serde_json::to_string(obj).ok()?;
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    Some(h.finish())
}

impl ChildVersions {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<Key, Entry>) -> T) -> T {
        // A poisoned lock only means another reconciliation panicked mid-update; the map is still
        // a valid cache (the worst case is one extra apply).
        let mut guard = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// Records what a watch saw of a child.
    pub fn observe<K: Resource<DynamicType = ()>>(&self, obj: &K) {
        let seen = obj.resource_version();
        self.with(|m| m.entry(key(obj)).or_default().seen = seen);
    }

    /// Whether `desired` is exactly what was last written and nobody has touched it since.
    pub fn unchanged<K: Resource<DynamicType = ()> + Serialize>(&self, desired: &K) -> bool {
        let wanted = digest(desired);
        self.with(|m| {
            m.get(&key(desired)).is_some_and(|e| {
                wanted.is_some()
                    && e.desired == wanted
                    && e.written.is_some()
                    && e.written == e.seen
            })
        })
    }

    /// Records a successful apply of `desired`, which produced `applied`.
    pub fn wrote<K: Resource<DynamicType = ()> + Serialize>(&self, desired: &K, applied: &K) {
        let wanted = digest(desired);
        let written = applied.resource_version();
        self.with(|m| {
            let e = m.entry(key(desired)).or_default();
            e.desired = wanted;
            e.written = written;
        });
    }

    /// Forgets every child in `namespace` (after the environment is gone).
    pub fn forget_namespace(&self, namespace: &str) {
        self.with(|m| m.retain(|(_, ns, name), _| ns != namespace && name != namespace));
        self.with_statuses(|m| m.remove(namespace));
    }

    fn with_statuses<T>(&self, f: impl FnOnce(&mut HashMap<String, Observed>) -> T) -> T {
        let mut guard = self
            .statuses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// Records a namespace's phase (from a watch event or an apply response).
    pub fn note_namespace(&self, ns: &Namespace) {
        let active = ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Active");
        self.with_statuses(|m| m.entry(ns.name_any()).or_default().active = Some(active));
    }

    /// Records a quota's usage (from a watch event or an apply response), once counted.
    pub fn note_quota(&self, quota: &ResourceQuota) {
        let Some(used) = quota.status.as_ref().and_then(|s| s.used.clone()) else {
            return;
        };
        let ns = quota.namespace().unwrap_or_default();
        self.with_statuses(|m| m.entry(ns).or_default().used = Some(used));
    }

    /// What was last observed of the namespace `ns` and its quota.
    pub fn observed(&self, ns: &str) -> Observed {
        self.with_statuses(|m| m.get(ns).cloned().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    fn map(rv: &str, data: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("c".into()),
                namespace: Some("wjw-prod".into()),
                resource_version: Some(rv.into()),
                ..ObjectMeta::default()
            },
            data: Some([("k".to_owned(), data.to_owned())].into()),
            ..ConfigMap::default()
        }
    }

    #[test]
    fn a_child_never_written_must_be_applied() {
        assert!(!ChildVersions::default().unchanged(&map("", "a")));
    }

    #[test]
    fn a_child_written_and_seen_at_the_same_version_is_left_alone() {
        let v = ChildVersions::default();
        v.wrote(&map("", "a"), &map("7", "a"));
        v.observe(&map("7", "a"));
        assert!(v.unchanged(&map("", "a")));
    }

    #[test]
    fn a_child_someone_else_changed_or_deleted_is_applied_again() {
        let v = ChildVersions::default();
        v.wrote(&map("", "a"), &map("7", "a"));
        v.observe(&map("9", "x"));
        assert!(!v.unchanged(&map("", "a")));
    }

    #[test]
    fn a_child_whose_desired_content_changed_is_applied_again() {
        let v = ChildVersions::default();
        v.wrote(&map("", "a"), &map("7", "a"));
        v.observe(&map("7", "a"));
        assert!(!v.unchanged(&map("", "b")));
    }
}
