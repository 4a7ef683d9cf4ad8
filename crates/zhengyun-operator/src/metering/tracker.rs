//! The tracker: what each environment reserves and consumes over time, from what the watches
//! report, until it is closed into the ledger. Pure: the sampler feeds it observations with the
//! time they were made, and asks it for the intervals of a window.
//!
//! Each source — an environment's admitted quota, a pod, a volume claim — has at most one open
//! *segment*: a constant contribution to one environment, reserved or consumed, from a start
//! second. A change of amount ends the segment at the second it is observed and opens another;
//! a source that disappears or stops counting ends its segment. A new source starts at the
//! second its object says it began (admission, scheduling, creation), never before the
//! tracker's *frontier* (the end of the last window written to the ledger) and never after the
//! observation.
//!
//! A source whose object records when it ends (a finished pod, a deleted pod's end of grace
//! period) ends at that second, even without a further event, and one seen whole after the fact
//! (a pod that ran and finished while the sampler was not watching) is counted over its recorded
//! span. A volume claim seen unbound and later bound starts when it is seen bound, not at its
//! creation.
//!
//! An environment is identified by its object's uid as well as its name: a change of uid (the
//! environment deleted and created again), of bureau or of tier applies from the second it is
//! seen, and every interval carries the uid of the object it measured.
//!
//! Closing a window `[frontier, end)` adds up the segments of each environment and kind, cuts
//! where the sum or the environment's tier changes, and gives one interval per maximal constant,
//! non-zero run of each resource — split at local hours and months, so that no interval
//! straddles either. Advancing the frontier afterwards forgets what can no longer matter.

use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::Timestamp;
use zhengyun_metering::{Calendar, Meter, UsageInterval, UsageKind};
use zhengyun_model::names::Tier;

use super::observe::{Amounts, Contribution, METERED};

/// Where a contribution comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// The admitted quota of the named environment.
    Quota(String),
    /// The pod with this UID.
    Pod(String),
    /// The pod with this UID, of the burst priority class: borrowed capacity, settled per
    /// window rather than consumed.
    BurstPod(String),
    /// The volume claim with this UID.
    Claim(String),
}

/// Sources that come from one watch, for relists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceClass {
    /// Environments' quotas.
    Quotas,
    /// Pods.
    Pods,
    /// Volume claims.
    Claims,
}

impl Source {
    fn kind(&self) -> UsageKind {
        match self {
            Source::Quota(_) => UsageKind::Reserved,
            Source::Pod(_) | Source::Claim(_) => UsageKind::Consumed,
            Source::BurstPod(_) => UsageKind::Burst,
        }
    }

    fn class(&self) -> SourceClass {
        match self {
            Source::Quota(_) => SourceClass::Quotas,
            Source::Pod(_) | Source::BurstPod(_) => SourceClass::Pods,
            Source::Claim(_) => SourceClass::Claims,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Segment {
    environment: String,
    kind: UsageKind,
    amounts: Amounts,
    start: i64,
    end: Option<i64>,
    /// Where an open segment ends by its object's record, without a further event.
    until: Option<i64>,
}

impl Segment {
    /// Where the segment stops counting, if known.
    fn stop(&self) -> Option<i64> {
        self.end.or(self.until)
    }
}

/// What an environment is at some second: the object (its uid), its bureau and its tier.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Version {
    uid: Option<String>,
    bureau: String,
    tier: Tier,
}

#[derive(Clone, Debug)]
struct EnvironmentInfo {
    /// Versions, oldest first; the first applies from the beginning of time.
    versions: Vec<(i64, Version)>,
    deleted: bool,
}

impl EnvironmentInfo {
    fn version_at(&self, at: i64) -> &Version {
        static NONE: std::sync::OnceLock<Version> = std::sync::OnceLock::new();
        self.versions
            .iter()
            .take_while(|(from, _)| *from <= at)
            .last()
            .or(self.versions.first())
            .map_or_else(|| NONE.get_or_init(Version::default), |(_, v)| v)
    }
}

/// What a window closes to, all at once: the intervals, and what could not be metered.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct Closed {
    /// The intervals of the window, ready for the ledger.
    pub intervals: Vec<UsageInterval>,
    /// Environments whose usage could not be turned into intervals, and why.
    pub problems: Vec<String>,
}

/// A window's intervals in batches, from [`Tracker::closing`].
#[derive(Debug)]
pub struct Closing<'t> {
    tracker: &'t Tracker,
    end: i64,
    calendar: &'t Calendar,
    batch: usize,
    meters: std::collections::btree_map::IntoIter<(&'t str, UsageKind), Vec<Piece>>,
    /// Environments whose usage could not be turned into intervals, and why: complete once the
    /// iterator is exhausted.
    pub problems: Vec<String>,
}

impl Iterator for Closing<'_> {
    type Item = Vec<UsageInterval>;

