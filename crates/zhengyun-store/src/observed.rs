//! What the operator last recorded in the audit log about the cluster objects whose changes it
//! audits (rate cards, bureau budgets, environment tiers; see the operator's `billing_audit`).
//!
//! Remembering it in the database, and changing it in the transaction that appends the audit
//! entries, is what makes a change recorded exactly once: a restart, a relist or a new leader
//! compares with what is remembered, not with what it happened to see last.

use serde_json::Value;

use crate::{
    PoolExt, Store,
    audit::{AuditEntry, AuditRecord, append_in, check_entry, seq_of},
    error::{Error, Result, db},
    with_pool,
};

/// An object as last recorded: its identity and its audited values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The kind, e.g. `RateCard`, `Bureau`, `Environment`.
    pub kind: String,
    /// `metadata.name` (the objects audited are cluster-scoped).
    pub name: String,
    /// `metadata.uid`: a deleted and re-created object is another object.
    pub uid: String,
    /// `metadata.generation` when the values were recorded.
    pub generation: i64,
    /// The audited values, e.g. `{"monthlyBudget": "12000.00"}`.
    pub audited: Value,
}

type Row = (String, String, String, i64, String);

fn from_row((kind, name, uid, generation, audited): Row) -> Result<Observed> {
    let audited = serde_json::from_str(&audited).map_err(|_| {
        Error::Corrupt(format!(
            "the remembered audited values of {kind}/{name} are not JSON"
        ))
    })?;
    Ok(Observed {
        kind,
        name,
        uid,
        generation,
        audited,
    })
}

impl Store {
    /// Every object of `kind` remembered, by name.
    pub async fn observed(&self, kind: &str) -> Result<Vec<Observed>> {
        const DOING: &str = "reading the audited objects";
        let rows: Vec<Row> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT kind, name, uid, generation, audited FROM audit_observed \
                 WHERE kind = $1 ORDER BY name",
            )
            .bind(kind)
            .fetch_all(pool)
            .await
            .map_err(db(DOING))?
        });
        rows.into_iter().map(from_row).collect()
    }

    /// Records a change of the object `kind`/`name` in one transaction: reads what is
    /// remembered of it, asks `entries` what that makes for the audit log (given the remembered
    /// state), appends those entries to the chain, and remembers `now` — or forgets the object
    /// when `now` is `None`. Writers serialize on the chain's head, so two of them (an old and a
    /// new leader) record a change once: the second sees the first's state and appends nothing.
    /// Returns the entries appended.
    pub async fn record_observed<F>(
        &self,
        kind: &str,
        name: &str,
        now: Option<&Observed>,
        entries: F,
    ) -> Result<Vec<AuditRecord>>
    where
        F: FnOnce(Option<&Observed>) -> Vec<AuditEntry>,
    {
        const DOING: &str = "recording an observed change in the audit log";
        let appended = with_pool!(self, pool => {
            let mut tx = pool.begin_write().await.map_err(db(DOING))?;
            // Lock the head first, so that deciding and appending see one state.
            sqlx::query(pool.dialect(
                "SELECT seq FROM audit_head WHERE id = 1",
                "SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE",
            ))
            .execute(&mut *tx)
            .await
            .map_err(db(DOING))?;
            let row: Option<Row> = sqlx::query_as(
                "SELECT kind, name, uid, generation, audited FROM audit_observed \
                 WHERE kind = $1 AND name = $2",
            )
            .bind(kind)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db(DOING))?;
            let before = row.map(from_row).transpose()?;
            if before.as_ref() == now {
                return Ok(Vec::new());
            }
            let mut appended = Vec::new();
            for entry in entries(before.as_ref()) {
                let entry = entry.bounded();
                check_entry(&entry)?;
                appended.push(append_in!(pool, tx, &entry, DOING));
            }
            let last_seq = appended.last().map(|(stored, _, _)| stored.seq);
            match now {
                Some(now) => {
                    sqlx::query(
                        "INSERT INTO audit_observed (kind, name, uid, generation, audited, seq) \
                         VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (kind, name) DO UPDATE SET uid = excluded.uid, \
                         generation = excluded.generation, audited = excluded.audited, \
                         seq = COALESCE(excluded.seq, audit_observed.seq)",
                    )
                    .bind(kind)
                    .bind(name)
                    .bind(&now.uid)
                    .bind(now.generation)
                    .bind(now.audited.to_string())
                    .bind(last_seq)
                    .execute(&mut *tx)
                    .await
                    .map_err(db(DOING))?;
                }
                None => {
                    sqlx::query("DELETE FROM audit_observed WHERE kind = $1 AND name = $2")
                        .bind(kind)
                        .bind(name)
                        .execute(&mut *tx)
                        .await
                        .map_err(db(DOING))?;
                }
            }
            tx.commit().await.map_err(db(DOING))?;
            appended
        });
        appended
            .into_iter()
            .map(|(stored, prev_hash, hash)| {
                Ok(AuditRecord {
                    seq: seq_of(stored.seq),
                    entry: stored.into_entry()?,
                    prev_hash,
                    hash,
                })
            })
            .collect()
    }
}
