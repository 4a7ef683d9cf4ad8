//! The bureau controller: the single authority that admits environments (see [`crate::admission`])
//! and rolls the bureau's allocation, usage and conditions up into its status.
//!
//! Each bureau is reconciled by one task at a time. It reads its environments from the watch
//! cache overlaid with the decisions it wrote itself that the cache does not show yet
//! ([`RecentWrites`]), so a decision always sees the previous decision's writes: however many
//! requests arrive at once, through whichever door, a bureau is never over-allocated. A cache that
//! lags behind anyone else's writes only errs on the safe side: an environment not seen yet waits
//! for the next pass (its arrival triggers one), and a release not seen yet still counts as held.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::runtime::events::{EventType, Note, Publisher};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Api, Client, Resource as _, ResourceExt};
use zhengyun_model::crd::{
    Bureau, BureauStatus, Environment, EnvironmentPhase, EnvironmentStatus, Time,
};
use zhengyun_model::quantity::{Quota, Resource, ResourceAmounts, Shortfall};

use crate::admission::{Candidate, Decision, plan};
use crate::conditions::{Kind, Observed, Reason, find, has_same};
use crate::environments::{granted, pool_spec};
use crate::metrics::Metrics;
use crate::recent::RecentWrites;
use crate::resources::{GUARANTEED_QUOTA_NAME, QUOTA_NAME};
use crate::runtime::applier::Applier;
use crate::spacing::Spacing;
use crate::{ADMISSION_MANAGER, Error, MANAGER, Result};

const CONTROLLER: &str = "bureau";
/// How far apart two writes of one bureau's rollup are at least (see [`Spacing`]).
pub(crate) const ROLLUP_SPACING: Duration = Duration::from_secs(2);
/// Admission decisions of one bureau written at once.
const DECISIONS_AT_ONCE: usize = 8;

/// What the bureau controller needs.
pub(crate) struct Context {
    /// For reads.
    pub client: Client,
    /// Every write.
    pub applier: Applier,
    pub metrics: Arc<Metrics>,
    pub events: Publisher,
    pub bureaus: kube::runtime::reflector::Store<Bureau>,
    pub pools: kube::runtime::reflector::Store<zhengyun_model::crd::CapacityPool>,
    /// Every environment, as the watch last saw it.
    pub envs: kube::runtime::reflector::Store<Environment>,
    /// The environments of each bureau in `envs`.
    pub by_bureau: crate::runtime::by_bureau::ByBureau,
    /// Whether `envs` holds the first complete LIST yet.
    pub envs_ready: tokio::sync::watch::Receiver<bool>,
    /// Admission decisions written that the watch may not have delivered yet.
    pub decided: RecentWrites<Environment>,
    /// When each bureau's rollup was last written.
    pub rollups: Spacing,
}

/// Entry point of each reconciliation.
pub(crate) async fn reconcile(bureau: Arc<Bureau>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    // A rollup held back by its spacing, or a request whose creation second has not settled, is
    // handled by the pass this one asks for.
    let due = admit(&bureau, &ctx).await?;
    Ok(Action::requeue(due.unwrap_or(Duration::from_secs(600))))
}

/// Retries failures after a short delay.
pub(crate) fn error_policy(_bureau: Arc<Bureau>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(error = %error, "bureau reconciliation failed");
    ctx.metrics.failure(CONTROLLER, error.metric_label());
    Action::requeue(Duration::from_secs(5))
}

