//! The cached Environments of each bureau, found without scanning every Environment.
//!
//! A bureau's reconciliation and a change of a bureau both need that bureau's environments.
//! Filtering the whole cache for them costs a pass over every Environment each time: at 10,000
//! environments across 1,000 bureaus that pass (copying the cache's entries, comparing bureau
//! names) was about a tenth of the operator's CPU while converging (a `perf` profile of
//! `bench converge 10000`). The index below is kept from the same watch events as the cache,
//! after the cache has applied each one, so that whatever a controller is woken by is in both.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use kube::ResourceExt as _;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Event;
use zhengyun_model::crd::Environment;

/// Which environments each bureau has, by name; see the module documentation.
#[derive(Clone, Debug, Default)]
pub(crate) struct ByBureau(Arc<RwLock<Index>>);

#[derive(Debug, Default)]
struct Index {
    current: Names,
    /// A new LIST under way: built apart and put in place when it completes, as the cache does.
    listing: Option<Names>,
}

#[derive(Debug, Default)]
struct Names {
    of_bureau: HashMap<String, BTreeSet<String>>,
    bureau_of: HashMap<String, String>,
}

impl Names {
    fn insert(&mut self, name: &str, bureau: &str) {
        match self.bureau_of.get(name) {
            Some(known) if known == bureau => return,
            Some(_) => self.remove(name),
            None => {}
        }
        self.bureau_of.insert(name.to_owned(), bureau.to_owned());
        self.of_bureau
            .entry(bureau.to_owned())
            .or_default()
            .insert(name.to_owned());
    }

    fn remove(&mut self, name: &str) {
        let Some(bureau) = self.bureau_of.remove(name) else {
            return;
        };
        if let Some(names) = self.of_bureau.get_mut(&bureau) {
            names.remove(name);
            if names.is_empty() {
                self.of_bureau.remove(&bureau);
            }
        }
    }
}

impl ByBureau {
    /// Applies one event of the Environment watch (after the cache has applied it).
    pub(crate) fn observe(&self, event: &Event<Environment>) {
        let Ok(mut index) = self.0.write() else {
            return;
        };
        match event {
            Event::Apply(env) => index.current.insert(&env.name_any(), &env.spec.bureau),
            Event::Delete(env) => index.current.remove(&env.name_any()),
            Event::Init => index.listing = Some(Names::default()),
            Event::InitApply(env) => {
                if let Some(listing) = index.listing.as_mut() {
                    listing.insert(&env.name_any(), &env.spec.bureau);
                }
            }
            Event::InitDone => {
                if let Some(listing) = index.listing.take() {
                    index.current = listing;
                }
            }
        }
    }

    /// The environments of `bureau` that `cache` holds, in name order.
    pub(crate) fn environments(
        &self,
        bureau: &str,
        cache: &Store<Environment>,
    ) -> Vec<Arc<Environment>> {
        let names: Vec<String> = match self.0.read() {
            Ok(index) => index
                .current
                .of_bureau
                .get(bureau)
                .map(|names| names.iter().cloned().collect())
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        names
            .iter()
            .filter_map(|name| cache.get(&ObjectRef::new(name)))
            .filter(|env| env.spec.bureau == bureau)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector;

    use super::*;

    fn env(name: &str, bureau: &str) -> Environment {
        let mut env = Environment::new(
            name,
            serde_json::from_value(serde_json::json!({
                "bureau": bureau, "purpose": "dev", "tier": "silver", "quota": {"cpu": "1"}
            }))
            .expect("spec"),
        );
        env.metadata.uid = Some(format!("uid-{name}"));
        env
    }

    /// A cache and an index fed the same events, as the operator feeds them.
    fn fed(events: Vec<Event<Environment>>) -> (Store<Environment>, ByBureau) {
        let (cache, mut writer) = reflector::store();
        let index = ByBureau::default();
        for event in events {
            writer.apply_watcher_event(&event);
            index.observe(&event);
        }
        (cache, index)
    }

    fn names(envs: &[Arc<Environment>]) -> Vec<String> {
        envs.iter().map(|e| e.name_any()).collect()
    }

    #[test]
    fn a_bureau_gets_its_own_environments_and_no_one_elses() {
        let (cache, index) = fed(vec![
            Event::Apply(env("wjw-prod", "wjw")),
            Event::Apply(env("jtj-dev", "jtj")),
            Event::Apply(env("wjw-dev", "wjw")),
        ]);
        assert_eq!(
            names(&index.environments("wjw", &cache)),
            ["wjw-dev", "wjw-prod"]
        );
        assert_eq!(names(&index.environments("jtj", &cache)), ["jtj-dev"]);
        assert!(index.environments("gaj", &cache).is_empty());
    }

    #[test]
    fn a_deleted_environment_leaves_its_bureau() {
        let (cache, index) = fed(vec![
            Event::Apply(env("wjw-prod", "wjw")),
            Event::Apply(env("wjw-dev", "wjw")),
            Event::Delete(env("wjw-dev", "wjw")),
        ]);
        assert_eq!(names(&index.environments("wjw", &cache)), ["wjw-prod"]);
    }

    #[test]
    fn a_new_list_replaces_what_the_index_knew_once_it_completes() {
        let before = || {
            vec![
                Event::Apply(env("wjw-prod", "wjw")),
                Event::Apply(env("wjw-dev", "wjw")),
                Event::Init,
                Event::InitApply(env("wjw-prod", "wjw")),
                Event::InitApply(env("jtj-test", "jtj")),
            ]
        };
        // Until the list completes, the cache and the index answer from the last one.
        let (cache, index) = fed(before());
        assert_eq!(
            names(&index.environments("wjw", &cache)),
            ["wjw-dev", "wjw-prod"]
        );
        assert!(index.environments("jtj", &cache).is_empty());
        // wjw-dev was deleted while the watch was down: the completed list no longer has it.
        let (cache, index) = fed([before(), vec![Event::InitDone]].concat());
        assert_eq!(names(&index.environments("wjw", &cache)), ["wjw-prod"]);
        assert_eq!(names(&index.environments("jtj", &cache)), ["jtj-test"]);
    }
}
