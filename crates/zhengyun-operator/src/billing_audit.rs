//! Billing inputs changed in the cluster reach the audit log: rate cards created or deleted,
//! bureau budgets and environment tiers changed — through the API or with `kubectl`.
//!
//! The API records its own calls; a change made with `kubectl` bypasses it. The leader watches
//! the three kinds and appends what changed to the hash-chained audit log, with the values
//! before and after (in the entry's `quotaBefore`/`quotaAfter`) and who is known to have made it:
//! the field manager Kubernetes records in `metadata.managedFields` (`kubectl-client-side-apply`,
//! `kubectl-edit`, `kubectl-patch`, the API's `zhengyun-api`…), as principal
//! `kubernetes:<manager>`. A deletion leaves no manager behind: its principal is
//! `kubernetes:unknown` (the API server's own audit log names the user).
//!
//! | action | when | values |
//! |---|---|---|
//! | `ratecard.create` | a RateCard appears (or is re-created under its name) | its `spec` |
//! | `ratecard.delete` | a RateCard disappears | its `spec` |
//! | `ratecard.update` | a RateCard's `spec` changes (the CRD refuses it; kept for old CRDs) | its `spec` |
//! | `bureau.budget` | `spec.monthlyBudget` is set, changed or removed | `{"monthlyBudget": …}` |
//! | `environment.tier` | an environment appears or its `spec.tier` changes | `{"tier": …}` |
//!
//! **Exactly once.** What was last recorded for each object (uid, generation, audited values) is
//! remembered in the store ([`zhengyun_store::Observed`]) and changed in the transaction that
//! appends the entries. Every pass compares the cluster with that, not with what this process
//! saw last: a restart, a relist or a new leader records nothing again, and a change made while
//! no operator ran (a card deleted meanwhile) is recorded when one runs again.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Value, json};
use zhengyun_model::crd::{Bureau, Environment, RateCard};
use zhengyun_store::{AuditEntry, Observed, Store};

use crate::runtime::watches::Watched;

/// The outcome written in every entry of this module.
pub const RESULT: &str = "observed";
/// The principal's prefix: `kubernetes:<field manager>`.
pub const PRINCIPAL_PREFIX: &str = "kubernetes:";
/// Seconds between passes that retry what could not be written.
const RETRY: Duration = Duration::from_secs(10);

/// How one audited kind is read.
pub trait Audited: Resource<DynamicType = ()> + Clone + Send + Sync + 'static {
    /// The kind, as remembered in the store.
    const KIND: &'static str;
    /// The audit log's object prefix, e.g. `ratecards`.
    const PLURAL: &'static str;
    /// The audited values.
    fn audited(&self) -> Value;
    /// The `managedFields` path of the audited values, e.g. `["f:spec", "f:monthlyBudget"]`.
    fn field_path() -> &'static [&'static str];
    /// The bureau concerned, if any.
    fn bureau(&self) -> Option<String>;
}

impl Audited for RateCard {
    const KIND: &'static str = "RateCard";
    const PLURAL: &'static str = "ratecards";
    fn audited(&self) -> Value {
        serde_json::to_value(&self.spec).unwrap_or(Value::Null)
    }
    fn field_path() -> &'static [&'static str] {
        &["f:spec"]
    }
    fn bureau(&self) -> Option<String> {
        None
    }
}

impl Audited for Bureau {
    const KIND: &'static str = "Bureau";
    const PLURAL: &'static str = "bureaus";
    fn audited(&self) -> Value {
        json!({ "monthlyBudget": self.spec.monthly_budget })
    }
    fn field_path() -> &'static [&'static str] {
        &["f:spec", "f:monthlyBudget"]
    }
    fn bureau(&self) -> Option<String> {
        Some(self.name_any())
    }
}

impl Audited for Environment {
    const KIND: &'static str = "Environment";
    const PLURAL: &'static str = "environments";
    fn audited(&self) -> Value {
        json!({ "tier": self.spec.tier })
    }
    fn field_path() -> &'static [&'static str] {
        &["f:spec", "f:tier"]
    }
    fn bureau(&self) -> Option<String> {
        Some(self.spec.bureau.clone())
    }
}

/// An object as seen now, with what the audit log says about who changed it.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    /// Identity and audited values.
    pub observed: Observed,
    /// The field manager that last wrote the audited values, if Kubernetes says.
    pub manager: Option<String>,
    /// The bureau concerned.
    pub bureau: Option<String>,
}

