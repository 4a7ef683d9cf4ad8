//! The service levels of the capacity pool: per tier an availability objective and the credit
//! table paid on the bill when a month misses it, and the announced maintenance windows that
//! do not count against it.
//!
//! Percentages are decimal strings with at most three decimals (`"99.95"`), read exactly as
//! thousandths of a percent ([`parse_percent`]): no floating point decides a credit.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::{
    names::Tier,
    validation::{ValidationErrors, field_path},
};

/// Most credit steps of a tier.
pub const MAX_CREDIT_STEPS: usize = 10;

/// Most maintenance windows the pool announces at once.
pub const MAX_MAINTENANCE_WINDOWS: usize = 100;

/// The fewest replicas of a gold environment's web service unless the pool says otherwise: one
/// replica can be lost to a node while the other serves.
pub const GOLD_MIN_REPLICAS: u32 = 2;

/// 100 % in thousandths of a percent.
pub const HUNDRED_PERCENT: u32 = 100_000;

/// What the platform promises per tier, what it pays when it misses, and when it is allowed to
/// be down.
#[derive(KubeSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceLevels {
    /// Gold (default: 99.95 %).
    #[serde(default = "TierServiceLevel::gold")]
    pub gold: TierServiceLevel,
    /// Silver (default: 99.9 %).
    #[serde(default = "TierServiceLevel::silver")]
    pub silver: TierServiceLevel,
    /// Bronze (default: 99.5 %).
    #[serde(default = "TierServiceLevel::bronze")]
    pub bronze: TierServiceLevel,
    /// Announced maintenance: minutes within a window are not measured, and count neither for
    /// nor against any environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub maintenance_windows: Vec<MaintenanceWindow>,
}

impl Default for ServiceLevels {
    fn default() -> Self {
        Self {
            gold: TierServiceLevel::gold(),
            silver: TierServiceLevel::silver(),
            bronze: TierServiceLevel::bronze(),
            maintenance_windows: Vec::new(),
        }
    }
}

impl ServiceLevels {
    /// The level of `tier`.
    pub fn of(&self, tier: Tier) -> &TierServiceLevel {
        match tier {
            Tier::Gold => &self.gold,
            Tier::Silver => &self.silver,
            Tier::Bronze => &self.bronze,
        }
    }

    /// The fewest replicas a web service of a `tier` environment may run: the tier's
    /// `minReplicas`, or [`GOLD_MIN_REPLICAS`] for gold and 1 for the others.
    pub fn min_replicas(&self, tier: Tier) -> u32 {
        self.of(tier).min_replicas.unwrap_or(if tier == Tier::Gold {
            GOLD_MIN_REPLICAS
        } else {
            1
        })
    }

    /// Whether the replicas of a `tier` environment's web services are spread over nodes: the
    /// tier's `spreadOverNodes`, or gold only.
    pub fn spread_over_nodes(&self, tier: Tier) -> bool {
        self.of(tier)
            .spread_over_nodes
            .unwrap_or(tier == Tier::Gold)
    }

    /// Whether the instant `at` (seconds since the epoch) falls in an announced window.
    pub fn in_maintenance(&self, at: i64) -> bool {
        self.maintenance_windows.iter().any(|w| {
            let (start, end) = (w.start.0.as_second(), w.end.0.as_second());
            start <= at && at < end
        })
    }

    /// Adds what is wrong with these levels to `errors`, under `path`.
    pub fn check(&self, path: &str, errors: &mut ValidationErrors) {
        for (name, level) in [
            ("gold", &self.gold),
            ("silver", &self.silver),
            ("bronze", &self.bronze),
        ] {
            level.check(&field_path(path, name), errors);
        }
        if self.maintenance_windows.len() > MAX_MAINTENANCE_WINDOWS {
            errors.push(
                field_path(path, "maintenanceWindows"),
                format!("at most {MAX_MAINTENANCE_WINDOWS} windows"),
            );
        }
        for (i, window) in self.maintenance_windows.iter().enumerate() {
            if window.end.0 <= window.start.0 {
                errors.push(
                    format!("{path}.maintenanceWindows[{i}].end"),
                    "must be after start".to_owned(),
                );
            }
        }
    }
}

