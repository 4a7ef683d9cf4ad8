//! Kubernetes Events about the objects the operator manages (what `kubectl describe` shows),
//! written as `events.k8s.io/v1` Events.
//!
//! An Event repeated within [`SERIES_WINDOW`] (same object, type, reason and action) is counted
//! on the first one's `series` instead of being written again, as kube-runtime's `Recorder`
//! does. The `Recorder` keeps every Event it wrote, whole, in a hash map for that window: about
//! 1.5 KiB per Event in table slots alone, and the table's old and new arrays both while it
//! grows. At 2,000 environments (two Events each) that was the operator's largest allocation,
//! 17.7 MB at its peak heap of 58 MB (heaptrack). This publisher remembers only what a series
//! needs: a digest of the key, the first Event's name and namespace, the count and the time.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as KubeEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// How long a repeated Event counts on the first one's series rather than being written anew.
pub const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// Whether an Event reports something normal or something to look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Expected progress (`Admitted`, `Ready`).
    Normal,
    /// Something went wrong or needs attention (`QuotaExceeded`).
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// One Event to publish.
#[derive(Clone, Debug)]
pub struct Note<'a> {
    /// Normal or Warning.
    pub type_: EventType,
    /// Why, in one CamelCase word (`Admitted`).
    pub reason: &'a str,
    /// What the operator did or failed to do (`Admit`).
    pub action: &'a str,
    /// A sentence for people.
    pub note: String,
}

/// Publishes Events as one controller (`reporting_controller`); cheap to clone, clones share
/// what they remember of recent Events.
#[derive(Clone)]
pub struct Publisher {
    client: Client,
    controller: String,
    recent: Arc<Mutex<Recent>>,
}

/// The series of recent Events, by a digest of their key.
#[derive(Debug, Default)]
struct Recent {
    series: HashMap<u64, Series>,
    /// When entries older than the window were last dropped.
    pruned: Option<Timestamp>,
}

/// What a repeated Event needs of the first one.
#[derive(Clone, Debug, PartialEq)]
struct Series {
    name: String,
    namespace: String,
    count: i32,
    last: Timestamp,
}

/// What to write for one Event.
#[derive(Debug, PartialEq)]
enum Write {
    /// A new Event under this name.
    Create { name: String },
    /// One more occurrence on the series of an earlier Event.
    Repeat(Series),
}

impl Recent {
    /// What publishing the Event of `key` at `now` means, and remembers it.
    fn publish(&mut self, key: u64, now: Timestamp, new_name: String, namespace: &str) -> Write {
        // Entries past the window are dropped once a minute, not on every Event.
        if self
            .pruned
            .is_none_or(|at| now.duration_since(at) >= SignedDuration::from_mins(1))
        {
            self.series
                .retain(|_, s| now.duration_since(s.last) < SERIES_WINDOW);
            self.pruned = Some(now);
        }
        match self.series.get_mut(&key) {
            Some(s) if now.duration_since(s.last) < SERIES_WINDOW => {
                s.count += 1;
                s.last = now;
                Write::Repeat(s.clone())
            }
            _ => {
                self.series.insert(
                    key,
                    Series {
                        name: new_name.clone(),
                        namespace: namespace.to_owned(),
                        count: 1,
                        last: now,
                    },
                );
                Write::Create { name: new_name }
            }
        }
    }

    /// Forgets a series whose write failed, so the next Event is written whole.
    fn forget(&mut self, key: u64) {
        self.series.remove(&key);
    }
}

/// The digest of what makes two Events the same: the object, type, reason and action.
fn key(regarding: &ObjectReference, note: &Note<'_>) -> u64 {
    let mut h = DefaultHasher::new();
    (
        &regarding.api_version,
        &regarding.kind,
        &regarding.namespace,
        &regarding.name,
        &regarding.uid,
    )
        .hash(&mut h);
    (note.type_, note.reason, note.action).hash(&mut h);
    h.finish()
}

impl Publisher {
    /// A publisher reporting as `controller`.
    pub fn new(client: Client, controller: &str) -> Self {
        Self {
            client,
            controller: controller.to_owned(),
            recent: Arc::default(),
        }
    }

    /// Publishes `note` about the object `regarding`, in its namespace (`default` for a
    /// cluster-scoped object).
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        note: Note<'_>,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let about = regarding.name.as_deref().unwrap_or(&self.controller);
        let key = key(regarding, &note);
        let write = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .publish(
                key,
                now,
                format!("{about}.{:x}", now.as_nanosecond()),
                namespace,
            );
        let result = match write {
            Write::Create { name } => {
                let event = self.event(name, namespace, regarding, &note, now);
                Api::<KubeEvent>::namespaced(self.client.clone(), namespace)
                    .create(&PostParams::default(), &event)
                    .await
                    .map(drop)
            }
            Write::Repeat(series) => {
                let patch = json!({"series": EventSeries {
                    count: series.count,
                    last_observed_time: MicroTime(now),
                }});
                Api::<KubeEvent>::namespaced(self.client.clone(), &series.namespace)
                    .patch(&series.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(drop)
            }
        };
        if result.is_err() {
            self.recent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .forget(key);
        }
        result
    }

    fn event(
        &self,
        name: String,
        namespace: &str,
        regarding: &ObjectReference,
        note: &Note<'_>,
        now: Timestamp,
    ) -> KubeEvent {
        KubeEvent {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            action: Some(note.action.to_owned()),
            reason: Some(note.reason.to_owned()),
            note: Some(note.note.clone()),
            type_: Some(note.type_.as_str().to_owned()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.controller.clone()),
            ..KubeEvent::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).expect("instant")
    }

    #[test]
    fn an_event_repeated_within_the_window_counts_on_the_first_ones_series() {
        let mut recent = Recent::default();
        assert_eq!(
            recent.publish(7, at(0), "wjw-dev.1".into(), "default"),
            Write::Create {
                name: "wjw-dev.1".into()
            }
        );
        let Write::Repeat(series) = recent.publish(7, at(30), "wjw-dev.2".into(), "default") else {
            panic!("a repeat within the window is a series");
        };
        assert_eq!((series.name.as_str(), series.count), ("wjw-dev.1", 2));
        assert_eq!(
            recent.publish(8, at(31), "wjw-prod.3".into(), "default"),
            Write::Create {
                name: "wjw-prod.3".into()
            },
            "another key is another Event"
        );
    }

    #[test]
    fn an_event_after_the_window_is_written_anew_and_old_series_are_forgotten() {
        let mut recent = Recent::default();
        recent.publish(7, at(0), "a.1".into(), "default");
        recent.publish(8, at(1), "b.1".into(), "default");
        let later = at(SERIES_WINDOW.as_secs() + 1);
        assert_eq!(
            recent.publish(7, later, "a.2".into(), "default"),
            Write::Create { name: "a.2".into() }
        );
        assert_eq!(recent.series.len(), 1, "the expired series of b is dropped");
    }

    #[test]
    fn a_series_whose_write_failed_starts_over_with_a_new_event() {
        let mut recent = Recent::default();
        recent.publish(7, at(0), "a.1".into(), "default");
        recent.forget(7);
        assert_eq!(
            recent.publish(7, at(1), "a.2".into(), "default"),
            Write::Create { name: "a.2".into() }
        );
    }
}
