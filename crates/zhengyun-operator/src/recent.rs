//! Read-your-writes over a watch cache. A controller that decides from its cache must see its own
//! last writes even before the watch delivers them: [`RecentWrites`] keeps the object each write
//! returned until the cache shows that version or a later one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use kube::{Resource, ResourceExt};

use crate::versions::is_later;

/// The objects this process wrote last that its cache may not show yet, by name.
#[derive(Debug)]
pub(crate) struct RecentWrites<K>(Mutex<HashMap<String, Arc<K>>>);

impl<K> Default for RecentWrites<K> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<K: Resource> RecentWrites<K> {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Arc<K>>) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Keeps `written`, the object a write returned (its managedFields dropped).
    pub(crate) fn remember(&self, mut written: K) {
        crate::no_managed_fields(&mut written);
        let name = written.name_any();
        self.with(|m| m.insert(name, Arc::new(written)));
    }

    /// The objects of `cached` (all the cache holds within one `scope`), each replaced by the
    /// copy written here when that copy is of the same object and later. Copies the cache has
    /// caught up with are dropped, and so are copies in `scope` whose object the cache no longer
    /// holds: it was deleted.
    pub(crate) fn overlay(&self, cached: Vec<Arc<K>>, scope: impl Fn(&K) -> bool) -> Vec<Arc<K>> {
        self.with(|m| {
            let names: std::collections::HashSet<String> =
                cached.iter().map(|o| o.name_any()).collect();
            m.retain(|name, kept| !scope(kept) || names.contains(name));
            cached
                .into_iter()
                .map(|seen| {
                    let name = seen.name_any();
                    let Some(kept) = m.get(&name) else {
                        return seen;
                    };
                    let same = kept.uid().is_some() && kept.uid() == seen.uid();
                    if same
                        && is_later(
                            kept.resource_version().as_deref(),
                            seen.resource_version().as_deref(),
                        )
                    {
                        Arc::clone(kept)
                    } else {
                        m.remove(&name);
                        seen
                    }
                })
                .collect()
        })
    }

    /// How many copies are kept (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.with(|m| m.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    fn object(name: &str, uid: &str, rv: &str, label: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(uid.into()),
                resource_version: Some(rv.into()),
                labels: Some([("scope".to_owned(), label.to_owned())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn versions(objects: &[Arc<ConfigMap>]) -> Vec<String> {
        objects
            .iter()
            .map(|o| o.resource_version().unwrap_or_default())
            .collect()
    }

    fn in_a(o: &ConfigMap) -> bool {
        o.labels().get("scope").is_some_and(|s| s == "a")
    }

    #[test]
    fn a_write_the_cache_has_not_seen_replaces_the_cached_copy() {
        let recent = RecentWrites::default();
        recent.remember(object("x", "u1", "12", "a"));
        let cached = vec![Arc::new(object("x", "u1", "10", "a"))];
        assert_eq!(versions(&recent.overlay(cached, in_a)), ["12"]);
        assert_eq!(recent.len(), 1);
    }

    #[test]
    fn once_the_cache_catches_up_its_copy_is_used_and_the_write_forgotten() {
        let recent = RecentWrites::default();
        for rv in ["12", "15"] {
            recent.remember(object("x", "u1", "12", "a"));
            let cached = vec![Arc::new(object("x", "u1", rv, "a"))];
            assert_eq!(versions(&recent.overlay(cached, in_a)), [rv]);
            assert_eq!(recent.len(), 0);
        }
    }

    #[test]
    fn a_write_to_an_object_since_recreated_under_the_same_name_is_ignored() {
        let recent = RecentWrites::default();
        recent.remember(object("x", "u1", "12", "a"));
        let cached = vec![Arc::new(object("x", "u2", "11", "a"))];
        assert_eq!(versions(&recent.overlay(cached, in_a)), ["11"]);
        assert_eq!(recent.len(), 0);
    }

    #[test]
    fn a_write_to_a_deleted_object_is_forgotten_only_within_its_scope() {
        let recent = RecentWrites::default();
        recent.remember(object("x", "u1", "12", "a"));
        recent.remember(object("y", "u2", "13", "b"));
        assert!(recent.overlay(Vec::new(), in_a).is_empty());
        assert_eq!(recent.len(), 1, "the copy outside the scope is kept");
    }

    #[test]
    fn managed_fields_are_not_kept() {
        let recent = RecentWrites::default();
        let mut written = object("x", "u1", "12", "a");
        written.metadata.managed_fields = Some(vec![Default::default()]);
        recent.remember(written);
        let cached = vec![Arc::new(object("x", "u1", "10", "a"))];
        assert!(recent.overlay(cached, in_a)[0].managed_fields().is_empty());
    }
}
