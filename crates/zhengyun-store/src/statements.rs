//! Closed monthly statements and their adjustments (docs/architecture.md, invariant 5: a closed
//! statement never changes; corrections are new signed adjustment lines).
//!
//! A closed statement is stored as a header (the statement as JSON without its lines: month,
//! zone, currency, totals, budget flags) and one row per line (the line as JSON, plus its
//! reference, bureau, environment and amount as columns for SQL readers). Reading one back
//! reassembles it and re-runs the conservation checks, so a line altered behind the store's back
//! is reported as [`Error::Corrupt`] instead of being billed.
//!
//! This module has no function that updates or deletes; the schema refuses `UPDATE` and
//! `DELETE` on these tables as well.

use std::collections::BTreeMap;

use zhengyun_metering::{AdjustmentLine, AdjustmentReason, Month, Statement};

use crate::{
    PoolExt, Store,
    error::{Error, Result, db},
    ledger::ROWS_PER_STATEMENT,
    seals::{ClosedStatement, GENESIS_SEAL, SealVerification, SealedMonth, SealedText, seal_of},
    time::{from_micros, now_micros},
    with_pool,
};

/// A statement line or adjustment as stored.
struct LineRow {
    reference: String,
    bureau: String,
    environment: String,
    amount: String,
    json: String,
}

fn to_json<T: serde::Serialize>(value: &T, what: &'static str) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::invalid(what, e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt(format!("{what}: {e}")))
}

fn reason_name(reason: AdjustmentReason) -> &'static str {
    match reason {
        AdjustmentReason::Correction => "correction",
        AdjustmentReason::Addition => "addition",
        AdjustmentReason::Reversal => "reversal",
    }
}

impl Store {
    /// Closes `month` with `statement`, which must be of that month and pass every
    /// conservation check. A month closes once: closing it again is an [`Error::Conflict`],
    /// whatever the statement. The closer is recorded as unknown; see
    /// [`Store::close_statement_as`].
    pub async fn close_statement(&self, month: Month, statement: &Statement) -> Result<()> {
        self.close_statement_as(month, statement, "")
            .await
            .map(|_| ())
    }

