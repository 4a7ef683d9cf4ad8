//! Monthly statements: one line per bureau × environment × resource × kind × tier × rate-card
//! period, priced once; totals per environment, per bureau and for the platform; and the
//! conservation checks that prove the totals are the sums of their parts.
//!
//! # How a month becomes lines
//!
//! 1. The month is `[first day 00:00, next month's first day 00:00)` in the platform time zone.
//! 2. It is cut where a rate card takes effect ([`RateSchedule::periods`]); a price change on the
//!    15th gives every meter two lines, one per card, each naming its card's `effectiveFrom`.
//! 3. Each interval contributes `amount × seconds` of its overlap with each period; intervals
//!    need not be pre-split. Usage outside the month is ignored; usage in a period before the
//!    first rate card is an error, never silently free.
//! 4. Each line's unit-seconds are priced **once** with [`cost_rounded`] at the card's price
//!    for the line's kind — the reservation price for reserved lines, the consumption price for
//!    consumed ones (a two-part tariff: reserved and fully used pays the list price once) — and
//!    rounded to the fen by the card's rule (half up unless the card says half even). Totals add
//!    rounded line amounts, so every total is exactly the sum of the lines shown.
//!
//! A meter whose intervals all have amount zero still gets a line (quantity 0, amount 0.00), so a
//! statement shows reserved capacity that was never consumed.

use std::collections::{BTreeMap, HashMap};

use jiff::civil::Date;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use zhengyun_model::{names::Tier, quantity::Resource};

use crate::{
    availability::{ServiceCreditLine, credit_amount},
    budget::{BudgetStatus, budget_status},
    calendar::{Calendar, Month, TimeRange},
    error::{Error, Result},
    rates::{MONEY_SCALE, PriceUnit, RatePeriod, RateSchedule, Rounding, cost_rounded, unit_hours},
    settlement::{SettlementLine, check_balanced, sort_lines},
    usage::{Meter, UsageInterval, UsageKind},
};

/// What identifies a statement line within its month: the meter and the rate card pricing it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineKey {
    /// Bureau, environment, resource, kind and tier.
    #[serde(flatten)]
    pub meter: Meter,
    /// `effectiveFrom` of the rate card that prices the line.
    pub rate_card: Date,
}

impl LineKey {
    /// A stable reference to the line, for adjustments and the ledger:
    /// `<month>/<environment>/<resource>/<kind>/<tier>/<rate card date>`, e.g.
    /// `2026-11/wjw-prod/cpu/reserved/gold/2026-11-15`.
    pub fn reference(&self, month: Month) -> String {
        let m = &self.meter;
        format!(
            "{month}/{}/{}/{}/{}/{}",
            m.environment(),
            m.resource(),
            m.kind(),
            m.tier(),
            self.rate_card
        )
    }
}

/// One priced line of a monthly statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatementLine {
    /// What the line is for.
    #[serde(flatten)]
    pub key: LineKey,
    /// The part of the month priced by the line's rate card.
    pub period: TimeRange,
    /// The exact quantity in base-unit-seconds (millicore-seconds, byte-seconds…).
    #[serde(with = "crate::serde_as::u128_string")]
    pub unit_seconds: u128,
    /// The quantity in `unit`s, six decimals, for reading; the amount is computed from
    /// `unit_seconds`, never from this.
    pub quantity: Decimal,
    /// The unit of `quantity` and `unit_price`: `core-hour`, `GiB-hour`, `GPU-hour`…
    pub unit: String,
    /// Price per `unit` from the rate card: its reservation price for a reserved line, its
    /// consumption price for a consumed one.
    pub unit_price: Decimal,
    /// How `amount` was rounded to the fen (the rate card's rule). Lines stored before the rule
    /// was recorded were rounded half to even.
    #[serde(default = "Rounding::before_it_was_recorded")]
    pub rounding: Rounding,
    /// `unit_seconds` priced and rounded once, by `rounding`, to the fen.
    pub amount: Decimal,
}

/// Unit-seconds of one resource and kind within a total.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageTotal {
    /// The resource.
    #[serde(with = "crate::serde_as::resource")]
    pub resource: Resource,
    /// Reserved or consumed.
    pub kind: UsageKind,
    /// Exact sum of unit-seconds.
    #[serde(with = "crate::serde_as::u128_string")]
    pub unit_seconds: u128,
}

