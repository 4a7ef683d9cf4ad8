//! The date-sensitive rules of billing with the clock stopped at the instants where they are
//! easiest to get wrong, in Asia/Shanghai: the last second of a month (here also of a year), the
//! first second of the next, and noon of a leap day. Nothing here reads the system clock.

use jiff::{SignedDuration, Timestamp};
use rstest::rstest;
use zhengyun_metering::{
    Calendar, Clock, Meter, Month, NotClosable, UsageInterval, UsageKind, closable,
};
use zhengyun_model::{names::Tier, quantity::Resource};

const LAST_SECOND: &str = "2026-12-31T23:59:59+08:00";
const FIRST_SECOND: &str = "2027-01-01T00:00:00+08:00";
const LEAP_DAY_NOON: &str = "2028-02-29T12:00:00+08:00";

fn at(text: &str) -> Timestamp {
    text.parse().expect("an instant")
}

fn month(text: &str) -> Month {
    text.parse().expect("a month")
}

#[rstest]
#[case::last_second(LAST_SECOND, "2026-12", "2026-11", 31, "2026-12-31")]
#[case::first_second(FIRST_SECOND, "2027-01", "2026-12", 31, "2027-01-01")]
#[case::leap_day(LEAP_DAY_NOON, "2028-02", "2028-01", 29, "2028-02-29")]
fn the_running_month_and_day_follow_the_clock_in_shanghai(
    #[case] now: &str,
    #[case] running: &str,
    #[case] before: &str,
    #[case] days: i64,
    #[case] today: &str,
) {
    let calendar = Calendar::default();
    let clock = Clock::fixed(at(now));
    let this = calendar.month_of(clock.now());
    assert_eq!(this, month(running));
    assert_eq!(this.previous().expect("previous"), month(before));
    assert_eq!(calendar.date_of(clock.now()).to_string(), today);
    let range = calendar.month_range(this).expect("range");
    assert_eq!(range.seconds(), days as u64 * 86_400);
    assert!(range.contains(clock.now()));
    // The day starts at local midnight, 16:00 UTC the day before.
    let midnight = calendar
        .start_of_day(calendar.date_of(clock.now()))
        .expect("midnight");
    assert_eq!(midnight.as_second().rem_euclid(86_400), 16 * 3_600);
}

/// (month, whether it can be closed at the instant with the ledger complete up to it).
#[rstest]
#[case::last_second_the_month_runs(LAST_SECOND, "2026-12", Err("running"))]
#[case::last_second_the_month_before_has_ended(LAST_SECOND, "2026-11", Ok(()))]
#[case::first_second_the_month_that_ended(FIRST_SECOND, "2026-12", Ok(()))]
#[case::first_second_the_month_that_began(FIRST_SECOND, "2027-01", Err("running"))]
#[case::leap_day_february_runs(LEAP_DAY_NOON, "2028-02", Err("running"))]
#[case::leap_day_january_has_ended(LEAP_DAY_NOON, "2028-01", Ok(()))]
fn a_month_closes_only_once_the_clock_has_left_it(
    #[case] now: &str,
    #[case] which: &str,
    #[case] expected: Result<(), &str>,
) {
    let calendar = Calendar::default();
    let month = month(which);
    let range = calendar.month_range(month).expect("range");
    let now = Clock::fixed(at(now)).now();
    let result = closable(month, &range, now, Some(now));
    match expected {
        Ok(()) => assert_eq!(result, Ok(())),
        Err(_) => assert!(
            matches!(result, Err(NotClosable::Running { ends, .. }) if ends == range.end()),
            "{result:?}"
        ),
    }
}

#[rstest]
#[case::last_second(LAST_SECOND)]
#[case::first_second(FIRST_SECOND)]
#[case::leap_day(LEAP_DAY_NOON)]
fn an_ended_month_waits_for_the_lateness_window(#[case] now: &str) {
    // The ledger closes a window `lateness` seconds after its end: just after the month ended,
    // the ledger is still behind and the month cannot close; once it is in, it can.
    let calendar = Calendar::default();
    let now = at(now);
    let ended = calendar.month_of(now).previous().expect("previous");
    let range = calendar.month_range(ended).expect("range");
    let behind = range.end() - SignedDuration::from_secs(1);
    assert!(matches!(
        closable(ended, &range, now, Some(behind)),
        Err(NotClosable::LedgerBehind { .. })
    ));
    assert_eq!(closable(ended, &range, now, Some(range.end())), Ok(()));
}

#[rstest]
#[case::last_second(LAST_SECOND)]
#[case::first_second(FIRST_SECOND)]
#[case::leap_day(LEAP_DAY_NOON)]
fn usage_around_the_instant_splits_at_hours_and_months_conserving_every_second(#[case] now: &str) {
    let calendar = Calendar::default();
    let now = at(now);
    let meter = Meter::new(
        "wjw",
        "wjw-prod",
        Resource::Cpu,
        UsageKind::Reserved,
        Tier::Gold,
    )
    .expect("meter");
    // Two hours either side of the instant, 4 cores.
    let two_hours = SignedDuration::from_hours(2);
    let interval =
        UsageInterval::new(meter, now - two_hours, now + two_hours, 4_000).expect("interval");
    let months = interval.split_monthly(&calendar).expect("months");
    let hours = interval.split_hourly(&calendar).expect("hours");
    let total: u128 = months.iter().map(UsageInterval::unit_seconds).sum();
    assert_eq!(total, 4_000 * 4 * 3_600);
    assert_eq!(
        hours.iter().map(UsageInterval::unit_seconds).sum::<u128>(),
        total
    );
    for piece in &months {
        let first = calendar.month_of(piece.start());
        let last = calendar.month_of(piece.end() - SignedDuration::from_secs(1));
        assert_eq!(first, last, "{piece:?} spans two months");
    }
    for piece in &hours {
        assert!(piece.seconds() <= 3_600);
        assert_eq!(
            (piece.end().as_second() - piece.start().as_second()) as u64,
            piece.seconds()
        );
    }
    // Near a month's end the interval is cut at midnight in Shanghai (16:00 UTC).
    let crosses = calendar.month_of(interval.start())
        != calendar.month_of(interval.end() - SignedDuration::from_secs(1));
    assert_eq!(months.len(), if crosses { 2 } else { 1 });
    if crosses {
        assert_eq!(months[0].end().as_second().rem_euclid(86_400), 16 * 3_600);
    }
}
