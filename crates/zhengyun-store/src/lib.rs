//! Zhengyun store: the SQL ledger, audit log and API tokens, on SQLite (a file, zero set-up,
//! the default) or PostgreSQL (production). Kubernetes holds desired state; this crate holds
//! money and history.
//!
//! - [`tokens`]: bearer tokens for the API — random, shown once, stored as SHA-256, compared
//!   in constant time — and the principals they authenticate.
//! - [`audit`]: the append-only audit log, a SHA-256 hash chain that [`Store::verify_audit`]
//!   recomputes; [`intents`]: entries written ahead of a change, so none goes unrecorded.
//! - [`ledger`]: usage intervals, idempotent by their key (docs/architecture.md, invariant 4),
//!   sampler checkpoints and usage totals.
//! - [`gaps`]: spans the sampler recorded as not measured as they happened, where the ledger
//!   begins, and finance's waivers of a month's gaps.
//! - [`requests`]: change requests that wait for a platform admin's approval.
//! - [`reports`]: a month's statement, a bureau's usage and all-time totals, read from daily
//!   rollups that recording maintains (see `rollup`), fast whatever the ledger's size.
//! - [`observed`]: what the operator last recorded in the audit log about each cluster object
//!   whose changes it audits, so that each change is recorded once.
//! - [`statements`]: closed monthly statements, which never change, and the signed adjustment
//!   lines that correct them (docs/architecture.md, invariant 5).
//! - [`seals`]: the hash chain sealing closed statements, checked on every read.
//!
//! # Two backends, one behaviour
//!
//! [`Store::connect`] picks the backend from the URL and applies the embedded migrations
//! (`migrations/sqlite`, `migrations/postgres`: the same schema in two dialects). Queries are
//! written once where the dialects agree and twice where they do not (locking, casts). Every
//! write that reads before it writes runs in a transaction that takes its lock first —
//! `BEGIN IMMEDIATE` on SQLite, `SELECT … FOR UPDATE` on PostgreSQL — so concurrent callers,
//! in one process or several, serialize instead of racing.
//!
//! Nothing in this crate updates or deletes a closed statement line, an adjustment or an audit
//! entry, and the schema backs that up with triggers that refuse `UPDATE` and `DELETE` on those
//! tables.

pub mod audit;
pub mod availability;
pub mod console_sessions;
pub mod error;
pub mod evaluation;
pub mod gaps;
pub mod intents;
pub mod kubeconfigs;
pub mod ledger;
pub mod observed;
pub mod reclaims;
pub mod reports;
pub mod requests;
pub mod seals;
pub mod settlements;
pub mod statements;
pub mod tokens;

mod connect;
mod group_commit;
mod rollup;
mod sums_cache;
mod time;

use std::sync::Arc;
use std::time::Duration;

pub use audit::{AuditEntry, AuditFilter, AuditHead, AuditRecord, ChainStatus};
pub use console_sessions::ConsoleSession;
pub use error::{Error, Result};
pub use evaluation::MonthAccount;
pub use gaps::Waived;
pub use intents::{AuditIntent, IN_PROGRESS, UNKNOWN_OUTCOME};
pub use kubeconfigs::{Kubeconfig, NewKubeconfig};
pub use ledger::{MeterUsage, Recorded};
pub use observed::Observed;
pub use reclaims::{Reclaim, ReclaimCause};
pub use reports::{ResourceUsage, UsageCounter};
pub use requests::{ChangeRequest, NewRequest, RequestFilter, RequestKind, RequestState};
pub use seals::{ClosedStatement, SealVerification, SealedMonth};
pub use settlements::Settle;
pub use tokens::{
    BootstrapOutcome, DEFAULT_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME, NewToken, Principal, Role,
    TokenId, TokenInfo, TokenSecret, secret_digest,
};

/// The database behind a [`Store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file (or memory).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`, for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// How to connect. The defaults suit both the API and the operator.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Connections in the pool (SQLite in memory always uses one: each connection would be a
    /// different database).
    pub max_connections: u32,
    /// How long a query waits for a free connection (or a new one) before failing with
    /// [`Error::Unavailable`]; keeps the API answering 503 instead of hanging.
    pub acquire_timeout: Duration,
    /// How long SQLite waits for another writer before giving up with
    /// [`Error::Unavailable`].
    pub busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// The store: a connection pool to one database. Cheap to clone; clones share the pool.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    /// Audit writes waiting to be committed together ([`group_commit`]).
    audit: std::sync::Arc<group_commit::AuditQueue>,
    /// Usage sums read at the ledger's current revision ([`sums_cache`]).
    sums: std::sync::Arc<sums_cache::SumsCache>,
}

#[derive(Clone, Debug)]
enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool. The body is compiled once per backend,
/// so it may use any query that both dialects accept.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::Pool::Sqlite($pool) => $body,
            $crate::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// What differs between the two pools, so that `with_pool!` bodies can stay written once.
trait PoolExt {
    type Db: sqlx::Database;

