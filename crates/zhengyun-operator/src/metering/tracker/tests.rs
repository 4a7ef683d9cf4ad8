use rstest::rstest;
use zhengyun_model::quantity::Resource;

use super::*;

/// 2026-11-05T10:00:00Z, a whole hour.
const T0: i64 = 1_793_872_800;

fn amounts(cpu: u64, memory: u64) -> Amounts {
    let mut a = Amounts::ZERO;
    a.set(Resource::Cpu, cpu);
    a.set(Resource::Memory, memory);
    a
}

fn pod(environment: &str, cpu: u64, since: Option<i64>) -> Option<Contribution> {
    Some(Contribution {
        environment: environment.to_owned(),
        amounts: amounts(cpu, 0),
        since,
        until: None,
    })
}

fn tracker() -> Tracker {
    let mut t = Tracker::new(T0);
    t.set_environment("wjw-prod", "wjw", Tier::Gold, None, T0);
    t.set_environment("wjw-dev", "wjw", Tier::Bronze, None, T0);
    t
}

/// (environment, resource, kind, tier, start − T0, end − T0, amount) of each interval.
fn summary(closed: &Closed) -> Vec<(String, Resource, UsageKind, Tier, i64, i64, u64)> {
    let mut rows: Vec<_> = closed
        .intervals
        .iter()
        .map(|i| {
            (
                i.environment().to_owned(),
                i.resource(),
                i.kind(),
                i.tier(),
                i.start().as_second() - T0,
                i.end().as_second() - T0,
                i.amount(),
            )
        })
        .collect();
    rows.sort();
    rows
}

fn cpu_row(
    env: &str,
    tier: Tier,
    start: i64,
    end: i64,
    amount: u64,
) -> (String, Resource, UsageKind, Tier, i64, i64, u64) {
    (
        env.to_owned(),
        Resource::Cpu,
        UsageKind::Consumed,
        tier,
        start,
        end,
        amount,
    )
}

#[test]
fn a_pod_counts_from_its_scheduling_second_to_the_end_of_the_window() {
    let mut t = tracker();
    t.observe(
        Source::Pod("a".into()),
        pod("wjw-prod", 500, Some(T0 + 7)),
        T0 + 9,
    );
    let closed = t.close(T0 + 60, &Calendar::utc());
    assert_eq!(
        summary(&closed),
        [cpu_row("wjw-prod", Tier::Gold, 7, 60, 500)]
    );
    assert!(closed.problems.is_empty());
}

#[rstest]
#[case::resized_mid_window(vec![(0, 500), (20, 800)], vec![(0, 20, 500), (20, 60, 800)])]
#[case::unchanged_reports_change_nothing(vec![(0, 500), (20, 500), (40, 500)], vec![(0, 60, 500)])]
#[case::gone_mid_window(vec![(0, 500), (30, 0)], vec![(0, 30, 500)])]
#[case::back_again(vec![(0, 500), (10, 0), (25, 500)], vec![(0, 10, 500), (25, 60, 500)])]
fn a_change_is_counted_from_the_second_it_is_seen(
    #[case] seen: Vec<(i64, u64)>,
    #[case] expected: Vec<(i64, i64, u64)>,
) {
    let mut t = tracker();
    for (at, cpu) in seen {
        let contribution = (cpu > 0).then(|| pod("wjw-prod", cpu, None)).flatten();
        t.observe(Source::Pod("a".into()), contribution, T0 + at);
    }
    let expected: Vec<_> = expected
        .into_iter()
        .map(|(s, e, a)| cpu_row("wjw-prod", Tier::Gold, s, e, a))
        .collect();
    assert_eq!(summary(&t.close(T0 + 60, &Calendar::utc())), expected);
}

