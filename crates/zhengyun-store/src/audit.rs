//! The audit log: who changed what, when, with what result — as a hash chain an auditor can
//! recompute without trusting the database.
//!
//! Entries are numbered 1, 2, 3… without gaps. Each stores the hash of the previous entry
//! (`prev_hash`; 64 zeros for the first) and its own
//!
//! ```text
//! hash = SHA-256( prev_hash as 32 raw bytes ‖ canonical(entry) )
//! ```
//!
//! written as 64 lowercase hex digits. `canonical` depends on the entry's stored `format`:
//!
//! - format 1 (entries written before principals had labels): the ASCII tag
//!   `zhengyun-audit-v1` followed by the fields in this order: `seq`, `at_us` (each an 8-byte
//!   big-endian signed integer), then `principal`, `role`, `bureau`, `action`, `object`,
//!   `quota_before`, `quota_after`, `result`, `request_id`, each either `0x00` (absent) or
//!   `0x01`, a 4-byte big-endian byte length and the UTF-8 bytes exactly as stored.
//! - format 2 (every entry written since): the tag `zhengyun-audit-v2`, the same fields, then
//!   `principal_label` (the token's role, bureau and description, readable) encoded alike.
//!
//! Length prefixes make the encoding unambiguous without escaping, so any language can
//! recompute it. The tag is hashed, so changing an entry's `format` breaks its hash too.
//!
//! What is stored is bounded, whatever the caller asked for (a refused call's 200 KB name
//! included): in every text field control characters are escaped (`\n`, `\u{1b}`) and at most
//! [`MAX_FIELD_CHARS`] characters are kept, the last of them a marker saying the field was cut
//! and how long it was; the strings inside a quota are bounded alike, and a quota still over
//! [`MAX_QUOTA_BYTES`] is kept as its cut JSON text. Bounding is done before hashing, so the
//! chain covers exactly what is stored.
//!
//! Appends serialize on the `audit_head` row (SQLite: `BEGIN IMMEDIATE`; PostgreSQL:
//! `SELECT … FOR UPDATE`), so concurrent appends — from one process or several — always extend
//! the chain and never fork it. Instants are kept to the microsecond; that is what is hashed.
//!
//! The chain detects any change, insertion or deletion of stored entries, and the head row
//! detects truncation of the newest. Someone able to rewrite every entry from some point on
//! *and* the head can rebuild a consistent chain; publishing the head elsewhere (the API logs it
//! periodically; auditors note it from `GET /api/v1/audit/head`) defeats that too.
//! [`Store::publish_audit_head`] also remembers the highest head published, never moves it
//! backwards, and [`Store::verify_audit`] names a chain that no longer reaches it or no longer
//! holds its hash. That record is in the same database, so it only catches a rewrite that
//! forgot it; the copies outside are what an auditor compares against.

use futures::TryStreamExt;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    PoolExt, Store,
    error::{Error, Result, db},
    group_commit::{Write, Written},
    intents::Settle,
    time::{from_micros, to_micros},
    tokens::Role,
    with_pool,
};

/// The hash that the first entry's `prev_hash` holds.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const CANONICAL_TAG_V1: &[u8] = b"zhengyun-audit-v1";
const CANONICAL_TAG_V2: &[u8] = b"zhengyun-audit-v2";
/// The canonical form new entries are written in.
const CURRENT_FORMAT: i64 = 2;
/// The most entries one [`Store::audit_log`] call returns.
pub const MAX_PAGE: u32 = 1000;
const DEFAULT_PAGE: u32 = 100;
/// The most characters an audit text field keeps (the cut marker included).
pub const MAX_FIELD_CHARS: usize = 300;
/// The most bytes a quota keeps as JSON.
pub const MAX_QUOTA_BYTES: usize = 4096;