/// Money and unit-seconds summed over some lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Sum of the line amounts (already rounded; the sum is exact).
    pub amount: Decimal,
    /// Unit-seconds per resource and kind, in resource then kind order.
    pub usage: Vec<UsageTotal>,
}

/// The totals of one environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentTotal {
    /// The bureau owning the environment.
    pub bureau: String,
    /// The environment.
    pub environment: String,
    /// Its totals.
    #[serde(flatten)]
    pub totals: Totals,
}

/// The totals of one bureau, and where it stands against its budget if it has one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BureauTotal {
    /// The bureau.
    pub bureau: String,
    /// Its totals: the sum of its environments'.
    #[serde(flatten)]
    pub totals: Totals,
    /// Budget status, set by [`Statement::flag_budgets`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetStatus>,
}

/// The statement of one month for the whole platform. Once a month is closed its statement never
/// changes; corrections are [`crate::adjustment`] lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Statement {
    /// The month.
    pub month: Month,
    /// IANA time zone the month was read in.
    pub time_zone: String,
    /// Currency of every amount.
    pub currency: String,
    /// The instants the month covers.
    pub period: TimeRange,
    /// The lines, ordered by key.
    pub lines: Vec<StatementLine>,
    /// Per environment, ordered by bureau then environment.
    pub environments: Vec<EnvironmentTotal>,
    /// Per bureau, ordered by bureau.
    pub bureaus: Vec<BureauTotal>,
    /// The whole platform: the sum of the bureaus.
    pub platform: Totals,
    /// The spans of the month the ledger does not measure as they happened (see
    /// [`crate::gaps`]); set by the ledger, which knows them, not by the builder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<crate::gaps::Gap>,
    /// Borrowed capacity settled over the month's windows ([`crate::settlement`]): `burst`
    /// charges, `lent` credits and the platform's share. Not part of the totals above, which
    /// price the tariff's lines; [`crate::payable`] adds each bureau's settled amount. Set by
    /// the ledger, which stores the settlements, not by the builder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settlement: Vec<SettlementLine>,
    /// Credits for environments whose measured availability fell below their tier's objective
    /// ([`crate::availability`]), negative. Not part of the totals above; [`crate::payable`]
    /// adds them. Set by the ledger, which stores the measured slices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_credits: Vec<ServiceCreditLine>,
}

/// Accumulates usage intervals into one month's statement. Intervals may arrive in any order and
/// need not be split at months or rate changes; feed them with [`StatementBuilder::add`] and
/// call [`StatementBuilder::finish`].
#[derive(Debug)]
pub struct StatementBuilder<'a> {
    month: Month,
    calendar: &'a Calendar,
    currency: &'a str,
    range: TimeRange,
    periods: Vec<RatePeriod<'a>>,
    environments: HashMap<String, EnvironmentUsage>,
}

#[derive(Debug)]
struct EnvironmentUsage {
    bureau: String,
    /// Unit-seconds per meter and rate period; `None` where no interval touched the period.
    series: BTreeMap<(Resource, UsageKind, Tier), Vec<Option<u128>>>,
}

impl<'a> StatementBuilder<'a> {
    /// A builder for `month` in `calendar`, priced by `schedule`.
    pub fn new(month: Month, calendar: &'a Calendar, schedule: &'a RateSchedule) -> Result<Self> {
        let range = calendar.month_range(month)?;
        Ok(Self {
            month,
            calendar,
            currency: schedule.currency(),
            range,
            periods: schedule.periods(range, calendar)?,
            environments: HashMap::new(),
        })
    }

