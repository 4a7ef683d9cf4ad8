//! Civil time for billing: the platform time zone, calendar months, hour boundaries and
//! half-open time ranges.
//!
//! Bills follow the calendar of the people who pay them, so months and rate-card dates are read
//! in a configurable IANA time zone (default [`DEFAULT_TIME_ZONE`], Asia/Shanghai): the month
//! `2026-11` is `[2026-11-01T00:00+08:00, 2026-12-01T00:00+08:00)`. The zone comes from the IANA
//! database *bundled in the binary*, never from the host, so the same ledger gives the same
//! statement on every machine.
//!
//! All instants are whole seconds (see the crate documentation); every range is half-open,
//! `[start, end)`, so adjacent ranges share no second.

use std::{fmt, str::FromStr};

use jiff::{
    Timestamp,
    civil::{Date, DateTime, Time},
    tz::{self, TimeZone, TimeZoneDatabase},
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The time zone used when none is configured: China Standard Time.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";

const SECONDS_PER_HOUR: i64 = 3600;

/// The platform's billing calendar: an IANA time zone and the civil arithmetic done in it.
#[derive(Clone, Debug)]
pub struct Calendar {
    name: String,
    zone: TimeZone,
}

impl Calendar {
    /// The calendar of the IANA zone `name` (e.g. `Asia/Shanghai`, `UTC`), from the bundled
    /// time zone database.
    pub fn new(name: &str) -> Result<Self> {
        let zone =
            TimeZoneDatabase::bundled()
                .get(name)
                .map_err(|source| Error::UnknownTimeZone {
                    name: name.to_owned(),
                    source,
                })?;
        let name = zone.iana_name().unwrap_or(name).to_owned();
        Ok(Self { name, zone })
    }

    /// The calendar of Coordinated Universal Time.
    pub fn utc() -> Self {
        Self {
            name: "UTC".to_owned(),
            zone: TimeZone::UTC,
        }
    }

    /// The IANA name of the zone.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The zone itself.
    pub fn time_zone(&self) -> &TimeZone {
        &self.zone
    }

    /// The civil date of `at` in this zone.
    pub fn date_of(&self, at: Timestamp) -> Date {
        self.zone.to_datetime(at).date()
    }

    /// The month `at` falls in, in this zone.
    pub fn month_of(&self, at: Timestamp) -> Month {
        let date = self.date_of(at);
        Month {
            year: date.year(),
            month: date.month(),
        }
    }

    /// The first instant of `date` in this zone: local midnight, or the end of the gap when a
    /// clock change skips midnight.
    pub fn start_of_day(&self, date: Date) -> Result<Timestamp> {
        self.to_instant(date.to_datetime(Time::midnight()), "the start of a day")
    }

    /// The instants a month covers in this zone, `[first day 00:00, first day of next month
    /// 00:00)`.
    pub fn month_range(&self, month: Month) -> Result<TimeRange> {
        let start = self.start_of_day(month.first_day()?)?;
        let end = self.start_of_day(month.next()?.first_day()?)?;
        TimeRange::new(start, end)
    }

    /// The first local hour boundary (wall clock at `HH:00:00`) strictly after `at`.
    ///
    /// In a zone whose offsets are whole hours (Asia/Shanghai, UTC, most of the world) these are
    /// exactly the UTC hour boundaries; across a daylight-saving change every hour still lasts
    /// 3600 seconds and the repeated or skipped wall-clock hour is handled by instants, not by
    /// wall-clock readings.
    pub fn next_hour_boundary(&self, at: Timestamp) -> Result<Timestamp> {
        let local = self.zone.to_datetime(at);
        let hour_start = local
            .with()
            .minute(0)
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .map_err(|source| Error::Time {
                what: "the start of an hour",
                source,
            })?;
        let mut boundary = self.to_instant(hour_start, "the start of an hour")?;
        // Truncation on the wall clock can land an hour early inside a repeated (fall-back)
        // hour; step forward until the boundary is really after `at`.
        while boundary <= at {
            boundary = add_seconds(boundary, SECONDS_PER_HOUR)?;
        }
        Ok(boundary)
    }

    fn to_instant(&self, local: DateTime, what: &'static str) -> Result<Timestamp> {
        self.zone
            .to_ambiguous_timestamp(local)
            .compatible()
            .map_err(|source| Error::Time { what, source })
    }
}

impl Default for Calendar {
    /// The Asia/Shanghai calendar. Should the bundled database ever lack it, the fixed offset
    /// UTC+08:00 is used, which is the same thing: China has had no daylight saving since 1991.
    fn default() -> Self {
        Self::new(DEFAULT_TIME_ZONE).unwrap_or_else(|_| Self {
            name: DEFAULT_TIME_ZONE.to_owned(),
            zone: TimeZone::fixed(tz::offset(8)),
        })
    }
}

/// A calendar month, written `YYYY-MM`. Which instants it covers depends on the [`Calendar`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Month {
    year: i16,
    month: i8,
}