fn describe(short: &[Shortfall]) -> String {
    short
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Admits what fits and rolls the bureau up; returns when the next pass is due, if one is: a
/// changed rollup held back by its spacing, or a new request whose creation second has not
/// settled yet ([`Plan::due`](crate::admission::Plan::due)).
async fn admit(bureau: &Bureau, ctx: &Context) -> Result<Option<Duration>> {
    let name = bureau.name_any();
    let of_bureau = |e: &Environment| e.spec.bureau == name;
    // Until the first LIST of environments is in, the cache is empty, not the bureau.
    if ctx
        .envs_ready
        .clone()
        .wait_for(|ready| *ready)
        .await
        .is_err()
    {
        return Ok(None); // stopping before it ever was
    }
    let cached = ctx.by_bureau.environments(&name, &ctx.envs);
    let envs = ctx.decided.overlay(cached, of_bureau);
    let limit = bureau
        .spec
        .quota
        .to_amounts()
        .unwrap_or(ResourceAmounts::ZERO);

    let mut blocked_shrinks = Vec::new();
    let mut candidates = Vec::with_capacity(envs.len());
    for env in &envs {
        let Some(mut candidate) = candidate(env) else {
            continue;
        };
        if let Some(held) = candidate.admitted
            && let Some(over) =
                shrink_below_usage(&ctx.client, env, &candidate.requested, &held).await?
        {
            blocked_shrinks.push((env.name_any(), over));
            candidate.requested = held;
        }
        candidates.push(candidate);
    }
    let plan = plan(&limit, candidates, Timestamp::now().as_millisecond());
    tracing::debug!(bureau = %name, environments = envs.len(), allocated = ?plan.allocated, "admission planned");
    // The decisions are independent writes: made together, and all remembered in `decided`
    // before the next reconciliation of this bureau reads the cache again (a failure retries the
    // whole plan).
    let mut writes = Vec::with_capacity(plan.decisions.len());
    for (env_name, decision) in &plan.decisions {
        let Some(env) = envs.iter().find(|e| e.name_any() == *env_name) else {
            continue;
        };
        let shrink = blocked_shrinks
            .iter()
            .find(|(n, _)| n == env_name)
            .map(|(_, m)| m.as_str());
        writes.push(record(ctx, bureau, env, decision, shrink));
    }
    futures::stream::iter(writes)
        .buffer_unordered(DECISIONS_AT_ONCE)
        .try_collect::<Vec<()>>()
        .await?;
    let rollup_due = report(ctx, bureau, &envs, &plan.allocated).await?;
    Ok(rollup_due.into_iter().chain(plan.due).min())
}

/// How admission sees `env`, or `None` if it cannot take part: a waiting environment whose
/// spec does not parse asks for nothing admission can grant. An admitted one whose spec does
/// not parse (edited with `kubectl` past the CRD's pattern, or written before it) asks to keep
/// what it holds: it goes on counting against its bureau at its admitted quota, so its room is
/// never handed to another environment while its namespace still has it.
fn candidate(env: &Environment) -> Option<Candidate> {
    let admitted = granted(env);
    let requested = match env.spec.quota.to_amounts() {
        Ok(requested) => requested,
        Err((resource, error)) => {
            let held = admitted?;
            tracing::warn!(environment = %env.name_any(), %resource, %error, "unusable spec.quota: the admitted quota stays held");
            held
        }
    };
    Some(Candidate {
        name: env.name_any(),
        created: env.creation_timestamp().map(|t| t.0.as_second()),
        requested,
        admitted,
        deleting: env.metadata.deletion_timestamp.is_some(),
    })
}

/// If `requested` is below what the environment's pods and volumes already use, what is over.
async fn shrink_below_usage(
    client: &Client,
    env: &Environment,
    requested: &ResourceAmounts,
    held: &ResourceAmounts,
) -> Result<Option<String>> {
    if held.fits_within(requested) {
        return Ok(None);
    }
    let ns = env.name_any();
    let quotas = Api::<ResourceQuota>::namespaced(client.clone(), &ns);
    let used_by = |quota: Option<ResourceQuota>| {
        quota
            .and_then(|q| q.status)
            .and_then(|s| s.used)
            .unwrap_or_default()
    };
    let mut used = used_by(
        quotas
            .get_opt(QUOTA_NAME)
            .await
            .map_err(Error::kube(format!("read ResourceQuota of {ns}")))?,
    );
    // CPU and memory as the guaranteed quota counts them: burst pods hold nothing of the
    // granted quota, and give their room back when it is needed.
    used.extend(used_by(
        quotas
            .get_opt(GUARANTEED_QUOTA_NAME)
            .await
            .map_err(Error::kube(format!("read ResourceQuota of {ns}")))?,
    ));
    // The pool's default object counts are not the environment's to shrink.
    let over: Vec<String> = Resource::ALL
        .iter()
        .filter(|&&r| crate::resources::capped_by_environment(r, env))
        .filter_map(|&r| {
            let in_use = used.get(r.resource_quota_key())?.0.as_str();
            let in_use = r.unit().parse(in_use).ok()?;
            (requested.get(r) < in_use).then(|| {
                format!(
                    "{r}: {} requested but {} in use",
                    r.unit().format(requested.get(r)),
                    r.unit().format(in_use)
                )
            })
        })
        .collect();
    Ok((!over.is_empty()).then(|| over.join("; ")))
}

/// Writes admission's part of an environment's status, if it changed, and publishes an Event
/// when the decision is a transition.
async fn record(
    ctx: &Context,
    bureau: &Bureau,
    env: &Environment,
    decision: &Decision,
    shrink: Option<&str>,
) -> Result<()> {
    let Record { status, event } = admission_record(&bureau.name_any(), env, decision, shrink);
    if says_the_same(&env.status.clone().unwrap_or_default(), &status) {
        return Ok(());
    }
    let action = format!("record admission of environment {}", env.name_any());
    let written = ctx
        .applier
        .status(ADMISSION_MANAGER, env, &status, action)
        .await?;
    ctx.decided.remember(written);
    if let Some((reason, note)) = event {
        let type_ = if reason == Reason::Admitted {
            EventType::Normal
        } else {
            EventType::Warning
        };
        publish(&ctx.events, env, type_, reason, &note).await;
    }
    Ok(())
}

/// Admission's part of an environment's status, and the Event its transition deserves.
#[derive(Debug)]
struct Record {
    /// The fields admission owns: phase, conditions, admitted quota and time.
    status: EnvironmentStatus,
    /// The reason and note of an Event, when the decision changes the environment's standing.
    event: Option<(Reason, String)>,
}

/// What admission says of `env` in bureau `bureau` for `decision`; `shrink` is what is over
/// when a shrink below usage was refused.
fn admission_record(
    bureau: &str,
    env: &Environment,
    decision: &Decision,
    shrink: Option<&str>,
) -> Record {
    let status = env.status.clone().unwrap_or_default();
    let said = Observed::new(&status.conditions, env.metadata.generation);
    let current_phase = status.phase.unwrap_or(EnvironmentPhase::Admitted);
    let within = format!("admitted within the quota of bureau {bureau}");
    let mut conditions = vec![said.holds(Kind::Admitted, Reason::Admitted, within.clone())];
    let (phase, quota, event) = match decision {
        Decision::Keep => (current_phase, granted(env), None),
        Decision::Grant(q) => {
            let newly = status.admitted_quota.is_none();
            let phase = if newly {
                EnvironmentPhase::Admitted
            } else {
                current_phase
            };
            (phase, Some(*q), newly.then_some((Reason::Admitted, within)))
        }
        Decision::Exceeded(short) => {
            let message = format!(
                "does not fit the remaining quota of bureau {bureau}: {}",
                describe(short)
            );
            conditions[0] = said.fails(Kind::Admitted, Reason::QuotaExceeded, message.clone());
            let newly = status.phase != Some(EnvironmentPhase::QuotaExceeded);
            let event = newly.then_some((Reason::QuotaExceeded, message));
            (EnvironmentPhase::QuotaExceeded, None, event)
        }
        Decision::ResizeBlocked(short) => {
            let message = format!(
                "resize does not fit the remaining quota of bureau {bureau}: {}",
                describe(short)
            );
            conditions.push(said.holds(Kind::ResizeBlocked, Reason::QuotaExceeded, message));
            (current_phase, granted(env), None)
        }
    };
    if let Some(over) = shrink {
        let message = format!(
            "spec.quota is below what is already in use ({over}); keeping the current quota"
        );
        conditions.push(said.holds(Kind::QuotaShrinkBlocked, Reason::BelowUsage, message));
    }
    let admitted_at = quota.map(|_| {
        status
            .admitted_at
            .clone()
            .unwrap_or_else(|| Time(Timestamp::now()))
    });
    let status = EnvironmentStatus {
        phase: Some(phase),
        conditions,
        admitted_quota: quota.map(|q| q.to_quota()),
        admitted_at,
        ..EnvironmentStatus::default()
    };
    Record { status, event }
}

/// Whether `current` already says what admission `wanted` to: the same phase, admitted quota and
/// conditions, and none of the conditions admission owns left over that it no longer says.
fn says_the_same(current: &EnvironmentStatus, wanted: &EnvironmentStatus) -> bool {
    let conditions_unchanged = wanted
        .conditions
        .iter()
        .all(|c| has_same(&current.conditions, c))
        && [Kind::ResizeBlocked, Kind::QuotaShrinkBlocked]
            .iter()
            .all(|&kind| {
                find(&current.conditions, kind).is_none()
                    || wanted.conditions.iter().any(|c| c.type_ == kind.as_str())
            });
    current.phase == wanted.phase
        && current.admitted_quota == wanted.admitted_quota
        && conditions_unchanged
}

async fn publish(
    events: &Publisher,
    env: &Environment,
    type_: EventType,
    reason: Reason,
    note: &str,
) {
    let event = Note {
        type_,
        reason: reason.as_str(),
        note: note.to_owned(),
        action: "Admit",
    };
    if let Err(e) = events.publish(&env.object_ref(&()), event).await {
        tracing::debug!(error = %e, "unable to publish an event");
    }
}

/// Rolls allocation, usage and conditions up into the bureau's status, if they changed and the
/// last rollup of this bureau was written at least [`ROLLUP_SPACING`] ago; otherwise says how
/// long it must wait.
async fn report(
    ctx: &Context,
    bureau: &Bureau,
    envs: &[Arc<Environment>],
    allocated: &ResourceAmounts,
) -> Result<Option<Duration>> {
    let over_capacity = over_capacity(ctx).await?;
    let wanted = rollup(bureau, envs, allocated, over_capacity);
    if rolls_up_the_same(&bureau.status.clone().unwrap_or_default(), &wanted) {
        return Ok(None);
    }
    let name = bureau.name_any();
    if let Some(wait) = ctx.rollups.wait(&name, Instant::now()) {
        return Ok(Some(wait));
    }
    let action = format!("update status of bureau {name}");
    ctx.applier.status(MANAGER, bureau, &wanted, action).await?;
    ctx.rollups.wrote(&name, Instant::now());
    Ok(None)
}

/// The bureau controller's part of a bureau's status: what its environments hold (`allocated`)
/// and use, how many there are, and whether the bureau is over its quota or the pool over its
/// capacity (`over_capacity`: by what).
fn rollup(
    bureau: &Bureau,
    envs: &[Arc<Environment>],
    allocated: &ResourceAmounts,
    over_capacity: Option<String>,
) -> BureauStatus {
    let status = bureau.status.clone().unwrap_or_default();
    let said = Observed::new(&status.conditions, bureau.metadata.generation);
    let used = envs
        .iter()
        .filter_map(|e| e.status.as_ref()?.usage.as_ref()?.observed_amounts().ok())
        .fold(ResourceAmounts::ZERO, |total, u| {
            total.checked_add(&u).unwrap_or(total)
        });
    let limit = bureau
        .spec
        .quota
        .to_amounts()
        .unwrap_or(ResourceAmounts::ZERO);
    let over_allocated = if allocated.fits_within(&limit) {
        said.fails(
            Kind::OverAllocated,
            Reason::WithinQuota,
            "admitted environments fit the bureau quota",
        )
    } else {
        let message = format!(
            "admitted environments hold more than the bureau quota: {}",
            describe(&allocated.shortfall(&limit))
        );
        said.holds(Kind::OverAllocated, Reason::QuotaLowered, message)
    };
    let over_capacity = match over_capacity {
        Some(message) => said.holds(Kind::OverCapacity, Reason::PoolOvercommitted, message),
        None => said.fails(
            Kind::OverCapacity,
            Reason::WithinCapacity,
            "all bureau quotas fit the capacity pool",
        ),
    };
    let count = envs
        .iter()
        .filter(|e| e.metadata.deletion_timestamp.is_none())
        .count();
    let burst_sum = |of: fn(&EnvironmentStatus) -> Option<&Quota>| {
        let figures: Vec<ResourceAmounts> = envs
            .iter()
            .filter_map(|e| of(e.status.as_ref()?)?.observed_amounts().ok())
            .collect();
        (!figures.is_empty()).then(|| {
            figures
                .iter()
                .fold(ResourceAmounts::ZERO, |total, a| {
                    total.checked_add(a).unwrap_or(total)
                })
                .to_quota()
        })
    };
    BureauStatus {
        allocated: Some(allocated.to_quota()),
        used: Some(used.to_quota()),
        burst_allowance: burst_sum(|s| s.burst_allowance.as_ref()),
        burst_used: burst_sum(|s| s.burst_usage.as_ref()),
        environments: u32::try_from(count).unwrap_or(u32::MAX),
        observed_generation: bureau.metadata.generation,
        conditions: vec![over_allocated, over_capacity],
        ..BureauStatus::default()
    }
}

/// Whether `current` already says what the rollup `wanted` to (condition times aside).
fn rolls_up_the_same(current: &BureauStatus, wanted: &BureauStatus) -> bool {
    current.allocated == wanted.allocated
        && current.used == wanted.used
        && current.burst_allowance == wanted.burst_allowance
        && current.burst_used == wanted.burst_used
        && current.environments == wanted.environments
        && current.observed_generation == wanted.observed_generation
        && wanted
            .conditions
            .iter()
            .all(|c| has_same(&current.conditions, c))
}

/// Whether the sum of all bureau quotas exceeds the pool's capacity × overcommit, and by what.
async fn over_capacity(ctx: &Context) -> Result<Option<String>> {
    let pool = pool_spec(&ctx.pools)?;
    if pool.capacity == Default::default() {
        return Ok(None);
    }
    let Ok(capacity) = pool.effective_capacity() else {
        return Ok(None);
    };
    let total = ctx
        .bureaus
        .state()
        .iter()
        .filter_map(|b| b.spec.quota.to_amounts().ok())
        .fold(ResourceAmounts::ZERO, |total, q| {
            total.checked_add(&q).unwrap_or(total)
        });
    let mut core = ResourceAmounts::ZERO;
    for r in [Resource::Cpu, Resource::Memory, Resource::Storage] {
        core.set(r, total.get(r));
    }
    let short = core.shortfall(&capacity);
    Ok((!short.is_empty()).then(|| {
        format!(
            "bureau quotas exceed the pool's capacity × overcommit: {}",
            describe(&short)
        )
    }))
}

#[cfg(test)]
mod tests {
    use zhengyun_model::crd::EnvironmentSpec;
    use zhengyun_model::names::Purpose;
    use zhengyun_model::quantity::Quota;

    use super::*;
    use crate::admission::plan;

    const NOW: i64 = 1_000_000_000_000;

    fn cpu(millicores: u64) -> ResourceAmounts {
        ResourceAmounts::ZERO.with(Resource::Cpu, millicores)
    }

    /// An environment of `wjw` created long before [`NOW`], asking for `spec`, holding `held`.
    fn env(name: &str, created: i64, spec: Quota, held: Option<&ResourceAmounts>) -> Environment {
        let spec = EnvironmentSpec {
            bureau: "wjw".into(),
            purpose: Purpose::Dev,
            tier: Default::default(),
            quota: spec,
            services: vec![],
            expires_at: None,
        };
        let mut env = Environment::new(name, spec);
        env.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Timestamp::from_second(created).expect("valid second"),
            ));
        env.status = held.map(|held| EnvironmentStatus {
            phase: Some(EnvironmentPhase::Ready),
            admitted_quota: Some(held.to_quota()),
            ..Default::default()
        });
        env
    }

    fn plan_of(limit: ResourceAmounts, envs: &[Environment]) -> crate::admission::Plan {
        plan(&limit, envs.iter().filter_map(candidate).collect(), NOW)
    }

    #[rstest::rstest]
    #[case::fractional_gpu(Quota::default().with(Resource::Cpu, "4").with(Resource::Gpu, "0.5"))]
    #[case::cpu_beyond_range(Quota::default().with(Resource::Cpu, "1e30"))]
    #[case::minus_zero(Quota::default().with(Resource::Cpu, "-0"))]
    #[case::gibberish(Quota::default().with(Resource::Memory, "lots"))]
    fn an_admitted_environment_whose_spec_does_not_parse_still_holds_its_admitted_quota(
        #[case] edited: Quota,
    ) {
        let admitted = env("wjw-dev", 1_000, edited, Some(&cpu(6_000)));
        let newcomer = env(
            "wjw-dev-2",
            2_000,
            Quota::default().with(Resource::Cpu, "4"),
            None,
        );
        let plan = plan_of(cpu(8_000), &[admitted, newcomer]);
        assert_eq!(plan.allocated, cpu(6_000), "{plan:?}");
        let newcomer = plan.decisions.iter().find(|(n, _)| n == "wjw-dev-2");
        assert!(
            matches!(newcomer, Some((_, Decision::Exceeded(_)))),
            "{plan:?}"
        );
    }

    #[test]
    fn a_waiting_environment_whose_spec_does_not_parse_is_left_out() {
        let waiting = env(
            "wjw-dev",
            1_000,
            Quota::default().with(Resource::Gpu, "0.5"),
            None,
        );
        assert!(candidate(&waiting).is_none());
    }

    #[test]
    fn a_first_grant_admits_the_environment_and_deserves_an_event() {
        let waiting = env(
            "wjw-dev",
            1_000,
            Quota::default().with(Resource::Cpu, "4"),
            None,
        );
        let Record { status, event } =
            admission_record("wjw", &waiting, &Decision::Grant(cpu(4_000)), None);
        assert_eq!(status.phase, Some(EnvironmentPhase::Admitted));
        assert_eq!(status.admitted_quota, Some(cpu(4_000).to_quota()));
        assert!(status.admitted_at.is_some());
        assert_eq!(status.conditions[0].reason, "Admitted");
        assert!(matches!(event, Some((Reason::Admitted, _))));
    }

    #[test]
    fn keeping_what_is_already_recorded_writes_nothing() {
        let held = env(
            "wjw-dev",
            1_000,
            Quota::default().with(Resource::Cpu, "4"),
            Some(&cpu(4_000)),
        );
        let first = admission_record("wjw", &held, &Decision::Keep, None);
        let mut recorded = held.clone();
        recorded.status = Some(first.status.clone());
        let again = admission_record("wjw", &recorded, &Decision::Keep, None);
        assert!(says_the_same(
            recorded.status.as_ref().expect("status"),
            &again.status
        ));
        assert!(again.event.is_none());
    }

    #[test]
    fn an_environment_that_does_not_fit_is_refused_with_what_is_short() {
        let waiting = env(
            "wjw-dev",
            1_000,
            Quota::default().with(Resource::Cpu, "4"),
            None,
        );
        let short = cpu(8_000).shortfall(&cpu(2_000));
        let Record { status, event } =
            admission_record("wjw", &waiting, &Decision::Exceeded(short), None);
        assert_eq!(status.phase, Some(EnvironmentPhase::QuotaExceeded));
        assert_eq!(status.admitted_quota, None);
        let admitted = &status.conditions[0];
        assert_eq!(
            (admitted.status.as_str(), admitted.reason.as_str()),
            ("False", "QuotaExceeded")
        );
        assert!(matches!(event, Some((Reason::QuotaExceeded, _))));
    }

    #[test]
    fn a_refused_shrink_is_said_and_a_lifted_one_is_cleared() {
        let held = env(
            "wjw-dev",
            1_000,
            Quota::default().with(Resource::Cpu, "1"),
            Some(&cpu(4_000)),
        );
        let blocked = admission_record(
            "wjw",
            &held,
            &Decision::Keep,
            Some("cpu: 1 requested but 3 in use"),
        );
        assert!(find(&blocked.status.conditions, Kind::QuotaShrinkBlocked).is_some());
        let mut recorded = held.clone();
        recorded.status = Some(blocked.status);
        let lifted = admission_record("wjw", &recorded, &Decision::Keep, None);
        assert!(
            !says_the_same(recorded.status.as_ref().expect("status"), &lifted.status),
            "the stale QuotaShrinkBlocked condition must be written away"
        );
    }

    #[test]
    fn a_rollup_flags_a_bureau_holding_more_than_its_lowered_quota() {
        let bureau: Bureau = serde_json::from_value(serde_json::json!({
            "apiVersion": "zhengyun.io/v1alpha1", "kind": "Bureau", "metadata": {"name": "wjw"},
            "spec": {"displayName": "卫健委", "kind": "bureau", "quota": {"cpu": "2"}},
        }))
        .expect("bureau");
        let envs = vec![Arc::new(env(
            "wjw-dev",
            1_000,
            Quota::default(),
            Some(&cpu(4_000)),
        ))];
        let status = rollup(&bureau, &envs, &cpu(4_000), None);
        let over = find(&status.conditions, Kind::OverAllocated).expect("condition");
        assert_eq!(
            (over.status.as_str(), over.reason.as_str()),
            ("True", "QuotaLowered")
        );
        assert_eq!(status.environments, 1);
        assert!(!rolls_up_the_same(&BureauStatus::default(), &status));
    }
}