    /// Counts the part of `interval` inside the month; returns whether any of it was (never for
    /// burst usage, which is settled per window, not priced by a line). Fails if
    /// that part falls before the first rate card (nothing is counted then), or a sum overflows
    /// `u128` (after which the builder must be discarded).
    pub fn add(&mut self, interval: &UsageInterval) -> Result<bool> {
        let range = interval.range();
        if interval.kind() == UsageKind::Burst || range.intersection(&self.range).is_none() {
            return Ok(false);
        }
        for period in self.periods.iter().filter(|p| p.card.is_none()) {
            if let Some(overlap) = range.intersection(&period.range) {
                return Err(Error::NoRateCardEffective {
                    at: overlap.start(),
                });
            }
        }
        // Look up by `&str` first: the common case (a known environment) allocates nothing.
        let usage = match self.environments.get_mut(interval.environment()) {
            Some(usage) => usage,
            None => self
                .environments
                .entry(interval.environment().to_owned())
                .or_insert_with(|| EnvironmentUsage {
                    bureau: interval.bureau().to_owned(),
                    series: BTreeMap::new(),
                }),
        };
        let series = usage
            .series
            .entry((interval.resource(), interval.kind(), interval.tier()))
            .or_insert_with(|| vec![None; self.periods.len()]);
        for (slot, period) in series.iter_mut().zip(&self.periods) {
            if let Some(overlap) = range.intersection(&period.range) {
                let unit_seconds = u128::from(interval.amount()) * u128::from(overlap.seconds());
                let sum = slot.unwrap_or(0).checked_add(unit_seconds);
                *slot = Some(sum.ok_or(Error::Overflow {
                    what: "the unit-seconds of a statement line",
                })?);
            }
        }
        Ok(true)
    }

    /// The parts of the month priced by one rate card each (or by none, before the first card),
    /// in order. Pre-summed usage given to [`StatementBuilder::add_usage`] must lie within one.
    pub fn periods(&self) -> impl Iterator<Item = TimeRange> + '_ {
        self.periods.iter().map(|p| p.range)
    }

    /// Counts `unit_seconds` already summed for `meter` over `range`, which must lie within one
    /// of the [`StatementBuilder::periods`]: what a ledger keeping rollups hands over instead of
    /// its raw intervals. Returns `false` (counting nothing) for a range outside the month.
    /// Fails if the range straddles a rate change or the month's edge, falls before the first
    /// rate card, or a sum overflows `u128`.
    pub fn add_usage(
        &mut self,
        meter: &Meter,
        range: TimeRange,
        unit_seconds: u128,
    ) -> Result<bool> {
        if meter.kind() == UsageKind::Burst || range.intersection(&self.range).is_none() {
            return Ok(false);
        }
        let Some(slot_no) = self
            .periods
            .iter()
            .position(|p| p.range.start() <= range.start() && range.end() <= p.range.end())
        else {
            return Err(Error::Unbalanced {
                scope: format!("usage of {} over {range}", meter.environment()),
                expected: "a range within one rate period of the month".to_owned(),
                found: "a range across a rate change or the month's edge".to_owned(),
            });
        };
        if self.periods[slot_no].card.is_none() {
            return Err(Error::NoRateCardEffective { at: range.start() });
        }
        let periods = self.periods.len();
        let usage = match self.environments.get_mut(meter.environment()) {
            Some(usage) => usage,
            None => self
                .environments
                .entry(meter.environment().to_owned())
                .or_insert_with(|| EnvironmentUsage {
                    bureau: meter.bureau().to_owned(),
                    series: BTreeMap::new(),
                }),
        };
        let slot = &mut usage
            .series
            .entry((meter.resource(), meter.kind(), meter.tier()))
            .or_insert_with(|| vec![None; periods])[slot_no];
        let sum = slot.unwrap_or(0).checked_add(unit_seconds);
        *slot = Some(sum.ok_or(Error::Overflow {
            what: "the unit-seconds of a statement line",
        })?);
        Ok(true)
    }

    /// Prices every line and sums the totals.
    pub fn finish(self) -> Result<Statement> {
        let mut lines = Vec::new();
        for (environment, usage) in &self.environments {
            for (&(resource, kind, tier), series) in &usage.series {
                let meter = Meter::new(
                    usage.bureau.clone(),
                    environment.clone(),
                    resource,
                    kind,
                    tier,
                )?;
                for (period, unit_seconds) in self.periods.iter().zip(series) {
                    if let (Some(unit_seconds), Some(card)) = (unit_seconds, period.card) {
                        let key = LineKey {
                            meter: meter.clone(),
                            rate_card: card.effective_from(),
                        };
                        let price = card.price(tier, resource, kind);
                        lines.push(price_line(
                            key,
                            period.range,
                            *unit_seconds,
                            price,
                            card.rounding(),
                        )?);
                    }
                }
            }
        }
        lines.sort_by(|a, b| a.key.cmp(&b.key));
        Statement::from_lines(
            self.month,
            self.calendar.name().to_owned(),
            self.currency.to_owned(),
            self.range,
            lines,
        )
    }

    /// Each bureau's amount as [`StatementBuilder::finish`]'s statement totals it (the sum of
    /// its lines, each priced and rounded as there), without building the lines: for figures
    /// that need the bureaus' totals only, at a fraction of a statement's memory.
    pub fn bureau_amounts(self) -> Result<BTreeMap<String, Decimal>> {
        Ok(self.amounts()?.0)
    }

    /// Each bureau's and each environment's amount, as [`StatementBuilder::bureau_amounts`].
    #[allow(clippy::type_complexity)]
    pub fn amounts(self) -> Result<(BTreeMap<String, Decimal>, BTreeMap<String, Decimal>)> {
        let mut bureaus: BTreeMap<String, Tally> = BTreeMap::new();
        let mut environments: BTreeMap<String, Decimal> = BTreeMap::new();
        for (environment, usage) in &self.environments {
            let mut tally = Tally::default();
            for (&(resource, kind, tier), series) in &usage.series {
                for (period, unit_seconds) in self.periods.iter().zip(series) {
                    if let (Some(unit_seconds), Some(card)) = (unit_seconds, period.card) {
                        let price = card.price(tier, resource, kind);
                        let amount = cost_rounded(*unit_seconds, resource, price, card.rounding())?;
                        tally.add_amount(amount)?;
                    }
                }
            }
            let totals = tally.into_totals();
            let bureau = match bureaus.get_mut(&usage.bureau) {
                Some(bureau) => bureau,
                None => bureaus.entry(usage.bureau.clone()).or_default(),
            };
            bureau.add_amount(totals.amount)?;
            environments.insert(environment.clone(), totals.amount);
        }
        let bureaus = bureaus
            .into_iter()
            .map(|(bureau, tally)| (bureau, tally.into_totals().amount))
            .collect();
        Ok((bureaus, environments))
    }
}

