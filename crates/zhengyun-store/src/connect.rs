//! Opening a pool from a URL, and the embedded schema migrations.

use std::{borrow::Cow, str::FromStr};

use sqlx::{
    SqlSafeStr,
    migrate::{Migration, MigrationType, Migrator},
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use crate::{
    Pool, Store, StoreOptions,
    error::{Error, Result, db},
};

/// `(version, description, SQL)` of each migration, oldest first, per backend. Embedded so the
/// binary needs no files next to it; sqlx records a checksum of each, so editing an applied
/// migration is refused at start-up instead of silently diverging.
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "change requests",
        include_str!("../migrations/sqlite/0002_change_requests.sql"),
    ),
    (
        3,
        "usage rollups",
        include_str!("../migrations/sqlite/0003_usage_rollups.sql"),
    ),
    (
        4,
        "time-first keys",
        include_str!("../migrations/sqlite/0004_time_first_keys.sql"),
    ),
    (
        5,
        "audit published head",
        include_str!("../migrations/sqlite/0005_audit_published_head.sql"),
    ),
    (
        6,
        "token expiry and audit principals",
        include_str!("../migrations/sqlite/0006_token_expiry_and_audit_principals.sql"),
    ),
    (
        7,
        "audit intents",
        include_str!("../migrations/sqlite/0007_audit_intents.sql"),
    ),
    (
        8,
        "statement seals",
        include_str!("../migrations/sqlite/0008_statement_seals.sql"),
    ),
    (
        9,
        "metering gaps",
        include_str!("../migrations/sqlite/0009_metering_gaps.sql"),
    ),
    (
        10,
        "audit observed objects",
        include_str!("../migrations/sqlite/0010_audit_observed.sql"),
    ),
    (
        11,
        "ledger without row numbers",
        include_str!("../migrations/sqlite/0011_ledger_without_row_numbers.sql"),
    ),
    (
        12,
        "burst settlements",
        include_str!("../migrations/sqlite/0012_burst_settlements.sql"),
    ),
    (
        13,
        "burst reclaims",
        include_str!("../migrations/sqlite/0013_burst_reclaims.sql"),
    ),
    (
        14,
        "usage by environment",
        include_str!("../migrations/sqlite/0014_usage_by_environment.sql"),
    ),
    (
        15,
        "availability",
        include_str!("../migrations/sqlite/0015_availability.sql"),
    ),
    (
        16,
        "kubeconfigs",
        include_str!("../migrations/sqlite/0016_kubeconfigs.sql"),
    ),
    (
        17,
        "console sessions",
        include_str!("../migrations/sqlite/0017_console_sessions.sql"),
    ),
    (
        18,
        "console languages",
        include_str!("../migrations/sqlite/0018_console_languages.sql"),
    ),
    (
        19,
        "ledger revision",
        include_str!("../migrations/sqlite/0019_ledger_revision.sql"),
    ),
    (
        20,
        "usage by hour and environment",
        include_str!("../migrations/sqlite/0020_usage_by_hour_and_environment.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "change requests",
        include_str!("../migrations/postgres/0002_change_requests.sql"),
    ),
    (
        3,
        "usage rollups",
        include_str!("../migrations/postgres/0003_usage_rollups.sql"),
    ),
    (
        4,
        "time-first keys",
        include_str!("../migrations/postgres/0004_time_first_keys.sql"),
    ),
    (
        5,
        "audit published head",
        include_str!("../migrations/postgres/0005_audit_published_head.sql"),
    ),
    (
        6,
        "token expiry and audit principals",
        include_str!("../migrations/postgres/0006_token_expiry_and_audit_principals.sql"),
    ),
    (
        7,
        "audit intents",
        include_str!("../migrations/postgres/0007_audit_intents.sql"),
    ),
    (
        8,
        "statement seals",
        include_str!("../migrations/postgres/0008_statement_seals.sql"),
    ),
    (
        9,
        "metering gaps",
        include_str!("../migrations/postgres/0009_metering_gaps.sql"),
    ),
    (
        10,
        "audit observed objects",
        include_str!("../migrations/postgres/0010_audit_observed.sql"),
    ),
    (
        11,
        "ledger without row numbers",
        include_str!("../migrations/postgres/0011_ledger_without_row_numbers.sql"),
    ),
    (
        12,
        "burst settlements",
        include_str!("../migrations/postgres/0012_burst_settlements.sql"),
    ),
    (
        13,
        "burst reclaims",
        include_str!("../migrations/postgres/0013_burst_reclaims.sql"),
    ),
    (
        14,
        "usage by environment",
        include_str!("../migrations/postgres/0014_usage_by_environment.sql"),
    ),
    (
        15,
        "availability",
        include_str!("../migrations/postgres/0015_availability.sql"),
    ),
    (
        16,
        "kubeconfigs",
        include_str!("../migrations/postgres/0016_kubeconfigs.sql"),
    ),
    (
        17,
        "console sessions",
        include_str!("../migrations/postgres/0017_console_sessions.sql"),
    ),
    (
        18,
        "console languages",
        include_str!("../migrations/postgres/0018_console_languages.sql"),
    ),
    (
        19,
        "ledger revision",
        include_str!("../migrations/postgres/0019_ledger_revision.sql"),
    ),
    (
        20,
        "usage by hour and environment",
        include_str!("../migrations/postgres/0020_usage_by_hour_and_environment.sql"),
    ),
];

