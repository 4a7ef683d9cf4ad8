//! Admission: which environments of one bureau get their quota. Pure, so the rule can be read
//! and tested apart from the cluster.
//!
//! The rule, applied on every reconciliation of a bureau:
//! 1. What is already admitted stays admitted (quota is never taken back from a running
//!    environment, even if the bureau's quota was lowered; the bureau then reports
//!    `OverAllocated`). Environments being deleted keep their share until their namespace is gone.
//! 2. Resizes of admitted environments are considered in creation order (name as tie-break): a
//!    resize that fits is granted; one that does not keeps the old quota and is reported.
//! 3. Waiting environments are considered in creation order (name as tie-break). Each one that
//!    fits the bureau's remaining quota is admitted; one that does not stays `QuotaExceeded`
//!    with what is missing, and a later, smaller one that fits is still admitted (first fit).
//!
//! Creation order is only as good as the set of requests admission can see. The API server
//! stamps `creationTimestamp` (to the second) when a create arrives, and the watch delivers the
//! object once it is stored: of two creates in flight together, the one stamped a second later
//! can be stored and seen first. So a new request joins admission only once its creation second
//! has closed and [`ARRIVAL_MARGIN`] has passed on the operator's clock ([`settled`]); by then
//! every request stamped in that second or before it has almost always arrived, and none of them
//! loses its turn to a later one.

use std::cmp::Ordering;
use std::time::Duration;

use zhengyun_model::quantity::{MAX_BASE_UNITS, ResourceAmounts, Shortfall};

/// One environment as admission sees it.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Environment name.
    pub name: String,
    /// Creation time in seconds since the epoch; the order of admission. `None` for an object
    /// the API server never stamped: ordered last, and never held back by [`settled`].
    pub created: Option<i64>,
    /// What its spec asks for.
    pub requested: ResourceAmounts,
    /// What it currently holds, if admitted.
    pub admitted: Option<ResourceAmounts>,
    /// Whether it is being deleted.
    pub deleting: bool,
}

/// What admission decided for one environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Holds `quota`, as before (nothing to write).
    Keep,
    /// Newly admitted, or resized: now holds the requested quota.
    Grant(ResourceAmounts),
    /// Not admitted: this is what is missing.
    Exceeded(Vec<Shortfall>),
    /// Admitted, but its resize does not fit; it keeps its current quota.
    ResizeBlocked(Vec<Shortfall>),
}

/// The decision for every candidate, in admission order, and the bureau's allocation after it.
#[derive(Clone, Debug)]
pub struct Plan {
    /// One decision per candidate.
    pub decisions: Vec<(String, Decision)>,
    /// Σ quota held by admitted environments after this plan.
    pub allocated: ResourceAmounts,
    /// When the earliest new request held back by [`settled`] may join, if one was: those get
    /// no decision in this plan.
    pub due: Option<Duration>,
}

/// How long after its creation second closes a new request joins admission: the time a create
/// stamped in that second may still take to be stored and reach the operator's watch.
pub const ARRIVAL_MARGIN: Duration = Duration::from_secs(1);

/// Whether a request created in second `created` (since the epoch) may join admission at `now`
/// (milliseconds since the epoch); if not, how long until it may.
pub fn settled(created: i64, now_millis: i64) -> Result<(), Duration> {
    let margin = i64::try_from(ARRIVAL_MARGIN.as_millis()).unwrap_or(i64::MAX);
    let from = created
        .saturating_add(1)
        .saturating_mul(1000)
        .saturating_add(margin);
    match u64::try_from(from.saturating_sub(now_millis)) {
        Ok(wait) if wait > 0 => Err(Duration::from_millis(wait)),
        _ => Ok(()),
    }
}

fn creation_order(a: &Candidate, b: &Candidate) -> Ordering {
    let created = |c: &Candidate| c.created.unwrap_or(i64::MAX);
    created(a)
        .cmp(&created(b))
        .then_with(|| a.name.cmp(&b.name))
}