/// A line for `unit_seconds` under `key`, priced at `price` per unit-hour and rounded by
/// `rounding`.
pub(crate) fn price_line(
    key: LineKey,
    period: TimeRange,
    unit_seconds: u128,
    price: Decimal,
    rounding: Rounding,
) -> Result<StatementLine> {
    let resource = key.meter.resource();
    Ok(StatementLine {
        period,
        unit_seconds,
        quantity: unit_hours(unit_seconds, resource)?,
        unit: PriceUnit::of(resource).name.to_owned(),
        unit_price: price,
        rounding,
        amount: cost_rounded(unit_seconds, resource, price, rounding)?,
        key,
    })
}

impl Statement {
    /// The statement of `month` from `intervals` (any order, any length; only the part inside
    /// the month counts), read in `calendar` and priced by `schedule`.
    pub fn build<'i>(
        month: Month,
        calendar: &Calendar,
        schedule: &RateSchedule,
        intervals: impl IntoIterator<Item = &'i UsageInterval>,
    ) -> Result<Self> {
        let mut builder = StatementBuilder::new(month, calendar, schedule)?;
        for interval in intervals {
            builder.add(interval)?;
        }
        builder.finish()
    }

    fn from_lines(
        month: Month,
        time_zone: String,
        currency: String,
        period: TimeRange,
        lines: Vec<StatementLine>,
    ) -> Result<Self> {
        let environments = environment_totals(&lines)?;
        let bureaus = bureau_totals(&environments)?
            .into_iter()
            .map(|(bureau, tally)| BureauTotal {
                bureau,
                totals: tally.into_totals(),
                budget: None,
            })
            .collect::<Vec<_>>();
        let mut platform = Tally::default();
        for bureau in &bureaus {
            platform.add_totals(&bureau.totals)?;
        }
        Ok(Self {
            month,
            time_zone,
            currency,
            period,
            lines,
            environments,
            bureaus,
            platform: platform.into_totals(),
            gaps: Vec::new(),
            settlement: Vec::new(),
            service_credits: Vec::new(),
        })
    }

    /// Each bureau's amount (its totals' amount), by bureau code.
    pub fn bureau_amounts(&self) -> BTreeMap<String, Decimal> {
        self.bureaus
            .iter()
            .map(|b| (b.bureau.clone(), b.totals.amount))
            .collect()
    }

    /// The total of `bureau`, if it has any lines.
    pub fn bureau(&self, bureau: &str) -> Option<&BureauTotal> {
        self.bureaus.iter().find(|b| b.bureau == bureau)
    }

    /// The lines of `bureau`.
    pub fn lines_of<'s>(&'s self, bureau: &'s str) -> impl Iterator<Item = &'s StatementLine> + 's {
        self.lines
            .iter()
            .filter(move |l| l.key.meter.bureau() == bureau)
    }

    /// Sets each listed bureau's budget status from its monthly budget and this statement's
    /// amount. Bureaus without a budget, or without lines, are left unflagged.
    pub fn flag_budgets(&mut self, budgets: &BTreeMap<String, Decimal>) -> Result<()> {
        for bureau in &mut self.bureaus {
            bureau.budget = budgets
                .get(&bureau.bureau)
                .map(|&budget| budget_status(budget, bureau.totals.amount))
                .transpose()?;
        }
        Ok(())
    }

    /// Every conservation check: each line priced by the rule, Σ lines = environment,
    /// Σ environments = bureau, Σ bureaus = platform — to the unit-second and to the fen; and
    /// the settlement's charges = credits + the platform's share.
    pub fn check_conservation(&self) -> Result<()> {
        self.check_line_prices()?;
        self.check_lines_sum_to_environments()?;
        self.check_environments_sum_to_bureaus()?;
        self.check_bureaus_sum_to_platform()?;
        check_balanced(&self.settlement)
    }

    /// Sets the month's settlement lines (in statement order), checking that they balance.
    pub fn set_settlement(&mut self, mut lines: Vec<SettlementLine>) -> Result<()> {
        check_balanced(&lines)?;
        sort_lines(&mut lines);
        self.settlement = lines;
        Ok(())
    }

    /// Sets the month's service credits, checking that each is its percentage of its
    /// environment's amount on this statement.
    pub fn set_service_credits(&mut self, lines: Vec<ServiceCreditLine>) -> Result<()> {
        for line in &lines {
            let charged = self
                .environments
                .iter()
                .find(|e| e.environment == line.environment)
                .map_or(Decimal::ZERO, |e| e.totals.amount);
            let expected = credit_amount(charged, line.credit_percent)?;
            if line.charges != charged || line.amount != expected {
                return Err(Error::Unbalanced {
                    scope: format!("the service credit of {}", line.environment),
                    expected: format!("{expected} ({}% of {charged})", line.credit_percent),
                    found: format!("{} of {}", line.amount, line.charges),
                });
            }
        }
        self.service_credits = lines;
        Ok(())
    }

    /// Keeps only `bureau`'s part: its lines, environments, totals, settlement and service
    /// credits; its totals become the statement's `platform` totals (zero without usage). The
    /// month's gaps, which are the platform's, stay.
    pub fn keep_bureau(&mut self, bureau: &str) {
        self.lines.retain(|l| l.key.meter.bureau() == bureau);
        self.environments.retain(|e| e.bureau == bureau);
        self.bureaus.retain(|b| b.bureau == bureau);
        self.settlement
            .retain(|l| l.bureau.as_deref() == Some(bureau));
        self.service_credits.retain(|l| l.bureau == bureau);
        self.platform = self
            .bureaus
            .first()
            .map(|b| b.totals.clone())
            .unwrap_or_else(|| Totals {
                amount: Decimal::ZERO,
                usage: Vec::new(),
            });
    }

    /// Each environment's amount on this statement, by environment name.
    pub fn environment_amounts(&self) -> BTreeMap<String, Decimal> {
        self.environments
            .iter()
            .map(|e| (e.environment.clone(), e.totals.amount))
            .collect()
    }

    /// Lines are in key order with no key twice, each line's amount is its unit-seconds priced
    /// once at its unit price, and its quantity and unit match its resource.
    pub fn check_line_prices(&self) -> Result<()> {
        if let Some(pair) = self.lines.windows(2).find(|w| w[0].key >= w[1].key) {
            return Err(Error::Unbalanced {
                scope: format!("line {}", pair[1].key.reference(self.month)),
                expected: "lines in key order, each key once".to_owned(),
                found: format!("it after {}", pair[0].key.reference(self.month)),
            });
        }
        for line in &self.lines {
            let expected = price_line(
                line.key.clone(),
                line.period,
                line.unit_seconds,
                line.unit_price,
                line.rounding,
            )?;
            if expected != *line {
                return Err(Error::Unbalanced {
                    scope: format!("line {}", line.key.reference(self.month)),
                    expected: format!(
                        "{} {} for {} unit-seconds",
                        expected.amount, self.currency, line.unit_seconds
                    ),
                    found: format!("{} {}", line.amount, self.currency),
                });
            }
        }
        Ok(())
    }

    /// Σ lines of each environment = that environment's totals, and no environment is missing
    /// or extra.
    pub fn check_lines_sum_to_environments(&self) -> Result<()> {
        let expected = environment_totals(&self.lines)?;
        check_same_parties(
            "environments",
            expected.iter().map(|e| (e.environment.as_str(), &e.totals)),
            self.environments
                .iter()
                .map(|e| (e.environment.as_str(), &e.totals)),
        )
    }

    /// Σ environments of each bureau = that bureau's totals, and no bureau is missing or extra.
    pub fn check_environments_sum_to_bureaus(&self) -> Result<()> {
        let expected: Vec<(String, Totals)> = bureau_totals(&self.environments)?
            .into_iter()
            .map(|(bureau, tally)| (bureau, tally.into_totals()))
            .collect();
        check_same_parties(
            "bureaus",
            expected.iter().map(|(b, t)| (b.as_str(), t)),
            self.bureaus.iter().map(|b| (b.bureau.as_str(), &b.totals)),
        )
    }

    /// Σ bureaus = the platform total.
    pub fn check_bureaus_sum_to_platform(&self) -> Result<()> {
        let mut sum = Tally::default();
        for bureau in &self.bureaus {
            sum.add_totals(&bureau.totals)?;
        }
        compare("platform", &sum, &Tally::from_totals(&self.platform)?)
    }

    /// The statement's unit-seconds per environment, resource and kind equal an independent
    /// recount of `intervals` over the month (not by rate period): nothing lost, nothing
    /// counted twice.
    pub fn check_against_usage<'i>(
        &self,
        intervals: impl IntoIterator<Item = &'i UsageInterval>,
    ) -> Result<()> {
        let mut recount: BTreeMap<(&str, Resource, UsageKind), u128> = BTreeMap::new();
        for interval in intervals {
            if interval.kind() == UsageKind::Burst {
                continue;
            }
            if let Some(overlap) = interval.range().intersection(&self.period) {
                let unit_seconds = u128::from(interval.amount()) * u128::from(overlap.seconds());
                let slot = recount
                    .entry((interval.environment(), interval.resource(), interval.kind()))
                    .or_default();
                *slot = slot.checked_add(unit_seconds).ok_or(Error::Overflow {
                    what: "a recount of usage",
                })?;
            }
        }
        let mut billed: BTreeMap<(&str, Resource, UsageKind), u128> = BTreeMap::new();
        for line in &self.lines {
            let m = &line.key.meter;
            let slot = billed
                .entry((m.environment(), m.resource(), m.kind()))
                .or_default();
            *slot = slot.checked_add(line.unit_seconds).ok_or(Error::Overflow {
                what: "the unit-seconds of an environment",
            })?;
        }
        for key in recount.keys().chain(billed.keys()) {
            let (expected, found) = (recount.get(key), billed.get(key));
            if expected != found {
                let (environment, resource, kind) = key;
                return Err(Error::Unbalanced {
                    scope: format!("usage of {environment}: {resource} {kind} unit-seconds"),
                    expected: format!("{}", expected.copied().unwrap_or(0)),
                    found: format!("{}", found.copied().unwrap_or(0)),
                });
            }
        }
        Ok(())
    }
}