    /// Begins a write transaction. On SQLite it first waits for this process's turn to write
    /// to the file (see [`WriteTx`]), then takes the database's write lock at once
    /// (`BEGIN IMMEDIATE`): a transaction that reads first and writes later could otherwise
    /// fail with `SQLITE_BUSY` without waiting. On PostgreSQL the statements lock the rows
    /// they depend on (see [`PoolExt::dialect`]).
    async fn begin_write(&self) -> sqlx::Result<WriteTx<Self::Db>>;

    /// Begins a read-only transaction that sees one snapshot throughout.
    async fn begin_snapshot(&self) -> sqlx::Result<sqlx::Transaction<'static, Self::Db>>;

    /// The statement for this backend, where the dialects differ.
    fn dialect(&self, sqlite: &'static str, postgres: &'static str) -> &'static str;
}

/// A write transaction, holding on SQLite this process's turn to write to the file.
///
/// SQLite lets one connection write at a time, and a connection that finds the file locked
/// sleeps in steps of up to 100 ms before it looks again. With many writers in one process
/// (the API under load records two audit writes per change) those sleeps, not the writes,
/// made the slowest requests. Writers of one process therefore queue here first, in order, and
/// reach SQLite one by one; SQLite's own lock still orders them against other processes.
pub(crate) struct WriteTx<DB: sqlx::Database> {
    tx: sqlx::Transaction<'static, DB>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl<DB: sqlx::Database> WriteTx<DB> {
    /// Commits, and gives up the turn.
    pub(crate) async fn commit(self) -> sqlx::Result<()> {
        self.tx.commit().await
    }
}

impl<DB: sqlx::Database> std::ops::Deref for WriteTx<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        &self.tx
    }
}

impl<DB: sqlx::Database> std::ops::DerefMut for WriteTx<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.tx
    }
}

/// `rows` cut into chunks for multi-row statements of at most `full` rows: as many of `full`
/// rows as there are, then the rest, in chunks whose lengths are powers of two (largest first)
/// where `text_per_length`, that is where a statement's text depends on its number of rows
/// (SQLite's `VALUES` lists), or else in one chunk.
///
/// The driver keeps up to 100 prepared statements per connection, one per text, and a SQLite
/// statement of a few hundred rows takes about a megabyte. Cut into equal chunks and one
/// shorter, nearly every batch ended in a length not seen before, and the statements kept for
/// them made a process grow by about 100 MiB (`examples/batch_memory.rs`). Cut this way, one
/// statement has at most 11 texts for 1,000 rows, every one of them reused, for a few more
/// statements per batch.
pub(crate) fn statement_chunks<T>(
    rows: &[T],
    full: usize,
    text_per_length: bool,
) -> impl Iterator<Item = &[T]> {
    let full = full.max(1);
    let mut rest = rows;
    std::iter::from_fn(move || {
        let len = match rest.len() {
            0 => return None,
            n if n >= full => full,
            n if text_per_length => 1 << n.ilog2(),
            n => n,
        };
        let (chunk, tail) = rest.split_at(len);
        rest = tail;
        Some(chunk)
    })
}

/// The turn to write to the SQLite file of `pool`, shared by every pool of this process on
/// that file (an in-memory database is known by the unique name the driver gives it); `None`
/// without a name.
///
/// A file is known by its canonical path, so that two spellings of one file share a turn; the
/// path as configured is remembered too, so that only a pool's first write asks the file system.
fn write_turn(pool: &sqlx::SqlitePool) -> Option<Arc<tokio::sync::Mutex<()>>> {
    #[derive(Default)]
    struct Turns {
        /// By the path as a pool was configured with it.
        configured: HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>,
        /// By the canonical path.
        canonical: HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>,
    }
    use std::collections::HashMap;
    use std::path::PathBuf;
    static TURNS: std::sync::LazyLock<std::sync::Mutex<Turns>> =
        std::sync::LazyLock::new(Default::default);
    let options = pool.connect_options();
    let file = options.get_filename();
    if file.as_os_str().is_empty() || file.as_os_str() == ":memory:" {
        return None;
    }
    let mut turns = TURNS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(turn) = turns.configured.get(file) {
        return Some(turn.clone());
    }
    let canonical = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_owned());
    let turn = turns.canonical.entry(canonical).or_default().clone();
    turns.configured.insert(file.to_owned(), turn.clone());
    Some(turn)
}

impl PoolExt for sqlx::SqlitePool {
    type Db = sqlx::Sqlite;

    async fn begin_write(&self) -> sqlx::Result<WriteTx<sqlx::Sqlite>> {
        // The turn is waited for no longer than a connection would be: when the file stays
        // locked (by another process), each writer fails after that wait, as without the
        // queue, rather than one after the other.
        let turn = match write_turn(self) {
            Some(turn) => Some(
                tokio::time::timeout(self.options().get_acquire_timeout(), turn.lock_owned())
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)?,
            ),
            None => None,
        };
        let tx = self.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx { tx, _turn: turn })
    }

    async fn begin_snapshot(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        // A deferred transaction in WAL mode reads one snapshot from its first SELECT on.
        self.begin().await
    }

    fn dialect(&self, sqlite: &'static str, _: &'static str) -> &'static str {
        sqlite
    }
}