pub(crate) async fn open(url: &str, options: &StoreOptions) -> Result<Store> {
    let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Pool::Postgres(open_postgres(url, options).await?)
    } else if url.starts_with("sqlite:") {
        Pool::Sqlite(open_sqlite(url, options).await?)
    } else {
        return Err(Error::invalid(
            "database URL",
            "expected sqlite://PATH?mode=rwc, sqlite::memory: or postgres://…",
        ));
    };
    Ok(Store {
        pool,
        audit: Default::default(),
        sums: Default::default(),
    })
}

/// What SQLite may allocate in one process, over all its connections, before its page caches
/// reuse their pages instead of growing (`PRAGMA soft_heap_limit`, process-wide). Each
/// connection's cache may hold 16 MiB, and a pool keeps up to eight: as the ledger grew, every
/// connection that had read it kept its own 16 MiB, which at 10,000 environments was most of
/// what the operator's memory gained at each metering window (docs/performance.md).
const SQLITE_HEAP_LIMIT: u64 = 32 << 20;

async fn open_sqlite(url: &str, options: &StoreOptions) -> Result<sqlx::SqlitePool> {
    // The URL is not echoed: it could carry credentials in other schemes and is the
    // operator's own input anyway.
    let parsed = SqliteConnectOptions::from_str(url)
        .map_err(|e| Error::invalid("database URL", format!("not a SQLite URL: {e}")))?;
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let mut connect = parsed
        .foreign_keys(true)
        .busy_timeout(options.busy_timeout)
        // A committed audit entry or ledger row must survive a power cut, not only a crash.
        .synchronous(SqliteSynchronous::Full)
        // 16 MiB of page cache per connection instead of 2 MiB, so that the ledger's indexes
        // stay in memory during batch inserts.
        .pragma("cache_size", "-16384")
        // ... within a bound on all of SQLite's memory in the process (see SQLITE_HEAP_LIMIT).
        .pragma("soft_heap_limit", SQLITE_HEAP_LIMIT.to_string());
    if !in_memory {
        connect = connect.journal_mode(SqliteJournalMode::Wal);
    }
    if !url.contains("mode=") {
        connect = connect.create_if_missing(true);
    }
    let max_connections = if in_memory {
        1
    } else {
        options.max_connections
    };
    let pool = SqlitePoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(options.acquire_timeout)
        // An in-memory database lives only as long as its connection.
        .idle_timeout(if in_memory { None } else { Some(IDLE) })
        .max_lifetime(if in_memory { None } else { Some(LIFETIME) });
    // Switching a new file to WAL takes an exclusive lock without waiting for the busy timeout,
    // so a process opening the file while another one switches it is told it is locked. It
    // tries again until the busy timeout has passed.
    let deadline = std::time::Instant::now() + options.busy_timeout;
    loop {
        match pool.clone().connect_with(connect.clone()).await {
            Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            opened => return opened.map_err(db("opening the SQLite database")),
        }
    }
}

/// Whether `e` is SQLite's "database is locked" (`SQLITE_BUSY`, or one of its extended codes).
fn is_busy(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| code & 0xff == 5)
}

const IDLE: std::time::Duration = std::time::Duration::from_secs(600);
const LIFETIME: std::time::Duration = std::time::Duration::from_secs(1800);

async fn open_postgres(url: &str, options: &StoreOptions) -> Result<sqlx::PgPool> {
    let connect = PgConnectOptions::from_str(url)
        .map_err(|e| Error::invalid("database URL", format!("not a PostgreSQL URL: {e}")))?
        .application_name("zhengyun");
    PgPoolOptions::new()
        .max_connections(options.max_connections)
        .acquire_timeout(options.acquire_timeout)
        .connect_with(connect)
        .await
        .map_err(db("connecting to PostgreSQL"))
}

fn migrator(migrations: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Applies pending migrations. On PostgreSQL sqlx holds an advisory lock meanwhile, so an API
/// and an operator starting together migrate once. SQLite has no such lock: when start-ups
/// race on a new file, the loser's attempt fails on a migration the winner applied after the
/// loser read the list of applied ones. It tries again for as long as the winner makes progress
/// (the list grows between two attempts); a failure with no progress is a real one.
pub(crate) async fn migrate(store: &Store) -> Result<()> {
    match &store.pool {
        Pool::Sqlite(pool) => {
            let migrator = migrator(SQLITE_MIGRATIONS);
            let mut applied = applied_sqlite(pool).await;
            loop {
                let Err(e) = migrator.run(pool).await else {
                    break;
                };
                let now = applied_sqlite(pool).await;
                if now <= applied {
                    return Err(Error::Migration(e));
                }
                applied = now;
            }
        }
        Pool::Postgres(pool) => {
            migrator(POSTGRES_MIGRATIONS)
                .run(pool)
                .await
                .map_err(Error::Migration)?;
        }
    }
    Ok(())
}

/// How many migrations a SQLite database has applied (0 before the first).
async fn applied_sqlite(pool: &sqlx::SqlitePool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}