/// Running sums of money and unit-seconds, with overflow checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Tally {
    amount: Decimal,
    usage: BTreeMap<(Resource, UsageKind), u128>,
}

impl Tally {
    fn from_totals(totals: &Totals) -> Result<Self> {
        let mut tally = Tally::default();
        tally.add_totals(totals)?;
        Ok(tally)
    }

    fn add_line(&mut self, line: &StatementLine) -> Result<()> {
        let meter = &line.key.meter;
        self.add_amount(line.amount)?;
        self.add_usage(meter.resource(), meter.kind(), line.unit_seconds)
    }

    fn add_totals(&mut self, totals: &Totals) -> Result<()> {
        self.add_amount(totals.amount)?;
        for usage in &totals.usage {
            self.add_usage(usage.resource, usage.kind, usage.unit_seconds)?;
        }
        Ok(())
    }

    fn add_amount(&mut self, amount: Decimal) -> Result<()> {
        self.amount = self.amount.checked_add(amount).ok_or(Error::Overflow {
            what: "a statement total",
        })?;
        Ok(())
    }

    fn add_usage(&mut self, resource: Resource, kind: UsageKind, unit_seconds: u128) -> Result<()> {
        let slot = self.usage.entry((resource, kind)).or_default();
        *slot = slot.checked_add(unit_seconds).ok_or(Error::Overflow {
            what: "the unit-seconds of a statement total",
        })?;
        Ok(())
    }