#[test]
fn overlapping_pods_add_up_into_one_series_per_environment() {
    let mut t = tracker();
    t.observe(Source::Pod("a".into()), pod("wjw-prod", 500, Some(T0)), T0);
    t.observe(
        Source::Pod("b".into()),
        pod("wjw-prod", 250, Some(T0 + 10)),
        T0 + 10,
    );
    t.observe(Source::Pod("a".into()), None, T0 + 40);
    t.observe(
        Source::Pod("c".into()),
        pod("wjw-dev", 100, Some(T0 + 5)),
        T0 + 5,
    );
    assert_eq!(
        summary(&t.close(T0 + 60, &Calendar::utc())),
        [
            cpu_row("wjw-dev", Tier::Bronze, 5, 60, 100),
            cpu_row("wjw-prod", Tier::Gold, 0, 10, 500),
            cpu_row("wjw-prod", Tier::Gold, 10, 40, 750),
            cpu_row("wjw-prod", Tier::Gold, 40, 60, 250),
        ]
    );
}

#[test]
fn a_tier_change_cuts_the_series_where_it_was_seen() {
    let mut t = tracker();
    t.observe(Source::Pod("a".into()), pod("wjw-prod", 500, Some(T0)), T0);
    t.set_environment("wjw-prod", "wjw", Tier::Silver, None, T0 + 30);
    assert_eq!(
        summary(&t.close(T0 + 60, &Calendar::utc())),
        [
            cpu_row("wjw-prod", Tier::Gold, 0, 30, 500),
            cpu_row("wjw-prod", Tier::Silver, 30, 60, 500),
        ]
    );
}

#[test]
fn nothing_starts_before_the_frontier_or_after_it_was_seen() {
    let mut t = tracker();
    // Scheduled an hour before the last close: counted from the frontier.
    t.observe(
        Source::Pod("old".into()),
        pod("wjw-prod", 100, Some(T0 - 3_600)),
        T0 + 2,
    );
    // A start in the future (clock skew): counted from when it was seen.
    t.observe(
        Source::Pod("skew".into()),
        pod("wjw-dev", 100, Some(T0 + 500)),
        T0 + 20,
    );
    assert_eq!(
        summary(&t.close(T0 + 60, &Calendar::utc())),
        [
            cpu_row("wjw-dev", Tier::Bronze, 20, 60, 100),
            cpu_row("wjw-prod", Tier::Gold, 0, 60, 100),
        ]
    );
}

#[test]
fn a_relist_ends_what_it_no_longer_lists_and_keeps_the_rest() {
    let mut t = tracker();
    t.observe(Source::Pod("a".into()), pod("wjw-prod", 100, Some(T0)), T0);
    t.observe(Source::Pod("b".into()), pod("wjw-prod", 200, Some(T0)), T0);
    t.observe(
        Source::Claim("c".into()),
        Some(Contribution {
            environment: "wjw-prod".into(),
            amounts: {
                let mut a = Amounts::ZERO;
                a.set(Resource::Storage, 1 << 30);
                a
            },
            since: Some(T0),
            until: None,
        }),
        T0,
    );
    let seen = HashSet::from([Source::Pod("b".into())]);
    t.relisted(SourceClass::Pods, &seen, T0 + 30);
    let rows = summary(&t.close(T0 + 60, &Calendar::utc()));
    assert!(
        rows.contains(&cpu_row("wjw-prod", Tier::Gold, 0, 30, 300)),
        "{rows:?}"
    );
    assert!(
        rows.contains(&cpu_row("wjw-prod", Tier::Gold, 30, 60, 200)),
        "{rows:?}"
    );
    let storage = rows
        .iter()
        .find(|r| r.1 == Resource::Storage)
        .expect("claim kept");
    assert_eq!((storage.4, storage.5), (0, 60));
}

#[test]
fn pods_outside_environments_are_not_metered() {
    let mut t = tracker();
    t.observe(
        Source::Pod("k".into()),
        pod("kube-system", 100, Some(T0)),
        T0,
    );
    let closed = t.close(T0 + 60, &Calendar::utc());
    assert!(closed.intervals.is_empty() && closed.problems.is_empty());
}