/// One tier's objective and credit table.
#[derive(KubeSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.credits.all(c, double(c.below) <= double(self.objective))").message("every credit step must apply below a level at or under the objective"))]
#[x_kube(validation = Rule::new("self.credits.all(a, self.credits.all(b, double(a.below) <= double(b.below) || a.creditPercent < b.creditPercent))").message("credits must be monotonic: the lower the availability, the larger the credit"))]
#[x_kube(validation = Rule::new("self.credits.all(a, self.credits.exists_one(b, double(b.below) == double(a.below)))").message("credit steps must have different levels"))]
pub struct TierServiceLevel {
    /// The availability objective of a month, in percent (e.g. `"99.95"`): above 0, at most
    /// 100, at most three decimals.
    #[schemars(regex(pattern = r"^[0-9]{1,3}(\.[0-9]{1,3})?$"))]
    #[x_kube(validation = Rule::new("double(self) > 0.0 && double(self) <= 100.0").message("objective must be a percentage above 0 and at most 100"))]
    pub objective: String,
    /// The credits: when a month's availability is below a step's `below`, the environment is
    /// credited that step's percentage of its charges for the month (the largest step that
    /// applies). The lower the level, the larger the credit.
    #[serde(default)]
    #[schemars(length(max = 10))]
    pub credits: Vec<CreditStep>,
    /// A structural prerequisite of the objective: the fewest replicas each web service of an
    /// environment of this tier runs (1–20), checked at admission when the environment is
    /// created or its services or tier change. Absent: 2 for gold, 1 for silver and bronze.
    /// Postgres services run one replica whatever the tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 20), extend("format" = "int32"))]
    pub min_replicas: Option<u32>,
    /// Whether the replicas of each web service are spread over nodes (no node runs two more
    /// of them than another). Absent: gold only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread_over_nodes: Option<bool>,
}

/// One step of a credit table.
#[derive(KubeSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreditStep {
    /// Applies when the month's availability is below this, in percent (e.g. `"99"`).
    #[schemars(regex(pattern = r"^[0-9]{1,3}(\.[0-9]{1,3})?$"))]
    #[x_kube(validation = Rule::new("double(self) > 0.0 && double(self) <= 100.0").message("below must be a percentage above 0 and at most 100"))]
    pub below: String,
    /// The credit, in percent of the environment's charges for the month (1–100).
    #[schemars(range(min = 1, max = 100), extend("format" = "int32"))]
    pub credit_percent: u32,
}

/// A span announced for maintenance.
#[derive(KubeSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.end > self.start").message("a maintenance window must end after it starts"))]
pub struct MaintenanceWindow {
    /// When it starts (RFC 3339).
    pub start: Time,
    /// When it ends (RFC 3339), exclusive.
    pub end: Time,
    /// What is done, for the record.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 256))]
    pub reason: String,
}

impl TierServiceLevel {
    fn new(objective: &str) -> Self {
        let step = |below: &str, credit_percent| CreditStep {
            below: below.to_owned(),
            credit_percent,
        };
        Self {
            objective: objective.to_owned(),
            credits: vec![step(objective, 10), step("99", 25), step("95", 100)],
            min_replicas: None,
            spread_over_nodes: None,
        }
    }

    fn gold() -> Self {
        Self::new("99.95")
    }

    fn silver() -> Self {
        Self::new("99.9")
    }

    fn bronze() -> Self {
        Self::new("99.5")
    }

    /// The objective in thousandths of a percent.
    pub fn objective_thousandths(&self) -> Option<u32> {
        parse_percent(&self.objective)
    }

    /// The credit steps as (below, in thousandths of a percent; credit percent), the highest
    /// level first. Steps that do not parse are left out (validation refuses them).
    pub fn steps(&self) -> Vec<(u32, u32)> {
        let mut steps: Vec<(u32, u32)> = self
            .credits
            .iter()
            .filter_map(|s| Some((parse_percent(&s.below)?, s.credit_percent)))
            .collect();
        steps.sort_by_key(|s| std::cmp::Reverse(s.0));
        steps
    }

    fn check(&self, path: &str, errors: &mut ValidationErrors) {
        if self.min_replicas.is_some_and(|n| !(1..=20).contains(&n)) {
            errors.push(
                field_path(path, "minReplicas"),
                "must be between 1 and 20".to_owned(),
            );
        }
        let objective = match parse_percent(&self.objective) {
            Some(o) if o > 0 => o,
            _ => {
                errors.push(
                    field_path(path, "objective"),
                    "must be a percentage above 0 and at most 100, with at most three decimals"
                        .to_owned(),
                );
                return;
            }
        };
        if self.credits.len() > MAX_CREDIT_STEPS {
            errors.push(
                field_path(path, "credits"),
                format!("at most {MAX_CREDIT_STEPS} steps"),
            );
        }
        let mut steps = Vec::new();
        for (i, step) in self.credits.iter().enumerate() {
            let at = format!("{path}.credits[{i}]");
            match parse_percent(&step.below) {
                Some(below) if below > 0 && below <= objective => {
                    steps.push((below, step.credit_percent))
                }
                Some(below) if below > objective => errors.push(
                    field_path(&at, "below"),
                    format!("{} is above the objective {}", step.below, self.objective),
                ),
                _ => errors.push(
                    field_path(&at, "below"),
                    "must be a percentage above 0 and at most 100, with at most three decimals"
                        .to_owned(),
                ),
            }
            if !(1..=100).contains(&step.credit_percent) {
                errors.push(
                    field_path(&at, "creditPercent"),
                    "must be between 1 and 100".to_owned(),
                );
            }
        }
        steps.sort_by_key(|s| std::cmp::Reverse(s.0));
        for pair in steps.windows(2) {
            if pair[0].0 == pair[1].0 {
                errors.push(
                    field_path(path, "credits"),
                    "two steps have the same level".to_owned(),
                );
            } else if pair[0].1 >= pair[1].1 {
                errors.push(
                    field_path(path, "credits"),
                    "must be monotonic: the lower the availability, the larger the credit"
                        .to_owned(),
                );
            }
        }
    }
}

