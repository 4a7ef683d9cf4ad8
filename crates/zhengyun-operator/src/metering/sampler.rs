//! The sampler's loop: watches in, windows out (see the [module documentation](super)).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::runtime::reflector::Store as Reflection;
use kube::runtime::watcher as watch;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use zhengyun_metering::{Calendar, Clock, Gap, GapKind, Month, RateSchedule, TimeRange};
use zhengyun_model::crd::{Bureau, Environment, RateCard};
use zhengyun_store::Store;

use super::health::{BEYOND_BACKFILL, Health, Outage, gap_of, split_gaps};
use super::metrics::{MeteringMetrics, UsageSums};
use super::observe::{claim_consumption, pod_consumption, reserved};
use super::settle::{PoolTerms, WindowSettle};
use super::time::{Second, Seconds};
use super::tracker::{Source, SourceClass, Tracker};
use super::{MeteringConfig, STREAM};
use crate::runtime::watches::{Watched, reflected};

/// One thing the loop reacts to.
enum Input {
    Environment(Box<Event<Environment>>),
    Pod(Box<Event<Pod>>),
    Claim(Box<Event<PersistentVolumeClaim>>),
    /// A bureau or rate card changed (the reflectors keep them).
    Prices,
    /// A watch failed: a metering watch (`Some`) starts over with a list, a price watch retries
    /// with backoff by itself.
    WatchError(Option<SourceClass>, watcher::Error),
}

/// Why the sampler stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The process shuts down: write what is known up to now, so a planned restart loses
    /// nothing.
    Shutdown,
    /// The Lease was lost, perhaps because the API server is unreachable and the watches with
    /// it: write nothing more; the next leader resumes from the checkpoint.
    LeaseLost,
}

/// Where a stopping sampler writes its last window to, if anywhere: on shutdown, up to the
/// second its view is known current; after losing the Lease, nowhere.
fn last_window(ending: Ending, health: &Health, frontier: Second, now: Second) -> Option<Second> {
    match ending {
        Ending::Shutdown => {
            Some(Second::at(health.current_until(now.get()))).filter(|end| *end > frontier)
        }
        Ending::LeaseLost => None,
    }
}

/// When windows close, from the metering flags.
#[derive(Clone, Copy, Debug)]
struct Timing {
    /// The length of a window; windows end on its multiples.
    period: Seconds,
    /// How long after its end a window waits for the watch events of its last seconds.
    lateness: Seconds,
    /// How long a watch may fail before the span it missed is not metered at all.
    max_stale: Seconds,
}

impl Timing {
    fn of(config: &MeteringConfig) -> Self {
        Self {
            period: config.metering_period.into(),
            lateness: config.metering_lateness.into(),
            max_stale: config.metering_max_stale.into(),
        }
    }

    /// The end of the window that starts at `frontier` if it is due at `now`: once `lateness`
    /// has passed since it ended.
    fn due_window(&self, frontier: Second, now: Second) -> Option<Second> {
        let end = frontier.window_end(self.period);
        (now >= end + self.lateness).then_some(end)
    }
}

/// Where a sampler resumes: what runs where as of the checkpoint, the checkpoint as stored,
/// and what the time before it leaves to record.
#[derive(Debug)]
struct Resumed {
    tracker: Tracker,
    /// The checkpoint as stored (`None`: none yet).
    written: Option<Second>,
    owed: Owed,
}

/// About how many intervals a window's close builds and stores at a time (see
/// [`Tracker::closing`]): at 10,000 environments a window has some 60,000, which built at once
/// raised the operator's resident memory by tens of MiB at every close.
const WINDOW_BATCH: usize = 2_000;

/// What the sampler must still record in the ledger: gaps, and a long watch failure to skip.
#[derive(Debug, Default)]
struct Owed {
    /// Gaps to record with the windows that cover them.
    gaps: Vec<Gap>,
    /// An unmetered span to move the checkpoint across without counting it.
    skip: Option<Gap>,
}

/// Runs the sampler until `stop` says why it ends; then writes what it knows (see
/// [`last_window`]).
pub(crate) async fn run(
    client: Client,
    store: Store,
    config: MeteringConfig,
    calendar: Calendar,
    metrics: Arc<MeteringMetrics>,
    envs: Reflection<Environment>,
    mut stop: tokio::sync::watch::Receiver<Option<Ending>>,
) {
    let clock = config.clock.clock();
    if !clock.is_system() {
        tracing::warn!(now = %clock.now(), offset_seconds = config.clock.clock_offset, "metering runs on a moved clock");
    }
    let Some(mut sampler) = Sampler::start(store, &config, calendar, metrics, &mut stop).await
    else {
        return;
    };
    let (bureaus, bureau_stream) = prices::<Bureau>(&client);
    let (cards, card_stream) = prices::<RateCard>(&client);
    sampler.attach(client.clone(), cards.clone()).await;
    // The finance metrics read the controllers' cache of Environments; the sampler's own watch
    // below keeps none, it feeds the tracker.
    sampler.metrics.watch(bureaus.clone(), envs);
    let env_stream = relisting(
        Api::<Environment>::all(client.clone()),
        SourceClass::Quotas,
        |event: Event<Environment>| {
            Input::Environment(Box::new(event.modify(crate::no_managed_fields)))
        },
    );
    let pod_stream = relisting(Api::<Pod>::all(client.clone()), SourceClass::Pods, |e| {
        Input::Pod(Box::new(e))
    });
    let claim_stream = relisting(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        SourceClass::Claims,
        |e| Input::Claim(Box::new(e)),
    );
    let mut inputs = futures::stream::select_all([
        env_stream,
        pod_stream,
        claim_stream,
        bureau_stream,
        card_stream,
    ]);

    let costs = CostWorker::spawn(
        sampler.store.clone(),
        sampler.calendar.clone(),
        bureaus.clone(),
        cards.clone(),
        sampler.metrics.clone(),
        clock,
    );
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut priced: Option<Prices> = None;
    let mut ending = Ending::Shutdown;
    loop {
        tokio::select! {
            stopped = stop.wait_for(Option::is_some) => {
                ending = stopped.ok().and_then(|s| *s).unwrap_or(Ending::Shutdown);
                break;
            }
            input = inputs.next() => match input {
                Some(input) => sampler.take(input),
                None => break,
            },
            _ = tick.tick() => {
                sampler.record_reclaims().await;
                let Some(mut months) = sampler.close_due().await else {
                    continue;
                };
                // Rate cards change every month's price; budgets only the current month's flags.
                let prices = Prices::of(&bureaus, &cards);
                match &priced {
                    Some(last) if last.cards == prices.cards => {
                        if last.budgets != prices.budgets {
                            months.insert(sampler.calendar.month_of(clock.now()));
                        }
                        if !months.is_empty() {
                            costs.recompute(Some(months));
                        }
                    }
                    _ => costs.recompute(None),
                }
                priced = Some(prices);
            }
        }
    }
    costs.finish().await;
    sampler.finish(ending).await;
}

