//! The `RateCard` status: one condition, `InForce`, saying from which instant the card prices
//! usage — local midnight of its `effectiveFrom` (reason `AsDated`), or the moment it was
//! created when that came later and another card already priced its first day (reason
//! `FromCreation`: a back-dated card never reprices what was already shown). `False` with
//! reason `Conflicting` when the cards in the cluster do not make one schedule (which admission
//! normally prevents).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use zhengyun_metering::{Calendar, RateSchedule};
use zhengyun_model::crd::{Condition, RateCard, RateCardStatus};

use crate::conditions::{Kind, Observed, Reason, has_same};
use crate::runtime::applier::Applier;
use crate::{Error, MANAGER, Result};

/// What the rate-card controller reads.
pub(crate) struct Context {
    pub applier: Applier,
    pub cards: Store<RateCard>,
    pub calendar: Calendar,
}

/// Sets `card`'s `InForce` condition when it differs from the one it has.
pub(crate) async fn reconcile(card: Arc<RateCard>, ctx: Arc<Context>) -> Result<Action> {
    let all = ctx.cards.state();
    let previous = card
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let wanted = in_force_condition(&card, &all, &ctx.calendar, previous);
    if !has_same(previous, &wanted) {
        ctx.applier
            .status(
                MANAGER,
                &*card,
                &RateCardStatus {
                    conditions: vec![wanted],
                },
                format!("set the status of RateCard {}", card.name_any()),
            )
            .await?;
    }
    // Another card can change this one's standing (the first card's exception): look again.
    Ok(Action::requeue(Duration::from_secs(3600)))
}

/// Retries a failed status write after a while.
pub(crate) fn error_policy(_card: Arc<RateCard>, _error: &Error, _ctx: Arc<Context>) -> Action {
    Action::requeue(Duration::from_secs(30))
}

/// The `InForce` condition of `card` among `all` the cards in the cluster.
pub fn in_force_condition(
    card: &RateCard,
    all: &[Arc<RateCard>],
    calendar: &Calendar,
    previous: &[Condition],
) -> Condition {
    let generation = card.metadata.generation;
    let said = Observed::new(previous, generation);
    let conflicting = |e: String| {
        said.fails(
            Kind::InForce,
            Reason::Conflicting,
            format!("the rate cards in the cluster do not make one schedule: {e}"),
        )
    };
    let schedule = match RateSchedule::from_objects(all.iter().map(|c| &**c)) {
        Ok(schedule) => schedule,
        Err(e) => return conflicting(e.to_string()),
    };
    let Some(date) = card.spec.effective_date() else {
        return conflicting(format!(
            "effectiveFrom {:?} is not a date",
            card.spec.effective_from
        ));
    };
    let (from, midnight) = match (
        schedule.in_force_from(date, calendar),
        calendar.start_of_day(date),
    ) {
        (Ok(Some(from)), Ok(midnight)) => (from, midnight),
        (Err(e), _) | (_, Err(e)) => return conflicting(e.to_string()),
        (Ok(None), _) => return conflicting("the card is not in the schedule".to_owned()),
    };
    if from == midnight {
        said.holds(
            Kind::InForce,
            Reason::AsDated,
            format!(
                "prices usage from {} ({})",
                local(from, calendar),
                calendar.name()
            ),
        )
    } else {
        said.holds(
            Kind::InForce,
            Reason::FromCreation,
            format!(
                "effectiveFrom {date} began before this card was created; it prices usage only \
                 from its creation, {} ({}), so that it reprices nothing already shown",
                local(from, calendar),
                calendar.name()
            ),
        )
    }
}

fn local(at: Timestamp, calendar: &Calendar) -> String {
    at.to_zoned(calendar.time_zone().clone())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(name: &str, effective_from: &str, created: &str) -> Arc<RateCard> {
        let prices = serde_json::json!({"cpuCoreHour": "0.12", "memoryGibHour": "0.015", "storageGibHour": "0.0012", "gpuHour": "12"});
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "zhengyun.io/v1alpha1", "kind": "RateCard",
                "metadata": {"name": name, "creationTimestamp": created},
                "spec": {"effectiveFrom": effective_from,
                         "prices": {"gold": prices, "silver": prices, "bronze": prices}},
            }))
            .expect("card"),
        )
    }

    #[test]
    fn a_back_dated_card_says_it_applies_only_from_its_creation() {
        let calendar = Calendar::default();
        let first = card("rates-2026", "2026-01-01", "2026-03-01T00:00:00Z");
        let back = card("rates-2026-07", "2026-07-01", "2026-11-21T03:00:00Z");
        let all = vec![first.clone(), back.clone()];
        let said = in_force_condition(&back, &all, &calendar, &[]);
        assert_eq!(
            (said.status.as_str(), said.reason.as_str()),
            ("True", "FromCreation")
        );
        assert!(
            said.message.contains("2026-11-21 11:00:00"),
            "{}",
            said.message
        );
        let first_said = in_force_condition(&first, &all, &calendar, &[]);
        assert_eq!(
            first_said.reason, "AsDated",
            "the first card applies as dated"
        );
        assert!(
            first_said.message.contains("2026-01-01 00:00:00"),
            "{}",
            first_said.message
        );
    }

    #[test]
    fn two_cards_on_one_date_are_reported_as_conflicting() {
        let calendar = Calendar::default();
        let a = card("a", "2026-01-01", "2026-03-01T00:00:00Z");
        let b = card("b", "2026-01-01", "2026-03-02T00:00:00Z");
        let said = in_force_condition(&b, &[a, b.clone()], &calendar, &[]);
        assert_eq!(
            (said.status.as_str(), said.reason.as_str()),
            ("False", "Conflicting")
        );
    }
}