impl Seen {
    /// `obj` as seen now.
    pub fn of<K: Audited>(obj: &K) -> Self {
        let meta = obj.meta();
        Self {
            observed: Observed {
                kind: K::KIND.to_owned(),
                name: obj.name_any(),
                uid: meta.uid.clone().unwrap_or_default(),
                generation: meta.generation.unwrap_or(0),
                audited: obj.audited(),
            },
            manager: field_manager(meta, K::field_path()),
            bureau: obj.bureau(),
        }
    }
}

/// The manager that last wrote the field at `path`: of the `managedFields` entries (status
/// writes aside) that own it, the most recent; if none owns it any more (the field was
/// removed), the most recent entry of all.
pub fn field_manager(meta: &ObjectMeta, path: &[&str]) -> Option<String> {
    let entries: Vec<_> = meta
        .managed_fields
        .iter()
        .flatten()
        .filter(|e| e.subresource.as_deref().unwrap_or_default().is_empty())
        .collect();
    let owns = |e: &&ManagedFieldsEntry| {
        let mut at = e.fields_v1.as_ref().map(|f| &f.0);
        for key in path {
            at = at.and_then(|v| v.get(*key));
        }
        at.is_some()
    };
    let latest =
        |candidates: Vec<&&k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry>| {
            candidates
                .into_iter()
                .enumerate()
                .max_by_key(|(i, e)| (e.time.as_ref().map(|t| t.0), *i))
                .and_then(|(_, e)| e.manager.clone())
        };
    let owners: Vec<_> = entries.iter().filter(|e| owns(e)).collect();
    if owners.is_empty() {
        latest(entries.iter().collect())
    } else {
        latest(owners)
    }
}

/// Whether an object of `kind` with these values needs remembering when nothing was: a bureau
/// without a budget is the same as no record at all.
fn blank(kind: &str, audited: &Value) -> bool {
    kind == Bureau::KIND && audited.get("monthlyBudget").is_none_or(Value::is_null)
}

/// The audit entries that going from `before` (what was last recorded) to `now` (`None`: the
/// object is gone) makes, at `at`.
pub fn entries(
    plural: &str,
    before: Option<&Observed>,
    now: Option<&Seen>,
    at: Timestamp,
) -> Vec<AuditEntry> {
    let (kind, name) = match (before, now) {
        (_, Some(n)) => (n.observed.kind.as_str(), n.observed.name.as_str()),
        (Some(b), None) => (b.kind.as_str(), b.name.as_str()),
        (None, None) => return Vec::new(),
    };
    let bureau = now
        .and_then(|n| n.bureau.clone())
        .or_else(|| (kind == Bureau::KIND).then(|| name.to_owned()));
    let about = About {
        object: format!("{plural}/{name}"),
        bureau,
        at,
    };
    if kind == RateCard::KIND {
        rate_card_entries(&about, before, now)
    } else {
        value_entries(&about, kind, before, now)
    }
}

/// What every entry about one object shares.
struct About {
    object: String,
    bureau: Option<String>,
    at: Timestamp,
}

impl About {
    /// An entry of `action`, made by whoever `by` names (`None`: a deletion, by nobody known),
    /// about the object `uid` at `generation`.
    fn entry(&self, action: &str, by: Option<&Seen>, uid: &str, generation: i64) -> AuditEntry {
        let manager = by.and_then(|s| s.manager.clone());
        let principal_label = match (&manager, by) {
            (Some(m), _) => format!("Kubernetes field manager {m:?}, seen by the operator"),
            (None, Some(_)) => "Kubernetes names no field manager; seen by the operator".to_owned(),
            (None, None) => "deleted in Kubernetes, which does not record by whom here; \
                             the API server's audit log does"
                .to_owned(),
        };
        AuditEntry {
            at: self.at,
            principal: format!(
                "{PRINCIPAL_PREFIX}{}",
                manager.as_deref().unwrap_or("unknown")
            ),
            principal_label: Some(principal_label),
            role: None,
            bureau: self.bureau.clone(),
            action: action.to_owned(),
            object: self.object.clone(),
            quota_before: None,
            quota_after: None,
            result: RESULT.to_owned(),
            request_id: format!("uid {uid} generation {generation}"),
        }
    }
}