impl Month {
    /// The month `month` (1–12) of `year` (0–9999).
    pub fn new(year: i16, month: i8) -> Result<Self> {
        if !(0..=9999).contains(&year) || !(1..=12).contains(&month) {
            return Err(Error::InvalidMonth {
                value: format!("{year:04}-{month:02}"),
            });
        }
        Ok(Self { year, month })
    }

    /// The year.
    pub fn year(self) -> i16 {
        self.year
    }

    /// The month of the year, 1–12.
    pub fn month(self) -> i8 {
        self.month
    }

    /// The first day of the month.
    pub fn first_day(self) -> Result<Date> {
        Date::new(self.year, self.month, 1).map_err(|source| Error::Time {
            what: "the first day of a month",
            source,
        })
    }

    /// The month after this one.
    pub fn next(self) -> Result<Self> {
        if self.month == 12 {
            Self::new(self.year + 1, 1)
        } else {
            Self::new(self.year, self.month + 1)
        }
    }

    /// The month before this one.
    pub fn previous(self) -> Result<Self> {
        if self.month == 1 {
            Self::new(self.year - 1, 12)
        } else {
            Self::new(self.year, self.month - 1)
        }
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Month {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let invalid = || Error::InvalidMonth {
            value: text.to_owned(),
        };
        let (year, month) = text.split_once('-').ok_or_else(invalid)?;
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(year, 4) || !digits(month, 2) {
            return Err(invalid());
        }
        let year = year.parse().map_err(|_| invalid())?;
        let month = month.parse().map_err(|_| invalid())?;
        Self::new(year, month).map_err(|_| invalid())
    }
}

impl TryFrom<String> for Month {
    type Error = Error;

    fn try_from(text: String) -> Result<Self> {
        text.parse()
    }
}

impl From<Month> for String {
    fn from(month: Month) -> Self {
        month.to_string()
    }
}

/// A half-open, non-empty range of whole-second instants, `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "RawRange")]
pub struct TimeRange {
    start: Timestamp,
    end: Timestamp,
}

#[derive(Deserialize)]
struct RawRange {
    start: Timestamp,
    end: Timestamp,
}

impl TryFrom<RawRange> for TimeRange {
    type Error = Error;

    fn try_from(raw: RawRange) -> Result<Self> {
        Self::new(raw.start, raw.end)
    }
}

impl TimeRange {
    /// `[start, end)`; both must be whole seconds and `start < end`.
    pub fn new(start: Timestamp, end: Timestamp) -> Result<Self> {
        whole_second(start)?;
        whole_second(end)?;
        if start >= end {
            return Err(Error::EmptyInterval { start, end });
        }
        Ok(Self { start, end })
    }

    /// The first instant in the range.
    pub fn start(&self) -> Timestamp {
        self.start
    }

    /// The first instant after the range.
    pub fn end(&self) -> Timestamp {
        self.end
    }

    /// How many seconds the range lasts (at least 1).
    pub fn seconds(&self) -> u64 {
        seconds_between(self.start, self.end)
    }

    /// Whether `at` is inside the range.
    pub fn contains(&self, at: Timestamp) -> bool {
        self.start <= at && at < self.end
    }

    /// The instants in both ranges, if any.
    pub fn intersection(&self, other: &TimeRange) -> Option<TimeRange> {
        let start = self.start.max(other.start);
        let end = self.end.min(other.end);
        (start < end).then_some(TimeRange { start, end })
    }
}

impl fmt::Display for TimeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start, self.end)
    }
}

/// Refuses instants with a fractional second: the ledger counts whole seconds.
pub(crate) fn whole_second(at: Timestamp) -> Result<Timestamp> {
    if at.subsec_nanosecond() == 0 {
        Ok(at)
    } else {
        Err(Error::SubSecondTimestamp { at })
    }
}

/// Whole seconds from `start` to `end`; zero if `end` is not after `start`.
pub(crate) fn seconds_between(start: Timestamp, end: Timestamp) -> u64 {
    // Both are within jiff's range (±10^4 years), so the difference fits i64 and is exact.
    u64::try_from(end.as_second() - start.as_second()).unwrap_or(0)
}

