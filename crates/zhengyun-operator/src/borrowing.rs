//! Burst allowances: how much each environment's burst pods may request, from what the pool can
//! lend. Pure functions; the loop that feeds them the cluster and writes their results is in
//! [`crate::lending`].
//!
//! - **Lendable** capacity is the nodes' allocatable CPU and memory, less the pool's safety
//!   margin, less what every pod that is not burst requests (pending pods included: a guaranteed
//!   pod waiting for room takes it back from the lenders' side at once).
//! - Each environment may borrow at most `maxBorrowPercent` of its granted quota (its **cap**).
//! - The room is shared out **by demand** ([`allowances`]): each keeps what its burst pods use,
//!   each gets a small start, the rest goes first to the environments that use their
//!   allowance, up to their caps, and what they leave to all by their caps, in whole pods. The
//!   allowances never add up to more than is lendable.
//! - **Hysteresis**: an allowance is lowered at once, and raised only when it would grow by at
//!   least `hysteresisPercent` of its cap, or by the one pod a full allowance lacks, so that
//!   allowances do not flap as pods come and go. Keeping a lower figure than the target never
//!   breaks the sum.

use zhengyun_model::crd::{Borrowing, CapacityPoolSpec, Environment};
use zhengyun_model::quantity::{Resource, ResourceAmounts};

use crate::resources::BURST_RESOURCES;

/// What the pool can lend now: `allocatable` less `margin_percent` of it, less `guaranteed`
/// (what pods that are not burst request), never below zero.
pub fn lendable(
    allocatable: &ResourceAmounts,
    guaranteed: &ResourceAmounts,
    margin_percent: u32,
) -> ResourceAmounts {
    let mut out = ResourceAmounts::ZERO;
    for resource in BURST_RESOURCES {
        let total = u128::from(allocatable.get(resource));
        // The margin is rounded up, so that what is lent is rounded down.
        let kept = (total * u128::from(margin_percent.min(100))).div_ceil(100);
        let room = (total - kept).saturating_sub(u128::from(guaranteed.get(resource)));
        out.set(resource, u64::try_from(room).unwrap_or(u64::MAX));
    }
    out
}

/// The most an environment granted `granted` may borrow under `policy`.
pub fn cap(granted: &ResourceAmounts, policy: &Borrowing) -> ResourceAmounts {
    let mut out = ResourceAmounts::ZERO;
    for resource in BURST_RESOURCES {
        out.set(
            resource,
            percent_of(granted.get(resource), policy.max_borrow_percent),
        );
    }
    out
}

/// The share of its cap, in percent, that an environment at its quota is given to start
/// borrowing with before it uses any: the room to start.
pub const START_PERCENT: u32 = 10;

/// How full, in percent of its granted CPU or memory, an environment's own (not burst) pods
/// must hold it for the environment to count as at its quota, and so be given a start.
pub const NEAR_QUOTA_PERCENT: u32 = 90;

/// Whether pods requesting `guaranteed` hold an environment granted `granted` at its quota
/// ([`NEAR_QUOTA_PERCENT`] of its CPU or its memory).
pub fn at_quota(guaranteed: &ResourceAmounts, granted: &ResourceAmounts) -> bool {
    BURST_RESOURCES.into_iter().any(|resource| {
        let granted = granted.get(resource);
        granted > 0 && guaranteed.get(resource) >= percent_of(granted, NEAR_QUOTA_PERCENT)
    })
}

/// One environment's figures for [`allowances`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Borrower {
    /// The most it may borrow ([`cap`]).
    pub cap: ResourceAmounts,
    /// Its allowance now (zero if it has none).
    pub current: ResourceAmounts,
    /// What its burst pods request now.
    pub used: ResourceAmounts,
    /// Whether its own pods hold it at its quota ([`at_quota`]): only then, or once it
    /// borrows, can it need a start.
    pub at_quota: bool,
    /// The most one of its pods (its own or burst) requests of each resource: the unit its
    /// allowance is handed out in, as a share that is not a whole pod's worth cannot admit
    /// one more pod and would only hold room back from the others. Zero where it has no pods.
    pub pod: ResourceAmounts,
}