/// A stream of one metering watch that starts over with a fresh list after any failure, after
/// a growing delay (1 s doubling to 30 s, back to none once a list completes): a list is how
/// the sampler knows its view is current again, whereas a watch resumed after a failure says
/// nothing when nothing changed.
fn relisting<K>(
    api: Api<K>,
    class: SourceClass,
    mut input: impl FnMut(Event<K>) -> Input + Send + 'static,
) -> BoxStream<'static, Input>
where
    K: Resource + Clone + std::fmt::Debug + DeserializeOwned + Send + 'static,
{
    type Events<K> = BoxStream<'static, Result<Event<K>, watcher::Error>>;
    let start = (None::<Events<K>>, None::<Duration>);
    futures::stream::unfold(start, move |(events, delay)| {
        let api = api.clone();
        async move {
            let mut events = events;
            loop {
                let mut current = match events.take() {
                    Some(current) => current,
                    None => {
                        if let Some(delay) = delay {
                            tokio::time::sleep(delay).await;
                        }
                        watch(api.clone(), Default::default()).boxed()
                    }
                };
                match current.next().await {
                    Some(Ok(event)) => {
                        let delay = delay.filter(|_| !matches!(event, Event::InitDone));
                        return Some((Ok(event), (Some(current), delay)));
                    }
                    Some(Err(e)) => {
                        let next = delay.map_or(Duration::from_secs(1), |d| d * 2);
                        return Some((Err(e), (None, Some(next.min(Duration::from_secs(30))))));
                    }
                    // A watch stream does not end; if one does, start over.
                    None => {}
                }
            }
        }
    })
    .map(move |item| match item {
        Ok(event) => input(event),
        Err(e) => Input::WatchError(Some(class), e),
    })
    .boxed()
}