/// `text` as the audit log stores it: control characters (and bidirectional overrides, which
/// could disguise what a line says) escaped, then cut on a character boundary to
/// [`MAX_FIELD_CHARS`] characters ending in `…[cut, N bytes]`, N the escaped text's length.
/// Bounding bounded text changes nothing.
pub fn bounded_text(text: &str) -> String {
    let disguising =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if disguising(c) {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    if escaped.chars().count() <= MAX_FIELD_CHARS {
        return escaped;
    }
    let marker = format!("…[cut, {} bytes]", escaped.len());
    let keep = MAX_FIELD_CHARS.saturating_sub(marker.chars().count());
    escaped.chars().take(keep).chain(marker.chars()).collect()
}

/// A quota (or any JSON) as the audit log stores it: every string and key bounded like
/// [`bounded_text`]; if it is still over [`MAX_QUOTA_BYTES`], its JSON text, bounded.
pub fn bounded_json(value: &serde_json::Value) -> serde_json::Value {
    fn strings(value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(text) => Value::String(bounded_text(text)),
            Value::Array(items) => Value::Array(items.iter().map(strings).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(key, value)| (bounded_text(key), strings(value)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    let bounded = strings(value);
    let text = bounded.to_string();
    if text.len() <= MAX_QUOTA_BYTES {
        bounded
    } else {
        serde_json::Value::String(bounded_text(&text))
    }
}

/// One audited action, as the API records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// When the call was made; stored to the microsecond.
    pub at: Timestamp,
    /// Who made it: a token id, or a system name such as `system:operator`.
    pub principal: String,
    /// The principal as a person reads it, e.g. `token 3f2a… (bureau-admin wjw: "卫健委 CI")`;
    /// absent in entries written before labels were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_label: Option<String>,
    /// The principal's role, if it had one.
    pub role: Option<Role>,
    /// The bureau concerned (the caller's, or the target's for platform actions).
    pub bureau: Option<String>,
    /// What was done, e.g. `environment.create`, `bureau.quota.update`, `token.revoke`.
    pub action: String,
    /// What it was done to, e.g. `environments/wjw-prod`.
    pub object: String,
    /// The quota before the change, as JSON, when one changed.
    pub quota_before: Option<serde_json::Value>,
    /// The quota after the change, as JSON, when one changed.
    pub quota_after: Option<serde_json::Value>,
    /// The outcome, e.g. `created`, `pending`, `denied`, `conflict`.
    pub result: String,
    /// The request id of the API call, to find it in the logs.
    pub request_id: String,
}

impl AuditEntry {
    /// The entry as the audit log stores it: every field bounded (see [`bounded_text`],
    /// [`bounded_json`]).
    pub fn bounded(&self) -> AuditEntry {
        AuditEntry {
            at: self.at,
            principal: bounded_text(&self.principal),
            principal_label: self.principal_label.as_deref().map(bounded_text),
            role: self.role,
            bureau: self.bureau.as_deref().map(bounded_text),
            action: bounded_text(&self.action),
            object: bounded_text(&self.object),
            quota_before: self.quota_before.as_ref().map(bounded_json),
            quota_after: self.quota_after.as_ref().map(bounded_json),
            result: bounded_text(&self.result),
            request_id: bounded_text(&self.request_id),
        }
    }
}

/// A stored entry with its place in the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// The entry.
    #[serde(flatten)]
    pub entry: AuditEntry,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

/// Which entries [`Store::audit_log`] returns: those matching every given field, in chain
/// order, after the cursor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this bureau.
    pub bureau: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this principal.
    pub principal: Option<String>,
    /// Only entries at or after this instant.
    pub from: Option<Timestamp>,
    /// Only entries before this instant.
    pub to: Option<Timestamp>,
    /// Only entries after this `seq` (the last `seq` of the previous page).
    pub after: Option<u64>,
    /// At most this many (0 means 100; capped at [`MAX_PAGE`]).
    pub limit: u32,
}

/// The newest entry of the chain, as recorded separately from the entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditHead {
    /// Number of entries (the last `seq`).
    pub seq: u64,
    /// The last entry's hash ([`GENESIS_HASH`] when empty).
    pub hash: String,
}

/// What [`Store::verify_audit`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "status")]
pub enum ChainStatus {
    /// Every entry hashes to what is stored and links to its predecessor.
    Intact {
        /// How many entries were checked.
        entries: u64,
    },
    /// The first entry that does not check out.
    Broken {
        /// Its position.
        seq: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// An entry as stored: the columns that are hashed, in hashing order.
#[derive(Clone, Debug)]
pub(crate) struct StoredEntry {
    pub(crate) format: i64,
    pub(crate) seq: i64,
    pub(crate) at_us: i64,
    pub(crate) principal: String,
    pub(crate) role: Option<String>,
    pub(crate) bureau: Option<String>,
    pub(crate) action: String,
    pub(crate) object: String,
    pub(crate) quota_before: Option<String>,
    pub(crate) quota_after: Option<String>,
    pub(crate) result: String,
    pub(crate) request_id: String,
    pub(crate) principal_label: Option<String>,
}

type StoredRow = (
    i64,
    Option<String>,
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    String,
);

const SELECT_ENTRIES: &str = "SELECT format, principal_label, seq, at_us, principal, role, bureau, action, object, \
                              quota_before, quota_after, result, request_id, prev_hash, hash \
                              FROM audit_log";

const VERIFY_ENTRIES: &str = "SELECT format, principal_label, seq, at_us, principal, role, bureau, action, object, \
                              quota_before, quota_after, result, request_id, prev_hash, hash \
                              FROM audit_log ORDER BY seq";

impl StoredEntry {
    pub(crate) fn new(seq: i64, entry: &AuditEntry) -> Self {
        let json = |value: &Option<serde_json::Value>| value.as_ref().map(|v| v.to_string());
        Self {
            format: CURRENT_FORMAT,
            seq,
            at_us: to_micros(entry.at),
            principal: entry.principal.clone(),
            role: entry.role.map(|r| r.as_str().to_owned()),
            bureau: entry.bureau.clone(),
            action: entry.action.clone(),
            object: entry.object.clone(),
            quota_before: json(&entry.quota_before),
            quota_after: json(&entry.quota_after),
            result: entry.result.clone(),
            request_id: entry.request_id.clone(),
            principal_label: entry.principal_label.clone(),
        }
    }

    fn from_row(row: StoredRow) -> (Self, String, String) {
        let (
            format,
            label,
            seq,
            at_us,
            principal,
            role,
            bureau,
            action,
            object,
            before,
            after,
            result,
            rid,
            p,
            h,
        ) = row;
        let entry = Self {
            format,
            principal_label: label,
            seq,
            at_us,
            principal,
            role,
            bureau,
            action,
            object,
            quota_before: before,
            quota_after: after,
            result,
            request_id: rid,
        };
        (entry, p, h)
    }

    /// The bytes hashed after the previous hash; see the module documentation.
    fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        let v2 = self.format == 2;
        out.extend_from_slice(if v2 {
            CANONICAL_TAG_V2
        } else {
            CANONICAL_TAG_V1
        });
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.at_us.to_be_bytes());
        let label = v2.then_some(self.principal_label.as_ref());
        for field in [
            Some(&self.principal),
            self.role.as_ref(),
            self.bureau.as_ref(),
            Some(&self.action),
            Some(&self.object),
            self.quota_before.as_ref(),
            self.quota_after.as_ref(),
            Some(&self.result),
            Some(&self.request_id),
        ]
        .into_iter()
        .chain(label)
        {
            match field {
                None => out.push(0),
                Some(text) => {
                    out.push(1);
                    // Fields longer than 4 GiB cannot reach the database; saturating keeps
                    // this infallible without making such a field hash like a shorter one.
                    let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(text.as_bytes());
                }
            }
        }
        out
    }

    /// `SHA-256(prev ‖ canonical)` in hex, or `None` if `prev` is not 64 hex digits or the
    /// format is unknown.
    pub(crate) fn hash(&self, prev: &str) -> Option<String> {
        if !(1..=CURRENT_FORMAT).contains(&self.format) {
            return None;
        }
        let prev = hex::decode(prev).ok().filter(|bytes| bytes.len() == 32)?;
        let mut hasher = Sha256::new();
        hasher.update(&prev);
        hasher.update(self.canonical());
        Some(hex::encode(hasher.finalize()))
    }

    pub(crate) fn into_entry(self) -> Result<AuditEntry> {
        let seq = self.seq;
        let corrupt =
            |what: &str| Error::Corrupt(format!("audit entry {seq} has an invalid {what}"));
        let json = |text: Option<String>, what: &str| {
            text.map(|t| serde_json::from_str(&t).map_err(|_| corrupt(what)))
                .transpose()
        };
        Ok(AuditEntry {
            at: from_micros(self.at_us, "an audit entry")?,
            principal: self.principal,
            principal_label: self.principal_label,
            role: self
                .role
                .map(|r| r.parse().map_err(|_| corrupt("role")))
                .transpose()?,
            bureau: self.bureau,
            action: self.action,
            object: self.object,
            quota_before: json(self.quota_before, "quota before")?,
            quota_after: json(self.quota_after, "quota after")?,
            result: self.result,
            request_id: self.request_id,
        })
    }
}

pub(crate) fn seq_of(seq: i64) -> u64 {
    // Sequence numbers are checked positive by the schema.
    u64::try_from(seq).unwrap_or(0)
}

pub(crate) fn check_entry(entry: &AuditEntry) -> Result<()> {
    for (field, value) in [
        ("principal", &entry.principal),
        ("action", &entry.action),
        ("object", &entry.object),
        ("result", &entry.result),
        ("request id", &entry.request_id),
    ] {
        if value.trim().is_empty() {
            return Err(Error::invalid(field, "must not be empty"));
        }
    }
    Ok(())
}

/// Appends the bounded, checked `$entry` to the chain inside the write transaction `$tx` of
/// `$pool`, and evaluates to `(stored entry, previous hash, hash)`. A macro, so that the
/// statements are written once for both backends and other writes can share the transaction.
macro_rules! append_in {
    ($pool:ident, $tx:ident, $entry:expr, $doing:expr) => {{
        let entry: &$crate::audit::AuditEntry = $entry;
        let tx = &mut $tx;
        let doing: &'static str = $doing;
        let (head_seq, head_hash): (i64, String) = sqlx::query_as($pool.dialect(
            "SELECT seq, hash FROM audit_head WHERE id = 1",
            "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
        ))
        .fetch_one(&mut **tx)
        .await
        .map_err($crate::error::db(doing))?;
        let stored = $crate::audit::StoredEntry::new(head_seq + 1, entry);
        let hash = stored.hash(&head_hash).ok_or_else(|| {
            $crate::error::Error::Corrupt(format!(
                "the audit head holds an invalid hash {head_hash:?}"
            ))
        })?;
        sqlx::query(
            "INSERT INTO audit_log (seq, at_us, principal, role, bureau, action, object, \
             quota_before, quota_after, result, request_id, prev_hash, hash, format, \
             principal_label) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(stored.seq)
        .bind(stored.at_us)
        .bind(&stored.principal)
        .bind(&stored.role)
        .bind(&stored.bureau)
        .bind(&stored.action)
        .bind(&stored.object)
        .bind(&stored.quota_before)
        .bind(&stored.quota_after)
        .bind(&stored.result)
        .bind(&stored.request_id)
        .bind(&head_hash)
        .bind(&hash)
        .bind(stored.format)
        .bind(&stored.principal_label)
        .execute(&mut **tx)
        .await
        .map_err($crate::error::db(doing))?;
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(stored.seq)
            .bind(&hash)
            .execute(&mut **tx)
            .await
            .map_err($crate::error::db(doing))?;
        (stored, head_hash, hash)
    }};
}
pub(crate) use append_in;

impl Store {
    /// Appends `entry`, bounded (see [`AuditEntry::bounded`]), to the audit log and returns it
    /// as stored with its `seq` and hashes. Concurrent appends are serialized: the chain never
    /// forks.
    pub async fn append_audit(&self, entry: &AuditEntry) -> Result<AuditRecord> {
        let appended = self.append_settling(entry, None).await?;
        appended.ok_or_else(|| Error::Corrupt("an unconditional append was skipped".into()))
    }

    /// Appends `entry`; when `settling` names an audit intent, deletes that intent in the same
    /// transaction. With [`Settle::OnlyIfOpen`] nothing is appended (`None`) if the intent is
    /// no longer there, because another process settled it first.
    pub(crate) async fn append_settling(
        &self,
        entry: &AuditEntry,
        settling: Option<(&str, Settle)>,
    ) -> Result<Option<AuditRecord>> {
        let entry = &entry.bounded();
        check_entry(entry)?;
        let written = self
            .audit_write(Write::Append {
                entry: Box::new(entry.clone()),
                settling: settling.map(|(intent, settle)| (intent.to_owned(), settle)),
            })
            .await?;
        let Written::Appended(appended) = written else {
            return Err(Error::Corrupt("an append was answered as an intent".into()));
        };
        let Some(appended) = appended else {
            return Ok(None);
        };
        let (stored, prev_hash, hash) = *appended;
        Ok(Some(AuditRecord {
            seq: seq_of(stored.seq),
            entry: stored.into_entry()?,
            prev_hash,
            hash,
        }))
    }

    /// Entries matching `filter`, oldest first. Page with `filter.after = last.seq`. Fails with
    /// [`Error::Corrupt`] if a matching entry can no longer be read as an entry (a role or
    /// quota altered into nonsense); [`Store::verify_audit`] then names it.
    pub async fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
        let limit = match filter.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let rows: Vec<StoredRow> = with_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new(SELECT_ENTRIES);
            query.push(" WHERE TRUE");
            for (column, value) in [
                ("bureau", &filter.bureau),
                ("action", &filter.action),
                ("principal", &filter.principal),
            ] {
                if let Some(value) = value {
                    query.push(format_args!(" AND {column} = ")).push_bind(value.clone());
                }
            }
            if let Some(from) = filter.from {
                query.push(" AND at_us >= ").push_bind(to_micros(from));
            }
            if let Some(to) = filter.to {
                query.push(" AND at_us < ").push_bind(to_micros(to));
            }
            if let Some(after) = filter.after {
                let after = i64::try_from(after).unwrap_or(i64::MAX);
                query.push(" AND seq > ").push_bind(after);
            }
            query.push(" ORDER BY seq LIMIT ").push_bind(i64::from(limit));
            query.build_query_as().fetch_all(pool).await
        })
        .map_err(db("reading the audit log"))?;
        rows.into_iter()
            .map(|row| {
                let (stored, prev_hash, hash) = StoredEntry::from_row(row);
                Ok(AuditRecord {
                    seq: seq_of(stored.seq),
                    entry: stored.into_entry()?,
                    prev_hash,
                    hash,
                })
            })
            .collect()
    }

    /// The newest entry's `seq` and hash, to publish elsewhere as an anchor.
    pub async fn audit_head(&self) -> Result<AuditHead> {
        let (seq, hash): (i64, String) = with_pool!(self, pool =>
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(pool)
                .await)
        .map_err(db("reading the audit head"))?;
        Ok(AuditHead {
            seq: seq_of(seq),
            hash,
        })
    }

    /// The highest head published so far ([`Store::publish_audit_head`]), if any.
    pub async fn published_audit_head(&self) -> Result<Option<AuditHead>> {
        let row: Option<(i64, String)> = with_pool!(self, pool =>
            sqlx::query_as("SELECT seq, hash FROM audit_published WHERE id = 1")
                .fetch_optional(pool)
                .await)
        .map_err(db("reading the published audit head"))?;
        Ok(row.map(|(seq, hash)| AuditHead {
            seq: seq_of(seq),
            hash,
        }))
    }

    /// Reads the head to publish outside the database (a log line, an auditor's notes) and
    /// remembers it as the highest published. Refuses with [`Error::Corrupt`], remembering
    /// nothing, when the head is behind the one published before or the chain no longer holds
    /// that one's hash: the log was cut back or rewritten.
    pub async fn publish_audit_head(&self) -> Result<AuditHead> {
        const DOING: &str = "publishing the audit head";
        let now_us = to_micros(Timestamp::now());
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await.map_err(db(DOING))?;
            let (seq, hash): (i64, String) = sqlx::query_as(pool.dialect(
                "SELECT seq, hash FROM audit_head WHERE id = 1",
                "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
            ))
            .fetch_one(&mut *tx)
            .await
            .map_err(db(DOING))?;
            let published: Option<(i64, String)> =
                sqlx::query_as("SELECT seq, hash FROM audit_published WHERE id = 1")
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db(DOING))?;
            if let Some((published_seq, published_hash)) = published {
                if published_seq > seq {
                    return Err(Error::Corrupt(format!(
                        "the audit head went backwards: entry {published_seq} was published, \
                         but the head is entry {seq}"
                    )));
                }
                let held: Option<String> = if published_seq == 0 {
                    Some(GENESIS_HASH.to_owned())
                } else {
                    sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = $1")
                        .bind(published_seq)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db(DOING))?
                };
                if held.as_deref() != Some(published_hash.as_str()) {
                    return Err(Error::Corrupt(format!(
                        "entry {published_seq} no longer has the hash published for it: the \
                         audit log was rewritten"
                    )));
                }
            }
            sqlx::query(
                "INSERT INTO audit_published (id, seq, hash, published_us) VALUES (1, $1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, \
                 published_us = excluded.published_us",
            )
            .bind(seq)
            .bind(&hash)
            .bind(now_us)
            .execute(&mut *tx)
            .await
            .map_err(db(DOING))?;
            tx.commit().await.map_err(db(DOING))?;
            Ok(AuditHead {
                seq: seq_of(seq),
                hash,
            })
        })
    }

    /// Recomputes the whole chain from one consistent snapshot and names the first entry that
    /// does not check out.
    pub async fn verify_audit(&self) -> Result<ChainStatus> {
        const DOING: &str = "verifying the audit log";
        with_pool!(self, pool => {
            let mut tx = pool.begin_snapshot().await.map_err(db(DOING))?;
            let (head_seq, head_hash): (i64, String) =
                sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db(DOING))?;
            let published: Option<(i64, String)> =
                sqlx::query_as("SELECT seq, hash FROM audit_published WHERE id = 1")
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db(DOING))?;
            let mut chain = ChainCheck::new(published);
            {
                let mut rows = sqlx::query_as::<_, StoredRow>(VERIFY_ENTRIES)
                .fetch(&mut *tx);
                while let Some(row) = rows.try_next().await.map_err(db(DOING))? {
                    if let Some(broken) = chain.check(StoredEntry::from_row(row)) {
                        return Ok(broken);
                    }
                }
            }
            tx.commit().await.map_err(db(DOING))?;
            Ok(chain.finish(head_seq, &head_hash))
        })
    }
}