    /// Closes `month` with `statement` on behalf of `closed_by` (a token id), and seals it
    /// onto the chain of closed months (see [`crate::seals`]); returns the seal. A month
    /// closes once: closing it again is an [`Error::Conflict`], whatever the statement.
    pub async fn close_statement_as(
        &self,
        month: Month,
        statement: &Statement,
        closed_by: &str,
    ) -> Result<String> {
        const DOING: &str = "closing a statement";
        if statement.month != month {
            return Err(Error::invalid(
                "statement",
                format!("it is the statement of {}, not {month}", statement.month),
            ));
        }
        statement
            .check_conservation()
            .map_err(|source| Error::Metering {
                what: "statement",
                source: Box::new(source),
            })?;
        let header = to_json(&header_of(statement), "statement")?;
        let lines = statement
            .lines
            .iter()
            .map(|line| {
                Ok(LineRow {
                    reference: line.key.reference(month),
                    bureau: line.key.meter.bureau().to_owned(),
                    environment: line.key.meter.environment().to_owned(),
                    amount: line.amount.to_string(),
                    json: to_json(line, "statement line")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let month_text = month.to_string();
        let closed_at_us = now_micros();
        let line_texts: Vec<String> = lines.iter().map(|l| l.json.clone()).collect();
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await.map_err(db(DOING))?;
            let inserted = sqlx::query(
                "INSERT INTO closed_statements (month, closed_at_us, header) VALUES ($1, $2, $3) \
                 ON CONFLICT (month) DO NOTHING",
            )
            .bind(&month_text)
            .bind(closed_at_us)
            .bind(&header)
            .execute(&mut *tx)
            .await
            .map_err(db(DOING))?
            .rows_affected();
            if inserted == 0 {
                return Err(Error::Conflict(format!("the statement of {month} is already closed")));
            }
            let mut first = 0;
            for chunk in crate::statement_chunks(&lines, ROWS_PER_STATEMENT, true) {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO closed_statement_lines \
                     (month, line_no, reference, bureau, environment, amount, line) ",
                );
                insert.push_values(chunk.iter().enumerate(), |mut values, (i, line)| {
                    values
                        .push_bind(month_text.clone())
                        .push_bind(i64::try_from(first + i).unwrap_or(i64::MAX))
                        .push_bind(line.reference.clone())
                        .push_bind(line.bureau.clone())
                        .push_bind(line.environment.clone())
                        .push_bind(line.amount.clone())
                        .push_bind(line.json.clone());
                });
                insert.build().execute(&mut *tx).await.map_err(db(DOING))?;
                first += chunk.len();
            }
            let previous: Option<String> = sqlx::query_scalar(pool.dialect(
                "SELECT seal FROM statement_seals ORDER BY seq DESC LIMIT 1",
                "SELECT seal FROM statement_seals ORDER BY seq DESC LIMIT 1 FOR UPDATE",
            ))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db(DOING))?;
            let previous = previous.unwrap_or_else(|| GENESIS_SEAL.to_owned());
            let seal = seal_of(&previous, &SealedText {
                month: &month_text,
                closed_at_us,
                closed_by,
                header: &header,
                lines: &line_texts,
            });
            sqlx::query(
                "INSERT INTO statement_seals (month, closed_by, previous_seal, seal) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&month_text)
            .bind(closed_by)
            .bind(&previous)
            .bind(&seal)
            .execute(&mut *tx)
            .await
            .map_err(db(DOING))?;
            tx.commit().await.map_err(db(DOING))?;
            Ok(seal)
        })
    }

    /// The closed statement of `month`, or `None` if the month is not closed. Fails with
    /// [`Error::Corrupt`] if the stored statement no longer passes its conservation checks or
    /// no longer matches its seal.
    pub async fn closed_statement(&self, month: Month) -> Result<Option<Statement>> {
        Ok(self.closed_record(month).await?.map(|c| c.statement))
    }

    /// The closed statement of `month` with when and by whom it was closed and its seal, or
    /// `None` if the month is not closed. Fails with [`Error::Corrupt`] if the stored statement
    /// no longer passes its conservation checks or no longer matches its seal.
    pub async fn closed_record(&self, month: Month) -> Result<Option<ClosedStatement>> {
        let month_text = month.to_string();
        let Some(stored) = self.stored_statement(&month_text).await? else {
            return Ok(None);
        };
        let what = format!("the closed statement of {month}");
        if let Some((_, previous, seal)) = &stored.seal {
            let recomputed = seal_of(previous, &stored.text(&month_text));
            if &recomputed != seal {
                return Err(Error::Corrupt(format!(
                    "{what} no longer matches its seal: it was altered after closing"
                )));
            }
        }
        let (header, lines) = (&stored.header, &stored.lines);
        let mut statement: Statement = from_json(header, &what)?;
        statement.lines = lines
            .iter()
            .map(|line| from_json(line, &what))
            .collect::<Result<_>>()?;
        if statement.month != month {
            return Err(Error::Corrupt(format!(
                "{what} is labelled {}",
                statement.month
            )));
        }
        statement
            .check_conservation()
            .map_err(|e| Error::Corrupt(format!("{what} fails its conservation checks: {e}")))?;
        Ok(Some(ClosedStatement {
            statement,
            closed_at: from_micros(stored.closed_at_us, "a closing instant")?,
            closed_by: stored
                .seal
                .as_ref()
                .map(|(by, _, _)| by.clone())
                .unwrap_or_default(),
            seal: stored.seal.map(|(_, _, seal)| seal),
        }))
    }

    /// A closed month's stored text and seal row, in one snapshot.
    async fn stored_statement(&self, month: &str) -> Result<Option<StoredStatement>> {
        const DOING: &str = "reading a closed statement";
        with_pool!(self, pool => {
            let mut tx = pool.begin_snapshot().await.map_err(db(DOING))?;
            let head: Option<(String, i64)> = sqlx::query_as(
                "SELECT header, closed_at_us FROM closed_statements WHERE month = $1",
            )
            .bind(month)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db(DOING))?;
            let Some((header, closed_at_us)) = head else {
                tx.commit().await.map_err(db(DOING))?;
                return Ok(None);
            };
            let lines: Vec<String> = sqlx::query_scalar(
                "SELECT line FROM closed_statement_lines WHERE month = $1 ORDER BY line_no",
            )
            .bind(month)
            .fetch_all(&mut *tx)
            .await
            .map_err(db(DOING))?;
            let seal: Option<(String, String, String)> = sqlx::query_as(
                "SELECT closed_by, previous_seal, seal FROM statement_seals WHERE month = $1",
            )
            .bind(month)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db(DOING))?;
            tx.commit().await.map_err(db(DOING))?;
            Ok(Some(StoredStatement { header, closed_at_us, lines, seal }))
        })
    }

    /// Walks the chain of seals in closing order, up to and including `through` (every month if
    /// `None`): each seal must recompute from its stored statement and name the seal before it.
    /// Closed months without a seal (closed before statements were sealed) are listed apart.
    pub async fn verify_statement_seals(&self, through: Option<Month>) -> Result<SealVerification> {
        const DOING: &str = "verifying statement seals";
        let rows: Vec<(String, String)> = with_pool!(self, pool =>
            sqlx::query_as("SELECT month, seal FROM statement_seals ORDER BY seq")
                .fetch_all(pool)
                .await)
        .map_err(db(DOING))?;
        let sealed_months: std::collections::BTreeSet<&str> =
            rows.iter().map(|(m, _)| m.as_str()).collect();
        let through = through.map(|m| m.to_string());
        let mut verification = SealVerification {
            intact: true,
            sealed: Vec::new(),
            unsealed: self
                .closed_months()
                .await?
                .iter()
                .map(Month::to_string)
                .filter(|m| !sealed_months.contains(m.as_str()))
                .filter(|m| through.as_ref().is_none_or(|t| m <= t))
                .collect(),
            first_broken_month: None,
            reason: None,
        };
        let mut expected_previous = GENESIS_SEAL.to_owned();
        for (month, _) in &rows {
            let broken = |reason: String| (month.clone(), reason);
            let problem = match self.stored_statement(month).await? {
                None => Some(broken("its statement is missing".to_owned())),
                Some(stored) => match &stored.seal {
                    None => Some(broken("its seal is missing".to_owned())),
                    Some((_, previous, seal)) if *previous != expected_previous => {
                        Some(broken(format!(
                            "it names {previous} as the previous seal, but the month closed \
                             before it has {expected_previous}"
                        )))
                    }
                    Some((_, previous, seal)) => {
                        let recomputed = seal_of(previous, &stored.text(month));
                        if recomputed == *seal {
                            verification.sealed.push(SealedMonth {
                                month: month.clone(),
                                previous_seal: previous.clone(),
                                seal: seal.clone(),
                            });
                            expected_previous = seal.clone();
                            None
                        } else {
                            Some(broken(
                                "its stored statement no longer matches its seal".to_owned(),
                            ))
                        }
                    }
                },
            };
            if let Some((month, reason)) = problem {
                verification.intact = false;
                verification.first_broken_month = Some(month);
                verification.reason = Some(reason);
                break;
            }
            if through.as_deref() == Some(month.as_str()) {
                break;
            }
        }
        Ok(verification)
    }

    /// The months with a closed statement, oldest first.
    pub async fn closed_months(&self) -> Result<Vec<Month>> {
        let months: Vec<String> = with_pool!(self, pool =>
            sqlx::query_scalar("SELECT month FROM closed_statements ORDER BY month")
                .fetch_all(pool)
                .await)
        .map_err(db("listing closed statements"))?;
        parse_months(&months)
    }

    /// The months from `first` through `last` with a closed statement, oldest first.
    pub(crate) async fn closed_months_between(
        &self,
        first: Month,
        last: Month,
    ) -> Result<Vec<Month>> {
        let months: Vec<String> = with_pool!(self, pool =>
            sqlx::query_scalar(
                "SELECT month FROM closed_statements WHERE month >= $1 AND month <= $2 ORDER BY month",
            )
            .bind(first.to_string())
            .bind(last.to_string())
            .fetch_all(pool)
            .await)
        .map_err(db("listing closed statements"))?;
        parse_months(&months)
    }

    /// Issues adjustment `lines` (computed by `zhengyun_metering::adjustments`) for the closed
    /// `month`. `issued_before` is how many adjustments of the month the caller saw when it
    /// computed them (`adjustments(month).len()`): if others were issued meanwhile, nothing is
    /// stored and the result is [`Error::Conflict`], so two concurrent corrections can never
    /// correct the same difference twice. Recompute and try again.
    pub async fn add_adjustments(
        &self,
        month: Month,
        issued_before: usize,
        lines: &[AdjustmentLine],
    ) -> Result<()> {
        const DOING: &str = "issuing adjustments";
        if let Some(line) = lines.iter().find(|line| line.month != month) {
            return Err(Error::invalid(
                "adjustment",
                format!("{} adjusts {}, not {month}", line.reference(), line.month),
            ));
        }
        let rows = lines
            .iter()
            .map(|line| {
                Ok((
                    reason_name(line.reason),
                    LineRow {
                        reference: line.reference(),
                        bureau: line.key.meter.bureau().to_owned(),
                        environment: line.key.meter.environment().to_owned(),
                        amount: line.amount.to_string(),
                        json: to_json(line, "adjustment")?,
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let month_text = month.to_string();
        let issued_at = now_micros();
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await.map_err(db(DOING))?;
            let closed: Option<String> = sqlx::query_scalar(pool.dialect(
                "SELECT month FROM closed_statements WHERE month = $1",
                "SELECT month FROM closed_statements WHERE month = $1 FOR UPDATE",
            ))
            .bind(&month_text)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db(DOING))?;
            if closed.is_none() {
                return Err(Error::NotFound(format!("closed statement of {month}")));
            }
            let issued: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM statement_adjustments WHERE month = $1")
                    .bind(&month_text)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db(DOING))?;
            if usize::try_from(issued).ok() != Some(issued_before) {
                return Err(Error::Conflict(format!(
                    "{issued} adjustments of {month} are issued, not {issued_before}: \
                     recompute them"
                )));
            }
            for chunk in crate::statement_chunks(&rows, ROWS_PER_STATEMENT, true) {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO statement_adjustments \
                     (month, issued_at_us, reference, bureau, environment, reason, amount, line) ",
                );
                insert.push_values(chunk, |mut values, (reason, line)| {
                    values
                        .push_bind(month_text.clone())
                        .push_bind(issued_at)
                        .push_bind(line.reference.clone())
                        .push_bind(line.bureau.clone())
                        .push_bind(line.environment.clone())
                        .push_bind(*reason)
                        .push_bind(line.amount.clone())
                        .push_bind(line.json.clone());
                });
                insert.build().execute(&mut *tx).await.map_err(db(DOING))?;
            }
            tx.commit().await.map_err(db(DOING))?;
            Ok(())
        })
    }

    /// The adjustments issued for `month`, in the order they were issued.
    pub async fn adjustments(&self, month: Month) -> Result<Vec<AdjustmentLine>> {
        let mut lines = self.months_adjustments(month, month).await?;
        Ok(lines.remove(&month).unwrap_or_default())
    }

    /// [`Store::adjustments`] of each month from `first` through `last` that has any, read in
    /// one query.
    pub(crate) async fn months_adjustments(
        &self,
        first: Month,
        last: Month,
    ) -> Result<BTreeMap<Month, Vec<AdjustmentLine>>> {
        let rows: Vec<(String, String)> = with_pool!(self, pool => sqlx::query_as(
            "SELECT month, line FROM statement_adjustments \
             WHERE month >= $1 AND month <= $2 ORDER BY month, seq",
        )
        .bind(first.to_string())
        .bind(last.to_string())
        .fetch_all(pool)
        .await)
        .map_err(db("reading adjustments"))?;
        let mut lines: BTreeMap<Month, Vec<AdjustmentLine>> = BTreeMap::new();
        for (month, line) in rows {
            let month: Month = month
                .parse()
                .map_err(|_| Error::Corrupt(format!("an adjustment has month {month:?}")))?;
            let line = from_json(&line, &format!("an adjustment of {month}"))?;
            lines.entry(month).or_default().push(line);
        }
        Ok(lines)
    }
}