/// Reads the checkpoint (retrying while the database is unavailable) and restores the
/// counters; `None` if stopped meanwhile.
async fn start(
    store: &Store,
    config: &MeteringConfig,
    metrics: &MeteringMetrics,
    stop: &mut tokio::sync::watch::Receiver<Option<Ending>>,
) -> Option<Resumed> {
    let mut delay = Duration::from_secs(1);
    loop {
        match restore(store, config, metrics).await {
            Ok(restored) => return Some(restored),
            Err(e) => {
                tracing::warn!(error = %e, "unable to read the ledger; metering waits for the database");
                metrics.store_failed();
            }
        }
        tokio::select! {
            _ = stop.wait_for(Option::is_some) => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

async fn restore(
    store: &Store,
    config: &MeteringConfig,
    metrics: &MeteringMetrics,
) -> zhengyun_store::Result<Resumed> {
    let now = config.clock.clock().now().as_second();
    let mut checkpoint = store.checkpoint(STREAM).await?.map(|t| t.as_second());
    let oldest = now - i64::from(config.metering_max_backfill);
    let mut owed = Owed::default();
    let frontier = match checkpoint {
        None => {
            // Record where metering starts before anything else, so that an operator killed
            // before it closes its first window leaves its successor a checkpoint to resume
            // from, instead of a ledger that looks new and would start later (a gap).
            if let Ok(at) = Timestamp::from_second(now) {
                store.record_window(&[], STREAM, None, at).await?;
                checkpoint = Some(now);
            }
            tracing::info!("no metering checkpoint: a new ledger, metering starts now");
            now
        }
        Some(at) if at < oldest => {
            tracing::warn!(
                from = at,
                to = oldest,
                "the operator was down longer than --metering-max-backfill: this time is not metered"
            );
            if let (Ok(from), Ok(to)) = (Timestamp::from_second(at), Timestamp::from_second(oldest))
            {
                owed.gaps
                    .push(Gap::new(from, to, GapKind::Unmetered, BEYOND_BACKFILL));
            }
            oldest
        }
        Some(at) => {
            tracing::info!(
                checkpoint = at,
                outage_seconds = (now - at).max(0),
                "metering resumes from the ledger's checkpoint; the outage is counted from the state found now"
            );
            at
        }
    };
    metrics.restore_usage(store.usage_counters().await?);
    metrics.set_checkpoint(frontier);
    Ok(Resumed {
        tracker: Tracker::new(frontier),
        written: checkpoint.map(Second::at),
        owed,
    })
}

/// A reflector-backed store of `K` and its events as [`Input::Prices`].
fn prices<K: Watched>(client: &Client) -> (Reflection<K>, BoxStream<'static, Input>) {
    let (reader, events) = reflected::<K>(client);
    let stream = events
        .map(|e| e.map_or_else(|e| Input::WatchError(None, e), |_| Input::Prices))
        .boxed();
    (reader, stream)
}

fn report_bad<K: ResourceExt>(bad: &[String], what: &str, obj: &K, metrics: &MeteringMetrics) {
    if !bad.is_empty() {
        tracing::warn!(
            namespace = obj.namespace().unwrap_or_default(),
            name = obj.name_any(),
            quantities = ?bad,
            "a {what} has quantities that do not parse; counted as zero"
        );
        metrics.bad_quantity();
    }
}

/// Applies one event of a watch of `class`, tracking relists: sources not listed again are
/// gone as of the end of the relist.
fn on_event<K>(
    tracker: &mut Tracker,
    health: &mut Health,
    class: SourceClass,
    event: Event<K>,
    now: i64,
    apply: impl Fn(&mut Tracker, &K, bool) -> Option<Source>,
) -> Option<Outage> {
    match event {
        Event::Apply(obj) => {
            apply(tracker, &obj, false);
        }
        Event::Delete(obj) => {
            apply(tracker, &obj, true);
        }
        Event::Init => health.relisting(class, now),
        Event::InitApply(obj) => {
            if let Some(source) = apply(tracker, &obj, false) {
                health.seen(class, source);
            }
        }
        Event::InitDone => {
            let seen = health.take_seen(class);
            tracker.relisted(class, &seen, now);
            return health.listed(class, now);
        }
    }
    None
}

/// The sampler: what runs where ([`Tracker`]), whether its watches are current ([`Health`]),
/// the checkpoint as it knows it and what it still owes the ledger; with the ledger, calendar,
/// clock and metrics it works with.
struct Sampler {
    tracker: Tracker,
    health: Health,
    /// The checkpoint as this sampler last wrote or read it.
    written: Option<Second>,
    owed: Owed,
    store: Store,
    calendar: Calendar,
    metrics: Arc<MeteringMetrics>,
    clock: Clock,
    timing: Timing,
    /// Which pods are burst, and the settlement's shares, as last read from the CapacityPool.
    terms: PoolTerms,
    /// Where the pool and rate cards are read, once attached ([`Sampler::attach`]).
    cluster: Option<(Client, Reflection<RateCard>)>,
    /// Burst pods seen gone, for the reclaim records ([`Sampler::record_reclaims`]).
    gone_burst: Vec<GoneBurst>,
}

/// A burst pod seen gone: a reclaim ends (or, preempted by the scheduler, is recorded whole).
#[derive(Debug)]
struct GoneBurst {
    uid: String,
    namespace: String,
    pod: String,
    /// When the scheduler preempted it, if it did.
    preempted_at: Option<i64>,
    /// When it was seen gone, by the system clock (as the operator's reclaim records are
    /// started), to the microsecond.
    seen: Timestamp,
    /// The same, in the sampler's seconds (for the retries).
    at: i64,
    /// Attempts made to complete an operator's reclaim record, which may be written after
    /// the pod is seen gone.
    tries: u32,
}

/// Seconds after a burst pod is gone at which its reclaim record is looked for again (the
/// operator writes it when it deletes the pod; a pod its bureau deleted has none).
const RECLAIM_RETRIES: [i64; 4] = [0, 5, 30, 120];

/// When the scheduler preempted `pod`: its `DisruptionTarget` condition's time, with reason
/// `PreemptionByScheduler`.
fn preempted_at(pod: &Pod) -> Option<i64> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| {
            c.type_ == "DisruptionTarget"
                && c.status == "True"
                && c.reason.as_deref() == Some("PreemptionByScheduler")
        })?
        .last_transition_time
        .as_ref()
        .map(|t| t.0.as_second())
}

impl Sampler {
    /// A sampler resuming from the ledger's checkpoint (read when the database answers); `None`
    /// if stopped meanwhile.
    async fn start(
        store: Store,
        config: &MeteringConfig,
        calendar: Calendar,
        metrics: Arc<MeteringMetrics>,
        stop: &mut tokio::sync::watch::Receiver<Option<Ending>>,
    ) -> Option<Self> {
        let resumed = start(&store, config, &metrics, stop).await?;
        Some(Self::new(resumed, store, config, calendar, metrics))
    }

    fn new(
        resumed: Resumed,
        store: Store,
        config: &MeteringConfig,
        calendar: Calendar,
        metrics: Arc<MeteringMetrics>,
    ) -> Self {
        let Resumed {
            tracker,
            written,
            owed,
        } = resumed;
        Self {
            health: Health::new(tracker.frontier()),
            tracker,
            written,
            owed,
            store,
            calendar,
            metrics,
            clock: config.clock.clock(),
            timing: Timing::of(config),
            terms: PoolTerms::default(),
            cluster: None,
            gone_burst: Vec::new(),
        }
    }

    /// Writes what the burst pods seen gone tell of reclaims: a preemption whole (its start
    /// from the pod's condition, its end when it was seen gone), the end of a reclaim the
    /// operator recorded when it deleted the pod. Failures and records not written yet are
    /// tried again later, up to [`RECLAIM_RETRIES`].
    async fn record_reclaims(&mut self) {
        if self.gone_burst.is_empty() {
            return;
        }
        let now = self.now().get();
        let mut keep = Vec::new();
        for mut gone in std::mem::take(&mut self.gone_burst) {
            let due = RECLAIM_RETRIES.get(gone.tries as usize).copied();
            match due {
                None => continue,
                Some(after) if now < gone.at + after => {
                    keep.push(gone);
                    continue;
                }
                Some(_) => {}
            }
            gone.tries += 1;
            let at = gone.seen;
            let done = match gone
                .preempted_at
                .and_then(|s| Timestamp::from_second(s).ok())
            {
                Some(started) => {
                    let bureau = zhengyun_model::names::parse_environment_name(&gone.namespace)
                        .map(|(b, _)| b.to_owned())
                        .unwrap_or_default();
                    let reclaim = zhengyun_store::Reclaim {
                        pod_uid: gone.uid.clone(),
                        namespace: gone.namespace.clone(),
                        pod: gone.pod.clone(),
                        bureau,
                        cause: zhengyun_store::ReclaimCause::Preempted,
                        beneficiary: None,
                        started,
                        freed: Some(at),
                    };
                    match self.store.record_reclaim(&reclaim).await {
                        Ok(new) => {
                            if new {
                                self.metrics.burst_preempted();
                            }
                            true
                        }
                        Err(error) => {
                            tracing::warn!(%error, pod = %gone.pod, "unable to record a preemption");
                            self.metrics.store_failed();
                            false
                        }
                    }
                }
                None => match self.store.reclaim_freed(&gone.uid, at).await {
                    Ok(found) => found,
                    Err(error) => {
                        tracing::warn!(%error, pod = %gone.pod, "unable to complete a reclaim");
                        self.metrics.store_failed();
                        false
                    }
                },
            };
            if !done {
                keep.push(gone);
            }
        }
        self.gone_burst = keep;
    }

    /// Reads the CapacityPool's terms from `client` (now, before pods are watched, and again
    /// before each window is written) and prices settlements with `cards`.
    async fn attach(&mut self, client: Client, cards: Reflection<RateCard>) {
        self.cluster = Some((client, cards));
        self.read_terms().await;
    }

    /// Refreshes the pool's terms; on failure the last ones known stay.
    async fn read_terms(&mut self) {
        let Some((client, _)) = &self.cluster else {
            return;
        };
        match crate::environments::capacity_pool(client).await {
            Ok(pool) => self.terms = PoolTerms::of(&pool),
            Err(error) => {
                tracing::warn!(%error, "unable to read the capacity pool; settling at the terms last read");
            }
        }
    }

    /// The rate card in force at `at`, if any: what a window starting then is settled at.
    fn card_at(&self, at: Timestamp) -> Option<zhengyun_metering::RateCard> {
        let (_, cards) = self.cluster.as_ref()?;
        let objects = cards.state();
        let schedule = RateSchedule::from_objects(objects.iter().map(|c| c.as_ref())).ok()?;
        let range =
            TimeRange::new(at, at.checked_add(jiff::SignedDuration::from_secs(1)).ok()?).ok()?;
        let periods = schedule.periods(range, &self.calendar).ok()?;
        periods.first()?.card.cloned()
    }

    fn now(&self) -> Second {
        Second::of(self.clock.now())
    }

    /// Where the next window starts.
    fn frontier(&self) -> Second {
        Second::at(self.tracker.frontier())
    }

    /// Feeds one watch event to the tracker; if it makes a failed watch current again, owes
    /// the ledger what the failure leaves to record.
    fn take(&mut self, input: Input) {
        let now = self.now().get();
        let metrics = &self.metrics;
        let terms = &self.terms;
        let gone_burst = std::cell::RefCell::new(Vec::new());
        let (tracker, health) = (&mut self.tracker, &mut self.health);
        let outage = match input {
            Input::Environment(event) => on_event(
                tracker,
                health,
                SourceClass::Quotas,
                *event,
                now,
                |t, env, gone| {
                    let name = env.name_any();
                    if gone {
                        t.delete_environment(&name, now);
                        return Some(Source::Quota(name));
                    }
                    t.set_environment(
                        &name,
                        &env.spec.bureau,
                        env.spec.tier,
                        env.metadata.uid.as_deref(),
                        now,
                    );
                    t.observe(Source::Quota(name.clone()), reserved(env), now);
                    Some(Source::Quota(name))
                },
            ),
            Input::Pod(event) => on_event(
                tracker,
                health,
                SourceClass::Pods,
                *event,
                now,
                |t, pod, gone| {
                    let uid = pod.metadata.uid.clone()?;
                    let source = if terms.is_burst(pod) {
                        if gone {
                            gone_burst.borrow_mut().push(GoneBurst {
                                uid: uid.clone(),
                                namespace: pod.namespace().unwrap_or_default(),
                                pod: pod.name_any(),
                                preempted_at: preempted_at(pod),
                                seen: Timestamp::now(),
                                at: now,
                                tries: 0,
                            });
                        }
                        Source::BurstPod(uid)
                    } else {
                        Source::Pod(uid)
                    };
                    if gone {
                        t.gone(source.clone(), now);
                        return Some(source);
                    }
                    let mut bad = Vec::new();
                    let contribution = pod_consumption(pod, &mut bad);
                    report_bad(&bad, "pod", pod, metrics);
                    t.observe(source.clone(), contribution, now);
                    Some(source)
                },
            ),
            Input::Claim(event) => on_event(
                tracker,
                health,
                SourceClass::Claims,
                *event,
                now,
                |t, claim, gone| {
                    let source = Source::Claim(claim.metadata.uid.clone()?);
                    if gone {
                        t.gone(source.clone(), now);
                        return Some(source);
                    }
                    let mut bad = Vec::new();
                    let contribution = claim_consumption(claim, &mut bad);
                    report_bad(&bad, "volume claim", claim, metrics);
                    t.observe(source.clone(), contribution, now);
                    Some(source)
                },
            ),
            Input::Prices => None,
            Input::WatchError(class, e) => {
                tracing::warn!(error = %e, "a metering watch failed; retrying");
                metrics.watch_failed();
                if let Some(class) = class {
                    health.failed(class, now);
                }
                None
            }
        };
        self.gone_burst.extend(gone_burst.into_inner());
        if let Some(outage) = outage {
            self.owe(outage);
        }
    }

    /// Adds what `outage` leaves the ledger to record (see [`gap_of`]).
    fn owe(&mut self, outage: Outage) {
        let Some(gap) = gap_of(
            outage,
            self.timing.lateness.get(),
            self.timing.max_stale.get(),
        ) else {
            return;
        };
        tracing::warn!(from = %gap.from, to = %gap.to, kind = %gap.kind, reason = %gap.reason, "a metering gap");
        match gap.kind {
            GapKind::Unmetered => self.owed.skip = Some(gap),
            GapKind::Reconstructed => self.owed.gaps.push(gap),
        }
    }

    /// Skips an owed unmetered span, then closes every window due now that ends by the second
    /// the view is known current until; returns the months they touched, or `None` while the
    /// skip cannot be recorded yet.
    async fn close_due(&mut self) -> Option<BTreeSet<Month>> {
        if !self.skip().await {
            return None;
        }
        let now = self.now();
        let limit = Second::at(self.health.current_until(now.get()));
        Some(self.close_due_by(now, limit).await)
    }

    /// Closes every window that is due at `now` and ends by `limit`; returns the months they
    /// touched.
    async fn close_due_by(&mut self, now: Second, limit: Second) -> BTreeSet<Month> {
        let mut months = BTreeSet::new();
        loop {
            let start = self.frontier();
            let Some(end) = self
                .timing
                .due_window(start, now)
                .filter(|end| *end <= limit)
            else {
                break;
            };
            if !self.write_window(end).await {
                break;
            }
            for at in [start, end - Seconds::new(1)] {
                if let Some(t) = at.timestamp() {
                    months.insert(self.calendar.month_of(t));
                }
            }
        }
        months
    }

    /// Writes what is known up to the end `ending` allows (see [`last_window`]).
    async fn finish(&mut self, ending: Ending) {
        if self.owed.skip.is_none()
            && let Some(end) = last_window(ending, &self.health, self.frontier(), self.now())
        {
            self.write_window(end).await;
        }
    }

    /// Moves the checkpoint across an owed unmetered span, after writing the window up to its
    /// start; returns whether nothing is left to skip.
    async fn skip(&mut self) -> bool {
        let Some(gap) = self.owed.skip.clone() else {
            return true;
        };
        let (from, to) = (Second::of(gap.from), Second::of(gap.to));
        if self.frontier() < from && !self.write_window(from).await {
            return false;
        }
        let (mut gaps, rest) = split_gaps(&self.owed.gaps, to.get());
        gaps.push(gap);
        let expected = self.written.and_then(Second::timestamp);
        let recorded = self
            .store
            .record_window_with_gaps(&[], &gaps, STREAM, expected, gaps[gaps.len() - 1].to)
            .await;
        match recorded {
            Ok(_) => {
                self.tracker.advance(to.get());
                self.written = Some(to);
                self.metrics.set_checkpoint(to.get());
                self.owed.gaps = rest;
                self.owed.skip = None;
                true
            }
            Err(e) => {
                self.metrics.close_failed();
                tracing::warn!(error = %e, "unable to record an unmetered span; retrying");
                self.follow_other_writer().await
            }
        }
    }

    /// Writes `[frontier, end)`, with the owed gaps before `end`, and moves the checkpoint from
    /// `written` (the checkpoint as this sampler knows it) to `end`, in one transaction; returns
    /// whether it succeeded (on failure the window stays open and is retried). If another
    /// sampler moved the checkpoint meanwhile (a leader handover), nothing is written and this
    /// one continues from the other's checkpoint, so that no two windows overlap.
    async fn write_window(&mut self, end: Second) -> bool {
        let Some(at) = end.timestamp() else {
            return false;
        };
        let (gaps, rest) = split_gaps(&self.owed.gaps, end.get());
        let expected = self.written.and_then(Second::timestamp);
        self.read_terms().await;
        let card = self
            .frontier()
            .timestamp()
            .and_then(|start| self.card_at(start));
        let mut settle = WindowSettle::new(&self.calendar, card.as_ref(), &self.terms);
        let mut closing = self
            .tracker
            .closing(end.get(), &self.calendar, WINDOW_BATCH);
        let mut usage = UsageSums::default();
        let recorded = self
            .store
            .record_settled_window_in_batches(
                closing.by_ref().inspect(|batch| usage.add(batch)),
                &gaps,
                STREAM,
                expected,
                at,
                &mut settle,
            )
            .await;
        for problem in &closing.problems {
            tracing::warn!(%problem, "usage that cannot be metered");
        }
        drop(closing);
        match recorded {
            Ok(recorded) => {
                self.tracker.advance(end.get());
                self.written = Some(end);
                self.owed.gaps = rest;
                self.metrics.set_checkpoint(end.get());
                if recorded.duplicates == 0 {
                    self.metrics.add_usage(usage, recorded.new);
                } else {
                    // Someone wrote some of these before: recount from the ledger.
                    tracing::warn!(
                        duplicates = recorded.duplicates,
                        "metering window partly written before"
                    );
                    if let Ok(counters) = self.store.usage_counters().await {
                        self.metrics.restore_usage(counters);
                    }
                }
                true
            }
            Err(e) => {
                self.metrics.close_failed();
                tracing::warn!(error = %e, window_end = %end, "unable to close a metering window; retrying");
                self.follow_other_writer().await
            }
        }
    }

    /// After a failed write: if another replica moved the checkpoint, continues from it (never
    /// overlapping it) and returns true; otherwise false (retry).
    async fn follow_other_writer(&mut self) -> bool {
        let Ok(stored) = self.store.checkpoint(STREAM).await else {
            return false;
        };
        let stored = stored.map(Second::of);
        if stored == self.written {
            return false;
        }
        tracing::warn!(?stored, known = ?self.written, "another writer moved the metering checkpoint; continuing from it");
        self.written = stored;
        if let Some(at) = stored {
            self.tracker.advance(at.get());
            self.metrics.set_checkpoint(at.get());
            let (_, rest) = split_gaps(&self.owed.gaps, at.get());
            self.owed.gaps = rest;
            if self
                .owed
                .skip
                .as_ref()
                .is_some_and(|g| Second::of(g.to) <= at)
            {
                self.owed.skip = None;
            }
        }
        true
    }
}

/// Recomputes month statements in the background, so that the sampler never waits for them,
/// and hands the amounts to the metrics.
struct CostWorker {
    requests: mpsc::UnboundedSender<Option<BTreeSet<Month>>>,
    task: tokio::task::JoinHandle<()>,
}

impl CostWorker {
    fn spawn(
        store: Store,
        calendar: Calendar,
        bureaus: Reflection<Bureau>,
        cards: Reflection<RateCard>,
        metrics: Arc<MeteringMetrics>,
        clock: Clock,
    ) -> Self {
        let (requests, mut rx) = mpsc::unbounded_channel::<Option<BTreeSet<Month>>>();
        let task = tokio::spawn(async move {
            let mut state = Priced::default();
            while let Some(first) = rx.recv().await {
                // Coalesce what queued up meanwhile: None means every month.
                let mut wanted = first;
                while let Ok(more) = rx.try_recv() {
                    wanted = match (wanted, more) {
                        (Some(mut a), Some(b)) => {
                            a.extend(b);
                            Some(a)
                        }
                        _ => None,
                    };
                }
                let books = Books {
                    store: &store,
                    calendar: &calendar,
                    bureaus: &bureaus,
                    cards: &cards,
                    metrics: &metrics,
                    clock,
                };
                books.price(&mut state, wanted).await;
            }
        });
        Self { requests, task }
    }

    /// Waits until the worker has finished what it was asked, so that no figure it computes
    /// lands after the sampler has stopped (and a former leader's metrics are cleared).
    async fn finish(self) {
        drop(self.requests);
        let _ = self.task.await;
    }

    /// Asks for the statements of `months` (`None`: every month with usage) to be recomputed.
    fn recompute(&self, months: Option<BTreeSet<Month>>) {
        let _ = self.requests.send(months);
    }
}

/// What the cost worker remembers between runs.
#[derive(Debug, Default)]
struct Priced {
    /// Each month's bureau totals.
    by_month: BTreeMap<Month, BTreeMap<String, Decimal>>,
    /// Why the rate cards could not be used, as last logged.
    unpriced: Option<String>,
    /// Whether every month has been priced since the rate cards last changed.
    complete: bool,
}

/// What pricing reads: the ledger, the calendar and clock, bureaus and rate cards; and where it
/// reports.
struct Books<'a> {
    store: &'a Store,
    calendar: &'a Calendar,
    bureaus: &'a Reflection<Bureau>,
    cards: &'a Reflection<RateCard>,
    metrics: &'a MeteringMetrics,
    clock: Clock,
}