/// The running state of a verification.
struct ChainCheck {
    expected_seq: i64,
    prev_hash: String,
    /// The highest head published, `(seq, hash)`: the chain must still reach it and hold it.
    published: Option<(i64, String)>,
}

impl ChainCheck {
    fn new(published: Option<(i64, String)>) -> Self {
        Self {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
            published,
        }
    }

    fn check(
        &mut self,
        (entry, prev_hash, hash): (StoredEntry, String, String),
    ) -> Option<ChainStatus> {
        let broken = |seq: i64, reason: String| {
            Some(ChainStatus::Broken {
                seq: seq_of(seq),
                reason,
            })
        };
        if entry.seq != self.expected_seq {
            return broken(
                self.expected_seq,
                format!(
                    "entry {} is missing (the next stored entry is {})",
                    self.expected_seq, entry.seq
                ),
            );
        }
        if prev_hash != self.prev_hash {
            return broken(
                entry.seq,
                format!(
                    "its prev_hash does not match the hash of entry {}: an earlier entry was \
                     replaced or this link was altered",
                    entry.seq - 1
                ),
            );
        }
        if entry.hash(&prev_hash).as_deref() != Some(hash.as_str()) {
            return broken(
                entry.seq,
                "its contents do not match its hash: the entry was altered".to_owned(),
            );
        }
        if let Some((published_seq, published_hash)) = &self.published
            && *published_seq == entry.seq
            && *published_hash != hash
        {
            return broken(
                entry.seq,
                format!(
                    "its hash is not the one published for entry {}: the log was rewritten \
                     from here on",
                    entry.seq
                ),
            );
        }
        self.expected_seq += 1;
        self.prev_hash = hash;
        None
    }

