//! The current month's budget figures of every bureau — charges to date (adjustments booked to
//! the month included), the month-end forecast, the month's share of the budget and where the
//! charges stand against it — for the finance metrics and for `Bureau.status`.
//!
//! The month's budget is its share by length of twelve monthly budgets, and the forecast is
//! linear on the seconds the ledger covers (see `zhengyun_metering::proration`). The level
//! (ok / warning / exceeded) compares the charges to date, adjustments included, with the
//! month's budget.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use kube::runtime::reflector::Store as Reflection;
use kube::{Client, ResourceExt};
use rust_decimal::Decimal;
use zhengyun_metering::{
    AdjustmentLine, BudgetStatus, Calendar, Month, budget_status, forecast_month_end, month_budget,
};
use zhengyun_model::crd::{Bureau, BureauStatus};

use super::MeteringMetrics;
use crate::runtime::applier::Applier;
use crate::runtime::watches::reflected;

/// Field manager of the cost fields of `Bureau.status`.
pub const MANAGER: &str = "zhengyun-metering";
/// How often the status writer looks for new figures.
const WRITE_EVERY: Duration = Duration::from_secs(5);

/// One bureau's figures for the current month.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BureauFigures {
    /// Charges so far: the statement's amount plus the adjustments booked to the month.
    pub cost_to_date: Decimal,
    /// The month-end forecast, adjustments included; `None` before the ledger covers any of
    /// the month.
    pub forecast: Option<Decimal>,
    /// The month's share of the budget, and where the charges stand against it.
    pub budget: Option<BudgetStatus>,
}

/// Every bureau's figures for one month.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MonthFigures {
    /// The month.
    pub month: Option<Month>,
    /// By bureau code.
    pub bureaus: BTreeMap<String, BureauFigures>,
}

/// The figures of `month` for `bureaus` (every bureau known, with or without usage), from the
/// month statement's bureau `amounts` (see `Store::month_amounts`), given their monthly
/// budgets, the adjustments booked to the month and the instant up to which the ledger covers
/// it.
pub fn month_figures(
    month: Month,
    amounts: &BTreeMap<String, Decimal>,
    adjustments: &[AdjustmentLine],
    bureaus: &BTreeSet<String>,
    monthly_budgets: &BTreeMap<String, Decimal>,
    calendar: &Calendar,
    covered_until: Option<Timestamp>,
) -> zhengyun_metering::Result<MonthFigures> {
    let mut adjusted: BTreeMap<&str, Decimal> = BTreeMap::new();
    for line in adjustments.iter().filter(|l| l.month == month) {
        *adjusted.entry(line.key.meter.bureau()).or_default() += line.amount;
    }
    let mut figures = BTreeMap::new();
    for bureau in bureaus {
        let usage = amounts.get(bureau).copied().unwrap_or(Decimal::ZERO);
        let adjustment = adjusted.get(bureau.as_str()).copied().unwrap_or_default();
        let mut cost_to_date = (usage + adjustment).round_dp(2);
        cost_to_date.rescale(2);
        let forecast = match covered_until {
            Some(at) => {
                forecast_month_end(usage.round_dp(2), month, at, calendar)?.map(|f| f + adjustment)
            }
            None => None,
        };
        let budget = monthly_budgets
            .get(bureau)
            .map(|&monthly| {
                let share = month_budget(monthly, month, calendar)?;
                budget_status(share, cost_to_date)
            })
            .transpose()?;
        figures.insert(
            bureau.clone(),
            BureauFigures {
                cost_to_date,
                forecast,
                budget,
            },
        );
    }
    Ok(MonthFigures {
        month: Some(month),
        bureaus: figures,
    })
}