fn add_seconds(at: Timestamp, seconds: i64) -> Result<Timestamp> {
    Timestamp::from_second(at.as_second() + seconds).map_err(|source| Error::Time {
        what: "the next hour boundary",
        source,
    })
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("test timestamp")
    }

    #[rstest]
    #[case::shanghai_november(
        "Asia/Shanghai",
        "2026-11",
        "2026-10-31T16:00:00Z",
        "2026-11-30T16:00:00Z"
    )]
    #[case::shanghai_december_crosses_the_year(
        "Asia/Shanghai",
        "2026-12",
        "2026-11-30T16:00:00Z",
        "2026-12-31T16:00:00Z"
    )]
    #[case::shanghai_leap_february(
        "Asia/Shanghai",
        "2028-02",
        "2028-01-31T16:00:00Z",
        "2028-02-29T16:00:00Z"
    )]
    #[case::utc_november("UTC", "2026-11", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")]
    #[case::utc_february("UTC", "2027-02", "2027-02-01T00:00:00Z", "2027-03-01T00:00:00Z")]
    #[case::new_york_november_ends_an_hour_later_after_dst(
        "America/New_York",
        "2026-11",
        "2026-11-01T04:00:00Z",
        "2026-12-01T05:00:00Z"
    )]
    fn a_month_runs_from_local_midnight_on_the_first_to_the_next_first(
        #[case] zone: &str,
        #[case] month: &str,
        #[case] start: &str,
        #[case] end: &str,
    ) {
        let calendar = Calendar::new(zone).expect("zone");
        let range = calendar
            .month_range(month.parse().expect("month"))
            .expect("range");
        assert_eq!((range.start(), range.end()), (ts(start), ts(end)));
    }

    #[rstest]
    #[case::shanghai_evening_of_the_last_day_is_still_october(
        "Asia/Shanghai",
        "2026-10-31T15:59:59Z",
        "2026-10"
    )]
    #[case::shanghai_midnight_is_november("Asia/Shanghai", "2026-10-31T16:00:00Z", "2026-11")]
    #[case::utc_same_instant_is_october("UTC", "2026-10-31T16:00:00Z", "2026-10")]
    #[case::utc_midnight_is_november("UTC", "2026-11-01T00:00:00Z", "2026-11")]
    fn an_instant_belongs_to_the_month_of_its_local_date(
        #[case] zone: &str,
        #[case] at: &str,
        #[case] month: &str,
    ) {
        let calendar = Calendar::new(zone).expect("zone");
        assert_eq!(calendar.month_of(ts(at)).to_string(), month);
    }

    #[rstest]
    #[case::mid_hour("UTC", "2026-11-05T10:17:03Z", "2026-11-05T11:00:00Z")]
    #[case::on_a_boundary_moves_to_the_next("UTC", "2026-11-05T10:00:00Z", "2026-11-05T11:00:00Z")]
    #[case::shanghai_hours_are_utc_hours(
        "Asia/Shanghai",
        "2026-11-30T15:59:59Z",
        "2026-11-30T16:00:00Z"
    )]
    #[case::kolkata_hours_start_at_half_past_utc(
        "Asia/Kolkata",
        "2026-11-05T10:17:03Z",
        "2026-11-05T10:30:00Z"
    )]
    #[case::new_york_first_repeated_hour(
        "America/New_York",
        "2026-11-01T05:30:00Z",
        "2026-11-01T06:00:00Z"
    )]
    #[case::new_york_second_repeated_hour(
        "America/New_York",
        "2026-11-01T06:30:00Z",
        "2026-11-01T07:00:00Z"
    )]
    fn the_next_hour_boundary_is_the_next_local_full_hour(
        #[case] zone: &str,
        #[case] at: &str,
        #[case] expected: &str,
    ) {
        let calendar = Calendar::new(zone).expect("zone");
        assert_eq!(
            calendar.next_hour_boundary(ts(at)).expect("boundary"),
            ts(expected)
        );
    }

    #[rstest]
    #[case("2026-11", true)]
    #[case("0001-01", true)]
    #[case("2026-13", false)]
    #[case("2026-00", false)]
    #[case("2026-1", false)]
    #[case("26-11", false)]
    #[case("2026/11", false)]
    #[case("+026-11", false)]
    fn months_are_written_yyyy_mm(#[case] text: &str, #[case] ok: bool) {
        let parsed = text.parse::<Month>();
        assert_eq!(parsed.is_ok(), ok, "{text}");
        if let Ok(month) = parsed {
            assert_eq!(month.to_string(), text);
        }
    }

    #[test]
    fn the_default_calendar_is_shanghai_from_the_bundled_database() {
        let calendar = Calendar::default();
        assert_eq!(calendar.name(), "Asia/Shanghai");
        let start = calendar
            .start_of_day(Date::constant(2026, 11, 1))
            .expect("day");
        assert_eq!(start, ts("2026-10-31T16:00:00Z"));
    }

    #[test]
    fn unknown_zones_are_refused_with_their_name() {
        let error = Calendar::new("Mars/Olympus_Mons").expect_err("no such zone");
        assert!(error.to_string().contains("Mars/Olympus_Mons"));
        assert_eq!(error.metric_label(), "unknown_time_zone");
    }

    #[test]
    fn ranges_refuse_sub_second_and_empty_bounds() {
        let start = ts("2026-11-01T00:00:00Z");
        assert!(TimeRange::new(start, start).is_err());
        assert!(TimeRange::new(start, ts("2026-11-01T00:00:00.5Z")).is_err());
        let range = TimeRange::new(start, ts("2026-11-01T01:00:00Z")).expect("range");
        assert_eq!(range.seconds(), 3600);
    }

    #[test]
    fn a_range_deserialized_backwards_is_refused() {
        let json = r#"{"start":"2026-11-02T00:00:00Z","end":"2026-11-01T00:00:00Z"}"#;
        assert!(serde_json::from_str::<TimeRange>(json).is_err());
    }
}