/// The new allowance of each borrower, in the same order, shared out by demand:
///
/// 1. each keeps what its burst pods use, up to its cap; if even that does not fit what can be
///    lent, those that borrow the largest share of their caps give back first
///    ([`level_down`]; the rest is reclaimed);
/// 2. of what is left, each at its quota or borrowing already gets a **start** of
///    [`START_PERCENT`] of its cap, and at least one pod's worth (fewer starts if there is not
///    room for all), so that an environment that borrows nothing yet can start; one well below
///    its quota cannot need burst capacity and gets no start;
/// 3. then the **hungry** — those using all but less than a start of their allowance — get
///    what is left, in proportion to what their caps still allow, up to their caps;
/// 4. what they leave is shared by every environment in proportion to what its cap still
///    allows, so that a pod larger than a start can begin while there is room.
///
/// Shares in steps 2 to 4 are whole pods of the environment ([`Borrower::pod`]; [`share`]).
/// Then a rise smaller than `hysteresis_percent` of the cap is held back, unless the
/// environment has no room left for one more pod and the rise gives it that room. The
/// allowances never add up to more than `lendable`.
pub fn allowances(
    borrowers: &[Borrower],
    lendable: &ResourceAmounts,
    hysteresis_percent: u32,
) -> Vec<ResourceAmounts> {
    let mut out = vec![ResourceAmounts::ZERO; borrowers.len()];
    for resource in BURST_RESOURCES {
        let room = u128::from(lendable.get(resource));
        let targets = targets(borrowers, resource, room);
        for ((borrower, allowance), target) in borrowers.iter().zip(&mut out).zip(targets) {
            let target = u64::try_from(target).unwrap_or(u64::MAX);
            let current = borrower.current.get(resource);
            let pod = borrower.pod.get(resource);
            let mut step = percent_of(borrower.cap.get(resource), hysteresis_percent);
            if borrower.used.get(resource).saturating_add(pod) > current {
                // Full: a rise that lets one more pod in is worth making.
                step = step.min(pod);
            }
            let new = if target <= current || target - current >= step.max(1) {
                target
            } else {
                current
            };
            allowance.set(resource, new);
        }
    }
    out
}

/// The targets of [`allowances`] for one resource, before hysteresis.
fn targets(borrowers: &[Borrower], resource: Resource, room: u128) -> Vec<u128> {
    let cap = |b: &Borrower| u128::from(b.cap.get(resource));
    let units: Vec<u128> = borrowers
        .iter()
        .map(|b| u128::from(b.pod.get(resource)).max(1))
        .collect();
    let start_of = |b: &Borrower| {
        if b.at_quota || b.used.get(resource) > 0 {
            (cap(b) * u128::from(START_PERCENT) / 100).max(u128::from(b.pod.get(resource)))
        } else {
            0
        }
    };
    let base: Vec<u128> = borrowers
        .iter()
        .map(|b| u128::from(b.used.get(resource)).min(cap(b)))
        .collect();
    let held: u128 = base.iter().sum();
    if held >= room {
        return level_down(borrowers, resource, &base, room);
    }
    let mut left = room - held;
    let starts: Vec<u128> = borrowers
        .iter()
        .zip(&base)
        .map(|(b, used)| start_of(b).min(cap(b) - used))
        .collect();
    let start = share(&starts, left, &units);
    left -= start.iter().sum::<u128>();
    let hungry: Vec<u128> = borrowers
        .iter()
        .zip(base.iter().zip(&start))
        .map(|(b, (used, s))| {
            let current = u128::from(b.current.get(resource));
            let is_hungry = *used > 0 && used + start_of(b) >= current;
            if is_hungry { cap(b) - used - s } else { 0 }
        })
        .collect();
    let more = share(&hungry, left, &units);
    let mut given: Vec<u128> = base
        .iter()
        .zip(&start)
        .zip(&more)
        .map(|((used, s), m)| used + s + m)
        .collect();
    // What the hungry leave is shared by what the caps still allow, so that a pod larger than
    // a start can begin while there is room.
    left = room.saturating_sub(given.iter().sum::<u128>());
    let open: Vec<u128> = borrowers
        .iter()
        .zip(&given)
        .map(|(b, g)| cap(b) - g)
        .collect();
    for (g, o) in given.iter_mut().zip(share(&open, left, &units)) {
        *g += o;
    }
    given
}