/// Computes the current month's figures from its statement's bureau `amounts` and hands them
/// to the metrics (and so to the status writer). Failures are logged; the previous figures
/// stay.
pub(crate) async fn report(
    store: &zhengyun_store::Store,
    calendar: &Calendar,
    bureaus: &Reflection<Bureau>,
    month: Month,
    amounts: &BTreeMap<String, Decimal>,
    monthly: &BTreeMap<String, Decimal>,
    metrics: &MeteringMetrics,
) {
    let adjustments = match store.adjustments(month).await {
        Ok(lines) => lines,
        Err(e) => {
            tracing::warn!(error = %e, "unable to read the month's adjustments");
            metrics.store_failed();
            return;
        }
    };
    let covered_until = match store.checkpoint(super::STREAM).await {
        Ok(at) => at,
        Err(e) => {
            tracing::warn!(error = %e, "unable to read the ledger's checkpoint");
            metrics.store_failed();
            return;
        }
    };
    let names = bureaus.state().iter().map(|b| b.name_any()).collect();
    match month_figures(
        month,
        amounts,
        &adjustments,
        &names,
        monthly,
        calendar,
        covered_until,
    ) {
        Ok(figures) => metrics.set_month_figures(figures, monthly),
        Err(e) => tracing::warn!(error = %e, "unable to compute the month's budget figures"),
    }
}

/// The cost fields of `Bureau.status`, the only ones this writer owns. A forecast that is
/// gone is written as `null`, which removes it.
#[derive(Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct CostStatus {
    cost_month: Option<String>,
    cost_to_date: Option<String>,
    cost_forecast: Option<String>,
    burst_charges_this_month: Option<String>,
    lent_credits_this_month: Option<String>,
}

impl CostStatus {
    /// What the bureau's status says now.
    fn current(status: &BureauStatus) -> Self {
        Self {
            cost_month: status.cost_month.clone(),
            cost_to_date: status.cost_to_date.clone(),
            cost_forecast: status.cost_forecast.clone(),
            burst_charges_this_month: status.burst_charges_this_month.clone(),
            lent_credits_this_month: status.lent_credits_this_month.clone(),
        }
    }
}

/// What `status` says of one bureau's figures and settled borrowing: the cost fields written
/// to `Bureau.status`.
fn status_of(
    month: Month,
    figures: &BureauFigures,
    (charges, credits): (Option<Decimal>, Option<Decimal>),
) -> CostStatus {
    CostStatus {
        cost_month: Some(month.to_string()),
        cost_to_date: Some(figures.cost_to_date.to_string()),
        cost_forecast: figures.forecast.map(|f| f.to_string()),
        burst_charges_this_month: charges.map(|c| c.to_string()),
        lent_credits_this_month: credits.map(|c| c.to_string()),
    }
}

/// Writes each bureau's cost fields to its status when they change, until `stop` resolves.
/// Runs on the leader only. A partial status with its own field manager: the bureau
/// controller's rollup owns the other fields.
pub(crate) async fn write_status(
    client: Client,
    metrics: Arc<MeteringMetrics>,
    stop: impl std::future::Future<Output = ()>,
) {
    let (bureaus, mut events) = reflected::<Bureau>(&client);
    let applier = Applier::new(client, Default::default());
    let mut tick = tokio::time::interval(WRITE_EVERY);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            event = events.next() => {
                if event.is_none() {
                    return;
                }
                continue;
            }
            _ = tick.tick() => {}
        }
        let figures = metrics.month_figures();
        let Some(month) = figures.month else {
            continue;
        };
        for bureau in bureaus.state() {
            let name = bureau.name_any();
            let Some(f) = figures.bureaus.get(&name) else {
                continue;
            };
            let status = status_of(month, f, metrics.settled_of(&name));
            let current = bureau.status.as_ref().map(CostStatus::current);
            if current.as_ref() == Some(&status) {
                continue;
            }
            let action = format!("write the cost of bureau {name}");
            if let Err(e) = applier
                .status(MANAGER, bureau.as_ref(), &status, action)
                .await
            {
                tracing::warn!(error = %e, "unable to write a bureau's cost; retrying");
            }
        }
    }
}

#[cfg(test)]
mod tests;