/// A rate card is created or deleted; one re-created under its name is both.
fn rate_card_entries(
    about: &About,
    before: Option<&Observed>,
    now: Option<&Seen>,
) -> Vec<AuditEntry> {
    let mut out = Vec::new();
    if let (Some(b), Some(n)) = (before, now)
        && b.uid == n.observed.uid
    {
        if b.audited != n.observed.audited {
            let mut e = about.entry(
                "ratecard.update",
                Some(n),
                &n.observed.uid,
                n.observed.generation,
            );
            e.quota_before = Some(b.audited.clone());
            e.quota_after = Some(n.observed.audited.clone());
            out.push(e);
        }
        return out;
    }
    if let Some(b) = before {
        let mut e = about.entry("ratecard.delete", None, &b.uid, b.generation);
        e.quota_before = Some(b.audited.clone());
        out.push(e);
    }
    if let Some(n) = now {
        let mut e = about.entry(
            "ratecard.create",
            Some(n),
            &n.observed.uid,
            n.observed.generation,
        );
        e.quota_after = Some(n.observed.audited.clone());
        out.push(e);
    }
    out
}

/// Budgets and tiers: a change of value, whoever holds the name. A deleted object is simply
/// forgotten: its deletion is not a change of budget or tier.
fn value_entries(
    about: &About,
    kind: &str,
    before: Option<&Observed>,
    now: Option<&Seen>,
) -> Vec<AuditEntry> {
    let Some(n) = now else {
        return Vec::new();
    };
    let was = before.map(|b| &b.audited).filter(|v| !blank(kind, v));
    let is = &n.observed.audited;
    if was == Some(is) || (was.is_none() && blank(kind, is)) {
        return Vec::new();
    }
    let action = if kind == Bureau::KIND {
        "bureau.budget"
    } else {
        "environment.tier"
    };
    let mut e = about.entry(action, Some(n), &n.observed.uid, n.observed.generation);
    e.quota_before = was.cloned();
    e.quota_after = Some(is.clone());
    vec![e]
}

/// One audited kind: what the cluster holds of it, what the log remembers, and what to
/// compare next.
///
/// The cluster's objects are kept as [`Seen`], taken from each watch event: the audit needs
/// their `managedFields` (who changed what), and keeping whole objects with them would cost
/// more memory than everything else the operator caches. After a (re)list every object is
/// compared with what the log remembers (a missing one is a deletion); between lists only the
/// objects the watch said changed are. Comparing them all on every event would cost each
/// environment's events a pass over every environment: quadratic work, which at thousands of
/// environments kept the operator's thread busy.
struct Ledger<K> {
    current: BTreeMap<String, Seen>,
    /// What a list in progress has delivered so far.
    listing: Option<BTreeMap<String, Seen>>,
    remembered: Option<BTreeMap<String, Observed>>,
    /// Whether the next sync compares every object (after a list, or a failed full pass).
    full: bool,
    /// The objects changed or deleted since the last sync.
    touched: std::collections::BTreeSet<String>,
    kind: std::marker::PhantomData<K>,
}

impl<K: Audited> Ledger<K> {
    fn new() -> Self {
        Self {
            current: BTreeMap::new(),
            listing: None,
            remembered: None,
            full: true,
            touched: std::collections::BTreeSet::new(),
            kind: std::marker::PhantomData,
        }
    }

    /// Takes in one watch event; returns whether it completed a list.
    fn take(&mut self, event: watcher::Event<Seen>) -> bool {
        match event {
            watcher::Event::Init => self.listing = Some(BTreeMap::new()),
            watcher::Event::InitApply(seen) => {
                let name = seen.observed.name.clone();
                self.listing.get_or_insert_default().insert(name, seen);
            }
            watcher::Event::InitDone => {
                self.current = self.listing.take().unwrap_or_default();
                self.full = true;
                return true;
            }
            watcher::Event::Apply(seen) => {
                let name = seen.observed.name.clone();
                self.touched.insert(name.clone());
                self.current.insert(name, seen);
            }
            watcher::Event::Delete(seen) => {
                self.current.remove(&seen.observed.name);
                self.touched.insert(seen.observed.name);
            }
        }
        false
    }

    /// Brings the audit log up to what the cluster holds; `false` if something must be retried.
    async fn sync(&mut self, store: &Store) -> bool {
        let Self {
            current,
            remembered,
            full,
            touched,
            ..
        } = self;
        let remembered = match remembered {
            Some(r) => r,
            None => match store.observed(K::KIND).await {
                Ok(rows) => {
                    remembered.insert(rows.into_iter().map(|o| (o.name.clone(), o)).collect())
                }
                Err(e) => {
                    tracing::warn!(error = %e, kind = K::KIND, "unable to read the audited objects");
                    return false;
                }
            },
        };
        let names = if *full {
            touched.clear();
            current.keys().chain(remembered.keys()).cloned().collect()
        } else {
            std::mem::take(touched)
        };
        let mut done = true;
        for name in names {
            if !check::<K>(store, remembered, &name, current.get(&name)).await {
                touched.insert(name);
                done = false;
            }
        }
        *full &= !done;
        done
    }
}