    fn next(&mut self) -> Option<Vec<UsageInterval>> {
        let mut intervals = Vec::new();
        while intervals.len() < self.batch {
            let Some(((environment, kind), pieces)) = self.meters.next() else {
                break;
            };
            let Some(info) = self.tracker.environments.get(environment) else {
                // Pods and claims in namespaces that are not environments are not metered.
                continue;
            };
            if let Err(problem) = self.tracker.close_environment(
                environment,
                kind,
                info,
                &pieces,
                self.end,
                self.calendar,
                &mut intervals,
            ) {
                self.problems.push(problem);
            }
        }
        (!intervals.is_empty()).then_some(intervals)
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct Tracker {
    frontier: i64,
    open: HashMap<Source, Segment>,
    ended: Vec<Segment>,
    last_end: HashMap<Source, i64>,
    /// Volume claims seen not counting (unbound) since the frontier: they start when seen
    /// counting, not at their creation.
    idle: HashSet<Source>,
    environments: HashMap<String, EnvironmentInfo>,
}

impl Tracker {
    /// A tracker whose ledger is written up to `frontier` (Unix seconds).
    pub fn new(frontier: i64) -> Self {
        Self {
            frontier,
            open: HashMap::new(),
            ended: Vec::new(),
            last_end: HashMap::new(),
            idle: HashSet::new(),
            environments: HashMap::new(),
        }
    }

    /// Everything before this second is in the ledger.
    pub fn frontier(&self) -> i64 {
        self.frontier
    }

    /// Records the object (`uid`), bureau and tier of an environment, seen at `now`. A change
    /// of any applies from `now` on.
    pub fn set_environment(
        &mut self,
        name: &str,
        bureau: &str,
        tier: Tier,
        uid: Option<&str>,
        now: i64,
    ) {
        let version = Version {
            uid: uid.map(str::to_owned),
            bureau: bureau.to_owned(),
            tier,
        };
        match self.environments.get_mut(name) {
            Some(info) => {
                info.deleted = false;
                if info.versions.last().map(|(_, v)| v) != Some(&version) {
                    info.versions.push((now.max(self.frontier), version));
                }
            }
            None => {
                self.environments.insert(
                    name.to_owned(),
                    EnvironmentInfo {
                        versions: vec![(i64::MIN, version)],
                        deleted: false,
                    },
                );
            }
        }
    }

    /// Records that an environment is gone; what it reserved and consumed until now stays to
    /// be closed.
    pub fn delete_environment(&mut self, name: &str, now: i64) {
        self.observe(Source::Quota(name.to_owned()), None, now);
        if let Some(info) = self.environments.get_mut(name) {
            info.deleted = true;
        }
    }

    /// `source` is gone as seen at `now` (deleted, or not listed again).
    pub fn gone(&mut self, source: Source, now: i64) {
        self.observe(source.clone(), None, now);
        self.idle.remove(&source);
    }

    /// What `source` contributes as seen at `now` (`None`: nothing, or gone).
    pub fn observe(&mut self, source: Source, contribution: Option<Contribution>, now: i64) {
        let contribution = contribution.filter(|c| !c.amounts.is_zero());
        let now = now.max(self.frontier);
        let kind = source.kind();
        let was_open = match self.open.get_mut(&source) {
            Some(open)
                if contribution.as_ref().is_some_and(|c| {
                    c.environment == open.environment && c.amounts == open.amounts
                }) =>
            {
                // The same contribution; only its recorded end may be new.
                let until = contribution.and_then(|c| c.until);
                open.until = until.map(|u| u.max(open.start));
                if open.until.is_some_and(|u| u <= now) {
                    let at = open.until.unwrap_or(now);
                    self.end(&source, at);
                }
                return;
            }
            Some(_) => {
                self.end(&source, now);
                true
            }
            None => false,
        };
        let Some(contribution) = contribution else {
            if !was_open && matches!(source, Source::Claim(_)) {
                self.idle.insert(source);
            }
            return;
        };
        let seen_idle = self.idle.remove(&source);
        let began = if was_open || seen_idle {
            now
        } else {
            contribution.since.unwrap_or(now).clamp(self.frontier, now)
        };
        let start = self
            .last_end
            .get(&source)
            .map_or(began, |end| began.max(*end));
        let segment = Segment {
            environment: contribution.environment,
            kind,
            amounts: contribution.amounts,
            start,
            end: None,
            until: contribution.until.map(|u| u.max(start)),
        };
        match segment.until {
            Some(until) if until <= now => {
                // Seen after it ended (a pod that ran while nobody watched): closed at once.
                self.last_end.insert(source, until);
                if until > start {
                    self.ended.push(Segment {
                        end: Some(until),
                        ..segment
                    });
                }
            }
            _ => {
                self.open.insert(source, segment);
            }
        }
    }

    /// After a relist of `class`: every source of that class not `seen` is gone as of `now`.
    pub fn relisted(&mut self, class: SourceClass, seen: &HashSet<Source>, now: i64) {
        let gone: Vec<Source> = self
            .open
            .keys()
            .filter(|s| s.class() == class && !seen.contains(*s))
            .cloned()
            .collect();
        for source in gone {
            self.gone(source, now);
        }
        self.idle.retain(|s| s.class() != class || seen.contains(s));
        if class == SourceClass::Quotas {
            for (name, info) in &mut self.environments {
                if !seen.contains(&Source::Quota(name.clone())) {
                    info.deleted = true;
                }
            }
        }
    }

    fn end(&mut self, source: &Source, now: i64) {
        if let Some(mut segment) = self.open.remove(source) {
            // A recorded end (a grace period that ran out) before now is where it ended.
            let end = segment
                .until
                .map_or(now, |until| until.min(now))
                .max(segment.start);
            self.last_end.insert(source.clone(), end);
            if end > segment.start {
                segment.end = Some(end);
                self.ended.push(segment);
            }
        }
    }

    /// The intervals of `[frontier, end)`, split at the local hours and months of `calendar`,
    /// all at once: what the tests compare. Changes nothing.
    #[cfg(test)]
    pub fn close(&self, end: i64, calendar: &Calendar) -> Closed {
        let mut closing = self.closing(end, calendar, usize::MAX);
        let intervals = closing.by_ref().flatten().collect();
        Closed {
            intervals,
            problems: closing.problems,
        }
    }

    /// The intervals of [`Tracker::close`], built a batch at a time as the iterator is
    /// advanced: each batch holds whole environments and, unless one environment alone has
    /// more, at most about `batch` intervals. What a window's close holds in memory is then one
    /// batch, not every interval of every environment.
    pub fn closing<'t>(&'t self, end: i64, calendar: &'t Calendar, batch: usize) -> Closing<'t> {
        let mut by_meter: BTreeMap<(&str, UsageKind), Vec<Piece>> = BTreeMap::new();
        if end > self.frontier {
            for segment in self.open.values().chain(&self.ended) {
                let from = segment.start.max(self.frontier);
                let to = segment.stop().unwrap_or(end).min(end);
                if from < to {
                    by_meter
                        .entry((segment.environment.as_str(), segment.kind))
                        .or_default()
                        .push((from, to, segment.amounts));
                }
            }
        }
        Closing {
            tracker: self,
            end,
            calendar,
            batch: batch.max(1),
            meters: by_meter.into_iter(),
            problems: Vec::new(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn close_environment(
        &self,
        environment: &str,
        kind: UsageKind,
        info: &EnvironmentInfo,
        pieces: &[Piece],
        end: i64,
        calendar: &Calendar,
        intervals: &mut Vec<UsageInterval>,
    ) -> Result<(), String> {
        let runs = constant_runs(pieces, info, self.frontier, end);
        for (index, resource) in METERED.iter().enumerate() {
            for run in merge_runs(&runs, index) {
                let (start, stop, amount, version) = run;
                let meter = Meter::new(&version.bureau, environment, *resource, kind, version.tier)
                    .map_err(|e| format!("{environment}: {e}"))?;
                let instant =
                    |s: i64| Timestamp::from_second(s).map_err(|e| format!("{environment}: {e}"));
                let mut interval =
                    UsageInterval::new(meter, instant(start)?, instant(stop)?, amount)
                        .map_err(|e| format!("{environment}: {e}"))?;
                if let Some(uid) = &version.uid {
                    interval = interval.with_environment_uid(uid.clone());
                }
                let split = interval
                    .split_hourly(calendar)
                    .map_err(|e| format!("{environment}: {e}"))?;
                intervals.extend(split);
            }
        }
        Ok(())
    }

    /// Forgets what ended before `end`, which is now in the ledger, and moves the frontier.
    pub fn advance(&mut self, end: i64) {
        if end <= self.frontier {
            return;
        }
        self.frontier = end;
        let stopped: Vec<Source> = self
            .open
            .iter()
            .filter(|(_, s)| s.until.is_some_and(|u| u <= end))
            .map(|(source, _)| source.clone())
            .collect();
        for source in stopped {
            if let Some(segment) = self.open.remove(&source) {
                self.last_end.insert(source, segment.until.unwrap_or(end));
            }
        }
        self.ended.retain(|s| s.end.is_some_and(|e| e > end));
        self.last_end.retain(|_, e| *e > end);
        let referenced: HashSet<&str> = self
            .open
            .values()
            .chain(&self.ended)
            .map(|s| s.environment.as_str())
            .collect();
        let referenced: HashSet<String> = referenced.into_iter().map(str::to_owned).collect();
        self.environments
            .retain(|name, info| !info.deleted || referenced.contains(name));
        for info in self.environments.values_mut() {
            let current = info
                .versions
                .iter()
                .rposition(|(from, _)| *from <= end)
                .unwrap_or(0);
            info.versions.drain(..current);
        }
    }

    /// What each environment reserves and consumes now, per kind: for the operator's gauges.
    pub fn current(&self) -> BTreeMap<(String, UsageKind), Amounts> {
        let mut now: BTreeMap<(String, UsageKind), Amounts> = BTreeMap::new();
        for segment in self.open.values() {
            let slot = now
                .entry((segment.environment.clone(), segment.kind))
                .or_default();
            for (a, b) in slot.0.iter_mut().zip(segment.amounts.0) {
                *a = a.saturating_add(b);
            }
        }
        now
    }
}

/// A segment clipped to a window: `(start, end, amounts)`.
type Piece = (i64, i64, Amounts);

/// One stretch of constant sums and environment version: `(start, end, sums, version)`.
type Run<'i> = (i64, i64, [u64; METERED.len()], &'i Version);

/// Cuts `[from, to)` wherever a piece starts or ends or the environment's version changes, with
/// the sums of the pieces covering each cut.
fn constant_runs<'i>(
    pieces: &[Piece],
    info: &'i EnvironmentInfo,
    from: i64,
    to: i64,
) -> Vec<Run<'i>> {
    let mut deltas: BTreeMap<i64, [i128; METERED.len()]> = BTreeMap::new();
    for (start, end, amounts) in pieces {
        for (i, value) in amounts.0.iter().enumerate() {
            deltas.entry(*start).or_default()[i] += i128::from(*value);
            deltas.entry(*end).or_default()[i] -= i128::from(*value);
        }
    }
    for (at, _) in &info.versions {
        if (from..to).contains(at) {
            deltas.entry(*at).or_default();
        }
    }
    deltas.entry(from).or_default();
    deltas.entry(to).or_default();
    let mut runs = Vec::new();
    let mut sums = [0i128; METERED.len()];
    let cuts: Vec<(i64, [i128; METERED.len()])> = deltas.into_iter().collect();
    for pair in cuts.windows(2) {
        let ((start, delta), (end, _)) = (pair[0], pair[1]);
        for (sum, d) in sums.iter_mut().zip(delta) {
            *sum += d;
        }
        if start < from || end > to {
            continue;
        }
        // Sums of u64 amounts fit i128; an amount beyond the ledger's range is capped there.
        let amounts = sums.map(|s| u64::try_from(s.clamp(0, i128::from(i64::MAX))).unwrap_or(0));
        runs.push((start, end, amounts, info.version_at(start)));
    }
    runs
}

/// The maximal runs of resource `index` with one non-zero amount and one environment version.
fn merge_runs<'i>(runs: &[Run<'i>], index: usize) -> Vec<(i64, i64, u64, &'i Version)> {
    let mut merged: Vec<(i64, i64, u64, &Version)> = Vec::new();
    for (start, end, amounts, version) in runs {
        let amount = amounts[index];
        match merged.last_mut() {
            Some(last) if last.1 == *start && last.2 == amount && last.3 == *version => {
                last.1 = *end;
            }
            _ => merged.push((*start, *end, amount, version)),
        }
    }
    merged.retain(|(_, _, amount, _)| *amount > 0);
    merged
}

#[cfg(test)]
mod tests;