/// The months of closed statements, as stored.
fn parse_months(months: &[String]) -> Result<Vec<Month>> {
    months
        .iter()
        .map(|m| {
            m.parse()
                .map_err(|_| Error::Corrupt(format!("a closed statement has month {m:?}")))
        })
        .collect()
}

/// A closed month as stored: header, closing instant, lines, and its seal row
/// `(closed_by, previous_seal, seal)` if it has one.
struct StoredStatement {
    header: String,
    closed_at_us: i64,
    lines: Vec<String>,
    seal: Option<(String, String, String)>,
}

impl StoredStatement {
    fn text<'a>(&'a self, month: &'a str) -> SealedText<'a> {
        SealedText {
            month,
            closed_at_us: self.closed_at_us,
            closed_by: self.seal.as_ref().map_or("", |(by, _, _)| by.as_str()),
            header: &self.header,
            lines: &self.lines,
        }
    }
}

/// A copy of `statement` without its lines, which can be many.
fn header_of(statement: &Statement) -> Statement {
    Statement {
        month: statement.month,
        time_zone: statement.time_zone.clone(),
        currency: statement.currency.clone(),
        period: statement.period,
        lines: Vec::new(),
        environments: statement.environments.clone(),
        bureaus: statement.bureaus.clone(),
        platform: statement.platform.clone(),
        gaps: statement.gaps.clone(),
        settlement: statement.settlement.clone(),
        service_credits: statement.service_credits.clone(),
    }
}
