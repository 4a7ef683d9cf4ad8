//! The API's watch cache of Bureaus and Environments, which serves its reads, and the
//! read-your-writes rule that keeps a caller's own changes visible in it.
//!
//! Two reflectors (kube-runtime watches kept in memory) hold every Bureau and Environment. The
//! read endpoints (`GET` of bureaus and environments) answer from them instead of asking the
//! API server each time, and so does an environment's creation, whose check of the bureau's
//! room only shapes the early answer (the operator admits; docs/architecture.md, invariant 1)
//! and whose name is made unique by the API server itself. The other writes read, decide and
//! write against the API server with their preconditions and conflict retries. A third
//! reflector holds the RateCards, which price the reports (statements, costs, efficiency);
//! closing a month and issuing adjustments read the cards from the API server itself.
//!
//! **Read your writes.** A write made here (create, replace, delete) records what it wrote: the
//! object's name and the resourceVersion the API server returned, or that it is gone. A read
//! whose scope holds such a write waits until the watch has delivered that very version (or the
//! deletion), comparing resourceVersions for equality only; the watch delivers the events of
//! one object in order, so once it has delivered the written version, whatever the cache holds
//! of that object afterwards is that version or a later one. The wait is bounded
//! ([`READ_YOUR_WRITES_WAIT`]); when it runs out (a watch restarting, whose relist can skip the
//! written version) the read goes to the API server directly. A recorded write the watch never
//! delivers is forgotten after [`WRITE_MEMORY`]. The rule holds within one API process: a
//! caller who writes through one replica and reads through another reads that replica's cache.
//!
//! Until both watches have listed once, reads go to the API server; `/readyz` answers 503
//! meanwhile, so that a load balancer sends no reads to a replica whose cache is still empty.
//!
//! **Misses.** A bureau or environment read by name that the cache does not hold is looked for
//! on the API server before the answer is 404: one made moments ago by someone else (`kubectl`,
//! the operator, another replica) may not have reached the watch yet. Lists answer from the
//! cache as it stands.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use kube::{
    Api, Resource, ResourceExt,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use tokio::sync::watch;
use zhengyun_model::crd::{Bureau, Environment, RateCard};

/// The longest a read waits for the watch to deliver the caller's own write before it reads
/// the API server instead.
pub const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(1);

/// How long a write is remembered while the watch has not delivered it.
pub const WRITE_MEMORY: Duration = Duration::from_secs(30);

/// The resourceVersions of one object the watch delivered last; a write's version is looked up
/// here when the watch was quicker than the write's answer.
const SEEN_VERSIONS: usize = 4;

/// Which kind of object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A Bureau.
    Bureau,
    /// An Environment.
    Environment,
}

