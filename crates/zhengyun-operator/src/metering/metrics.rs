//! Finance metrics, rendered at each scrape from the ledger's figures and the watch caches.
//! Labels are bureaus, environments, resources and currencies: never pods or users.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `zhengyun_quota_hard` | gauge | bureau, resource, unit |
//! | `zhengyun_quota_admitted` | gauge | bureau, environment, resource, unit |
//! | `zhengyun_quota_used` | gauge | bureau, environment, resource, unit |
//! | `zhengyun_reserved_resource_seconds_total` | counter | bureau, resource, unit |
//! | `zhengyun_consumed_resource_seconds_total` | counter | bureau, resource, unit |
//! | `zhengyun_cost_total` | counter | bureau, currency |
//! | `zhengyun_cost_month_to_date` | gauge (settled borrowing included) | bureau, currency |
//! | `zhengyun_burst_charges_month_to_date` | gauge | bureau, currency |
//! | `zhengyun_lent_credits_month_to_date` | gauge (positive: the credit) | bureau, currency |
//! | `zhengyun_burst_platform_share_month_to_date` | gauge | currency |
//! | `zhengyun_budget_monthly` | gauge | bureau, currency |
//! | `zhengyun_budget_month` | gauge (this month's share of the budget) | bureau, currency |
//! | `zhengyun_cost_to_date` | gauge (adjustments included) | bureau, currency |
//! | `zhengyun_cost_forecast_month_end` | gauge | bureau, currency |
//! | `zhengyun_budget_ratio` | gauge | bureau |
//! | `zhengyun_budget_status` | gauge (1 for the current level) | bureau, level |
//! | `zhengyun_metering_checkpoint_timestamp_seconds` | gauge | |
//! | `zhengyun_metering_intervals_total` | counter | |
//! | `zhengyun_metering_failures_total` | counter | stage |
//! | `zhengyun_burst_preemptions_total` | counter | |
//!
//! Units are Prometheus' base units: CPU in cores, memory and storage in bytes, GPUs and
//! objects as counts (`unit` says which), so resource-seconds are core-seconds, byte-seconds…
//! The resource-seconds counters are restored from the ledger at start-up and advance as windows
//! close; cost is the sum of the month statements' bureau totals (closed months as closed),
//! so it too survives restarts. `zhengyun_cost_total` never goes down in a process: a month that
//! fails to price or a cheaper rate card leaves it where it was until the sum passes it again.
//!
//! Only the leader exports these figures: a replica that loses the Lease drops them all (and
//! the quota gauges of its watch caches, which stop being updated), so that a `sum()` over
//! replicas never counts a former leader's last figures next to the leader's.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use kube::runtime::reflector::Store as Reflection;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelValue, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use zhengyun_metering::settlement::{Role, SettlementLine};
use zhengyun_metering::{BudgetLevel, Month, UsageInterval, UsageKind};
use zhengyun_model::crd::{Bureau, Environment, EnvironmentStatus};
use zhengyun_model::quantity::{Quota, Resource, Unit};
use zhengyun_store::UsageCounter;

use super::budgets::{BureauFigures, MonthFigures};

/// The figures behind the finance metrics; see the module documentation.
#[derive(Debug, Default)]
pub struct MeteringMetrics {
    figures: RwLock<Figures>,
    caches: Mutex<Option<(Reflection<Bureau>, Reflection<Environment>)>>,
    intervals: AtomicU64,
    failures: [AtomicU64; STAGES.len()],
    preemptions: AtomicU64,
}

/// The unit-seconds of intervals per bureau, resource and kind: what a written window adds to
/// the usage counters, summed as its batches go by.
#[derive(Debug, Default)]
pub struct UsageSums(BTreeMap<(String, Resource, UsageKind), u128>);

impl UsageSums {
    /// Adds `intervals`, burst usage excepted: the ledger records that only with its
    /// window's settlement, so a counter of it could not be restored after a restart.
    pub fn add(&mut self, intervals: &[UsageInterval]) {
        for i in intervals.iter().filter(|i| i.kind() != UsageKind::Burst) {
            let slot = self
                .0
                .entry((i.bureau().to_owned(), i.resource(), i.kind()))
                .or_default();
            *slot = slot.saturating_add(i.unit_seconds());
        }
    }
}

