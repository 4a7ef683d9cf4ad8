//! Settlements of borrowed capacity (see [`zhengyun_metering::settlement`]): stored with the
//! metering window they settle, in the window's transaction, and summed per month for the
//! statement.
//!
//! Burst usage is recorded only here: a window's burst intervals are shown to its [`Settle`]
//! and never stored as usage intervals, so the tariff's lines never price them.

use std::collections::BTreeMap;

use futures::TryStreamExt as _;
use zhengyun_metering::settlement::{Role, Settled, SettlementLine, Share, month_lines};
use zhengyun_metering::{Month, UsageInterval, usage::parse_resource};
use zhengyun_model::names::Tier;

use crate::{
    Store,
    error::{Error, Result, db},
    with_pool,
};

/// What settles a metering window: shown each batch of the window's intervals (burst ones
/// included) as the ledger stores it, then asked for the amounts to store with the window.
pub trait Settle: Send {
    /// One batch of the window's intervals.
    fn observe(&mut self, batch: &[UsageInterval]);

    /// The window's settled amounts, once every batch has been shown; an error leaves the
    /// window unwritten (it is retried).
    fn settled(&mut self) -> std::result::Result<Vec<Settled>, String>;
}

/// Inserts `settled` inside `tx`, as part of the window ending at `window_end_s`; a row
/// already stored for the same window and party (a window written again) is left as it was.
pub(crate) async fn insert<DB>(
    tx: &mut crate::WriteTx<DB>,
    window_end_s: i64,
    settled: &[Settled],
    recorded_at: i64,
) -> Result<()>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> DB::Arguments: sqlx::IntoArguments<DB>,
{
    for Settled { month, share: row } in settled {
        let amount = i64::try_from(row.micro_fen).map_err(|_| {
            Error::invalid(
                "amount",
                format!(
                    "{} millionths of a fen exceed the ledger's range",
                    row.micro_fen
                ),
            )
        })?;
        sqlx::query::<DB>(
            "INSERT INTO burst_settlements (month, window_end_s, role, bureau, environment, \
             tier, resource, unit_seconds, micro_fen, recorded_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
        )
        .bind(month.to_string())
        .bind(window_end_s)
        .bind(row.role.as_str().to_owned())
        .bind(row.bureau.clone())
        .bind(row.environment.clone())
        .bind(row.tier.map_or("", Tier::as_str).to_owned())
        .bind(row.resource.as_str().to_owned())
        .bind(row.unit_seconds.to_string())
        .bind(amount)
        .bind(recorded_at)
        .execute(&mut **tx)
        .await
        .map_err(db("recording a settlement"))?;
    }
    Ok(())
}

type SettledRow = (String, String, String, String, String, String, String, i64);

impl Store {
    /// The settlement lines of `month`: each party's windows summed, rounded once per line
    /// ([`month_lines`]), in statement order.
    pub async fn month_settlement(&self, month: Month) -> Result<Vec<SettlementLine>> {
        let mut lines = self.months_settlements(month, month).await?;
        Ok(lines.remove(&month).unwrap_or_default())
    }

    /// [`Store::month_settlement`] of each month from `first` through `last` that has one, read
    /// in one query.
    pub(crate) async fn months_settlements(
        &self,
        first: Month,
        last: Month,
    ) -> Result<BTreeMap<Month, Vec<SettlementLine>>> {
        let mut lines = BTreeMap::new();
        for (month, parts) in self.settlement_sums(first, last).await? {
            let month_lines = month_lines(&parts).map_err(|e| Error::Metering {
                what: "settlement",
                source: Box::new(e),
            })?;
            lines.insert(month, month_lines);
        }
        Ok(lines)
    }

    /// Each party's settled windows of `month` summed exactly, before rounding: charges,
    /// credits and the platform's shares in millionths of a fen.
    pub async fn month_settlement_sums(&self, month: Month) -> Result<Vec<Share>> {
        let mut sums = self.settlement_sums(month, month).await?;
        Ok(sums.remove(&month).unwrap_or_default())
    }

    /// [`Store::month_settlement_sums`] of each month from `first` through `last` that has
    /// settled windows.
    async fn settlement_sums(
        &self,
        first: Month,
        last: Month,
    ) -> Result<BTreeMap<Month, Vec<Share>>> {
        const DOING: &str = "reading the months' settlements";
        type Key = (Month, Role, String, String, String, String);
        let mut sums: BTreeMap<Key, (u128, u128)> = BTreeMap::new();
        with_pool!(self, pool => {
            let mut rows = sqlx::query_as::<_, SettledRow>(
                "SELECT month, role, bureau, environment, tier, resource, unit_seconds, micro_fen \
                 FROM burst_settlements WHERE month >= $1 AND month <= $2",
            )
            .bind(first.to_string())
            .bind(last.to_string())
            .fetch(pool);
            while let Some((month, role, bureau, environment, tier, resource, unit_seconds, micro)) =
                rows.try_next().await.map_err(db(DOING))?
            {
                let month = month
                    .parse::<Month>()
                    .map_err(|e| corrupt(format!("month {month:?}: {e}")))?;
                let role = role.parse::<Role>().map_err(corrupt)?;
                let unit_seconds = unit_seconds
                    .parse::<u128>()
                    .map_err(|e| corrupt(format!("unit-seconds {unit_seconds:?}: {e}")))?;
                let micro = u128::try_from(micro).map_err(|_| corrupt(format!("amount {micro}")))?;
                let slot = sums
                    .entry((month, role, bureau, environment, tier, resource))
                    .or_default();
                slot.0 = slot.0.checked_add(unit_seconds).ok_or_else(overflow)?;
                slot.1 = slot.1.checked_add(micro).ok_or_else(overflow)?;
            }
        });
        let mut parts: BTreeMap<Month, Vec<Share>> = BTreeMap::new();
        for ((month, role, bureau, environment, tier, resource), (unit_seconds, micro_fen)) in sums
        {
            let resource = parse_resource(&resource)
                .ok_or_else(|| corrupt(format!("resource {resource:?}")))?;
            let tier = if tier.is_empty() {
                None
            } else {
                Some(
                    tier.parse::<Tier>()
                        .map_err(|_| corrupt(format!("tier {tier:?}")))?,
                )
            };
            parts.entry(month).or_default().push(Share {
                role,
                bureau,
                environment,
                tier,
                resource,
                unit_seconds,
                micro_fen,
            });
        }
        Ok(parts)
    }
}

fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::Corrupt(format!("a stored settlement: {what}"))
}

fn overflow() -> Error {
    corrupt("a month's sum overflows")
}