/// Decides admission for one bureau with quota `limit`, at `now_millis` (milliseconds since the
/// epoch, for [`settled`]).
pub fn plan(limit: &ResourceAmounts, mut candidates: Vec<Candidate>, now_millis: i64) -> Plan {
    candidates.sort_by(creation_order);
    let mut allocated = candidates
        .iter()
        .filter_map(|c| c.admitted.as_ref())
        .fold(ResourceAmounts::ZERO, saturating_add);
    let mut decisions = Vec::with_capacity(candidates.len());
    let mut due = None;

    for c in candidates.iter().filter(|c| c.admitted.is_some()) {
        let held = c.admitted.unwrap_or(ResourceAmounts::ZERO);
        let decision = if c.deleting || held == c.requested {
            Decision::Keep
        } else {
            let others = allocated
                .checked_sub(&held)
                .unwrap_or(ResourceAmounts::ZERO);
            match others.checked_add(&c.requested) {
                Some(after) if after.fits_within(limit) => {
                    allocated = after;
                    Decision::Grant(c.requested)
                }
                _ => Decision::ResizeBlocked(c.requested.shortfall(&remaining(limit, &others))),
            }
        };
        decisions.push((c.name.clone(), decision));
    }

    for c in candidates
        .iter()
        .filter(|c| c.admitted.is_none() && !c.deleting)
    {
        if let Some(created) = c.created
            && let Err(wait) = settled(created, now_millis)
        {
            // In creation order, the first request held back is the first to be due.
            due.get_or_insert(wait);
            continue;
        }
        let decision = match allocated.checked_add(&c.requested) {
            Some(after) if after.fits_within(limit) => {
                allocated = after;
                Decision::Grant(c.requested)
            }
            _ => Decision::Exceeded(c.requested.shortfall(&remaining(limit, &allocated))),
        };
        decisions.push((c.name.clone(), decision));
    }
    Plan {
        decisions,
        allocated,
        due,
    }
}

/// Sum that clamps at the maximum instead of overflowing: an absurd total must still compare as
/// "does not fit", never wrap around to a small number.
fn saturating_add(total: ResourceAmounts, more: &ResourceAmounts) -> ResourceAmounts {
    let mut sum = ResourceAmounts::ZERO;
    for (resource, value) in total.iter() {
        sum.set(
            resource,
            value.saturating_add(more.get(resource)).min(MAX_BASE_UNITS),
        );
    }
    sum
}