impl Books<'_> {
    async fn price(&self, state: &mut Priced, wanted: Option<BTreeSet<Month>>) {
        let Self {
            store,
            calendar,
            bureaus,
            cards,
            metrics,
            clock,
        } = *self;
        let objects = cards.state();
        let schedule = match RateSchedule::from_objects(objects.iter().map(|c| c.as_ref())) {
            Ok(schedule) => schedule,
            Err(e) => {
                let error = e.to_string();
                if state.unpriced.as_ref() != Some(&error) {
                    tracing::info!(%error, "no usable rate cards; cost metrics wait for one");
                    state.unpriced = Some(error);
                }
                return;
            }
        };
        state.unpriced = None;
        let wanted = wanted.filter(|_| state.complete);
        state.complete = wanted.is_none();
        let by_month = &mut state.by_month;
        let budgets = budgets(bureaus);
        let current = calendar.month_of(clock.now());
        let months = match wanted {
            Some(months) => months,
            None => match store.usage_span().await {
                Ok(Some(span)) => months_between(calendar, span.start(), span.end()),
                Ok(None) => BTreeSet::new(),
                Err(e) => {
                    tracing::warn!(error = %e, "unable to read the ledger's span");
                    state.complete = false;
                    return;
                }
            },
        };
        let mut months = months;
        months.insert(current);
        for month in months {
            match store.month_amounts(month, calendar, &schedule).await {
                Ok(amounts) => {
                    if month == current {
                        super::budgets::report(
                            store, calendar, bureaus, month, &amounts, &budgets, metrics,
                        )
                        .await;
                    }
                    by_month.insert(month, amounts);
                }
                Err(e) => {
                    tracing::warn!(error = %e, %month, "unable to price a month");
                    metrics.store_failed();
                    by_month.remove(&month);
                }
            }
        }
        metrics.set_costs(schedule.currency(), by_month, current);
        match store.month_settlement(current).await {
            Ok(lines) => metrics.set_settled(&lines),
            Err(e) => {
                tracing::warn!(error = %e, month = %current, "unable to read the month's settlements");
                metrics.store_failed();
            }
        }
    }
}