#[test]
fn a_window_across_an_hour_is_split_at_the_hour() {
    let mut t = Tracker::new(T0 - 30);
    t.set_environment("wjw-prod", "wjw", Tier::Gold, None, T0 - 30);
    t.observe(
        Source::Quota("wjw-prod".into()),
        Some(Contribution {
            environment: "wjw-prod".into(),
            amounts: amounts(4_000, 8 << 30),
            since: Some(T0 - 100),
            until: None,
        }),
        T0 - 30,
    );
    let rows = summary(&t.close(T0 + 30, &Calendar::default()));
    let cpu: Vec<_> = rows
        .iter()
        .filter(|r| r.1 == Resource::Cpu)
        .map(|r| (r.2, r.4, r.5, r.6))
        .collect();
    assert_eq!(
        cpu,
        [
            (UsageKind::Reserved, -30, 0, 4_000),
            (UsageKind::Reserved, 0, 30, 4_000)
        ]
    );
}

/// Σ unit-seconds of `rows` per environment and resource.
fn unit_seconds(intervals: &[UsageInterval]) -> BTreeMap<(String, Resource, UsageKind), u128> {
    let mut sums = BTreeMap::new();
    for i in intervals {
        *sums
            .entry((i.environment().to_owned(), i.resource(), i.kind()))
            .or_default() += i.unit_seconds();
    }
    sums
}

#[test]
fn consecutive_windows_tile_time_and_count_each_second_once() {
    let mut t = tracker();
    let calendar = Calendar::utc();
    let mut written = Vec::new();
    // Pods come and go across five windows of 10 seconds, some between closes.
    let script: [(i64, &str, u64); 8] = [
        (0, "a", 300),
        (4, "b", 200),
        (13, "a", 0),
        (17, "c", 700),
        (25, "b", 250),
        (33, "c", 0),
        (38, "d", 50),
        (44, "b", 0),
    ];
    let mut script = script.into_iter().peekable();
    for window_end in [10, 20, 30, 40, 50] {
        while let Some((at, name, cpu)) = script.next_if(|(at, _, _)| *at < window_end) {
            let contribution = (cpu > 0)
                .then(|| pod("wjw-prod", cpu, Some(T0 + at)))
                .flatten();
            t.observe(Source::Pod(name.into()), contribution, T0 + at);
        }
        let closed = t.close(T0 + window_end, &calendar);
        assert!(closed.problems.is_empty(), "{:?}", closed.problems);
        written.extend(closed.intervals);
        t.advance(T0 + window_end);
    }
    // An independent count: pod by pod, second by second.
    let expected: u128 = 300 * 13 + 200 * 21 + 250 * 19 + 700 * 16 + 50 * 12;
    let found = unit_seconds(&written);
    assert_eq!(
        found.get(&("wjw-prod".to_owned(), Resource::Cpu, UsageKind::Consumed)),
        Some(&expected)
    );
    // No two intervals of one meter overlap.
    let mut spans: Vec<(i64, i64)> = written
        .iter()
        .map(|i| (i.start().as_second(), i.end().as_second()))
        .collect();
    spans.sort();
    assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "{spans:?}");
    assert!(t.ended.is_empty() && t.last_end.is_empty());
}

#[test]
fn a_deleted_environment_is_closed_and_then_forgotten() {
    let mut t = tracker();
    t.observe(
        Source::Quota("wjw-dev".into()),
        Some(Contribution {
            environment: "wjw-dev".into(),
            amounts: amounts(1_000, 0),
            since: Some(T0),
            until: None,
        }),
        T0,
    );
    t.delete_environment("wjw-dev", T0 + 15);
    let rows = summary(&t.close(T0 + 20, &Calendar::utc()));
    assert_eq!(
        rows,
        [(
            "wjw-dev".to_owned(),
            Resource::Cpu,
            UsageKind::Reserved,
            Tier::Bronze,
            0,
            15,
            1_000
        )]
    );
    t.advance(T0 + 20);
    assert!(!t.environments.contains_key("wjw-dev"));
    assert!(t.close(T0 + 40, &Calendar::utc()).intervals.is_empty());
}