/// What a read covers: a write within it must be visible before the cache answers.
#[derive(Clone, Copy, Debug)]
pub enum Scope<'a> {
    /// Every bureau.
    Bureaus,
    /// One bureau.
    Bureau(&'a str),
    /// One environment.
    Environment(&'a str),
    /// The environments of one bureau.
    EnvironmentsOf(&'a str),
}

/// A write this process made that the watch has not delivered yet.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Written {
    kind: Kind,
    name: String,
    /// The bureau the object belongs to (its own name for a bureau).
    bureau: String,
    /// The version written; `None`: the object is gone.
    version: Option<String>,
    at: Instant,
}

impl Written {
    fn within(&self, scope: Scope<'_>) -> bool {
        match (scope, self.kind) {
            (Scope::Bureaus, Kind::Bureau) => true,
            (Scope::Bureau(name), Kind::Bureau) => self.name == name,
            (Scope::Environment(name), Kind::Environment) => self.name == name,
            (Scope::EnvironmentsOf(bureau), Kind::Environment) => self.bureau == bureau,
            _ => false,
        }
    }
}

/// What the watches delivered, and the writes still waiting for them. Pure bookkeeping, so
/// that the rule is tested without a cluster.
#[derive(Debug, Default)]
pub struct Ledger {
    seen: HashMap<(Kind, String), VecDeque<String>>,
    waiting: Vec<Written>,
}

impl Ledger {
    /// The watch of `kind` delivered `name` at `version` (`None`: deleted).
    pub fn delivered(&mut self, kind: Kind, name: &str, version: Option<&str>) {
        let key = (kind, name.to_owned());
        match version {
            Some(version) => {
                let seen = self.seen.entry(key).or_default();
                if seen.len() == SEEN_VERSIONS {
                    seen.pop_front();
                }
                seen.push_back(version.to_owned());
            }
            None => {
                self.seen.remove(&key);
            }
        }
        // A deletion settles every write of the object: nothing later can come.
        self.waiting.retain(|w| {
            let settled = version.is_none() || w.version.as_deref() == version;
            !(w.kind == kind && w.name == name && settled)
        });
    }

    /// This process wrote `name` (of `bureau`) at `version` (`None`: it is gone), at `now`.
    /// `cached` says whether the cache holds the object now, for a deletion the watch may
    /// already have delivered.
    pub fn wrote(
        &mut self,
        kind: Kind,
        name: &str,
        bureau: &str,
        version: Option<&str>,
        cached: bool,
        now: Instant,
    ) {
        let delivered = match version {
            Some(version) => self
                .seen
                .get(&(kind, name.to_owned()))
                .is_some_and(|seen| seen.iter().any(|v| v == version)),
            None => !cached,
        };
        self.waiting.retain(|w| !(w.kind == kind && w.name == name));
        if !delivered {
            self.waiting.push(Written {
                kind,
                name: name.to_owned(),
                bureau: bureau.to_owned(),
                version: version.map(str::to_owned),
                at: now,
            });
        }
    }

    /// Whether a write within `scope` is still waiting for the watch at `now`; writes older
    /// than [`WRITE_MEMORY`] are forgotten.
    pub fn waiting_within(&mut self, scope: Scope<'_>, now: Instant) -> bool {
        self.waiting
            .retain(|w| now.saturating_duration_since(w.at) < WRITE_MEMORY);
        self.waiting.iter().any(|w| w.within(scope))
    }
}

/// The watch cache; cheap to clone.
#[derive(Clone)]
pub struct ClusterCache(Arc<Shared>);

struct Shared {
    bureaus: Store<Bureau>,
    environments: Store<Environment>,
    rate_cards: Store<RateCard>,
    ledger: Mutex<Ledger>,
    bureaus_listed: AtomicBool,
    environments_listed: AtomicBool,
    rate_cards_listed: AtomicBool,
    rate_cards_failing: AtomicBool,
    /// Whether the watch's last attempt failed: the cache may then be missing changes (the
    /// API server is away, or the watch is being re-established), and reads go to the API
    /// server, which answers for itself (503 while it is away), until the watch delivers again.
    bureaus_failing: AtomicBool,
    environments_failing: AtomicBool,
    changes: watch::Sender<u64>,
}

impl std::fmt::Debug for ClusterCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCache")
            .field("ready", &self.ready())
            .finish_non_exhaustive()
    }
}

impl ClusterCache {
    /// Starts watching every Bureau and Environment through `client`; the watches run (and
    /// restart with backoff after errors) until the process ends.
    pub fn start(client: kube::Client) -> Self {
        let (bureaus, bureau_writer) = reflector::store();
        let (environments, environment_writer) = reflector::store();
        let (rate_cards, rate_card_writer) = reflector::store();
        let (changes, _) = watch::channel(0);
        let cache = Self(Arc::new(Shared {
            bureaus,
            environments,
            rate_cards,
            ledger: Mutex::new(Ledger::default()),
            bureaus_listed: AtomicBool::new(false),
            environments_listed: AtomicBool::new(false),
            rate_cards_listed: AtomicBool::new(false),
            rate_cards_failing: AtomicBool::new(false),
            bureaus_failing: AtomicBool::new(false),
            environments_failing: AtomicBool::new(false),
            changes,
        }));
        tokio::spawn(cache.clone().watch(
            Api::<Bureau>::all(client.clone()),
            bureau_writer,
            Kind::Bureau,
        ));
        tokio::spawn(cache.clone().watch(
            Api::<Environment>::all(client.clone()),
            environment_writer,
            Kind::Environment,
        ));
        tokio::spawn(
            cache
                .clone()
                .mirror(Api::<RateCard>::all(client), rate_card_writer),
        );
        cache
    }

