//! The sampler's loop: watches in, windows out (see the [module documentation](super)).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::runtime::reflector::{self, Store as Reflection};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch};
use kube::{Api, Client, Resource, ResourceExt};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use zhengyun_metering::{Calendar, Clock, Month, RateSchedule};
use zhengyun_model::crd::{Bureau, Environment, RateCard};
use zhengyun_store::Store;

use super::metrics::MeteringMetrics;
use super::observe::{claim_consumption, pod_consumption, reserved};
use super::tracker::{Source, SourceClass, Tracker};
use super::{MeteringConfig, STREAM};

/// One thing the loop reacts to.
enum Input {
    Environment(Box<Event<Environment>>),
    Pod(Box<Event<Pod>>),
    Claim(Box<Event<PersistentVolumeClaim>>),
    /// A bureau or rate card changed (the reflectors keep them).
    Prices,
    /// A watch failed; it retries with backoff by itself.
    WatchError(watcher::Error),
}

/// The watches whose initial lists must be complete before a window may close.
#[derive(Debug, Default)]
struct Listing {
    seen: [HashSet<Source>; 3],
    listing: [bool; 3],
    listed: [bool; 3],
}

fn slot(class: SourceClass) -> usize {
    match class {
        SourceClass::Quotas => 0,
        SourceClass::Pods => 1,
        SourceClass::Claims => 2,
    }
}

impl Listing {
    fn ready(&self) -> bool {
        self.listed.iter().all(|l| *l)
    }
}

/// The first multiple of `period` after `at`.
fn window_end(at: i64, period: i64) -> i64 {
    at - at.rem_euclid(period) + period
}

/// The end of the window that starts at `frontier` if it is due at `now`: once `lateness`
/// seconds have passed since it ended, so that watch events of its last seconds are in.
fn due_window(frontier: i64, now: i64, period: i64, lateness: i64) -> Option<i64> {
    let end = window_end(frontier, period);
    (now >= end.saturating_add(lateness)).then_some(end)
}