    fn into_totals(self) -> Totals {
        let mut amount = self.amount;
        // Sums of fen amounts are whole fen; this only makes an empty total read 0.00.
        amount.rescale(MONEY_SCALE);
        Totals {
            amount,
            usage: self
                .usage
                .into_iter()
                .map(|((resource, kind), unit_seconds)| UsageTotal {
                    resource,
                    kind,
                    unit_seconds,
                })
                .collect(),
        }
    }
}

fn environment_totals(lines: &[StatementLine]) -> Result<Vec<EnvironmentTotal>> {
    let mut tallies: BTreeMap<(&str, &str), Tally> = BTreeMap::new();
    for line in lines {
        let m = &line.key.meter;
        tallies
            .entry((m.bureau(), m.environment()))
            .or_default()
            .add_line(line)?;
    }
    Ok(tallies
        .into_iter()
        .map(|((bureau, environment), tally)| EnvironmentTotal {
            bureau: bureau.to_owned(),
            environment: environment.to_owned(),
            totals: tally.into_totals(),
        })
        .collect())
}

fn bureau_totals(environments: &[EnvironmentTotal]) -> Result<BTreeMap<String, Tally>> {
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    for environment in environments {
        tallies
            .entry(environment.bureau.clone())
            .or_default()
            .add_totals(&environment.totals)?;
    }
    Ok(tallies)
}

