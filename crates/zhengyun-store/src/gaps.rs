//! Metering gaps in the ledger (see [`zhengyun_metering::gaps`]): the spans the sampler
//! recorded as not measured as they happened, where the ledger begins, and finance's waivers.
//! Gaps and waivers are append-only: a waiver is a new row that covers the gaps recorded so
//! far, never a change to a gap.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;
use zhengyun_metering::{Gap, GapKind, Month, TimeRange, Waiver, month_gaps};
use zhengyun_model::names::check_visible_text;

use crate::{
    PoolExt, Store,
    error::{Error, Result, db},
    time::{from_micros, now_micros},
    with_pool,
};

/// The checkpoint stream of the metering sampler, whose gaps statements show.
pub const USAGE_STREAM: &str = "usage";

/// The longest waiver reason accepted, in bytes.
pub const MAX_WAIVER_REASON: usize = 1000;

/// What [`Store::waive_gaps`] recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Waived {
    /// The month.
    pub month: String,
    /// The gaps of the month now waived by this waiver (those already waived before excluded).
    pub gaps: Vec<Gap>,
}

type GapRow = (i64, i64, i64, String, String);
type WaiverRow = (String, i64, String, String, i64);

impl Store {
    /// Where the ledger of sampler stream `stream` begins: time before it was never metered.
    /// `None` while the stream has never written.
    pub async fn ledger_origin(&self, stream: &str) -> Result<Option<Timestamp>> {
        let since: Option<i64> = with_pool!(self, pool =>
            sqlx::query_scalar("SELECT since_s FROM metering_origins WHERE stream = $1")
                .bind(stream)
                .fetch_optional(pool)
                .await)
        .map_err(db("reading where the ledger begins"))?;
        since
            .map(|s| instant(s, "where the ledger begins"))
            .transpose()
    }

    /// Every recorded gap of `stream` that overlaps `range`, oldest first, without waivers.
    pub async fn gaps_between(&self, stream: &str, range: TimeRange) -> Result<Vec<Gap>> {
        Ok(self
            .gap_rows(stream, range)
            .await?
            .into_iter()
            .map(|(_, gap)| gap)
            .collect())
    }

    /// The gaps of `month` (spanning `range`) in the ledger of `stream`: those recorded, and the
    /// part of the month before the ledger began; each with the waiver that covers it, if any.
    pub async fn month_gaps(
        &self,
        stream: &str,
        month: Month,
        range: TimeRange,
    ) -> Result<Vec<Gap>> {
        let mut gaps = self.months_gaps(stream, &[(month, range)]).await?;
        Ok(gaps.pop().unwrap_or_default())
    }

    /// [`Store::month_gaps`] of each of `months` (each with its range, in order), read in three
    /// queries for all of them: where the ledger begins, the months' waivers and the gaps
    /// recorded over their whole span.
    pub(crate) async fn months_gaps(
        &self,
        stream: &str,
        months: &[(Month, TimeRange)],
    ) -> Result<Vec<Vec<Gap>>> {
        let (Some((first, first_range)), Some((last, last_range))) =
            (months.first(), months.last())
        else {
            return Ok(Vec::new());
        };
        let origin = self.ledger_origin(stream).await?;
        let mut waivers = self.waivers(*first, *last).await?;
        let span = TimeRange::new(first_range.start(), last_range.end())
            .map_err(|e| Error::Corrupt(format!("the months {first} to {last}: {e}")))?;
        let rows = self.gap_rows(stream, span).await?;
        let mut gaps = Vec::with_capacity(months.len());
        for (month, range) in months {
            let waivers = waivers.remove(month).unwrap_or_default();
            let recorded: Vec<Gap> = rows
                .iter()
                .filter(|(_, gap)| gap.to > range.start() && gap.from < range.end())
                .map(|(seq, gap)| {
                    let mut gap = gap.clone();
                    gap.waived = waivers
                        .iter()
                        .find(|(through, _)| through >= seq)
                        .map(|(_, w)| w.clone());
                    gap
                })
                .collect();
            let head = waivers.first().map(|(_, w)| w);
            gaps.push(month_gaps(range, origin, &recorded, head));
        }
        Ok(gaps)
    }

