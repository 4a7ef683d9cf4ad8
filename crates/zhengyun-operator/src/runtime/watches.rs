//! The operator's watches: each with its own backoff, its errors kept from the controllers it
//! feeds, and the reflector caches they keep.

use futures::StreamExt as _;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Config as WatcherConfig};
use kube::{Api, Client, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;
use zhengyun_model::crd::Environment;

use crate::resources::{ENVIRONMENT_LABEL, MANAGED_BY};

/// What the operator can watch and cache.
pub(crate) trait Watched:
    Resource<DynamicType = ()>
    + Clone
    + std::fmt::Debug
    + DeserializeOwned
    + serde::Serialize
    + Send
    + Sync
    + 'static
{
}

impl<K> Watched for K where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + serde::Serialize
        + Send
        + Sync
        + 'static
{
}

/// The events of one watch, as its reflector passes them on.
pub(crate) type Events<K> =
    futures::stream::BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>;

/// A reflector-backed store of every `K`, and the event stream that keeps it (to be polled),
/// retrying on kube-runtime's default backoff. Managed fields are dropped on arrival: nothing
/// reads them from a cache, and the cache is smaller without.
pub(crate) fn reflected<K: Watched>(client: &Client) -> (Store<K>, Events<K>) {
    let (reader, writer) = reflector::store();
    let stream = watcher::watcher(Api::<K>::all(client.clone()), WatcherConfig::default())
        .default_backoff()
        .modify(crate::no_managed_fields)
        .reflect(writer)
        .boxed();
    (reader, stream)
}

/// Only the objects the operator manages (its children).
pub(crate) fn managed() -> WatcherConfig {
    WatcherConfig::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"))
}

/// Maps a child object to the environment named by its label.
pub(crate) fn owner_env<K: Resource>(obj: K) -> Option<ObjectRef<Environment>> {
    obj.labels()
        .get(ENVIRONMENT_LABEL)
        .map(|name| ObjectRef::new(name))
}

/// Keeps a watch's errors from its controller. A kube-runtime `Controller` backs off all of its
/// triggers at once when any of them yields an error, so after an API server restart the errors
/// of a dozen watches (connections cut, then 410 Gone on resuming) would pause every trigger
/// for up to 30 s each, minutes in all. Each watch retries on its own backoff instead, and an
/// error is only logged.
pub(crate) fn without_errors<K: Resource<DynamicType = ()> + Send + 'static>(
    events: impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static {
    events.filter(|event| {
        match event {
            Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                tracing::info!(kind = %K::kind(&()), "watch expired; listing again");
            }
            Err(error) => {
                tracing::warn!(%error, kind = %K::kind(&()), "watch failed; retrying");
            }
            Ok(_) => {}
        }
        futures::future::ready(event.is_ok())
    })
}

/// Decodes `events` into the objects touched, and sends a copy of each to `copy` when it was
/// deleted or when `changed` (a hash of what the other side cares about; `None`: everything)
/// differs from the last copy sent. Deletions always pass, unlike a plain predicate filter.
/// `changed_here` filters what this side passes on the same way. One watch thus feeds two
/// controllers.
pub(crate) fn tee<K: Resource<DynamicType = ()> + Clone + Send + 'static>(
    events: Events<K>,
    copy: futures::channel::mpsc::UnboundedSender<Result<K, watcher::Error>>,
    changed: fn(&K) -> Option<u64>,
    changed_here: fn(&K) -> Option<u64>,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static {
    let mut for_copy = Changes::new(changed);
    let mut for_here = Changes::new(changed_here);
    let objects = events
        .inspect(move |event| {
            if for_copy.passes(event)
                && let Ok(
                    watcher::Event::Apply(o)
                    | watcher::Event::InitApply(o)
                    | watcher::Event::Delete(o),
                ) = event
            {
                let _ = copy.unbounded_send(Ok(o.clone()));
            }
        })
        .filter(move |event| futures::future::ready(for_here.passes(event)))
        .touched_objects();
    without_errors(objects)
}

/// Remembers, per object, a hash of what one consumer cares about, and lets an event through
/// when that hash changed, when the object was deleted, or when it is not about an object.
struct Changes<K> {
    hash: fn(&K) -> Option<u64>,
    seen: std::collections::HashMap<String, u64>,
}

impl<K: Resource> Changes<K> {
    fn new(hash: fn(&K) -> Option<u64>) -> Self {
        Self {
            hash,
            seen: std::collections::HashMap::new(),
        }
    }

    fn passes(&mut self, event: &Result<watcher::Event<K>, watcher::Error>) -> bool {
        match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                let key = o.meta().uid.clone().unwrap_or_default();
                match (self.hash)(o) {
                    None => true,
                    Some(hash) => self.seen.insert(key, hash) != Some(hash),
                }
            }
            Ok(watcher::Event::Delete(o)) => {
                self.seen
                    .remove(o.meta().uid.as_deref().unwrap_or_default());
                true
            }
            _ => true,
        }
    }
}

/// Everything: for a consumer that wants every event.
pub(crate) fn everything<K>(_: &K) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    fn map(uid: &str, data: &str) -> ConfigMap {
        let mut map = ConfigMap::default();
        map.metadata.uid = Some(uid.into());
        map.data = Some([("k".to_owned(), data.to_owned())].into());
        map
    }

    fn data(map: &ConfigMap) -> Option<u64> {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        map.data.hash(&mut h);
        Some(h.finish())
    }

    #[test]
    fn an_unchanged_object_passes_once_and_a_deleted_one_always() {
        let mut changes = Changes::new(data);
        let apply = |m| Ok(watcher::Event::Apply(m));
        assert!(changes.passes(&apply(map("a", "1"))));
        assert!(!changes.passes(&apply(map("a", "1"))));
        assert!(changes.passes(&apply(map("a", "2"))));
        assert!(changes.passes(&Ok(watcher::Event::Delete(map("a", "2")))));
        assert!(
            changes.passes(&apply(map("a", "2"))),
            "forgotten once deleted"
        );
        assert!(changes.passes(&Ok(watcher::Event::InitDone)));
    }

    #[test]
    fn a_consumer_of_everything_gets_every_event() {
        let mut changes = Changes::new(everything);
        let event = Ok(watcher::Event::Apply(map("a", "1")));
        assert!(changes.passes(&event) && changes.passes(&event));
    }
}
