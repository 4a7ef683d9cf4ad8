//! Audit intents: the write-ahead half of "every change has its audit entry".
//!
//! A caller about to change something first opens an intent ([`Store::open_audit_intent`]):
//! a row holding the entry it will append. If that write fails, the caller must not make the
//! change. Once the change is made (or refused), [`Store::append_audit_settling`] appends the
//! entry with its outcome and deletes the intent in one transaction. An intent that is still
//! open long after it was opened belongs to a process that stopped in between;
//! [`Store::settle_stale_audit_intents`] appends it with an unknown outcome. So a change can
//! be left without its outcome, but never without an entry.
//!
//! Intents are not part of the hash chain: they are a queue of entries still to be written.

use jiff::Timestamp;

use crate::{
    Store,
    audit::{AuditEntry, AuditRecord},
    error::{Error, Result, db},
    group_commit::Write,
    time::to_micros,
    with_pool,
};

/// What settling an intent does when the intent is already gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Settle {
    /// Append anyway: the caller knows the outcome, which is worth recording even if a sweep
    /// already recorded the intent as unknown.
    Always,
    /// Append nothing: someone else settled it.
    OnlyIfOpen,
}

/// An open audit intent, named by a random id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditIntent(String);

impl AuditIntent {
    /// The intent's id.
    pub fn id(&self) -> &str {
        &self.0
    }
}

/// The result an intent carries while its change is running.
pub const IN_PROGRESS: &str = "in progress";

/// The outcome recorded for an intent that its process never settled.
pub const UNKNOWN_OUTCOME: &str =
    "outcome unknown: the API stopped before recording it; check the object itself";

impl Store {
    /// Opens an intent to append `entry` (its `result` says what is being attempted). Fails,
    /// like any write, when the database cannot be written; the caller must then not make
    /// the change.
    pub async fn open_audit_intent(&self, entry: &AuditEntry) -> Result<AuditIntent> {
        let entry = entry.bounded();
        let text = serde_json::to_string(&entry)
            .map_err(|e| Error::invalid("audit entry", e.to_string()))?;
        let id = uuid::Uuid::new_v4().to_string();
        self.audit_write(Write::Open {
            id: id.clone(),
            opened_us: to_micros(entry.at),
            entry: text,
        })
        .await?;
        Ok(AuditIntent(id))
    }

    /// Appends `entry`, the outcome of `intent`, and settles the intent, in one transaction.
    /// Appends even if a sweep already recorded the intent as unknown: the real outcome then
    /// follows that entry.
    pub async fn append_audit_settling(
        &self,
        entry: &AuditEntry,
        intent: &AuditIntent,
    ) -> Result<AuditRecord> {
        self.append_settling(entry, Some((intent.id(), Settle::Always)))
            .await?
            .ok_or_else(|| Error::Corrupt("an unconditional append was skipped".into()))
    }

    /// How many intents are open.
    pub async fn open_audit_intents(&self) -> Result<u64> {
        let count: i64 = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_intents")
                .fetch_one(pool)
                .await
                .map_err(db("counting audit intents"))?
        });
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Appends every intent opened before `opened_before` with the outcome
    /// [`UNKNOWN_OUTCOME`], and settles it. Each is appended once, even when several
    /// processes sweep at the same time. Returns how many were appended.
    pub async fn settle_stale_audit_intents(&self, opened_before: Timestamp) -> Result<u64> {
        const DOING: &str = "reading stale audit intents";
        let stale: Vec<(String, String)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, entry FROM audit_intents WHERE opened_us < $1 ORDER BY opened_us, id",
            )
            .bind(to_micros(opened_before))
            .fetch_all(pool)
            .await
            .map_err(db(DOING))?
        });
        let mut appended = 0;
        for (id, text) in stale {
            let mut entry: AuditEntry = serde_json::from_str(&text).map_err(|e| {
                Error::Corrupt(format!("audit intent {id} holds no readable entry: {e}"))
            })?;
            entry.result = format!("{} ({UNKNOWN_OUTCOME})", entry.result);
            if self
                .append_settling(&entry, Some((&id, Settle::OnlyIfOpen)))
                .await?
                .is_some()
            {
                appended += 1;
            }
        }
        Ok(appended)
    }
}
