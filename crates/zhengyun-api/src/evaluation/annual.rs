//! The annual evaluation, added up month by month from the statements, the availability
//! measures and the year's efficiency.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use zhengyun_contract::evaluation::{
    AnnualEvaluation, BureauEvaluation, DistrictEvaluation, EnvironmentAvailability, MonthSpend,
};
use zhengyun_metering::{
    Month, Payable, Statement, TimeRange,
    availability::{MonthMeasure, availability_percent, credit_percent},
    budget_status,
    efficiency::Efficiency,
    rates::MONEY_SCALE,
    settlement::Role,
};
use zhengyun_model::{crd::ServiceLevels, names::Tier};

use crate::{
    problem::{ApiResult, Problem},
    statement_csv::csv_table,
};

/// One bureau's year so far.
#[derive(Debug, Default)]
struct BureauYear {
    months: Vec<MonthSpend>,
    spent: Decimal,
    budget: Option<Decimal>,
    service_credits: Decimal,
    burst_charges: Decimal,
    lent_credits: Decimal,
}

/// An environment's measured minutes over the year so far.
#[derive(Debug)]
struct Measured {
    bureau: String,
    tier: Tier,
    measured: u64,
    bad: u64,
}

/// The year being added up, for every bureau or one.
#[derive(Debug, Default)]
pub(super) struct Year {
    only: Option<String>,
    bureaus: BTreeMap<String, BureauYear>,
    environments: BTreeMap<String, Measured>,
}

impl Year {
    /// A year of every bureau, or of `only`.
    pub(super) fn new(only: Option<&str>) -> Self {
        Self {
            only: only.map(str::to_owned),
            ..Self::default()
        }
    }

    fn shown(&self, bureau: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == bureau)
    }

    /// Adds a month: what each bureau owed (`owed`, from the statement and its adjustments)
    /// against its share of the budget (`budgets`), its service credits and its borrowing.
    pub(super) fn add_month(
        &mut self,
        month: Month,
        statement: &Statement,
        owed: &BTreeMap<String, Payable>,
        budgets: &BTreeMap<String, Decimal>,
    ) -> ApiResult<()> {
        let codes: BTreeSet<&String> = owed.keys().chain(budgets.keys()).collect();
        for bureau in codes {
            if !self.shown(bureau) {
                continue;
            }
            let spent = owed.get(bureau).map_or(Decimal::ZERO, |p| p.payable);
            let budget = budgets.get(bureau).copied();
            let level = budget
                .map(|b| budget_status(b, spent.round_dp(MONEY_SCALE)))
                .transpose()
                .map_err(|e| Problem::conflict(format!("the budget of {bureau}: {e}")))?;
            let year = self.bureaus.entry(bureau.clone()).or_default();
            year.spent += spent;
            if let Some(budget) = budget {
                *year.budget.get_or_insert(Decimal::ZERO) += budget;
            }
            year.months.push(MonthSpend {
                month: month.to_string(),
                spent: money(spent),
                budget: budget.map(money),
                level: level.map(|l| l.level.as_str().to_owned()),
            });
        }
        for credit in &statement.service_credits {
            if self.shown(&credit.bureau) {
                self.bureaus
                    .entry(credit.bureau.clone())
                    .or_default()
                    .service_credits += credit.amount;
            }
        }
        for line in &statement.settlement {
            let Some(bureau) = line.bureau.as_deref().filter(|b| self.shown(b)) else {
                continue;
            };
            let year = self.bureaus.entry(bureau.to_owned()).or_default();
            match line.role {
                Role::Burst => year.burst_charges += line.amount,
                Role::Lent => year.lent_credits += line.amount,
                Role::Platform => {}
            }
        }
        Ok(())
    }

    /// Adds availability measures (the year's, or one month's at a time).
    pub(super) fn add_measures(&mut self, measures: Vec<MonthMeasure>) {
        for measure in measures {
            if !self.shown(&measure.bureau) {
                continue;
            }
            let slot = self
                .environments
                .entry(measure.environment)
                .or_insert(Measured {
                    bureau: measure.bureau.clone(),
                    tier: measure.tier,
                    measured: 0,
                    bad: 0,
                });
            slot.bureau = measure.bureau;
            slot.tier = measure.tier;
            slot.measured += measure.measured_minutes;
            slot.bad += measure.bad_minutes;
        }
    }

    /// The report, with the year's `efficiency` ranked by idle cost and availability against
    /// `levels`.
    pub(super) fn finish(
        self,
        year: i16,
        range: TimeRange,
        currency: &str,
        efficiency: &Efficiency,
        levels: &ServiceLevels,
        names: &BTreeMap<String, String>,
    ) -> ApiResult<AnnualEvaluation> {
        let ranking = efficiency.ranking();
        let rank_of = |bureau: &str| {
            ranking
                .iter()
                .find(|(_, code, _)| *code == bureau)
                .map_or(ranking.len() + 1, |(rank, _, _)| *rank)
        };
        let mut codes: BTreeSet<String> = self.bureaus.keys().cloned().collect();
        codes.extend(efficiency.bureaus.keys().filter(|b| self.shown(b)).cloned());
        codes.extend(self.environments.values().map(|m| m.bureau.clone()));
        let mut district = DistrictTotals::default();
        let mut bureaus = Vec::new();
        for code in codes {
            let spent = self.bureaus.get(&code);
            let totals = efficiency.bureaus.get(&code).cloned().unwrap_or_default();
            let environments: Vec<EnvironmentAvailability> = self
                .environments
                .iter()
                .filter(|(_, m)| m.bureau == code)
                .map(|(environment, m)| {
                    let level = levels.of(m.tier);
                    EnvironmentAvailability {
                        environment: environment.clone(),
                        tier: m.tier.to_string(),
                        objective: level.objective.clone(),
                        availability: availability_percent(m.measured, m.bad)
                            .map(|a| a.to_string()),
                        measured_minutes: m.measured,
                        bad_minutes: m.bad,
                        met: credit_percent(level, m.measured, m.bad) == 0,
                    }
                })
                .collect();
            let year_of = |f: fn(&BureauYear) -> Decimal| spent.map_or(Decimal::ZERO, f);
            district.add(spent, &totals);
            bureaus.push(BureauEvaluation {
                display_name: names.get(&code).cloned(),
                idle_rank: rank_of(&code),
                months: spent.map(|s| s.months.clone()).unwrap_or_default(),
                spent: money(year_of(|y| y.spent)),
                budget: spent.and_then(|s| s.budget).map(money),
                reservation_cost: money(totals.reservation_cost),
                idle_cost: money(totals.idle_cost),
                efficiency: totals.efficiency.map(|e| e.to_string()),
                environments,
                service_credits: money(year_of(|y| y.service_credits)),
                burst_charges: money(year_of(|y| y.burst_charges)),
                lent_credits: money(year_of(|y| y.lent_credits)),
                bureau: code,
            });
        }
        bureaus.sort_by(|a, b| a.idle_rank.cmp(&b.idle_rank).then(a.bureau.cmp(&b.bureau)));
        Ok(AnnualEvaluation {
            year,
            currency: currency.to_owned(),
            from: range.start().to_string(),
            to: range.end().to_string(),
            bureaus,
            district: district.finish(),
        })
    }
}

