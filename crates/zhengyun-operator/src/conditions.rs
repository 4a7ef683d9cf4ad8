//! Standard `metav1.Condition`s: built with a transition time that only moves when the status
//! actually changes, so a converged object's status is byte-for-byte stable.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// A condition of `type_`, keeping `last_transition_time` from `previous` when the status is unchanged.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    let status = if status { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: since,
        observed_generation: generation,
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

/// The condition of `type_`, if any.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}
