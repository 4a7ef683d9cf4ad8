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

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder};
use kube::{Api, Client, Resource as _, ResourceExt};
use serde_json::json;
use zhengyun_model::crd::{Bureau, Environment, EnvironmentPhase, Time};
use zhengyun_model::quantity::{Resource, ResourceAmounts, Shortfall};

use crate::admission::{Candidate, Decision, plan};
use crate::conditions::{condition, find, has_same};
use crate::environments::{granted, pool_spec};
use crate::metrics::Metrics;
use crate::recent::RecentWrites;
use crate::resources::QUOTA_NAME;
use crate::spacing::Spacing;
use crate::{ADMISSION_MANAGER, Error, MANAGER, Result, apply};

const CONTROLLER: &str = "bureau";
/// How far apart two writes of one bureau's rollup are at least (see [`Spacing`]).
pub(crate) const ROLLUP_SPACING: Duration = Duration::from_secs(2);
/// Admission decisions of one bureau written at once.
const DECISIONS_AT_ONCE: usize = 8;

/// What the bureau controller needs.
pub(crate) struct Context {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    pub bureaus: kube::runtime::reflector::Store<Bureau>,
    pub pools: kube::runtime::reflector::Store<zhengyun_model::crd::CapacityPool>,
    /// Every environment, as the watch last saw it.
    pub envs: kube::runtime::reflector::Store<Environment>,
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
    let cached = ctx
        .envs
        .state()
        .into_iter()
        .filter(|e| of_bureau(e))
        .collect();
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
    let quota = Api::<ResourceQuota>::namespaced(client.clone(), &ns)
        .get_opt(QUOTA_NAME)
        .await
        .map_err(Error::kube(format!("read ResourceQuota of {ns}")))?;
    let used = quota
        .and_then(|q| q.status)
        .and_then(|s| s.used)
        .unwrap_or_default();
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

/// Writes admission's part of an environment's status, if it changed.
async fn record(
    ctx: &Context,
    bureau: &Bureau,
    env: &Environment,
    decision: &Decision,
    shrink: Option<&str>,
) -> Result<()> {
    let status = env.status.clone().unwrap_or_default();
    let generation = env.metadata.generation;
    let bureau_name = bureau.name_any();
    let mut conditions = Vec::new();
    let (phase, quota, transition) = match decision {
        Decision::Keep => (
            status.phase.unwrap_or(EnvironmentPhase::Admitted),
            granted(env),
            None,
        ),
        Decision::Grant(q) => {
            let newly = status.admitted_quota.is_none();
            let phase = if newly {
                EnvironmentPhase::Admitted
            } else {
                status.phase.unwrap_or(EnvironmentPhase::Admitted)
            };
            (
                phase,
                Some(*q),
                newly.then_some((
                    "Admitted",
                    format!("admitted within the quota of bureau {bureau_name}"),
                )),
            )
        }
        Decision::Exceeded(short) => {
            let message = format!(
                "does not fit the remaining quota of bureau {bureau_name}: {}",
                describe(short)
            );
            let newly = status.phase != Some(EnvironmentPhase::QuotaExceeded);
            (
                EnvironmentPhase::QuotaExceeded,
                None,
                newly.then_some(("QuotaExceeded", message)),
            )
        }
        Decision::ResizeBlocked(short) => {
            let message = format!(
                "resize does not fit the remaining quota of bureau {bureau_name}: {}",
                describe(short)
            );
            conditions.push(condition(
                &status.conditions,
                "ResizeBlocked",
                true,
                "QuotaExceeded",
                message,
                generation,
            ));
            (
                status.phase.unwrap_or(EnvironmentPhase::Admitted),
                granted(env),
                None,
            )
        }
    };
    let admitted = match decision {
        Decision::Exceeded(short) => condition(
            &status.conditions,
            "Admitted",
            false,
            "QuotaExceeded",
            format!(
                "does not fit the remaining quota of bureau {bureau_name}: {}",
                describe(short)
            ),
            generation,
        ),
        _ => condition(
            &status.conditions,
            "Admitted",
            true,
            "Admitted",
            format!("admitted within the quota of bureau {bureau_name}"),
            generation,
        ),
    };
    conditions.insert(0, admitted);
    if let Some(over) = shrink {
        let message = format!(
            "spec.quota is below what is already in use ({over}); keeping the current quota"
        );
        conditions.push(condition(
            &status.conditions,
            "QuotaShrinkBlocked",
            true,
            "BelowUsage",
            message,
            generation,
        ));
    }
    let admitted_at = match (&quota, &status.admitted_at) {
        (Some(_), Some(at)) => Some(at.clone()),
        (Some(_), None) => Some(Time(Timestamp::now())),
        (None, _) => None,
    };
    let quota = quota.map(|q| q.to_quota());
    let owned_conditions_unchanged = conditions.iter().all(|c| has_same(&status.conditions, c))
        && ["ResizeBlocked", "QuotaShrinkBlocked"].iter().all(|t| {
            find(&status.conditions, t).is_none() || conditions.iter().any(|c| c.type_ == *t)
        });
    if status.phase == Some(phase) && status.admitted_quota == quota && owned_conditions_unchanged {
        return Ok(());
    }
    let mut body = json!({"phase": phase, "conditions": conditions});
    if let Some(q) = &quota {
        body["admittedQuota"] = json!(q);
        body["admittedAt"] = json!(admitted_at);
    }
    let action = format!("record admission of environment {}", env.name_any());
    let written = apply::status(&ctx.client, ADMISSION_MANAGER, env, body, action).await?;
    ctx.decided.remember(written);
    if let Some((reason, note)) = transition {
        let type_ = if reason == "Admitted" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        publish(&ctx.recorder, env, type_, reason, &note).await;
    }
    Ok(())
}

async fn publish(
    recorder: &Recorder,
    env: &Environment,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let event = KubeEvent {
        type_,
        reason: reason.into(),
        note: Some(note.into()),
        action: "Admit".into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &env.object_ref(&())).await {
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
    let status = bureau.status.clone().unwrap_or_default();
    let generation = bureau.metadata.generation;
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
    let over_allocated = !allocated.fits_within(&limit);
    let over_capacity = over_capacity(ctx).await?;
    let conditions = vec![
        condition(
            &status.conditions,
            "OverAllocated",
            over_allocated,
            if over_allocated {
                "QuotaLowered"
            } else {
                "WithinQuota"
            },
            if over_allocated {
                format!(
                    "admitted environments hold more than the bureau quota: {}",
                    describe(&allocated.shortfall(&limit))
                )
            } else {
                "admitted environments fit the bureau quota".to_owned()
            },
            generation,
        ),
        condition(
            &status.conditions,
            "OverCapacity",
            over_capacity.is_some(),
            if over_capacity.is_some() {
                "PoolOvercommitted"
            } else {
                "WithinCapacity"
            },
            over_capacity.unwrap_or_else(|| "all bureau quotas fit the capacity pool".to_owned()),
            generation,
        ),
    ];
    let count = u32::try_from(
        envs.iter()
            .filter(|e| e.metadata.deletion_timestamp.is_none())
            .count(),
    )
    .unwrap_or(u32::MAX);
    let allocated_q = allocated.to_quota();
    let used_q = used.to_quota();
    if status.allocated.as_ref() == Some(&allocated_q)
        && status.used.as_ref() == Some(&used_q)
        && status.environments == count
        && status.observed_generation == generation
        && conditions.iter().all(|c| has_same(&status.conditions, c))
    {
        return Ok(None);
    }
    let name = bureau.name_any();
    if let Some(wait) = ctx.rollups.wait(&name, Instant::now()) {
        return Ok(Some(wait));
    }
    let body = json!({
        "allocated": allocated_q, "used": used_q, "environments": count,
        "observedGeneration": generation, "conditions": conditions,
    });
    let action = format!("update status of bureau {name}");
    apply::status(&ctx.client, MANAGER, bureau, body, action).await?;
    ctx.rollups.wrote(&name, Instant::now());
    Ok(None)
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
    use zhengyun_model::crd::{EnvironmentSpec, EnvironmentStatus};
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
}