    /// Keeps `writer`'s store a mirror of every object of `api`, for objects this process
    /// never writes: no read-your-writes bookkeeping, only whether it listed and still
    /// delivers.
    async fn mirror<K>(self, api: Api<K>, mut writer: reflector::store::Writer<K>)
    where
        K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + Send + Sync + 'static,
        K: serde::de::DeserializeOwned,
    {
        let events = watcher(api, watch_config()).default_backoff();
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    self.0.rate_cards_failing.store(false, Ordering::Release);
                    writer.apply_watcher_event(&event);
                    if matches!(event, watcher::Event::InitDone) {
                        self.0.rate_cards_listed.store(true, Ordering::Release);
                    }
                }
                Err(error) => {
                    if !self.0.rate_cards_failing.swap(true, Ordering::AcqRel) {
                        tracing::warn!(%error, "the API's watch of rate cards failed; they are read from the API server until it delivers again");
                    }
                }
            }
        }
    }

    /// Every rate card, when the watch has listed them and still delivers; `None`: ask the API
    /// server.
    pub fn rate_cards(&self) -> Option<Vec<Arc<RateCard>>> {
        (self.0.rate_cards_listed.load(Ordering::Acquire)
            && !self.0.rate_cards_failing.load(Ordering::Acquire))
        .then(|| self.0.rate_cards.state())
    }

    async fn watch<K>(self, api: Api<K>, mut writer: reflector::store::Writer<K>, kind: Kind)
    where
        K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + Send + Sync + 'static,
        K: serde::de::DeserializeOwned,
    {
        let events = watcher(api, watch_config()).default_backoff();
        let mut events = std::pin::pin!(events);
        let failing = match kind {
            Kind::Bureau => &self.0.bureaus_failing,
            Kind::Environment => &self.0.environments_failing,
        };
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    if !failing.swap(true, Ordering::AcqRel) {
                        tracing::warn!(?kind, %error, "the API's watch failed; reads go to the API server until it delivers again");
                    }
                    continue;
                }
            };
            if failing.swap(false, Ordering::AcqRel) {
                tracing::info!(?kind, "the API's watch delivers again");
            }
            writer.apply_watcher_event(&event);
            {
                let mut ledger = self.ledger();
                match &event {
                    watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                        ledger.delivered(
                            kind,
                            &object.name_any(),
                            object.resource_version().as_deref(),
                        );
                    }
                    watcher::Event::Delete(object) => {
                        ledger.delivered(kind, &object.name_any(), None);
                    }
                    watcher::Event::Init => {}
                    watcher::Event::InitDone => {
                        let listed = match kind {
                            Kind::Bureau => &self.0.bureaus_listed,
                            Kind::Environment => &self.0.environments_listed,
                        };
                        if !listed.swap(true, Ordering::AcqRel) {
                            tracing::info!(?kind, "the API's watch cache is synced");
                        }
                    }
                }
            }
            self.0.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.0.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether both watches have listed once.
    pub fn ready(&self) -> bool {
        self.0.bureaus_listed.load(Ordering::Acquire)
            && self.0.environments_listed.load(Ordering::Acquire)
    }

    /// Whether the cache can answer for the cluster: both watches have listed once and neither
    /// has failed since it last delivered. A cache that cannot reach the API server does not
    /// answer from what it last saw.
    pub fn current(&self) -> bool {
        self.ready()
            && !self.0.bureaus_failing.load(Ordering::Acquire)
            && !self.0.environments_failing.load(Ordering::Acquire)
    }

    /// Records a Bureau this process wrote (the object the API server returned).
    pub fn wrote_bureau(&self, bureau: &Bureau) {
        let name = bureau.name_any();
        self.wrote(
            Kind::Bureau,
            &name,
            &name,
            bureau.resource_version().as_deref(),
        );
    }

    /// Records an Environment this process wrote (the object the API server returned).
    pub fn wrote_environment(&self, env: &Environment) {
        self.wrote(
            Kind::Environment,
            &env.name_any(),
            &env.spec.bureau,
            env.resource_version().as_deref(),
        );
    }

    /// Records that this process deleted `name` (of `bureau`) and it is gone.
    pub fn deleted(&self, kind: Kind, name: &str, bureau: &str) {
        self.wrote(kind, name, bureau, None);
    }

    fn wrote(&self, kind: Kind, name: &str, bureau: &str, version: Option<&str>) {
        let cached = match kind {
            Kind::Bureau => self.0.bureaus.get(&ObjectRef::new(name)).is_some(),
            Kind::Environment => self.0.environments.get(&ObjectRef::new(name)).is_some(),
        };
        self.ledger()
            .wrote(kind, name, bureau, version, cached, Instant::now());
    }

    /// Waits until the cache can answer a read of `scope`: it is synced and holds every write
    /// of this process within `scope`. `false` when [`READ_YOUR_WRITES_WAIT`] ran out first:
    /// read the API server instead.
    pub async fn settled(&self, scope: Scope<'_>) -> bool {
        let deadline = tokio::time::Instant::now() + READ_YOUR_WRITES_WAIT;
        let mut changes = self.0.changes.subscribe();
        loop {
            if self.ready() && !self.current() {
                return false;
            }
            if self.ready() && !self.ledger().waiting_within(scope, Instant::now()) {
                return true;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return false,
            }
        }
    }

    /// Bureau `name` as the cache holds it.
    pub fn bureau(&self, name: &str) -> Option<Arc<Bureau>> {
        self.0.bureaus.get(&ObjectRef::new(name))
    }

    /// Every bureau the cache holds.
    pub fn bureaus(&self) -> Vec<Arc<Bureau>> {
        self.0.bureaus.state()
    }

    /// Environment `name` as the cache holds it.
    pub fn environment(&self, name: &str) -> Option<Arc<Environment>> {
        self.0.environments.get(&ObjectRef::new(name))
    }

    /// The environments of `bureau` the cache holds.
    pub fn environments_of(&self, bureau: &str) -> Vec<Arc<Environment>> {
        self.0
            .environments
            .state_filter(|env| env.spec.bureau == bureau)
    }
}