#[test]
fn current_amounts_add_up_open_sources_per_environment_and_kind() {
    let mut t = tracker();
    t.observe(Source::Pod("a".into()), pod("wjw-prod", 100, None), T0);
    t.observe(Source::Pod("b".into()), pod("wjw-prod", 200, None), T0);
    let now = t.current();
    assert_eq!(
        now.get(&("wjw-prod".to_owned(), UsageKind::Consumed))
            .map(|a| a.get(Resource::Cpu)),
        Some(300)
    );
}

#[test]
fn an_outage_is_counted_from_the_checkpoint_at_the_state_found_after_it() {
    // The ledger was written up to T0; the operator comes back at T0 + 50 and lists what runs.
    let mut t = Tracker::new(T0);
    let back = T0 + 50;
    t.set_environment("wjw-prod", "wjw", Tier::Gold, None, back);
    // Running since before the outage: counted from the checkpoint.
    t.observe(
        Source::Pod("kept".into()),
        pod("wjw-prod", 300, Some(T0 - 600)),
        back,
    );
    // Started during the outage: counted from its own start.
    t.observe(
        Source::Pod("new".into()),
        pod("wjw-prod", 200, Some(T0 + 20)),
        back,
    );
    // A pod that ended during the outage is never listed, so it is not counted for it.
    let seen = HashSet::from([Source::Pod("kept".into()), Source::Pod("new".into())]);
    t.relisted(SourceClass::Pods, &seen, back);
    assert_eq!(
        summary(&t.close(T0 + 60, &Calendar::utc())),
        [
            cpu_row("wjw-prod", Tier::Gold, 0, 20, 300),
            cpu_row("wjw-prod", Tier::Gold, 20, 60, 500),
        ]
    );
}

fn closed_span(cpu: u64, since: i64, until: i64) -> Option<Contribution> {
    Some(Contribution {
        environment: "wjw-prod".to_owned(),
        amounts: amounts(cpu, 0),
        since: Some(since),
        until: Some(until),
    })
}

#[test]
fn a_pod_that_ran_and_finished_unwatched_is_counted_over_its_recorded_span() {
    let mut t = tracker();
    let job = Source::Pod("job".into());
    t.observe(job.clone(), closed_span(8_000, T0 + 10, T0 + 40), T0 + 100);
    // Seen again (a relist, a label change): nothing more.
    t.observe(job, closed_span(8_000, T0 + 10, T0 + 40), T0 + 200);
    let closed = t.close(T0 + 3_600, &Calendar::utc());
    assert_eq!(
        summary(&closed),
        [cpu_row("wjw-prod", Tier::Gold, 10, 40, 8_000)]
    );
}

#[test]
fn a_pod_seen_running_then_finished_ends_at_its_recorded_finish() {
    let mut t = tracker();
    let job = Source::Pod("job".into());
    t.observe(job.clone(), pod("wjw-prod", 8_000, Some(T0 + 10)), T0 + 11);
    t.observe(job, closed_span(8_000, T0 + 10, T0 + 40), T0 + 90);
    let closed = t.close(T0 + 3_600, &Calendar::utc());
    assert_eq!(
        summary(&closed),
        [cpu_row("wjw-prod", Tier::Gold, 10, 40, 8_000)]
    );
}

#[test]
fn a_pod_stuck_terminating_stops_counting_when_its_grace_period_ends() {
    let mut t = tracker();
    let stuck = Source::Pod("stuck".into());
    t.observe(stuck.clone(), closed_span(4_000, T0, T0 + 40), T0 + 10);
    let closed = t.close(T0 + 3_600, &Calendar::utc());
    assert_eq!(
        summary(&closed),
        [cpu_row("wjw-prod", Tier::Gold, 0, 40, 4_000)]
    );
    t.advance(T0 + 3_600);
    // Still there the next hour, still past its grace period: nothing.
    t.observe(stuck, closed_span(4_000, T0, T0 + 40), T0 + 3_700);
    assert!(t.close(T0 + 7_200, &Calendar::utc()).intervals.is_empty());
}

