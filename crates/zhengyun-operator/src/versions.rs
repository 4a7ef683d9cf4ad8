//! What the operator last wrote to each child object, and what the watches last saw of it.
//!
//! A reconciliation re-applies a child only when its desired content changed, when nothing was
//! written yet (a fresh start), or when the watch saw it changed since the operator's own write:
//! deleted, or at another resourceVersion with content other than what the operator declares.
//! A new resourceVersion alone is not a change: the quota controller rewrites a ResourceQuota's
//! status every time usage moves. A converged environment then costs no writes and almost no
//! calls.

use std::borrow::Cow;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{Resource, ResourceExt};
use serde::Serialize;

/// A child within its namespace: its kind and name.
type Key = (Cow<'static, str>, Box<str>);

/// The children of one namespace (`""`: cluster-scoped ones, the namespaces themselves).
type Children = HashMap<Key, Entry>;

#[derive(Debug, Default)]
struct Entry {
    /// Digest of the whole desired object last applied.
    desired: Option<u64>,
    /// The [`shape`] of that desired object.
    desired_shape: Option<u64>,
    /// The resourceVersion the operator's apply produced.
    written: Option<Version>,
    /// The resourceVersion the watch last saw.
    seen: Option<Version>,
    /// The [`shape`] of what the watch last saw; `None` once it saw the object deleted.
    seen_shape: Option<u64>,
}

/// A resourceVersion as kept: a number when it is the integer [`is_later`] can order (no
/// allocation; a child has two, and 10,000 environments have 100,000 children), its text
/// otherwise. Either way it stands for the same text.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Version {
    Number(u64),
    Text(Box<str>),
}

impl Version {
    fn of(rv: Option<String>) -> Option<Self> {
        rv.map(|text| match text.parse::<u64>() {
            Ok(n) if comparable(&text) => Self::Number(n),
            _ => Self::Text(text.into_boxed_str()),
        })
    }

    /// Whether `a` is later than `b`, as [`is_later`] says of their texts.
    fn is_later(a: Option<&Self>, b: Option<&Self>) -> bool {
        match (a, b) {
            (Some(Self::Number(a)), Some(Self::Number(b))) => a > b,
            (Some(Self::Number(_)), None) => true,
            _ => is_later(a.map(Self::text).as_deref(), b.map(Self::text).as_deref()),
        }
    }

    fn text(&self) -> Cow<'_, str> {
        match self {
            Self::Number(n) => Cow::Owned(n.to_string()),
            Self::Text(t) => Cow::Borrowed(t),
        }
    }
}