impl PoolExt for sqlx::PgPool {
    type Db = sqlx::Postgres;

    async fn begin_write(&self) -> sqlx::Result<WriteTx<sqlx::Postgres>> {
        Ok(WriteTx {
            tx: self.begin().await?,
            _turn: None,
        })
    }

    async fn begin_snapshot(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
    }

    fn dialect(&self, _: &'static str, postgres: &'static str) -> &'static str {
        postgres
    }
}

/// Where the store is (flag of `zhengyun api`, `operator` and `dev`; in `dev` the API and the
/// operator share it).
#[derive(Clone, Debug, clap::Args)]
pub struct DatabaseArgs {
    /// The database of API tokens, the audit log and the metering ledger:
    /// `sqlite://PATH?mode=rwc` (created if missing) or `postgres://…`.
    #[arg(
        long,
        env = "ZHENGYUN_DATABASE_URL",
        default_value = "sqlite://zhengyun.db?mode=rwc",
        hide_env_values = true
    )]
    pub database_url: String,
}

impl Store {
    /// Connects to `url` and applies pending migrations: `sqlite://path?mode=rwc` (WAL,
    /// `synchronous=FULL`, busy timeout), `sqlite::memory:`, or `postgres://…` /
    /// `postgresql://…`.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, &StoreOptions::default()).await
    }

    /// [`Store::connect`] with explicit pool options.
    pub async fn connect_with(url: &str, options: &StoreOptions) -> Result<Self> {
        let store = connect::open(url, options).await?;
        connect::migrate(&store).await?;
        tracing::info!(
            backend = store.backend().as_str(),
            "store ready, schema up to date"
        );
        Ok(store)
    }

    /// A private in-memory SQLite store, for tests of the layers above.
    pub async fn in_memory() -> Result<Self> {
        Self::connect("sqlite::memory:").await
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        with_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop))
            .map_err(error::db("checking the database"))?;
        Ok(())
    }

    /// Closes every connection, waiting for queries in flight.
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await);
    }
}

#[cfg(test)]
mod tests {
    use super::write_turn;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

    #[test]
    fn statement_chunks_are_full_then_powers_of_two_where_the_text_depends_on_the_length() {
        let rows: Vec<usize> = (0..2_999).collect();
        let lengths = |text_per_length| -> Vec<usize> {
            super::statement_chunks(&rows, 1_000, text_per_length)
                .map(<[usize]>::len)
                .collect()
        };
        assert_eq!(
            lengths(true),
            [1_000, 1_000, 512, 256, 128, 64, 32, 4, 2, 1]
        );
        assert_eq!(lengths(false), [1_000, 1_000, 999]);
        let again: Vec<usize> = super::statement_chunks(&rows, 1_000, true)
            .flatten()
            .copied()
            .collect();
        assert_eq!(again, rows, "every row once, in order");
        assert_eq!(super::statement_chunks(&rows[..0], 1_000, true).count(), 0);
        // Every length a batch can end in is one of eleven.
        let mut seen = std::collections::BTreeSet::new();
        for n in 1..=2_000 {
            seen.extend(super::statement_chunks(&rows[..n], 1_000, true).map(<[usize]>::len));
        }
        assert_eq!(seen.len(), 11, "{seen:?}");
    }

    fn pool_on(path: &std::path::Path) -> SqlitePool {
        SqlitePool::connect_lazy_with(SqliteConnectOptions::new().filename(path))
    }

    #[tokio::test]
    async fn pools_on_one_file_share_a_write_turn_whatever_the_spelling_and_other_databases_do_not()
    {
        let dir = std::env::temp_dir().join(format!("zhengyun-turns-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).expect("temporary directory");
        for name in ["a.db", "b.db"] {
            std::fs::write(dir.join(name), b"").expect("file");
        }
        let a = write_turn(&pool_on(&dir.join("a.db"))).expect("a file has a turn");
        let a_again = write_turn(&pool_on(&dir.join("a.db"))).expect("a file has a turn");
        let a_spelled = write_turn(&pool_on(&dir.join("sub/../a.db"))).expect("a file has a turn");
        let b = write_turn(&pool_on(&dir.join("b.db"))).expect("a file has a turn");
        assert!(std::sync::Arc::ptr_eq(&a, &a_again));
        assert!(std::sync::Arc::ptr_eq(&a, &a_spelled));
        assert!(!std::sync::Arc::ptr_eq(&a, &b));
        let memory = SqlitePool::connect_lazy("sqlite::memory:").expect("in-memory options");
        let other_memory = SqlitePool::connect_lazy("sqlite::memory:").expect("in-memory options");
        let (m, n) = (write_turn(&memory), write_turn(&other_memory));
        assert!(!std::sync::Arc::ptr_eq(
            &m.expect("named"),
            &n.expect("named")
        ));
        std::fs::remove_dir_all(&dir).ok();
    }
}
