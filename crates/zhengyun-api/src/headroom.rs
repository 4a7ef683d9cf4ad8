//! How much of a bureau's quota is left for one more environment (or a larger one), and what
//! the bureau's quota would have to be for it to fit. Pure arithmetic on the objects the API
//! read; the operator's admission stays the authority (docs/architecture.md, invariant 1), this
//! only lets the API give a friendly answer before it writes anything.
//!
//! Every environment of the bureau counts with its requested quota, admitted or not: the ones
//! waiting (`QuotaExceeded`) are ahead in the operator's queue, so a newcomer only fits in what
//! is left after them.

use zhengyun_model::{
    crd::Environment,
    quantity::{Quantity, QuantityError, Quota, Resource, ResourceAmounts, Shortfall},
};

use crate::problem::Problem;

/// The bureau's quota and what its environments already ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Headroom {
    limit: ResourceAmounts,
    committed: ResourceAmounts,
}

/// `quota` parsed; a quantity that does not parse is 409, naming `what` holds it.
pub(crate) fn amounts(quota: &Quota, what: &str) -> Result<ResourceAmounts, Problem> {
    quota.to_amounts().map_err(unusable(what))
}

/// The 409 of a quantity in the cluster that does not parse, held by `what`.
pub(crate) fn unusable(what: &str) -> impl FnOnce((Resource, QuantityError)) -> Problem + '_ {
    move |(resource, error)| {
        Problem::conflict(format!(
            "{what} has an unusable {resource} quantity ({error}); fix it with kubectl first"
        ))
    }
}

impl Headroom {
    /// The headroom of a bureau with quota `limit` whose environments are `environments`,
    /// leaving out the environment named `except` (the one being resized).
    pub fn new<'a>(
        limit: &Quota,
        environments: impl IntoIterator<Item = &'a Environment>,
        except: Option<&str>,
    ) -> Result<Self, Problem> {
        let requested = environments
            .into_iter()
            .filter(|env| env.metadata.name.as_deref() != except)
            .map(|env| (env, &env.spec.quota));
        Ok(Self {
            limit: amounts(limit, "the bureau")?,
            committed: sum(requested)?,
        })
    }

    /// What is missing for `wanted` to fit; empty when it fits.
    pub fn shortfall(&self, wanted: &ResourceAmounts) -> Vec<Shortfall> {
        wanted.shortfall(&self.available())
    }

    /// What is left per resource; nothing (not an underflow) where the bureau is overcommitted.
    fn available(&self) -> ResourceAmounts {
        let mut available = ResourceAmounts::default();
        for resource in Resource::ALL {
            let left = self
                .limit
                .get(resource)
                .saturating_sub(self.committed.get(resource));
            available.set(resource, left);
        }
        available
    }

    /// The smallest bureau quota, at least the current one, in which `wanted` fits: each
    /// resource raised to what the environments plus `wanted` need.
    pub fn raised_limit(&self, current: &Quota, wanted: &ResourceAmounts) -> Quota {
        let mut raised = current.clone();
        for resource in Resource::ALL {
            let need = self
                .committed
                .get(resource)
                .saturating_add(wanted.get(resource));
            if need > self.limit.get(resource) {
                raised.set(
                    resource,
                    Some(Quantity::from_base_units(need, resource.unit())),
                );
            }
        }
        raised
    }
}

/// What `limit` lacks to cover the quotas already admitted to `environments` (those waiting
/// hold nothing); empty when the admitted environments fit.
pub fn below_admitted(
    limit: &Quota,
    environments: &[Environment],
) -> Result<Vec<Shortfall>, Problem> {
    let admitted = environments
        .iter()
        .filter_map(|env| Some((env, env.status.as_ref()?.admitted_quota.as_ref()?)));
    Ok(sum(admitted)?.shortfall(&amounts(limit, "the new quota")?))
}

/// What `limit` lacks to cover `allocated` (a bureau's status: Σ of what the operator has
/// admitted); empty when it is covered.
pub fn below_allocated(limit: &Quota, allocated: &Quota) -> Result<Vec<Shortfall>, Problem> {
    Ok(amounts(allocated, "the bureau's allocation")?.shortfall(&amounts(limit, "the new quota")?))
}

