//! Usage intervals: what the ledger stores. One interval says "this environment held (reserved)
//! or used (consumed) this constant amount of one resource from `start` to `end`".
//!
//! Its integral, [`UsageInterval::unit_seconds`], is `amount × seconds` in base units
//! (millicore-seconds, byte-seconds, GPU-seconds…) as an exact `u128`: the largest amount
//! (`u64::MAX`) held for ten thousand years is below 2^103.
//!
//! Every interval carries an [`IdempotencyKey`] derived from what it measures and when, so the
//! ledger can refuse a second write of the same interval after a restart or relist. Splitting an
//! interval ([`UsageInterval::split_at`], [`UsageInterval::split_hourly`],
//! [`UsageInterval::split_monthly`]) conserves unit-seconds exactly: pieces are contiguous
//! whole-second ranges of the same constant amount, so `Σ amount × secondsᵢ = amount × Σ secondsᵢ`.

use std::{fmt, str::FromStr};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use zhengyun_model::{
    names::{
        DNS1123_LABEL_MAX_LEN, Tier, check_bureau_code, check_dns1123_label, environment_belongs_to,
    },
    quantity::Resource,
};

use crate::{
    calendar::{Calendar, TimeRange},
    error::{Error, Result},
};

/// What a quantity measures: the two parts of the tariff, and borrowed capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageKind {
    /// Admitted quota × time: what the bureau set aside, used or not.
    Reserved,
    /// Requests of bound, non-terminal pods and requested PVC storage × time (burst pods
    /// excepted).
    Consumed,
    /// Requests of bound, non-terminal pods of the burst priority class × time: capacity
    /// borrowed beyond the quota. Never a statement line of its own: each metering window's
    /// burst is settled at the burst price when the window is written
    /// ([`crate::settlement`]), and the statement shows the settled amounts.
    Burst,
}

impl UsageKind {
    /// The two kinds of the tariff, reserved first: each a statement line.
    pub const ALL: [UsageKind; 2] = [UsageKind::Reserved, UsageKind::Consumed];

    /// `reserved`, `consumed` or `burst`.
    pub fn as_str(self) -> &'static str {
        match self {
            UsageKind::Reserved => "reserved",
            UsageKind::Consumed => "consumed",
            UsageKind::Burst => "burst",
        }
    }
}

impl fmt::Display for UsageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UsageKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "reserved" => Ok(UsageKind::Reserved),
            "consumed" => Ok(UsageKind::Consumed),
            "burst" => Ok(UsageKind::Burst),
            _ => Err(format!(
                "unknown usage kind {text:?}, expected reserved, consumed or burst"
            )),
        }
    }
}

/// The resource whose quota field name is `text` (`cpu`, `memory`, `loadbalancers`…).
pub fn parse_resource(text: &str) -> Option<Resource> {
    Resource::ALL.into_iter().find(|r| r.as_str() == text)
}

/// What one series of intervals measures: one resource of one environment, reserved or
/// consumed, at the environment's tier.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "RawMeter")]
pub struct Meter {
    bureau: String,
    environment: String,
    #[serde(with = "crate::serde_as::resource")]
    resource: Resource,
    kind: UsageKind,
    tier: Tier,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMeter {
    bureau: String,
    environment: String,
    #[serde(with = "crate::serde_as::resource")]
    resource: Resource,
    kind: UsageKind,
    tier: Tier,
}

impl TryFrom<RawMeter> for Meter {
    type Error = Error;

    fn try_from(raw: RawMeter) -> Result<Self> {
        Self::new(
            raw.bureau,
            raw.environment,
            raw.resource,
            raw.kind,
            raw.tier,
        )
    }
}

impl Meter {
    /// A meter for `environment` of `bureau`. The environment must be named
    /// `<bureau>-<purpose>` (which is also its namespace), so an environment can never be
    /// counted under another bureau.
    pub fn new(
        bureau: impl Into<String>,
        environment: impl Into<String>,
        resource: Resource,
        kind: UsageKind,
        tier: Tier,
    ) -> Result<Self> {
        let bureau = bureau.into();
        let environment = environment.into();
        let invalid = |field, value: &str, reason| Error::InvalidName {
            field,
            value: value.to_owned(),
            reason,
        };
        check_bureau_code(&bureau).map_err(|reason| invalid("bureau", &bureau, reason))?;
        check_dns1123_label(&environment, DNS1123_LABEL_MAX_LEN)
            .map_err(|reason| invalid("environment", &environment, reason))?;
        if !environment_belongs_to(&environment, &bureau) {
            let reason = format!("must be named {bureau}-<purpose> (dev, test, staging or prod)");
            return Err(invalid("environment", &environment, reason));
        }
        Ok(Self {
            bureau,
            environment,
            resource,
            kind,
            tier,
        })
    }