/// Written and observed versions of every child, by namespace, kind and name, and the last
/// observed status of each environment's namespace and quota (what the operator reports).
#[derive(Debug, Default)]
pub struct ChildVersions {
    entries: Mutex<HashMap<String, Children>>,
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

/// The namespace of `obj` and its key there.
fn key<K: Resource<DynamicType = ()>>(obj: &K) -> (String, Key) {
    (
        obj.namespace().unwrap_or_default(),
        (K::kind(&()), obj.name_any().into_boxed_str()),
    )
}

/// Whether resourceVersion `a` is later than `b` (nothing seen yet counts as earliest).
///
/// Why ordering, not only equality, is safe here: every comparison is between two versions of
/// the same object (the copy this process wrote and the one its watch cache shows), and since
/// Kubernetes 1.35 the API server guarantees that resourceVersions of one resource are
/// comparable (KEP-5504, stable and conformance-tested): positive integers without leading
/// zeros, of any length, ordered as integers. The comparison below is exactly that rule (by
/// length, then digit by digit, so no length overflows). Older API servers store objects in
/// etcd3 and write its revision, which increases with every write, so the rule holds there as
/// well. A version that is not such an integer (an aggregated API server's, say) is never
/// called later: the write-avoidance caches then write again, and [`crate::recent`] trusts the
/// watch cache.
pub(crate) fn is_later(a: Option<&str>, b: Option<&str>) -> bool {
    let Some(a) = a.filter(|a| comparable(a)) else {
        return false;
    };
    match b {
        None => true,
        Some(b) => comparable(b) && (a.len(), a) > (b.len(), b),
    }
}

/// Whether `rv` is a resourceVersion KEP-5504 lets clients order: a positive integer in decimal
/// without leading zeros.
fn comparable(rv: &str) -> bool {
    !rv.is_empty() && !rv.starts_with('0') && rv.bytes().all(|b| b.is_ascii_digit())
}

/// A hash of `obj`'s JSON form.
pub(crate) fn digest<K: Serialize>(obj: &K) -> Option<u64> {
    let text = serde_json::to_string(obj).ok()?;
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    Some(h.finish())
}

/// Digest of what an object declares: its labels, annotations and owners, and every top-level
/// field but its status (spec, data, rules, subjects…). Server-kept metadata (resourceVersion,
/// managedFields, uid, timestamps) and the status do not count. Fields the API server defaults
/// make an observed object's shape differ from the desired one; such a child then falls back
/// to its resourceVersion.
fn shape<K: Serialize>(obj: &K) -> Option<u64> {
    let serde_json::Value::Object(mut fields) = serde_json::to_value(obj).ok()? else {
        return None;
    };
    let metadata = fields.remove("metadata").unwrap_or_default();
    for volatile in ["apiVersion", "kind", "status"] {
        fields.remove(volatile);
    }
    for declared in ["labels", "annotations", "ownerReferences"] {
        let value = metadata.get(declared).cloned().unwrap_or_default();
        fields.insert(format!("metadata.{declared}"), value);
    }
    digest(&fields)
}

impl ChildVersions {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Children>) -> T) -> T {
        // A poisoned lock only means another reconciliation panicked mid-update; the map is still
        // a valid cache (the worst case is one extra apply).
        let mut guard = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// The entry of `obj`, made if missing.
    fn entry<'a, K: Resource<DynamicType = ()>>(
        m: &'a mut HashMap<String, Children>,
        obj: &K,
    ) -> &'a mut Entry {
        let (namespace, key) = key(obj);
        m.entry(namespace).or_default().entry(key).or_default()
    }

    /// Records what a watch saw of a child (added or modified). An event older than what is
    /// already known of it (the operator's own apply answered first) says nothing new.
    pub fn observe<K: Resource<DynamicType = ()> + Serialize>(&self, obj: &K) {
        let seen = Version::of(obj.resource_version());
        let seen_shape = shape(obj);
        self.with(|m| {
            let e = Self::entry(m, obj);
            if !Version::is_later(e.seen.as_ref(), seen.as_ref()) {
                e.seen = seen;
                e.seen_shape = seen_shape;
            }
        });
    }

    /// Records that a watch saw a child deleted.
    pub fn observe_deleted<K: Resource<DynamicType = ()>>(&self, obj: &K) {
        let seen = Version::of(obj.resource_version());
        self.with(|m| {
            let e = Self::entry(m, obj);
            if !Version::is_later(e.seen.as_ref(), seen.as_ref()) {
                e.seen = seen;
                e.seen_shape = None;
            }
        });
    }

    /// Whether `desired` is exactly what was last written and, as far as the watch saw, still
    /// is: untouched since, or touched only where the operator declares nothing (its status).
    pub fn unchanged<K: Resource<DynamicType = ()> + Serialize>(&self, desired: &K) -> bool {
        let wanted = digest(desired);
        let (namespace, key) = key(desired);
        self.with(|m| {
            m.get(&namespace)
                .and_then(|c| c.get(&key))
                .is_some_and(|e| {
                    wanted.is_some()
                        && e.desired == wanted
                        && e.written.is_some()
                        && (e.written == e.seen
                            || (e.seen_shape.is_some() && e.seen_shape == e.desired_shape))
                })
        })
    }

    /// Records a successful apply of `desired`, which produced `applied`. The apply's answer is
    /// also the newest sight of the child, unless the watch has already shown a later one: a
    /// busy watch may lag behind, and a reconciliation in the meantime must not take its older
    /// events for someone else's edit.
    pub fn wrote<K: Resource<DynamicType = ()> + Serialize>(&self, desired: &K, applied: &K) {
        let wanted = digest(desired);
        let desired_shape = shape(desired);
        let applied_shape = shape(applied);
        let written = Version::of(applied.resource_version());
        self.with(|m| {
            let e = Self::entry(m, desired);
            if Version::is_later(written.as_ref(), e.seen.as_ref()) {
                e.seen.clone_from(&written);
                e.seen_shape = applied_shape;
            }
            e.desired = wanted;
            e.desired_shape = desired_shape;
            e.written = written;
        });
    }

    /// Names of the children of kind `K` in `namespace` that the watch (or the operator's own
    /// apply) last saw present: where to look for children no longer declared.
    pub fn present<K: Resource<DynamicType = ()>>(&self, namespace: &str) -> Vec<String> {
        let kind = K::kind(&());
        self.with(|m| {
            m.get(namespace)
                .into_iter()
                .flatten()
                .filter(|((k, _), e)| *k == kind && e.seen_shape.is_some())
                .map(|((_, name), _)| name.to_string())
                .collect()
        })
    }

    /// Forgets every child in `namespace` (after the environment is gone).
    pub fn forget_namespace(&self, namespace: &str) {
        self.with(|m| {
            m.remove(namespace);
            if let Some(cluster_scoped) = m.get_mut("") {
                cluster_scoped.retain(|(_, name), _| &**name != namespace);
            }
        });
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

    /// Records a quota's usage (from a watch event or an apply response), once counted. Only
    /// the environment's own quota says what it uses; other quotas of the namespace are ignored.
    pub fn note_quota(&self, quota: &ResourceQuota) {
        if quota.metadata.name.as_deref() != Some(crate::resources::QUOTA_NAME) {
            return;
        }
        let Some(used) = quota.status.as_ref().and_then(|s| s.used.clone()) else {
            return;
        };
        let ns = quota.namespace().unwrap_or_default();
        self.with_statuses(|m| m.entry(ns).or_default().used = Some(used));
    }

    /// Records a quota the operator has just created, which the quota controller has not counted
    /// yet, as using nothing, unless a count of the namespace is already known. Until a quota
    /// is counted the API server's quota admission lets nothing it limits into the namespace,
    /// so zero is what there is; the first count replaces it (and, if it differs, is reported).
    pub fn note_uncounted_quota(&self, quota: &ResourceQuota) {
        if quota
            .status
            .as_ref()
            .and_then(|s| s.used.as_ref())
            .is_some()
        {
            return;
        }
        let Some(hard) = quota.spec.as_ref().and_then(|s| s.hard.as_ref()) else {
            return;
        };
        let zero: BTreeMap<String, Quantity> = hard
            .keys()
            .map(|k| (k.clone(), Quantity("0".into())))
            .collect();
        let ns = quota.namespace().unwrap_or_default();
        self.with_statuses(|m| {
            let observed = m.entry(ns).or_default();
            if observed.used.is_none() {
                observed.used = Some(zero);
            }
        });
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
    fn a_child_seen_again_with_only_its_status_changed_is_left_alone() {
        use k8s_openapi::api::core::v1::{ResourceQuotaSpec, ResourceQuotaStatus};
        let quota = |rv: &str, hard: &str, used: Option<&str>| ResourceQuota {
            metadata: ObjectMeta {
                name: Some("quota".into()),
                namespace: Some("wjw-prod".into()),
                resource_version: Some(rv.into()),
                labels: Some([("zhengyun.io/bureau".to_owned(), "wjw".to_owned())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(ResourceQuotaSpec {
                hard: Some([("requests.cpu".to_owned(), Quantity(hard.into()))].into()),
                ..ResourceQuotaSpec::default()
            }),
            status: used.map(|u| ResourceQuotaStatus {
                used: Some([("requests.cpu".to_owned(), Quantity(u.into()))].into()),
                ..ResourceQuotaStatus::default()
            }),
        };
        let v = ChildVersions::default();
        v.wrote(&quota("", "4", None), &quota("7", "4", None));
        v.observe(&quota("8", "4", Some("500m")));
        assert!(
            v.unchanged(&quota("", "4", None)),
            "a new count of usage is no edit"
        );
        v.observe(&quota("9", "8", Some("500m")));
        assert!(
            !v.unchanged(&quota("", "4", None)),
            "a raised hard limit is an edit"
        );
    }

    #[test]
    fn a_quota_just_created_counts_as_using_nothing_until_the_first_count() {
        use k8s_openapi::api::core::v1::{ResourceQuotaSpec, ResourceQuotaStatus};
        let hard = |used: Option<&str>| ResourceQuota {
            metadata: ObjectMeta {
                name: Some(crate::resources::QUOTA_NAME.into()),
                namespace: Some("wjw-prod".into()),
                ..ObjectMeta::default()
            },
            spec: Some(ResourceQuotaSpec {
                hard: Some([("requests.cpu".to_owned(), Quantity("4".into()))].into()),
                ..ResourceQuotaSpec::default()
            }),
            status: used.map(|u| ResourceQuotaStatus {
                used: Some([("requests.cpu".to_owned(), Quantity(u.into()))].into()),
                ..ResourceQuotaStatus::default()
            }),
        };
        let v = ChildVersions::default();
        v.note_uncounted_quota(&hard(None));
        let used = |v: &ChildVersions| {
            v.observed("wjw-prod").used.unwrap()["requests.cpu"]
                .0
                .clone()
        };
        assert_eq!(used(&v), "0");
        v.note_quota(&hard(Some("250m")));
        assert_eq!(used(&v), "250m");
        v.note_uncounted_quota(&hard(None));
        assert_eq!(
            used(&v),
            "250m",
            "a known count is never replaced by a guess"
        );
        let mut other = hard(Some("0"));
        other.metadata.name = Some(crate::resources::OTHER_CLASSES_QUOTA_NAME.into());
        v.note_quota(&other);
        assert_eq!(
            used(&v),
            "250m",
            "another quota of the namespace says nothing"
        );
    }

    #[test]
    fn a_child_written_before_the_watch_caught_up_is_left_alone() {
        let v = ChildVersions::default();
        v.observe(&map("5", "old"));
        v.wrote(&map("", "a"), &map("7", "a"));
        assert!(
            v.unchanged(&map("", "a")),
            "the watch still shows version 5"
        );
        v.observe(&map("6", "old"));
        assert!(
            v.unchanged(&map("", "a")),
            "a late event older than the apply says nothing new"
        );
        v.observe(&map("9", "edited"));
        assert!(!v.unchanged(&map("", "a")), "a later one does");
    }

    #[test]
    fn a_later_edit_seen_before_the_apply_answer_arrives_is_not_forgotten() {
        let v = ChildVersions::default();
        v.observe(&map("8", "edited"));
        v.wrote(&map("", "a"), &map("7", "a"));
        assert!(!v.unchanged(&map("", "a")));
    }

    #[test]
    fn children_seen_present_are_listed_by_kind_and_namespace_until_seen_deleted() {
        let v = ChildVersions::default();
        let mut a = map("5", "a");
        a.metadata.name = Some("a".into());
        let mut b = map("6", "b");
        b.metadata.name = Some("b".into());
        let mut elsewhere = map("7", "c");
        elsewhere.metadata.namespace = Some("other".into());
        v.observe(&a);
        v.observe(&b);
        v.observe(&elsewhere);
        let mut names = v.present::<ConfigMap>("wjw-prod");
        names.sort();
        assert_eq!(names, ["a", "b"]);
        assert!(
            v.present::<Namespace>("wjw-prod").is_empty(),
            "another kind"
        );
        let mut gone = b.clone();
        gone.metadata.resource_version = Some("8".into());
        v.observe_deleted(&gone);
        assert_eq!(v.present::<ConfigMap>("wjw-prod"), ["a"]);
    }

    #[test]
    fn resource_versions_compare_as_revisions() {
        assert!(is_later(Some("10"), Some("9")));
        assert!(is_later(
            Some("100000000000000000000000"),
            Some("99999999999999999999999")
        ));
        assert!(!is_later(Some("010"), Some("9")), "leading zeros");
        assert!(!is_later(Some("0"), None), "zero is never a live version");
        assert!(!is_later(Some("12"), Some("12")));
        assert!(!is_later(Some("9"), Some("10")));
        assert!(is_later(Some("3"), None));
        assert!(!is_later(Some("x"), None));
        assert!(!is_later(Some("3"), Some("x")));
    }

    #[test]
    fn kept_versions_order_as_their_texts_do() {
        let cases = [
            "9",
            "10",
            "18446744073709551615",
            "18446744073709551616",
            "010",
            "0",
            "x",
        ];
        for a in cases.iter().map(|t| Some(*t)).chain([None]) {
            for b in cases.iter().map(|t| Some(*t)).chain([None]) {
                let kept = |t: Option<&str>| Version::of(t.map(str::to_owned));
                assert_eq!(
                    Version::is_later(kept(a).as_ref(), kept(b).as_ref()),
                    is_later(a, b),
                    "{a:?} later than {b:?}"
                );
            }
        }
        assert_eq!(Version::of(Some("42".into())), Some(Version::Number(42)));
        assert_eq!(
            Version::of(Some("042".into())),
            Some(Version::Text("042".into()))
        );
    }

    #[test]
    fn forgetting_a_namespace_forgets_its_children_and_the_namespace_itself() {
        let v = ChildVersions::default();
        v.observe(&map("5", "a"));
        let ns = |name: &str| Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                resource_version: Some("3".into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        v.observe(&ns("wjw-prod"));
        v.observe(&ns("jyj-dev"));
        v.forget_namespace("wjw-prod");
        assert!(v.present::<ConfigMap>("wjw-prod").is_empty());
        assert_eq!(v.present::<Namespace>(""), ["jyj-dev"]);
    }

    #[test]
    fn a_child_seen_deleted_is_applied_again_even_if_its_content_matched() {
        let v = ChildVersions::default();
        v.wrote(&map("", "a"), &map("7", "a"));
        v.observe(&map("7", "a"));
        v.observe_deleted(&map("8", "a"));
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
