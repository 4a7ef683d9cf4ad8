//! Settling each metering window's borrowed capacity as the ledger writes it (see
//! [`zhengyun_metering::settlement`]): the terms come from the CapacityPool's borrowing policy
//! and the rate card in force when the window starts.

use zhengyun_metering::settlement::{Settled, WindowSettler, WindowTerms};
use zhengyun_metering::{Calendar, RateCard, UsageInterval};
use zhengyun_model::crd::{Borrowing, CapacityPoolSpec, TierPriorityClasses};
use zhengyun_store::Settle;

/// What metering reads from the CapacityPool: which pods are burst, and the settlement's
/// shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolTerms {
    /// The burst PriorityClass: pods of it are metered as burst, not consumed.
    pub burst_class: String,
    /// The burst price in percent of the consumption price.
    pub burst_price_percent: u32,
    /// The lenders' share of burst revenue in percent.
    pub lender_share_percent: u32,
}

impl PoolTerms {
    /// The terms of `pool`.
    pub fn of(pool: &CapacityPoolSpec) -> Self {
        Self {
            burst_class: pool.priority_classes.burst.clone(),
            burst_price_percent: pool.borrowing.burst_price_percent,
            lender_share_percent: pool.borrowing.lender_share_percent,
        }
    }

    /// Whether `pod` runs as burst.
    pub fn is_burst(&self, pod: &k8s_openapi::api::core::v1::Pod) -> bool {
        pod.spec
            .as_ref()
            .and_then(|s| s.priority_class_name.as_deref())
            == Some(self.burst_class.as_str())
    }
}

impl Default for PoolTerms {
    /// The terms of a pool that sets none (or while none can be read).
    fn default() -> Self {
        let borrowing = Borrowing::default();
        Self {
            burst_class: TierPriorityClasses::default().burst,
            burst_price_percent: borrowing.burst_price_percent,
            lender_share_percent: borrowing.lender_share_percent,
        }
    }
}

/// Settles one window for the ledger's transaction.
pub struct WindowSettle<'a> {
    settler: WindowSettler,
    calendar: &'a Calendar,
    card: Option<&'a RateCard>,
    terms: &'a PoolTerms,
    failed: Option<String>,
}

impl<'a> WindowSettle<'a> {
    /// A settlement at `terms`, priced by `card` (the card in force when the window starts;
    /// `None` if none is).
    pub fn new(calendar: &'a Calendar, card: Option<&'a RateCard>, terms: &'a PoolTerms) -> Self {
        Self {
            settler: WindowSettler::default(),
            calendar,
            card,
            terms,
            failed: None,
        }
    }
}

impl Settle for WindowSettle<'_> {
    fn observe(&mut self, batch: &[UsageInterval]) {
        for interval in batch {
            if let Err(e) = self.settler.add(interval, self.calendar) {
                self.failed.get_or_insert(e.to_string());
            }
        }
    }

    fn settled(&mut self) -> Result<Vec<Settled>, String> {
        if let Some(failed) = self.failed.take() {
            return Err(failed);
        }
        let settler = std::mem::take(&mut self.settler);
        if !settler.has_burst() {
            return Ok(Vec::new());
        }
        let Some(card) = self.card else {
            tracing::warn!(
                "burst usage in a window before any rate card is in force is not settled"
            );
            return Ok(Vec::new());
        };
        let terms = WindowTerms {
            card,
            burst_price_percent: self.terms.burst_price_percent,
            lender_share_percent: self.terms.lender_share_percent,
        };
        settler.settle(&terms).map_err(|e| e.to_string())
    }
}