/// Runs the sampler until `stop` resolves; then writes what it has up to that second.
pub(crate) async fn run(
    client: Client,
    store: Store,
    config: MeteringConfig,
    calendar: Calendar,
    metrics: Arc<MeteringMetrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let clock = config.clock.clock();
    if !clock.is_system() {
        tracing::warn!(now = %clock.now(), offset_seconds = config.clock.clock_offset, "metering runs on a moved clock");
    }
    let now_s = || clock.now().as_second();
    let Some((mut tracker, mut written)) = start(&store, &config, &metrics, &mut stop).await else {
        return;
    };
    let (bureaus, bureau_stream) = reflected::<Bureau>(&client);
    let (cards, card_stream) = reflected::<RateCard>(&client);
    let (envs, env_writer) = reflector::store();
    metrics.watch(bureaus.clone(), envs.clone());
    let env_stream = watch(Api::<Environment>::all(client.clone()), Default::default())
        .default_backoff()
        .modify(crate::no_managed_fields)
        .reflect(env_writer)
        .map(|e| e.map_or_else(Input::WatchError, |e| Input::Environment(Box::new(e))));
    let pod_stream = watch(Api::<Pod>::all(client.clone()), Default::default())
        .default_backoff()
        .map(|e| e.map_or_else(Input::WatchError, |e| Input::Pod(Box::new(e))));
    let claim_stream = watch(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        Default::default(),
    )
    .default_backoff()
    .map(|e| e.map_or_else(Input::WatchError, |e| Input::Claim(Box::new(e))));
    let mut inputs = futures::stream::select_all([
        env_stream.boxed(),
        pod_stream.boxed(),
        claim_stream.boxed(),
        bureau_stream,
        card_stream,
    ]);

    let costs = CostWorker::spawn(
        store.clone(),
        calendar.clone(),
        bureaus.clone(),
        cards.clone(),
        metrics.clone(),
        clock,
    );
    let period = i64::from(config.metering_period);
    let lateness = i64::from(config.metering_lateness);
    let mut listing = Listing::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut priced: Option<Prices> = None;
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            input = inputs.next() => match input {
                Some(input) => take(&mut tracker, &mut listing, input, now_s(), &metrics),
                None => break,
            },
            _ = tick.tick() => {
                if !listing.ready() {
                    continue;
                }
                let mut months = close_due(&mut tracker, &mut written, &store, &calendar, &metrics, now_s(), period, lateness).await;
                // Rate cards change every month's price; budgets only the current month's flags.
                let prices = Prices::of(&bureaus, &cards);
                match &priced {
                    Some(last) if last.cards == prices.cards => {
                        if last.budgets != prices.budgets {
                            months.insert(calendar.month_of(clock.now()));
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
    if listing.ready() {
        // A graceful stop writes up to now, so that a planned restart loses nothing.
        let now = now_s();
        if now > tracker.frontier() {
            write_window(&mut tracker, &mut written, &store, &calendar, &metrics, now).await;
        }
    }
}

/// Reads the checkpoint (retrying while the database is unavailable) and restores the
/// counters; `None` if stopped meanwhile.
async fn start(
    store: &Store,
    config: &MeteringConfig,
    metrics: &MeteringMetrics,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<(Tracker, Option<i64>)> {
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
            _ = stop.wait_for(|s| *s) => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

async fn restore(
    store: &Store,
    config: &MeteringConfig,
    metrics: &MeteringMetrics,
) -> zhengyun_store::Result<(Tracker, Option<i64>)> {
    let now = config.clock.clock().now().as_second();
    let mut checkpoint = store.checkpoint(STREAM).await?.map(|t| t.as_second());
    let oldest = now - i64::from(config.metering_max_backfill);
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
    Ok((Tracker::new(frontier), checkpoint))
}

/// A reflector-backed store of `K` and its events as [`Input::Prices`].
fn reflected<K>(client: &Client) -> (Reflection<K>, BoxStream<'static, Input>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watch(Api::<K>::all(client.clone()), Default::default())
        .default_backoff()
        .modify(crate::no_managed_fields)
        .reflect(writer)
        .map(|e| e.map_or_else(Input::WatchError, |_| Input::Prices))
        .boxed();
    (reader, stream)
}

/// Feeds one watch event to the tracker.
fn take(
    tracker: &mut Tracker,
    listing: &mut Listing,
    input: Input,
    now: i64,
    metrics: &MeteringMetrics,
) {
    match input {
        Input::Environment(event) => on_event(
            tracker,
            listing,
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
            listing,
            SourceClass::Pods,
            *event,
            now,
            |t, pod, gone| {
                let source = Source::Pod(pod.metadata.uid.clone()?);
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
            listing,
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
        Input::Prices => {}
        Input::WatchError(e) => {
            tracing::warn!(error = %e, "a metering watch failed; retrying");
            metrics.watch_failed();
        }
    }
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
    listing: &mut Listing,
    class: SourceClass,
    event: Event<K>,
    now: i64,
    apply: impl Fn(&mut Tracker, &K, bool) -> Option<Source>,
) {
    let i = slot(class);
    match event {
        Event::Apply(obj) => {
            apply(tracker, &obj, false);
        }
        Event::Delete(obj) => {
            apply(tracker, &obj, true);
        }
        Event::Init => {
            listing.seen[i].clear();
            listing.listing[i] = true;
        }
        Event::InitApply(obj) => {
            if let Some(source) = apply(tracker, &obj, false) {
                listing.seen[i].insert(source);
            }
        }
        Event::InitDone => {
            tracker.relisted(class, &listing.seen[i], now);
            listing.seen[i].clear();
            listing.listing[i] = false;
            listing.listed[i] = true;
        }
    }
}

/// Closes every window that is due at `now`; returns the months they touched.
#[allow(clippy::too_many_arguments)]
async fn close_due(
    tracker: &mut Tracker,
    written: &mut Option<i64>,
    store: &Store,
    calendar: &Calendar,
    metrics: &MeteringMetrics,
    now: i64,
    period: i64,
    lateness: i64,
) -> BTreeSet<Month> {
    let mut months = BTreeSet::new();
    loop {
        let start = tracker.frontier();
        let Some(end) = due_window(start, now, period, lateness) else {
            break;
        };
        if !write_window(tracker, written, store, calendar, metrics, end).await {
            break;
        }
        for at in [start, end - 1] {
            if let Ok(t) = Timestamp::from_second(at) {
                months.insert(calendar.month_of(t));
            }
        }
    }
    months
}

/// Writes `[frontier, end)` and moves the checkpoint from `written` (the checkpoint as this
/// sampler knows it) to `end`, in one transaction; returns whether it succeeded (on failure the
/// window stays open and is retried). If another sampler moved the checkpoint meanwhile (a
/// leader handover), nothing is written and this one continues from the other's checkpoint, so
/// that no two windows overlap.
async fn write_window(
    tracker: &mut Tracker,
    written: &mut Option<i64>,
    store: &Store,
    calendar: &Calendar,
    metrics: &MeteringMetrics,
    end: i64,
) -> bool {
    let closed = tracker.close(end, calendar);
    for problem in &closed.problems {
        tracing::warn!(%problem, "usage that cannot be metered");
    }
    let Ok(at) = Timestamp::from_second(end) else {
        return false;
    };
    let expected = written.and_then(|w| Timestamp::from_second(w).ok());
    match store
        .record_window(&closed.intervals, STREAM, expected, at)
        .await
    {
        Ok(recorded) => {
            tracker.advance(end);
            *written = Some(end);
            metrics.set_checkpoint(end);
            if recorded.duplicates == 0 {
                metrics.add_usage(&closed.intervals, recorded.new);
            } else {
                // Someone wrote some of these before: recount from the ledger.
                tracing::warn!(
                    duplicates = recorded.duplicates,
                    "metering window partly written before"
                );
                if let Ok(counters) = store.usage_counters().await {
                    metrics.restore_usage(counters);
                }
            }
            true
        }
        Err(e) => {
            metrics.close_failed();
            tracing::warn!(error = %e, window_end = end, "unable to close a metering window; retrying");
            // Another replica may have moved the checkpoint: continue from it, never overlap it.
            if let Ok(stored) = store.checkpoint(STREAM).await {
                let stored = stored.map(|t| t.as_second());
                if stored != *written {
                    tracing::warn!(?stored, known = ?*written, "another writer moved the metering checkpoint; continuing from it");
                    *written = stored;
                    if let Some(at) = stored {
                        tracker.advance(at);
                        metrics.set_checkpoint(at);
                    }
                    return true;
                }
            }
            false
        }
    }
}

/// Recomputes month statements in the background, so that the sampler never waits for them,
/// and hands the amounts to the metrics.
struct CostWorker {
    requests: mpsc::UnboundedSender<Option<BTreeSet<Month>>>,
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
        tokio::spawn(async move {
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
        Self { requests }
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
        let specs: Vec<_> = cards.state().iter().map(|c| c.spec.clone()).collect();
        let schedule = match RateSchedule::from_specs(specs.iter()) {
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
            match store
                .month_statement(month, calendar, &schedule, &budgets)
                .await
            {
                Ok(statement) => {
                    let amounts = statement
                        .bureaus
                        .iter()
                        .map(|b| (b.bureau.clone(), b.totals.amount))
                        .collect();
                    by_month.insert(month, amounts);
                    if month == current {
                        metrics.set_budgets(&statement, &budgets);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, %month, "unable to price a month");
                    metrics.store_failed();
                    by_month.remove(&month);
                }
            }
        }
        metrics.set_costs(schedule.currency(), by_month, current);
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
        assert_eq!(window_end(at, period), expected);
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
        let (period, lateness) = (3_600, 120);
        let frontier = at.as_second();
        let end = ends.as_second();
        assert_eq!(due_window(frontier, at.as_second(), period, lateness), None);
        assert_eq!(due_window(frontier, end, period, lateness), None);
        assert_eq!(
            due_window(frontier, end + lateness - 1, period, lateness),
            None
        );
        assert_eq!(
            due_window(frontier, end + lateness, period, lateness),
            Some(end)
        );
        let closes_in = Calendar::default().month_of(Timestamp::from_second(end - 1).expect("ts"));
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
}