#[derive(Debug, Default)]
struct DistrictTotals {
    spent: Decimal,
    budget: Decimal,
    reservation_cost: Decimal,
    idle_cost: Decimal,
    service_credits: Decimal,
    burst_charges: Decimal,
    lent_credits: Decimal,
}

impl DistrictTotals {
    fn add(
        &mut self,
        year: Option<&BureauYear>,
        totals: &zhengyun_metering::efficiency::EfficiencyTotal,
    ) {
        if let Some(year) = year {
            self.spent += year.spent;
            self.budget += year.budget.unwrap_or_default();
            self.service_credits += year.service_credits;
            self.burst_charges += year.burst_charges;
            self.lent_credits += year.lent_credits;
        }
        self.reservation_cost += totals.reservation_cost;
        self.idle_cost += totals.idle_cost;
    }

    fn finish(self) -> DistrictEvaluation {
        let efficiency = (self.reservation_cost > Decimal::ZERO)
            .then(|| (self.reservation_cost - self.idle_cost) / self.reservation_cost)
            .map(|r| {
                r.round_dp_with_strategy(4, rust_decimal::RoundingStrategy::ToZero)
                    .to_string()
            });
        DistrictEvaluation {
            spent: money(self.spent),
            budget: money(self.budget),
            reservation_cost: money(self.reservation_cost),
            idle_cost: money(self.idle_cost),
            efficiency,
            service_credits: money(self.service_credits),
            burst_charges: money(self.burst_charges),
            lent_credits: money(self.lent_credits),
        }
    }
}

/// An amount to the fen, as the API writes money.
fn money(amount: Decimal) -> String {
    let mut amount = amount.round_dp(MONEY_SCALE);
    amount.rescale(MONEY_SCALE);
    amount.to_string()
}

/// One row per bureau and month, then one per bureau for the year, then the district's.
pub(super) fn csv(report: &AnnualEvaluation) -> String {
    let header = [
        "year",
        "period",
        "bureau",
        "bureau_name",
        "idle_rank",
        "spent",
        "budget",
        "budget_level",
        "reservation_cost",
        "idle_cost",
        "efficiency",
        "environments_below_objective",
        "service_credits",
        "burst_charges",
        "lent_credits",
        "currency",
    ];
    let year = report.year.to_string();
    let mut rows = vec![header.map(str::to_owned).to_vec()];
    for bureau in &report.bureaus {
        let name = bureau.display_name.clone().unwrap_or_default();
        for month in &bureau.months {
            rows.push(vec![
                year.clone(),
                month.month.clone(),
                bureau.bureau.clone(),
                name.clone(),
                String::new(),
                month.spent.clone(),
                month.budget.clone().unwrap_or_default(),
                month.level.clone().unwrap_or_default(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                report.currency.clone(),
            ]);
        }
        let below = bureau.environments.iter().filter(|e| !e.met).count();
        rows.push(vec![
            year.clone(),
            year.clone(),
            bureau.bureau.clone(),
            name,
            bureau.idle_rank.to_string(),
            bureau.spent.clone(),
            bureau.budget.clone().unwrap_or_default(),
            String::new(),
            bureau.reservation_cost.clone(),
            bureau.idle_cost.clone(),
            bureau.efficiency.clone().unwrap_or_default(),
            below.to_string(),
            bureau.service_credits.clone(),
            bureau.burst_charges.clone(),
            bureau.lent_credits.clone(),
            report.currency.clone(),
        ]);
    }
    let d = &report.district;
    rows.push(vec![
        year.clone(),
        year,
        "district".to_owned(),
        "全区".to_owned(),
        String::new(),
        d.spent.clone(),
        d.budget.clone(),
        String::new(),
        d.reservation_cost.clone(),
        d.idle_cost.clone(),
        d.efficiency.clone().unwrap_or_default(),
        String::new(),
        d.service_credits.clone(),
        d.burst_charges.clone(),
        d.lent_credits.clone(),
        report.currency.clone(),
    ]);
    csv_table(&rows)
}