/// What is left of `limit` after `used`, per resource (zero where `used` already exceeds it).
fn remaining(limit: &ResourceAmounts, used: &ResourceAmounts) -> ResourceAmounts {
    let mut left = ResourceAmounts::ZERO;
    for (resource, value) in limit.iter() {
        left.set(resource, value.saturating_sub(used.get(resource)));
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;
    use zhengyun_model::quantity::Resource;

    fn cpu(millicores: u64) -> ResourceAmounts {
        ResourceAmounts::ZERO.with(Resource::Cpu, millicores)
    }

    /// A time at which every request has settled.
    const LATER: i64 = i64::MAX;

    fn waiting(name: &str, created: i64, millicores: u64) -> Candidate {
        Candidate {
            name: name.into(),
            created: Some(created),
            requested: cpu(millicores),
            admitted: None,
            deleting: false,
        }
    }

    fn admitted(name: &str, created: i64, held: u64, requested: u64) -> Candidate {
        Candidate {
            name: name.into(),
            created: Some(created),
            requested: cpu(requested),
            admitted: Some(cpu(held)),
            deleting: false,
        }
    }

    fn granted(plan: &Plan) -> Vec<&str> {
        plan.decisions
            .iter()
            .filter(|(_, d)| matches!(d, Decision::Grant(_)))
            .map(|(n, _)| n.as_str())
            .collect()
    }

    #[test]
    fn thirty_equal_requests_against_room_for_ten_admit_the_ten_oldest() {
        let candidates = (0..30)
            .rev()
            .map(|i| waiting(&format!("env-{i:02}"), i, 1000))
            .collect();
        let plan = plan(&cpu(10_000), candidates, LATER);
        let expected: Vec<String> = (0..10).map(|i| format!("env-{i:02}")).collect();
        assert_eq!(granted(&plan), expected);
        assert_eq!(plan.allocated, cpu(10_000));
        let exceeded = plan
            .decisions
            .iter()
            .filter(|(_, d)| matches!(d, Decision::Exceeded(_)))
            .count();
        assert_eq!(exceeded, 20);
    }

    #[test]
    fn equal_creation_times_are_ordered_by_name() {
        let plan = plan(
            &cpu(1000),
            vec![waiting("b", 5, 1000), waiting("a", 5, 1000)],
            LATER,
        );
        assert_eq!(granted(&plan), ["a"]);
    }

    #[test]
    fn an_exceeded_environment_is_told_how_much_is_missing() {
        let plan = plan(
            &cpu(1500),
            vec![admitted("a", 1, 1000, 1000), waiting("b", 2, 1000)],
            LATER,
        );
        let (_, decision) = &plan.decisions[1];
        let Decision::Exceeded(short) = decision else {
            panic!("expected Exceeded, got {decision:?}")
        };
        assert_eq!(short.len(), 1);
        assert_eq!(
            (short[0].resource, short[0].missing()),
            (Resource::Cpu, 500)
        );
    }

    #[test]
    fn a_later_smaller_request_that_fits_is_not_held_behind_a_larger_one() {
        let plan = plan(
            &cpu(1000),
            vec![waiting("big", 1, 2000), waiting("small", 2, 500)],
            LATER,
        );
        assert_eq!(granted(&plan), ["small"]);
    }

    #[test]
    fn admitted_environments_keep_their_quota_when_the_bureau_quota_shrinks() {
        let plan = plan(
            &cpu(500),
            vec![admitted("a", 1, 1000, 1000), waiting("b", 2, 100)],
            LATER,
        );
        assert_eq!(plan.decisions[0].1, Decision::Keep);
        assert!(matches!(plan.decisions[1].1, Decision::Exceeded(_)));
        assert_eq!(plan.allocated, cpu(1000));
    }

    #[test]
    fn a_resize_that_fits_is_granted_and_one_that_does_not_keeps_the_old_quota() {
        let plan1 = plan(
            &cpu(3000),
            vec![admitted("a", 1, 1000, 2000), admitted("b", 2, 1000, 1000)],
            LATER,
        );
        assert_eq!(plan1.decisions[0].1, Decision::Grant(cpu(2000)));
        let plan2 = plan(
            &cpu(2500),
            vec![admitted("a", 1, 1000, 2000), admitted("b", 2, 1000, 1000)],
            LATER,
        );
        assert!(matches!(plan2.decisions[0].1, Decision::ResizeBlocked(_)));
        assert_eq!(plan2.allocated, cpu(2000));
    }

    #[test]
    fn a_deleting_environment_holds_its_share_until_it_is_gone() {
        let mut leaving = admitted("a", 1, 1000, 1000);
        leaving.deleting = true;
        let plan = plan(&cpu(1000), vec![leaving, waiting("b", 2, 1000)], LATER);
        assert!(matches!(plan.decisions[1].1, Decision::Exceeded(_)));
    }

    #[test]
    fn a_request_joins_admission_once_its_creation_second_and_the_margin_have_passed() {
        let margin = i64::try_from(ARRIVAL_MARGIN.as_millis()).unwrap();
        // Created in second 100: it may have been stamped at 100.999 s.
        assert_eq!(
            settled(100, 100_000),
            Err(Duration::from_millis(1000 + margin.unsigned_abs()))
        );
        assert_eq!(
            settled(100, 100_999 + margin),
            Err(Duration::from_millis(1))
        );
        assert_eq!(settled(100, 101_000 + margin), Ok(()));
        assert_eq!(settled(100, 200_000), Ok(()));
    }

    #[test]
    fn a_new_request_from_a_second_not_yet_settled_is_neither_admitted_nor_refused_until_due() {
        let margin = u64::try_from(ARRIVAL_MARGIN.as_millis()).unwrap();
        // At 101.5 s, second 99 has settled; second 101 settles at 102 s plus the margin.
        let plan = plan(
            &cpu(1000),
            vec![
                admitted("held", 101, 500, 500),
                waiting("late", 101, 1000),
                waiting("early", 99, 500),
                waiting("later", 101, 100),
            ],
            101_500,
        );
        let decided: Vec<&str> = plan.decisions.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(decided, ["held", "early"]);
        assert_eq!(granted(&plan), ["early"]);
        assert_eq!(plan.due, Some(Duration::from_millis(500 + margin)));
        let after = super::plan(
            &cpu(1000),
            vec![
                admitted("held", 101, 500, 500),
                admitted("early", 99, 500, 500),
                waiting("late", 101, 1000),
                waiting("later", 101, 100),
            ],
            102_000 + i64::try_from(margin).unwrap(),
        );
        assert!(matches!(after.decisions[2], (ref n, Decision::Exceeded(_)) if n == "late"));
        assert!(matches!(after.decisions[3], (ref n, Decision::Exceeded(_)) if n == "later"));
        assert_eq!(after.due, None);
    }

    #[test]
    fn a_request_the_api_server_never_stamped_is_ordered_last_and_never_held_back() {
        let unstamped = || Candidate {
            created: None,
            ..waiting("unstamped", 0, 1000)
        };
        let settled_plan = plan(&cpu(1000), vec![unstamped(), waiting("b", 5, 1000)], LATER);
        assert_eq!(granted(&settled_plan), ["b"]);
        // At 0 s, "b" (second 5) is held back; the unstamped one is not.
        let early_plan = plan(&cpu(1000), vec![unstamped(), waiting("b", 5, 1000)], 0);
        assert_eq!(granted(&early_plan), ["unstamped"]);
        assert!(early_plan.due.is_some());
    }

    #[test]
    fn a_request_with_an_absurd_creation_time_never_overflows() {
        assert!(settled(i64::MAX, 0).is_err());
        assert_eq!(settled(i64::MIN, 0), Ok(()));
    }

    #[test]
    fn an_environment_asking_for_a_resource_the_bureau_lacks_is_not_admitted() {
        let gpu = ResourceAmounts::ZERO.with(Resource::Gpu, 1);
        let candidate = Candidate {
            name: "g".into(),
            created: Some(1),
            requested: gpu,
            admitted: None,
            deleting: false,
        };
        let plan = plan(&cpu(1000), vec![candidate], LATER);
        assert!(matches!(plan.decisions[0].1, Decision::Exceeded(_)));
    }
}