const STAGES: [&str; 4] = ["store", "close", "watch", "quantity"];

/// The current month's settled borrowing.
#[derive(Debug, Default)]
struct SettledFigures {
    charges: BTreeMap<String, Decimal>,
    credits: BTreeMap<String, Decimal>,
    platform: Decimal,
}

#[derive(Debug, Default)]
struct Figures {
    usage: BTreeMap<(String, Resource, UsageKind), u128>,
    currency: String,
    cost_total: BTreeMap<String, Decimal>,
    month_to_date: BTreeMap<String, Decimal>,
    settled: SettledFigures,
    budgets: BTreeMap<String, (Decimal, Option<Decimal>, BudgetLevel)>,
    month: MonthFigures,
    checkpoint: Option<i64>,
}

impl MeteringMetrics {
    /// Uses these caches for the quota gauges.
    pub(crate) fn watch(&self, bureaus: Reflection<Bureau>, envs: Reflection<Environment>) {
        if let Ok(mut caches) = self.caches.lock() {
            *caches = Some((bureaus, envs));
        }
    }

    fn update(&self, change: impl FnOnce(&mut Figures)) {
        if let Ok(mut figures) = self.figures.write() {
            change(&mut figures);
        }
    }

    /// Replaces the resource-seconds counters with the ledger's totals.
    pub fn restore_usage(&self, counters: Vec<UsageCounter>) {
        self.update(|f| {
            f.usage = counters
                .into_iter()
                .map(|c| ((c.bureau, c.resource, c.kind), c.unit_seconds))
                .collect();
        });
    }

    /// Adds newly written intervals to the counters.
    pub fn add_usage(&self, usage: UsageSums, written: u64) {
        self.intervals.fetch_add(written, Ordering::Relaxed);
        self.update(|f| {
            for (meter, unit_seconds) in usage.0 {
                let slot = f.usage.entry(meter).or_default();
                *slot = slot.saturating_add(unit_seconds);
            }
        });
    }

    /// Drops every figure and the watch caches: this replica no longer leads, and its figures
    /// would go stale next to the leader's. The next term restores them from the ledger.
    pub fn stop_leading(&self) {
        self.update(|f| *f = Figures::default());
        if let Ok(mut caches) = self.caches.lock() {
            *caches = None;
        }
    }

    /// Records the sampler's checkpoint (Unix seconds).
    pub fn set_checkpoint(&self, at: i64) {
        self.update(|f| f.checkpoint = Some(at));
    }

    /// Sets the costs from each month's bureau totals; `current` is month to date.
    pub fn set_costs(
        &self,
        currency: &str,
        by_month: &BTreeMap<Month, BTreeMap<String, Decimal>>,
        current: Month,
    ) {
        let mut total: BTreeMap<String, Decimal> = BTreeMap::new();
        for amounts in by_month.values() {
            for (bureau, amount) in amounts {
                let slot = total.entry(bureau.clone()).or_default();
                *slot = slot.saturating_add(*amount);
            }
        }
        let month_to_date = by_month.get(&current).cloned().unwrap_or_default();
        self.update(|f| {
            if f.currency != currency {
                // Another currency is another series: it starts from its own figures.
                f.cost_total.clear();
            }
            f.currency = currency.to_owned();
            for (bureau, amount) in total {
                let slot = f.cost_total.entry(bureau).or_default();
                *slot = (*slot).max(amount);
            }
            f.month_to_date = month_to_date;
        });
    }

    /// Sets the current month's settled borrowing, from its statement's settlement lines.
    pub fn set_settled(&self, lines: &[SettlementLine]) {
        let mut settled = SettledFigures::default();
        for line in lines {
            let bureau = line.bureau.clone().unwrap_or_default();
            match line.role {
                Role::Burst => *settled.charges.entry(bureau).or_default() += line.amount,
                Role::Lent => *settled.credits.entry(bureau).or_default() -= line.amount,
                Role::Platform => settled.platform += line.amount,
            }
        }
        self.update(|f| f.settled = settled);
    }