/// How long the API server keeps each watch open before ending it, in seconds. The API's client
/// gives up on a response that sends nothing for 15 s (so that a request to an unreachable
/// cluster fails fast); a watch of kinds that rarely change can be silent far longer. The server
/// ends each watch before that, and the watch resumes from where it was, with no list: a watch
/// that failed would send reads to the API server until its next event.
pub const WATCH_SECONDS: u32 = 10;

fn watch_config() -> watcher::Config {
    watcher::Config::default().timeout(WATCH_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger_with_write(version: Option<&str>) -> (Ledger, Instant) {
        let now = Instant::now();
        let mut ledger = Ledger::default();
        ledger.wrote(Kind::Environment, "wjw-dev", "wjw", version, true, now);
        (ledger, now)
    }

    #[test]
    fn a_read_waits_for_the_written_version_and_no_other() {
        let (mut ledger, now) = ledger_with_write(Some("12"));
        assert!(ledger.waiting_within(Scope::Environment("wjw-dev"), now));
        assert!(ledger.waiting_within(Scope::EnvironmentsOf("wjw"), now));
        ledger.delivered(Kind::Environment, "wjw-dev", Some("11"));
        assert!(ledger.waiting_within(Scope::Environment("wjw-dev"), now));
        ledger.delivered(Kind::Environment, "wjw-dev", Some("12"));
        assert!(!ledger.waiting_within(Scope::Environment("wjw-dev"), now));
    }

    #[test]
    fn a_write_the_watch_delivered_before_its_answer_is_not_waited_for() {
        let mut ledger = Ledger::default();
        ledger.delivered(Kind::Bureau, "wjw", Some("7"));
        ledger.delivered(Kind::Bureau, "wjw", Some("8"));
        let now = Instant::now();
        ledger.wrote(Kind::Bureau, "wjw", "wjw", Some("7"), true, now);
        assert!(!ledger.waiting_within(Scope::Bureau("wjw"), now));
        assert!(!ledger.waiting_within(Scope::Bureaus, now));
    }

    #[test]
    fn a_write_concerns_only_reads_of_its_object_its_bureau_or_all_bureaus() {
        let (mut ledger, now) = ledger_with_write(Some("3"));
        assert!(!ledger.waiting_within(Scope::Environment("wjw-prod"), now));
        assert!(!ledger.waiting_within(Scope::EnvironmentsOf("jyj"), now));
        assert!(!ledger.waiting_within(Scope::Bureaus, now));
        assert!(!ledger.waiting_within(Scope::Bureau("wjw"), now));
    }

    #[test]
    fn a_deletion_is_waited_for_until_the_watch_delivers_it_unless_the_object_is_gone_already() {
        let (mut ledger, now) = ledger_with_write(None);
        assert!(ledger.waiting_within(Scope::EnvironmentsOf("wjw"), now));
        ledger.delivered(Kind::Environment, "wjw-dev", None);
        assert!(!ledger.waiting_within(Scope::EnvironmentsOf("wjw"), now));
        ledger.wrote(Kind::Environment, "wjw-dev", "wjw", None, false, now);
        assert!(!ledger.waiting_within(Scope::EnvironmentsOf("wjw"), now));
    }

    #[test]
    fn a_deletion_settles_a_write_of_the_object_whose_version_never_came() {
        let (mut ledger, now) = ledger_with_write(Some("12"));
        ledger.delivered(Kind::Environment, "wjw-dev", None);
        assert!(!ledger.waiting_within(Scope::Environment("wjw-dev"), now));
    }

    #[test]
    fn a_write_the_watch_never_delivers_is_forgotten_after_a_while() {
        let (mut ledger, now) = ledger_with_write(Some("12"));
        assert!(!ledger.waiting_within(Scope::Environment("wjw-dev"), now + WRITE_MEMORY));
    }

    #[test]
    fn only_the_last_write_of_an_object_is_waited_for() {
        let (mut ledger, now) = ledger_with_write(Some("12"));
        ledger.wrote(Kind::Environment, "wjw-dev", "wjw", Some("14"), true, now);
        ledger.delivered(Kind::Environment, "wjw-dev", Some("14"));
        assert!(!ledger.waiting_within(Scope::Environment("wjw-dev"), now));
    }
}