    fn finish(self, head_seq: i64, head_hash: &str) -> ChainStatus {
        let last = self.expected_seq - 1;
        if let Some((published_seq, _)) = self.published
            && published_seq > last.max(head_seq)
        {
            return ChainStatus::Broken {
                seq: seq_of(last + 1),
                reason: format!(
                    "the head went backwards: entry {published_seq} was published, but the log \
                     ends at entry {last}"
                ),
            };
        }
        if head_seq != last {
            let seq = last.min(head_seq) + 1;
            let reason = if head_seq > last {
                format!(
                    "the head records {head_seq} entries but the log ends at entry {last}: newer entries were deleted"
                )
            } else {
                format!(
                    "entry {seq} is not recorded in the head, which ends at entry {head_seq}: entries were added around the store"
                )
            };
            return ChainStatus::Broken {
                seq: seq_of(seq),
                reason,
            };
        }
        if head_hash != self.prev_hash {
            return ChainStatus::Broken {
                seq: seq_of(last.max(1)),
                reason: "the head's hash does not match the last entry".to_owned(),
            };
        }
        ChainStatus::Intact {
            entries: seq_of(last),
        }
    }
}

#[cfg(test)]
mod bounds {
    use super::*;

    #[test]
    fn short_text_is_kept_as_it_is() {
        assert_eq!(
            bounded_text("environments/wjw-prod"),
            "environments/wjw-prod"
        );
        assert_eq!(bounded_text("海淀区卫生健康委员会"), "海淀区卫生健康委员会");
    }