/// The recorded totals of `what` (by name) are exactly the expected ones, name for name.
fn check_same_parties<'t>(
    what: &str,
    expected: impl Iterator<Item = (&'t str, &'t Totals)>,
    found: impl Iterator<Item = (&'t str, &'t Totals)>,
) -> Result<()> {
    let expected: BTreeMap<&str, &Totals> = expected.collect();
    let mut listed = BTreeMap::new();
    for (name, totals) in found {
        if listed.insert(name, totals).is_some() {
            return Err(Error::Unbalanced {
                scope: format!("{what}: {name}"),
                expected: "one total".to_owned(),
                found: "two or more".to_owned(),
            });
        }
    }
    let found = listed;
    for name in expected.keys().chain(found.keys()) {
        match (expected.get(name), found.get(name)) {
            (Some(e), Some(f)) => compare(
                &format!("{what}: {name}"),
                &Tally::from_totals(e)?,
                &Tally::from_totals(f)?,
            )?,
            (e, f) => {
                return Err(Error::Unbalanced {
                    scope: format!("{what}: {name}"),
                    expected: presence(e.is_some()).to_owned(),
                    found: presence(f.is_some()).to_owned(),
                });
            }
        }
    }
    Ok(())
}

fn presence(present: bool) -> &'static str {
    if present { "a total" } else { "no total" }
}

fn compare(scope: &str, expected: &Tally, found: &Tally) -> Result<()> {
    if expected.amount != found.amount {
        return Err(Error::Unbalanced {
            scope: format!("{scope}: amount"),
            expected: expected.amount.to_string(),
            found: found.amount.to_string(),
        });
    }
    for key in expected.usage.keys().chain(found.usage.keys()) {
        let (e, f) = (expected.usage.get(key), found.usage.get(key));
        if e.copied().unwrap_or(0) != f.copied().unwrap_or(0) {
            let (resource, kind) = key;
            return Err(Error::Unbalanced {
                scope: format!("{scope}: {resource} {kind} unit-seconds"),
                expected: e.copied().unwrap_or(0).to_string(),
                found: f.copied().unwrap_or(0).to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