/// Shares `room` among `wants` in proportion to them, each in whole multiples of its own
/// `units` (a unit of one where none is known) and never more than it wants; the units that
/// rounding down leaves over go to the largest remainders first (the earliest on a tie) while
/// they fit. Everyone gets all it wants when that fits.
fn share(wants: &[u128], room: u128, units: &[u128]) -> Vec<u128> {
    let wanted: u128 = wants.iter().sum();
    if wanted <= room {
        return wants.to_vec();
    }
    // Exact shares are `want × room / wanted`; compared in units of `1 / wanted`.
    let exact: Vec<u128> = wants.iter().map(|w| w * room).collect();
    let mut out: Vec<u128> = exact
        .iter()
        .zip(units)
        .map(|(e, u)| e / wanted / u * u)
        .collect();
    let mut left = room - out.iter().sum::<u128>();
    let mut order: Vec<usize> = (0..wants.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(exact[i] - out[i] * wanted));
    for i in order {
        let unit = units[i];
        if exact[i] > out[i] * wanted && unit <= left && out[i] + unit <= wants[i] {
            out[i] += unit;
            left -= unit;
        }
    }
    out
}

/// What each keeps of `held` (what its burst pods use, within its cap) when it does not all
/// fit `room`: those that borrow the largest share of their caps give back first, down to a
/// common share of their caps, and the others keep what they use. So a small shortfall is
/// reclaimed from the few heaviest borrowers, a pod or two, rather than a pod from every
/// environment that borrows.
fn level_down(borrowers: &[Borrower], resource: Resource, held: &[u128], room: u128) -> Vec<u128> {
    let cap = |i: usize| u128::from(borrowers[i].cap.get(resource));
    // Heaviest first: by the share of its cap it uses (held / cap, compared crosswise).
    let mut order: Vec<usize> = (0..held.len()).filter(|&i| held[i] > 0).collect();
    order.sort_by(|&a, &b| (held[b] * cap(a)).cmp(&(held[a] * cap(b))));
    let mut rest: u128 = held.iter().sum();
    let mut caps = 0u128;
    // The level is the share `room_left / caps` of the caps of the `k` heaviest, the smallest
    // `k` for which it does not fall below the next one's share.
    for (k, &i) in order.iter().enumerate() {
        rest -= held[i];
        caps += cap(i);
        let left = room.saturating_sub(rest);
        let next_reaches = order
            .get(k + 1)
            .is_none_or(|&j| held[j] * caps <= left * cap(j));
        if next_reaches {
            let mut out = held.to_vec();
            for &i in &order[..=k] {
                out[i] = (cap(i) * left).checked_div(caps).unwrap_or(0).min(held[i]);
            }
            return out;
        }
    }
    vec![0; held.len()]
}

/// `percent` % of `value`, rounded down.
fn percent_of(value: u64, percent: u32) -> u64 {
    let scaled = u128::from(value) * u128::from(percent) / 100;
    u64::try_from(scaled).unwrap_or(u64::MAX)
}

/// The resources a burst allowance speaks of, with the amount of each in `amounts`.
pub fn burst_part(amounts: &ResourceAmounts) -> ResourceAmounts {
    let mut out = ResourceAmounts::ZERO;
    for resource in BURST_RESOURCES {
        out.set(resource, amounts.get(resource));
    }
    out
}

/// A running burst pod, as reclaim sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BurstPod {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
    /// When it was created (seconds since the epoch; ties are broken by name).
    pub created: i64,
    /// What it requests.
    pub requests: ResourceAmounts,
}

/// The burst pods to evict so that the rest fit `allowance`: the newest first (the ones that
/// have done the least work), as few as will do.
pub fn reclaim<'a>(pods: &'a [BurstPod], allowance: &ResourceAmounts) -> Vec<&'a BurstPod> {
    let mut newest_first: Vec<&BurstPod> = pods.iter().collect();
    newest_first.sort_by(|a, b| (b.created, &b.name).cmp(&(a.created, &a.name)));
    let mut held = ResourceAmounts::ZERO;
    for pod in &newest_first {
        for resource in BURST_RESOURCES {
            held.set(
                resource,
                held.get(resource)
                    .saturating_add(pod.requests.get(resource)),
            );
        }
    }
    let over = |held: &ResourceAmounts| {
        BURST_RESOURCES
            .iter()
            .any(|&r| held.get(r) > allowance.get(r))
    };
    let mut evicted = Vec::new();
    for pod in newest_first {
        if !over(&held) {
            break;
        }
        for resource in BURST_RESOURCES {
            held.set(
                resource,
                held.get(resource) - pod.requests.get(resource).min(held.get(resource)),
            );
        }
        evicted.push(pod);
    }
    evicted
}