/// What prices depend on besides the ledger: the rate cards and the bureaus' budgets.
#[derive(Debug, PartialEq)]
struct Prices {
    cards: Vec<String>,
    budgets: BTreeMap<String, Decimal>,
}

impl Prices {
    fn of(bureaus: &Reflection<Bureau>, cards: &Reflection<RateCard>) -> Self {
        let mut specs: Vec<String> = cards
            .state()
            .iter()
            .filter_map(|c| serde_json::to_string(&c.spec).ok())
            .collect();
        specs.sort();
        Self {
            cards: specs,
            budgets: budgets(bureaus),
        }
    }
}

/// Each bureau's monthly budget, where it has a valid one.
fn budgets(bureaus: &Reflection<Bureau>) -> BTreeMap<String, Decimal> {
    bureaus
        .state()
        .iter()
        .filter_map(|b| {
            let text = b.spec.monthly_budget.as_deref()?;
            let budget = Decimal::from_str_exact(text).ok()?;
            Some((b.name_any(), budget))
        })
        .collect()
}

/// The months from the one holding `start` to the one holding the second before `end`.
fn months_between(calendar: &Calendar, start: Timestamp, end: Timestamp) -> BTreeSet<Month> {
    let mut months = BTreeSet::new();
    let last_second = Timestamp::from_second(end.as_second() - 1).unwrap_or(end);
    let last = calendar.month_of(last_second);
    let mut month = calendar.month_of(start);
    while month <= last {
        months.insert(month);
        match month.next() {
            Ok(next) => month = next,
            Err(_) => break,
        }
    }
    months
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use zhengyun_metering::TimeRange;

    use super::*;

    #[rstest]
    #[case::hour_start(3_600, 3_600, 7_200)]
    #[case::mid_hour(3_601, 3_600, 7_200)]
    #[case::short_period(1_000_001, 2, 1_000_002)]
    #[case::before_the_epoch(-1, 3_600, 0)]
    fn windows_end_on_multiples_of_the_period(
        #[case] at: i64,
        #[case] period: i64,
        #[case] expected: i64,
    ) {
        assert_eq!(
            Second::at(at).window_end(Seconds::new(period)),
            Second::at(expected)
        );
    }

    /// The hourly window holding each instant closes once the default lateness (120 s) has
    /// passed after it ends, not a second earlier.
    #[rstest]
    #[case::last_second_of_a_year("2026-12-31T23:59:59+08:00", "2027-01-01T00:00:00+08:00")]
    #[case::first_second_of_a_year("2027-01-01T00:00:00+08:00", "2027-01-01T01:00:00+08:00")]
    #[case::leap_day_noon("2028-02-29T12:00:00+08:00", "2028-02-29T13:00:00+08:00")]
    fn the_window_holding_an_instant_closes_after_the_lateness_window(
        #[case] at: &str,
        #[case] window_ends: &str,
    ) {
        let at: Timestamp = at.parse().expect("ts");
        let ends: Timestamp = window_ends.parse().expect("ts");
        let timing = Timing::of(&config(7 * 86_400));
        let lateness = timing.lateness;
        let frontier = Second::of(at);
        let end = Second::of(ends);
        assert_eq!(timing.due_window(frontier, Second::of(at)), None);
        assert_eq!(timing.due_window(frontier, end), None);
        assert_eq!(
            timing.due_window(frontier, end + lateness - Seconds::new(1)),
            None
        );
        assert_eq!(timing.due_window(frontier, end + lateness), Some(end));
        let closes_in =
            Calendar::default().month_of((end - Seconds::new(1)).timestamp().expect("ts"));
        assert_eq!(closes_in, Calendar::default().month_of(at));
    }

    #[test]
    fn a_span_across_a_year_end_covers_each_month_once() {
        let calendar = Calendar::default();
        let start: Timestamp = "2026-11-20T00:00:00Z".parse().expect("ts");
        let end: Timestamp = "2027-01-01T00:00:00Z".parse().expect("ts");
        let months: Vec<String> = months_between(&calendar, start, end)
            .into_iter()
            .map(|m| m.to_string())
            .collect();
        assert_eq!(months, ["2026-11", "2026-12", "2027-01"]);
    }

    const T0: i64 = 1_793_872_800;

    async fn ledger_at(checkpoint: i64) -> Store {
        let store = Store::connect("sqlite::memory:").await.expect("store");
        store
            .record_window(
                &[],
                STREAM,
                None,
                Timestamp::from_second(checkpoint).expect("ts"),
            )
            .await
            .expect("checkpoint");
        store
    }

    fn running_pod(tracker: &mut Tracker) {
        tracker.set_environment(
            "wjw-prod",
            "wjw",
            zhengyun_model::names::Tier::Gold,
            Some("u"),
            T0,
        );
        let mut amounts = super::super::observe::Amounts::ZERO;
        amounts.set(zhengyun_model::quantity::Resource::Cpu, 4_000);
        let pod = super::super::observe::Contribution {
            environment: "wjw-prod".to_owned(),
            amounts,
            since: Some(T0),
            until: None,
        };
        tracker.observe(Source::Pod("p".into()), Some(pod), T0);
    }

    #[tokio::test]
    async fn a_window_after_a_watch_failure_waits_until_the_watch_has_listed_again() {
        let store = ledger_at(T0).await;
        let calendar = Calendar::utc();
        let metrics = MeteringMetrics::default();
        let mut tracker = Tracker::new(T0);
        running_pod(&mut tracker);
        let resumed = Resumed {
            tracker,
            written: Some(Second::at(T0)),
            owed: Owed::default(),
        };
        let mut sampler = Sampler::new(
            resumed,
            store.clone(),
            &config(7 * 86_400),
            calendar.clone(),
            Arc::new(metrics),
        );
        let health = &mut sampler.health;
        for class in [SourceClass::Quotas, SourceClass::Pods, SourceClass::Claims] {
            health.listed(class, T0 + 1);
        }
        health.failed(SourceClass::Pods, T0 + 1_800);
        let now = T0 + 3_600 + 120 + 1;
        let limit = Second::at(sampler.health.current_until(now));
        let months = sampler.close_due_by(Second::at(now), limit).await;
        assert!(months.is_empty());
        assert_eq!(
            store.checkpoint(STREAM).await.expect("checkpoint"),
            Some(Timestamp::from_second(T0).expect("ts"))
        );
        // Once the pods are listed again, the window closes.
        sampler.health.relisting(SourceClass::Pods, T0 + 3_700);
        let outage = sampler
            .health
            .listed(SourceClass::Pods, T0 + 3_730)
            .expect("current again");
        assert_eq!((outage.from, outage.to), (T0 + 1_800, T0 + 3_730));
        sampler.owe(outage);
        assert!(
            sampler.owed.skip.is_some(),
            "a failure longer than max-stale is skipped"
        );
        assert!(sampler.skip().await);
        let gaps = store
            .gaps_between(
                STREAM,
                TimeRange::new(
                    Timestamp::from_second(T0).expect("ts"),
                    Timestamp::from_second(T0 + 7_200).expect("ts"),
                )
                .expect("range"),
            )
            .await
            .expect("gaps");
        assert_eq!(gaps.len(), 1);
        assert_eq!(
            (
                gaps[0].from.as_second(),
                gaps[0].to.as_second(),
                gaps[0].kind
            ),
            (T0 + 1_800, T0 + 3_730, GapKind::Unmetered)
        );
        let month = calendar
            .month_range(calendar.month_of(Timestamp::from_second(T0).expect("ts")))
            .expect("range");
        let usage = store.usage_totals(month, None).await.expect("usage");
        // 4 cores from T0 to the failure, nothing across it.
        assert_eq!(usage[0].unit_seconds, 4_000 * 1_800);
    }

    #[test]
    fn a_sampler_that_lost_the_lease_writes_nothing_more_and_one_shutting_down_writes_what_it_knows()
     {
        let mut health = Health::new(T0);
        for class in [SourceClass::Quotas, SourceClass::Pods, SourceClass::Claims] {
            health.listed(class, T0 + 1);
        }
        let at = |s: i64| Second::at(T0 + s);
        assert_eq!(
            last_window(Ending::Shutdown, &health, at(0), at(50)),
            Some(at(50))
        );
        assert_eq!(last_window(Ending::LeaseLost, &health, at(0), at(50)), None);
        health.failed(SourceClass::Claims, T0 + 20);
        assert_eq!(
            last_window(Ending::Shutdown, &health, at(0), at(50)),
            Some(at(20))
        );
        assert_eq!(last_window(Ending::Shutdown, &health, at(20), at(50)), None);
    }

    fn config(max_backfill: u32) -> MeteringConfig {
        MeteringConfig {
            metering_period: 3_600,
            metering_lateness: 120,
            metering_max_backfill: max_backfill,
            metering_max_stale: 600,
            zone: super::super::TimeZoneArgs {
                time_zone: "UTC".to_owned(),
            },
            clock: Default::default(),
        }
    }

    #[tokio::test]
    async fn time_beyond_the_backfill_limit_is_recorded_as_an_unmetered_gap_with_the_first_window()
    {
        let now = Clock::system().now().as_second();
        let checkpoint = now - 8 * 86_400;
        let store = ledger_at(checkpoint).await;
        let metrics = MeteringMetrics::default();
        let resumed = restore(&store, &config(7 * 86_400), &metrics)
            .await
            .expect("restore");
        assert_eq!(resumed.owed.gaps.len(), 1);
        let mut sampler = Sampler::new(
            resumed,
            store.clone(),
            &config(7 * 86_400),
            Calendar::utc(),
            Arc::new(metrics),
        );
        let first_end = sampler.frontier().window_end(Seconds::new(3_600));
        assert!(sampler.write_window(first_end).await);
        let all = TimeRange::new(
            Timestamp::from_second(checkpoint - 1).expect("ts"),
            Timestamp::from_second(now).expect("ts"),
        )
        .expect("range");
        let gaps = store.gaps_between(STREAM, all).await.expect("gaps");
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert_eq!(gaps[0].kind, GapKind::Unmetered);
        assert_eq!(gaps[0].from.as_second(), checkpoint);
        // The clock moved a little while restoring: the gap ends about a day later.
        assert!(
            (gaps[0].to.as_second() - (checkpoint + 86_400)).abs() <= 5,
            "{gaps:?}"
        );
    }
}