/// Compares object `name` as the cluster holds it now (`None`: gone) with what the log
/// remembers, and records the difference; `false` if that failed.
async fn check<K: Audited>(
    store: &Store,
    remembered: &mut BTreeMap<String, Observed>,
    name: &str,
    now: Option<&Seen>,
) -> bool {
    let Some(seen) = now else {
        return !remembered.contains_key(name) || record::<K>(store, remembered, name, None).await;
    };
    let unchanged = match remembered.get(name) {
        Some(k) => k.uid == seen.observed.uid && k.audited == seen.observed.audited,
        None => blank(K::KIND, &seen.observed.audited),
    };
    unchanged || record::<K>(store, remembered, name, Some(seen)).await
}

/// Records the change of one object and updates `remembered`; `false` if it failed.
async fn record<K: Audited>(
    store: &Store,
    remembered: &mut BTreeMap<String, Observed>,
    name: &str,
    now: Option<&Seen>,
) -> bool {
    let at = Timestamp::now();
    let result = store
        .record_observed(K::KIND, name, now.map(|n| &n.observed), |before| {
            entries(K::PLURAL, before, now, at)
        })
        .await;
    match result {
        Ok(records) => {
            for r in &records {
                tracing::info!(seq = r.seq, action = %r.entry.action, object = %r.entry.object,
                    principal = %r.entry.principal, "recorded a cluster change in the audit log");
            }
            match now {
                Some(n) => remembered.insert(name.to_owned(), n.observed.clone()),
                None => remembered.remove(name),
            };
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, kind = K::KIND, name, "unable to record a cluster change in the audit log; retrying");
            false
        }
    }
}

/// The watch of `K`, each event carrying the object as [`Seen`] (read with its
/// `managedFields`, then dropped), tagged with `slot`.
fn seen<K>(
    client: &Client,
    slot: usize,
) -> futures::stream::BoxStream<'static, (usize, watcher::Event<Seen>)>
where
    K: Audited + Watched,
{
    watcher::watcher(Api::<K>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .filter_map(move |e| {
            let event = e.ok().map(|e| match e {
                watcher::Event::Init => watcher::Event::Init,
                watcher::Event::InitApply(o) => watcher::Event::InitApply(Seen::of(&o)),
                watcher::Event::InitDone => watcher::Event::InitDone,
                watcher::Event::Apply(o) => watcher::Event::Apply(Seen::of(&o)),
                watcher::Event::Delete(o) => watcher::Event::Delete(Seen::of(&o)),
            });
            futures::future::ready(event.map(|e| (slot, e)))
        })
        .boxed()
}

/// Records cluster changes of rate cards, budgets and tiers until `stop` resolves. Runs on the
/// leader only.
pub(crate) async fn run(client: Client, store: Store, stop: impl std::future::Future<Output = ()>) {
    let mut events = futures::stream::select_all([
        seen::<RateCard>(&client, 0),
        seen::<Bureau>(&client, 1),
        seen::<Environment>(&client, 2),
    ]);
    let mut cards = Ledger::<RateCard>::new();
    let mut bureaus = Ledger::<Bureau>::new();
    let mut envs = Ledger::<Environment>::new();
    let mut retry = tokio::time::interval(RETRY);
    let mut dirty = true;
    // Nothing is compared before every kind is listed: a missing object must mean deleted.
    let mut listed = [false; 3];
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            event = events.next() => {
                let Some(mut event) = event else {
                    return;
                };
                // Take what else is queued, then sync once.
                loop {
                    let (slot, change) = event;
                    listed[slot] |= match slot {
                        0 => cards.take(change),
                        1 => bureaus.take(change),
                        _ => envs.take(change),
                    };
                    match futures::FutureExt::now_or_never(events.next()) {
                        Some(Some(next)) => event = next,
                        _ => break,
                    }
                }
                dirty = true;
            }
            _ = retry.tick() => {}
        }
        if !dirty || !listed.iter().all(|l| *l) {
            continue;
        }
        let done = cards.sync(&store).await & bureaus.sync(&store).await & envs.sync(&store).await;
        dirty = !done;
    }
}

#[cfg(test)]
mod tests;