#[test]
fn a_claim_seen_pending_starts_when_seen_bound_not_at_its_creation() {
    let mut t = tracker();
    let claim = Source::Claim("c".into());
    t.observe(claim.clone(), None, T0 + 5);
    t.observe(claim, pod("wjw-prod", 1_000, Some(T0)), T0 + 50);
    let closed = t.close(T0 + 60, &Calendar::utc());
    assert_eq!(
        summary(&closed),
        [cpu_row("wjw-prod", Tier::Gold, 50, 60, 1_000)]
    );
}

#[test]
fn an_environment_created_again_under_its_name_is_another_object_from_the_second_it_is_seen() {
    let mut t = Tracker::new(T0);
    t.set_environment("wjw-prod", "wjw", Tier::Gold, Some("uid-1"), T0);
    t.observe(Source::Pod("p".into()), pod("wjw-prod", 500, Some(T0)), T0);
    t.set_environment("wjw-prod", "wjw", Tier::Gold, Some("uid-2"), T0 + 30);
    let closed = t.close(T0 + 60, &Calendar::utc());
    let uids: Vec<(i64, i64, Option<&str>)> = closed
        .intervals
        .iter()
        .map(|i| {
            (
                i.start().as_second() - T0,
                i.end().as_second() - T0,
                i.environment_uid(),
            )
        })
        .collect();
    assert_eq!(uids, [(0, 30, Some("uid-1")), (30, 60, Some("uid-2"))]);
}

#[test]
fn a_pod_past_its_grace_period_and_gone_later_ends_at_its_grace_period() {
    let mut t = tracker();
    let stuck = Source::Pod("stuck".into());
    t.observe(stuck.clone(), closed_span(4_000, T0, T0 + 40), T0 + 10);
    t.gone(stuck, T0 + 900);
    let closed = t.close(T0 + 3_600, &Calendar::utc());
    assert_eq!(
        summary(&closed),
        [cpu_row("wjw-prod", Tier::Gold, 0, 40, 4_000)]
    );
}

#[test]
fn a_window_closed_in_batches_gives_the_same_intervals_a_few_environments_at_a_time() {
    let mut t = Tracker::new(T0);
    let names = [
        "wjw-dev",
        "wjw-test",
        "wjw-staging",
        "wjw-prod",
        "jtj-dev",
        "jtj-test",
        "jtj-prod",
    ];
    for (i, env) in (0..).zip(names) {
        let bureau = &env[..3];
        t.set_environment(env, bureau, Tier::Silver, None, T0);
        // Two hours: each resource's run splits in two intervals.
        t.observe(
            Source::Pod(format!("p{i}")),
            Some(Contribution {
                environment: env.to_owned(),
                amounts: amounts(100 + i, 1 << 20),
                since: Some(T0),
                until: None,
            }),
            T0,
        );
    }
    let utc = Calendar::utc();
    let whole = t.close(T0 + 7_200, &utc);
    assert_eq!(whole.intervals.len(), 7 * 2 * 2, "{:?}", whole.problems);

    let mut closing = t.closing(T0 + 7_200, &utc, 6);
    let batches: Vec<Vec<UsageInterval>> = closing.by_ref().collect();
    // Whole environments of four intervals each, until a batch holds at least six.
    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    assert_eq!(sizes, [8, 8, 8, 4]);
    assert!(closing.problems.is_empty());
    let batched = Closed {
        intervals: batches.into_iter().flatten().collect(),
        problems: Vec::new(),
    };
    assert_eq!(summary(&batched), summary(&whole));
}

#[test]
fn an_environment_with_nothing_to_close_yields_no_batch() {
    let t = tracker();
    assert_eq!(t.closing(T0 + 60, &Calendar::utc(), 10).count(), 0);
    assert_eq!(t.closing(T0, &Calendar::utc(), 10).count(), 0);
}
