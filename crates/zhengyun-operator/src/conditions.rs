//! Standard `metav1.Condition`s, with their types and reasons as enums: built with a transition
//! time that only moves when the status actually changes, so a converged object's status is
//! byte-for-byte stable.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Declares a string-valued enum whose variants are spelt as they appear in the cluster.
macro_rules! spelt {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// How it is spelt in the cluster.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => stringify!($variant)),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

spelt! {
    /// The `type` of a condition the operator writes.
    Kind {
        /// Environment: admission's decision (written by the admission field manager).
        Admitted,
        /// Environment: its namespace and everything inside are in place.
        Ready,
        /// Environment: a resize waits for room in the bureau's quota.
        ResizeBlocked,
        /// Environment: `spec.quota` is below what is already in use.
        QuotaShrinkBlocked,
        /// Environment: a dev or test environment is about to expire.
        ExpiresSoon,
        /// Bureau: admitted environments hold more than the bureau's quota.
        OverAllocated,
        /// Bureau: the bureau quotas together exceed the capacity pool.
        OverCapacity,
        /// RateCard: whether and from when the card prices usage.
        InForce,
    }
}

spelt! {
    /// The `reason` of a condition the operator writes (also the reason of its Events).
    Reason {
        /// Admitted within the bureau's quota.
        Admitted,
        /// Does not fit the bureau's remaining quota.
        QuotaExceeded,
        /// Asked below what its pods and volumes use.
        BelowUsage,
        /// Its bureau does not exist.
        BureauNotFound,
        /// Its namespace is gone and its quota given back.
        Released,
        /// Its namespace is in place.
        NamespaceReady,
        /// Its namespace is not Active yet.
        NamespaceNotActive,
        /// A namespace of its name belongs to something else.
        NamespaceConflict,
        /// It is being deleted.
        Terminating,
        /// It expires soon.
        ExpiresSoon,
        /// The bureau's quota was lowered below what is admitted.
        QuotaLowered,
        /// Admitted environments fit the bureau's quota.
        WithinQuota,
        /// Bureau quotas exceed the pool's capacity × overcommit.
        PoolOvercommitted,
        /// Bureau quotas fit the pool.
        WithinCapacity,
        /// The rate cards do not make one schedule.
        Conflicting,
        /// The card prices usage from its effective date.
        AsDated,
        /// The card prices usage from its creation only.
        FromCreation,
        /// Event: the environment expired and is deleted.
        Expired,
        /// Event: the namespace and everything in it are in place.
        Ready,
    }
}

/// Whether a condition holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// It holds (`"True"`).
    True,
    /// It does not (`"False"`).
    False,
}

impl Status {
    /// How it is spelt in the cluster.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
        }
    }
}

/// What an object's status already says, and the generation a new condition describes: the
/// source of each condition written about it.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    previous: &'a [Condition],
    generation: Option<i64>,
}

impl<'a> Observed<'a> {
    /// Conditions about an object that has `previous` and is at `generation`.
    pub fn new(previous: &'a [Condition], generation: Option<i64>) -> Self {
        Self {
            previous,
            generation,
        }
    }

    /// A condition of `kind` that holds.
    pub fn holds(&self, kind: Kind, reason: Reason, message: impl Into<String>) -> Condition {
        self.condition(kind, Status::True, reason, message)
    }

    /// A condition of `kind` that does not hold.
    pub fn fails(&self, kind: Kind, reason: Reason, message: impl Into<String>) -> Condition {
        self.condition(kind, Status::False, reason, message)
    }

    /// A condition of `kind`, keeping `lastTransitionTime` from the previous one of that kind
    /// when its status is unchanged.
    pub fn condition(
        &self,
        kind: Kind,
        status: Status,
        reason: Reason,
        message: impl Into<String>,
    ) -> Condition {
        let since = self
            .previous
            .iter()
            .find(|c| c.type_ == kind.as_str() && c.status == status.as_str())
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| Time(Timestamp::now()));
        Condition {
            type_: kind.as_str().into(),
            status: status.as_str().into(),
            reason: reason.as_str().into(),
            message: message.into(),
            last_transition_time: since,
            observed_generation: self.generation,
        }
    }
}

/// Whether `conditions` already has a condition equal to `wanted` (ignoring the time).
pub fn has_same(conditions: &[Condition], wanted: &Condition) -> bool {
    conditions.iter().any(|c| {
        c.type_ == wanted.type_
            && c.status == wanted.status
            && c.reason == wanted.reason
            && c.message == wanted.message
    })
}

/// The condition of `kind`, if any.
pub fn find(conditions: &[Condition], kind: Kind) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == kind.as_str())
}

/// Whether `condition` says `status`.
pub fn says(condition: &Condition, status: Status) -> bool {
    condition.status == status.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_whose_status_is_unchanged_keeps_its_transition_time() {
        let then = Time(Timestamp::from_second(1_000).expect("valid"));
        let previous = Condition {
            last_transition_time: then.clone(),
            ..Observed::new(&[], Some(1)).holds(Kind::Ready, Reason::NamespaceReady, "old")
        };
        let next = Observed::new(std::slice::from_ref(&previous), Some(2)).holds(
            Kind::Ready,
            Reason::NamespaceReady,
            "new",
        );
        assert_eq!(next.last_transition_time, then);
        assert_eq!(next.observed_generation, Some(2));
        assert_eq!(next.message, "new");
    }

    #[test]
    fn a_condition_whose_status_flips_gets_a_new_transition_time() {
        let then = Time(Timestamp::from_second(1_000).expect("valid"));
        let previous = Condition {
            last_transition_time: then.clone(),
            ..Observed::new(&[], None).holds(Kind::Ready, Reason::NamespaceReady, "ready")
        };
        let next = Observed::new(std::slice::from_ref(&previous), None).fails(
            Kind::Ready,
            Reason::Terminating,
            "going",
        );
        assert_ne!(next.last_transition_time, then);
        assert_eq!(
            (next.status.as_str(), next.reason.as_str()),
            ("False", "Terminating")
        );
    }

    #[test]
    fn kinds_and_reasons_are_spelt_as_their_names() {
        assert_eq!(Kind::QuotaShrinkBlocked.as_str(), "QuotaShrinkBlocked");
        assert_eq!(Reason::PoolOvercommitted.to_string(), "PoolOvercommitted");
        assert_eq!(Status::False.as_str(), "False");
    }

    #[test]
    fn the_same_condition_is_found_whatever_its_time() {
        let said = Observed::new(&[], None).holds(Kind::InForce, Reason::AsDated, "m");
        let again = Condition {
            last_transition_time: Time(Timestamp::from_second(5).expect("valid")),
            ..said.clone()
        };
        assert!(has_same(&[said], &again));
        assert!(
            find(std::slice::from_ref(&again), Kind::InForce)
                .is_some_and(|c| says(c, Status::True))
        );
    }
}