    /// Sets the current month's budget figures; the budget ratio and level follow them
    /// (adjustments included, against the month's share of the budget).
    pub fn set_month_figures(&self, figures: MonthFigures, monthly: &BTreeMap<String, Decimal>) {
        self.update(|f| {
            f.budgets = monthly
                .iter()
                .filter_map(|(bureau, budget)| {
                    let status = figures.bureaus.get(bureau)?.budget.as_ref()?;
                    Some((bureau.clone(), (*budget, status.ratio, status.level)))
                })
                .collect();
            f.month = figures;
        });
    }

    /// The current month's budget figures, as last set.
    /// This month's settled borrowing per bureau: (burst charges, lent credits), each where
    /// there is one.
    pub fn settled_of(&self, bureau: &str) -> (Option<Decimal>, Option<Decimal>) {
        self.figures
            .read()
            .map(|f| {
                (
                    f.settled.charges.get(bureau).copied(),
                    f.settled.credits.get(bureau).copied(),
                )
            })
            .unwrap_or_default()
    }

    /// The current month's figures per bureau.
    pub fn month_figures(&self) -> MonthFigures {
        self.figures
            .read()
            .map(|f| f.month.clone())
            .unwrap_or_default()
    }

    fn fail(&self, stage: &str) {
        if let Some(i) = STAGES.iter().position(|s| *s == stage) {
            self.failures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a failed read or write of the ledger.
    pub fn store_failed(&self) {
        self.fail("store");
    }

    /// Counts a window that could not be closed (it is retried).
    pub fn close_failed(&self) {
        self.fail("close");
    }

    /// Counts a failed watch (it is retried).
    pub fn watch_failed(&self) {
        self.fail("watch");
    }

    /// Counts an object with a quantity that did not parse.
    pub fn bad_quantity(&self) {
        self.fail("quantity");
    }

    /// Counts a burst pod the scheduler preempted (a reclaim recorded in the ledger).
    pub fn burst_preempted(&self) {
        self.preemptions.fetch_add(1, Ordering::Relaxed);
    }
}

/// The unit label and the scale from base units to it.
fn unit_of(resource: Resource) -> (&'static str, f64) {
    match resource.unit() {
        Unit::Millicores => ("core", 1_000.0),
        Unit::Bytes => ("byte", 1.0),
        Unit::Count => ("integer", 1.0),
    }
}

fn value(base_units: u128, resource: Resource) -> f64 {
    // Metrics are a view, never a bill: floating point is fine here.
    base_units as f64 / unit_of(resource).1
}

fn money(amount: Decimal) -> f64 {
    amount.to_f64().unwrap_or(f64::NAN)
}

/// One family: its descriptor, then each sample.
fn family<V: EncodeLabelValue, const N: usize>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = ([(&'static str, V); N], f64)>,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in samples {
        let sample = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(v).encode(sample)?,
            _ => ConstGauge::new(v).encode(sample)?,
        }
    }
    Ok(())
}

/// A quota family's samples: `bureau`, `environment`, `resource` and `unit` labels, borrowed.
type QuotaSample<'a> = ([(&'static str, &'a str); 4], f64);

/// Each resource set in `quota`, as gauge samples labelled with `bureau` and `environment`.
/// The labels borrow their values from the caches' objects: a scrape writes a sample per
/// resource of every environment in two families, and owned labels would all be held until
/// their family was written.
fn quota_samples<'a>(
    quota: &'a Quota,
    bureau: &'a str,
    environment: &'a str,
) -> impl Iterator<Item = QuotaSample<'a>> + 'a {
    // Reporting, not deciding: any quota Kubernetes' grammar reads is shown.
    let amounts = quota.observed_amounts().ok();
    amounts.into_iter().flat_map(move |amounts| {
        Resource::ALL
            .into_iter()
            .filter(move |resource| quota.get(*resource).is_some())
            .map(move |resource| {
                (
                    [
                        ("bureau", bureau),
                        ("environment", environment),
                        ("resource", resource.as_str()),
                        ("unit", unit_of(resource).0),
                    ],
                    value(u128::from(amounts.get(resource)), resource),
                )
            })
    })
}

/// The samples of the quota `pick` chooses from the status of each admitted environment of
/// `envs` (an environment not admitted yet has none).
fn environment_samples<'a>(
    envs: &'a [Arc<Environment>],
    pick: fn(&EnvironmentStatus) -> Option<&Quota>,
) -> impl Iterator<Item = QuotaSample<'a>> + 'a {
    envs.iter().flat_map(move |env| {
        let name = env.metadata.name.as_deref().unwrap_or_default();
        env.status
            .as_ref()
            .filter(|status| status.admitted_quota.is_some())
            .and_then(pick)
            .into_iter()
            .flat_map(move |quota| quota_samples(quota, &env.spec.bureau, name))
    })
}