/// A percentage written with at most three decimals (`"99.95"`) in thousandths of a percent
/// (`99950`), if it is one and at most 100.
pub fn parse_percent(text: &str) -> Option<u32> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole)
        || whole.len() > 3
        || fraction.len() > 3
        || (text.contains('.') && !digits(fraction))
    {
        return None;
    }
    let whole: u32 = whole.parse().ok()?;
    let mut thousandths: u32 = 0;
    for (i, b) in fraction.bytes().enumerate() {
        thousandths += u32::from(b - b'0') * 10u32.pow(2 - u32::try_from(i).ok()?);
    }
    let value = whole.checked_mul(1000)?.checked_add(thousandths)?;
    (value <= HUNDRED_PERCENT).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_read_exactly_in_thousandths() {
        assert_eq!(parse_percent("99.95"), Some(99_950));
        assert_eq!(parse_percent("99.9"), Some(99_900));
        assert_eq!(parse_percent("95"), Some(95_000));
        assert_eq!(parse_percent("100"), Some(100_000));
        assert_eq!(parse_percent("0.001"), Some(1));
        for bad in [
            "100.001", "101", "99.9999", "", ".5", "5.", "-1", "9 9", "1e2",
        ] {
            assert_eq!(parse_percent(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_defaults_are_valid_and_credit_10_25_and_100_percent() {
        let levels = ServiceLevels::default();
        let mut errors = ValidationErrors::new();
        levels.check("spec.serviceLevels", &mut errors);
        assert!(errors.into_result().is_ok());
        assert_eq!(
            levels.of(Tier::Gold).steps(),
            vec![(99_950, 10), (99_000, 25), (95_000, 100)]
        );
    }

    fn errors_of(level: TierServiceLevel) -> String {
        let mut errors = ValidationErrors::new();
        level.check("spec.serviceLevels.gold", &mut errors);
        match errors.into_result() {
            Ok(()) => String::new(),
            Err(errors) => errors.to_string(),
        }
    }

    #[test]
    fn an_objective_above_100_percent_is_refused() {
        let mut level = TierServiceLevel::gold();
        level.objective = "100.5".to_owned();
        assert!(errors_of(level).contains("objective"));
    }

    #[test]
    fn a_credit_table_that_is_not_monotonic_is_refused() {
        let mut level = TierServiceLevel::gold();
        level.credits[1].credit_percent = 5;
        assert!(errors_of(level).contains("monotonic"), "not monotonic");
        let mut level = TierServiceLevel::gold();
        level.credits[2].below = "99".to_owned();
        assert!(errors_of(level).contains("same level"));
        let mut level = TierServiceLevel::gold();
        level.credits[0].below = "99.99".to_owned();
        assert!(errors_of(level).contains("above the objective"));
    }

    #[test]
    fn a_maintenance_window_must_end_after_it_starts() {
        let at = |s: &str| Time(s.parse().expect("time"));
        let mut levels = ServiceLevels::default();
        levels.maintenance_windows.push(MaintenanceWindow {
            start: at("2026-12-05T02:00:00Z"),
            end: at("2026-12-05T01:00:00Z"),
            reason: "升级".to_owned(),
        });
        let mut errors = ValidationErrors::new();
        levels.check("spec.serviceLevels", &mut errors);
        assert!(errors.into_result().is_err());
        levels.maintenance_windows[0].end = at("2026-12-05T03:00:00Z");
        assert!(levels.in_maintenance(at("2026-12-05T02:30:00Z").0.as_second()));
        assert!(!levels.in_maintenance(at("2026-12-05T03:00:00Z").0.as_second()));
    }
}
