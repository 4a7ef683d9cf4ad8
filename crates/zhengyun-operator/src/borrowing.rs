//! Burst allowances: how much each environment's burst pods may request, from what the pool can
//! lend. Pure functions; the loop that feeds them the cluster and writes their results is in
//! [`crate::lending`].
//!
//! - **Lendable** capacity is the nodes' allocatable CPU and memory, less the pool's safety
//!   margin, less what every pod that is not burst requests (pending pods included: a guaranteed
//!   pod waiting for room takes it back from the lenders' side at once).
//! - Each environment may borrow at most `maxBorrowPercent` of its granted quota (its **cap**).
//!   When the caps add up to more than is lendable, every cap is scaled down by the same ratio
//!   (rounded down), so the allowances never add up to more than is lendable.
//! - **Hysteresis**: an allowance is lowered at once, and raised only when it would grow by at
//!   least `hysteresisPercent` of its cap, so that allowances do not flap as pods come and go.
//!   Keeping a lower figure than the target never breaks the sum.

use zhengyun_model::crd::{Borrowing, CapacityPoolSpec, Environment};
use zhengyun_model::quantity::ResourceAmounts;

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

/// One environment's figures for [`allowances`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Borrower {
    /// The most it may borrow ([`cap`]).
    pub cap: ResourceAmounts,
    /// Its allowance now (zero if it has none).
    pub current: ResourceAmounts,
}

/// The new allowance of each borrower, in the same order: each cap scaled so that the sum fits
/// `lendable`, then held back by hysteresis when it would rise by less than
/// `hysteresis_percent` of the cap.
pub fn allowances(
    borrowers: &[Borrower],
    lendable: &ResourceAmounts,
    hysteresis_percent: u32,
) -> Vec<ResourceAmounts> {
    let mut out = vec![ResourceAmounts::ZERO; borrowers.len()];
    for resource in BURST_RESOURCES {
        let room = u128::from(lendable.get(resource));
        let wanted: u128 = borrowers
            .iter()
            .map(|b| u128::from(b.cap.get(resource)))
            .sum();
        for (borrower, allowance) in borrowers.iter().zip(&mut out) {
            let cap = u128::from(borrower.cap.get(resource));
            let target = if wanted <= room {
                cap
            } else {
                cap * room / wanted
            };
            let target = u64::try_from(target).unwrap_or(u64::MAX);
            let current = borrower.current.get(resource);
            let step = percent_of(borrower.cap.get(resource), hysteresis_percent);
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
    use zhengyun_model::quantity::Resource;

    use super::*;

    fn cpu_mem(cpu: u64, mem: u64) -> ResourceAmounts {
        ResourceAmounts::ZERO
            .with(Resource::Cpu, cpu)
            .with(Resource::Memory, mem)
    }

    fn borrower(cap: u64, current: u64) -> Borrower {
        Borrower {
            cap: cpu_mem(cap, cap),
            current: cpu_mem(current, current),
        }
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
    fn every_cap_is_granted_when_the_pool_can_lend_them_all() {
        let got = allowances(
            &[borrower(4_000, 0), borrower(2_000, 0)],
            &cpu_mem(10_000, 10_000),
            10,
        );
        assert_eq!(got, [cpu_mem(4_000, 4_000), cpu_mem(2_000, 2_000)]);
    }

    #[test]
    fn caps_shrink_in_proportion_so_that_allowances_never_add_up_to_more_than_is_lendable() {
        let borrowers = [borrower(4_000, 0), borrower(2_000, 0), borrower(1_000, 0)];
        for room in [0, 1, 999, 3_500, 6_999, 7_000] {
            let got = allowances(&borrowers, &cpu_mem(room, room), 0);
            let sum: u64 = got.iter().map(|a| a.get(Resource::Cpu)).sum();
            assert!(sum <= room, "{sum} > {room}");
            assert!(
                got.windows(2)
                    .all(|w| w[0].get(Resource::Cpu) >= w[1].get(Resource::Cpu)),
                "a larger cap never gets less: {got:?}"
            );
        }
        let got = allowances(&borrowers, &cpu_mem(3_500, 3_500), 0);
        assert_eq!(got[0].get(Resource::Cpu), 2_000);
        assert_eq!(got[1].get(Resource::Cpu), 1_000);
        assert_eq!(got[2].get(Resource::Cpu), 500);
    }

    #[test]
    fn an_allowance_falls_at_once_but_rises_only_by_a_step_worth_making() {
        // Cap 10,000 with a 10 % step: a rise below 1,000 is held back.
        let held = allowances(&[borrower(10_000, 5_000)], &cpu_mem(5_900, 5_900), 10);
        assert_eq!(held[0].get(Resource::Cpu), 5_000);
        let raised = allowances(&[borrower(10_000, 5_000)], &cpu_mem(6_000, 6_000), 10);
        assert_eq!(raised[0].get(Resource::Cpu), 6_000);
        let lowered = allowances(&[borrower(10_000, 5_000)], &cpu_mem(4_990, 4_990), 10);
        assert_eq!(
            lowered[0].get(Resource::Cpu),
            4_990,
            "lowered by 10 at once"
        );
    }

    fn burst_pod(name: &str, created: i64, cpu: u64) -> BurstPod {
        BurstPod {
            name: name.to_owned(),
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
                name: "a".into(),
                created: 1,
                requests: cpu_mem(100, 4 << 30),
            },
            BurstPod {
                name: "b".into(),
                created: 2,
                requests: cpu_mem(100, 1 << 30),
            },
        ];
        let evicted = reclaim(&pods, &cpu_mem(10_000, 4 << 30));
        assert_eq!(evicted.len(), 1, "one pod over on memory alone");
        assert_eq!(evicted[0].name, "b");
    }

    #[test]
    fn a_borrower_with_no_cap_gets_nothing() {
        let got = allowances(
            &[borrower(0, 0), borrower(1_000, 0)],
            &cpu_mem(5_000, 5_000),
            10,
        );
        assert!(got[0].is_zero());
        assert_eq!(got[1].get(Resource::Cpu), 1_000);
    }
}