    #[test]
    fn control_characters_and_bidi_overrides_are_escaped() {
        assert_eq!(bounded_text("a\nb\tc\u{1b}[0m"), "a\\nb\\tc\\u{1b}[0m");
        assert_eq!(bounded_text("x\u{202e}y"), "x\\u{202e}y");
    }

    #[test]
    fn long_chinese_text_is_cut_on_a_char_boundary_with_a_marker_and_cutting_again_changes_nothing()
    {
        let long = "卫".repeat(1_000);
        let cut = bounded_text(&long);
        assert_eq!(cut.chars().count(), MAX_FIELD_CHARS);
        assert!(cut.starts_with("卫卫卫"));
        assert!(cut.ends_with("…[cut, 3000 bytes]"), "{cut}");
        assert_eq!(bounded_text(&cut), cut);
        let exact = "卫".repeat(MAX_FIELD_CHARS);
        assert_eq!(bounded_text(&exact), exact);
    }

    #[test]
    fn a_quota_keeps_its_shape_with_its_strings_bounded_and_an_oversized_one_becomes_text() {
        let quota = serde_json::json!({"cpu": "核".repeat(1_000), "memory": "8Gi"});
        let bounded = bounded_json(&quota);
        assert_eq!(bounded["memory"], "8Gi");
        assert!(bounded["cpu"].as_str().is_some_and(|c| c.contains("[cut")));
        let many: serde_json::Map<_, _> = (0..100)
            .map(|n| (format!("k{n}"), serde_json::Value::String("卫".repeat(200))))
            .collect();
        let bounded = bounded_json(&serde_json::Value::Object(many));
        assert!(
            bounded
                .as_str()
                .is_some_and(|t| t.chars().count() <= MAX_FIELD_CHARS)
        );
        assert_eq!(bounded_json(&bounded), bounded);
    }
}