/// Σ of the environments' `quotas`.
fn sum<'a>(
    quotas: impl Iterator<Item = (&'a Environment, &'a Quota)>,
) -> Result<ResourceAmounts, Problem> {
    let mut total = ResourceAmounts::default();
    for (env, quota) in quotas {
        let name = env.metadata.name.as_deref().unwrap_or_default();
        let quota = amounts(quota, &format!("environment {name}"))?;
        total = total.checked_add(&quota).ok_or_else(|| {
            Problem::conflict("the bureau's environments add up beyond any quota")
        })?;
    }
    Ok(total)
}

/// "cpu: needs 4, 2 left; memory: …" for a shortfall list.
pub fn describe(shortfall: &[Shortfall]) -> String {
    shortfall
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The amounts of a validated quota (validation has already named any bad field).
pub fn wanted(quota: &Quota) -> Result<ResourceAmounts, Problem> {
    quota.to_amounts().map_err(|(resource, error)| {
        Problem::invalid_field(format!("quota.{resource}"), error.to_string())
    })
}

#[cfg(test)]
mod tests {
    use zhengyun_model::{crd::EnvironmentSpec, names::Tier};

    use super::*;

    fn env(name: &str, cpu: &str, memory: &str) -> Environment {
        let (bureau, purpose) = zhengyun_model::names::parse_environment_name(name).expect("name");
        Environment::new(
            name,
            EnvironmentSpec {
                bureau: bureau.to_owned(),
                purpose,
                tier: Tier::Silver,
                quota: Quota::default()
                    .with(Resource::Cpu, cpu)
                    .with(Resource::Memory, memory),
                services: Vec::new(),
                expires_at: None,
            },
        )
    }

    fn quota(cpu: &str, memory: &str) -> Quota {
        Quota::default()
            .with(Resource::Cpu, cpu)
            .with(Resource::Memory, memory)
    }

    #[test]
    fn a_request_fits_in_what_the_other_environments_leave() {
        let envs = [env("wjw-dev", "4", "8Gi"), env("wjw-test", "2", "4Gi")];
        let room = Headroom::new(&quota("8", "16Gi"), &envs, None).expect("headroom");
        let fits = wanted(&quota("2", "4Gi")).expect("amounts");
        assert!(room.shortfall(&fits).is_empty());
        let too_big = wanted(&quota("3", "4Gi")).expect("amounts");
        let short = room.shortfall(&too_big);
        assert_eq!(short.len(), 1);
        assert_eq!(short[0].resource, Resource::Cpu);
        assert_eq!(short[0].missing(), 1000);
    }

    #[test]
    fn a_resize_leaves_the_environment_itself_out() {
        let envs = [env("wjw-dev", "4", "8Gi"), env("wjw-test", "2", "4Gi")];
        let room = Headroom::new(&quota("8", "16Gi"), &envs, Some("wjw-dev")).expect("headroom");
        assert!(
            room.shortfall(&wanted(&quota("6", "12Gi")).expect("a"))
                .is_empty()
        );
        assert!(
            !room
                .shortfall(&wanted(&quota("7", "12Gi")).expect("a"))
                .is_empty()
        );
    }

    #[test]
    fn an_overcommitted_bureau_has_no_room_and_no_underflow() {
        let envs = [env("wjw-dev", "10", "8Gi")];
        let room = Headroom::new(&quota("8", "16Gi"), &envs, None).expect("headroom");
        let short = room.shortfall(&wanted(&quota("1", "1Gi")).expect("a"));
        assert_eq!(short.len(), 1);
        assert_eq!(short[0].resource, Resource::Cpu);
    }

    #[test]
    fn the_raised_limit_covers_exactly_the_shortfall_and_never_lowers() {
        let envs = [env("wjw-dev", "4", "8Gi")];
        let limit = quota("8", "64Gi");
        let room = Headroom::new(&limit, &envs, None).expect("headroom");
        let raised = room.raised_limit(&limit, &wanted(&quota("6", "8Gi")).expect("a"));
        assert_eq!(raised.cpu.as_ref().map(|q| q.as_str()), Some("10"));
        assert_eq!(raised.memory.as_ref().map(|q| q.as_str()), Some("64Gi"));
        let after = Headroom::new(&raised, &envs, None).expect("headroom");
        assert!(
            after
                .shortfall(&wanted(&quota("6", "8Gi")).expect("a"))
                .is_empty()
        );
    }
}