    /// Records finance's waiver of every gap of `month` recorded so far (and the part of it
    /// before the ledger began), by `by` for `reason`. Returns the gaps it newly waives; gaps
    /// recorded later need another waiver.
    pub async fn waive_gaps(
        &self,
        stream: &str,
        month: Month,
        range: TimeRange,
        by: &str,
        reason: &str,
    ) -> Result<Waived> {
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > MAX_WAIVER_REASON {
            return Err(Error::invalid(
                "reason",
                format!("must say why, in 1 to {MAX_WAIVER_REASON} bytes"),
            ));
        }
        check_visible_text(reason).map_err(|e| Error::invalid("reason", e))?;
        let before = self.month_gaps(stream, month, range).await?;
        let month_text = month.to_string();
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await.map_err(db("waiving gaps"))?;
            let through: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM metering_gaps")
                .fetch_one(&mut *tx)
                .await
                .map_err(db("waiving gaps"))?;
            sqlx::query(
                "INSERT INTO metering_gap_waivers (month, through_seq, waived_by, reason, \
                 waived_at_us) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&month_text)
            .bind(through)
            .bind(by)
            .bind(reason)
            .bind(now_micros())
            .execute(&mut *tx)
            .await
            .map_err(db("waiving gaps"))?;
            tx.commit().await.map_err(db("waiving gaps"))?;
        });
        let after = self.month_gaps(stream, month, range).await?;
        let newly = after
            .into_iter()
            .filter(|g| g.waived.is_some())
            .filter(|g| {
                before
                    .iter()
                    .any(|b| b.from == g.from && b.to == g.to && b.waived.is_none())
            })
            .collect();
        Ok(Waived {
            month: month_text,
            gaps: newly,
        })
    }

    async fn gap_rows(&self, stream: &str, range: TimeRange) -> Result<Vec<(i64, Gap)>> {
        let rows: Vec<GapRow> = with_pool!(self, pool => sqlx::query_as(
            "SELECT seq, start_s, end_s, kind, reason FROM metering_gaps \
             WHERE stream = $1 AND end_s > $2 AND start_s < $3 ORDER BY start_s, seq",
        )
        .bind(stream)
        .bind(range.start().as_second())
        .bind(range.end().as_second())
        .fetch_all(pool)
        .await)
        .map_err(db("reading metering gaps"))?;
        rows.into_iter()
            .map(|(seq, start, end, kind, reason)| {
                let kind: GapKind = kind
                    .parse()
                    .map_err(|e: String| Error::Corrupt(format!("metering gap {seq}: {e}")))?;
                let gap = Gap::new(
                    instant(start, "a metering gap")?,
                    instant(end, "a metering gap")?,
                    kind,
                    reason,
                );
                Ok((seq, gap))
            })
            .collect()
    }

    /// The waivers of each month from `first` through `last`, oldest first, with the last gap
    /// each covers.
    async fn waivers(
        &self,
        first: Month,
        last: Month,
    ) -> Result<BTreeMap<Month, Vec<(i64, Waiver)>>> {
        let rows: Vec<WaiverRow> = with_pool!(self, pool => sqlx::query_as(
            "SELECT month, through_seq, waived_by, reason, waived_at_us \
             FROM metering_gap_waivers WHERE month >= $1 AND month <= $2 ORDER BY seq",
        )
        .bind(first.to_string())
        .bind(last.to_string())
        .fetch_all(pool)
        .await)
        .map_err(db("reading gap waivers"))?;
        let mut waivers: BTreeMap<Month, Vec<(i64, Waiver)>> = BTreeMap::new();
        for (month, through, by, reason, at) in rows {
            let month: Month = month
                .parse()
                .map_err(|e| Error::Corrupt(format!("a gap waiver of the month {month:?}: {e}")))?;
            let at = from_micros(at, "a gap waiver")?;
            waivers
                .entry(month)
                .or_default()
                .push((through, Waiver { by, at, reason }));
        }
        Ok(waivers)
    }
}

fn instant(second: i64, what: &str) -> Result<Timestamp> {
    Timestamp::from_second(second)
        .map_err(|_| Error::Corrupt(format!("{what} has an impossible instant {second}")))
}
