//! The operator's Prometheus metrics: its own (`zhengyun_operator_*`: reconciliations by
//! controller and outcome, failures by kind, how long reconciliations take; labels are bounded,
//! no object or user names) and the finance metrics of [`crate::metering`] (`zhengyun_*`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::metering::MeteringMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EnvironmentLabels {
    bureau: String,
    environment: String,
    tier: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabels {
    tier: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    controller: &'static str,
    error: &'static str,
}

/// Counters and histograms shared by the controllers.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    metering: Arc<MeteringMetrics>,
    reconciliations: Family<ControllerLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    durations: Family<ControllerLabels, Histogram>,
    leader: Gauge,
    burst_reclaims: Counter,
    measured_minutes: Family<EnvironmentLabels, Counter>,
    bad_minutes: Family<EnvironmentLabels, Counter>,
    objectives: Family<TierLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// The length of the last text rendered, which the next render reserves at once.
    rendered: AtomicUsize,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut root = Registry::default();
        let metering = Arc::new(MeteringMetrics::default());
        root.register_collector(Box::new(metering.clone()));
        let measured_minutes = Family::<EnvironmentLabels, Counter>::default();
        let bad_minutes = Family::<EnvironmentLabels, Counter>::default();
        let objectives = Family::<TierLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        root.register(
            "zhengyun_availability_slices",
            "One-minute slices whose availability was measured, per environment (maintenance windows excluded)",
            measured_minutes.clone(),
        );
        root.register(
            "zhengyun_availability_bad_slices",
            "Measured one-minute slices an environment was unavailable through the platform's fault",
            bad_minutes.clone(),
        );
        root.register(
            "zhengyun_availability_objective_ratio",
            "The availability objective of each tier, as a ratio (0.9995 for 99.95 %)",
            objectives.clone(),
        );
        let registry = root.sub_registry_with_prefix("zhengyun_operator");
        let reconciliations = Family::<ControllerLabels, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let durations = Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
        });
        let leader = Gauge::default();
        let burst_reclaims = Counter::default();
        registry.register(
            "burst_reclaims",
            "Burst pods deleted because their environment's burst allowance fell below what they held",
            burst_reclaims.clone(),
        );
        registry.register(
            "reconciliations",
            "Reconciliations started",
            reconciliations.clone(),
        );
        registry.register(
            "reconcile_failures",
            "Reconciliations that failed, by error kind",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconciliation",
            durations.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        Self {
            registry: root,
            metering,
            reconciliations,
            failures,
            durations,
            leader,
            burst_reclaims,
            measured_minutes,
            bad_minutes,
            objectives,
            rendered: AtomicUsize::new(0),
        }
    }
}

impl Metrics {
    /// Counts a reconciliation of `controller` and times it until the guard drops.
    pub fn reconcile(self: &Arc<Self>, controller: &'static str) -> ReconcileTimer {
        self.reconciliations
            .get_or_create(&ControllerLabels { controller })
            .inc();
        ReconcileTimer {
            metrics: Arc::clone(self),
            controller,
            start: Instant::now(),
        }
    }

    /// Counts a failed reconciliation by its error kind.
    pub fn failure(&self, controller: &'static str, error: &'static str) {
        self.failures
            .get_or_create(&FailureLabels { controller, error })
            .inc();
    }

    /// The finance metrics fed by the metering sampler.
    pub fn metering(&self) -> &Arc<MeteringMetrics> {
        &self.metering
    }

    /// Counts a burst pod reclaimed by the operator.
    pub fn burst_reclaimed(&self) {
        self.burst_reclaims.inc();
    }

    /// Counts a measured minute of an environment, and whether it was bad.
    pub fn availability_minute(&self, of: &zhengyun_store::availability::Presence, bad: bool) {
        let labels = EnvironmentLabels {
            bureau: of.bureau.clone(),
            environment: of.environment.clone(),
            tier: of.tier.as_str(),
        };
        self.measured_minutes.get_or_create(&labels).inc();
        let counter = self.bad_minutes.get_or_create(&labels);
        if bad {
            counter.inc();
        }
    }

    /// Sets a tier's objective, given in thousandths of a percent.
    pub fn availability_objective(&self, tier: zhengyun_model::names::Tier, thousandths: u32) {
        self.objectives
            .get_or_create(&TierLabels {
                tier: tier.as_str(),
            })
            .set(f64::from(thousandths) / 100_000.0);
    }

    /// Records whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn render(&self) -> String {
        self.render_with(encode)
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric: what scrapers that do not
    /// ask for OpenMetrics, and `promtool check metrics`, read.
    pub fn render_prometheus(&self) -> String {
        self.render_with(prometheus_text::encode)
    }

    /// Renders with `encode` into a buffer the size of the last render and an eighth. At
    /// 10,000 environments the text is megabytes long: a buffer that grew by doubling as it was
    /// written would leave each smaller copy freed but still resident beside the final one,
    /// about twice the text at every scrape.
    fn render_with(&self, encode: impl FnOnce(&mut String, &Registry) -> fmt::Result) -> String {
        let last = self.rendered.load(Ordering::Relaxed);
        let mut out = String::with_capacity(last + last / 8);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        self.rendered.store(out.len(), Ordering::Relaxed);
        out
    }

    /// Mutable access for other parts of the operator to register their own metrics.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }
}

/// Observes a reconciliation's duration when dropped.
#[derive(Debug)]
pub struct ReconcileTimer {
    metrics: Arc<Metrics>,
    controller: &'static str,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        let labels = ControllerLabels {
            controller: self.controller,
        };
        self.metrics
            .durations
            .get_or_create(&labels)
            .observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reconciliation_and_a_failure_show_up_in_the_exposition() {
        let metrics = Arc::new(Metrics::default());
        drop(metrics.reconcile("environment"));
        metrics.failure("environment", "Kube");
        let text = metrics.render();
        assert!(
            text.contains(r#"zhengyun_operator_reconciliations_total{controller="environment"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"zhengyun_operator_reconcile_failures_total{controller="environment",error="Kube"} 1"#), "{text}");
        assert!(
            text.contains("zhengyun_operator_reconcile_duration_seconds_count"),
            "{text}"
        );
    }
}