/// The allowance `env`'s burst pods have now: the one in its status while the pool lends,
/// nothing otherwise (or when the figure does not parse).
pub fn burst_allowance(env: &Environment, pool: &CapacityPoolSpec) -> ResourceAmounts {
    if !pool.borrowing.enabled {
        return ResourceAmounts::ZERO;
    }
    env.status
        .as_ref()
        .and_then(|s| s.burst_allowance.as_ref())
        .and_then(|q| q.observed_amounts().ok())
        .map_or(ResourceAmounts::ZERO, |a| burst_part(&a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu_mem(cpu: u64, mem: u64) -> ResourceAmounts {
        ResourceAmounts::ZERO
            .with(Resource::Cpu, cpu)
            .with(Resource::Memory, mem)
    }

    fn borrower(cap: u64, current: u64, used: u64) -> Borrower {
        Borrower {
            cap: cpu_mem(cap, cap),
            current: cpu_mem(current, current),
            used: cpu_mem(used, used),
            at_quota: true,
            pod: ResourceAmounts::ZERO,
        }
    }

    #[test]
    fn an_environment_well_below_its_quota_gets_no_start_and_leaves_the_room_to_one_at_its_quota() {
        // Room for 1,500m: the idle one (far below its quota) gets no start, the one at its
        // quota gets its start and, hungry, the rest.
        let idle = Borrower {
            at_quota: false,
            ..borrower(2_000, 0, 0)
        };
        let busy = borrower(2_000, 200, 200);
        let got = allowances(&[idle, busy], &cpu_mem(1_500, 1_500), 0);
        assert_eq!(cpu(&got), [0, 1_500]);
        assert!(at_quota(&cpu_mem(900, 0), &cpu_mem(1_000, 8 << 30)));
        assert!(!at_quota(&cpu_mem(899, 0), &cpu_mem(1_000, 8 << 30)));
        assert!(!at_quota(&ResourceAmounts::ZERO, &ResourceAmounts::ZERO));
    }

    fn cpu(allowances: &[ResourceAmounts]) -> Vec<u64> {
        allowances.iter().map(|a| a.get(Resource::Cpu)).collect()
    }

    #[test]
    fn lendable_capacity_is_what_guaranteed_pods_leave_less_the_margin() {
        let nodes = cpu_mem(64_000, 256 << 30);
        let guaranteed = cpu_mem(40_000, 100 << 30);
        let room = lendable(&nodes, &guaranteed, 10);
        assert_eq!(room.get(Resource::Cpu), 57_600 - 40_000);
        assert_eq!(
            room.get(Resource::Memory),
            (256u64 << 30) * 9 / 10 - (100 << 30)
        );
        let full = lendable(&nodes, &cpu_mem(63_000, 0), 10);
        assert_eq!(full.get(Resource::Cpu), 0, "never below zero");
        assert_eq!(
            room.get(Resource::Storage),
            0,
            "only CPU and memory are lent"
        );
    }

    #[test]
    fn a_cap_is_the_policys_share_of_the_granted_quota() {
        let policy = Borrowing {
            max_borrow_percent: 50,
            ..Borrowing::default()
        };
        let granted = cpu_mem(8_000, 16 << 30).with(Resource::Storage, 100 << 30);
        let cap = cap(&granted, &policy);
        assert_eq!(cap.get(Resource::Cpu), 4_000);
        assert_eq!(cap.get(Resource::Memory), 8 << 30);
        assert_eq!(cap.get(Resource::Storage), 0);
    }

    #[test]
    fn with_room_for_every_cap_every_environment_gets_its_cap() {
        let got = allowances(
            &[borrower(4_000, 0, 0), borrower(2_000, 0, 0)],
            &cpu_mem(10_000, 10_000),
            0,
        );
        assert_eq!(cpu(&got), [4_000, 2_000]);
    }

    #[test]
    fn the_room_goes_first_to_the_environments_that_use_their_allowance() {
        // The first uses all of its 400 and is hungry; the second uses nothing.
        let hungry_first = [borrower(4_000, 400, 400), borrower(2_000, 200, 0)];
        // Room for the hungry one's 400, both starts (400, 200) and 2,000 more: all to it.
        let got = allowances(&hungry_first, &cpu_mem(3_000, 3_000), 0);
        assert_eq!(cpu(&got), [2_800, 200]);
        // Room only for what runs and the starts.
        let got = allowances(&hungry_first, &cpu_mem(1_000, 1_000), 0);
        assert_eq!(cpu(&got), [800, 200]);
        // Room to spare: the hungry one to its cap, the rest to the other.
        let got = allowances(&hungry_first, &cpu_mem(5_000, 5_000), 0);
        assert_eq!(cpu(&got), [4_000, 1_000]);
    }

    #[test]
    fn without_anyone_hungry_the_room_is_shared_by_the_caps() {
        let got = allowances(
            &[borrower(4_000, 0, 0), borrower(2_000, 0, 0)],
            &cpu_mem(3_000, 3_000),
            0,
        );
        // Starts 400 and 200, then 2,400 by 3,600 : 1,800.
        assert_eq!(cpu(&got), [2_000, 1_000]);
    }

    #[test]
    fn allowances_never_add_up_to_more_than_is_lendable() {
        let mut seed = 7u64;
        let mut next = |m: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % m
        };
        for _ in 0..2_000 {
            let borrowers: Vec<Borrower> = (0..5)
                .map(|_| borrower(next(5_000), next(5_000), next(6_000)))
                .collect();
            let room = next(12_000);
            let got = allowances(
                &borrowers,
                &cpu_mem(room, room),
                u32::try_from(next(20)).unwrap(),
            );
            let sum: u64 = cpu(&got).iter().sum();
            // Hysteresis keeps an allowance below its target, never above it.
            assert!(sum <= room, "{sum} > {room}: {borrowers:?} → {got:?}");
            for (b, a) in borrowers.iter().zip(&got) {
                assert!(
                    a.get(Resource::Cpu) <= b.cap.get(Resource::Cpu),
                    "{b:?} → {a:?}"
                );
            }
        }
    }

    #[test]
    fn when_what_runs_does_not_fit_the_heaviest_borrowers_give_back_first() {
        // 3,500 of 4,000, 3,000 of 4,000 and 1,000 of 4,000 in room for 6,500: the first
        // comes down to the second's share and both to 2,750, the third keeps its 1,000.
        let got = allowances(
            &[
                borrower(4_000, 3_500, 3_500),
                borrower(4_000, 3_000, 3_000),
                borrower(4_000, 1_000, 1_000),
            ],
            &cpu_mem(6_500, 6_500),
            10,
        );
        assert_eq!(cpu(&got), [2_750, 2_750, 1_000]);
        // A shortfall smaller than the gap between the two heaviest is taken from the first.
        let got = allowances(
            &[borrower(4_000, 3_500, 3_500), borrower(4_000, 3_000, 3_000)],
            &cpu_mem(6_000, 6_000),
            10,
        );
        assert_eq!(cpu(&got), [3_000, 3_000]);
        // Shares of different caps: 3,000 of 4,000 (75 %) gives back before 1,000 of 2,000.
        let got = allowances(
            &[borrower(4_000, 3_000, 3_000), borrower(2_000, 1_000, 1_000)],
            &cpu_mem(3_500, 3_500),
            10,
        );
        assert_eq!(cpu(&got), [2_500, 1_000]);
        // Nothing to lend: nothing kept.
        let got = allowances(&[borrower(4_000, 3_000, 3_000)], &cpu_mem(0, 0), 10);
        assert_eq!(cpu(&got), [0]);
    }

    #[test]
    fn an_allowance_falls_at_once_but_rises_only_by_a_step_worth_making() {
        // Cap 10,000 with a 10 % step; hungry at 5,000 used of 5,000: a rise below 1,000 is
        // held back.
        let held = allowances(
            &[borrower(10_000, 5_000, 5_000)],
            &cpu_mem(5_900, 5_900),
            10,
        );
        assert_eq!(cpu(&held), [5_000]);
        let raised = allowances(
            &[borrower(10_000, 5_000, 5_000)],
            &cpu_mem(6_000, 6_000),
            10,
        );
        assert_eq!(cpu(&raised), [6_000]);
        let lowered = allowances(
            &[borrower(10_000, 5_000, 5_000)],
            &cpu_mem(4_990, 4_990),
            10,
        );
        assert_eq!(cpu(&lowered), [4_990], "lowered by 10 at once");
    }

    /// A borrower whose pods request 500m and 256Mi each.
    fn with_pods_of_500m(b: Borrower) -> Borrower {
        Borrower {
            pod: cpu_mem(500, 256 << 20),
            ..b
        }
    }

    #[test]
    fn a_start_is_at_least_one_pod_and_scarce_starts_are_whole_pods() {
        // Caps of 4,000m: a start of 10 % (400m) would not admit one 500m pod.
        let small = with_pods_of_500m(borrower(4_000, 0, 0));
        let got = allowances(std::slice::from_ref(&small), &cpu_mem(500, 500), 0);
        assert_eq!(cpu(&got), [500]);
        // Room for two starts among three: two get a whole pod, the third none, rather than
        // each a third of the room that admits nothing.
        let got = allowances(
            &[small.clone(), small.clone(), small],
            &cpu_mem(1_000, 1_000),
            0,
        );
        assert_eq!(cpu(&got), [500, 500, 0]);
    }

    #[test]
    fn shares_are_whole_pods_with_the_units_left_over_to_the_largest_remainders() {
        // Wants 3,000, 2,000 and 1,000 of 2,600 in units of 500: exact shares 1,300, 867 and
        // 433; rounded down 1,000, 500 and 0; the 1,100 left gives a pod to the largest
        // remainders, 433 and 367, then none fits the 100 left.
        assert_eq!(
            share(&[3_000, 2_000, 1_000], 2_600, &[500, 500, 500]),
            [1_000, 1_000, 500]
        );
        // All that is wanted fits: all is given, whatever the units.
        assert_eq!(share(&[700, 300], 1_000, &[500, 500]), [700, 300]);
        // Without a known pod (a unit of one) the room is shared to the last unit.
        assert_eq!(share(&[1, 1, 1], 2, &[1, 1, 1]), [1, 1, 0]);
    }

    #[test]
    fn a_full_allowance_rises_by_one_pod_even_below_the_hysteresis_step() {
        // Cap 10,000 with a 20 % step (2,000): 2,000 used of 2,000, room for 500 more. Full,
        // so the rise of one pod is made; with room for a pod still, it is held back.
        let full = with_pods_of_500m(borrower(10_000, 2_000, 2_000));
        let got = allowances(std::slice::from_ref(&full), &cpu_mem(2_500, 1 << 40), 20);
        assert_eq!(cpu(&got), [2_500]);
        let roomy = with_pods_of_500m(borrower(10_000, 2_000, 1_500));
        let got = allowances(&[roomy], &cpu_mem(2_500, 1 << 40), 20);
        assert_eq!(cpu(&got), [2_000]);
    }

    #[test]
    fn a_borrower_with_no_cap_gets_nothing() {
        let got = allowances(
            &[borrower(0, 0, 0), borrower(1_000, 0, 0)],
            &cpu_mem(5_000, 5_000),
            10,
        );
        assert!(got[0].is_zero());
        assert_eq!(got[1].get(Resource::Cpu), 1_000);
    }

    fn burst_pod(name: &str, created: i64, cpu: u64) -> BurstPod {
        BurstPod {
            name: name.to_owned(),
            uid: format!("uid-{name}"),
            created,
            requests: cpu_mem(cpu, 0),
        }
    }

    #[test]
    fn reclaim_evicts_the_newest_burst_pods_until_the_rest_fit_the_allowance() {
        let pods = [
            burst_pod("oldest", 100, 1_000),
            burst_pod("middle", 200, 1_000),
            burst_pod("newest", 300, 1_000),
        ];
        let names =
            |evicted: Vec<&BurstPod>| evicted.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        assert!(reclaim(&pods, &cpu_mem(3_000, 0)).is_empty(), "all fit");
        assert_eq!(names(reclaim(&pods, &cpu_mem(2_500, 0))), ["newest"]);
        assert_eq!(
            names(reclaim(&pods, &cpu_mem(1_000, 0))),
            ["newest", "middle"]
        );
        assert_eq!(
            names(reclaim(&pods, &ResourceAmounts::ZERO)),
            ["newest", "middle", "oldest"]
        );
    }

    #[test]
    fn reclaim_counts_memory_as_well_as_cpu() {
        let pods = [
            BurstPod {
                requests: cpu_mem(100, 4 << 30),
                ..burst_pod("a", 1, 0)
            },
            BurstPod {
                requests: cpu_mem(100, 1 << 30),
                ..burst_pod("b", 2, 0)
            },
        ];
        let evicted = reclaim(&pods, &cpu_mem(10_000, 4 << 30));
        assert_eq!(evicted.len(), 1, "one pod over on memory alone");
        assert_eq!(evicted[0].name, "b");
    }
}