impl Collector for MeteringMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        self.encode_quotas(&mut encoder)?;
        let Ok(f) = self.figures.read() else {
            return Ok(());
        };
        for (kind, name, help) in [
            (
                UsageKind::Reserved,
                "zhengyun_reserved_resource_seconds",
                "Admitted quota × time, in resource-seconds (core-seconds, byte-seconds…)",
            ),
            (
                UsageKind::Consumed,
                "zhengyun_consumed_resource_seconds",
                "Requests of bound pods and bound volume claims × time, in resource-seconds",
            ),
        ] {
            let samples = f.usage.iter().filter(|((_, _, k), _)| *k == kind).map(
                |((bureau, resource, _), unit_seconds)| {
                    (
                        [
                            ("bureau", bureau.clone()),
                            ("resource", resource.as_str().to_owned()),
                            ("unit", unit_of(*resource).0.to_owned()),
                        ],
                        value(*unit_seconds, *resource),
                    )
                },
            );
            family(&mut encoder, name, help, MetricType::Counter, samples)?;
        }
        let with_currency = |amounts: &BTreeMap<String, Decimal>| {
            amounts
                .iter()
                .map(|(b, a)| {
                    (
                        [("bureau", b.clone()), ("currency", f.currency.clone())],
                        money(*a),
                    )
                })
                .collect::<Vec<_>>()
        };
        family(
            &mut encoder,
            "zhengyun_cost",
            "Charges of every month's statement so far (closed months as closed)",
            MetricType::Counter,
            with_currency(&f.cost_total),
        )?;
        family(
            &mut encoder,
            "zhengyun_cost_month_to_date",
            "Charges of the current month so far",
            MetricType::Gauge,
            with_currency(&f.month_to_date),
        )?;
        family(
            &mut encoder,
            "zhengyun_burst_charges_month_to_date",
            "Charges for borrowed (burst) capacity in the current month so far, at the burst price",
            MetricType::Gauge,
            with_currency(&f.settled.charges),
        )?;
        family(
            &mut encoder,
            "zhengyun_lent_credits_month_to_date",
            "Credits for reserved capacity lent while idle in the current month so far (positive)",
            MetricType::Gauge,
            with_currency(&f.settled.credits),
        )?;
        family(
            &mut encoder,
            "zhengyun_burst_platform_share_month_to_date",
            "The platform's share of the current month's burst charges so far",
            MetricType::Gauge,
            (!f.settled.charges.is_empty()).then(|| {
                (
                    [("currency", f.currency.clone())],
                    money(f.settled.platform),
                )
            }),
        )?;
        family(
            &mut encoder,
            "zhengyun_budget_monthly",
            "A bureau's monthly budget",
            MetricType::Gauge,
            f.budgets.iter().map(|(b, (budget, _, _))| {
                (
                    [("bureau", b.clone()), ("currency", f.currency.clone())],
                    money(*budget),
                )
            }),
        )?;
        let of_month = |pick: fn(&BureauFigures) -> Option<Decimal>| {
            f.month
                .bureaus
                .iter()
                .filter_map(|(b, figures)| {
                    Some((
                        [("bureau", b.clone()), ("currency", f.currency.clone())],
                        money(pick(figures)?),
                    ))
                })
                .collect::<Vec<_>>()
        };
        family(
            &mut encoder,
            "zhengyun_budget_month",
            "This month's share of a bureau's budget: twelve monthly budgets shared by month length",
            MetricType::Gauge,
            of_month(|b| b.budget.as_ref().map(|s| s.budget)),
        )?;
        family(
            &mut encoder,
            "zhengyun_cost_to_date",
            "Charges of the current month so far, adjustments booked to it included",
            MetricType::Gauge,
            of_month(|b| Some(b.cost_to_date)),
        )?;
        family(
            &mut encoder,
            "zhengyun_cost_forecast_month_end",
            "Forecast charges at month end: month-to-date usage extrapolated linearly, plus adjustments",
            MetricType::Gauge,
            of_month(|b| b.forecast),
        )?;
        family(
            &mut encoder,
            "zhengyun_budget_ratio",
            "Month-to-date charges over the month's budget, cut to 4 decimals (0.8 warns, 1 is exceeded)",
            MetricType::Gauge,
            f.budgets
                .iter()
                .filter_map(|(b, (_, ratio, _))| Some(([("bureau", b.clone())], money((*ratio)?)))),
        )?;
        family(
            &mut encoder,
            "zhengyun_budget_status",
            "1 for a bureau's current budget level (ok, warning, exceeded), 0 for the others",
            MetricType::Gauge,
            f.budgets.iter().flat_map(|(b, (_, _, level))| {
                [BudgetLevel::Ok, BudgetLevel::Warning, BudgetLevel::Exceeded].map(|l| {
                    (
                        [("bureau", b.clone()), ("level", l.as_str().to_owned())],
                        f64::from(u8::from(l == *level)),
                    )
                })
            }),
        )?;
        family(
            &mut encoder,
            "zhengyun_metering_checkpoint_timestamp_seconds",
            "Everything before this instant is in the ledger",
            MetricType::Gauge,
            f.checkpoint.map(|c| ([] as [(&str, String); 0], c as f64)),
        )?;
        family(
            &mut encoder,
            "zhengyun_metering_intervals",
            "Usage intervals written to the ledger by this process",
            MetricType::Counter,
            [(
                [] as [(&str, String); 0],
                self.intervals.load(Ordering::Relaxed) as f64,
            )],
        )?;
        family(
            &mut encoder,
            "zhengyun_burst_preemptions",
            "Burst pods the scheduler preempted to give their room back, recorded by this process",
            MetricType::Counter,
            [(
                [] as [(&str, String); 0],
                self.preemptions.load(Ordering::Relaxed) as f64,
            )],
        )?;
        family(
            &mut encoder,
            "zhengyun_metering_failures",
            "Metering failures by stage (each is retried)",
            MetricType::Counter,
            STAGES.iter().zip(&self.failures).map(|(stage, n)| {
                (
                    [("stage", (*stage).to_owned())],
                    n.load(Ordering::Relaxed) as f64,
                )
            }),
        )
    }
}

impl MeteringMetrics {
    fn encode_quotas(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        // A snapshot of the two caches (shared objects, not copies); each family is then
        // encoded straight from it, one sample at a time.
        let (bureaus, envs) = match self.caches.lock().as_deref() {
            Ok(Some((bureaus, envs))) => (bureaus.state(), envs.state()),
            _ => (Vec::new(), Vec::new()),
        };
        family(
            encoder,
            "zhengyun_quota_hard",
            "A bureau's quota",
            MetricType::Gauge,
            bureaus.iter().flat_map(|bureau| {
                let code = bureau.metadata.name.as_deref().unwrap_or_default();
                quota_samples(&bureau.spec.quota, code, "").map(|([b, _, r, u], v)| ([b, r, u], v))
            }),
        )?;
        family(
            encoder,
            "zhengyun_quota_admitted",
            "The quota admitted to an environment",
            MetricType::Gauge,
            environment_samples(&envs, |status| status.admitted_quota.as_ref()),
        )?;
        family(
            encoder,
            "zhengyun_quota_used",
            "What an environment's pods and volume claims request (its ResourceQuota's used)",
            MetricType::Gauge,
            environment_samples(&envs, |status| status.usage.as_ref()),
        )
    }
}

#[cfg(test)]
mod tests;