    /// The bureau code.
    pub fn bureau(&self) -> &str {
        &self.bureau
    }

    /// The environment name (`<bureau>-<purpose>`).
    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// The resource measured.
    pub fn resource(&self) -> Resource {
        self.resource
    }

    /// Reserved or consumed.
    pub fn kind(&self) -> UsageKind {
        self.kind
    }

    /// The environment's tier while the usage happened; it selects the price.
    pub fn tier(&self) -> Tier {
        self.tier
    }
}

/// The ledger's duplicate detector for an interval: `<start>/<end>/<environment>/<resource>/<kind>`
/// with `start` and `end` in Unix seconds, e.g. `1793462400/1793466000/wjw-prod/cpu/reserved`.
///
/// Deterministic and readable. Environment names are DNS labels and resources and kinds are
/// fixed words, none containing `/`, so two different intervals never share a key. The amount
/// and tier are deliberately not part of it: a second write with the same key but a different
/// amount is a conflict the ledger must surface, not a new interval.
///
/// Time comes first so that the ledger's unique index grows at its end: each hour's new keys
/// sort after every older key and land on a few fresh index pages, instead of one page per
/// meter all over an index that grows with every month of history.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key of an interval of `resource` `kind` for `environment` over `range`.
    pub fn new(environment: &str, resource: Resource, kind: UsageKind, range: TimeRange) -> Self {
        Self(format!(
            "{}/{}/{environment}/{resource}/{kind}",
            range.start().as_second(),
            range.end().as_second()
        ))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A constant amount of one resource, reserved or consumed by one environment, over
/// `[start, end)`. Immutable; splitting makes new intervals with their own keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "RawInterval")]
pub struct UsageInterval {
    #[serde(flatten)]
    meter: Meter,
    #[serde(flatten)]
    range: TimeRange,
    amount: u64,
    /// The Kubernetes uid of the Environment object, where known: two environments of one name
    /// (one deleted, another created later, possibly for another bureau) are two environments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    environment_uid: Option<String>,
    key: IdempotencyKey,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawInterval {
    #[serde(flatten)]
    meter: Meter,
    start: Timestamp,
    end: Timestamp,
    amount: u64,
    #[serde(default)]
    environment_uid: Option<String>,
    key: Option<IdempotencyKey>,
}

impl TryFrom<RawInterval> for UsageInterval {
    type Error = Error;

    fn try_from(raw: RawInterval) -> Result<Self> {
        let mut interval = Self::new(raw.meter, raw.start, raw.end, raw.amount)?;
        if let Some(uid) = raw.environment_uid {
            interval = interval.with_environment_uid(uid);
        }
        match raw.key {
            Some(key) if key != interval.key => Err(Error::InvalidName {
                field: "key",
                value: key.0,
                reason: format!("does not match the interval, whose key is {}", interval.key),
            }),
            _ => Ok(interval),
        }
    }
}

impl UsageInterval {
    /// `amount` base units of `meter` held over `[start, end)`. Both ends must be whole seconds
    /// and `start < end`.
    pub fn new(meter: Meter, start: Timestamp, end: Timestamp, amount: u64) -> Result<Self> {
        let range = TimeRange::new(start, end)?;
        Ok(Self::over(meter, range, amount))
    }

    fn over(meter: Meter, range: TimeRange, amount: u64) -> Self {
        let key = IdempotencyKey::new(&meter.environment, meter.resource, meter.kind, range);
        Self {
            meter,
            range,
            amount,
            environment_uid: None,
            key,
        }
    }

    /// The same interval, of the Environment object with this uid. The key does not change:
    /// one name is held by one object at a time, and the sampler cuts a series where the object
    /// changes, so two objects' intervals of one name never share bounds.
    pub fn with_environment_uid(mut self, uid: impl Into<String>) -> Self {
        self.environment_uid = Some(uid.into());
        self
    }

    /// The uid of the Environment object, where it was recorded.
    pub fn environment_uid(&self) -> Option<&str> {
        self.environment_uid.as_deref()
    }

    /// An interval over `range` with this one's meter, amount and environment uid.
    fn piece(&self, range: TimeRange) -> Self {
        let piece = Self::over(self.meter.clone(), range, self.amount);
        match &self.environment_uid {
            Some(uid) => piece.with_environment_uid(uid.clone()),
            None => piece,
        }
    }

    /// What the interval measures.
    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// The bureau code.
    pub fn bureau(&self) -> &str {
        &self.meter.bureau
    }

    /// The environment name.
    pub fn environment(&self) -> &str {
        &self.meter.environment
    }

    /// The resource measured.
    pub fn resource(&self) -> Resource {
        self.meter.resource
    }

    /// Reserved or consumed.
    pub fn kind(&self) -> UsageKind {
        self.meter.kind
    }

    /// The tier the usage is priced at.
    pub fn tier(&self) -> Tier {
        self.meter.tier
    }

    /// The first second counted.
    pub fn start(&self) -> Timestamp {
        self.range.start()
    }

    /// The first second not counted.
    pub fn end(&self) -> Timestamp {
        self.range.end()
    }

    /// `[start, end)`.
    pub fn range(&self) -> TimeRange {
        self.range
    }

    /// The constant amount, in base units (millicores, bytes, count).
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// The ledger key of this interval.
    pub fn key(&self) -> &IdempotencyKey {
        &self.key
    }

    /// Length in seconds (at least 1).
    pub fn seconds(&self) -> u64 {
        self.range.seconds()
    }

    /// `amount × seconds`, exactly: millicore-seconds for CPU, byte-seconds for memory and
    /// storage, unit-seconds for counted resources.
    pub fn unit_seconds(&self) -> u128 {
        u128::from(self.amount) * u128::from(self.seconds())
    }

    /// The unit-seconds that fall inside `range` (zero when they do not overlap).
    pub fn unit_seconds_within(&self, range: &TimeRange) -> u128 {
        self.range.intersection(range).map_or(0, |overlap| {
            u128::from(self.amount) * u128::from(overlap.seconds())
        })
    }

    /// The two pieces `[start, at)` and `[at, end)`, or `None` unless `start < at < end`.
    pub fn split_at(&self, at: Timestamp) -> Option<(Self, Self)> {
        let head = TimeRange::new(self.start(), at).ok()?;
        let tail = TimeRange::new(at, self.end()).ok()?;
        Some((self.piece(head), self.piece(tail)))
    }

    /// The interval cut at every local hour boundary and every month boundary of `calendar`:
    /// what the hourly close writes. Pieces are contiguous, in order, and their unit-seconds
    /// add up to this interval's exactly.
    pub fn split_hourly(&self, calendar: &Calendar) -> Result<Vec<Self>> {
        self.split_at_boundaries(|at| {
            let hour = calendar.next_hour_boundary(at)?;
            let month_end = calendar.month_range(calendar.month_of(at))?.end();
            Ok(hour.min(month_end))
        })
    }

    /// The interval cut at every month boundary of `calendar`, so each piece belongs to one
    /// monthly statement.
    pub fn split_monthly(&self, calendar: &Calendar) -> Result<Vec<Self>> {
        self.split_at_boundaries(|at| Ok(calendar.month_range(calendar.month_of(at))?.end()))
    }

    fn split_at_boundaries(
        &self,
        next_boundary: impl Fn(Timestamp) -> Result<Timestamp>,
    ) -> Result<Vec<Self>> {
        let mut pieces = Vec::new();
        let mut start = self.start();
        while start < self.end() {
            let end = next_boundary(start)?.min(self.end());
            let range = TimeRange::new(start, end)?;
            pieces.push(self.piece(range));
            start = end;
        }
        Ok(pieces)
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("test timestamp")
    }

    fn cpu_meter() -> Meter {
        Meter::new(
            "wjw",
            "wjw-prod",
            Resource::Cpu,
            UsageKind::Reserved,
            Tier::Gold,
        )
        .expect("meter")
    }

    fn interval(start: &str, end: &str, amount: u64) -> UsageInterval {
        UsageInterval::new(cpu_meter(), ts(start), ts(end), amount).expect("interval")
    }

    #[rstest]
    #[case::one_core_for_an_hour(1_000, "2026-11-01T00:00:00Z", "2026-11-01T01:00:00Z", 3_600_000)]
    #[case::half_a_core_for_a_second(500, "2026-11-01T00:00:00Z", "2026-11-01T00:00:01Z", 500)]
    #[case::nothing_for_a_day(0, "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", 0)]
    #[case::a_million_cores_for_november(
        1_000_000_000,
        "2026-10-31T16:00:00Z",
        "2026-11-30T16:00:00Z",
        2_592_000_000_000_000
    )]
    #[case::the_largest_amount_for_a_31_day_month(
        u64::MAX,
        "2026-12-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
        u64::MAX as u128 * 2_678_400
    )]
    fn unit_seconds_are_amount_times_seconds_exactly(
        #[case] amount: u64,
        #[case] start: &str,
        #[case] end: &str,
        #[case] expected: u128,
    ) {
        assert_eq!(interval(start, end, amount).unit_seconds(), expected);
    }

    #[test]
    fn the_key_names_unix_bounds_environment_resource_and_kind() {
        let key = interval("2026-11-01T00:00:00Z", "2026-11-01T01:00:00Z", 1_000)
            .key()
            .clone();
        assert_eq!(key.as_str(), "1793491200/1793494800/wjw-prod/cpu/reserved");
    }

    #[test]
    fn writing_the_same_interval_twice_gives_the_same_key_whatever_the_amount() {
        let first = interval("2026-11-01T00:00:00Z", "2026-11-01T01:00:00Z", 1_000);
        let again = interval("2026-11-01T00:00:00Z", "2026-11-01T01:00:00Z", 2_000);
        let later = interval("2026-11-01T01:00:00Z", "2026-11-01T02:00:00Z", 1_000);
        assert_eq!(first.key(), again.key());
        assert_ne!(first.key(), later.key());
    }

    #[rstest]
    #[case::reserved_and_consumed_differ(Resource::Cpu, UsageKind::Consumed)]
    #[case::resources_differ(Resource::Memory, UsageKind::Reserved)]
    fn keys_differ_by_resource_and_kind(#[case] resource: Resource, #[case] kind: UsageKind) {
        let meter = Meter::new("wjw", "wjw-prod", resource, kind, Tier::Gold).expect("meter");
        let other = UsageInterval::new(
            meter,
            ts("2026-11-01T00:00:00Z"),
            ts("2026-11-01T01:00:00Z"),
            1,
        )
        .expect("interval");
        let base = interval("2026-11-01T00:00:00Z", "2026-11-01T01:00:00Z", 1);
        assert_ne!(other.key(), base.key());
    }

    #[rstest]
    #[case::bureau_not_a_code("WJW", "WJW-prod")]
    #[case::environment_of_another_bureau("wjw", "jtj-prod")]
    #[case::environment_without_purpose("wjw", "wjw")]
    #[case::environment_with_unknown_purpose("wjw", "wjw-qa")]
    #[case::environment_with_a_slash("wjw", "wjw/prod")]
    fn meters_refuse_names_that_could_cross_bureaus(
        #[case] bureau: &str,
        #[case] environment: &str,
    ) {
        let result = Meter::new(
            bureau,
            environment,
            Resource::Cpu,
            UsageKind::Reserved,
            Tier::Gold,
        );
        assert_eq!(result.expect_err("invalid").metric_label(), "invalid_name");
    }

    #[test]
    fn a_dashed_bureau_code_owns_its_environments() {
        Meter::new(
            "zgc-keyu",
            "zgc-keyu-dev",
            Resource::Cpu,
            UsageKind::Consumed,
            Tier::Bronze,
        )
        .expect("valid");
    }

    #[rstest]
    #[case::empty("2026-11-01T00:00:00Z", "2026-11-01T00:00:00Z")]
    #[case::backwards("2026-11-01T01:00:00Z", "2026-11-01T00:00:00Z")]
    #[case::sub_second_start("2026-11-01T00:00:00.001Z", "2026-11-01T01:00:00Z")]
    #[case::sub_second_end("2026-11-01T00:00:00Z", "2026-11-01T00:59:59.999Z")]
    fn intervals_are_non_empty_whole_seconds(#[case] start: &str, #[case] end: &str) {
        assert!(UsageInterval::new(cpu_meter(), ts(start), ts(end), 1).is_err());
    }

    #[rstest]
    #[case::inside_one_hour("Asia/Shanghai", "2026-11-05T10:10:00Z", "2026-11-05T10:50:00Z", 1)]
    #[case::three_partial_hours("UTC", "2026-11-05T10:10:00Z", "2026-11-05T12:50:00Z", 3)]
    #[case::crossing_month_end_midnight_shanghai(
        "Asia/Shanghai",
        "2026-11-30T15:30:00Z",
        "2026-11-30T16:30:00Z",
        2
    )]
    #[case::a_whole_shanghai_month(
        "Asia/Shanghai",
        "2026-10-31T16:00:00Z",
        "2026-11-30T16:00:00Z",
        720
    )]
    #[case::kolkata_month_start_is_a_half_hour_boundary(
        "Asia/Kolkata",
        "2026-10-31T18:00:00Z",
        "2026-10-31T19:00:00Z",
        2
    )]
    #[case::the_repeated_new_york_hour_is_two_hours(
        "America/New_York",
        "2026-11-01T05:00:00Z",
        "2026-11-01T07:00:00Z",
        2
    )]
    fn hourly_pieces_are_contiguous_and_conserve_unit_seconds(
        #[case] zone: &str,
        #[case] start: &str,
        #[case] end: &str,
        #[case] pieces: usize,
    ) {
        let calendar = Calendar::new(zone).expect("zone");
        let whole = interval(start, end, 1_500);
        let parts = whole.split_hourly(&calendar).expect("split");
        assert_eq!(parts.len(), pieces);
        assert_eq!(parts.first().map(UsageInterval::start), Some(whole.start()));
        assert_eq!(parts.last().map(UsageInterval::end), Some(whole.end()));
        for pair in parts.windows(2) {
            assert_eq!(pair[0].end(), pair[1].start());
        }
        for part in &parts {
            assert!(part.seconds() <= 3600, "{part:?}");
            assert_eq!(
                calendar.month_of(part.start()),
                calendar.month_of(part.end() - jiff::SignedDuration::from_secs(1))
            );
        }
        let total: u128 = parts.iter().map(UsageInterval::unit_seconds).sum();
        assert_eq!(total, whole.unit_seconds());
    }

    #[rstest]
    #[case::shanghai_splits_at_shanghai_midnight("Asia/Shanghai", "2026-11-30T16:00:00Z")]
    #[case::utc_splits_at_utc_midnight("UTC", "2026-12-01T00:00:00Z")]
    fn an_interval_across_month_end_splits_at_the_local_midnight(
        #[case] zone: &str,
        #[case] boundary: &str,
    ) {
        let calendar = Calendar::new(zone).expect("zone");
        let whole = interval("2026-11-30T12:00:00Z", "2026-12-01T12:00:00Z", 2_000);
        let parts = whole.split_monthly(&calendar).expect("split");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].end(), ts(boundary));
        assert_eq!(
            parts[0].unit_seconds() + parts[1].unit_seconds(),
            whole.unit_seconds()
        );
        assert_ne!(parts[0].key(), parts[1].key());
    }

    #[test]
    fn splitting_only_happens_strictly_inside() {
        let whole = interval("2026-11-01T00:00:00Z", "2026-11-01T01:00:00Z", 7);
        assert!(whole.split_at(whole.start()).is_none());
        assert!(whole.split_at(whole.end()).is_none());
        let (head, tail) = whole.split_at(ts("2026-11-01T00:00:01Z")).expect("inside");
        assert_eq!((head.unit_seconds(), tail.unit_seconds()), (7, 7 * 3599));
    }

    #[test]
    fn unit_seconds_within_a_range_count_only_the_overlap() {
        let whole = interval("2026-11-01T00:00:00Z", "2026-11-01T02:00:00Z", 3);
        let second_hour =
            TimeRange::new(ts("2026-11-01T01:00:00Z"), ts("2026-11-01T05:00:00Z")).expect("range");
        let before =
            TimeRange::new(ts("2026-10-01T00:00:00Z"), ts("2026-11-01T00:00:00Z")).expect("range");
        assert_eq!(whole.unit_seconds_within(&second_hour), 3 * 3600);
        assert_eq!(whole.unit_seconds_within(&before), 0);
    }

    #[test]
    fn intervals_round_trip_through_json_and_keep_their_key() {
        let original = interval("2026-11-01T00:00:00Z", "2026-11-01T01:00:00Z", 250);
        let json = serde_json::to_string(&original).expect("serialize");
        assert!(json.contains(r#""resource":"cpu""#), "{json}");
        let back: UsageInterval = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, original);
        let forged = json.replace("/1793494800/wjw-prod", "/1793498400/wjw-prod");
        assert_ne!(forged, json);
        assert!(
            serde_json::from_str::<UsageInterval>(&forged).is_err(),
            "{forged}"
        );
    }

    #[test]
    fn an_interval_keeps_its_environment_uid_through_splits_and_json() {
        let calendar = Calendar::default();
        let old = interval("2026-11-01T00:30:00Z", "2026-11-01T02:00:00Z", 1_000)
            .with_environment_uid("uid-old");
        let pieces = old.split_hourly(&calendar).expect("split");
        assert_eq!(pieces.len(), 2);
        assert!(
            pieces
                .iter()
                .all(|p| p.environment_uid() == Some("uid-old"))
        );
        let json = serde_json::to_value(&old).expect("json");
        let back: UsageInterval = serde_json::from_value(json).expect("back");
        assert_eq!(back, old);
        let legacy = interval("2026-11-01T00:30:00Z", "2026-11-01T02:00:00Z", 1_000);
        assert_eq!(legacy.environment_uid(), None);
        assert_eq!(legacy.key(), old.key());
    }
}
